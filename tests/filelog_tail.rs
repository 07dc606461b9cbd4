//! The filelog source against real files, rotated the ways logrotate does it.

#[path = "support/filelog.rs"]
mod filelog_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use filelog_support::*;
use jiff::{SignedDuration, Timestamp};

#[test]
fn appended_lines_arrive() {
    let mut h = Harness::start("", create);
    for i in 0..5 {
        append(&h.log, &line(&format!("hello {i}")));
        assert_eq!(h.messages(1), vec![format!("hello {i}")]);
    }
    h.quiet(Duration::from_millis(200));
    assert_eq!(h.stats.lines_read.load(Ordering::Relaxed), 5);
    h.stop();
}

#[test]
fn existing_content_is_read_from_the_start() {
    let mut h = Harness::start("", |p| append(p, &(line("one") + &line("two"))));
    assert_eq!(h.messages(2), ["one", "two"]);
}

#[test]
fn missing_at_start_is_waited_for() {
    let mut h = Harness::start("", |_| {});
    h.wait_stats("the missing-file report", |s| s.dead().is_some());
    let reason = h.stats.dead().unwrap();
    assert!(reason.contains("app.log"), "{reason}");
    append(&h.log, &line("first"));
    assert_eq!(h.messages(1), ["first"]);
    assert_eq!(h.stats.dead(), None);
    append(&h.log, &line("second"));
    assert_eq!(h.messages(1), ["second"]);
}

#[test]
fn rename_and_create_rotation() {
    let mut h = Harness::start("", create);
    append(&h.log, &(line("a") + &line("b")));
    assert_eq!(h.messages(2), ["a", "b"]);
    // Written to the old file just before rotation, not yet read: must not be lost.
    append(&h.log, &line("c"));
    std::fs::rename(&h.log, h.dir.path().join("app.log.1")).unwrap();
    create(&h.log);
    append(&h.log, &line("d"));
    assert_eq!(h.messages(2), ["c", "d"]);
    append(&h.log, &line("e"));
    assert_eq!(h.messages(1), ["e"]);
    h.quiet(Duration::from_millis(200));
}

#[test]
fn copytruncate_restarts_at_zero() {
    let mut h = Harness::start("", create);
    let long = "x".repeat(100);
    append(
        &h.log,
        &(line(&format!("a {long}")) + &line(&format!("b {long}"))),
    );
    assert_eq!(h.messages(2).len(), 2);
    std::fs::copy(&h.log, h.dir.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&h.log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&h.log, &line("c"));
    assert_eq!(h.messages(1), ["c"]);
    append(&h.log, &line("d"));
    assert_eq!(h.messages(1), ["d"]);
    h.quiet(Duration::from_millis(200));
}

#[test]
fn delete_and_recreate() {
    let mut h = Harness::start("", create);
    append(&h.log, &line("a"));
    assert_eq!(h.messages(1), ["a"]);
    std::fs::remove_file(&h.log).unwrap();
    h.quiet(Duration::from_millis(200));
    append(&h.log, &line("b"));
    assert_eq!(h.messages(1), ["b"]);
    std::fs::remove_file(&h.log).unwrap();
    append(&h.log, &line("c"));
    assert_eq!(h.messages(1), ["c"]);
}

#[test]
fn partial_line_waits_for_its_newline() {
    let mut h = Harness::start("", create);
    let full = line("complete later");
    let (head, tail) = full.split_at(20);
    append(&h.log, head);
    h.quiet(Duration::from_millis(300));
    append(&h.log, tail);
    assert_eq!(h.messages(1), ["complete later"]);
}

#[test]
fn long_lines_are_cut_and_counted() {
    let mut h = Harness::start("", create);
    let huge = "y".repeat(300 * 1024);
    append(&h.log, &line(&format!("big {huge}")));
    append(&h.log, &line("after"));
    let got = h.messages(2);
    assert!(got[0].starts_with("big yyy"));
    assert!(got[0].len() < npd::source::filelog::MAX_LINE);
    assert!(got[0].len() > npd::source::filelog::MAX_LINE - 100);
    assert_eq!(got[1], "after");
    assert_eq!(h.stats.lines_truncated.load(Ordering::Relaxed), 1);
    h.quiet(Duration::from_millis(200));
}

#[test]
fn unparsable_lines_are_counted_and_skipped() {
    let mut h = Harness::start("", create);
    append(&h.log, "garbage without timestamp\n");
    append(&h.log, "2026-13-45T99:00:00Z bad date\n");
    append(&h.log, "\n");
    append(&h.log, &line("good"));
    assert_eq!(h.messages(1), ["good"]);
    assert_eq!(h.stats.lines_unparsed.load(Ordering::Relaxed), 3);
}

#[test]
fn lookback_drops_old_lines() {
    let old = Timestamp::now() - SignedDuration::from_hours(2);
    let recent = Timestamp::now() - SignedDuration::from_mins(10);
    let mut h = Harness::start(r#""lookback": "1h","#, |p| {
        append(p, &line_at(old, "too old"));
        append(p, &line_at(recent, "recent"));
        append(p, &line_at(old, "old again"));
    });
    assert_eq!(h.messages(1), ["recent"]);
    h.quiet(Duration::from_millis(200));
    assert_eq!(h.stats.lines_skipped.load(Ordering::Relaxed), 2);
}

#[test]
fn skip_list_drops_lines() {
    let mut h = Harness::start(r#""skipList": ["noise"],"#, create);
    append(&h.log, &(line("some noise here") + &line("signal")));
    assert_eq!(h.messages(1), ["signal"]);
    assert_eq!(h.stats.lines_skipped.load(Ordering::Relaxed), 1);
}

#[test]
fn stop_is_prompt_while_idle() {
    let mut h = Harness::start("", |_| {});
    std::thread::sleep(Duration::from_millis(100));
    // Joins the thread; hangs (and the test times out) if the reader ignores stop.
    h.stop();
}
