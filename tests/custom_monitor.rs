//! The custom plugin monitor's semantics (pure state machine) and its tokio task run
//! against real shell plugins: concurrency, no self-overlap, shared-condition precedence.

#[path = "support/custom.rs"]
mod custom_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use custom_support::{config, sh_rule};
use jiff::Timestamp;
use npd::custom::{CustomMonitor, CustomPluginMonitor, PluginResult, PluginStatus};
use npd::engine::ProblemMetrics;
use npd::types::{Condition, ConditionStatus, Severity, Status};

const COND: &str = r#"{"type": "C", "reason": "CIsFine", "message": "c is fine"}"#;

fn res(status: PluginStatus, message: &str) -> PluginResult {
    PluginResult {
        status,
        message: message.into(),
        timed_out: false,
    }
}

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

#[test]
fn permanent_rule_true_false_unknown_with_upstream_events() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "",
        COND,
        &[sh_rule("permanent", "C", "CIsBroken", "exit 0", "")],
    );
    let mut m = CustomMonitor::new(&cfg, t(0));
    let mut metrics = ProblemMetrics::default();
    m.init_metrics(&mut metrics);
    assert_eq!(metrics.counter("CIsBroken"), Some(0));
    assert_eq!(metrics.gauge("C", "CIsBroken"), Some(false));
    let init = m.initial_status().unwrap();
    assert_eq!(init.conditions[0].status, ConditionStatus::False);
    assert_eq!(init.conditions[0].reason, "CIsFine");

    // OK while False: nothing to report.
    assert!(
        m.apply(0, &res(PluginStatus::Ok, "fine"), t(1), &mut metrics)
            .is_none()
    );

    let s = m
        .apply(
            0,
            &res(PluginStatus::NonOk, "disk \"gone\""),
            t(2),
            &mut metrics,
        )
        .unwrap();
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.events[0].severity, Severity::Warn);
    assert_eq!(
        s.events[0].message,
        r#"Node condition C is now: True, reason: CIsBroken, message: "disk \"gone\"""#
    );
    assert_eq!(s.conditions[0].status, ConditionStatus::True);
    assert_eq!(s.conditions[0].transition, t(2));
    assert_eq!(metrics.counter("CIsBroken"), Some(1));
    assert_eq!(metrics.gauge("C", "CIsBroken"), Some(true));

    // Same result again: no event, no counter.
    assert!(
        m.apply(
            0,
            &res(PluginStatus::NonOk, "disk \"gone\""),
            t(3),
            &mut metrics
        )
        .is_none()
    );
    // A new message alone does not update the condition (option off).
    assert!(
        m.apply(0, &res(PluginStatus::NonOk, "other"), t(4), &mut metrics)
            .is_none()
    );
    assert_eq!(m.conditions()[0].message, "disk \"gone\"");
    assert_eq!(metrics.counter("CIsBroken"), Some(1));

    // Unknown: default reason, the plugin's message, Normal event.
    let s = m
        .apply(
            0,
            &res(PluginStatus::Unknown, "timeout"),
            t(5),
            &mut metrics,
        )
        .unwrap();
    assert_eq!(s.events[0].severity, Severity::Info);
    let c = &s.conditions[0];
    assert_eq!(
        (c.status, c.reason.as_str(), c.message.as_str()),
        (ConditionStatus::Unknown, "CIsFine", "timeout")
    );
    assert_eq!(metrics.gauge("C", "CIsBroken"), Some(false));

    // OK: back to the default.
    let s = m
        .apply(0, &res(PluginStatus::Ok, "fine"), t(6), &mut metrics)
        .unwrap();
    let c = &s.conditions[0];
    assert_eq!(
        (c.status, c.reason.as_str(), c.message.as_str()),
        (ConditionStatus::False, "CIsFine", "c is fine")
    );
    assert_eq!(
        s.events[0].message,
        r#"Node condition C is now: False, reason: CIsFine, message: "c is fine""#
    );
    assert_eq!(metrics.gauge("C", "CIsFine"), Some(false));
}

