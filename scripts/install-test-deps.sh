#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: systemd-journald (the
# journald tests start their own instance), util-linux (logger), procps. Idempotent and
# quiet when everything is already there.
set -euo pipefail
need=()
[ -x /lib/systemd/systemd-journald ] || need+=(systemd)
command -v logger >/dev/null 2>&1 || need+=(bsdutils)
command -v sysctl >/dev/null 2>&1 || need+=(procps)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: need root to install: ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
