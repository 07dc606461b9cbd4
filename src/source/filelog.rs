//! The `filelog` source: follows a text log file like `tail -F` and turns each line into
//! a [`LogLine`] with upstream's translator (`pluginConfig.timestamp` and `message`
//! regexes, `timestampFormat` as a Go time layout).
//!
//! Following: the reader waits on inotify (the file itself and its parent directory) and
//! the stop signal with `poll(2)`, so appended lines arrive within milliseconds and an
//! idle file costs nothing; a slow safety re-check runs every few seconds in case an
//! event was missed. It handles a file missing at start, rotation by rename + create
//! (the old file is read to its end before switching), copytruncate (size below the
//! read offset restarts at 0), delete and recreate, a partial last line (held until its
//! newline) and overlong lines (cut to [`MAX_LINE`] bytes and counted).

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use regex::Regex;

use super::{LineFilter, LineSink, LogSource, SourceError};
use crate::config::MonitorConfig;
use crate::gotime::{GoLayout, LayoutError};
use crate::types::LogLine;

/// Longest line handed to the monitor, in bytes. Longer lines are cut here (the rest up
/// to the newline is discarded) and counted in `lines_truncated`.
pub const MAX_LINE: usize = 64 * 1024;

/// Bytes read per `read(2)`.
const READ_CHUNK: usize = 64 * 1024;

/// Re-check the file this often even without inotify events (a missed event, a parent
/// directory that does not exist yet, a file system without inotify).
const SAFETY_RECHECK: Duration = Duration::from_secs(3);

/// At most one warning about unparsable lines per this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// A filelog monitor config that cannot work. Every variant names the config file.
#[derive(Debug, thiserror::Error)]
pub enum FilelogError {
    /// A required pluginConfig key is missing or empty.
    #[error("{path}: missing required key pluginConfig.{key} for the filelog plugin")]
    MissingKey {
        /// The config file.
        path: PathBuf,
        /// The key under pluginConfig.
        key: &'static str,
    },
    /// A regex does not compile.
    #[error("{path}: key pluginConfig.{key}: invalid regex {value:?}: {message}")]
    Regex {
        /// The config file.
        path: PathBuf,
        /// `timestamp` or `message`.
        key: &'static str,
        /// The regex.
        value: String,
        /// The regex crate's message.
        message: String,
    },
    /// `timestampFormat` is not a supported Go layout.
    #[error("{path}: key pluginConfig.timestampFormat: {source}")]
    Layout {
        /// The config file.
        path: PathBuf,
        /// What is wrong with the layout.
        source: LayoutError,
    },
    /// `logPath` is empty.
    #[error("{path}: missing required key logPath for the filelog plugin")]
    NoLogPath {
        /// The config file.
        path: PathBuf,
    },
}

/// What the translator made of one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Translated {
    /// A line for the monitor.
    Line(LogLine),
    /// The timestamp is before the filter's cutoff; the message was not parsed.
    TooOld,
    /// The timestamp or message regex did not match, or the timestamp did not parse.
    Unparsed(String),
}

/// Upstream's filelog translator: the timestamp regex's last capture group (or the whole
/// match when it has none) is parsed with the Go layout; the message regex's last
/// capture group is the message.
#[derive(Debug, Clone)]
pub struct Translator {
    timestamp: GroupExtractor,
    message: GroupExtractor,
    layout: GoLayout,
    tz: TimeZone,
}

