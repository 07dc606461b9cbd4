//! Captured logs for the dry-run: recognises and parses saved kernel and system logs.
//!
//! The format is detected per line, so one input may mix formats (a syslog file with a
//! dmesg paste appended, several files of different kinds in one run):
//!
//! - raw kmsg records `6,1234,5678901,-;msg` with continuation lines starting with a space;
//! - `dmesg` output `[ 1234.567890] msg`, with or without the caller prefix `[  T817]`;
//! - `dmesg -T` output `[Mon Nov 23 07:34:35 2026] msg` (local time);
//! - syslog: BSD `Nov 23 07:34:35 host kernel: ...` (optionally with the kernel's
//!   `[ 1234.5678]` stamp after the tag) and RFC 3339 `2026-11-23T07:34:35.123456+00:00 host ...`;
//! - `journalctl` text (short, short-precise, short-iso: the same shapes as syslog), with
//!   `-x` catalog lines (`-- ...`, ` ░░ ...`) and boot markers ignored;
//! - `journalctl -o json` (one object per line) and `-o export` (KEY=value blocks
//!   separated by blank lines, binary fields with a 64-bit little-endian length);
//! - gzip-compressed files of any of these (detected by the magic bytes);
//! - binary journal files and journal directories (through the journald source's reader).
//!
//! Relative stamps (kmsg, dmesg) count from boot. A foreign capture does not say when its
//! machine booted, so [`CaptureParser::new`] takes the boot time: the dry-run passes the
//! Unix epoch for files (times then read as "seconds since boot" and are printed that way)
//! and the real boot time only for this machine's live /dev/kmsg.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use jiff::Timestamp;

use crate::source::kmsg;
use crate::types::LogLine;

/// Longest line kept; the rest of a longer line is dropped (and counted).
pub const MAX_LINE: usize = 64 * 1024;

/// Largest binary field accepted in journal export format.
const MAX_EXPORT_FIELD: u64 = 1 << 20;

/// Who wrote a line: the kernel or a program (by its syslog identifier).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// The kernel (kmsg, dmesg, syslog tag `kernel`, journal `_TRANSPORT=kernel`).
    Kernel,
    /// A program, e.g. `systemd`, `dockerd`, `containerd`, `kubelet`.
    Program(String),
}

impl Origin {
    /// `kernel` or the program identifier.
    pub fn as_str(&self) -> &str {
        match self {
            Origin::Kernel => "kernel",
            Origin::Program(p) => p,
        }
    }
}

/// The format a line was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// Raw /dev/kmsg records.
    Kmsg,
    /// `dmesg` with relative stamps.
    Dmesg,
    /// `dmesg -T` with wall-clock stamps.
    DmesgT,
    /// BSD syslog or journalctl short / short-precise.
    SyslogBsd,
    /// RFC 3339 syslog or journalctl short-iso.
    SyslogIso,
    /// `journalctl -o json`.
    JournalJson,
    /// `journalctl -o export`.
    JournalExport,
    /// Binary journal files (`.journal`) and journal directories.
    JournalFile,
}

impl Format {
    /// Short name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Kmsg => "kmsg",
            Format::Dmesg => "dmesg",
            Format::DmesgT => "dmesg-T",
            Format::SyslogBsd => "syslog",
            Format::SyslogIso => "syslog-iso",
            Format::JournalJson => "journal-json",
            Format::JournalExport => "journal-export",
            Format::JournalFile => "journal-file",
        }
    }
}

/// One parsed line of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedLine {
    /// The line as the monitors see it.
    pub line: LogLine,
    /// Kernel or program.
    pub origin: Origin,
    /// How it was recognised.
    pub format: Format,
}

/// What the parser saw, for the end-of-run report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Lines parsed, per format.
    pub parsed: BTreeMap<Format, u64>,
    /// Lines that could not be placed in any format.
    pub unplaced: u64,
    /// Up to a few examples of unplaced lines (truncated), to help a user see why.
    pub unplaced_examples: Vec<String>,
    /// Lines deliberately ignored (journal catalog text, boot markers, blank lines).
    pub ignored: u64,
    /// Lines longer than [`MAX_LINE`], cut.
    pub truncated: u64,
}

impl CaptureStats {
    /// Total lines parsed in any format.
    pub fn total_parsed(&self) -> u64 {
        self.parsed.values().sum()
    }
}

