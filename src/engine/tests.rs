use std::path::Path;

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::config::parse_monitor_config;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn monitor(json: &str, strategy: MatchStrategy) -> Monitor {
    let cfg = parse_monitor_config(Path::new("t.json"), json)
        .unwrap()
        .config;
    Monitor::with_strategy(&cfg, ts(0), strategy).unwrap()
}

fn feed(m: &mut Monitor, lines: &[(i64, &str)]) -> (Vec<Status>, ProblemMetrics) {
    let mut pm = ProblemMetrics::default();
    m.init_metrics(&mut pm);
    let mut out = Vec::new();
    for (t, l) in lines {
        out.extend(m.process(&LogLine::new(ts(*t), *l), &mut pm));
    }
    (out, pm)
}

const KERNEL: &str = r#"{
  "plugin": "kmsg", "source": "kernel-monitor", "bufferSize": 3,
  "conditions": [{"type": "KernelDeadlock", "reason": "KernelHasNoDeadlock", "message": "kernel has no deadlock"}],
  "rules": [
    {"type": "temporary", "reason": "OOMKilling", "pattern": "Killed process \\d+ (.+) total-vm:\\d+kB.*"},
    {"type": "permanent", "condition": "KernelDeadlock", "reason": "DockerHung", "pattern": "task docker:\\w+ blocked for more than \\w+ seconds\\."},
    {"type": "temporary", "reason": "TwoLines", "pattern": "first\\nsecond", "patternGeneratedMessageSuffix": "see docs"}
  ]
}"#;

#[test]
fn temporary_rule_gives_warning_event() {
    for strategy in [MatchStrategy::Fast, MatchStrategy::Plain] {
        let mut m = monitor(KERNEL, strategy);
        let (out, pm) = feed(
            &mut m,
            &[
                (1, "hello"),
                (
                    2,
                    "Killed process 123 (stress) total-vm:1024kB, anon-rss:0kB",
                ),
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].events,
            vec![Event {
                severity: Severity::Warn,
                timestamp: ts(2),
                reason: "OOMKilling".into(),
                message: "Killed process 123 (stress) total-vm:1024kB, anon-rss:0kB".into(),
            }]
        );
        assert_eq!(out[0].source, "kernel-monitor");
        assert_eq!(out[0].conditions[0].status, ConditionStatus::False);
        assert_eq!(pm.counter("OOMKilling"), Some(1));
        assert_eq!(pm.counter("TwoLines"), Some(0));
    }
}

#[test]
fn permanent_rule_changes_condition_once() {
    let mut m = monitor(KERNEL, MatchStrategy::Fast);
    let hung = "task docker:1234 blocked for more than 120 seconds.";
    let (out, pm) = feed(&mut m, &[(5, hung), (6, hung)]);
    assert_eq!(out.len(), 2);
    let c = &out[0].conditions[0];
    assert_eq!(
        (c.status, c.reason.as_str(), c.transition),
        (ConditionStatus::True, "DockerHung", ts(5))
    );
    assert_eq!(out[0].events.len(), 1);
    assert_eq!(
        out[0].events[0].message,
        "Node condition KernelDeadlock is now: True, reason: DockerHung, message: \"task docker:1234 blocked for more than 120 seconds.\""
    );
    assert_eq!(out[0].events[0].severity, Severity::Warn);
    // Same status and reason: no event, transition time unchanged.
    assert!(out[1].events.is_empty());
    assert_eq!(out[1].conditions[0].transition, ts(5));
    assert_eq!(pm.gauge("KernelDeadlock", "DockerHung"), Some(true));
    assert_eq!(pm.counter("DockerHung"), Some(1));
}