impl Translator {
    /// Builds the translator from a monitor config's pluginConfig, in the local zone.
    pub fn new(config: &MonitorConfig) -> Result<Translator, FilelogError> {
        let path = &config.path;
        let get = |key: &'static str| -> Result<&String, FilelogError> {
            config
                .plugin_config
                .get(key)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| FilelogError::MissingKey {
                    path: path.clone(),
                    key,
                })
        };
        let regex = |key: &'static str| -> Result<Regex, FilelogError> {
            let value = get(key)?;
            // The rules' dialect (octal escapes, Go-only syntax rejected), as the loader.
            crate::engine::pattern::compile_plain(value).map_err(|e| FilelogError::Regex {
                path: path.clone(),
                key,
                value: value.clone(),
                message: e.detail().to_string(),
            })
        };
        let timestamp = GroupExtractor::new(regex("timestamp")?);
        let message = GroupExtractor::new(regex("message")?);
        let layout =
            GoLayout::new(get("timestampFormat")?).map_err(|source| FilelogError::Layout {
                path: path.clone(),
                source,
            })?;
        Ok(Translator {
            timestamp,
            message,
            layout,
            tz: TimeZone::system(),
        })
    }

    /// Uses `tz` instead of the system zone (tests).
    pub fn with_time_zone(mut self, tz: TimeZone) -> Translator {
        self.tz = tz;
        self
    }

    /// Translates one line (without its newline). The timestamp is parsed first and
    /// checked against `filter` before the message regex runs, so lines skipped by
    /// lookback cost only the timestamp.
    pub fn translate(&self, line: &str, now: Timestamp, filter: Option<&LineFilter>) -> Translated {
        self.translate_cached(line, now, filter, &mut TimestampCache::default())
    }

    /// [`Translator::translate`] that reuses the previous line's parsed timestamp when the
    /// timestamp text and `now` are the same (a busy syslog file has hundreds of lines per
    /// second of timestamp text; the layout parse and zone lookup were a sixth of the
    /// daemon's CPU on such a file).
    pub fn translate_cached(
        &self,
        line: &str,
        now: Timestamp,
        filter: Option<&LineFilter>,
        cache: &mut TimestampCache,
    ) -> Translated {
        let Some(text) = self.timestamp.extract(line) else {
            return Translated::Unparsed(format!(
                "no timestamp matching {:?}",
                self.timestamp.as_str()
            ));
        };
        let ts = match cache.get(text, now) {
            Some(ts) => ts,
            None => match self.layout.parse(text, now, &self.tz) {
                Ok(ts) => {
                    cache.put(text, now, ts);
                    ts
                }
                Err(e) => return Translated::Unparsed(e.to_string()),
            },
        };
        if filter.is_some_and(|f| f.too_old(ts)) {
            return Translated::TooOld;
        }
        let Some(message) = self.message.extract(line) else {
            return Translated::Unparsed(format!(
                "no message matching {:?}",
                self.message.as_str()
            ));
        };
        Translated::Line(LogLine::new(ts, message))
    }
}

/// The last successfully parsed timestamp text, the `now` it was parsed against (a
/// layout without a year takes the year from it) and the result.
#[derive(Debug, Default)]
pub struct TimestampCache {
    text: String,
    now: Option<Timestamp>,
    parsed: Option<Timestamp>,
}

impl TimestampCache {
    fn get(&self, text: &str, now: Timestamp) -> Option<Timestamp> {
        (self.now == Some(now) && self.text == text)
            .then_some(self.parsed)
            .flatten()
    }

    fn put(&mut self, text: &str, now: Timestamp, parsed: Timestamp) {
        self.text.clear();
        self.text.push_str(text);
        self.now = Some(now);
        self.parsed = Some(parsed);
    }
}

/// How the last capture group of a translator regex is extracted. Captures are the
/// expensive part of matching (a backtracking pass after two DFA passes); the shapes
/// people actually write are answered with a plain DFA `find`:
#[derive(Debug, Clone)]
enum GroupExtractor {
    /// Exactly `^.{N}` (upstream's syslog timestamp regex): the first N characters when
    /// none of them is a newline, found without running a regex.
    FirstChars { original: Regex, count: usize },
    /// No capture group: the whole match.
    WholeMatch(Regex),
    /// The pattern is `P(.*)`: on a line without a newline, the group is everything
    /// after the leftmost-first match of `P` alone, because `.*` always matches the rest
    /// of the line and cannot change which match of `P` comes first. Only the end of
    /// that match is needed, which one forward DFA scan gives (`search_half`), without
    /// the reverse scan a full `find` runs to locate the start.
    RestAfter {
        original: Regex,
        prefix: regex_automata::meta::Regex,
    },
    /// Anything else: real captures.
    Captures(Regex),
}

