#!/usr/bin/env bash
# Daemon benchmark (issue 5): replays a 1,000,000-line kern.log (syslog format, 0.1%
# problem lines) through the whole daemon with the default kernel rules in a filelog
# config and the Kubernetes exporter off, timed until problem_counter shows every planted
# problem. Reports CPU seconds, peak RSS, idle RSS and idle wakeups (voluntary context
# switches in 10 idle seconds, summed over all the daemon's threads, and of the main
# thread alone); median of RUNS runs.
#
#   scripts/bench-daemon.sh [RUNS=5] [LINES=1000000]
#
# Needs python3, curl and bc. Fails (exit 1) when a run does not count every planted
# problem within 60 s (BENCH_LIMIT_S), or when the daemon dies.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
LINES=${2:-1000000}
missing=()
for tool in python3 curl bc; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench-daemon: missing ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
cargo build --release --quiet --bin node-problem-detector --example gen_kernlog
BIN=target/release/node-problem-detector
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
tick=$(getconf CLK_TCK)
LIMIT_S=${BENCH_LIMIT_S:-60}

# Two TCP ports free on 127.0.0.1 right now (bound to port 0, then released).
free_ports() {
  python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
'
}

# Voluntary context switches: of every thread of $1, and of its main thread.
switches_all() {
  cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ {n += $2} END {print n}'
}
switches_main() {
  awk '/^voluntary_ctxt_switches/ {print $2}' /proc/"$1"/status
}

results=()
for run in $(seq 1 "$RUNS"); do
  planted=$(target/release/examples/gen_kernlog "$work/kern.log" "$LINES")
  python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
cfg = json.load(open("config/kernel-monitor-filelog.json"))
cfg["logPath"] = work + "/kern.log"
cfg["lookback"] = "1h"
json.dump(cfg, open(work + "/kernel-monitor-filelog.json", "w"))
PY
  read -r port mport < <(free_ports)
  start_ns=$(date +%s%N)
  "$BIN" --enable-k8s-exporter=false --port="$port" --prometheus-port="$mport" \
    --config.system-log-monitor="$work/kernel-monitor-filelog.json" 2>"$work/daemon.log" &
  pid=$!
  got=0
  deadline=$((start_ns + LIMIT_S * 1000000000))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "bench-daemon: run $run: the daemon exited; its log:" >&2
      cat "$work/daemon.log" >&2
      exit 1
    fi
    # Until the metrics server is up curl cannot connect; that is not an error here
    # (curl itself was checked above).
    got=$(curl -s "http://127.0.0.1:$mport/metrics" 2>/dev/null | awk -F' ' '/^problem_counter\{reason="OOMKilling"\}/ {print $2}' || true)
    [ "${got:-0}" = "$planted" ] && break
    if [ "$(date +%s%N)" -gt "$deadline" ]; then
      echo "bench-daemon: run $run: only ${got:-0} of $planted planted problems counted after ${LIMIT_S} s" >&2
      tail -n 20 "$work/daemon.log" >&2
      exit 1
    fi
    sleep 0.01
  done
  end_ns=$(date +%s%N)
  read -r utime stime < <(awk '{print $14, $15}' /proc/$pid/stat)
  hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  cpu=$(echo "scale=3; ($utime + $stime) / $tick" | bc)
  # Idle: no lines arrive; measure RSS and how often the process wakes up. The monitor
  # gives memory back once, 5 s after a burst (src/footprint.rs); the idle window starts
  # after that one-shot trim.
  sleep 7
  a1=$(switches_all $pid); m1=$(switches_main $pid)
  sleep 10
  a2=$(switches_all $pid); m2=$(switches_main $pid)
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  kill -TERM $pid; wait $pid || true
  pid=
  wall=$(echo "scale=3; ($end_ns - $start_ns) / 1000000000" | bc)
  echo "run $run: planted=$planted counted=$got wall=${wall}s cpu=${cpu}s peak_rss=${hwm}kB idle_rss=${rss}kB idle_wakeups_10s: all_threads=$((a2 - a1)) main_thread=$((m2 - m1))"
  results+=("$cpu $hwm $rss $((a2 - a1)) $((m2 - m1)) $wall")
done
printf '%s\n' "${results[@]}" | python3 -c '
import sys, statistics as s
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
cols = list(zip(*rows))
print("median: cpu=%.3fs peak_rss=%.1fMB idle_rss=%.1fMB idle_wakeups_10s: all_threads=%d main_thread=%d wall=%.3fs" % (
    s.median(cols[0]), s.median(cols[1]) / 1024, s.median(cols[2]) / 1024, s.median(cols[3]), s.median(cols[4]), s.median(cols[5])))
'
