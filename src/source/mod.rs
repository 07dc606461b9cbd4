//! Log sources: each turns one log into a stream of [`LogLine`]s (DESIGN.md section 2).
//!
//! A source owns all blocking I/O and runs on a thread of its own (never on the async
//! runtime's workers). It pushes lines into a bounded channel through a [`LineSink`], so a
//! slow monitor slows the reader instead of growing memory. Every source applies the
//! monitor's [`LineFilter`] (lookback, delay, skipList) and keeps [`SourceStats`] that
//! /healthz and /metrics read.

pub mod capture;
pub mod filelog;
pub mod journald;
pub mod kmsg;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;

use crate::config::MonitorConfig;
use crate::types::LogLine;

/// Capacity of the channel between a source and its monitor.
pub const LINE_CHANNEL_CAPACITY: usize = 1024;

/// Counters and liveness of one source. All fields are updated lock-free on the hot path
/// except `dead_reason`, which changes only on failures.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Lines handed to the monitor.
    pub lines_read: AtomicU64,
    /// Lines dropped by lookback, delay or skipList.
    pub lines_skipped: AtomicU64,
    /// Lines that could not be parsed (filelog timestamp mismatch, malformed records).
    pub lines_unparsed: AtomicU64,
    /// Lines cut to the length limit.
    pub lines_truncated: AtomicU64,
    /// Of `lines_read`, those never handed to the monitor: the source was stopping
    /// (shutdown or reload) while the monitor's queue was full.
    pub lines_dropped: AtomicU64,
    /// kmsg records the kernel overwrote before we read them.
    pub records_lost: AtomicU64,
    /// Times the source reopened its log after an error.
    pub restarts: AtomicU64,
    /// Unix milliseconds of the last successful read (0: none yet).
    pub last_read_unix_ms: AtomicU64,
    /// Unix milliseconds when the source started.
    pub started_unix_ms: AtomicU64,
    /// Unix milliseconds when the source last stopped waiting for input and started
    /// working (reading, parsing, handing lines over); 0 while it waits. Working for
    /// long without a read or a hand-over is a stall ([`SourceStats::stalled_for`]).
    pub busy_since_unix_ms: AtomicU64,
    /// Set while the source cannot read, with the reason (shown by /healthz).
    pub dead_reason: Mutex<Option<String>>,
}

impl SourceStats {
    /// Records a successful read now.
    pub fn touch(&self) {
        self.last_read_unix_ms
            .store(unix_ms_now(), Ordering::Relaxed);
    }

    /// Marks the source failing with a reason, or healthy again with `None`.
    pub fn set_dead(&self, reason: Option<String>) {
        if let Ok(mut g) = self.dead_reason.lock() {
            *g = reason;
        }
    }

    /// The current failure, if any.
    pub fn dead(&self) -> Option<String> {
        self.dead_reason.lock().ok().and_then(|g| g.clone())
    }

    /// How long the source has been working without progress (no successful read and
    /// no batch handed over) at `now_ms`; `None` while it waits for input. A quiet log
    /// is never a stall: the source waits in `poll(2)` then.
    pub fn stalled_for(&self, now_ms: u64) -> Option<Duration> {
        let busy = self.busy_since_unix_ms.load(Ordering::Relaxed);
        if busy == 0 {
            return None;
        }
        let progress = busy.max(self.last_read_unix_ms.load(Ordering::Relaxed));
        Some(Duration::from_millis(now_ms.saturating_sub(progress)))
    }
}