#[test]
fn temporary_rule_warns_on_nonok_and_unknown_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "",
        "",
        &[sh_rule("temporary", "", "Blip", "exit 0", "")],
    );
    let mut m = CustomMonitor::new(&cfg, t(0));
    let mut metrics = ProblemMetrics::default();
    m.init_metrics(&mut metrics);
    assert!(
        m.apply(0, &res(PluginStatus::Ok, "ok"), t(1), &mut metrics)
            .is_none()
    );
    let s = m
        .apply(
            0,
            &res(PluginStatus::NonOk, "blip seen"),
            t(2),
            &mut metrics,
        )
        .unwrap();
    assert_eq!(s.events[0].severity, Severity::Warn);
    assert_eq!(
        (s.events[0].reason.as_str(), s.events[0].message.as_str()),
        ("Blip", "blip seen")
    );
    // As upstream (ExitStatus >= NonOK): Unknown also yields the event.
    assert!(
        m.apply(0, &res(PluginStatus::Unknown, "?"), t(3), &mut metrics)
            .is_some()
    );
    assert_eq!(metrics.counter("Blip"), Some(2));
}

#[test]
fn message_change_based_update() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        r#""enable_message_change_based_condition_update": true"#,
        COND,
        &[sh_rule("permanent", "C", "Broken", "exit 0", "")],
    );
    let mut m = CustomMonitor::new(&cfg, t(0));
    let mut metrics = ProblemMetrics::default();
    m.apply(0, &res(PluginStatus::NonOk, "3 errors"), t(1), &mut metrics)
        .unwrap();
    let s = m
        .apply(0, &res(PluginStatus::NonOk, "4 errors"), t(2), &mut metrics)
        .unwrap();
    assert_eq!(s.conditions[0].message, "4 errors");
    assert_eq!(s.conditions[0].transition, t(2));
    assert!(s.events[0].message.contains("4 errors"));
    assert!(
        m.apply(0, &res(PluginStatus::NonOk, "4 errors"), t(3), &mut metrics)
            .is_none()
    );
}

#[test]
fn skip_initial_status_and_metrics_off() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"{{"plugin":"custom","pluginConfig":{{"skip_initial_status":true}},"metricsReporting":false,
        "conditions":[{COND}],"rules":[{}]}}"#,
        sh_rule("permanent", "C", "Broken", "exit 1", "")
    );
    let path = dir.path().join("c.json");
    std::fs::write(&path, text).unwrap();
    let cfg = npd::custom::load_custom_config(&path).unwrap().config;
    let mut m = CustomMonitor::new(&cfg, t(0));
    assert!(m.initial_status().is_none());
    let mut metrics = ProblemMetrics::default();
    m.init_metrics(&mut metrics);
    m.apply(0, &res(PluginStatus::NonOk, "x"), t(1), &mut metrics)
        .unwrap();
    assert_eq!(metrics, ProblemMetrics::default());
}

#[test]
fn shared_condition_precedence_nonok_over_unknown_over_ok() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "",
        COND,
        &[
            sh_rule("permanent", "C", "A", "exit 0", ""),
            sh_rule("permanent", "C", "B", "exit 0", ""),
        ],
    );
    let mut m = CustomMonitor::new(&cfg, t(0));
    let mut metrics = ProblemMetrics::default();
    let s = m
        .apply(0, &res(PluginStatus::NonOk, "a bad"), t(1), &mut metrics)
        .unwrap();
    assert_eq!(s.conditions[0].status, ConditionStatus::True);
    // B's OK must not flip the condition back while A's latest result is NonOK.
    assert!(
        m.apply(1, &res(PluginStatus::Ok, "b ok"), t(2), &mut metrics)
            .is_none()
    );
    assert!(
        m.apply(0, &res(PluginStatus::NonOk, "a bad"), t(3), &mut metrics)
            .is_none()
    );
    assert!(
        m.apply(1, &res(PluginStatus::Unknown, "b ?"), t(4), &mut metrics)
            .is_none()
    );
    assert_eq!(m.conditions()[0].reason, "A");
    // A recovers; B's latest is Unknown: the condition becomes Unknown, not False.
    let s = m
        .apply(0, &res(PluginStatus::Ok, "a ok"), t(5), &mut metrics)
        .unwrap();
    assert_eq!(s.conditions[0].status, ConditionStatus::Unknown);
    assert_eq!(s.conditions[0].message, "b ?");
    // B NonOK: True with B's reason.
    let s = m
        .apply(1, &res(PluginStatus::NonOk, "b bad"), t(6), &mut metrics)
        .unwrap();
    assert_eq!(
        (s.conditions[0].status, s.conditions[0].reason.as_str()),
        (ConditionStatus::True, "B")
    );
    // Only once every rule reports OK does it return to False.
    let s = m
        .apply(1, &res(PluginStatus::Ok, "b ok"), t(7), &mut metrics)
        .unwrap();
    assert_eq!(s.conditions[0].status, ConditionStatus::False);
}

