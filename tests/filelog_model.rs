//! Model-based test of the filelog source: random sequences of writes, partial writes
//! and logrotate-style rotations on a real file; every complete line must arrive
//! exactly once, in order.
//!
//! What the model waits for is what `tail -F` can guarantee:
//! - before a rename or delete rotation, the reader must already be on the current file
//!   when that file holds lines (wait for its first line); two rotations faster than the
//!   reader notices the first would otherwise skip a whole file;
//! - copytruncate loses lines written between copy and truncate in real logrotate too,
//!   so the model lets the reader catch up first ("quiet"), truncates, writes a short
//!   sync line (shorter than what was read, so the shrink is visible) and waits for it.
//!   A reader cannot notice a truncation once the file has grown back past the old
//!   size, so the model never lets that happen before the sync line arrived.
//!
//! An unfinished line is lost when its file is rotated away (it is never completed).

#[path = "support/filelog.rs"]
mod filelog_support;

use std::fs::OpenOptions;
use std::path::Path;
use std::time::Duration;

use filelog_support::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Write(usize),
    Partial,
    RenameCreate,
    CopyTruncate,
    DeleteRecreate,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..6).prop_map(Op::Write),
        2 => Just(Op::Partial),
        1 => Just(Op::RenameCreate),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::DeleteRecreate),
    ]
}

struct Model {
    /// Every complete line written, in order.
    expected: Vec<String>,
    /// Lines received so far.
    received: Vec<String>,
    /// Index in `expected` of the first complete line of the current file.
    current_first: Option<usize>,
    /// The unfinished line's full text and the part already written.
    partial: Option<(String, usize)>,
    next: usize,
    syncs: usize,
}

impl Model {
    fn new_line(&mut self) -> (String, String) {
        self.next += 1;
        // Padded so every regular line is longer than a sync line.
        let msg = format!("line-{:05} {}", self.next, "p".repeat(self.next % 17 + 20));
        (line(&msg), msg)
    }

    fn wrote(&mut self, msg: String) {
        if self.current_first.is_none() {
            self.current_first = Some(self.expected.len());
        }
        self.expected.push(msg);
    }

    /// Receives until `n` lines in total have arrived.
    fn receive_until(&mut self, h: &mut Harness, n: usize) {
        if self.received.len() < n {
            let more = h.messages(n - self.received.len());
            self.received.extend(more);
        }
    }

    fn file_switched(&mut self) {
        self.current_first = None;
        self.partial = None;
    }

    fn apply(&mut self, h: &mut Harness, op: &Op) {
        let log = h.log.clone();
        match op {
            Op::Write(n) => {
                let mut text = String::new();
                if let Some((full, done)) = self.partial.take() {
                    text.push_str(&full[done..]);
                    let msg = full.split_once(' ').map(|(_, m)| m.trim_end().to_string());
                    self.wrote(msg.unwrap_or_default());
                }
                for _ in 0..*n {
                    let (l, msg) = self.new_line();
                    text.push_str(&l);
                    self.wrote(msg);
                }
                append(&log, &text);
            }
            Op::Partial => {
                if self.partial.is_none() {
                    let (l, _) = self.new_line();
                    let cut = l.len() / 2;
                    append(&log, &l[..cut]);
                    self.partial = Some((l, cut));
                }
            }
            Op::RenameCreate | Op::DeleteRecreate => {
                if let Some(first) = self.current_first {
                    self.receive_until(h, first + 1);
                }
                if matches!(op, Op::RenameCreate) {
                    std::fs::rename(&log, h.dir.path().join("app.log.1")).unwrap();
                } else {
                    std::fs::remove_file(&log).unwrap();
                }
                create(&log);
                self.file_switched();
            }
            Op::CopyTruncate => {
                if self.partial.is_some() {
                    self.apply(h, &Op::Write(0));
                }
                if self.current_first.is_none() {
                    return; // Empty file: truncation changes nothing.
                }
                self.syncs += 1;
                let msg = format!("s{}", self.syncs);
                let sync = line(&msg);
                // The file must be longer than the sync line, or the reader cannot tell
                // the truncated-and-rewritten file from the old one.
                if std::fs::metadata(&log).unwrap().len() <= sync.len() as u64 {
                    self.apply(h, &Op::Write(1));
                }
                self.receive_until(h, self.expected.len());
                std::fs::copy(&log, h.dir.path().join("app.log.1")).unwrap();
                truncate(&log);
                self.file_switched();
                append(&log, &sync);
                self.wrote(msg);
                self.receive_until(h, self.expected.len());
            }
        }
    }
}

fn truncate(path: &Path) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_complete_line_arrives_once_in_order(ops in proptest::collection::vec(op(), 1..16)) {
        let mut h = Harness::start("", create);
        let mut m = Model {
            expected: Vec::new(),
            received: Vec::new(),
            current_first: None,
            partial: None,
            next: 0,
            syncs: 0,
        };
        for op in &ops {
            m.apply(&mut h, op);
        }
        let n = m.expected.len();
        m.receive_until(&mut h, n);
        h.quiet(Duration::from_millis(150));
        prop_assert_eq!(&m.received, &m.expected);
        h.stop();
    }
}
