#!/usr/bin/env bash
# Installs the programs the test suite runs, on a fresh Debian machine, from Debian's own
# package archive (apt-get):
#   systemd     /lib/systemd/systemd-journald and journalctl: the journald tests start
#               their own journald in a namespace and read it back (journald_live,
#               daemon_sources, dryrun_live);
#   util-linux  dmesg: dryrun_live captures this machine's kernel log with it;
#   curl        the shipped plugins config/plugin/check_kubelet.sh and check_runtime.sh
#               probe with it (custom_configs).
# Everything else the tests run (sh, mkfifo, sleep, cat) is in Debian's essential set.
# Idempotent: installs only what is missing, and prints nothing when all is there.
set -euo pipefail
need=()
[ -x /lib/systemd/systemd-journald ] && command -v journalctl >/dev/null 2>&1 || need+=(systemd)
command -v dmesg >/dev/null 2>&1 || need+=(util-linux)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: need root to install: ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