fn true_condition(type_: &str, reason: &str, message: &str, at: Timestamp) -> Condition {
    Condition {
        type_: type_.into(),
        status: ConditionStatus::True,
        transition: at,
        reason: reason.into(),
        message: message.into(),
    }
}

#[test]
fn restored_condition_is_kept_until_the_rule_reports_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "",
        COND,
        &[sh_rule("permanent", "C", "CIsBroken", "exit 0", "")],
    );
    let mut m = CustomMonitor::new(&cfg, t(100));
    let restored = true_condition("C", "CIsBroken", "was broken", t(10));
    assert!(m.restore_condition(&restored));
    assert!(!m.restore_condition(&true_condition("Other", "R", "", t(10))));
    let mut metrics = ProblemMetrics::default();
    m.init_metrics(&mut metrics);
    assert_eq!(metrics.gauge("C", "CIsBroken"), Some(true));
    // The initial status carries the restored state, transition time included.
    assert_eq!(
        m.initial_status().unwrap().conditions,
        vec![restored.clone()]
    );
    // The same problem again: no change, no event, the original transition time stays.
    assert!(
        m.apply(
            0,
            &res(PluginStatus::NonOk, "still broken"),
            t(101),
            &mut metrics
        )
        .is_none()
    );
    assert_eq!(m.conditions()[0], restored);
    // OK: back to the default.
    let s = m
        .apply(0, &res(PluginStatus::Ok, "fine"), t(102), &mut metrics)
        .unwrap();
    assert_eq!(s.conditions[0].status, ConditionStatus::False);
    assert_eq!(s.conditions[0].transition, t(102));
    assert_eq!(metrics.gauge("C", "CIsBroken"), Some(false));
}

#[test]
fn reload_adopts_kept_conditions_and_defaults_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let old_cfg = config(
        dir.path(),
        "",
        &format!(r#"{COND}, {{"type": "Gone", "reason": "GoneOk", "message": "m"}}"#),
        &[
            sh_rule("permanent", "C", "CIsBroken", "exit 1", ""),
            sh_rule("permanent", "Gone", "GoneBad", "exit 1", ""),
        ],
    );
    let mut old = CustomMonitor::new(&old_cfg, t(0));
    let mut metrics = ProblemMetrics::default();
    old.apply(0, &res(PluginStatus::NonOk, "broken"), t(1), &mut metrics)
        .unwrap();
    old.apply(1, &res(PluginStatus::NonOk, "gone"), t(1), &mut metrics)
        .unwrap();
    let new_cfg = config(
        dir.path(),
        "",
        &format!(r#"{COND}, {{"type": "New", "reason": "NewOk", "message": "n"}}"#),
        &[
            sh_rule("permanent", "C", "CIsBroken", "exit 1", ""),
            sh_rule("permanent", "New", "NewBad", "exit 1", ""),
        ],
    );
    let mut new = CustomMonitor::new(&new_cfg, t(5));
    new.adopt_state(&old);
    let types: Vec<&str> = new.conditions().iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, ["C", "New"]);
    assert_eq!(new.conditions()[0], old.conditions()[0]);
    assert_eq!(new.conditions()[1].status, ConditionStatus::False);
    assert_eq!(new.conditions()[1].transition, t(5));
}

