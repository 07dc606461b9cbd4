#!/usr/bin/env bash
# Daemon benchmark (issue 5): replays a 1,000,000-line kern.log (syslog format, 0.1%
# problem lines) through the whole daemon with the default kernel rules in a filelog
# config and the Kubernetes exporter off, timed until problem_counter shows every planted
# problem. Reports CPU seconds, peak RSS, idle RSS and idle wakeups; median of RUNS runs.
#
#   scripts/bench-daemon.sh [RUNS=5] [LINES=1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
LINES=${2:-1000000}
cargo build --release --quiet --bin node-problem-detector --example gen_kernlog
BIN=target/release/node-problem-detector
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
tick=$(getconf CLK_TCK)
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
  port=$((21000 + run)); mport=$((22000 + run))
  start_ns=$(date +%s%N)
  "$BIN" --enable-k8s-exporter=false --port=$port --prometheus-port=$mport \
    --config.system-log-monitor="$work/kernel-monitor-filelog.json" 2>"$work/daemon.log" &
  pid=$!
  got=0
  for _ in $(seq 1 6000); do
    # Not up yet: curl fails; that is not an error of the benchmark.
    got=$(curl -s "http://127.0.0.1:$mport/metrics" 2>/dev/null | awk -F' ' '/^problem_counter\{reason="OOMKilling"\}/ {print $2}' || true)
    [ "${got:-0}" = "$planted" ] && break
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
  c1=$(awk '/^voluntary_ctxt_switches/ {print $2}' /proc/$pid/status)
  sleep 10
  c2=$(awk '/^voluntary_ctxt_switches/ {print $2}' /proc/$pid/status)
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  kill -TERM $pid; wait $pid || true
  wall=$(echo "scale=3; ($end_ns - $start_ns) / 1000000000" | bc)
  echo "run $run: planted=$planted counted=${got:-0} wall=${wall}s cpu=${cpu}s peak_rss=${hwm}kB idle_rss=${rss}kB idle_wakeups_10s=$((c2 - c1))"
  results+=("$cpu $hwm $rss $((c2 - c1)) $wall")
done
printf '%s\n' "${results[@]}" | python3 -c '
import sys, statistics as s
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
cols = list(zip(*rows))
print("median: cpu=%.3fs peak_rss=%.1fMB idle_rss=%.1fMB idle_wakeups_10s=%d wall=%.3fs" % (
    s.median(cols[0]), s.median(cols[1]) / 1024, s.median(cols[2]) / 1024, s.median(cols[3]), s.median(cols[4])))
'
