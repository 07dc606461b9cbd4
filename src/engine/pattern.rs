//! Compiling rule patterns: Go compatibility checks and the analysis that decides whether a
//! rule can take the single-line fast path.

use regex::{Regex, RegexBuilder};
use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// Largest compiled size of one pattern. Generous: the default kernel rules use < 1 MiB.
const SIZE_LIMIT: usize = 16 << 20;

/// Why a pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Go syntax this engine does not have; using it would silently change meaning.
    #[error("{0}")]
    GoOnly(String),
    /// Not a valid regular expression.
    #[error("invalid regex: {0}")]
    Invalid(String),
}

impl PatternError {
    /// The explanation alone, without the "invalid regex: " prefix of `Display`.
    pub fn detail(&self) -> &str {
        match self {
            PatternError::GoOnly(m) | PatternError::Invalid(m) => m,
        }
    }
}

/// What the analysis learned about a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternInfo {
    /// Some match could contain a newline, so it may span several buffered lines.
    pub can_match_newline: bool,
    /// Uses `^` / `\A` (start of the whole buffer, not of a line).
    pub anchors_buffer_start: bool,
    /// Can match the empty string, so it matches every line.
    pub matches_empty: bool,
    /// Top-level alternation: upstream appends `\z` to the last branch only.
    pub top_level_alternation: bool,
}

fn builder(pattern: &str) -> RegexBuilder {
    let mut b = RegexBuilder::new(pattern);
    // Go accepts octal escapes such as `\101`; Rust only with this flag.
    b.octal(true).size_limit(SIZE_LIMIT);
    b
}

