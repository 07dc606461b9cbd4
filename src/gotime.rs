//! Go time layouts (`time.Parse`), as upstream's filelog translator uses them in
//! `pluginConfig.timestampFormat`.
//!
//! A layout is written with Go's reference time `Mon Jan 2 15:04:05 MST 2006`; e.g.
//! `Jan _2 15:04:05` (syslog) or `2006-01-02T15:04:05.999999999Z07:00` (RFC 3339 with
//! nanoseconds). [`GoLayout::new`] compiles a layout once and rejects elements this
//! implementation does not parse, naming them; [`GoLayout::parse`] then parses text the
//! way Go's `time.ParseInLocation(layout, text, time.Local)` does, with one addition
//! upstream also makes: a layout without a year gets the current year (or the previous
//! one when the current year would put the line in the future).

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone};

/// A layout could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The layout uses a Go element this implementation does not parse.
    #[error("unsupported element {element:?} in Go time layout {layout:?}")]
    Unsupported {
        /// The element, e.g. `002`.
        element: String,
        /// The whole layout.
        layout: String,
    },
    /// The layout has no date or time element at all (often a strftime format).
    #[error(
        "Go time layout {layout:?} has no date or time element; write it with Go's reference \
         time Mon Jan 2 15:04:05 MST 2006 (e.g. \"Jan _2 15:04:05\"), not strftime"
    )]
    NoElements {
        /// The whole layout.
        layout: String,
    },
}

/// Text did not match a layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse {text:?} as {layout:?}: {reason}")]
pub struct ParseError {
    /// The text (cut to 80 bytes).
    pub text: String,
    /// The layout.
    pub layout: String,
    /// What did not match.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Elem {
    Literal(String),
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM {
        upper: bool,
    },
    TzAbbrev,
    /// Numeric zone; `z` accepts a literal `Z` for UTC; `colon` and `seconds` shape it.
    Offset {
        z: bool,
        colon: bool,
        minutes: bool,
        seconds: bool,
    },
    /// Fractional seconds `.000` (exactly n digits) or `.999` (optional, any digits).
    Frac {
        digits: usize,
        exact: bool,
    },
}

/// A compiled Go time layout.
#[derive(Debug, Clone)]
pub struct GoLayout {
    layout: String,
    elems: Vec<Elem>,
    has_year: bool,
}

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Skew allowed before a year-less timestamp is moved to the previous year: a line
/// written up to a day "in the future" (clock skew, a writer in another zone) stays in
/// the current year.
const FUTURE_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

impl GoLayout {
    /// Compiles a layout, rejecting elements that are not supported.
    pub fn new(layout: &str) -> Result<GoLayout, LayoutError> {
        let elems = tokenize(layout)?;
        let has_year = elems
            .iter()
            .any(|e| matches!(e, Elem::LongYear | Elem::Year));
        if elems.iter().all(|e| matches!(e, Elem::Literal(_))) {
            return Err(LayoutError::NoElements {
                layout: layout.to_string(),
            });
        }
        Ok(GoLayout {
            layout: layout.to_string(),
            elems,
            has_year,
        })
    }

    /// The layout text.
    pub fn as_str(&self) -> &str {
        &self.layout
    }

    /// Whether the layout contains a year.
    pub fn has_year(&self) -> bool {
        self.has_year
    }

    /// Parses `text`. Without a zone in the layout (or with a zone abbreviation other
    /// than UTC/GMT) the time is in `tz`. Without a year, `now`'s year in `tz` is used,
    /// or the previous year when that would put the time more than a day after `now`.
    pub fn parse(
        &self,
        text: &str,
        now: Timestamp,
        tz: &TimeZone,
    ) -> Result<Timestamp, ParseError> {
        self.parse_inner(text, now, tz)
            .map_err(|reason| ParseError {
                text: cut(text, 80),
                layout: self.layout.clone(),
                reason,
            })
    }

