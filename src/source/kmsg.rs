//! The kernel ring buffer, `/dev/kmsg` (`plugin: kmsg`).
//!
//! Record format (Documentation/ABI/testing/dev-kmsg): one record per read,
//! `prio,seq,usec,flags[,...];message\n`, then continuation lines that start with a space
//! (` SUBSYSTEM=pci`, ` DEVICE=+pci:0000:00:1f.2`). Continuation lines become fields of
//! the line, never part of the message. Non-printable bytes arrive escaped as `\xNN`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::config::MonitorConfig;
use crate::source::{LineSink, LogSource, SourceError, boot_time};
use crate::types::LogLine;

/// One parsed kmsg record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Syslog level (0 emerg .. 7 debug).
    pub level: u8,
    /// Syslog facility (0 kernel, 1 user, ...).
    pub facility: u32,
    /// Sequence number; a gap means records were overwritten.
    pub seq: u64,
    /// Microseconds since boot (CLOCK_MONOTONIC).
    pub usec: u64,
    /// The message, `\xNN` escapes decoded.
    pub message: String,
    /// Continuation `KEY=value` fields.
    pub fields: Vec<(String, String)>,
}

/// Why a record could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsgParseError {
    /// No `;` separating the header from the message.
    #[error("no ';' after the record header")]
    NoSeparator,
    /// The header does not have `prio,seq,usec`.
    #[error("malformed record header {0:?}")]
    BadHeader(String),
}

/// The header of a record: enough to decide whether the record is wanted before decoding
/// its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KmsgHeader {
    /// Syslog priority: facility * 8 + level.
    pub prio: u32,
    /// Sequence number.
    pub seq: u64,
    /// Microseconds since boot.
    pub usec: u64,
    /// Offset of the message (just after the `;`).
    pub body_start: usize,
}

/// Follows kmsg sequence numbers: a gap is records the kernel overwrote before they were
/// read (the read that skips them reports EPIPE).
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    last: Option<u64>,
}

impl SeqTracker {
    /// Records `seq`: `Some(records lost since the previous one)`, or `None` when `seq`
    /// was already seen (re-read after a reopen).
    pub fn observe(&mut self, seq: u64) -> Option<u64> {
        let gap = match self.last {
            Some(last) if seq <= last => return None,
            Some(last) => seq - last - 1,
            None => 0,
        };
        self.last = Some(seq);
        Some(gap)
    }
}