/// Errors opening or reading a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The input.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A binary journal file or directory could not be read.
    #[error(transparent)]
    Journal(#[from] crate::source::journald::JournaldError),
}

/// Magic bytes of a systemd journal file.
const JOURNAL_MAGIC: &[u8] = b"LPKSHHRH";

/// The parser state for one or more inputs (shares stats across them).
#[derive(Debug)]
pub struct CaptureParser {
    boot: Timestamp,
    now: Timestamp,
    year: i16,
    tz: jiff::tz::TimeZone,
    /// Pending kmsg record, waiting for continuation lines.
    pending_kmsg: Option<Vec<u8>>,
    /// Pending export-format entry.
    export: Option<BTreeMap<String, String>>,
    /// Counters.
    pub stats: CaptureStats,
}

impl CaptureParser {
    /// A parser whose relative (since-boot) stamps count from `boot`, and whose year-less
    /// stamps take the year of `now` (the previous year when that would be in the future).
    pub fn new(boot: Timestamp, now: Timestamp) -> CaptureParser {
        let tz = jiff::tz::TimeZone::system();
        let year = now.to_zoned(tz.clone()).year();
        CaptureParser {
            boot,
            now,
            year,
            tz,
            pending_kmsg: None,
            export: None,
            stats: CaptureStats::default(),
        }
    }

    /// Reads a whole input (a file path, `-` for stdin), gzip or plain, and calls `f`
    /// for every parsed line in order.
    pub fn read_path(
        &mut self,
        path: &Path,
        f: &mut dyn FnMut(CapturedLine),
    ) -> Result<(), CaptureError> {
        let name = path.display().to_string();
        let io = |source| CaptureError::Io {
            path: name.clone(),
            source,
        };
        if path.as_os_str() == "-" {
            let stdin = std::io::stdin();
            return self.read(stdin.lock(), f).map_err(io);
        }
        if path.is_dir() {
            return self.read_journal(path, f);
        }
        let file = std::fs::File::open(path).map_err(io)?;
        let mut r = BufReader::with_capacity(256 * 1024, file);
        let head = r.fill_buf().map_err(io)?;
        if head.starts_with(JOURNAL_MAGIC) {
            return self.read_journal(path, f);
        }
        self.read(r, f).map_err(io)
    }

    /// Journal files (`.journal`, by magic bytes) and journal directories, read with the
    /// journald source's reader.
    fn read_journal(
        &mut self,
        path: &Path,
        f: &mut dyn FnMut(CapturedLine),
    ) -> Result<(), CaptureError> {
        for e in crate::source::journald::read_journal(path)? {
            let origin = if e.is_kernel() {
                Origin::Kernel
            } else {
                Origin::Program(e.identifier.clone().unwrap_or_default())
            };
            self.emit(
                CapturedLine {
                    line: LogLine::new(e.realtime, e.message),
                    origin,
                    format: Format::JournalFile,
                },
                f,
            );
        }
        Ok(())
    }

    /// Reads a stream (gzip detected by its magic bytes).
    pub fn read<R: BufRead>(
        &mut self,
        mut r: R,
        f: &mut dyn FnMut(CapturedLine),
    ) -> std::io::Result<()> {
        let head = r.fill_buf()?;
        if head.starts_with(&[0x1f, 0x8b]) {
            let gz = flate2::bufread::MultiGzDecoder::new(r);
            return self.read_plain(BufReader::with_capacity(256 * 1024, gz), f);
        }
        self.read_plain(r, f)
    }

