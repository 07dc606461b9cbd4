//! The kmsg source against the real /dev/kmsg: records written from user space are read
//! back through `KmsgSource` and a `LineSink`. Runs as root (CI does); fails loudly
//! otherwise.

#[path = "support/kmsg.rs"]
mod kmsg_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kmsg_support::{KmsgGuard, KmsgWriter, unique_marker};
use npd::source::LineReceiver;
use npd::source::kmsg::KmsgSource;
use npd::source::{LineFilter, LineSink, LogSource, SourceStats, StopSignal};
use npd::types::LogLine;

/// Generous bound for "arrives within" checks (not a speed assertion).
const ARRIVES_WITHIN: Duration = Duration::from_secs(30);

struct Running {
    stop: Arc<StopSignal>,
    rx: Option<LineReceiver>,
    stats: Arc<SourceStats>,
    done: std::sync::mpsc::Receiver<bool>,
    rt: tokio::runtime::Runtime,
}

fn start(source: KmsgSource, filter: LineFilter) -> Running {
    let stop = StopSignal::new().unwrap();
    let (sink, rx) = LineSink::new(filter, stop.clone());
    let stats = sink.stats.clone();
    let (tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = Box::new(source).run(sink);
        let _ = tx.send(r.is_ok());
    });
    Running {
        stop,
        rx: Some(rx),
        stats,
        done,
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap(),
    }
}

fn new_only() -> LineFilter {
    LineFilter {
        not_before: Some(Timestamp::now()),
        skip_list: Vec::new(),
    }
}

impl Running {
    /// Receives lines until one contains `end`; returns the lines containing `marker`.
    fn collect_until(&mut self, marker: &str, end: &str) -> Vec<LogLine> {
        let rx = self.rx.as_mut().unwrap();
        let mut got = Vec::new();
        loop {
            let line = self
                .rt
                .block_on(async { tokio::time::timeout(ARRIVES_WITHIN, rx.recv()).await })
                .unwrap_or_else(|_| {
                    panic!(
                        "no line containing {end:?} within {ARRIVES_WITHIN:?}; got {} of ours",
                        got.len()
                    )
                })
                .expect("source ended unexpectedly");
            let is_end = line.message.contains(end);
            if line.message.contains(marker) {
                got.push(line);
            }
            if is_end {
                return got;
            }
        }
    }

    /// Stops the source and checks that `run` returns Ok soon.
    fn stop(mut self) {
        self.stop.set();
        // A reader blocked on a full channel is released by dropping the receiver.
        drop(self.rx.take());
        let ok = self
            .done
            .recv_timeout(ARRIVES_WITHIN)
            .expect("source did not return after stop");
        assert!(ok, "source returned an error");
    }
}

