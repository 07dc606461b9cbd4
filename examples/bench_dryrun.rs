//! Benchmark: dry-run of a 1,000,000-line syslog capture (~0.1% problem lines) with the
//! default rule sets. Prints the CPU time (user + system) of each run and the median.
//!
//! `cargo run --release --example bench_dryrun [RUNS]`

use std::io::Write;
use std::time::Duration;

use npd::dryrun::{DryRunArgs, OutputFormat};

fn cpu_time() -> Duration {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the valid rusage struct.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let dir = tempfile_dir()?;
    let path = dir.join("syslog");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let normal = [
        "kernel: [ 1234.567890] IPv6: ADDRCONF(NETDEV_CHANGE): veth1a2b3c: link becomes ready",
        "kernel: [ 1234.567891] cni0: port 3(veth1a2b3c) entered forwarding state",
        "kubelet[1211]: I1123 07:34:36.000000 1211 kubelet.go:2400] \"SyncLoop UPDATE\" source=\"api\"",
        "containerd[811]: time=\"2026-11-23T07:34:31Z\" level=info msg=\"shim disconnected\"",
        "systemd[1]: Started session-12.scope - Session 12 of User root.",
        "kernel: [ 1234.567892] audit: type=1400 audit(1700000000.000:123): apparmor=\"DENIED\"",
    ];
    let problems = [
        "kernel: [ 1234.600000] Out of memory: Killed process 48211 (java) total-vm:8123456kB, anon-rss:6234100kB, file-rss:0kB, shmem-rss:0kB",
        "kernel: [ 1234.700000] INFO: task jbd2/sda1-8:312 blocked for more than 120 seconds.",
        "kernel: [ 1234.800000] EXT4-fs error (device sda1): ext4_find_entry:1683: inode #2: comm ls",
    ];
    let lines = 1_000_000;
    for i in 0..lines {
        let secs = i / 100;
        let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
        let msg = if i % 1000 == 999 {
            problems[(i / 1000) % problems.len()]
        } else {
            normal[i % normal.len()]
        };
        writeln!(w, "Nov 20 {h:02}:{m:02}:{s:02} node-7 {msg}")?;
    }
    w.flush()?;
    drop(w);
    let args = DryRunArgs {
        files: vec![path.clone()],
        output: OutputFormat::Json,
        ..Default::default()
    };
    let mut times = Vec::new();
    for _ in 0..runs {
        let mut sink = std::io::sink();
        let before = cpu_time();
        let o = npd::dryrun::run(&args, &mut sink)?;
        let t = cpu_time() - before;
        println!("run: {:.3} s CPU, {} events", t.as_secs_f64(), o.events);
        times.push(t);
    }
    times.sort();
    println!(
        "median of {runs}: {:.3} s CPU for {lines} lines",
        times[times.len() / 2].as_secs_f64()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("bench_dryrun.{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