#[test]
fn reload_with_changed_default_updates_a_condition_at_its_default() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = |reason: &str, message: &str| {
        config(
            dir.path(),
            "",
            &format!(
                r#"{{"type": "C", "reason": "{reason}", "message": "{message}"}},
                   {{"type": "D", "reason": "{reason}", "message": "{message}"}}"#
            ),
            &[
                sh_rule("permanent", "C", "CIsBroken", "exit 0", ""),
                sh_rule("permanent", "D", "DIsBroken", "exit 1", ""),
            ],
        )
    };
    let mut old = CustomMonitor::new(&cfg("OldOk", "old message"), t(0));
    let mut metrics = ProblemMetrics::default();
    old.apply(1, &res(PluginStatus::NonOk, "d broken"), t(1), &mut metrics)
        .unwrap();
    let mut new = CustomMonitor::new(&cfg("NewOk", "new message"), t(5));
    new.adopt_state(&old);
    let c = &new.conditions()[0];
    // At the old default: the new default's reason and message, the old transition.
    assert_eq!(
        (
            c.status,
            c.reason.as_str(),
            c.message.as_str(),
            c.transition
        ),
        (ConditionStatus::False, "NewOk", "new message", t(0))
    );
    // True: carried over unchanged.
    assert_eq!(new.conditions()[1], old.conditions()[1]);
    assert_eq!(new.conditions()[1].reason, "DIsBroken");
}

#[test]
fn gauge_series_lists_every_series_the_monitor_may_set() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "",
        &format!(r#"{COND}, {{"type": "D", "reason": "DIsFine", "message": "d"}}"#),
        &[
            sh_rule("permanent", "C", "CIsBroken", "exit 1", ""),
            sh_rule("temporary", "", "Blip", "exit 1", ""),
        ],
    );
    let expected = vec![("C", "CIsBroken"), ("C", "CIsFine"), ("D", "DIsFine")];
    assert_eq!(cfg.gauge_series(), expected);
    let mut m = CustomMonitor::new(&cfg, t(0));
    // A condition restored with a reason no rule has gets no series, at start or when
    // results come in, as for log monitors (a reload removes such series).
    assert!(m.restore_condition(&true_condition("D", "DWasBroken", "m", t(1))));
    let mut metrics = ProblemMetrics::default();
    m.init_metrics(&mut metrics);
    assert_eq!(metrics.gauge("D", "DWasBroken"), None);
    // Every series set while running is listed (the default reason's included).
    m.apply(0, &res(PluginStatus::NonOk, "bad"), t(2), &mut metrics);
    m.apply(0, &res(PluginStatus::Ok, "ok"), t(3), &mut metrics);
    m.apply(0, &res(PluginStatus::Unknown, "?"), t(4), &mut metrics);
    let series = cfg.gauge_series();
    for (ty, reason, _) in metrics.gauges() {
        assert!(
            series.contains(&(ty, reason)),
            "{ty} {reason} not in {series:?}"
        );
    }
    assert_eq!(metrics.gauge("C", "CIsFine"), Some(false));
    assert_eq!(metrics.gauge("D", "DWasBroken"), None);
}

#[test]
fn plugin_status_orders_by_precedence() {
    // NonOK > Unknown > OK, as several rules of one condition combine.
    assert!(PluginStatus::Ok < PluginStatus::Unknown);
    assert!(PluginStatus::Unknown < PluginStatus::NonOk);
    let mut all = [PluginStatus::NonOk, PluginStatus::Ok, PluginStatus::Unknown];
    all.sort();
    assert_eq!(
        all,
        [PluginStatus::Ok, PluginStatus::Unknown, PluginStatus::NonOk]
    );
}