impl GroupExtractor {
    fn new(re: Regex) -> GroupExtractor {
        let p = re.as_str();
        if let Some(count) = p
            .strip_prefix("^.{")
            .and_then(|r| r.strip_suffix('}'))
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
        {
            return GroupExtractor::FirstChars {
                original: re,
                count,
            };
        }
        if re.captures_len() == 1 {
            return GroupExtractor::WholeMatch(re);
        }
        // Conservative shape check: ends with an unescaped `(.*)`, no flag groups (a
        // `(?U)` would make `.*` lazy), no top-level alternation in the prefix.
        let plain_flags = p
            .match_indices("(?")
            .all(|(i, _)| p[i + 2..].starts_with(':'));
        if let Some(prefix) = p.strip_suffix("(.*)")
            && plain_flags
            && !prefix.ends_with('\\')
            && crate::engine::pattern::analyse(prefix).is_ok_and(|a| !a.top_level_alternation)
            && let Ok(prefix_re) = regex_automata::meta::Builder::new()
                .syntax(regex_automata::util::syntax::Config::new().octal(true))
                .build(prefix)
        {
            return GroupExtractor::RestAfter {
                original: re,
                prefix: prefix_re,
            };
        }
        GroupExtractor::Captures(re)
    }

    fn as_str(&self) -> &str {
        match self {
            GroupExtractor::WholeMatch(r) | GroupExtractor::Captures(r) => r.as_str(),
            GroupExtractor::RestAfter { original, .. }
            | GroupExtractor::FirstChars { original, .. } => original.as_str(),
        }
    }

    fn extract<'a>(&self, line: &'a str) -> Option<&'a str> {
        match self {
            GroupExtractor::FirstChars { count, .. } => {
                // `.` matches any character but a newline.
                let mut chars = line.char_indices();
                for _ in 0..*count {
                    match chars.next() {
                        None | Some((_, '\n')) => return None,
                        Some(_) => {}
                    }
                }
                let end = chars.next().map_or(line.len(), |(i, _)| i);
                Some(&line[..end])
            }
            GroupExtractor::WholeMatch(r) => r.find(line).map(|m| m.as_str()),
            GroupExtractor::RestAfter { original, prefix } => {
                if line.contains('\n') {
                    return last_group(original, line);
                }
                prefix
                    .search_half(&regex_automata::Input::new(line))
                    .map(|m| &line[m.offset()..])
            }
            GroupExtractor::Captures(r) => last_group(r, line),
        }
    }
}

/// Go's `FindStringSubmatch(line)[last]`: the last group ("" when it did not take
/// part), or the whole match for a regex without groups; `None` when nothing matches.
fn last_group<'a>(re: &Regex, line: &'a str) -> Option<&'a str> {
    let caps = re.captures(line)?;
    let last = caps.len() - 1;
    Some(caps.get(last).map_or("", |m| m.as_str()))
}

/// A `filelog` source following `logPath`.
#[derive(Debug)]
pub struct FilelogSource {
    path: PathBuf,
    config_path: PathBuf,
    translator: Translator,
}

impl FilelogSource {
    /// Validates the config (regexes, layout, logPath) so the daemon can reject it
    /// before running anything.
    pub fn new(config: &MonitorConfig) -> Result<FilelogSource, FilelogError> {
        if config.log_path.is_empty() {
            return Err(FilelogError::NoLogPath {
                path: config.path.clone(),
            });
        }
        Ok(FilelogSource {
            path: PathBuf::from(&config.log_path),
            config_path: config.path.clone(),
            translator: Translator::new(config)?,
        })
    }

    /// Uses `tz` instead of the system zone (tests).
    pub fn with_time_zone(mut self, tz: TimeZone) -> FilelogSource {
        self.translator = self.translator.with_time_zone(tz);
        self
    }
}

impl LogSource for FilelogSource {
    fn name(&self) -> String {
        format!("filelog:{}", self.path.display())
    }

    fn run(self: Box<Self>, sink: LineSink) -> Result<(), SourceError> {
        let mut tail = Tail::new(&self.path, &self.config_path, &self.translator, &sink)?;
        tail.run();
        Ok(())
    }
}

/// The file being read.
struct Open {
    file: File,
    dev: u64,
    ino: u64,
    offset: u64,
    /// inotify watch on the file itself (-1: none).
    wd: i32,
}

/// The `tail -F` state machine.
struct Tail<'a> {
    path: &'a Path,
    config_path: &'a Path,
    translator: &'a Translator,
    sink: &'a LineSink,
    inotify: OwnedFd,
    dir_wd: i32,
    open: Option<Open>,
    /// The unfinished last line (at most MAX_LINE bytes).
    pending: Vec<u8>,
    /// Discarding the rest of an overlong line up to its newline.
    discarding: bool,
    chunk: Vec<u8>,
    ts_cache: TimestampCache,
    warned_missing: bool,
    unparsed_since_warn: u64,
    last_warn: Option<Instant>,
    stopped: bool,
}

