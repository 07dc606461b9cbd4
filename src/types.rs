//! The data that flows between sources, monitors and exporters (DESIGN.md section 2).

use jiff::Timestamp;
use serde::Serialize;

/// One log line as a source produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Wall-clock time of the line (for kmsg: boot time + the record's microseconds).
    pub timestamp: Timestamp,
    /// The text rules match against. Never contains kmsg continuation fields.
    pub message: String,
    /// Structured fields that are not part of the message: kmsg continuation lines
    /// (`SUBSYSTEM=pci`), journal fields the source chose to keep.
    pub fields: Vec<(String, String)>,
}

impl LogLine {
    /// A line with no extra fields.
    pub fn new(timestamp: Timestamp, message: impl Into<String>) -> Self {
        LogLine {
            timestamp,
            message: message.into(),
            fields: Vec::new(),
        }
    }
}

/// How serious an event is; maps to the Kubernetes Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Severity {
    /// `Normal` in Kubernetes.
    #[serde(rename = "Normal")]
    Info,
    /// `Warning` in Kubernetes.
    #[serde(rename = "Warning")]
    Warn,
}

impl Severity {
    /// The Kubernetes Event `type` for this severity.
    pub fn event_type(self) -> &'static str {
        match self {
            Severity::Info => "Normal",
            Severity::Warn => "Warning",
        }
    }
}

/// A passing problem, reported as a Kubernetes Event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Normal or Warning.
    pub severity: Severity,
    /// When the problem happened (the first matched line's timestamp).
    pub timestamp: Timestamp,
    /// CamelCase reason from the rule.
    pub reason: String,
    /// Human readable message.
    pub message: String,
}

/// Status of a node condition, as in the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ConditionStatus {
    /// The problem is present.
    True,
    /// The problem is absent.
    False,
    /// The state could not be determined (custom plugins).
    Unknown,
}

impl ConditionStatus {
    /// The API spelling: "True", "False" or "Unknown".
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lasting problem (or its absence), reported as a Node condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// Condition type, e.g. `KernelDeadlock`.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// When status or reason last changed.
    pub transition: Timestamp,
    /// CamelCase reason.
    pub reason: String,
    /// Human readable message.
    pub message: String,
}

/// What a monitor reports after a line (or a clock tick): events to emit and the full
/// current set of its conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The monitor's `source` (the event's `source.component`).
    pub source: String,
    /// Events produced by this step, in order.
    pub events: Vec<Event>,
    /// All of the monitor's conditions after this step.
    pub conditions: Vec<Condition>,
}

/// Formats a string the way Go's `%q` / `strconv.Quote` does, so condition-change event
/// messages are byte-identical to upstream's.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Approximates Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and
/// the ASCII space. Rust has no Unicode category tables in std, so non-ASCII characters
/// count as printable except the C1 controls, separators other than space, and specials
/// Go escapes most often (zero-width and bidi formatting characters, U+FFFD is printable).
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    !(matches!(u, 0x80..=0x9f | 0xa0 | 0xad | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x206f | 0x3000 | 0xfeff | 0xfff9..=0xfffb)
        || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_matches_strconv_quote() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("a \"b\" \\ c"), "\"a \\\"b\\\" \\\\ c\"");
        assert_eq!(go_quote("l1\nl2\t\x01"), "\"l1\\nl2\\t\\x01\"");
        assert_eq!(go_quote("héllo"), "\"héllo\"");
        assert_eq!(go_quote("\u{200b}"), "\"\\u200b\"");
    }
}
