#!/bin/sh
# Container runtime health check for the custom plugin monitor (node-problem-detector in
# Rust). Uses `crictl info` when crictl is installed, else checks that the runtime socket
# exists and accepts a connection.
# Exit 0: the runtime responds; 1: it does not; 2: the check cannot run (no socket
# configured or found, and no crictl).
# Usage: check_runtime.sh [SOCKET]   (or CONTAINER_RUNTIME_ENDPOINT in the environment)
# In a pod: the runtime socket must be mounted from the host (a hostPath volume of type
# Socket, e.g. /run/containerd/containerd.sock at the same path); without it the check finds
# no socket and reports Unknown.
sock="${1:-${CONTAINER_RUNTIME_ENDPOINT:-}}"
sock="${sock#unix://}"
if [ -z "$sock" ]; then
    for s in /run/containerd/containerd.sock /var/run/containerd/containerd.sock \
             /run/crio/crio.sock /var/run/crio/crio.sock; do
        if [ -S "$s" ]; then sock="$s"; break; fi
    done
fi

if command -v crictl >/dev/null 2>&1 && [ -n "$sock" ]; then
    if crictl --runtime-endpoint "unix://$sock" --timeout 5s info >/dev/null 2>&1; then
        echo "container runtime at $sock is responding"
        exit 0
    fi
    echo "container runtime at $sock does not respond to crictl info"
    exit 1
fi

if [ -z "$sock" ]; then
    echo "no container runtime socket found"
    exit 2
fi
if [ ! -S "$sock" ]; then
    echo "container runtime socket $sock is missing"
    exit 1
fi
# A connect test: curl can speak to a unix socket. A runtime (a gRPC server) reads the
# request and answers or closes (curl exit 52/56/...: fine); exit 7 means no connection.
if command -v curl >/dev/null 2>&1; then
    curl -s -m 3 --unix-socket "$sock" http://localhost/ >/dev/null 2>&1
    if [ $? -eq 7 ]; then
        echo "container runtime socket $sock refuses connections"
        exit 1
    fi
    echo "container runtime socket $sock accepts connections"
    exit 0
fi
echo "container runtime socket $sock exists (no crictl or curl to probe it)"
exit 0
