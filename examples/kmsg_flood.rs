//! Flood measurement for the kmsg source (issue 3). Run as root:
//!
//! ```sh
//! cargo run --release --example kmsg_flood [-- RECORDS]
//! ```
//!
//! Starts `KmsgSource` (lookback 0: only new records) feeding a `Monitor` built from the
//! embedded default kernel rules, writes RECORDS (default 100,000) filler records to
//! /dev/kmsg as fast as it can, then 10 OOM-kill records the `OOMKilling` rule matches,
//! waits until the monitor has seen the last one, and prints what it counted, how many
//! records the kernel overwrote before we read them, CPU and peak RSS.
//!
//! Sets `kernel.printk_devkmsg` to `on` for the run (the kernel otherwise drops all but
//! ~10 records per 5 s from user space) and restores it afterwards.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jiff::Timestamp;
use npd::config::parse_monitor_config;
use npd::defaults::DEFAULT_MONITOR_CONFIGS;
use npd::engine::{Monitor, ProblemMetrics};
use npd::source::kmsg::KmsgSource;
use npd::source::{LineFilter, LineSink, LogSource, StopSignal, boot_time};

const SYSCTL: &str = "/proc/sys/kernel/printk_devkmsg";
const PROBLEMS: usize = 10;

/// Restores the sysctl on every exit path.
struct DevkmsgOn(String);

impl DevkmsgOn {
    fn set() -> anyhow::Result<DevkmsgOn> {
        let old = std::fs::read_to_string(SYSCTL).with_context(|| format!("reading {SYSCTL}"))?;
        std::fs::write(SYSCTL, "on\n").with_context(|| format!("writing {SYSCTL}"))?;
        Ok(DevkmsgOn(old.trim().to_string()))
    }
}

impl Drop for DevkmsgOn {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, format!("{}\n", self.0));
    }
}

fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: an all-zero rusage is a valid value; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(who, &mut ru) };
    ru
}

fn cpu(ru: &libc::rusage) -> Duration {
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() -> anyhow::Result<()> {
    let records: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("RECORDS must be a number")?,
        None => 100_000,
    };
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("run as root: writes to /dev/kmsg and sets {SYSCTL}");
    }
    let (name, text) = DEFAULT_MONITOR_CONFIGS
        .iter()
        .find(|(n, _)| *n == "kernel-monitor.json")
        .context("no embedded kernel-monitor.json")?;
    let mut config = parse_monitor_config(Path::new(name), text)?.config;
    config.lookback = Duration::ZERO;

    let _sysctl = DevkmsgOn::set()?;
    let now = Timestamp::now();
    let boot = boot_time();
    let stop = StopSignal::new()?;
    let (sink, mut rx) = LineSink::new(LineFilter::live(&config, now, boot), stop.clone());
    let stats = sink.stats.clone();
    let source = KmsgSource::from_config(&config).with_boot_time(boot);
    let source_thread = std::thread::spawn(move || Box::new(source).run(sink));

    let nonce = format!("{:08x}", fastrand::u32(..));
    let done_marker = format!("kmsg_flood done {nonce}");
    let monitor_config = config.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let marker = done_marker.clone();
    std::thread::spawn(move || {
        let result = (|| -> anyhow::Result<(u64, u64)> {
            let mut monitor = Monitor::new(&monitor_config, now)?;
            let mut metrics = ProblemMetrics::default();
            monitor.init_metrics(&mut metrics);
            let mut lines = 0u64;
            while let Some(line) = rx.blocking_recv() {
                lines += 1;
                monitor.process(&line, &mut metrics);
                if line.message.contains(&marker) {
                    break;
                }
            }
            Ok((metrics.counter("OOMKilling").unwrap_or(0), lines))
        })();
        let _ = done_tx.send(result);
    });

    let mut kmsg = OpenOptions::new().write(true).open("/dev/kmsg")?;
    let writer_before = rusage(libc::RUSAGE_THREAD);
    let t0 = Instant::now();
    let pad = "x".repeat(40);
    for i in 0..records {
        kmsg.write_all(format!("<6>kmsg_flood filler {i} {nonce} {pad}\n").as_bytes())?;
    }
    let flood_time = t0.elapsed();
    for i in 0..PROBLEMS {
        kmsg.write_all(format!("<6>Out of memory: Killed process {} (flood{i}) total-vm:123456kB, anon-rss:65432kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0\n", 40000 + i).as_bytes())?;
    }
    kmsg.write_all(format!("<6>{done_marker}\n").as_bytes())?;
    let writer_cpu = cpu(&rusage(libc::RUSAGE_THREAD)) - cpu(&writer_before);

    let (problems, lines) = done_rx
        .recv_timeout(Duration::from_secs(120))
        .context("monitor did not see the last record within 120 s")??;
    let caught_up = t0.elapsed();
    stop.set();
    match source_thread.join() {
        Ok(r) => r?,
        Err(_) => bail!("source thread panicked"),
    }
    let me = rusage(libc::RUSAGE_SELF);
    let total_cpu = cpu(&me);
    println!("records written:        {records} + {PROBLEMS} OOM + 1 marker");
    println!(
        "write rate:             {:.0} records/s ({:.3} s)",
        records as f64 / flood_time.as_secs_f64(),
        flood_time.as_secs_f64()
    );
    println!("caught up after:        {:.3} s", caught_up.as_secs_f64());
    println!("problems counted:       {problems} of {PROBLEMS} (OOMKilling problem_counter)");
    println!("lines to monitor:       {lines}");
    println!(
        "records lost (kernel):  {}",
        stats.records_lost.load(Ordering::Relaxed)
    );
    println!(
        "CPU user+sys process:   {:.3} s (writer thread {:.3} s, reader+monitor {:.3} s)",
        total_cpu.as_secs_f64(),
        writer_cpu.as_secs_f64(),
        total_cpu.saturating_sub(writer_cpu).as_secs_f64()
    );
    println!("peak RSS:               {} KiB", me.ru_maxrss);
    Ok(())
}