#[test]
fn gauge_follows_restored_and_carried_over_conditions() {
    // Two reasons for one condition; the restored one comes first in the rules, so a
    // later reason's 0 must not zero it.
    const TWO: &str = r#"{
      "plugin": "kmsg", "source": "kernel-monitor",
      "conditions": [{"type": "KernelDeadlock", "reason": "KernelHasNoDeadlock", "message": "ok"}],
      "rules": [
        {"type": "permanent", "condition": "KernelDeadlock", "reason": "DockerHung", "pattern": "docker hung"},
        {"type": "permanent", "condition": "KernelDeadlock", "reason": "AUFSUmountHung", "pattern": "aufs hung"}
      ]
    }"#;
    let mut m = monitor(TWO, MatchStrategy::Fast);
    let mut pm = ProblemMetrics::default();
    m.init_metrics(&mut pm);
    assert_eq!(pm.gauge("KernelDeadlock", "DockerHung"), Some(false));
    // Restored True from the Node at start: the gauge says so before any line.
    assert!(m.restore_condition(
        &Condition {
            type_: "KernelDeadlock".into(),
            status: ConditionStatus::True,
            transition: ts(1),
            reason: "DockerHung".into(),
            message: "task docker:1 blocked".into(),
        },
        ts(1)
    ));
    m.init_metrics(&mut pm);
    assert_eq!(pm.gauge("KernelDeadlock", "DockerHung"), Some(true));
    assert_eq!(pm.gauge("KernelDeadlock", "AUFSUmountHung"), Some(false));
    // A reload carries the True condition over: the new monitor's gauge stays 1.
    let mut new = monitor(TWO, MatchStrategy::Fast);
    new.adopt_state(&m);
    new.init_metrics(&mut pm);
    assert_eq!(pm.gauge("KernelDeadlock", "DockerHung"), Some(true));
    assert_eq!(pm.gauge("KernelDeadlock", "AUFSUmountHung"), Some(false));
}

#[test]
fn restored_condition_recovers_after_quiet_period_from_the_restore() {
    const RECOVER: &str = r#"{
      "plugin": "kmsg", "source": "nic",
      "conditions": [{"type": "NicLinkDown", "reason": "NicLinkUp", "message": "up", "recoverAfter": "10m"}],
      "rules": [{"type": "permanent", "condition": "NicLinkDown", "reason": "NicLinkDown", "pattern": "Link is Down"}]
    }"#;
    let mut m = monitor(RECOVER, MatchStrategy::Fast);
    let mut pm = ProblemMetrics::default();
    m.init_metrics(&mut pm);
    // Set True on the Node an hour before this restart; restored at ts(3600).
    assert!(m.restore_condition(
        &Condition {
            type_: "NicLinkDown".into(),
            status: ConditionStatus::True,
            transition: ts(0),
            reason: "NicLinkDown".into(),
            message: "eth0: Link is Down".into(),
        },
        ts(3600),
    ));
    assert_eq!(m.next_deadline(), Some(ts(3600 + 600)));
    // The first tick after the restore does not recover it: the quiet period has not
    // passed since the restore.
    assert!(m.tick(ts(3601), &mut pm).is_empty());
    assert_eq!(m.conditions()[0].status, ConditionStatus::True);
    let out = m.tick(ts(3600 + 600), &mut pm);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].conditions[0].status, ConditionStatus::False);
    assert_eq!(out[0].conditions[0].transition, ts(3600 + 600));
}

#[test]
fn reload_with_changed_default_updates_a_condition_at_its_default() {
    let cfg = |reason: &str, message: &str| {
        format!(
            r#"{{
          "plugin": "kmsg", "source": "k",
          "conditions": [
            {{"type": "A", "reason": "{reason}", "message": "{message}"}},
            {{"type": "B", "reason": "{reason}", "message": "{message}"}},
            {{"type": "C", "reason": "{reason}", "message": "{message}"}}
          ],
          "rules": [
            {{"type": "permanent", "condition": "B", "reason": "BBad", "pattern": "b bad"}},
            {{"type": "permanent", "condition": "C", "reason": "CBad", "pattern": "c bad"}},
            {{"type": "recovery", "condition": "C", "reason": "CBack", "pattern": "c back"}}
          ]
        }}"#
        )
    };
    let mut old = monitor(&cfg("OldOk", "old message"), MatchStrategy::Fast);
    let _ = feed(&mut old, &[(1, "b bad"), (2, "c bad"), (3, "c back")]);
    let mut new = monitor(&cfg("NewOk", "new message"), MatchStrategy::Fast);
    new.adopt_state(&old);
    let c = new.conditions();
    // A was at the old default: it takes the new default, keeps status and transition.
    assert_eq!(
        (c[0].status, c[0].reason.as_str(), c[0].message.as_str()),
        (ConditionStatus::False, "NewOk", "new message")
    );
    assert_eq!(c[0].transition, old.conditions()[0].transition);
    // B is True: carried over as it is.
    assert_eq!(c[1], old.conditions()[1]);
    assert_eq!(c[1].reason, "BBad");
    // C is False with a recovery rule's reason, not the default: carried over too.
    assert_eq!(c[2], old.conditions()[2]);
    assert_eq!(c[2].reason, "CBack");
}

