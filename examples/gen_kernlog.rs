//! Writes a realistic syslog-format kern.log for benchmarks: N lines of ordinary kernel
//! chatter with one OOM kill every 1000 lines (0.1%). Deterministic.
//!
//! Usage: gen_kernlog OUT_PATH [LINES]

use std::io::{BufWriter, Write};

const CHATTER: &[&str] = &[
    "IPv6: ADDRCONF(NETDEV_CHANGE): veth{n}: link becomes ready",
    "cni0: port {n}(veth{n}) entered forwarding state",
    "cni0: port {n}(veth{n}) entered disabled state",
    "device veth{n} entered promiscuous mode",
    "audit: type=1400 audit({n}.123:{n}): apparmor=\"STATUS\" operation=\"profile_load\" profile=\"unconfined\" name=\"cri-containerd.apparmor.d\" pid={n} comm=\"apparmor_parser\"",
    "EXT4-fs (sda{n}): mounted filesystem with ordered data mode. Quota mode: none.",
    "usb 1-{n}: new high-speed USB device number {n} using xhci_hcd",
    "IPVS: rr: TCP 10.96.0.{n}:443 - no destination available",
    "eth0: renamed from tmp{n}",
    "xfs filesystem being mounted at /var/lib/kubelet/pods/{n}/volumes supports timestamps until 2038",
    "overlayfs: upper fs does not support tmpfile.",
    "TCP: request_sock_TCP: Possible SYN flooding on port {n}. Sending cookies.",
    "nfs: server 10.0.0.{n} OK",
    "perf: interrupt took too long ({n} > 2500), lowering kernel.perf_event_max_sample_rate to 79750",
    "systemd-journald[{n}]: Received client request to flush runtime journal.",
    "br-{n}: port 1(veth{n}) entered blocking state",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next() else {
        eprintln!("usage: gen_kernlog OUT_PATH [LINES]");
        std::process::exit(2);
    };
    let lines: u64 = match args.next() {
        None => 1_000_000,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("gen_kernlog: LINES must be a number, not {s:?}");
            std::process::exit(2)
        }),
    };
    // The planted count is printed only once every line is on disk: a benchmark that
    // waits for that many problems must not start on a short file.
    match write_log(&out, lines) {
        Ok(problems) => println!("{problems}"),
        Err(e) => {
            eprintln!("gen_kernlog: writing {out}: {e}");
            std::process::exit(1);
        }
    }
}

/// Writes the log; returns the number of planted problem lines.
fn write_log(out: &str, lines: u64) -> std::io::Result<u64> {
    let mut w = BufWriter::new(std::fs::File::create(out)?);
    // Timestamps: the last few seconds, so a lookback of minutes keeps every line.
    let stamp = jiff::Zoned::now().strftime("%b %e %H:%M:%S").to_string();
    let mut problems = 0;
    for i in 0..lines {
        let uptime = 1000.0 + i as f64 * 0.000_37;
        let msg = if i % 1000 == 999 {
            problems += 1;
            format!(
                "Out of memory: Killed process {} (stress) total-vm:{}kB, anon-rss:{}kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:2048kB oom_score_adj:1000",
                10_000 + i,
                i * 3,
                i * 2
            )
        } else {
            CHATTER[(i as usize * 7 + i as usize / 13) % CHATTER.len()]
                .replace("{n}", &(i % 977).to_string())
        };
        writeln!(w, "{stamp} node-1 kernel: [{uptime:12.6}] {msg}")?;
    }
    // into_inner flushes and reports a failed flush; sync_all surfaces delayed write
    // errors (a full disk) before the count is printed.
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(problems)
}