    fn parse_inner(&self, text: &str, now: Timestamp, tz: &TimeZone) -> Result<Timestamp, String> {
        let mut v = text;
        let mut year: Option<i16> = None;
        let mut month: i8 = 1;
        let mut day: i8 = 1;
        let mut hour: i8 = 0;
        let mut minute: i8 = 0;
        let mut second: i8 = 0;
        let mut nanos: i32 = 0;
        let mut pm: Option<bool> = None;
        let mut hour12 = false;
        let mut offset: Option<Offset> = None;
        let mut i = 0;
        while i < self.elems.len() {
            let elem = &self.elems[i];
            i += 1;
            match elem {
                Elem::Literal(lit) => v = skip_literal(v, lit)?,
                Elem::LongMonth => {
                    let (m, rest) = lookup(v, &LONG_MONTHS, None).ok_or("bad month name")?;
                    month = m as i8 + 1;
                    v = rest;
                }
                Elem::Month => {
                    let (m, rest) = lookup(v, &LONG_MONTHS, Some(3)).ok_or("bad month name")?;
                    month = m as i8 + 1;
                    v = rest;
                }
                Elem::NumMonth | Elem::ZeroMonth => {
                    let (n, rest) = getnum(v, *elem == Elem::ZeroMonth)?;
                    if !(1..=12).contains(&n) {
                        return Err("month out of range".into());
                    }
                    month = n as i8;
                    v = rest;
                }
                Elem::LongWeekDay => {
                    let (_, rest) = lookup(v, &LONG_DAYS, None).ok_or("bad day name")?;
                    v = rest;
                }
                Elem::WeekDay => {
                    let (_, rest) = lookup(v, &LONG_DAYS, Some(3)).ok_or("bad day name")?;
                    v = rest;
                }
                Elem::Day | Elem::UnderDay | Elem::ZeroDay => {
                    if *elem == Elem::UnderDay && v.starts_with(' ') {
                        v = &v[1..];
                    }
                    let (n, rest) = getnum(v, *elem == Elem::ZeroDay)?;
                    if !(1..=31).contains(&n) {
                        return Err("day out of range".into());
                    }
                    day = n as i8;
                    v = rest;
                }
                Elem::Hour => {
                    let (n, rest) = getnum(v, false)?;
                    if n > 23 {
                        return Err("hour out of range".into());
                    }
                    hour = n as i8;
                    v = rest;
                }
                Elem::Hour12 | Elem::ZeroHour12 => {
                    let (n, rest) = getnum(v, *elem == Elem::ZeroHour12)?;
                    if !(1..=12).contains(&n) {
                        return Err("hour out of range".into());
                    }
                    hour = n as i8;
                    hour12 = true;
                    v = rest;
                }
                Elem::Minute | Elem::ZeroMinute => {
                    let (n, rest) = getnum(v, *elem == Elem::ZeroMinute)?;
                    if n > 59 {
                        return Err("minute out of range".into());
                    }
                    minute = n as i8;
                    v = rest;
                }
                Elem::Second | Elem::ZeroSecond => {
                    let (n, rest) = getnum(v, *elem == Elem::ZeroSecond)?;
                    if n > 59 {
                        return Err("second out of range".into());
                    }
                    second = n as i8;
                    v = rest;
                    // Like Go: fractional seconds in the text are accepted after the
                    // seconds even when the layout has none, unless a fraction follows.
                    let next_is_frac = matches!(self.elems.get(i), Some(Elem::Frac { .. }));
                    if !next_is_frac && is_frac_start(v) {
                        let (ns, rest) = frac(v, None)?;
                        nanos = ns;
                        v = rest;
                    }
                }
                Elem::LongYear => {
                    if v.len() < 4 || !v.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
                        return Err("bad year".into());
                    }
                    year = Some(v[..4].parse::<i16>().map_err(|_| "bad year")?);
                    v = &v[4..];
                }
                Elem::Year => {
                    let (n, rest) = getnum(v, true)?;
                    year = Some(if n >= 69 {
                        1900 + n as i16
                    } else {
                        2000 + n as i16
                    });
                    v = rest;
                }
                Elem::PM { upper } => {
                    let (am, pmv) = if *upper { ("AM", "PM") } else { ("am", "pm") };
                    if let Some(rest) = v.strip_prefix(am) {
                        pm = Some(false);
                        v = rest;
                    } else if let Some(rest) = v.strip_prefix(pmv) {
                        pm = Some(true);
                        v = rest;
                    } else {
                        return Err("bad AM/PM".into());
                    }
                }
                Elem::TzAbbrev => {
                    let n = v.bytes().take_while(|b| b.is_ascii_uppercase()).count();
                    if !(3..=5).contains(&n) {
                        return Err("bad time zone abbreviation".into());
                    }
                    if matches!(&v[..n], "UTC" | "GMT") {
                        offset = Some(Offset::UTC);
                    }
                    // Other abbreviations are ambiguous (Go also guesses); keep `tz`.
                    v = &v[n..];
                }
                Elem::Offset {
                    z,
                    colon,
                    minutes,
                    seconds,
                } => {
                    if *z && let Some(rest) = v.strip_prefix('Z') {
                        offset = Some(Offset::UTC);
                        v = rest;
                        continue;
                    }
                    let (off, rest) = parse_offset(v, *colon, *minutes, *seconds)?;
                    offset = Some(off);
                    v = rest;
                }
                Elem::Frac { digits, exact } => {
                    if *exact {
                        let (ns, rest) = frac(v, Some(*digits))?;
                        nanos = ns;
                        v = rest;
                    } else if is_frac_start(v) {
                        let (ns, rest) = frac(v, None)?;
                        nanos = ns;
                        v = rest;
                    }
                }
            }
        }
        if !v.is_empty() {
            return Err(format!("extra text {:?}", cut(v, 20)));
        }
        if hour12 {
            match pm {
                Some(true) if hour < 12 => hour += 12,
                Some(false) if hour == 12 => hour = 0,
                _ => {}
            }
        }
        let time = Time::new(hour, minute, second, nanos).map_err(|e| e.to_string())?;
        let build = |y: i16| -> Result<Timestamp, String> {
            let date = Date::new(y, month, day).map_err(|_| "day out of range".to_string())?;
            let dt = DateTime::from_parts(date, time);
            match offset {
                Some(off) => off.to_timestamp(dt).map_err(|e| e.to_string()),
                None => tz
                    .to_ambiguous_timestamp(dt)
                    .compatible()
                    .map_err(|e| e.to_string()),
            }
        };
        match year {
            Some(y) => build(y),
            None => {
                let this_year = now.to_zoned(tz.clone()).year();
                // Feb 29 does not exist in every year: fall back to the other year.
                match build(this_year) {
                    Ok(ts) if ts.duration_since(now) <= FUTURE_SKEW => Ok(ts),
                    Ok(_) | Err(_) => build(this_year - 1),
                }
            }
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Matches layout literal text. Like Go, a run of spaces in the layout matches a run of
/// one or more spaces in the text.
fn skip_literal<'a>(mut v: &'a str, lit: &str) -> Result<&'a str, String> {
    let mut lit = lit;
    while let Some(c) = lit.chars().next() {
        if c == ' ' {
            if !v.starts_with(' ') {
                return Err(format!("expected {lit:?}"));
            }
            lit = lit.trim_start_matches(' ');
            v = v.trim_start_matches(' ');
            continue;
        }
        match v.strip_prefix(c) {
            Some(rest) => v = rest,
            None => return Err(format!("expected {lit:?}")),
        }
        lit = &lit[c.len_utf8()..];
    }
    Ok(v)
}