/// Whether a failure reason describes waiting for a log that does not exist yet (a file
/// or journal directory not created yet) rather than a failing reader. Sources put the
/// word "waiting" in exactly those reasons; /healthz stays 200 for them because
/// restarting the agent cannot create the log.
pub fn is_waiting_reason(reason: &str) -> bool {
    reason.contains("waiting")
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Which lines a source drops before they reach the monitor.
#[derive(Debug, Clone)]
pub struct LineFilter {
    /// Lines older than this are skipped: max(boot time + delay, start - lookback).
    /// `None` keeps every line (captured logs in the dry-run).
    pub not_before: Option<Timestamp>,
    /// Lines whose message contains any of these are skipped.
    pub skip_list: Vec<String>,
}

impl LineFilter {
    /// The filter for a live source started at `now` on a machine booted at `boot`.
    pub fn live(config: &MonitorConfig, now: Timestamp, boot: Timestamp) -> LineFilter {
        let by_lookback = sub(now, config.lookback);
        let by_delay = add(boot, config.delay);
        LineFilter {
            not_before: Some(by_lookback.max(by_delay)),
            skip_list: config.skip_list.clone(),
        }
    }

    /// A filter that keeps everything but the skip list (captured logs).
    pub fn captured(config: &MonitorConfig) -> LineFilter {
        LineFilter {
            not_before: None,
            skip_list: config.skip_list.clone(),
        }
    }

    /// True when a line with this timestamp is too old. Call it as soon as the
    /// timestamp is parsed, before the rest of the line.
    pub fn too_old(&self, ts: Timestamp) -> bool {
        self.not_before.is_some_and(|nb| ts < nb)
    }

    /// True when the message hits the skip list.
    pub fn skipped(&self, message: &str) -> bool {
        self.skip_list.iter().any(|s| message.contains(s.as_str()))
    }
}

fn sub(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|s| t.checked_sub(s).ok())
        .unwrap_or(Timestamp::MIN)
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|s| t.checked_add(s).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The wall-clock time the machine booted, to the microsecond: CLOCK_REALTIME minus
/// CLOCK_MONOTONIC (what kmsg timestamps count from). Read both clocks back to back and
/// keep the tightest of a few tries so a preemption between the reads does not skew it.
pub fn boot_time() -> Timestamp {
    let mut best: Option<(i128, i128)> = None; // (uncertainty ns, boot ns)
    for _ in 0..5 {
        let r1 = clock_ns(libc::CLOCK_REALTIME);
        let m = clock_ns(libc::CLOCK_MONOTONIC);
        let r2 = clock_ns(libc::CLOCK_REALTIME);
        let width = r2 - r1;
        let boot = (r1 + r2) / 2 - m;
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, boot));
        }
    }
    let ns = best.map_or(0, |(_, b)| b);
    Timestamp::from_nanosecond(ns).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes into it.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// A stop request that blocking readers can wait on with `poll(2)` next to their own
/// file descriptor (an eventfd), so stopping needs no periodic wakeups.
#[derive(Debug)]
pub struct StopSignal {
    fd: OwnedFd,
    set: AtomicBool,
}

impl StopSignal {
    /// Creates an unset signal.
    pub fn new() -> std::io::Result<Arc<StopSignal>> {
        // SAFETY: eventfd has no pointer arguments; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Arc::new(StopSignal {
            fd,
            set: AtomicBool::new(false),
        }))
    }

    /// Requests the stop and wakes every poller.
    pub fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our own eventfd.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Whether a stop was requested.
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// The eventfd to include in a `poll(2)` set; readable once stopped.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sleeps up to `d`, returning early (true) when stopped. For backoff waits.
    pub fn sleep(&self, d: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = d.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, ms) };
        self.is_set()
    }
}

/// Lines a source hands over at once. Sending each line alone costs a cross-thread
/// wakeup of the monitor's runtime per line (measured: a third of the daemon's CPU on a
/// busy log); batches amortise it. A batch is sent when full or when the source is about
/// to wait for more input ([`LineSink::flush`]), so a quiet log adds no latency.
pub const LINE_BATCH: usize = 64;

/// Where a source delivers its lines: a bounded channel of batches to the monitor, the
/// stats and the stop signal. At most [`LINE_CHANNEL_CAPACITY`] lines are in flight.
#[derive(Debug, Clone)]
pub struct LineSink {
    tx: mpsc::Sender<Vec<LogLine>>,
    pending: Arc<Mutex<Vec<LogLine>>>,
    /// The source's counters.
    pub stats: Arc<SourceStats>,
    /// Set when the source should return.
    pub stop: Arc<StopSignal>,
    /// The monitor's filter.
    pub filter: Arc<LineFilter>,
}