#[test]
fn true_condition_with_an_undeclared_reason_gets_no_gauge() {
    // A condition restored True with a reason no rule of this config has (the rule was
    // renamed or dropped since): no series for it, so a reload that removed the dropped
    // rule's series does not see it come back; the rules' series are at 0.
    let mut m = monitor(KERNEL, MatchStrategy::Fast);
    assert!(m.restore_condition(
        &Condition {
            type_: "KernelDeadlock".into(),
            status: ConditionStatus::True,
            transition: ts(1),
            reason: "LegacyHung".into(),
            message: "old".into(),
        },
        ts(2),
    ));
    let mut pm = ProblemMetrics::default();
    m.init_metrics(&mut pm);
    assert_eq!(pm.gauge("KernelDeadlock", "LegacyHung"), None);
    assert_eq!(pm.gauge("KernelDeadlock", "DockerHung"), Some(false));
    assert_eq!(pm.counter("OOMKilling"), Some(0));
    assert_eq!(pm.counter("DockerHung"), Some(0));
    assert!(
        !parse_monitor_config(Path::new("t.json"), KERNEL)
            .unwrap()
            .config
            .gauge_series()
            .contains(&("KernelDeadlock", "LegacyHung"))
    );
}

#[test]
fn gauge_series_lists_every_series_the_monitor_may_set() {
    const ALL: &str = r#"{
      "plugin": "kmsg", "source": "nic",
      "conditions": [
        {"type": "NicLinkDown", "reason": "NicLinkUp", "message": "up", "recoverAfter": "1h"},
        {"type": "Quiet", "reason": "QuietOk", "message": "no rules"}
      ],
      "rules": [
        {"type": "temporary", "reason": "Flap", "pattern": "flap"},
        {"type": "permanent", "condition": "NicLinkDown", "reason": "NicLinkDown", "pattern": "Link is Down"},
        {"type": "recovery", "condition": "NicLinkDown", "reason": "NicLinkBack", "pattern": "Link is Up"}
      ]
    }"#;
    let cfg = parse_monitor_config(Path::new("t.json"), ALL)
        .unwrap()
        .config;
    let expected = vec![
        ("NicLinkDown", "NicLinkBack"),
        ("NicLinkDown", "NicLinkDown"),
        ("NicLinkDown", "NicLinkUp"),
        ("Quiet", "QuietOk"),
    ];
    assert_eq!(cfg.gauge_series(), expected);
    let mut m = Monitor::new(&cfg, ts(0)).unwrap();
    // Every series the monitor sets while it runs is listed: match, recovery rule,
    // recoverAfter.
    let mut pm = ProblemMetrics::default();
    m.init_metrics(&mut pm);
    for (t, l) in [(1, "Link is Down"), (2, "Link is Up"), (3, "Link is Down")] {
        m.process(&LogLine::new(ts(t), l), &mut pm);
    }
    m.tick(ts(3 + 3600), &mut pm);
    let set: Vec<(&str, &str)> = pm.gauges().map(|(t, r, _)| (t, r)).collect();
    assert_eq!(
        set,
        vec![
            ("NicLinkDown", "NicLinkBack"),
            ("NicLinkDown", "NicLinkDown"),
            ("NicLinkDown", "NicLinkUp"),
        ]
    );
    assert!(set.iter().all(|s| expected.contains(s)));
    // metricsReporting off: the monitor sets nothing, so it owns nothing.
    let off = ALL.replace(
        r#""source": "nic","#,
        r#""source": "nic", "metricsReporting": false,"#,
    );
    let cfg = parse_monitor_config(Path::new("t.json"), &off)
        .unwrap()
        .config;
    assert!(cfg.gauge_series().is_empty());
}

#[test]
fn multi_line_rule_matches_across_lines_with_suffix() {
    for strategy in [MatchStrategy::Fast, MatchStrategy::Plain] {
        let mut m = monitor(KERNEL, strategy);
        let (out, _) = feed(&mut m, &[(1, "zero"), (2, "first"), (3, "second")]);
        assert_eq!(out.len(), 1, "{strategy:?}");
        assert_eq!(out[0].events[0].message, "first\nsecond; see docs");
        assert_eq!(
            out[0].events[0].timestamp,
            ts(2),
            "first matched line's timestamp"
        );
    }
}

#[test]
fn initial_status_is_default_conditions() {
    let m = monitor(KERNEL, MatchStrategy::Fast);
    let s = m.initial_status();
    assert!(s.events.is_empty());
    assert_eq!(
        s.conditions,
        vec![Condition {
            type_: "KernelDeadlock".into(),
            status: ConditionStatus::False,
            transition: ts(0),
            reason: "KernelHasNoDeadlock".into(),
            message: "kernel has no deadlock".into(),
        }]
    );
}