    fn read_plain<R: BufRead>(
        &mut self,
        mut r: R,
        f: &mut dyn FnMut(CapturedLine),
    ) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(1024);
        loop {
            buf.clear();
            let (n, cut) = read_line_capped(&mut r, &mut buf, MAX_LINE)?;
            if n == 0 {
                break;
            }
            if cut {
                self.stats.truncated += 1;
            }
            // Export format: a field name alone on a line is followed by a binary value.
            if self.export.is_some() && is_field_name(&buf) {
                let mut len = [0u8; 8];
                match r.read_exact(&mut len) {
                    Ok(()) => {}
                    // A capture cut in the middle of a field: count it, keep what we have.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        self.export = None;
                        self.unplaced(&String::from_utf8_lossy(&buf));
                        break;
                    }
                    Err(e) => return Err(e),
                }
                let len = u64::from_le_bytes(len);
                let take = len.min(MAX_EXPORT_FIELD);
                let mut data = Vec::with_capacity(take as usize);
                (&mut r).take(take).read_to_end(&mut data)?;
                // Skip what we do not keep, then the trailing newline.
                std::io::copy(&mut (&mut r).take(len - take + 1), &mut std::io::sink())?;
                let key = String::from_utf8_lossy(&buf).into_owned();
                if let Some(e) = self.export.as_mut() {
                    e.insert(key, String::from_utf8_lossy(&data).into_owned());
                }
                continue;
            }
            self.feed_line(&buf, f);
        }
        self.finish(f);
        Ok(())
    }

    /// Flushes pending multi-line state (a kmsg record, an export entry) at end of input.
    pub fn finish(&mut self, f: &mut dyn FnMut(CapturedLine)) {
        self.flush_kmsg(f);
        self.flush_export(f);
    }

    /// Feeds one line (without its newline).
    pub fn feed_line(&mut self, raw: &[u8], f: &mut dyn FnMut(CapturedLine)) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // Continuation of a kmsg record.
        if self.pending_kmsg.is_some() && raw.first() == Some(&b' ') {
            if let Some(p) = self.pending_kmsg.as_mut() {
                p.push(b'\n');
                p.extend_from_slice(raw);
            }
            return;
        }
        self.flush_kmsg(f);
        // Export blocks: KEY=value lines until a blank line.
        if let Some(eq) = field_assignment(raw) {
            let key = String::from_utf8_lossy(&raw[..eq]).into_owned();
            let value = String::from_utf8_lossy(&raw[eq + 1..]).into_owned();
            self.export
                .get_or_insert_with(BTreeMap::new)
                .insert(key, value);
            return;
        }
        if self.export.is_some() {
            self.flush_export(f);
            if raw.is_empty() {
                return;
            }
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            self.stats.ignored += 1;
            return;
        }
        if is_kmsg_header(raw) {
            self.pending_kmsg = Some(raw.to_vec());
            return;
        }
        let text = String::from_utf8_lossy(raw);
        let text = text.as_ref();
        if text.starts_with("-- ") || text.starts_with(" ░░") || text.starts_with("░░") {
            self.stats.ignored += 1;
            return;
        }
        let parsed = if text.starts_with('{') {
            self.parse_json(text)
        } else if text.starts_with('[') {
            self.parse_dmesg(text)
        } else {
            self.parse_syslog(text)
        };
        match parsed {
            Some(c) => self.emit(c, f),
            None => self.unplaced(text),
        }
    }

    fn emit(&mut self, c: CapturedLine, f: &mut dyn FnMut(CapturedLine)) {
        *self.stats.parsed.entry(c.format).or_insert(0) += 1;
        f(c);
    }

    fn unplaced(&mut self, text: &str) {
        self.stats.unplaced += 1;
        if self.stats.unplaced_examples.len() < 5 {
            self.stats
                .unplaced_examples
                .push(text.chars().take(120).collect());
        }
    }

    fn flush_kmsg(&mut self, f: &mut dyn FnMut(CapturedLine)) {
        let Some(rec) = self.pending_kmsg.take() else {
            return;
        };
        match kmsg::parse_record(&rec) {
            Ok(r) => {
                let mut line = LogLine::new(add_usec(self.boot, r.usec), r.message);
                line.fields = r.fields;
                self.emit(
                    CapturedLine {
                        line,
                        origin: Origin::Kernel,
                        format: Format::Kmsg,
                    },
                    f,
                );
            }
            Err(_) => self.unplaced(&String::from_utf8_lossy(&rec)),
        }
    }

    fn flush_export(&mut self, f: &mut dyn FnMut(CapturedLine)) {
        let Some(fields) = self.export.take() else {
            return;
        };
        match self.entry(&fields, Format::JournalExport) {
            Some(c) => self.emit(c, f),
            None => self.unplaced(&format!("{fields:?}")),
        }
    }

    /// Turns journal fields (from json, export or a journal file) into a line.
    pub fn entry(&self, fields: &BTreeMap<String, String>, format: Format) -> Option<CapturedLine> {
        let usec: i64 = fields
            .get("__REALTIME_TIMESTAMP")
            .or_else(|| fields.get("_SOURCE_REALTIME_TIMESTAMP"))?
            .parse()
            .ok()?;
        let ts = Timestamp::from_microsecond(usec).ok()?;
        let message = fields.get("MESSAGE")?.clone();
        let ident = fields
            .get("SYSLOG_IDENTIFIER")
            .or_else(|| fields.get("_COMM"));
        let origin = if fields.get("_TRANSPORT").map(String::as_str) == Some("kernel")
            || ident.map(String::as_str) == Some("kernel")
        {
            Origin::Kernel
        } else {
            Origin::Program(ident.cloned().unwrap_or_default())
        };
        Some(CapturedLine {
            line: LogLine::new(ts, message),
            origin,
            format,
        })
    }

    fn parse_json(&self, text: &str) -> Option<CapturedLine> {
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).ok()?;
        let mut fields = BTreeMap::new();
        for (k, v) in v {
            let s = match v {
                serde_json::Value::String(s) => s,
                // journalctl writes non-UTF-8 values as arrays of bytes.
                serde_json::Value::Array(a) => {
                    let bytes: Vec<u8> = a
                        .iter()
                        .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                        .collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                serde_json::Value::Number(n) => n.to_string(),
                _ => continue,
            };
            fields.insert(k, s);
        }
        self.entry(&fields, Format::JournalJson)
    }

    fn parse_dmesg(&self, text: &str) -> Option<CapturedLine> {
        let close = text.find(']')?;
        let inner = text[1..close].trim();
        let rest = &text[close + 1..];
        if let Some((secs, frac)) = split_seconds(inner) {
            let usec = secs.checked_mul(1_000_000)?.checked_add(frac)?;
            let rest = strip_caller(rest);
            let msg = rest.strip_prefix(' ').unwrap_or(rest);
            return Some(CapturedLine {
                line: LogLine::new(add_usec(self.boot, usec), msg),
                origin: Origin::Kernel,
                format: Format::Dmesg,
            });
        }
        // dmesg -T: `[Mon Nov 23 07:34:35 2026]`, in the local time zone.
        let dt = jiff::civil::DateTime::strptime("%a %b %e %H:%M:%S %Y", inner).ok()?;
        let ts = dt.to_zoned(self.tz.clone()).ok()?.timestamp();
        let rest = strip_caller(rest);
        let msg = rest.strip_prefix(' ').unwrap_or(rest);
        Some(CapturedLine {
            line: LogLine::new(ts, msg),
            origin: Origin::Kernel,
            format: Format::DmesgT,
        })
    }

    fn parse_syslog(&self, text: &str) -> Option<CapturedLine> {
        let (ts, rest, format) = if text.as_bytes().first()?.is_ascii_digit() {
            let (stamp, rest) = text.split_once(' ')?;
            (parse_iso(stamp)?, rest, Format::SyslogIso)
        } else {
            let (ts, rest) = self.parse_bsd(text)?;
            (ts, rest, Format::SyslogBsd)
        };
        // host, then `tag[pid]: message`.
        let rest = rest.trim_start();
        let (_host, rest) = rest.split_once(' ')?;
        let (tag, msg) = rest
            .split_once(": ")
            .or_else(|| rest.strip_suffix(':').map(|t| (t, "")))?;
        if tag.contains(' ') || tag.is_empty() {
            return None;
        }
        let ident = tag.split('[').next().unwrap_or(tag);
        let (origin, msg) = if ident == "kernel" {
            (Origin::Kernel, strip_kernel_stamp(msg))
        } else {
            (Origin::Program(ident.to_string()), msg)
        };
        Some(CapturedLine {
            line: LogLine::new(ts, msg),
            origin,
            format,
        })
    }

    /// `Nov 23 07:34:35[.123456] ` -> timestamp and the rest.
    fn parse_bsd<'a>(&self, text: &'a str) -> Option<(Timestamp, &'a str)> {
        let b = text.as_bytes();
        if b.len() < 16 || b[3] != b' ' || b[6] != b' ' {
            return None;
        }
        let month = match &text[..3] {
            "Jan" => 1,
            "Feb" => 2,
            "Mar" => 3,
            "Apr" => 4,
            "May" => 5,
            "Jun" => 6,
            "Jul" => 7,
            "Aug" => 8,
            "Sep" => 9,
            "Oct" => 10,
            "Nov" => 11,
            "Dec" => 12,
            _ => return None,
        };
        let day: i8 = text.get(4..6)?.trim().parse().ok()?;
        let time = text.get(7..15)?;
        let tb = time.as_bytes();
        if tb[2] != b':' || tb[5] != b':' {
            return None;
        }
        let h: i8 = time.get(0..2)?.parse().ok()?;
        let m: i8 = time.get(3..5)?.parse().ok()?;
        let s: i8 = time.get(6..8)?.parse().ok()?;
        let mut rest = &text[15..];
        let mut nanos = 0i32;
        if let Some(r) = rest.strip_prefix('.') {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            let d = &r[..digits];
            let mut v: i64 = d.get(..digits.min(9))?.parse().ok()?;
            for _ in digits.min(9)..9 {
                v *= 10;
            }
            nanos = v as i32;
            rest = &r[digits..];
        }
        let at = |year: i16| -> Option<Timestamp> {
            jiff::civil::DateTime::new(year, month, day, h, m, s, nanos)
                .ok()?
                .to_zoned(self.tz.clone())
                .ok()
                .map(|z| z.timestamp())
        };
        let mut ts = at(self.year)?;
        // A stamp more than a day in the future is from last year.
        if ts > self.now + jiff::SignedDuration::from_hours(24) {
            ts = at(self.year - 1)?;
        }
        Some((ts, rest))
    }
}

