//! The journald source (`plugin: journald`): follows the systemd journal files directly,
//! in pure Rust (no libsystemd), through the `sdjournal` reader (the README's journald dependency notes say why).
//!
//! How it follows: it opens the journal directory, reads every entry after its position
//! (the first time: from the lookback cutoff, found by seeking the entry arrays by time,
//! not by parsing everything), then sleeps in `poll(2)` on an inotify watch of the
//! directory (journald touches the file with `ftruncate` after each batch of writes, which
//! inotify reports as IN_MODIFY) next to the stop signal, with a slow safety re-check.
//! Each wakeup reopens the directory, so rotated, new and vacuumed files are picked up.
//!
//! The position is the last entry's realtime timestamp plus the seqnums already delivered
//! at that timestamp, which survives rotation (an archived file keeps its entries'
//! seqnums and timestamps) and vacuuming (deleted files are older than the position).

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use sdjournal::{EntryRef, Journal, JournalConfig, SdJournalError};

use crate::config::{DEFAULT_JOURNAL_PATH, FALLBACK_JOURNAL_PATH, MonitorConfig};
use crate::source::{LineSink, LogSource, SourceError};
use crate::types::LogLine;

/// How long the follower sleeps without an inotify event before it re-checks anyway
/// (inotify can miss writes, e.g. on some overlay or network file systems).
pub const SAFETY_RECHECK: Duration = Duration::from_secs(5);

/// How long to wait between looks for a journal directory that does not exist yet.
/// The wait is on inotify of the nearest existing parent too, so this is only a backstop.
pub const MISSING_DIR_RECHECK: Duration = Duration::from_secs(10);

/// Journal fields kept in [`LogLine::fields`] (when present).
pub const KEPT_FIELDS: &[&str] = &["SYSLOG_IDENTIFIER", "_PID", "_TRANSPORT"];

/// Errors of the journal reader.
#[derive(Debug, thiserror::Error)]
pub enum JournaldError {
    /// The path holds no journal file.
    #[error("{path}: no journal files found")]
    NoJournal {
        /// The directory or file.
        path: PathBuf,
    },
    /// The journal could not be opened or read.
    #[error("{path}: {source}")]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// What sdjournal reported.
        source: SdJournalError,
    },
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One journal entry, as the dry-run helper needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// `__REALTIME_TIMESTAMP`: when journald received the entry.
    pub realtime: Timestamp,
    /// `SYSLOG_IDENTIFIER` (`kernel` for kernel lines).
    pub identifier: Option<String>,
    /// `_TRANSPORT` (`kernel`, `journal`, `syslog`, `stdout`, ...).
    pub transport: Option<String>,
    /// `_PID` of the writer, when known.
    pub pid: Option<String>,
    /// `MESSAGE` (lossily decoded as UTF-8; absent: empty).
    pub message: String,
    /// The entry's sequence number in its journal.
    pub seqnum: u64,
}

impl JournalEntry {
    /// True for kernel lines: `_TRANSPORT=kernel` or `SYSLOG_IDENTIFIER=kernel`.
    pub fn is_kernel(&self) -> bool {
        self.transport.as_deref() == Some("kernel") || self.identifier.as_deref() == Some("kernel")
    }

    fn from_ref(e: &EntryRef) -> JournalEntry {
        JournalEntry {
            realtime: usec_to_ts(e.realtime_usec()),
            identifier: field(e, "SYSLOG_IDENTIFIER"),
            transport: field(e, "_TRANSPORT"),
            pid: field(e, "_PID"),
            message: field(e, "MESSAGE").unwrap_or_default(),
            seqnum: e.seqnum(),
        }
    }
}