#[test]
fn caret_anchors_to_the_oldest_slot_like_upstream() {
    // With bufferSize 3 the joined text starts with empty slots until three lines arrived;
    // `^` then anchors to the oldest buffered line, never to the newest.
    let json = r#"{"plugin":"kmsg","source":"s","bufferSize":3,"rules":[{"type":"temporary","reason":"R","pattern":"^a.*"}]}"#;
    for strategy in [MatchStrategy::Fast, MatchStrategy::Plain] {
        let mut m = monitor(json, strategy);
        let (out, _) = feed(&mut m, &[(1, "a1"), (2, "b"), (3, "c"), (4, "d")]);
        assert!(out.is_empty(), "{strategy:?}");
        let mut m = monitor(json, strategy);
        let (out, _) = feed(&mut m, &[(1, "x"), (2, "a"), (3, "b")]);
        assert!(out.is_empty());
    }
}

#[test]
fn recovery_rule_and_recover_after() {
    let json = r#"{"plugin":"kmsg","source":"s",
      "conditions":[{"type":"LinkDown","reason":"LinkUp","message":"link is up","recoverAfter":"10m"}],
      "rules":[
        {"type":"permanent","condition":"LinkDown","reason":"NicLinkDown","pattern":"eth0: link down"},
        {"type":"recovery","condition":"LinkDown","reason":"NicLinkUp","pattern":"eth0: link up"}
      ]}"#;
    let mut m = monitor(json, MatchStrategy::Fast);
    let (out, pm) = feed(
        &mut m,
        &[
            (10, "eth0: link down"),
            (20, "eth0: link up"),
            (30, "eth0: link up"),
        ],
    );
    assert_eq!(out.len(), 2, "the second link-up changes nothing");
    assert_eq!(out[1].conditions[0].status, ConditionStatus::False);
    assert_eq!(out[1].conditions[0].reason, "NicLinkUp");
    assert_eq!(out[1].events[0].severity, Severity::Info);
    assert_eq!(
        out[1].events[0].message,
        "Node condition LinkDown is now: False, reason: NicLinkUp, message: \"eth0: link up\""
    );
    assert_eq!(pm.gauge("LinkDown", "NicLinkDown"), Some(false));

    // recoverAfter: True at 100, still bad at 400, recovers at 400 + 600 = 1000.
    let mut m = monitor(json, MatchStrategy::Fast);
    let mut pm = ProblemMetrics::default();
    m.process(&LogLine::new(ts(100), "eth0: link down"), &mut pm);
    m.process(&LogLine::new(ts(400), "eth0: link down"), &mut pm);
    assert_eq!(m.next_deadline(), Some(ts(1000)));
    assert!(m.tick(ts(999), &mut pm).is_empty());
    let out = m.tick(ts(5000), &mut pm);
    assert_eq!(out.len(), 1);
    let c = &out[0].conditions[0];
    assert_eq!(
        (c.status, c.reason.as_str(), c.transition),
        (ConditionStatus::False, "LinkUp", ts(1000))
    );
    assert_eq!(
        out[0].events[0].message,
        "Node condition LinkDown is now: False, reason: LinkUp, message: \"link is up\""
    );
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn min_occurrences_within_window() {
    let json = r#"{"plugin":"journald","source":"s",
      "conditions":[{"type":"FrequentKubeletRestart","reason":"NoFrequentKubeletRestart","message":"ok"}],
      "rules":[{"type":"permanent","condition":"FrequentKubeletRestart","reason":"FrequentKubeletRestart",
                "pattern":"Started kubelet.*","minOccurrences":3,"window":"20m"}]}"#;
    let mut m = monitor(json, MatchStrategy::Fast);
    // Three starts spread over more than 20 minutes: no fire. Then two more close together.
    let (out, _) = feed(
        &mut m,
        &[
            (0, "Started kubelet"),
            (700, "Started kubelet"),
            (1300, "Started kubelet"),
            (1400, "Started kubelet"),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].conditions[0].status, ConditionStatus::True);
    assert_eq!(out[0].events[0].timestamp, ts(1400));
}

#[test]
fn severity_info_gives_normal_event() {
    let json = r#"{"plugin":"kmsg","source":"s","rules":[{"type":"temporary","reason":"R","pattern":"x","severity":"info"}]}"#;
    let mut m = monitor(json, MatchStrategy::Fast);
    let (out, _) = feed(&mut m, &[(1, "x")]);
    assert_eq!(out[0].events[0].severity, Severity::Info);
}

