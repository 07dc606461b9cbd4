#!/bin/sh
# Kubelet health check for the custom plugin monitor (node-problem-detector in Rust).
# Asks the kubelet's healthz endpoint (default http://127.0.0.1:10248/healthz).
# Exit 0: kubelet answers "ok"; 1: it does not answer or answers something else;
# 2: the check itself cannot run (no curl and no wget).
# Usage: check_kubelet.sh [URL]   (or KUBELET_HEALTHZ_URL in the environment)
# In a pod: the kubelet's healthz listens on the node's loopback, so the pod needs
# hostNetwork: true; on the pod network 127.0.0.1 is the pod's own loopback, nothing answers
# there and the condition would be True on every node.
url="${1:-${KUBELET_HEALTHZ_URL:-http://127.0.0.1:10248/healthz}}"

if command -v curl >/dev/null 2>&1; then
    body=$(curl -s -m 5 "$url" 2>/dev/null)
    rc=$?
elif command -v wget >/dev/null 2>&1; then
    body=$(wget -q -T 5 -O - "$url" 2>/dev/null)
    rc=$?
else
    echo "cannot check kubelet: neither curl nor wget is installed"
    exit 2
fi

if [ "$rc" -ne 0 ]; then
    echo "kubelet healthz $url not reachable"
    exit 1
fi
if [ "$body" != "ok" ]; then
    echo "kubelet healthz $url says: $(printf '%s' "$body" | head -c 40)"
    exit 1
fi
echo "kubelet is healthy"
exit 0