fn field(e: &EntryRef, name: &str) -> Option<String> {
    e.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn usec_to_ts(usec: u64) -> Timestamp {
    i64::try_from(usec)
        .ok()
        .and_then(|u| Timestamp::from_microsecond(u).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn ts_to_usec(ts: Timestamp) -> u64 {
    u64::try_from(ts.as_microsecond()).unwrap_or(0)
}

fn reader_config() -> JournalConfig {
    JournalConfig {
        // journald itself writes at most 768 KiB per field by default (LineMax etc.), and
        // a rule never needs more; a larger field is an error for that entry only.
        max_decompressed_bytes: 4 * 1024 * 1024,
        ..JournalConfig::default()
    }
}

fn open_dir(dir: &Path) -> Result<Journal, JournaldError> {
    Journal::open_dir_with_config(dir, reader_config()).map_err(|e| match e {
        SdJournalError::NotFound => JournaldError::NoJournal {
            path: dir.to_path_buf(),
        },
        source => JournaldError::Read {
            path: dir.to_path_buf(),
            source,
        },
    })
}

/// Reads every entry of a `.journal` file or of a directory of them (also its machine-id
/// subdirectories), in time order. For the dry-run helper and captured journals.
///
/// A single file is read through a private temporary directory holding a hard link (or,
/// across file systems, a copy) of it, because the reader opens directories.
pub fn read_journal(
    path: &Path,
) -> Result<impl Iterator<Item = JournalEntry> + use<>, JournaldError> {
    let io = |source| JournaldError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mut _tmp: Option<TempDir> = None;
    let dir = if meta.is_dir() {
        path.to_path_buf()
    } else {
        let t = TempDir::new().map_err(io)?;
        let name = match path.extension().and_then(|e| e.to_str()) {
            Some("journal~") => "captured.journal~",
            _ => "captured.journal",
        };
        let dst = t.0.join(name);
        if std::fs::hard_link(path, &dst).is_err() {
            std::fs::copy(path, &dst).map_err(io)?;
        }
        let d = t.0.clone();
        _tmp = Some(t);
        d
    };
    let mut config = reader_config();
    config.include_journal_tilde = true;
    let journal = Journal::open_dir_with_config(&dir, config).map_err(|e| match e {
        SdJournalError::NotFound => JournaldError::NoJournal {
            path: path.to_path_buf(),
        },
        source => JournaldError::Read {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let q = journal.query();
    let iter = q.iter().map_err(|source| JournaldError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // The files are open (and mapped or read through their fds), so the temporary
    // directory can go now; keep the journal alive inside the iterator.
    drop(_tmp);
    Ok(iter.filter_map(move |r| {
        let _keep = &journal;
        r.ok().map(|e| JournalEntry::from_ref(&e))
    }))
}

/// A temporary directory removed on drop (read_journal's single-file case).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let base = std::env::temp_dir();
        for _ in 0..16 {
            let p = base.join(format!(
                "npd-journal-{}-{}",
                std::process::id(),
                fastrand::u64(..)
            ));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("cannot create a temporary directory"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where the follower is in the journal: the last delivered entry's realtime timestamp
/// and the seqnums delivered at exactly that timestamp (so entries sharing a timestamp
/// are neither lost nor repeated).
#[derive(Debug, Clone, Default)]
struct Position {
    realtime: u64,
    seqnums_at_realtime: HashSet<(u64, [u8; 16])>,
}

impl Position {
    fn is_new(&self, realtime: u64, seqnum: u64, boot: [u8; 16]) -> bool {
        realtime > self.realtime
            || (realtime == self.realtime && !self.seqnums_at_realtime.contains(&(seqnum, boot)))
    }

    fn advance(&mut self, realtime: u64, seqnum: u64, boot: [u8; 16]) {
        if realtime > self.realtime {
            self.realtime = realtime;
            self.seqnums_at_realtime.clear();
        }
        // Bounded: only entries with one identical microsecond timestamp are kept.
        self.seqnums_at_realtime.insert((seqnum, boot));
    }
}

/// The journald source: follows the journal under `logPath`, optionally only the entries
/// whose `SYSLOG_IDENTIFIER` is `pluginConfig.source`.
#[derive(Debug, Clone)]
pub struct JournaldSource {
    path: PathBuf,
    fallback: Option<PathBuf>,
    identifier: Option<String>,
}

impl JournaldSource {
    /// The source for a monitor config: `logPath` (default /var/log/journal, falling back
    /// to /run/log/journal when that is missing or holds no journal) and
    /// `pluginConfig.source`.
    pub fn new(config: &MonitorConfig) -> JournaldSource {
        let path = if config.log_path.is_empty() {
            DEFAULT_JOURNAL_PATH.to_string()
        } else {
            config.log_path.clone()
        };
        let identifier = config
            .plugin_config
            .get("source")
            .filter(|s| !s.is_empty())
            .cloned();
        let fallback = (path == DEFAULT_JOURNAL_PATH).then(|| PathBuf::from(FALLBACK_JOURNAL_PATH));
        JournaldSource {
            path: PathBuf::from(path),
            fallback,
            identifier,
        }
    }

    /// A source on an explicit directory (no fallback), for tests and tools.
    pub fn with_path(path: impl Into<PathBuf>, identifier: Option<String>) -> JournaldSource {
        JournaldSource {
            path: path.into(),
            fallback: None,
            identifier,
        }
    }

    /// The directory to read now: the configured one when it holds a journal, else the
    /// fallback when that does, else `None`.
    fn pick_dir(&self) -> Option<PathBuf> {
        if has_journal(&self.path) {
            return Some(self.path.clone());
        }
        match &self.fallback {
            Some(f) if has_journal(f) => Some(f.clone()),
            _ => None,
        }
    }

    fn to_line(&self, e: &EntryRef) -> LogLine {
        let message = e
            .get("MESSAGE")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let mut fields = Vec::new();
        for name in KEPT_FIELDS {
            if let Some(v) = e.get(name) {
                fields.push(((*name).to_string(), String::from_utf8_lossy(v).into_owned()));
            }
        }
        LogLine {
            timestamp: usec_to_ts(e.realtime_usec()),
            message,
            fields,
        }
    }

    /// Reads every entry after `pos` (or from `since` the first time) and delivers it.
    /// Returns Ok(false) when the sink wants to stop.
    fn drain(
        &self,
        dir: &Path,
        pos: &mut Option<Position>,
        since: u64,
        sink: &LineSink,
    ) -> Result<bool, JournaldError> {
        let journal = open_dir(dir)?;
        let mut q = journal.query();
        if let Some(id) = &self.identifier {
            q.match_exact("SYSLOG_IDENTIFIER", id.as_bytes());
        }
        let start = pos.as_ref().map_or(since, |p| p.realtime);
        q.since_realtime(start);
        let iter = q.iter().map_err(|source| JournaldError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = pos.get_or_insert_with(|| Position {
            realtime: since,
            seqnums_at_realtime: HashSet::new(),
        });
        for (n, r) in iter.enumerate() {
            if n % 1024 == 1023 {
                // Entries are progress even when none is handed over (a long lookback
                // of another identifier's entries is not a stall).
                sink.stats.touch();
            }
            let e = match r {
                Ok(e) => e,
                Err(_) => {
                    // A damaged or half-written entry: count it and go on (journalctl
                    // does the same); a flood of them is visible in lines_unparsed.
                    sink.stats
                        .lines_unparsed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
            };
            let (rt, seq, boot) = (e.realtime_usec(), e.seqnum(), e.boot_id());
            if !p.is_new(rt, seq, boot) {
                continue;
            }
            p.advance(rt, seq, boot);
            if sink.filter.too_old(usec_to_ts(rt)) {
                // Cheap path: skip before decoding MESSAGE.
                sink.stats
                    .lines_skipped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            if !sink.send(self.to_line(&e)) {
                return Ok(false);
            }
        }
        // A successful look at the journal counts as a read even when no entry matched:
        // a rarely logging identifier is not a stalled source.
        sink.stats.touch();
        Ok(true)
    }
}

/// True when `dir` (or a machine-id subdirectory of it) holds a `.journal` file.
pub fn has_journal(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".journal") {
            return true;
        }
        if is_machine_dir(&name)
            && let Ok(sub) = std::fs::read_dir(&p)
            && sub
                .flatten()
                .any(|s| s.file_name().to_string_lossy().ends_with(".journal"))
        {
            return true;
        }
    }
    false
}

fn is_machine_dir(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An inotify instance watching a journal directory and its machine-id subdirectories.
struct DirWatch {
    fd: OwnedFd,
}

const WATCH_MASK: u32 = libc::IN_MODIFY
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ATTRIB;

const PARENT_MASK: u32 =
    libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF;

impl DirWatch {
    fn new() -> std::io::Result<DirWatch> {
        // SAFETY: no pointer arguments; the result is checked.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh fd owned by nobody else.
        Ok(DirWatch {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches only for entries appearing in `path` (a parent of a missing journal
    /// directory such as /var/log, whose other files change all the time).
    fn add_parent(&self, path: &Path) -> bool {
        self.add_mask(path, PARENT_MASK)
    }

    /// Adds (or refreshes) a watch; adding the same path twice is harmless.
    fn add(&self, path: &Path) -> bool {
        self.add_mask(path, WATCH_MASK)
    }

    fn add_mask(&self, path: &Path, mask: u32) -> bool {
        let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: a valid NUL-terminated path and our own inotify fd.
        unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) >= 0 }
    }

    /// Watches `dir` and its machine-id subdirectories.
    fn watch_tree(&self, dir: &Path) {
        self.add(dir);
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if is_machine_dir(&e.file_name().to_string_lossy()) {
                    self.add(&e.path());
                }
            }
        }
    }

    /// Throws away queued events (we reread the directory anyway).
    fn drain(&self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a valid buffer of the given length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
        }
    }

    /// Waits for an event, the stop signal or the timeout. True when stopped.
    fn wait(&self, sink: &LineSink, timeout: Duration) -> bool {
        // Hand over what is queued before blocking, so a quiet journal adds no latency.
        sink.flush();
        let mut fds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sink.stop.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: two valid pollfds.
        sink.idle(|| unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) });
        self.drain();
        sink.stop.is_set()
    }
}

/// The nearest existing ancestor of `p` (to watch while `p` does not exist).
fn existing_ancestor(p: &Path) -> Option<PathBuf> {
    p.ancestors().find(|a| a.is_dir()).map(Path::to_path_buf)
}

impl LogSource for JournaldSource {
    fn name(&self) -> String {
        format!("journald:{}", self.path.display())
    }

    fn run(self: Box<Self>, sink: LineSink) -> Result<(), SourceError> {
        let since = sink.filter.not_before.map_or(0, ts_to_usec);
        let mut pos: Option<Position> = None;
        let mut warned_missing = false;
        let mut current: Option<PathBuf> = None;
        let mut failures: u32 = 0;
        loop {
            if sink.stop.is_set() {
                return Ok(());
            }
            let watch = match DirWatch::new() {
                Ok(w) => w,
                Err(e) => {
                    // Without inotify we still follow, by the safety re-check alone.
                    sink.stats
                        .set_dead(Some(format!("inotify unavailable: {e}; polling")));
                    return self.run_polling(sink, since);
                }
            };
            let Some(dir) = self.pick_dir() else {
                let reason = format!(
                    "waiting for journal directory {}{}",
                    self.path.display(),
                    self.fallback
                        .as_ref()
                        .map(|f| format!(" (or {})", f.display()))
                        .unwrap_or_default()
                );
                if !warned_missing {
                    tracing::warn!(path = %self.path.display(), "{reason}; will start reading when it appears");
                    warned_missing = true;
                }
                sink.stats.set_dead(Some(reason));
                for p in std::iter::once(&self.path).chain(self.fallback.as_ref()) {
                    match existing_ancestor(p) {
                        // The directory exists but holds no journal yet.
                        Some(a) if a == *p => watch.watch_tree(p),
                        Some(a) => {
                            watch.add_parent(&a);
                        }
                        None => {}
                    }
                }
                // Re-check for journal files that appeared between pick_dir and the watch.
                if self.pick_dir().is_none() && watch.wait(&sink, MISSING_DIR_RECHECK) {
                    return Ok(());
                }
                continue;
            };
            if current.as_ref() != Some(&dir) {
                tracing::info!(path = %dir.display(), identifier = ?self.identifier, "reading journal");
                current = Some(dir.clone());
            }
            // Follow this directory until it vanishes or stops holding journals.
            loop {
                watch.watch_tree(&dir);
                match self.drain(&dir, &mut pos, since, &sink) {
                    Ok(true) => {
                        failures = 0;
                        sink.stats.set_dead(None);
                    }
                    Ok(false) => return Ok(()),
                    Err(JournaldError::NoJournal { .. }) if !has_journal(&dir) => break,
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        sink.stats
                            .restarts
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        sink.stats.set_dead(Some(e.to_string()));
                        if failures == 1 || failures.is_power_of_two() {
                            tracing::warn!(error = %e, failures, "journal read failed; retrying");
                        }
                        let backoff = Duration::from_millis(200u64 << failures.min(6));
                        if sink.sleep(backoff) {
                            return Ok(());
                        }
                        continue;
                    }
                }
                if watch.wait(&sink, SAFETY_RECHECK) {
                    return Ok(());
                }
                if !dir.is_dir() {
                    break;
                }
            }
        }
    }
}

impl JournaldSource {
    /// Fallback when inotify cannot be used: re-check every SAFETY_RECHECK / 5.
    fn run_polling(&self, sink: LineSink, since: u64) -> Result<(), SourceError> {
        let mut pos: Option<Position> = None;
        loop {
            if let Some(dir) = self.pick_dir() {
                match self.drain(&dir, &mut pos, since, &sink) {
                    Ok(true) => {}
                    Ok(false) => return Ok(()),
                    Err(e) => sink.stats.set_dead(Some(e.to_string())),
                }
            }
            if sink.sleep(SAFETY_RECHECK / 5) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_dedups_same_timestamp() {
        let mut p = Position::default();
        let b = [1u8; 16];
        assert!(p.is_new(10, 1, b));
        p.advance(10, 1, b);
        assert!(!p.is_new(10, 1, b));
        assert!(p.is_new(10, 2, b));
        p.advance(10, 2, b);
        assert!(!p.is_new(9, 3, b));
        assert!(p.is_new(11, 3, b));
        p.advance(11, 3, b);
        assert_eq!(p.seqnums_at_realtime.len(), 1);
    }

    #[test]
    fn machine_dir_names() {
        assert!(is_machine_dir("3d1219c7c4c5404aaa1f6d2a48adfda4"));
        assert!(!is_machine_dir("3d1219c7c4c5404aaa1f6d2a48adfda4.ns"));
        assert!(!is_machine_dir("x"));
    }

    #[test]
    fn falls_back_when_the_configured_directory_is_empty() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("var"), t.path().join("run"));
        let src = JournaldSource {
            path: a.clone(),
            fallback: Some(b.clone()),
            identifier: None,
        };
        assert_eq!(src.pick_dir(), None);
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(b.join("0123456789abcdef0123456789abcdef")).unwrap();
        std::fs::write(
            b.join("0123456789abcdef0123456789abcdef/system.journal"),
            b"",
        )
        .unwrap();
        assert_eq!(src.pick_dir(), Some(b.clone()));
        std::fs::write(a.join("system.journal"), b"").unwrap();
        assert_eq!(src.pick_dir(), Some(a));
    }

    #[test]
    fn config_defaults_and_identifier() {
        let mut c = crate::config::parse_monitor_config(
            Path::new("j.json"),
            r#"{"plugin":"journald","pluginConfig":{"source":"kernel"},"source":"kernel-monitor","conditions":[],"rules":[]}"#,
        )
        .unwrap()
        .config;
        let s = JournaldSource::new(&c);
        assert_eq!(s.path, Path::new(DEFAULT_JOURNAL_PATH));
        assert_eq!(
            s.fallback.as_deref(),
            Some(Path::new(FALLBACK_JOURNAL_PATH))
        );
        assert_eq!(s.identifier.as_deref(), Some("kernel"));
        c.log_path = "/custom".into();
        c.plugin_config.clear();
        let s = JournaldSource::new(&c);
        assert_eq!(s.fallback, None);
        assert_eq!(s.identifier, None);
    }

    #[test]
    fn missing_path_has_no_journal() {
        assert!(!has_journal(Path::new("/nonexistent/npd/journal")));
        let t = tempfile::tempdir().unwrap();
        assert!(!has_journal(t.path()));
        std::fs::write(t.path().join("system.journal"), b"").unwrap();
        assert!(has_journal(t.path()));
    }
}