/// Rejects Go-only syntax with a message that says what to write instead.
pub fn check_go_syntax(pattern: &str) -> Result<(), PatternError> {
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'Q' => {
                    return Err(PatternError::GoOnly(
                        "Go's \\Q...\\E literal quoting is not supported: escape the special characters instead".into(),
                    ));
                }
                b'C' => {
                    return Err(PatternError::GoOnly(
                        "Go's \\C (any byte) is not supported: use . instead".into(),
                    ));
                }
                _ => {}
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Parses and analyses a pattern.
pub fn analyse(pattern: &str) -> Result<PatternInfo, PatternError> {
    check_go_syntax(pattern)?;
    let hir = regex_syntax::ParserBuilder::new()
        .octal(true)
        .build()
        .parse(pattern)
        .map_err(|e| PatternError::Invalid(e.to_string()))?;
    Ok(PatternInfo {
        can_match_newline: can_match_newline(&hir),
        anchors_buffer_start: has_look(&hir, Look::Start),
        matches_empty: hir.properties().minimum_len() == Some(0),
        top_level_alternation: top_level_alternation(pattern),
    })
}

/// Compiles a pattern anchored at the end of the text, as upstream does by appending `\z`.
/// The pattern is grouped first, so a top-level `a|b` means "a or b at the end".
pub fn compile_anchored(pattern: &str) -> Result<Regex, PatternError> {
    check_go_syntax(pattern)?;
    // The error shows our `(?:...)\z` wrapper; it is still clear about what is wrong.
    builder(&format!("(?:{pattern})\\z"))
        .build()
        .map_err(|e| PatternError::Invalid(e.to_string().trim().to_string()))
}

/// Compiles a plain, unanchored regex in the engine's dialect (Go-only syntax rejected,
/// octal escapes as in Go, the engine's size limit): for regexes that are not rules,
/// such as the filelog plugin's `timestamp` and `message`, so every regex of a config
/// means the same thing and fails the same way.
pub(crate) fn compile_plain(pattern: &str) -> Result<Regex, PatternError> {
    check_go_syntax(pattern)?;
    builder(pattern)
        .build()
        .map_err(|e| PatternError::Invalid(e.to_string().trim().to_string()))
}

/// Compiles the fast-path set of end-anchored patterns, as `regex::RegexSet` would
/// (all-matches semantics, no captures) but without the set's own literal prefilter:
/// the engine consults the set only after [`literal_prefilter`] found a candidate, so
/// that second prefilter never saved work, and for the default kernel rules it was an
/// 800 KB Aho-Corasick automaton, a seventh of the daemon's idle memory.
pub fn compile_set(patterns: &[&str]) -> Result<regex_automata::meta::Regex, PatternError> {
    use regex_automata::util::syntax;
    use regex_automata::{MatchKind, meta, nfa::thompson::WhichCaptures};
    let wrapped: Vec<String> = patterns.iter().map(|p| format!("(?:{p})\\z")).collect();
    meta::Builder::new()
        .configure(
            meta::Config::new()
                .match_kind(MatchKind::All)
                .utf8_empty(true)
                .which_captures(WhichCaptures::None)
                .auto_prefilter(false)
                .nfa_size_limit(Some(SIZE_LIMIT * 4)),
        )
        .syntax(syntax::Config::new().octal(true).utf8(true))
        .build_many(&wrapped)
        .map_err(|e| PatternError::Invalid(e.to_string()))
}

/// A cheap test that a line can match at least one of `patterns`: the literals every
/// match of some pattern starts with, searched together (regex uses SIMD / Aho-Corasick for
/// a plain literal alternation). Most log lines contain none of them and skip the
/// RegexSet entirely. `None` when some pattern has no usable literal (it could start with
/// almost anything), so no line may be skipped.
pub fn literal_prefilter(patterns: &[&str]) -> Option<regex::bytes::Regex> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let mut literals: Vec<Vec<u8>> = Vec::new();
    for pattern in patterns {
        let hir = regex_syntax::ParserBuilder::new()
            .octal(true)
            .build()
            .parse(pattern)
            .ok()?;
        let mut seq = Extractor::new()
            .kind(ExtractKind::Prefix)
            .extract(&strip_leading_star(hir));
        // Shortens and merges literals; they stay prefixes of every match, so a line
        // without any of them still cannot match.
        seq.optimize_for_prefix_by_preference();
        // Infinite: no finite set of prefixes; an empty literal matches everywhere.
        let lits = seq.literals()?;
        if lits.is_empty() || lits.iter().any(|l| l.as_bytes().len() < 2) {
            // Empty set (the pattern can never match) is rare; single bytes filter
            // nothing and would slow the literal search down.
            return None;
        }
        literals.extend(lits.iter().map(|l| l.as_bytes().to_vec()));
    }
    literals.sort();
    literals.dedup();
    if literals.is_empty() {
        return None;
    }
    let mut alternation = String::new();
    for (i, lit) in literals.iter().enumerate() {
        if i > 0 {
            alternation.push('|');
        }
        for &b in lit {
            // Every byte as an escape: exact for any byte, valid UTF-8 or not.
            alternation.push_str(&format!("\\x{b:02X}"));
        }
    }
    regex::bytes::RegexBuilder::new(&alternation)
        .unicode(false)
        .size_limit(SIZE_LIMIT)
        .build()
        .ok()
}

/// Drops leading `x*`-style repetitions (the `.*` of upstream's CPER patterns):
/// the search is unanchored, so any match of the whole pattern contains a match of the
/// rest, and the rest's prefixes are literals every matching line contains.
fn strip_leading_star(hir: Hir) -> Hir {
    if let HirKind::Concat(parts) = hir.kind() {
        let skip = parts
            .iter()
            .take_while(|h| matches!(h.kind(), HirKind::Repetition(r) if r.min == 0))
            .count();
        if skip > 0 && skip < parts.len() {
            return Hir::concat(parts[skip..].to_vec());
        }
    }
    hir
}

/// An unparenthesised `|` at the top of the pattern. Checked on the syntax tree: the
/// HIR folds `a|b` into a class and loses the distinction.
fn top_level_alternation(pattern: &str) -> bool {
    let mut parser = regex_syntax::ast::parse::ParserBuilder::new()
        .octal(true)
        .build();
    matches!(
        parser.parse(pattern),
        Ok(regex_syntax::ast::Ast::Alternation(_))
    )
}

fn can_match_newline(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => false,
        HirKind::Literal(lit) => lit.0.contains(&b'\n'),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .any(|r| r.start() <= '\n' && '\n' <= r.end()),
        HirKind::Class(Class::Bytes(c)) => c
            .ranges()
            .iter()
            .any(|r| r.start() <= b'\n' && b'\n' <= r.end()),
        HirKind::Repetition(r) => r.max != Some(0) && can_match_newline(&r.sub),
        HirKind::Capture(c) => can_match_newline(&c.sub),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(can_match_newline),
    }
}

