//! Test harness for the filelog source: a temp directory with a log file, the source
//! running on its own thread, and helpers to wait for lines (generous timeouts).
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use npd::config::{MonitorConfig, parse_monitor_config};
use npd::source::LineReceiver;
use npd::source::filelog::FilelogSource;
use npd::source::{LineFilter, LineSink, LogSource, SourceStats, StopSignal, boot_time};
use npd::types::LogLine;

/// How long "arrives" may take before a test fails. Generous: the machine is shared.
pub const ARRIVE: Duration = Duration::from_secs(10);

/// The timestamp layout of test lines: RFC 3339 with nanoseconds.
pub const LAYOUT: &str = "2006-01-02T15:04:05.999999999Z07:00";

/// A monitor config for a file in `dir`; `extra` is spliced into the JSON object
/// (e.g. `"skipList": ["noise"],`).
pub fn config(dir: &Path, log: &Path, extra: &str) -> MonitorConfig {
    let text = format!(
        r#"{{
  "plugin": "filelog",
  "pluginConfig": {{
    "timestamp": "^(\\S+) ",
    "message": "^\\S+ (.*)$",
    "timestampFormat": "{LAYOUT}"
  }},
  "logPath": {log:?},
  "lookback": "24h",
  {extra}
  "source": "filelog-test",
  "conditions": [],
  "rules": []
}}"#
    );
    let path = dir.join("monitor.json");
    std::fs::write(&path, &text).unwrap();
    parse_monitor_config(&path, &text).unwrap().config
}

/// A log line stamped `ts` with `msg`, newline included.
pub fn line_at(ts: Timestamp, msg: &str) -> String {
    format!("{ts} {msg}\n")
}

/// A log line stamped now.
pub fn line(msg: &str) -> String {
    line_at(Timestamp::now(), msg)
}

/// Appends text to a file (creating it), flushing at once.
pub fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The source running against a temp directory.
pub struct Harness {
    /// Kept alive for the test's duration.
    pub dir: tempfile::TempDir,
    /// The followed log file.
    pub log: PathBuf,
    /// The source's counters.
    pub stats: Arc<SourceStats>,
    stop: Arc<StopSignal>,
    rx: LineReceiver,
    rt: tokio::runtime::Runtime,
    thread: Option<JoinHandle<()>>,
}

impl Harness {
    /// A temp dir with `prepare` run on the log path before the source starts.
    pub fn start(extra: &str, prepare: impl FnOnce(&Path)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        prepare(&log);
        let cfg = config(dir.path(), &log, extra);
        let source = FilelogSource::new(&cfg).unwrap();
        let stop = StopSignal::new().unwrap();
        let filter = LineFilter::live(&cfg, Timestamp::now(), boot_time());
        let (sink, rx) = LineSink::new(filter, stop.clone());
        let stats = sink.stats.clone();
        let thread = std::thread::spawn(move || {
            Box::new(source).run(sink).unwrap();
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        Harness {
            dir,
            log,
            stats,
            stop,
            rx,
            rt,
            thread: Some(thread),
        }
    }

    /// The next line, or None after `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Option<LogLine> {
        let rx = &mut self.rx;
        self.rt.block_on(async {
            tokio::time::timeout(timeout, rx.recv())
                .await
                .ok()
                .flatten()
        })
    }

    /// Exactly `n` messages, failing if they do not arrive within [`ARRIVE`].
    pub fn messages(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + ARRIVE;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Some(l) => out.push(l.message),
                None => panic!(
                    "only {} of {n} lines arrived within {ARRIVE:?}: {out:?}",
                    out.len()
                ),
            }
        }
        out
    }

    /// Asserts nothing more arrives within `d`.
    pub fn quiet(&mut self, d: Duration) {
        if let Some(l) = self.recv(d) {
            panic!("unexpected line {:?}", l.message);
        }
    }

    /// Waits until `cond` holds on the stats (polling, for setup only).
    pub fn wait_stats(&self, what: &str, cond: impl Fn(&SourceStats) -> bool) {
        let deadline = Instant::now() + ARRIVE;
        while !cond(&self.stats) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the source and waits for its thread.
    pub fn stop(&mut self) {
        self.stop.set();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.set();
        // Unblock a source waiting on a full channel.
        self.rx.close();
        if let Some(t) = self.thread.take()
            && let Err(panic) = t.join()
            && !std::thread::panicking()
        {
            // The source thread panicked (its run() failed or a bug): fail the test with
            // that panic instead of swallowing it. When the test is already failing, its
            // own panic is the one reported.
            std::panic::resume_unwind(panic);
        }
    }
}

/// Creates an empty file (truncating an existing one).
pub fn create(path: &Path) {
    File::create(path).unwrap();
}