#[test]
fn delivers_written_records_with_precise_timestamps_and_no_fields() {
    let _g = KmsgGuard::acquire();
    let marker = unique_marker("deliver");
    let mut r = start(KmsgSource::new("/dev/kmsg"), new_only());
    let mut w = KmsgWriter::open();
    let written_at = Timestamp::now();
    for i in 0..50 {
        w.info(&format!("{marker} record {i} tab\there"));
    }
    let got = r.collect_until(&marker, &format!("{marker} record 49 "));
    let received_at = Timestamp::now();
    assert_eq!(got.len(), 50);
    for (i, line) in got.iter().enumerate() {
        // The kernel escapes the tab as \x09; the source decodes it.
        assert_eq!(line.message, format!("{marker} record {i} tab\there"));
        assert!(
            line.fields.is_empty(),
            "unexpected fields {:?}",
            line.fields
        );
        let early = written_at - SignedDuration::from_secs(2);
        let late = received_at + SignedDuration::from_secs(2);
        assert!(
            line.timestamp >= early && line.timestamp <= late,
            "timestamp {} not between {early} and {late}",
            line.timestamp
        );
    }
    assert!(got.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    eprintln!(
        "first record stamped {} after the write started, last {} before it was received",
        got[0].timestamp.duration_since(written_at),
        received_at.duration_since(got[49].timestamp)
    );
    assert!(r.stats.lines_read.load(Ordering::Relaxed) >= 50);
    assert!(r.stats.last_read_unix_ms.load(Ordering::Relaxed) > 0);
    assert_eq!(r.stats.restarts.load(Ordering::Relaxed), 0);
    assert_eq!(r.stats.dead(), None);
    r.stop();
}

#[test]
fn lookback_skips_older_records_and_skip_list_applies() {
    let _g = KmsgGuard::acquire();
    let marker = unique_marker("lookback");
    let mut w = KmsgWriter::open();
    w.info(&format!("{marker} old"));
    std::thread::sleep(Duration::from_secs(3));
    w.info(&format!("{marker} recent"));
    // Lookback of 1.5 s: "recent" (just written) is inside it, "old" (3 s ago) is not.
    let filter = LineFilter {
        not_before: Some(Timestamp::now() - SignedDuration::from_millis(1500)),
        skip_list: vec!["SKIPME".into()],
    };
    let mut r = start(KmsgSource::new("/dev/kmsg"), filter);
    w.info(&format!("{marker} new SKIPME"));
    w.info(&format!("{marker} new"));
    w.info(&format!("{marker} end"));
    let got: Vec<String> = r
        .collect_until(&marker, &format!("{marker} end"))
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(
        got,
        vec![
            format!("{marker} recent"),
            format!("{marker} new"),
            format!("{marker} end")
        ]
    );
    // "old" and every older record in the buffer were skipped, plus the skip-listed one.
    assert!(r.stats.lines_skipped.load(Ordering::Relaxed) >= 2);
    r.stop();
}

#[test]
fn flood_while_paused_counts_lost_records_and_delivers_the_rest_once_in_order() {
    let _g = KmsgGuard::acquire();
    let marker = unique_marker("flood");
    let mut r = start(KmsgSource::new("/dev/kmsg"), new_only());
    let mut w = KmsgWriter::open();
    // Nobody drains the channel while we write, so the reader blocks after filling it
    // (1024 lines) and the kernel overwrites what it has not read: 20,000 records of
    // ~100 bytes are far more than the 128 KiB ring holds.
    const N: usize = 20_000;
    let pad = "x".repeat(60);
    for i in 0..N {
        w.info(&format!("{marker} {i:06} {pad}"));
    }
    let got = r.collect_until(&marker, &format!("{marker} {:06} ", N - 1));
    let idx: Vec<usize> = got
        .iter()
        .map(|l| {
            let rest = &l.message[marker.len() + 1..];
            rest[..6].parse().unwrap()
        })
        .collect();
    let lost = r.stats.records_lost.load(Ordering::Relaxed);
    eprintln!("delivered {} of {N}, records_lost {lost}", idx.len());
    assert!(
        idx.windows(2).all(|w| w[0] < w[1]),
        "duplicates or reordering"
    );
    assert_eq!(*idx.last().unwrap(), N - 1);
    assert!(lost > 0, "a flood into a paused reader must lose records");
    assert!(
        lost as usize >= N - idx.len(),
        "{} of our records missing but only {lost} counted lost",
        N - idx.len()
    );
    // The records the kernel still held when the reader resumed form a contiguous tail.
    let tail = idx
        .iter()
        .rev()
        .zip((0..N).rev())
        .take_while(|(a, b)| *a == b)
        .count();
    assert!(tail >= 100, "only {tail} held records delivered at the end");
    r.stop();
}

#[test]
fn stop_returns_promptly_when_idle() {
    let _g = KmsgGuard::acquire();
    let r = start(KmsgSource::new("/dev/kmsg"), new_only());
    std::thread::sleep(Duration::from_millis(300));
    r.stop();
}

#[test]
fn missing_path_is_retried_with_backoff_until_it_appears() {
    let _g = KmsgGuard::acquire();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmsg");
    let marker = unique_marker("reopen");
    let mut r = start(KmsgSource::new(&path), new_only());
    let deadline = std::time::Instant::now() + ARRIVES_WITHIN;
    let reason = loop {
        if let Some(reason) = r.stats.dead() {
            break reason;
        }
        assert!(std::time::Instant::now() < deadline, "no dead_reason");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(reason.contains(path.to_str().unwrap()), "{reason}");
    std::os::unix::fs::symlink("/dev/kmsg", &path).unwrap();
    KmsgWriter::open().info(&format!("{marker} after reopen"));
    let got = r.collect_until(&marker, &marker);
    assert_eq!(got.len(), 1);
    assert!(r.stats.restarts.load(Ordering::Relaxed) >= 1);
    assert_eq!(r.stats.dead(), None);
    r.stop();
}

#[test]
fn stop_returns_promptly_during_backoff() {
    let _g = KmsgGuard::acquire();
    let r = start(KmsgSource::new("/nonexistent/npd-kmsg-test"), new_only());
    std::thread::sleep(Duration::from_millis(500));
    assert!(r.stats.dead().is_some());
    r.stop();
}