fn add_usec(boot: Timestamp, usec: u64) -> Timestamp {
    i64::try_from(usec)
        .ok()
        .and_then(|u| boot.checked_add(jiff::SignedDuration::from_micros(u)).ok())
        .unwrap_or(Timestamp::MAX)
}

/// `1234.567890` -> (1234, 567890 microseconds).
fn split_seconds(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('.')?;
    if a.is_empty() || b.is_empty() || b.len() > 9 {
        return None;
    }
    if !a.bytes().all(|c| c.is_ascii_digit()) || !b.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs = a.parse().ok()?;
    let mut frac: u64 = b.parse().ok()?;
    // Scale to microseconds.
    let len = b.len();
    if len < 6 {
        frac *= 10u64.pow((6 - len) as u32);
    } else {
        frac /= 10u64.pow((len - 6) as u32);
    }
    Some((secs, frac))
}

/// Drops the printk caller prefix `[  T817]` / `[    C0]` after the stamp.
fn strip_caller(rest: &str) -> &str {
    let t = rest.trim_start_matches(' ');
    if let Some(inner) = t.strip_prefix('[')
        && let Some(close) = inner.find(']')
    {
        let id = inner[..close].trim();
        let mut c = id.chars();
        if matches!(c.next(), Some('T' | 'C'))
            && !c.as_str().is_empty()
            && c.all(|d| d.is_ascii_digit())
        {
            return &inner[close + 1..];
        }
    }
    rest
}