#[test]
fn carried_over_true_waits_for_every_rule_of_its_condition() {
    // Two rules on one condition; after a restore (or reload) B, the one that set it
    // True, has not reported yet when A reports OK: no flap to False and back.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "",
        COND,
        &[
            sh_rule("permanent", "C", "A", "exit 0", ""),
            sh_rule("permanent", "C", "B", "exit 1", ""),
        ],
    );
    let mut m = CustomMonitor::new(&cfg, t(100));
    let restored = true_condition("C", "B", "b bad", t(10));
    m.restore_condition(&restored);
    let mut metrics = ProblemMetrics::default();
    assert!(
        m.apply(0, &res(PluginStatus::Ok, "a ok"), t(101), &mut metrics)
            .is_none()
    );
    assert_eq!(m.conditions()[0], restored);
    assert!(
        m.apply(1, &res(PluginStatus::NonOk, "b bad"), t(102), &mut metrics)
            .is_none()
    );
    assert_eq!(m.conditions()[0], restored);
    // Both have reported; both OK: False.
    let s = m
        .apply(1, &res(PluginStatus::Ok, "b ok"), t(103), &mut metrics)
        .unwrap();
    assert_eq!(s.conditions[0].status, ConditionStatus::False);
    // Unknown and NonOK still act at once, whatever has not reported.
    let mut m = CustomMonitor::new(&cfg, t(100));
    let s = m
        .apply(0, &res(PluginStatus::Unknown, "a ?"), t(101), &mut metrics)
        .unwrap();
    assert_eq!(s.conditions[0].status, ConditionStatus::Unknown);
}

/// Runs the monitor for `d`, returns what it sent.
async fn run_for(
    mon: CustomPluginMonitor,
    d: Duration,
) -> (Vec<Status>, Arc<Mutex<ProblemMetrics>>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1000);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(Mutex::new(ProblemMetrics::default()));
    let task = tokio::spawn(mon.run(tx, metrics.clone(), stop_rx));
    tokio::time::sleep(d).await;
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    while let Ok(s) = rx.try_recv() {
        out.push(s);
    }
    (out, metrics)
}

