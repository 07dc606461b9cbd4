# syntax=docker/dockerfile:1
# node-problem-detector (Rust). Build: docker build -t node-problem-detector .
#
# Build stage: the official Rust image on Debian bookworm, so the binary links the same
# glibc (2.36) the runtime stage has.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY config ./config
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bin node-problem-detector

# Runtime stage: debian:bookworm-slim, not distroless. The binary is dynamically linked
# against glibc (x86_64-unknown-linux-gnu), which rules out distroless/static; and custom
# plugin scripts (config/plugin/*.sh, upstream's too) are run by /bin/sh or /bin/bash,
# which distroless/cc lacks. Upstream's image is Debian-based for the same reason.
FROM debian:bookworm-slim
# curl for the shipped custom plugins: check_kubelet.sh GETs the kubelet's /healthz and
# check_runtime.sh probes the runtime socket with it (bookworm-slim has neither curl nor
# wget; without them the kubelet check reports Unknown). Plain HTTP to the node only, so no
# CA bundle is needed.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/node-problem-detector /node-problem-detector
# Same layout as upstream's image: default rule sets under /config, plugins under
# /config/plugin, run from / so upstream's relative plugin paths (./config/plugin/...)
# resolve.
COPY config/ /config/
WORKDIR /
ENTRYPOINT ["/node-problem-detector", "--config.system-log-monitor=/config/kernel-monitor.json,/config/readonly-monitor.json"]