/// Case-insensitive lookup of a name (or its first `prefix` letters).
fn lookup<'a>(v: &'a str, names: &[&str], prefix: Option<usize>) -> Option<(usize, &'a str)> {
    names.iter().enumerate().find_map(|(i, name)| {
        let n = &name[..prefix.unwrap_or(name.len())];
        let head = v.get(..n.len())?;
        head.eq_ignore_ascii_case(n).then(|| (i, &v[n.len()..]))
    })
}

/// One or two digits (exactly two when `fixed`), as Go's getnum.
fn getnum(v: &str, fixed: bool) -> Result<(u32, &str), String> {
    let b = v.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() {
        return Err(format!("expected a number at {:?}", cut(v, 20)));
    }
    if b.len() < 2 || !b[1].is_ascii_digit() {
        if fixed {
            return Err(format!("expected two digits at {:?}", cut(v, 20)));
        }
        return Ok((u32::from(b[0] - b'0'), &v[1..]));
    }
    Ok((
        u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0'),
        &v[2..],
    ))
}

fn is_frac_start(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 2 && (b[0] == b'.' || b[0] == b',') && b[1].is_ascii_digit()
}

/// `.ddd`: exactly `want` digits, or any number (at least one) when `None`. Digits past
/// the ninth are ignored, as in Go.
fn frac(v: &str, want: Option<usize>) -> Result<(i32, &str), String> {
    let b = v.as_bytes();
    if b.is_empty() || (b[0] != b'.' && b[0] != b',') {
        return Err("expected fractional seconds".into());
    }
    let n = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || want.is_some_and(|w| w != n) {
        return Err("bad fractional seconds".into());
    }
    let mut ns: i32 = 0;
    for k in 0..9 {
        let d = if k < n { i32::from(b[1 + k] - b'0') } else { 0 };
        ns = ns * 10 + d;
    }
    Ok((ns, &v[1 + n..]))
}