/// Drops the kernel's `[ 1234.5678] ` stamp that some syslog setups keep.
fn strip_kernel_stamp(msg: &str) -> &str {
    if let Some(inner) = msg.strip_prefix('[')
        && let Some(close) = inner.find(']')
        && split_seconds(inner[..close].trim()).is_some()
    {
        let rest = strip_caller(&inner[close + 1..]);
        return rest.strip_prefix(' ').unwrap_or(rest);
    }
    msg
}

/// RFC 3339 and journalctl's short-iso (`+0000` offsets, no fraction).
fn parse_iso(stamp: &str) -> Option<Timestamp> {
    if let Ok(t) = stamp.parse::<Timestamp>() {
        return Some(t);
    }
    // `+HHMM` -> `+HH:MM`.
    let b = stamp.as_bytes();
    if b.len() > 5 {
        let cut = b.len() - 5;
        if matches!(b[cut], b'+' | b'-') && b[cut + 1..].iter().all(u8::is_ascii_digit) {
            let fixed = format!("{}{}:{}", &stamp[..cut + 3], "", &stamp[cut + 3..]);
            return fixed.parse().ok();
        }
    }
    None
}

/// `6,1234,5678901,-;` at the start of a line.
fn is_kmsg_header(raw: &[u8]) -> bool {
    let Some(semi) = raw.iter().take(64).position(|&b| b == b';') else {
        return false;
    };
    let mut parts = raw[..semi].split(|&b| b == b',');
    (0..3).all(|_| {
        parts
            .next()
            .is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
    })
}