impl LineSink {
    /// Creates a sink and the receiving end of its channel.
    pub fn new(filter: LineFilter, stop: Arc<StopSignal>) -> (LineSink, LineReceiver) {
        let (tx, rx) = mpsc::channel(LINE_CHANNEL_CAPACITY / LINE_BATCH);
        let now = unix_ms_now();
        let stats = Arc::new(SourceStats {
            started_unix_ms: AtomicU64::new(now),
            busy_since_unix_ms: AtomicU64::new(now),
            ..Default::default()
        });
        (
            LineSink {
                tx,
                pending: Arc::new(Mutex::new(Vec::with_capacity(LINE_BATCH))),
                stats,
                stop,
                filter: Arc::new(filter),
            },
            LineReceiver {
                rx,
                buffered: std::collections::VecDeque::new(),
            },
        )
    }

    /// Applies the filter and queues the line, handing a full batch to the monitor
    /// (blocking while the channel is full). Returns false when the source should stop
    /// (stop requested or monitor gone). Must not be called from an async context.
    /// Call [`LineSink::flush`] before waiting for more input.
    pub fn send(&self, line: LogLine) -> bool {
        if self.filter.too_old(line.timestamp) || self.filter.skipped(&line.message) {
            self.stats.lines_skipped.fetch_add(1, Ordering::Relaxed);
            return !self.stop.is_set();
        }
        self.stats.lines_read.fetch_add(1, Ordering::Relaxed);
        if self.stop.is_set() {
            self.stats.lines_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let full = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.push(line);
            (p.len() >= LINE_BATCH)
                .then(|| std::mem::replace(&mut *p, Vec::with_capacity(LINE_BATCH)))
        };
        match full {
            Some(batch) => {
                let sent = self.tx.blocking_send(batch).is_ok();
                if sent {
                    // Handing a batch over is progress, even while a long read goes on.
                    self.stats.touch();
                }
                sent
            }
            None => !self.tx.is_closed(),
        }
    }

    /// Runs `wait` (a `poll(2)` or sleep for more input) marked as waiting, so the time
    /// spent in it never counts as a stall. Call [`LineSink::flush`] before.
    pub fn idle<R>(&self, wait: impl FnOnce() -> R) -> R {
        self.stats.busy_since_unix_ms.store(0, Ordering::Relaxed);
        let r = wait();
        self.stats
            .busy_since_unix_ms
            .store(unix_ms_now(), Ordering::Relaxed);
        r
    }

    /// Hands queued lines to the monitor now. Sources call it before they block waiting
    /// for input. Returns false when the monitor is gone.
    pub fn flush(&self) -> bool {
        let batch = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.is_empty() {
                return !self.tx.is_closed();
            }
            std::mem::take(&mut *p)
        };
        self.tx.blocking_send(batch).is_ok()
    }
}

impl LineSink {
    /// Flushes queued lines, then sleeps up to `d` (returns early, true, when stopped).
    /// For backoff waits.
    pub fn sleep(&self, d: Duration) -> bool {
        self.flush();
        self.idle(|| self.stop.sleep(d))
    }
}