/// Parses "S|E rule nanos" lines into the maximum number of runs in progress at once,
/// overall and per rule.
fn max_overlap(log: &str) -> (usize, std::collections::BTreeMap<String, usize>, usize) {
    let mut ev: Vec<(u128, bool, String)> = log
        .lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            let kind = p.next()?;
            let rule = p.next()?.to_string();
            let ns: u128 = p.next()?.parse().ok()?;
            Some((ns, kind == "S", rule))
        })
        .collect();
    // Ends before starts at the same instant.
    ev.sort_by_key(|(ns, start, _)| (*ns, *start));
    let (mut cur, mut max, mut starts) = (0usize, 0usize, 0usize);
    let mut per: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for (_, start, rule) in ev {
        let e = per.entry(rule).or_default();
        if start {
            cur += 1;
            starts += 1;
            e.0 += 1;
            e.1 = e.1.max(e.0);
        } else {
            cur -= 1;
            e.0 -= 1;
        }
        max = max.max(cur);
    }
    (
        max,
        per.into_iter().map(|(k, (_, m))| (k, m)).collect(),
        starts,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_and_no_self_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut rules = Vec::new();
    for i in 0..5 {
        // Each run takes longer than the interval: a rule that overlapped itself, or a
        // monitor that ignored `concurrency`, would show in the log.
        let body = format!(
            "echo S r{i} $(date +%s%N) >> {l}; sleep 0.4; echo E r{i} $(date +%s%N) >> {l}; exit 0",
            l = log.display()
        );
        rules.push(sh_rule(
            "temporary",
            "",
            &format!("R{i}"),
            &body,
            r#", "invoke_interval": "200ms""#,
        ));
    }
    let cfg = config(
        dir.path(),
        r#""concurrency": 2, "timeout": "10s""#,
        "",
        &rules,
    );
    let mon = CustomPluginMonitor::new(cfg).unwrap();
    let health = mon.health();
    let (statuses, _) = run_for(mon, Duration::from_secs(4)).await;
    // The initial status only: OK temporary rules report nothing.
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert!(statuses[0].events.is_empty());
    let text = std::fs::read_to_string(&log).unwrap();
    let (max, per_rule, starts) = max_overlap(&text);
    assert!(max <= 2, "{max} plugins ran at once:\n{text}");
    assert!(starts >= 5, "only {starts} runs:\n{text}");
    for (rule, m) in per_rule {
        assert_eq!(m, 1, "rule {rule} overlapped itself:\n{text}");
    }
    let h = health.rules();
    assert_eq!(h.len(), 5);
    assert!(
        h.iter().all(|r| r.runs >= 1 && r.last_run.is_some()),
        "{h:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_condition_does_not_flip_within_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let every = r#", "invoke_interval": "150ms""#;
    let cfg = config(
        dir.path(),
        r#""concurrency": 2"#,
        COND,
        &[
            sh_rule(
                "permanent",
                "C",
                "ABroken",
                "echo a is broken; exit 1",
                every,
            ),
            sh_rule("permanent", "C", "BBroken", "echo b is fine; exit 0", every),
        ],
    );
    let mon = CustomPluginMonitor::new(cfg).unwrap();
    let (statuses, metrics) = run_for(mon, Duration::from_secs(3)).await;
    // Initial status, then exactly one change: True with A's reason. Never back to False.
    assert!(statuses[0].events.is_empty());
    let events: Vec<_> = statuses.iter().flat_map(|s| s.events.iter()).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].message,
        r#"Node condition C is now: True, reason: ABroken, message: "a is broken""#
    );
    let m = metrics.lock().unwrap();
    assert_eq!(m.counter("ABroken"), Some(1));
    assert_eq!(m.gauge("C", "ABroken"), Some(true));
    assert_eq!(m.counter("BBroken"), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condition_follows_the_script_result_and_health_shows_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("broken");
    let body = format!(
        "if [ -e {} ]; then echo broken; exit 1; fi; echo fine; exit 0",
        flag.display()
    );
    let every = r#", "invoke_interval": "100ms""#;
    let cfg = config(
        dir.path(),
        r#""timeout": "300ms""#,
        COND,
        &[
            sh_rule("permanent", "C", "Broken", &body, every),
            sh_rule("temporary", "", "Hangs", "sleep 1000", every),
        ],
    );
    let mon = CustomPluginMonitor::new(cfg).unwrap();
    let health = mon.health();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1000);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(Mutex::new(ProblemMetrics::default()));
    let task = tokio::spawn(mon.run(tx, metrics, stop_rx));
    std::fs::write(&flag, "").unwrap();
    let s = wait_for(&mut rx, ConditionStatus::True).await;
    assert_eq!(s.conditions[0].message, "broken");
    std::fs::remove_file(&flag).unwrap();
    let s = wait_for(&mut rx, ConditionStatus::False).await;
    assert_eq!(s.conditions[0].message, "c is fine");
    // The hanging temporary rule times out every run: /healthz can see it.
    tokio::time::timeout(Duration::from_secs(20), async {
        while health.timing_out(2).is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("hanging plugin never reported as timing out");
    let hung = health.timing_out(2);
    assert_eq!(hung[0].reason, "Hangs");
    assert!(hung[0].consecutive_unknown >= 2);
    assert_eq!(health.rules()[0].consecutive_timeouts, 0);
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap();
}

async fn wait_for(rx: &mut tokio::sync::mpsc::Receiver<Status>, want: ConditionStatus) -> Status {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let s = rx.recv().await.unwrap();
            if s.conditions.first().is_some_and(|c| c.status == want) && !s.events.is_empty() {
                return s;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("condition never became {want}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_round_is_spread_over_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // 5 rules, interval 10s: first runs at offsets 0, 2, 4, 6, 8 s.
    let rules: Vec<String> = (0..5)
        .map(|i| {
            let body = format!("echo r{i} >> {}; exit 0", log.display());
            sh_rule("temporary", "", &format!("R{i}"), &body, "")
        })
        .collect();
    let cfg = config(
        dir.path(),
        r#""concurrency": 5, "invoke_interval": "10s""#,
        "",
        &rules,
    );
    let mon = CustomPluginMonitor::new(cfg).unwrap();
    run_for(mon, Duration::from_secs(4)).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("r0"),
        "the first rule starts at once: {text:?}"
    );
    // Rules 3 and 4 are due at 6 s and 8 s; lateness can only delay them further.
    assert!(
        !text.contains("r3") && !text.contains("r4"),
        "all started at once: {text:?}"
    );
}