/// Journal field names: upper case letters, digits and `_`, not starting with a digit.
fn is_field_name(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= 64
        && !b[0].is_ascii_digit()
        && b.iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// `KEY=value` with a journal field name: the position of `=`.
fn field_assignment(b: &[u8]) -> Option<usize> {
    let eq = b.iter().take(65).position(|&c| c == b'=')?;
    is_field_name(&b[..eq]).then_some(eq)
}

/// Reads one line into `buf` keeping at most `cap` bytes; returns (bytes consumed, cut).
fn read_line_capped<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<(usize, bool)> {
    let mut total = 0;
    let mut cut = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok((total, cut));
        }
        let (chunk, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        let room = cap.saturating_sub(buf.len());
        if chunk.len() > room {
            cut = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = done.unwrap_or(avail.len());
        r.consume(used);
        total += used;
        if done.is_some() {
            return Ok((total, cut));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> (Vec<CapturedLine>, CaptureStats) {
        let now: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let mut p = CaptureParser::new(Timestamp::UNIX_EPOCH, now);
        let mut out = Vec::new();
        p.read(input, &mut |c| out.push(c)).unwrap();
        (out, p.stats)
    }

    #[test]
    fn formats() {
        let input = b"6,1234,5678901,-;Out of memory: Killed process 1 (a)\n SUBSYSTEM=mem\n\
[ 1234.567890] EXT4-fs error (device sda1): x\n\
[ 1234.567890] [  T817] with caller\n\
[Mon Nov 23 07:34:35 2026] dmesg T line\n\
Nov 23 07:34:35 host kernel: [ 12.5] kernel line\n\
Nov 23 07:34:35.123456 host dockerd[12]: docker line\n\
2026-11-23T07:34:35.123456+00:00 host kernel: iso line\n\
2026-11-23T07:34:35+0000 host systemd[1]: Started x.\n\
-- Boot 1234 --\n\
 \xe2\x96\x91\xe2\x96\x91 catalog\n\
garbage\n";
        let (out, st) = parse_all(input);
        let msgs: Vec<_> = out.iter().map(|c| c.line.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "Out of memory: Killed process 1 (a)",
                "EXT4-fs error (device sda1): x",
                "with caller",
                "dmesg T line",
                "kernel line",
                "docker line",
                "iso line",
                "Started x."
            ]
        );
        assert_eq!(out[0].line.fields, vec![("SUBSYSTEM".into(), "mem".into())]);
        assert_eq!(out[5].origin, Origin::Program("dockerd".into()));
        assert_eq!(out[4].origin, Origin::Kernel);
        assert_eq!(st.unplaced, 1);
        assert_eq!(st.ignored, 2);
    }

    #[test]
    fn year_rollover() {
        let (out, _) = parse_all(b"Dec 31 23:00:00 h kernel: x\n");
        assert_eq!(
            out[0]
                .line
                .timestamp
                .to_zoned(jiff::tz::TimeZone::system())
                .year(),
            2025
        );
    }

    #[test]
    fn export_with_binary() {
        let mut input =
            b"__REALTIME_TIMESTAMP=1700000000000000\n_TRANSPORT=kernel\nMESSAGE\n".to_vec();
        input.extend_from_slice(&4u64.to_le_bytes());
        input.extend_from_slice(b"a\nb\xff\n\n__REALTIME_TIMESTAMP=1700000000000001\nSYSLOG_IDENTIFIER=kubelet\nMESSAGE=hi\n\n");
        let (out, st) = parse_all(&input);
        assert_eq!(out.len(), 2, "{st:?}");
        assert_eq!(out[0].origin, Origin::Kernel);
        assert_eq!(out[0].line.message, "a\nb\u{fffd}");
        assert_eq!(out[1].origin, Origin::Program("kubelet".into()));
    }

    #[test]
    fn export_cut_in_a_binary_field_is_not_fatal() {
        let (out, st) = parse_all(
            b"__REALTIME_TIMESTAMP=1\nMESSAGE=a\n\n__REALTIME_TIMESTAMP=2\nDATA\n\x05\x00",
        );
        assert_eq!(out.len(), 1);
        assert_eq!(st.unplaced, 1);
    }

    #[test]
    fn long_lines_are_cut() {
        let mut input = vec![b'x'; MAX_LINE * 3];
        input.extend_from_slice(b"\n[ 1.0] ok\n");
        let (out, st) = parse_all(&input);
        assert_eq!(st.truncated, 1);
        assert_eq!(out.len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            let _ = parse_all(&data);
        }

        #[test]
        fn arbitrary_lines_never_panic(lines in proptest::collection::vec("[\\[\\]0-9a-zA-Z:;,.=+ T_-]{0,60}", 0..30)) {
            let _ = parse_all(lines.join("\n").as_bytes());
        }
    }
}