impl Drop for LineSink {
    fn drop(&mut self) {
        // A source that returns hands over what it queued. Never block here: if the
        // channel is full the monitor is going away or busy; the dropped tail of a
        // stopping source is counted, not silent.
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            let n = batch.len() as u64;
            if self.tx.try_send(batch).is_err() {
                self.stats.lines_dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// The monitor's end of a [`LineSink`]: yields lines one by one from the batches.
#[derive(Debug)]
pub struct LineReceiver {
    rx: mpsc::Receiver<Vec<LogLine>>,
    buffered: std::collections::VecDeque<LogLine>,
}

impl LineReceiver {
    /// The next line; None when every sink is gone and everything was read.
    pub async fn recv(&mut self) -> Option<LogLine> {
        loop {
            if let Some(l) = self.buffered.pop_front() {
                return Some(l);
            }
            let batch = self.rx.recv().await?;
            self.buffered.extend(batch);
        }
    }

    /// Blocking [`LineReceiver::recv`], for threads outside the runtime.
    pub fn blocking_recv(&mut self) -> Option<LogLine> {
        loop {
            if let Some(l) = self.buffered.pop_front() {
                return Some(l);
            }
            let batch = self.rx.blocking_recv()?;
            self.buffered.extend(batch);
        }
    }

    /// A line if one is ready.
    pub fn try_recv(&mut self) -> Result<LogLine, mpsc::error::TryRecvError> {
        loop {
            if let Some(l) = self.buffered.pop_front() {
                return Ok(l);
            }
            let batch = self.rx.try_recv()?;
            self.buffered.extend(batch);
        }
    }

    /// Waits for at least one line, then appends up to `limit` ready lines to `out`.
    /// Returns how many were appended (0: closed).
    pub async fn recv_many(&mut self, out: &mut Vec<LogLine>, limit: usize) -> usize {
        if self.buffered.is_empty() {
            match self.rx.recv().await {
                Some(b) => self.buffered.extend(b),
                None => return 0,
            }
        }
        let mut n = 0;
        while n < limit {
            match self.buffered.pop_front() {
                Some(l) => {
                    out.push(l);
                    n += 1;
                }
                None => match self.rx.try_recv() {
                    Ok(b) => self.buffered.extend(b),
                    Err(_) => break,
                },
            }
        }
        n
    }

    /// Closes the channel: sinks' sends fail from now on.
    pub fn close(&mut self) {
        self.rx.close();
    }
}

/// Errors that stop a source for good (the daemon reports them; transient read errors
/// are retried inside the source).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The log could not be opened or read and retrying cannot help.
    #[error("{path}: {message}")]
    Fatal {
        /// The log path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// A live log source. `run` blocks until the sink's stop signal is set or the monitor
/// goes away; transient errors are retried inside with backoff and reported through
/// `sink.stats`.
pub trait LogSource: Send {
    /// A short name for logs and metrics, e.g. `kmsg:/dev/kmsg`.
    fn name(&self) -> String;
    /// Reads until stopped.
    fn run(self: Box<Self>, sink: LineSink) -> Result<(), SourceError>;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::{LINE_CHANNEL_CAPACITY, LineFilter, LineSink, SourceStats, StopSignal};
    use crate::types::LogLine;

    #[test]
    fn lines_a_stopping_source_cannot_hand_over_are_counted() {
        let filter = LineFilter {
            not_before: None,
            skip_list: Vec::new(),
        };
        let (sink, mut rx) = LineSink::new(filter, StopSignal::new().unwrap());
        let stats = sink.stats.clone();
        let line = || LogLine::new(jiff::Timestamp::UNIX_EPOCH, "x");
        // Fill the channel exactly (the monitor is not consuming), then queue 10 more.
        for _ in 0..LINE_CHANNEL_CAPACITY + 10 {
            assert!(sink.send(line()));
        }
        sink.stop.set();
        assert!(!sink.send(line()), "a stopping sink refuses lines");
        drop(sink);
        assert_eq!(stats.lines_read.load(Ordering::Relaxed), 1035);
        assert_eq!(stats.lines_dropped.load(Ordering::Relaxed), 11);
        // Everything else arrived.
        let mut got = 0;
        while rx.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, LINE_CHANNEL_CAPACITY);
    }

    #[test]
    fn stalled_only_while_working_without_progress() {
        let s = SourceStats::default();
        // Waiting for input: never stalled.
        assert_eq!(s.stalled_for(10_000), None);
        // Working since t=1s, last read at t=5s: stalled for 2s at t=7s.
        s.busy_since_unix_ms.store(1_000, Ordering::Relaxed);
        s.last_read_unix_ms.store(5_000, Ordering::Relaxed);
        assert_eq!(s.stalled_for(7_000), Some(Duration::from_secs(2)));
        // A read older than the start of the work does not count against it.
        s.busy_since_unix_ms.store(6_000, Ordering::Relaxed);
        assert_eq!(s.stalled_for(7_000), Some(Duration::from_secs(1)));
    }
}