/// Parses only the `prio,seq,usec,flags;` header of a record.
pub fn parse_header(raw: &[u8]) -> Result<KmsgHeader, KmsgParseError> {
    let semi = raw
        .iter()
        .position(|&b| b == b';')
        .ok_or(KmsgParseError::NoSeparator)?;
    let header = &raw[..semi];
    let bad = || KmsgParseError::BadHeader(String::from_utf8_lossy(header).into_owned());
    let mut parts = header.split(|&b| b == b',');
    let prio: u32 = parse_num(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
    let seq: u64 = parse_num(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
    let usec: u64 = parse_num(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
    Ok(KmsgHeader {
        prio,
        seq,
        usec,
        body_start: semi + 1,
    })
}

/// Parses one record as returned by one `read(2)` of /dev/kmsg (or one record of a saved
/// capture, continuation lines included).
pub fn parse_record(raw: &[u8]) -> Result<KmsgRecord, KmsgParseError> {
    let h = parse_header(raw)?;
    let (message, fields) = parse_body(&raw[h.body_start..]);
    Ok(KmsgRecord {
        level: (h.prio & 7) as u8,
        facility: h.prio >> 3,
        seq: h.seq,
        usec: h.usec,
        message,
        fields,
    })
}

/// Splits a record body into the message (first line) and the continuation fields
/// (following lines that start with a space).
fn parse_body(body: &[u8]) -> (String, Vec<(String, String)>) {
    let mut lines = body.split(|&b| b == b'\n');
    let message = unescape(lines.next().unwrap_or_default());
    let mut fields = Vec::new();
    for l in lines {
        let Some(rest) = l.strip_prefix(b" ") else {
            continue;
        };
        let text = unescape(rest);
        match text.split_once('=') {
            Some((k, v)) => fields.push((k.to_string(), v.to_string())),
            None => fields.push((text, String::new())),
        }
    }
    (message, fields)
}

fn parse_num<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

/// Decodes the kernel's `\xNN` escapes; invalid UTF-8 becomes U+FFFD.
pub fn unescape(b: &[u8]) -> String {
    if !b.contains(&b'\\') {
        return String::from_utf8_lossy(b).into_owned();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1] == b'x'
            && let (Some(h), Some(l)) = (hex(b[i + 2]), hex(b[i + 3]))
        {
            out.push(h << 4 | l);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

// ---- Live source ----

/// The default log path of `plugin: kmsg`.
pub const DEFAULT_KMSG_PATH: &str = "/dev/kmsg";

/// Read buffer size. The kernel returns one record per read and fails with EINVAL when
/// the buffer is smaller than the record; records (header, message and continuation
/// lines) are under 8 KiB.
const READ_BUFFER: usize = 16 * 1024;

/// First reopen delay after an error; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reopen delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Reads the live kernel ring buffer (`/dev/kmsg`), one record per `read(2)`.
///
/// Starts at the oldest record the kernel holds and lets the [`LineFilter`] (lookback,
/// delay) drop old ones after decoding only their header. Records the kernel overwrote
/// before we read them (EPIPE, or any sequence-number gap) are counted in
/// `stats.records_lost` and reading goes on with the oldest record still held. Any other
/// error reopens the device with exponential backoff (100 ms doubling to 30 s, counted in
/// `stats.restarts`, reason in `stats.dead_reason`), skipping records already delivered.
///
/// [`LineFilter`]: crate::source::LineFilter
#[derive(Debug, Clone)]
pub struct KmsgSource {
    path: PathBuf,
    boot: Option<Timestamp>,
}

impl KmsgSource {
    /// A source reading `path` (normally [`DEFAULT_KMSG_PATH`]).
    pub fn new(path: impl Into<PathBuf>) -> KmsgSource {
        KmsgSource {
            path: path.into(),
            boot: None,
        }
    }

    /// The source for a monitor config (`logPath`, default /dev/kmsg).
    pub fn from_config(config: &MonitorConfig) -> KmsgSource {
        if config.log_path.is_empty() {
            KmsgSource::new(DEFAULT_KMSG_PATH)
        } else {
            KmsgSource::new(&config.log_path)
        }
    }

    /// Uses this boot time instead of measuring it when `run` starts (so the caller can
    /// share one value with its [`LineFilter`](crate::source::LineFilter)).
    pub fn with_boot_time(mut self, boot: Timestamp) -> KmsgSource {
        self.boot = Some(boot);
        self
    }

    fn open(&self) -> std::io::Result<File> {
        // std opens with O_CLOEXEC already.
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
    }
}

/// How one open file descriptor's reading ended.
enum Ended {
    /// Stop requested or the monitor went away: return.
    Stop,
    /// A read or poll error: reopen after a backoff.
    Failed(String),
}

/// Reader state that survives reopening.
struct Reader<'a> {
    sink: &'a LineSink,
    boot: Timestamp,
    /// Sequence number of the last record handled (delivered or filtered).
    seqs: SeqTracker,
    /// Whether `dead_reason` is currently set (avoids locking on every record).
    dead: bool,
}

impl Reader<'_> {
    /// Reads records from `file` until stopped or failed.
    fn read_all(&mut self, file: &File, backoff: &mut Duration) -> Ended {
        let mut buf = vec![0u8; READ_BUFFER];
        let stats = &self.sink.stats;
        loop {
            if self.sink.stop.is_set() {
                return Ended::Stop;
            }
            let n = match (&*file).read(&mut buf) {
                Ok(0) => return Ended::Failed("unexpected end of file".into()),
                Ok(n) => n,
                Err(e) => match e.raw_os_error() {
                    // The record at our position was overwritten; the next read returns
                    // the oldest record still held and the sequence gap tells how many
                    // we lost (counted below).
                    Some(libc::EPIPE) => continue,
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => match wait_readable(file, self.sink) {
                        Ok(true) => continue,
                        Ok(false) => return Ended::Stop,
                        Err(e) => return Ended::Failed(format!("poll: {e}")),
                    },
                    _ => return Ended::Failed(format!("read: {e}")),
                },
            };
            stats.touch();
            *backoff = MIN_BACKOFF;
            if self.dead {
                stats.set_dead(None);
                self.dead = false;
            }
            if !self.handle(&buf[..n]) {
                return Ended::Stop;
            }
        }
    }

    /// Handles one raw record; false when the source should stop.
    fn handle(&mut self, raw: &[u8]) -> bool {
        let stats = &self.sink.stats;
        let Ok(h) = parse_header(raw) else {
            stats.lines_unparsed.fetch_add(1, Ordering::Relaxed);
            return true;
        };
        match self.seqs.observe(h.seq) {
            // Already handled before a reopen.
            None => return true,
            Some(0) => {}
            Some(gap) => {
                stats.records_lost.fetch_add(gap, Ordering::Relaxed);
            }
        }
        let timestamp = i64::try_from(h.usec)
            .ok()
            .and_then(|us| self.boot.checked_add(SignedDuration::from_micros(us)).ok())
            .unwrap_or(Timestamp::MAX);
        if self.sink.filter.too_old(timestamp) {
            stats.lines_skipped.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let (message, fields) = parse_body(&raw[h.body_start..]);
        self.sink.send(LogLine {
            timestamp,
            message,
            fields,
        })
    }
}

/// Waits until `file` is readable or the stop signal fires, without a timeout.
/// Ok(false) means stop.
fn wait_readable(file: &File, sink: &LineSink) -> std::io::Result<bool> {
    // Hand over what is queued before blocking, so a quiet log adds no latency.
    if !sink.flush() {
        return Ok(false);
    }
    let mut fds = [
        libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sink.stop.fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is a valid array of two pollfds that outlives the call.
        let r = sink.idle(|| unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) });
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if fds[1].revents != 0 || sink.stop.is_set() {
            return Ok(false);
        }
        // Readable, or POLLERR (records overwritten: the read reports EPIPE), or
        // POLLHUP/POLLNVAL (the read reports the error).
        return Ok(true);
    }
}

impl LogSource for KmsgSource {
    fn name(&self) -> String {
        format!("kmsg:{}", self.path.display())
    }

    fn run(self: Box<Self>, sink: LineSink) -> Result<(), SourceError> {
        let mut reader = Reader {
            sink: &sink,
            boot: self.boot.unwrap_or_else(boot_time),
            seqs: SeqTracker::default(),
            dead: false,
        };
        let mut backoff = MIN_BACKOFF;
        let mut first = true;
        loop {
            if sink.stop.is_set() {
                return Ok(());
            }
            if !first {
                sink.stats.restarts.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            let reason = match self.open() {
                Ok(file) => match reader.read_all(&file, &mut backoff) {
                    Ended::Stop => return Ok(()),
                    Ended::Failed(why) => format!("{}: {why}", self.path.display()),
                },
                Err(e) => format!("open {}: {e}", self.path.display()),
            };
            tracing::warn!(source = %self.name(), error = %reason, retry_in = ?backoff, "kmsg source failed, reopening");
            sink.stats.set_dead(Some(reason));
            reader.dead = true;
            if sink.sleep(backoff) {
                return Ok(());
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

// ---- Saved records ----

/// Why a saved record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SavedRecordError {
    /// The reader failed.
    #[error("reading saved kmsg records: {0}")]
    Io(#[from] std::io::Error),
    /// A record did not parse.
    #[error("line {line}: {error}")]
    Parse {
        /// 1-based line number where the record starts.
        line: usize,
        /// The parse error.
        error: KmsgParseError,
    },
}

/// Reads a file of saved kmsg records (`cat /dev/kmsg` output): one record per line,
/// its continuation lines right after it starting with a space. Empty lines are ignored.
pub fn read_saved_records<R: BufRead>(reader: R) -> SavedRecords<R> {
    SavedRecords {
        reader,
        line_no: 0,
        pending: None,
        buf: Vec::new(),
        done: false,
    }
}

/// Iterator returned by [`read_saved_records`].
#[derive(Debug)]
pub struct SavedRecords<R> {
    reader: R,
    line_no: usize,
    /// The record being assembled: (start line, bytes).
    pending: Option<(usize, Vec<u8>)>,
    buf: Vec<u8>,
    done: bool,
}

impl<R> SavedRecords<R> {
    fn finish(&mut self, line: usize, raw: Vec<u8>) -> Result<KmsgRecord, SavedRecordError> {
        parse_record(&raw).map_err(|error| SavedRecordError::Parse { line, error })
    }
}

impl<R: BufRead> Iterator for SavedRecords<R> {
    type Item = Result<KmsgRecord, SavedRecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                let (line, raw) = self.pending.take()?;
                return Some(self.finish(line, raw));
            }
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
            self.line_no += 1;
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            if self.buf.is_empty() {
                continue;
            }
            if self.buf[0] == b' ' {
                if let Some((_, raw)) = self.pending.as_mut() {
                    raw.push(b'\n');
                    raw.extend_from_slice(&self.buf);
                }
                // A continuation line without a record before it is ignored.
                continue;
            }
            let next = (self.line_no, std::mem::take(&mut self.buf));
            if let Some((line, raw)) = self.pending.replace(next) {
                return Some(self.finish(line, raw));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seq_tracker_counts_gaps_and_skips_repeats() {
        let mut t = super::SeqTracker::default();
        assert_eq!(t.observe(10), Some(0));
        assert_eq!(t.observe(11), Some(0));
        assert_eq!(t.observe(15), Some(3));
        assert_eq!(t.observe(15), None);
        assert_eq!(t.observe(12), None);
        assert_eq!(t.observe(16), Some(0));
    }

    use super::*;

    #[test]
    fn parses_record_with_continuation_fields() {
        let raw = b"3,1234,5678901,-;ahci 0000:00:1f.2: port 1 link down\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:1f.2\n";
        let r = parse_record(raw).unwrap();
        assert_eq!(r.level, 3);
        assert_eq!(r.facility, 0);
        assert_eq!(r.seq, 1234);
        assert_eq!(r.usec, 5_678_901);
        assert_eq!(r.message, "ahci 0000:00:1f.2: port 1 link down");
        assert_eq!(
            r.fields,
            vec![
                ("SUBSYSTEM".into(), "pci".into()),
                ("DEVICE".into(), "+pci:0000:00:1f.2".into())
            ]
        );
    }

    #[test]
    fn unescapes_and_survives_garbage() {
        let r = parse_record(b"12,7,1,c,more;tab\\x09here \\xff \\x zz\\x4").unwrap();
        assert_eq!(r.level, 4);
        assert_eq!(r.facility, 1);
        assert_eq!(r.message, "tab\there \u{fffd} \\x zz\\x4");
        assert_eq!(parse_record(b"nonsense"), Err(KmsgParseError::NoSeparator));
        assert!(matches!(
            parse_record(b"a,b;x"),
            Err(KmsgParseError::BadHeader(_))
        ));
    }

    /// Records as the kernel returns them for device drivers (captured from real
    /// machines): the continuation lines must become fields, and an end-anchored rule
    /// must still see the bare message (upstream #1086).
    #[test]
    fn captured_driver_records_keep_fields_out_of_the_message() {
        let raw: &[u8] = b"6,1187,6082183,-;usb 1-1: new high-speed USB device number 2 using xhci_hcd\n SUBSYSTEM=usb\n DEVICE=c189:1\n";
        let r = parse_record(raw).unwrap();
        assert_eq!(
            r.message,
            "usb 1-1: new high-speed USB device number 2 using xhci_hcd"
        );
        assert_eq!(
            r.fields,
            vec![
                ("SUBSYSTEM".into(), "usb".into()),
                ("DEVICE".into(), "c189:1".into())
            ]
        );
        let raw: &[u8] = b"3,2043,1234567890,-;nvme nvme0: I/O 12 QID 3 timeout, aborting\n SUBSYSTEM=nvme\n DEVICE=c241:0\n";
        let r = parse_record(raw).unwrap();
        assert_eq!((r.level, r.facility, r.seq), (3, 0, 2043));
        let end_anchored = regex::Regex::new(r"I/O \d+ QID \d+ timeout, aborting\z").unwrap();
        assert!(end_anchored.is_match(&r.message));
        // A value containing '=' and an escaped byte in a field.
        let raw: &[u8] = b"4,9,10,-;e1000e 0000:00:19.0 eth0: link up\n SUBSYSTEM=net\n DEVICE=n2\n X=a=b\\x20c\n";
        let r = parse_record(raw).unwrap();
        assert_eq!(r.fields[2], ("X".into(), "a=b c".into()));
    }

    #[test]
    fn header_only_parse_matches_full_parse() {
        let raw: &[u8] = b"30,77,123456,c;systemd[1]: Started foo.\n";
        let h = parse_header(raw).unwrap();
        assert_eq!((h.prio, h.seq, h.usec), (30, 77, 123_456));
        assert_eq!(&raw[h.body_start..h.body_start + 8], b"systemd[");
        let r = parse_record(raw).unwrap();
        assert_eq!((r.facility, r.level), (3, 6));
        assert_eq!(r.message, "systemd[1]: Started foo.");
        assert!(r.fields.is_empty());
    }

    #[test]
    fn saved_records_group_continuation_lines() {
        let text = "6,1,100,-;first\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:1f.2\n\n6,2,200,-;second\r\nnot a record\n6,3,300,-;third";
        let got: Vec<_> = read_saved_records(text.as_bytes()).collect();
        assert_eq!(got.len(), 4);
        let first = got[0].as_ref().unwrap();
        assert_eq!(first.message, "first");
        assert_eq!(first.fields.len(), 2);
        assert_eq!(got[1].as_ref().unwrap().message, "second");
        match &got[2] {
            Err(SavedRecordError::Parse { line, .. }) => assert_eq!(*line, 6),
            other => panic!("expected a parse error, got {other:?}"),
        }
        let third = got[3].as_ref().unwrap();
        assert_eq!((third.seq, third.message.as_str()), (3, "third"));
        assert_eq!(read_saved_records(&b""[..]).count(), 0);
    }

    /// After a reopen the kernel starts again at its oldest record: records already
    /// handled are skipped, and sequence gaps count as lost whether or not EPIPE was seen.
    #[test]
    fn reader_skips_already_delivered_and_counts_gaps() {
        let stop = crate::source::StopSignal::new().unwrap();
        let filter = crate::source::LineFilter {
            not_before: None,
            skip_list: Vec::new(),
        };
        let (sink, mut rx) = LineSink::new(filter, stop);
        let mut reader = Reader {
            sink: &sink,
            boot: Timestamp::UNIX_EPOCH,
            seqs: SeqTracker::default(),
            dead: false,
        };
        let rec = |seq: u64| format!("6,{seq},{},-;msg {seq}\n SUBSYSTEM=x\n", seq * 1000);
        for seq in [5, 6] {
            assert!(reader.handle(rec(seq).as_bytes()));
        }
        // Reopen: the kernel replays from seq 3.
        for seq in 3..=8 {
            assert!(reader.handle(rec(seq).as_bytes()));
        }
        // Gap 8 -> 11 without EPIPE: 2 lost.
        assert!(reader.handle(rec(11).as_bytes()));
        assert!(reader.handle(b"garbage"));
        // Lines travel in batches; the reader flushes before it waits for more input.
        assert!(sink.flush());
        let mut got = Vec::new();
        while let Ok(l) = rx.try_recv() {
            got.push(l);
        }
        let msgs: Vec<_> = got.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(msgs, ["msg 5", "msg 6", "msg 7", "msg 8", "msg 11"]);
        assert_eq!(got[0].fields, vec![("SUBSYSTEM".into(), "x".into())]);
        assert_eq!(got[0].timestamp, Timestamp::from_millisecond(5).unwrap());
        let stats = &sink.stats;
        assert_eq!(stats.records_lost.load(Ordering::Relaxed), 2);
        assert_eq!(stats.lines_unparsed.load(Ordering::Relaxed), 1);
    }

    proptest::proptest! {
        #[test]
        fn parse_record_never_panics(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_record(&raw);
            let _ = parse_header(&raw);
        }

        #[test]
        fn parse_record_never_panics_on_record_shaped_input(
            prio in 0u32..200, seq in proptest::num::u64::ANY, usec in proptest::num::u64::ANY,
            body in "[ -~\\n\\\\]{0,200}",
        ) {
            let raw = format!("{prio},{seq},{usec},-;{body}");
            let r = parse_record(raw.as_bytes()).unwrap();
            proptest::prop_assert_eq!(r.seq, seq);
            proptest::prop_assert!(!r.message.contains('\n'));
        }
    }
}
