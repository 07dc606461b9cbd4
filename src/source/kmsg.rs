//! The kernel ring buffer, `/dev/kmsg` (`plugin: kmsg`).
//!
//! Record format (Documentation/ABI/testing/dev-kmsg): one record per read,
//! `prio,seq,usec,flags[,...];message\n`, then continuation lines that start with a space
//! (` SUBSYSTEM=pci`, ` DEVICE=+pci:0000:00:1f.2`). Continuation lines become fields of
//! the line, never part of the message. Non-printable bytes arrive escaped as `\xNN`.

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

/// Parses one record as returned by one `read(2)` of /dev/kmsg (or one record of a saved
/// capture, continuation lines included).
pub fn parse_record(raw: &[u8]) -> Result<KmsgRecord, KmsgParseError> {
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
    let body = &raw[semi + 1..];
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
    Ok(KmsgRecord {
        level: (prio & 7) as u8,
        facility: prio >> 3,
        seq,
        usec,
        message,
        fields,
    })
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

#[cfg(test)]
mod tests {
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
}