const FILE_MASK: u32 = libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_MOVE_SELF
    | libc::IN_DELETE_SELF
    | libc::IN_CLOSE_WRITE;
const DIR_MASK: u32 = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_MOVED_FROM | libc::IN_DELETE;

impl<'a> Tail<'a> {
    fn new(
        path: &'a Path,
        config_path: &'a Path,
        translator: &'a Translator,
        sink: &'a LineSink,
    ) -> Result<Tail<'a>, SourceError> {
        // SAFETY: no pointer arguments; the result is checked.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(SourceError::Fatal {
                path: path.display().to_string(),
                message: format!("inotify_init1: {}", std::io::Error::last_os_error()),
            });
        }
        // SAFETY: `fd` was just returned by inotify_init1 and is owned by nobody else.
        let inotify = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Tail {
            path,
            config_path,
            translator,
            sink,
            inotify,
            dir_wd: -1,
            open: None,
            pending: Vec::new(),
            discarding: false,
            chunk: vec![0; READ_CHUNK],
            ts_cache: TimestampCache::default(),
            warned_missing: false,
            unparsed_since_warn: 0,
            last_warn: None,
            stopped: false,
        })
    }

    fn add_watch(&self, path: &Path, mask: u32) -> i32 {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return -1;
        };
        // SAFETY: a valid NUL-terminated path and our own inotify fd.
        unsafe { libc::inotify_add_watch(self.inotify.as_raw_fd(), c.as_ptr(), mask) }
    }

    fn rm_watch(&self, wd: i32) {
        if wd >= 0 {
            // SAFETY: plain integer arguments on our own inotify fd.
            unsafe { libc::inotify_rm_watch(self.inotify.as_raw_fd(), wd) };
        }
    }

    fn run(&mut self) {
        while !self.stopped && !self.sink.stop.is_set() {
            if self.dir_wd < 0 {
                let parent = match self.path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                self.dir_wd = self.add_watch(parent, DIR_MASK);
            }
            if self.open.is_none() {
                self.try_open();
            }
            if self.open.is_some() {
                self.drain();
                self.check_replaced();
            }
            if self.stopped {
                break;
            }
            self.wait();
        }
    }

    /// Opens the path (from offset 0: at start the lookback filter decides what is too
    /// old; after rotation the new file is new).
    fn try_open(&mut self) {
        match File::open(self.path) {
            Ok(file) => {
                let Ok(meta) = file.metadata() else { return };
                let wd = self.add_watch(self.path, FILE_MASK);
                self.open = Some(Open {
                    file,
                    dev: meta.dev(),
                    ino: meta.ino(),
                    offset: 0,
                    wd,
                });
                if self.warned_missing {
                    tracing::info!(path = %self.path.display(), "log file appeared");
                }
                self.warned_missing = false;
                self.sink.stats.set_dead(None);
            }
            Err(e) => {
                if !self.warned_missing {
                    self.warned_missing = true;
                    let msg = if e.kind() == ErrorKind::NotFound {
                        "log file does not exist (yet); waiting for it".to_string()
                    } else {
                        format!("cannot open log file: {e}; retrying")
                    };
                    tracing::warn!(path = %self.path.display(), config = %self.config_path.display(), "{msg}");
                    self.sink
                        .stats
                        .set_dead(Some(format!("{}: {msg}", self.path.display())));
                }
            }
        }
    }

    /// Reads the open file to its end, detecting truncation first.
    fn drain(&mut self) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if let Ok(meta) = open.file.metadata()
            && meta.len() < open.offset
        {
            // copytruncate: the file was emptied under us; start over.
            if open.file.seek(SeekFrom::Start(0)).is_ok() {
                open.offset = 0;
            }
            self.pending.clear();
            self.discarding = false;
        }
        loop {
            if self.sink.stop.is_set() {
                self.stopped = true;
                return;
            }
            let Some(open) = self.open.as_mut() else {
                return;
            };
            let n = match open.file.read(&mut self.chunk) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // A read error on a regular file (EIO): reopen from the path.
                    tracing::warn!(path = %self.path.display(), "read error: {e}; reopening");
                    self.sink.stats.restarts.fetch_add(1, Ordering::Relaxed);
                    self.close();
                    return;
                }
            };
            open.offset += n as u64;
            self.sink.stats.touch();
            let now = Timestamp::now();
            let chunk = std::mem::take(&mut self.chunk);
            self.split(&chunk[..n], now);
            self.chunk = chunk;
            if self.stopped {
                return;
            }
        }
    }

    /// Splits bytes into lines, keeping an unfinished last line in `pending`.
    fn split(&mut self, mut data: &[u8], now: Timestamp) {
        while !data.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(nl) => {
                    let part = &data[..nl];
                    data = &data[nl + 1..];
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    if self.pending.is_empty() {
                        self.emit_bytes(part, now);
                    } else {
                        let room = MAX_LINE - self.pending.len();
                        let truncated = part.len() > room;
                        self.pending
                            .extend_from_slice(&part[..part.len().min(room)]);
                        let line = std::mem::take(&mut self.pending);
                        if truncated {
                            self.sink
                                .stats
                                .lines_truncated
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        self.emit_bytes(&line, now);
                        self.pending = line;
                        self.pending.clear();
                    }
                }
                None => {
                    if !self.discarding {
                        let room = MAX_LINE - self.pending.len();
                        if data.len() > room {
                            // Overlong: emit the first MAX_LINE bytes now, drop the rest
                            // up to the newline.
                            self.pending.extend_from_slice(&data[..room]);
                            let line = std::mem::take(&mut self.pending);
                            self.sink
                                .stats
                                .lines_truncated
                                .fetch_add(1, Ordering::Relaxed);
                            self.emit_bytes(&line, now);
                            self.pending = line;
                            self.pending.clear();
                            self.discarding = true;
                        } else {
                            self.pending.extend_from_slice(data);
                        }
                    }
                    data = &[];
                }
            }
            if self.stopped {
                return;
            }
        }
    }

    fn emit_bytes(&mut self, raw: &[u8], now: Timestamp) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let (line, truncated) = if raw.len() > MAX_LINE {
            (&raw[..MAX_LINE], true)
        } else {
            (raw, false)
        };
        if truncated {
            self.sink
                .stats
                .lines_truncated
                .fetch_add(1, Ordering::Relaxed);
        }
        // Validating first is several times faster than the lossy conversion's
        // byte-at-a-time scan, and almost every line is valid UTF-8.
        let text = match std::str::from_utf8(line) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(line),
        };
        match self.translator.translate_cached(
            &text,
            now,
            Some(&self.sink.filter),
            &mut self.ts_cache,
        ) {
            Translated::Line(l) => {
                if !self.sink.send(l) {
                    self.stopped = true;
                }
            }
            Translated::TooOld => {
                self.sink
                    .stats
                    .lines_skipped
                    .fetch_add(1, Ordering::Relaxed);
            }
            Translated::Unparsed(reason) => {
                self.sink
                    .stats
                    .lines_unparsed
                    .fetch_add(1, Ordering::Relaxed);
                self.unparsed_since_warn += 1;
                // Rate-limited: one warning per interval, with the count and an example.
                if self.last_warn.is_none_or(|t| t.elapsed() >= WARN_INTERVAL) {
                    tracing::warn!(
                        path = %self.path.display(),
                        config = %self.config_path.display(),
                        count = self.unparsed_since_warn,
                        "skipped unparsable log lines, e.g.: {reason}"
                    );
                    self.unparsed_since_warn = 0;
                    self.last_warn = Some(Instant::now());
                }
            }
        }
    }

    /// When the path now names another file (rename + create, delete + recreate), reads
    /// the old file to its end and switches. When the path is gone, keeps reading the
    /// old file (a writer may still hold it) until a new one appears.
    fn check_replaced(&mut self) {
        let Some(open) = self.open.as_ref() else {
            return;
        };
        let replaced = match std::fs::metadata(self.path) {
            Ok(m) => m.dev() != open.dev || m.ino() != open.ino,
            Err(_) => false,
        };
        if replaced {
            self.drain();
            if self.stopped {
                return;
            }
            // An unfinished line at the end of a rotated file is never completed there.
            self.pending.clear();
            self.discarding = false;
            self.close();
            self.try_open();
            if self.open.is_some() {
                self.drain();
            }
        }
    }

    fn close(&mut self) {
        if let Some(open) = self.open.take() {
            self.rm_watch(open.wd);
        }
    }

    /// Blocks until an inotify event, the stop signal or the safety re-check.
    fn wait(&mut self) {
        // Hand over what is queued before blocking, so a quiet log adds no latency.
        self.sink.flush();
        let mut fds = [
            libc::pollfd {
                fd: self.inotify.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.sink.stop.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = SAFETY_RECHECK.as_millis() as i32;
        // SAFETY: two valid pollfds.
        self.sink
            .idle(|| unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) });
        if fds[0].revents != 0 {
            // Drain the events: which one does not matter, the state is re-checked.
            let mut buf = [0u8; 4096];
            loop {
                // SAFETY: reads into a valid buffer of the given length from our fd.
                let n = unsafe {
                    libc::read(self.inotify.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                };
                if n <= 0 {
                    break;
                }
                // IN_IGNORED for the directory (it was removed): watch it again later.
                let mut off = 0usize;
                let n = n as usize;
                while off + std::mem::size_of::<libc::inotify_event>() <= n {
                    // SAFETY: the kernel wrote whole events; read_unaligned copes with
                    // the byte buffer's alignment.
                    let ev: libc::inotify_event = unsafe {
                        std::ptr::read_unaligned(buf[off..].as_ptr().cast::<libc::inotify_event>())
                    };
                    if ev.wd == self.dir_wd && ev.mask & libc::IN_IGNORED != 0 {
                        self.dir_wd = -1;
                    }
                    off += std::mem::size_of::<libc::inotify_event>() + ev.len as usize;
                }
            }
        }
        if fds[1].revents != 0 || self.sink.stop.is_set() {
            self.stopped = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_monitor_config;
    use std::path::Path;

    fn config(plugin_config: &str) -> MonitorConfig {
        let text = format!(
            r#"{{"plugin": "filelog", "pluginConfig": {plugin_config},
                "logPath": "/var/log/kern.log", "lookback": "5m", "source": "t",
                "conditions": [], "rules": []}}"#
        );
        parse_monitor_config(Path::new("/etc/npd/k.json"), &text)
            .unwrap()
            .config
    }

    fn kernel() -> Translator {
        // Upstream's kernel-monitor-filelog.json.
        let c = config(
            r#"{"timestamp": "^.{15}", "message": "kernel: \\[.*\\] (.*)",
                "timestampFormat": "Jan _2 15:04:05"}"#,
        );
        Translator::new(&c).unwrap().with_time_zone(TimeZone::UTC)
    }

    #[test]
    fn upstream_kernel_config() {
        let now: Timestamp = "2026-06-10T12:00:00Z".parse().unwrap();
        let got = kernel().translate(
            "Jun  9 08:01:02 node kernel: [12345.678] task foo blocked for more than 120 seconds.",
            now,
            None,
        );
        assert_eq!(
            got,
            Translated::Line(LogLine::new(
                "2026-06-09T08:01:02Z".parse().unwrap(),
                "task foo blocked for more than 120 seconds."
            ))
        );
        assert!(matches!(
            kernel().translate("Jun  9 08:01:02 node sshd: hello", now, None),
            Translated::Unparsed(_)
        ));
        assert!(matches!(
            kernel().translate("short", now, None),
            Translated::Unparsed(_)
        ));
    }

    #[test]
    fn too_old_skips_the_message_regex() {
        let now: Timestamp = "2026-06-10T12:00:00Z".parse().unwrap();
        let filter = LineFilter {
            not_before: Some("2026-06-10T11:55:00Z".parse().unwrap()),
            skip_list: vec![],
        };
        // The message regex would not match, but the line is too old first.
        assert_eq!(
            kernel().translate("Jun 10 11:00:00 node sshd: hello", now, Some(&filter)),
            Translated::TooOld
        );
    }

    #[test]
    fn fast_extractors_equal_captures() {
        let patterns = [
            r"kernel: (?:\[ *[0-9]+\.[0-9]+\] )?(.*)",
            r"kernel: \[.*\] (.*)",
            r"^.{15}",
            r"^.{0}",
            r"^.{3}x",
            r"(a)|(b)",
            r"(?U)x(.*)",
            r"a|b(.*)",
            r"k(\d+)(.*)",
        ];
        let lines = [
            "Nov 23 10:00:00 h kernel: [  12.5] divide error: 0000 [#1] SMP",
            "Nov 23 10:00:00 h kernel: plain message",
            "kernel: [x] a [y] b",
            "no match here",
            "xyz a b k12 rest",
            "",
            "short",
            "Nov 23 10:00:0",
            "Növ 23 10:00:00 ü kernel: x",
            "Nov 23\n10:00:00 kernel: x",
            "Nov 23 10:00:00\nkernel: x",
        ];
        for p in patterns {
            let re = Regex::new(p).unwrap();
            let fast = GroupExtractor::new(re.clone());
            for l in lines {
                assert_eq!(
                    fast.extract(l),
                    last_group(&re, l),
                    "pattern {p:?} line {l:?}"
                );
            }
        }
        assert!(matches!(
            GroupExtractor::new(Regex::new(patterns[0]).unwrap()),
            GroupExtractor::RestAfter { .. }
        ));
        assert!(matches!(
            GroupExtractor::new(Regex::new("^.{15}").unwrap()),
            GroupExtractor::FirstChars { count: 15, .. }
        ));
        assert!(matches!(
            GroupExtractor::new(Regex::new("^.{3}x").unwrap()),
            GroupExtractor::WholeMatch(_)
        ));
        assert!(matches!(
            GroupExtractor::new(Regex::new("(?U)x(.*)").unwrap()),
            GroupExtractor::Captures(_)
        ));
    }

    #[test]
    fn timestamp_cache_is_keyed_on_now() {
        // A layout without a year takes it from `now`: the same text read at another
        // `now` must be parsed again, not answered from the cache.
        let t = kernel();
        let line = "Dec 31 23:59:59 node kernel: [1.0] x";
        let mut cache = TimestampCache::default();
        let mut seen = Vec::new();
        for now in [
            "2025-06-01T00:00:00Z",
            "2027-01-01T00:00:10Z",
            "2025-06-01T00:00:00Z",
        ] {
            let now: Timestamp = now.parse().unwrap();
            let got = t.translate_cached(line, now, None, &mut cache);
            assert_eq!(got, t.translate(line, now, None), "now {now}");
            seen.push(got);
        }
        assert_ne!(seen[0], seen[1], "the year comes from now");
        // Same text and now: answered from the cache, same result.
        let now: Timestamp = "2025-06-01T00:00:00Z".parse().unwrap();
        let first = t.translate_cached(line, now, None, &mut cache);
        assert!(cache.get("Dec 31 23:59:59", now).is_some());
        assert_eq!(t.translate_cached(line, now, None, &mut cache), first);
    }

    #[test]
    fn last_group_semantics() {
        let c = config(
            r#"{"timestamp": "^\\S+ \\S+", "message": "(a)|(b)",
                "timestampFormat": "2006-01-02 15:04:05"}"#,
        );
        let t = Translator::new(&c).unwrap().with_time_zone(TimeZone::UTC);
        let now = Timestamp::now();
        // Timestamp regex without a group: the whole match. The message regex's last
        // group did not take part: "" (as Go).
        match t.translate("2026-01-02 03:04:05 xa", now, None) {
            Translated::Line(l) => assert_eq!(l.message, ""),
            other => panic!("{other:?}"),
        }
        match t.translate("2026-01-02 03:04:05 xb", now, None) {
            Translated::Line(l) => {
                assert_eq!(l.message, "b");
                assert_eq!(l.timestamp, "2026-01-02T03:04:05Z".parse().unwrap());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn config_errors_name_file_and_key() {
        // The loader rejects a bad layout too (config.rs); the source checks on its own.
        let mut c = config(
            r#"{"timestamp": "^.{15}", "message": "(.*)", "timestampFormat": "Jan _2 15:04:05"}"#,
        );
        c.plugin_config
            .insert("timestampFormat".into(), "Jan 002 15:04".into());
        let e = FilelogSource::new(&c).unwrap_err().to_string();
        assert!(e.contains("/etc/npd/k.json"), "{e}");
        assert!(e.contains("pluginConfig.timestampFormat"), "{e}");
        assert!(e.contains("\"002\""), "{e}");
        c.plugin_config
            .insert("timestampFormat".into(), "Jan _2 15:04:05".into());
        c.plugin_config.insert("message".into(), "(".into());
        let e = FilelogSource::new(&c).unwrap_err().to_string();
        assert!(e.contains("pluginConfig.message"), "{e}");
        c.plugin_config.remove("message");
        let e = FilelogSource::new(&c).unwrap_err().to_string();
        assert!(e.contains("pluginConfig.message"), "{e}");
    }
}