#[test]
fn invalid_pattern_error_names_rule() {
    let json = r#"{"plugin":"kmsg","source":"s","rules":[{"type":"temporary","reason":"A","pattern":"ok"},{"type":"temporary","reason":"B","pattern":"(unclosed"}]}"#;
    let cfg = parse_monitor_config(Path::new("t.json"), json)
        .unwrap()
        .config;
    let e = Monitor::new(&cfg, ts(0)).unwrap_err().to_string();
    assert!(
        e.starts_with("t.json: rule 1 (reason \"B\"): pattern \"(unclosed\": invalid regex"),
        "{e}"
    );
}

// ---- Property test: the fast path equals the plain implementation. ----

fn pattern_strategy() -> impl Strategy<Value = String> {
    let atom = prop::sample::select(vec![
        "a", "b", "ab", ".", "a*", "b+", "[ab]", "[^a]", "\\s", "\\w", "\\n", "(a|b)", "x?", "\\b",
        "(?m)^", "^", "$", ".*", "(?s).", " ",
    ]);
    prop::collection::vec(atom, 1..5).prop_map(|v| v.concat())
}

fn line_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", " ", "x", "\n", "ab"]),
        0..6,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn fast_path_equals_plain(
        patterns in prop::collection::vec(pattern_strategy(), 1..6),
        lines in prop::collection::vec(line_strategy(), 1..14),
        buffer_size in 1usize..5,
    ) {
        let rules: Vec<serde_json::Value> = patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| regex::Regex::new(p).is_ok())
            .map(|(i, p)| {
                if i % 2 == 0 {
                    serde_json::json!({"type": "temporary", "reason": format!("R{i}"), "pattern": p})
                } else {
                    serde_json::json!({"type": "permanent", "condition": "C", "reason": format!("R{i}"), "pattern": p})
                }
            })
            .collect();
        let json = serde_json::json!({
            "plugin": "kmsg", "source": "s", "bufferSize": buffer_size,
            "conditions": [{"type": "C", "reason": "Ok", "message": "ok"}],
            "rules": rules,
        })
        .to_string();
        let mut fast = monitor(&json, MatchStrategy::Fast);
        let mut plain = monitor(&json, MatchStrategy::Plain);
        let mut pf = ProblemMetrics::default();
        let mut pp = ProblemMetrics::default();
        for (i, l) in lines.iter().enumerate() {
            let line = LogLine::new(ts(i as i64), l.clone());
            let a = fast.process(&line, &mut pf);
            let b = plain.process(&line, &mut pp);
            prop_assert_eq!(a, b, "line {} {:?}", i, l);
        }
        prop_assert_eq!(pf, pp);
    }

    /// Patterns led by multi-byte literals, so the literal prefilter is in play.
    #[test]
    fn fast_path_with_literal_prefilter_equals_plain(
        patterns in prop::collection::vec(literal_pattern_strategy(), 1..6),
        lines in prop::collection::vec(line_strategy(), 1..14),
        buffer_size in 1usize..5,
    ) {
        let rules: Vec<serde_json::Value> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| serde_json::json!({"type": "temporary", "reason": format!("R{i}"), "pattern": p}))
            .collect();
        let json = serde_json::json!({"plugin": "kmsg", "source": "s", "bufferSize": buffer_size, "rules": rules})
            .to_string();
        let mut fast = monitor(&json, MatchStrategy::Fast);
        let mut plain = monitor(&json, MatchStrategy::Plain);
        let mut pf = ProblemMetrics::default();
        let mut pp = ProblemMetrics::default();
        for (i, l) in lines.iter().enumerate() {
            let line = LogLine::new(ts(i as i64), l.clone());
            prop_assert_eq!(fast.process(&line, &mut pf), plain.process(&line, &mut pp), "line {} {:?}", i, l);
        }
        prop_assert_eq!(pf, pp);
    }
}

fn literal_pattern_strategy() -> impl Strategy<Value = String> {
    let head = prop::sample::select(vec!["ab", "ba", "xa", "a b", "(ab|ba)", "ab?", "(?:xa|ab)"]);
    let tail = prop::collection::vec(
        prop::sample::select(vec![
            "a", "b", ".", "a*", "[ab]", "x?", " ", "\\b", "ab", ".*",
        ]),
        0..3,
    );
    (head, tail).prop_map(|(h, t)| format!("{h}{}", t.concat()))
}