fn parse_offset(
    v: &str,
    colon: bool,
    minutes: bool,
    seconds: bool,
) -> Result<(Offset, &str), String> {
    let bad = || format!("bad time zone offset at {:?}", cut(v, 20));
    let b = v.as_bytes();
    let sign = match b.first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(bad()),
    };
    let mut pos = 1;
    let two = |pos: &mut usize, sep: bool| -> Result<i32, String> {
        if sep {
            if b.get(*pos) != Some(&b':') {
                return Err(bad());
            }
            *pos += 1;
        }
        match (b.get(*pos), b.get(*pos + 1)) {
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                *pos += 2;
                Ok(i32::from(x - b'0') * 10 + i32::from(y - b'0'))
            }
            _ => Err(bad()),
        }
    };
    let h = two(&mut pos, false)?;
    let m = if minutes { two(&mut pos, colon)? } else { 0 };
    let s = if seconds { two(&mut pos, colon)? } else { 0 };
    if h > 23 || m > 59 || s > 59 {
        return Err(bad());
    }
    let off = Offset::from_seconds(sign * (h * 3600 + m * 60 + s)).map_err(|_| bad())?;
    Ok((off, &v[pos..]))
}

/// Splits a layout into elements, following Go's `nextStdChunk`.
fn tokenize(layout: &str) -> Result<Vec<Elem>, LayoutError> {
    let unsupported = |e: &str| LayoutError::Unsupported {
        element: e.to_string(),
        layout: layout.to_string(),
    };
    let b = layout.as_bytes();
    let mut out: Vec<Elem> = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    let at = |i: usize, s: &str| layout[i..].starts_with(s);
    while i < b.len() {
        let (elem, len): (Option<Elem>, usize) = match b[i] {
            b'J' if at(i, "January") => (Some(Elem::LongMonth), 7),
            b'J' if at(i, "Jan") => (Some(Elem::Month), 3),
            b'M' if at(i, "Monday") => (Some(Elem::LongWeekDay), 6),
            b'M' if at(i, "Mon") => (Some(Elem::WeekDay), 3),
            b'M' if at(i, "MST") => (Some(Elem::TzAbbrev), 3),
            b'0' if at(i, "002") => return Err(unsupported("002")),
            b'0' if i + 1 < b.len() && (b'1'..=b'6').contains(&b[i + 1]) => {
                let e = match b[i + 1] {
                    b'1' => Elem::ZeroMonth,
                    b'2' => Elem::ZeroDay,
                    b'3' => Elem::ZeroHour12,
                    b'4' => Elem::ZeroMinute,
                    b'5' => Elem::ZeroSecond,
                    _ => Elem::Year,
                };
                (Some(e), 2)
            }
            b'1' if at(i, "15") => (Some(Elem::Hour), 2),
            b'1' => (Some(Elem::NumMonth), 1),
            b'2' if at(i, "2006") => (Some(Elem::LongYear), 4),
            b'2' => (Some(Elem::Day), 1),
            b'_' if at(i, "__2") => return Err(unsupported("__2")),
            b'_' if at(i, "_2") && !at(i, "_2006") => (Some(Elem::UnderDay), 2),
            b'3' => (Some(Elem::Hour12), 1),
            b'4' => (Some(Elem::Minute), 1),
            b'5' => (Some(Elem::Second), 1),
            b'P' if at(i, "PM") => (Some(Elem::PM { upper: true }), 2),
            b'p' if at(i, "pm") => (Some(Elem::PM { upper: false }), 2),
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                let rest = &layout[i + 1..];
                let shapes: [(&str, bool, bool, bool); 5] = [
                    ("07:00:00", true, true, true),
                    ("070000", false, true, true),
                    ("07:00", true, true, false),
                    ("0700", false, true, false),
                    ("07", false, false, false),
                ];
                match shapes.iter().find(|(s, ..)| rest.starts_with(s)) {
                    Some((s, colon, minutes, seconds)) => (
                        Some(Elem::Offset {
                            z,
                            colon: *colon,
                            minutes: *minutes,
                            seconds: *seconds,
                        }),
                        1 + s.len(),
                    ),
                    None => (None, 1),
                }
            }
            b'.' | b',' if i + 1 < b.len() && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == ch {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    (None, 1)
                } else {
                    let digits = j - (i + 1);
                    (
                        Some(Elem::Frac {
                            digits,
                            exact: ch == b'0',
                        }),
                        j - i,
                    )
                }
            }
            _ => (None, 0),
        };
        match elem {
            Some(e) => {
                if !lit.is_empty() {
                    out.push(Elem::Literal(std::mem::take(&mut lit)));
                }
                out.push(e);
                i += len;
            }
            None => {
                // A literal character (UTF-8 aware).
                let c = layout[i..].chars().next().unwrap_or(' ');
                lit.push(c);
                i += c.len_utf8();
            }
        }
    }
    if !lit.is_empty() {
        out.push(Elem::Literal(lit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> TimeZone {
        TimeZone::UTC
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn p(layout: &str, text: &str, now: &str) -> Result<Timestamp, ParseError> {
        GoLayout::new(layout).unwrap().parse(text, ts(now), &utc())
    }

    #[test]
    fn syslog_layouts() {
        let now = "2026-06-10T12:00:00Z";
        let want = ts("2026-03-05T07:08:09Z");
        assert_eq!(p("Jan _2 15:04:05", "Mar  5 07:08:09", now).unwrap(), want);
        assert_eq!(p("Jan 2 15:04:05", "Mar 5 07:08:09", now).unwrap(), want);
        assert_eq!(p("Jan 2 15:04:05", "Mar  5 07:08:09", now).unwrap(), want);
        assert_eq!(p("Jan 02 15:04:05", "Mar 05 07:08:09", now).unwrap(), want);
        assert_eq!(
            p("Jan _2 15:04:05", "Mar 15 07:08:09", now).unwrap(),
            ts("2026-03-15T07:08:09Z")
        );
        assert!(p("Jan 02 15:04:05", "Mar 5 07:08:09", now).is_err());
        assert!(p("Jan _2 15:04:05", "Foo  5 07:08:09", now).is_err());
        assert!(p("Jan _2 15:04:05", "Mar  5 07:08:09 extra", now).is_err());
        assert!(p("Jan _2 15:04:05", "Mar  5 25:08:09", now).is_err());
    }

    #[test]
    fn year_rollover() {
        // A line from Dec 31 read just after midnight on Jan 1 belongs to last year.
        assert_eq!(
            p("Jan _2 15:04:05", "Dec 31 23:59:59", "2027-01-01T00:00:05Z").unwrap(),
            ts("2026-12-31T23:59:59Z")
        );
        // Slightly in the future (clock skew) stays in this year.
        assert_eq!(
            p("Jan _2 15:04:05", "Jun 10 13:00:00", "2026-06-10T12:00:00Z").unwrap(),
            ts("2026-06-10T13:00:00Z")
        );
        // Feb 29 in a non-leap year falls back to last year only if it exists there: 2025
        // is not a leap year either, so it fails.
        assert!(p("Jan _2 15:04:05", "Feb 29 10:00:00", "2026-06-10T12:00:00Z").is_err());
        assert_eq!(
            p("Jan _2 15:04:05", "Feb 29 10:00:00", "2028-06-10T12:00:00Z").unwrap(),
            ts("2028-02-29T10:00:00Z")
        );
    }

    #[test]
    fn local_zone_is_used_without_offset() {
        let tz = TimeZone::fixed(Offset::from_hours(2).unwrap());
        let l = GoLayout::new("2006-01-02 15:04:05").unwrap();
        assert_eq!(
            l.parse("2026-01-02 10:00:00", ts("2026-06-01T00:00:00Z"), &tz)
                .unwrap(),
            ts("2026-01-02T08:00:00Z")
        );
        // Year-less layouts take the year in the local zone, too.
        let l = GoLayout::new("Jan _2 15:04:05").unwrap();
        assert_eq!(
            l.parse("Jan  1 01:00:00", ts("2025-12-31T23:30:00Z"), &tz)
                .unwrap(),
            ts("2025-12-31T23:00:00Z")
        );
    }

    #[test]
    fn rfc3339_layouts() {
        let now = "2026-06-10T12:00:00Z";
        let nano = "2006-01-02T15:04:05.999999999Z07:00";
        assert_eq!(
            p(nano, "2026-01-02T03:04:05Z", now).unwrap(),
            ts("2026-01-02T03:04:05Z")
        );
        assert_eq!(
            p(nano, "2026-01-02T03:04:05.123456789+02:00", now).unwrap(),
            ts("2026-01-02T01:04:05.123456789Z")
        );
        assert_eq!(
            p(nano, "2026-01-02T03:04:05.5-01:30", now).unwrap(),
            ts("2026-01-02T04:34:05.5Z")
        );
        let plain = "2006-01-02T15:04:05Z07:00";
        assert_eq!(
            p(plain, "2026-01-02T03:04:05+00:00", now).unwrap(),
            ts("2026-01-02T03:04:05Z")
        );
        // Go accepts a fraction after seconds even when the layout has none.
        assert_eq!(
            p(plain, "2026-01-02T03:04:05.25Z", now).unwrap(),
            ts("2026-01-02T03:04:05.25Z")
        );
        // `-07:00` needs a sign, never Z.
        let docker = "2006-01-02T15:04:05.999999999-07:00";
        assert!(p(docker, "2026-01-02T03:04:05Z", now).is_err());
        assert_eq!(
            p(docker, "2026-01-02T03:04:05.000000001-07:00", now).unwrap(),
            ts("2026-01-02T10:04:05.000000001Z")
        );
        // Literal Z (upstream's containerd layout).
        assert_eq!(
            p(
                "2006-01-02T15:04:05.999999999Z",
                "2026-01-02T03:04:05.1Z",
                now
            )
            .unwrap(),
            ts("2026-01-02T03:04:05.1Z")
        );
        let fixed = "2006-01-02T15:04:05.000000-07:00";
        assert_eq!(
            p(fixed, "2026-01-02T03:04:05.123456+01:00", now).unwrap(),
            ts("2026-01-02T02:04:05.123456Z")
        );
        assert!(p(fixed, "2026-01-02T03:04:05.123+01:00", now).is_err());
        assert_eq!(
            p("2006-01-02 15:04:05.000", "2026-01-02 03:04:05.007", now).unwrap(),
            ts("2026-01-02T03:04:05.007Z")
        );
        assert_eq!(
            p(
                "2006-01-02 15:04:05,000 -0700",
                "2026-01-02 03:04:05,007 +0100",
                now
            )
            .unwrap(),
            ts("2026-01-02T02:04:05.007Z")
        );
    }

    #[test]
    fn ansic_and_misc() {
        let now = "2026-06-10T12:00:00Z";
        assert_eq!(
            p("Mon Jan _2 15:04:05 2006", "Fri Jan  2 03:04:05 2026", now).unwrap(),
            ts("2026-01-02T03:04:05Z")
        );
        assert_eq!(
            p(
                "Monday, 02-Jan-06 15:04:05 MST",
                "Friday, 02-Jan-26 03:04:05 UTC",
                now
            )
            .unwrap(),
            ts("2026-01-02T03:04:05Z")
        );
        assert_eq!(
            p("01/02/2006 3:04:05 PM", "01/02/2026 3:04:05 PM", now).unwrap(),
            ts("2026-01-02T15:04:05Z")
        );
        assert_eq!(
            p("January 2, 2006 03:04pm", "march 9, 2026 12:30am", now).unwrap(),
            ts("2026-03-09T00:30:00Z")
        );
        assert_eq!(
            p("2006-01-02 15:04:05", "2026-02-31 00:00:00", now)
                .unwrap_err()
                .reason,
            "day out of range"
        );
    }

    #[test]
    fn layout_errors_name_the_element() {
        let e = GoLayout::new("2006-002 15:04").unwrap_err();
        assert!(e.to_string().contains("\"002\""), "{e}");
        let e = GoLayout::new("%Y-%m-%d %H:%M:%S").unwrap_err();
        assert!(e.to_string().contains("reference time"), "{e}");
    }

    #[test]
    fn never_panics_on_odd_text() {
        let layouts = [
            "Jan _2 15:04:05",
            "2006-01-02T15:04:05.999999999Z07:00",
            "2006-01-02T15:04:05.000000-07:00",
            "Mon Jan _2 15:04:05 2006",
        ];
        let texts = [
            "",
            "é",
            "Jan",
            "2026-01-02T03:04:05.",
            "2026-01-02T03:04:05+0",
            "Jan  ",
            "ü2006",
        ];
        for l in layouts {
            let l = GoLayout::new(l).unwrap();
            for t in texts {
                assert!(l.parse(t, ts("2026-01-01T00:00:00Z"), &utc()).is_err());
            }
        }
    }
}
