//! The journald source against a real systemd-journald started by the test in its own
//! journal namespace: live follow, identifier filter, rotation, vacuuming, compressed
//! entries, lookback, a missing directory, and the follow latency.

#[path = "support/journald.rs"]
mod journald_support;

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use journald_support::TestJournald;
use npd::source::journald::{JournaldSource, read_journal};
use npd::source::{LineFilter, LineSink, LogSource, SourceStats, StopSignal};
use npd::types::LogLine;

const ARRIVES: Duration = Duration::from_secs(10);

/// A running source and the lines it produced.
struct Running {
    rx: std_mpsc::Receiver<LogLine>,
    stop: Arc<StopSignal>,
    stats: Arc<SourceStats>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start(src: JournaldSource, not_before: Option<Timestamp>) -> Running {
        let stop = StopSignal::new().unwrap();
        let filter = LineFilter {
            not_before,
            skip_list: vec!["SKIPME".into()],
        };
        let (sink, mut rx) = LineSink::new(filter, stop.clone());
        let stats = sink.stats.clone();
        let (tx, srx) = std_mpsc::channel();
        std::thread::spawn(move || {
            while let Some(l) = rx.blocking_recv() {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let thread = std::thread::spawn(move || {
            Box::new(src).run(sink).expect("journald source failed");
        });
        Running {
            rx: srx,
            stop,
            stats,
            thread: Some(thread),
        }
    }

    fn next(&self, what: &str) -> LogLine {
        self.rx
            .recv_timeout(ARRIVES)
            .unwrap_or_else(|_| panic!("no line within {ARRIVES:?} (waiting for {what})"))
    }

    /// Asserts the next lines are exactly `want`, in order.
    fn expect(&self, want: &[String]) {
        for w in want {
            let l = self.next(w);
            assert_eq!(&l.message, w, "lines out of order, lost or repeated");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.set();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn msgs(prefix: &str, r: std::ops::Range<usize>) -> Vec<String> {
    r.map(|i| format!("{prefix} {i}")).collect()
}

#[test]
fn follows_filters_rotation_vacuum_and_compression() {
    let j = TestJournald::start();
    let run = Running::start(
        JournaldSource::with_path(&j.dir, Some("npd-a".into())),
        Some(Timestamp::now()),
    );
    // The source's first read happens before these (or, racing, reads them: either way
    // each line must arrive exactly once).
    let mut want = Vec::new();
    for (round, m) in msgs("a", 0..60).chunks(10).enumerate() {
        for (i, line) in m.iter().enumerate() {
            j.send("npd-a", line);
            j.send("npd-b", &format!("b {round} {i}"));
            if i == 5 {
                j.send("npd-a", "SKIPME please");
            }
        }
        want.extend_from_slice(m);
        if round % 2 == 1 {
            j.rotate();
        }
    }
    // A message well above journald's compression threshold (512 bytes).
    let big: String = (0..10_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    j.send("npd-a", &big);
    want.push(big.clone());
    j.sync();
    assert!(j.archived_files() >= 3, "rotation did not archive files");
    run.expect(&want);

    // Vacuum every archived file: nothing is repeated, new lines still arrive.
    j.vacuum_files(1);
    assert_eq!(j.archived_files(), 0, "vacuum left archived files");
    let after = msgs("after vacuum", 0..5);
    for m in &after {
        j.send("npd-a", m);
    }
    run.expect(&after);

    // Nothing else for this identifier: the next line is the marker.
    j.send("npd-a", "marker");
    run.expect(&["marker".to_string()]);
    let line = &want[0];
    assert!(!line.is_empty());
    assert_eq!(run.stats.dead(), None);
    assert!(
        run.stats
            .lines_skipped
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 6
    );

    // The files really hold zstd (the local journald's default) compressed data.
    let zstd = std::fs::read_dir(&j.dir).unwrap().flatten().any(|e| {
        let b = std::fs::read(e.path()).unwrap_or_default();
        b.len() > 16 && u32::from_le_bytes([b[12], b[13], b[14], b[15]]) & (1 << 3) != 0
    });
    assert!(
        zstd,
        "journal files are not zstd-compressed; the test proves less than it says"
    );
}

#[test]
fn fields_and_timestamps() {
    let j = TestJournald::start();
    let run = Running::start(
        JournaldSource::with_path(&j.dir, Some("npd-f".into())),
        None,
    );
    let before = Timestamp::now();
    j.send("npd-f", "with fields");
    let l = run.next("with fields");
    let after = Timestamp::now();
    assert_eq!(l.message, "with fields");
    assert!(
        l.timestamp >= before && l.timestamp <= after,
        "{} not in [{before}, {after}]",
        l.timestamp
    );
    assert!(
        l.fields
            .contains(&("SYSLOG_IDENTIFIER".into(), "npd-f".into()))
    );
    assert!(l.fields.iter().any(|(k, _)| k == "_PID"));
}

#[test]
fn lookback_skips_older_entries() {
    let j = TestJournald::start();
    for m in msgs("old", 0..20) {
        j.send("npd-l", &m);
    }
    j.sync();
    std::thread::sleep(Duration::from_millis(300));
    let cutoff = Timestamp::now();
    std::thread::sleep(Duration::from_millis(300));
    let recent = msgs("recent", 0..5);
    for m in &recent {
        j.send("npd-l", m);
    }
    j.sync();
    // Started after all were written: only the ones after the cutoff are delivered.
    let run = Running::start(
        JournaldSource::with_path(&j.dir, Some("npd-l".into())),
        Some(cutoff),
    );
    run.expect(&recent);
    j.send("npd-l", "live");
    run.expect(&["live".to_string()]);
    // No filter on the identifier: every entry after the cutoff, ours among them.
    let all = Running::start(JournaldSource::with_path(&j.dir, None), Some(cutoff));
    let mut got = Vec::new();
    loop {
        let l = all.next("all entries after the cutoff, up to \"live\"");
        assert!(
            !l.message.starts_with("old "),
            "lookback let {:?} through",
            l.message
        );
        if l.message == "live" {
            break;
        }
        got.push(l.message);
    }
    for m in &recent {
        assert!(
            got.contains(m),
            "{m:?} missing without the identifier filter"
        );
    }
}

#[test]
fn missing_directory_is_waited_for() {
    let j = TestJournald::start();
    j.send("npd-m", "copied entry");
    j.sync();
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("not").join("yet");
    let run = Running::start(
        JournaldSource::with_path(&missing, Some("npd-m".into())),
        None,
    );
    let deadline = Instant::now() + ARRIVES;
    while run.stats.dead().is_none() {
        assert!(Instant::now() < deadline, "no waiting reason reported");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        run.stats.dead().unwrap().contains("waiting"),
        "{:?}",
        run.stats.dead()
    );
    // The directory appears with a journal in it: the source starts reading.
    std::fs::create_dir_all(&missing).unwrap();
    std::fs::copy(j.dir.join("system.journal"), missing.join("system.journal")).unwrap();
    run.expect(&["copied entry".to_string()]);
    let deadline = Instant::now() + ARRIVES;
    while run.stats.dead().is_some() {
        assert!(
            Instant::now() < deadline,
            "reason not cleared: {:?}",
            run.stats.dead()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn read_journal_reads_directories_and_files() {
    let j = TestJournald::start();
    j.send("npd-r", "first");
    j.rotate();
    j.send("npd-r", "second");
    j.sync();
    let all: Vec<_> = read_journal(&j.dir).unwrap().collect();
    let ours: Vec<_> = all
        .iter()
        .filter(|e| e.identifier.as_deref() == Some("npd-r"))
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(ours, ["first", "second"]);
    assert!(
        all.windows(2).all(|w| w[0].realtime <= w[1].realtime),
        "not in time order"
    );
    assert!(all.iter().all(|e| !e.is_kernel()));
    let one: Vec<_> = read_journal(&j.dir.join("system.journal"))
        .unwrap()
        .filter(|e| e.identifier.as_deref() == Some("npd-r"))
        .map(|e| e.message)
        .collect();
    assert_eq!(one, ["second"]);
    assert!(read_journal(std::path::Path::new("/nonexistent/x.journal")).is_err());
}

/// Follow latency, entry written -> line received, over 100 entries. Printed, not
/// asserted (no timed assertions); run with --nocapture to see it.
#[test]
fn follow_latency() {
    let j = TestJournald::start();
    let run = Running::start(
        JournaldSource::with_path(&j.dir, Some("npd-lat".into())),
        None,
    );
    j.send("npd-lat", "warmup");
    run.expect(&["warmup".to_string()]);
    let mut lat = Vec::new();
    for i in 0..100 {
        let m = format!("lat {i}");
        let t0 = Instant::now();
        j.send("npd-lat", &m);
        let l = run.next(&m);
        lat.push(t0.elapsed());
        assert_eq!(l.message, m);
    }
    lat.sort();
    eprintln!(
        "journald follow latency over 100 entries: min {:?} median {:?} p90 {:?} max {:?}",
        lat[0], lat[50], lat[90], lat[99]
    );
}