fn has_look(hir: &Hir, look: Look) -> bool {
    hir.properties().look_set().contains(look)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis() {
        let a = analyse(r"task \S+:\w+ blocked").unwrap();
        assert!(!a.can_match_newline && !a.anchors_buffer_start && !a.matches_empty);
        assert!(analyse(r"a\sb").unwrap().can_match_newline);
        assert!(analyse(r"[^x]").unwrap().can_match_newline);
        assert!(analyse(r"(?s)a.b").unwrap().can_match_newline);
        assert!(!analyse(r"a.b").unwrap().can_match_newline);
        assert!(analyse(r"^abc").unwrap().anchors_buffer_start);
        assert!(!analyse(r"(?m)^abc").unwrap().anchors_buffer_start);
        assert!(analyse(r".*").unwrap().matches_empty);
        assert!(analyse(r"a|b").unwrap().top_level_alternation);
        assert!(analyse(r"foo|bar baz").unwrap().top_level_alternation);
        assert!(!analyse(r"(a|b)").unwrap().top_level_alternation);
        assert!(!analyse(r"x(a|b)").unwrap().top_level_alternation);
    }

    #[test]
    fn go_only_syntax_is_an_error() {
        let e = compile_anchored(r"\Qa.b\E").unwrap_err();
        assert!(e.to_string().contains("\\Q...\\E"), "{e}");
        // An escaped backslash before Q is a literal backslash and a Q.
        assert!(compile_anchored(r"\\Q").is_ok());
        // Octal escapes work as in Go.
        assert!(compile_anchored(r"\101").unwrap().is_match("A"));
    }

    #[test]
    fn prefilter_finds_every_rule_literal() {
        let pats = [
            r"Killed process \d+ (.+) total-vm",
            r"(?:nf|ip)_conntrack: table full",
            r"caf\x{e9} ok",
        ];
        let pre = literal_prefilter(&pats).unwrap();
        assert!(pre.is_match(b"x Killed process 1 (a) total-vm"));
        assert!(pre.is_match(b"ip_conntrack: table full"));
        assert!(pre.is_match("caf\u{e9} ok".as_bytes()));
        assert!(!pre.is_match(b"usb 1-1: new high-speed USB device"));
        // A pattern that can start anywhere disables the prefilter.
        assert!(literal_prefilter(&[r"abc", r".*"]).is_none());
        assert!(literal_prefilter(&[r"abc", r"x*.?y"]).is_none());
        // A leading `.*` is skipped: upstream's CPER rules keep the prefilter.
        let pre = literal_prefilter(&[r".*\[Hardware Error\]: event severity: fatal$"]).unwrap();
        assert!(pre.is_match(b"{3}[Hardware Error]: event severity: fatal"));
        assert!(!pre.is_match(b"usb 1-1: new high-speed USB device"));
        assert!(literal_prefilter(&[r"abc", r"(?i)x"]).is_none());
    }

    #[test]
    fn plain_regex_has_the_engine_dialect() {
        let r = compile_plain(r"x\101(\d+)").unwrap();
        assert_eq!(r.captures("x A12").map(|c| c[1].to_string()), None);
        assert_eq!(
            r.captures("xA12 y").map(|c| c[1].to_string()),
            Some("12".into())
        );
        // Unanchored: matches anywhere.
        assert!(compile_plain("b").unwrap().is_match("abc"));
        let e = compile_plain(r"\Qa.b\E").unwrap_err();
        assert!(matches!(e, PatternError::GoOnly(_)), "{e}");
        let e = compile_plain("(").unwrap_err();
        assert!(e.to_string().starts_with("invalid regex: "), "{e}");
        assert!(!e.detail().starts_with("invalid regex"), "{e}");
    }

    #[test]
    fn anchored_at_end() {
        let r = compile_anchored("a|b").unwrap();
        assert!(r.is_match("xa"));
        assert!(!r.is_match("ax"));
    }
}
