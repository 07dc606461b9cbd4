//! The Kubernetes reporter against the in-repo test API server: exact requests for
//! conditions and events, batching, retries, heartbeat, restore, budget, rate limit, outages.

#[path = "support/apiserver.rs"]
mod apiserver;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use apiserver::{ApiServer, FaultKind};
use jiff::Timestamp;
use npd::exporter::kube::{KubeExporter, KubeOptions, KubeTuning};
use npd::types::{Condition, ConditionStatus, Event, Severity, Status};
use serde_json::json;

const NODE: &str = "node-a";

fn opts(server: &ApiServer) -> KubeOptions {
    KubeOptions {
        apiserver_override: Some(server.url()),
        node_name: NODE.into(),
        wait_timeout: Duration::from_secs(5),
        wait_interval: Duration::from_millis(100),
        heartbeat_period: Duration::from_secs(300),
        write_events: true,
        update_node_conditions: true,
        event_namespace: String::new(),
        qps: 0.0,
        burst: 10,
        restore_conditions: true,
        delete_removed_conditions: false,
    }
}

fn fast() -> KubeTuning {
    KubeTuning {
        retry_period: Duration::from_millis(300),
        request_timeout: Duration::from_secs(2),
        ..KubeTuning::default()
    }
}

fn cond(t: &str, status: ConditionStatus, reason: &str) -> Condition {
    Condition {
        type_: t.into(),
        status,
        transition: Timestamp::now(),
        reason: reason.into(),
        message: format!("{t} is {status}"),
    }
}

fn status(source: &str, conditions: Vec<Condition>, events: Vec<Event>) -> Status {
    Status {
        source: source.into(),
        events,
        conditions,
    }
}

fn event(reason: &str, message: &str) -> Event {
    Event {
        severity: Severity::Warn,
        timestamp: Timestamp::now(),
        reason: reason.into(),
        message: message.into(),
    }
}

fn owned() -> Vec<String> {
    vec!["KernelDeadlock".into(), "ReadonlyFilesystem".into()]
}

/// Polls `f` until it is true; panics with `what` after a generous timeout.
async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn status_patches(s: &ApiServer) -> Vec<apiserver::Recorded> {
    s.requests_matching("PATCH", &format!("/api/v1/nodes/{NODE}/status"))
}

async fn server() -> ApiServer {
    let s = ApiServer::start().await;
    s.add_node(NODE);
    s
}

#[tokio::test]
async fn start_gets_node_from_cache_and_batches_changes_into_one_patch() {
    let s = server().await;
    let (exp, restored) = KubeExporter::start_with_tuning(opts(&s), owned(), fast())
        .await
        .unwrap();
    assert!(restored.is_empty());
    let gets = s.requests_matching("GET", "/api/v1/nodes/");
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].path, format!("/api/v1/nodes/{NODE}"));
    assert_eq!(gets[0].query.as_deref(), Some("resourceVersion=0"));

    // Several changes within a second, plus a condition type we don't own.
    exp.report(&status(
        "kernel-monitor",
        vec![
            cond(
                "KernelDeadlock",
                ConditionStatus::False,
                "KernelHasNoDeadlock",
            ),
            cond(
                "ReadonlyFilesystem",
                ConditionStatus::False,
                "FilesystemIsNotReadOnly",
            ),
            cond("Ready", ConditionStatus::False, "Hijack"),
        ],
        vec![],
    ));
    exp.report(&status(
        "kernel-monitor",
        vec![cond("KernelDeadlock", ConditionStatus::True, "DockerHung")],
        vec![],
    ));
    exp.report(&status(
        "kernel-monitor",
        vec![cond(
            "KernelDeadlock",
            ConditionStatus::True,
            "AUFSUmountHung",
        )],
        vec![],
    ));
    wait_for("a status PATCH", Duration::from_secs(10), || {
        !status_patches(&s).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let patches = status_patches(&s);
    assert_eq!(patches.len(), 1, "changes within a second are batched");
    let p = &patches[0];
    assert_eq!(
        p.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    let body = p.body.clone().unwrap();
    let conds = body["status"]["conditions"].as_array().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "only status: {body}");
    let types: Vec<&str> = conds.iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["KernelDeadlock", "ReadonlyFilesystem"]);
    assert_eq!(conds[0]["status"], "True");
    assert_eq!(conds[0]["reason"], "AUFSUmountHung");
    for c in conds {
        for k in [
            "lastHeartbeatTime",
            "lastTransitionTime",
            "message",
            "reason",
            "status",
        ] {
            assert!(c.get(k).is_some(), "{k} missing in {c}");
        }
    }
    // Ready and MemoryPressure untouched.
    let ready = s.condition(NODE, "Ready").unwrap();
    assert_eq!(ready["status"], "True");
    assert_eq!(ready["reason"], "KubeletReady");
    assert!(s.condition(NODE, "MemoryPressure").is_some());
    assert_eq!(
        s.condition(NODE, "KernelDeadlock").unwrap()["reason"],
        "AUFSUmountHung"
    );
    assert_eq!(exp.stats().condition_patches.load(Ordering::Relaxed), 1);

    exp.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn failed_patches_are_retried_with_the_latest_state() {
    let s = server().await;
    let (exp, _) = KubeExporter::start_with_tuning(opts(&s), owned(), fast())
        .await
        .unwrap();
    s.fail_next(
        2,
        Some("/status"),
        FaultKind::Status {
            code: 500,
            retry_after: None,
        },
    );
    exp.report(&status(
        "m",
        vec![cond("KernelDeadlock", ConditionStatus::True, "DockerHung")],
        vec![],
    ));
    wait_for("first failed PATCH", Duration::from_secs(10), || {
        !status_patches(&s).is_empty()
    })
    .await;
    exp.report(&status(
        "m",
        vec![cond(
            "KernelDeadlock",
            ConditionStatus::False,
            "KernelHasNoDeadlock",
        )],
        vec![],
    ));
    wait_for("the condition to converge", Duration::from_secs(15), || {
        s.condition(NODE, "KernelDeadlock")
            .is_some_and(|c| c["status"] == "False")
    })
    .await;
    let stats = exp.stats();
    wait_for("success recorded", Duration::from_secs(5), || {
        stats.first_failure_unix_ms.load(Ordering::Relaxed) == 0
    })
    .await;
    let patches = status_patches(&s);
    assert_eq!(patches.len(), 3, "two failures then one success");
    let last = patches[2].body.clone().unwrap();
    assert_eq!(
        last["status"]["conditions"][0]["reason"],
        "KernelHasNoDeadlock"
    );
    assert_eq!(stats.api_errors().get(&500), Some(&2));
    assert_eq!(stats.first_failure_unix_ms.load(Ordering::Relaxed), 0);
    assert!(stats.last_success_unix_ms.load(Ordering::Relaxed) > 0);
    exp.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn heartbeat_resends_conditions_with_jitter() {
    let s = server().await;
    let mut o = opts(&s);
    o.heartbeat_period = Duration::from_millis(400);
    let tuning = KubeTuning {
        heartbeat_jitter: 0.25,
        min_heartbeat_period: Duration::from_millis(100),
        ..fast()
    };
    let (exp, _) = KubeExporter::start_with_tuning(o, owned(), tuning)
        .await
        .unwrap();
    exp.report(&status(
        "m",
        vec![cond(
            "KernelDeadlock",
            ConditionStatus::False,
            "KernelHasNoDeadlock",
        )],
        vec![],
    ));
    wait_for(
        "five PATCHes (one change, four heartbeats)",
        Duration::from_secs(20),
        || status_patches(&s).len() >= 5,
    )
    .await;
    exp.shutdown(Duration::from_secs(2)).await;
    let p = status_patches(&s);
    let gaps: Vec<Duration> = p.windows(2).map(|w| w[1].at - w[0].at).collect();
    // Every heartbeat carries the same condition with the same transition time.
    for r in &p {
        let c = &r.body.as_ref().unwrap()["status"]["conditions"][0];
        assert_eq!(c["type"], "KernelDeadlock");
        assert_eq!(
            c["lastTransitionTime"],
            p[0].body.as_ref().unwrap()["status"]["conditions"][0]["lastTransitionTime"]
        );
    }
    // Every gap is a jittered heartbeat period: 400 ms +-25% = 300..500 ms, plus the
    // request's latency and scheduling noise on the upper side. (That the gaps differ is
    // proven by the unit test of the jitter, where scheduling noise cannot help.)
    for g in &gaps {
        assert!(
            *g >= Duration::from_millis(295) && *g <= Duration::from_millis(650),
            "gaps {gaps:?}"
        );
    }
}

#[tokio::test]
async fn an_outage_longer_than_the_heartbeat_is_retried_at_the_retry_period() {
    let s = server().await;
    let mut o = opts(&s);
    o.heartbeat_period = Duration::from_millis(200);
    let tuning = KubeTuning {
        heartbeat_jitter: 0.0,
        min_heartbeat_period: Duration::from_millis(100),
        ..fast()
    };
    let (exp, _) = KubeExporter::start_with_tuning(o, owned(), tuning)
        .await
        .unwrap();
    exp.report(&status(
        "m",
        vec![cond("KernelDeadlock", ConditionStatus::True, "DockerHung")],
        vec![],
    ));
    wait_for("the condition", Duration::from_secs(10), || {
        s.condition(NODE, "KernelDeadlock").is_some()
    })
    .await;
    // Every status PATCH fails from now on, for much longer than the heartbeat period.
    s.fail_next(
        1_000_000,
        Some("/status"),
        FaultKind::Status {
            code: 500,
            retry_after: None,
        },
    );
    let before = status_patches(&s).len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts = status_patches(&s).len() - before;
    // The heartbeat that fails, then one retry every 300 ms: about 10 in 3 s, not a
    // request as fast as the server answers.
    assert!(
        (5..=12).contains(&attempts),
        "{attempts} status PATCHes in 3 s with a 300 ms retry period"
    );
    exp.shutdown(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_zero_heartbeat_period_is_raised_to_one_second() {
    let s = server().await;
    let mut o = opts(&s);
    o.heartbeat_period = Duration::ZERO;
    let (exp, _) = KubeExporter::start_with_tuning(o, owned(), fast())
        .await
        .unwrap();
    exp.report(&status(
        "m",
        vec![cond("KernelDeadlock", ConditionStatus::True, "DockerHung")],
        vec![],
    ));
    wait_for("the condition", Duration::from_secs(10), || {
        s.condition(NODE, "KernelDeadlock").is_some()
    })
    .await;
    let first = status_patches(&s)[0].at;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    exp.shutdown(Duration::from_secs(1)).await;
    // The change, then a heartbeat about every second (1 s +-10%), not every millisecond.
    let p: Vec<_> = status_patches(&s)
        .into_iter()
        .filter(|r| r.at < first + Duration::from_millis(3500))
        .collect();
    assert!((3..=5).contains(&p.len()), "{} PATCHes in 3.5 s", p.len());
    for w in p.windows(2) {
        assert!(w[1].at - w[0].at >= Duration::from_millis(880), "{p:?}");
    }
}

#[tokio::test]
async fn restores_true_conditions_set_during_this_boot_only() {
    let s = server().await;
    let boot = npd::source::boot_time();
    let after_boot = boot + jiff::SignedDuration::from_secs(60);
    let fmt = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    s.set_condition(
        NODE,
        json!({"type": "KernelDeadlock", "status": "True", "reason": "DockerHung",
               "message": "task docker:7 blocked", "lastHeartbeatTime": fmt(Timestamp::now()),
               "lastTransitionTime": fmt(after_boot)}),
    );
    s.set_condition(
        NODE,
        json!({"type": "ReadonlyFilesystem", "status": "True", "reason": "FilesystemIsReadOnly",
               "message": "before the reboot", "lastHeartbeatTime": "2001-01-01T00:00:00Z",
               "lastTransitionTime": "2001-01-01T00:00:00Z"}),
    );
    let (exp, restored) = KubeExporter::start_with_tuning(opts(&s), owned(), fast())
        .await
        .unwrap();
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(restored[0].type_, "KernelDeadlock");
    assert_eq!(restored[0].status, ConditionStatus::True);
    assert_eq!(restored[0].reason, "DockerHung");
    assert_eq!(restored[0].message, "task docker:7 blocked");
    assert_eq!(fmt(restored[0].transition), fmt(after_boot));
    exp.shutdown(Duration::from_secs(1)).await;

    let mut o = opts(&s);
    o.restore_conditions = false;
    let (exp, restored) = KubeExporter::start_with_tuning(o, owned(), fast())
        .await
        .unwrap();
    assert!(restored.is_empty());
    exp.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn identical_event_repeat_patches_count() {
    let s = server().await;
    let uid = s.node(NODE)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut o = opts(&s);
    o.event_namespace = "npd-events".into();
    let (exp, _) = KubeExporter::start_with_tuning(o, owned(), fast())
        .await
        .unwrap();
    exp.report(&status(
        "kernel-monitor",
        vec![],
        vec![event("OOMKilling", "Killed process 1")],
    ));
    wait_for("event created", Duration::from_secs(10), || {
        s.events().len() == 1
    })
    .await;
    exp.report(&status(
        "kernel-monitor",
        vec![],
        vec![event("OOMKilling", "Killed process 1")],
    ));
    wait_for("count 2", Duration::from_secs(10), || {
        s.events().first().is_some_and(|e| e["count"] == 2)
    })
    .await;
    let posts = s.requests_matching("POST", "/events");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/api/v1/namespaces/npd-events/events");
    let b = posts[0].body.clone().unwrap();
    assert_eq!(
        b["involvedObject"],
        json!({"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": uid,
               "namespace": "npd-events"})
    );
    assert_eq!(
        b["source"],
        json!({"component": "kernel-monitor", "host": NODE})
    );
    assert_eq!(b["type"], "Warning");
    assert_eq!(b["reason"], "OOMKilling");
    assert_eq!(b["message"], "Killed process 1");
    assert_eq!(b["count"], 1);
    assert!(b["firstTimestamp"].is_string() && b["lastTimestamp"].is_string());
    assert!(
        b["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("node-a.")
    );
    let patches = s.requests_matching("PATCH", "/events/");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].body.as_ref().unwrap()["count"], 2);
    assert!(patches[0].body.as_ref().unwrap()["lastTimestamp"].is_string());
    assert_eq!(
        patches[0].path,
        format!(
            "/api/v1/namespaces/npd-events/events/{}",
            b["metadata"]["name"].as_str().unwrap()
        )
    );
    // A different message is a new event.
    exp.report(&status(
        "kernel-monitor",
        vec![],
        vec![event("OOMKilling", "Killed process 2")],
    ));
    wait_for("second event", Duration::from_secs(10), || {
        s.events().len() == 2
    })
    .await;
    assert_eq!(exp.stats().events_sent.load(Ordering::Relaxed), 3);
    exp.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_repeat_of_an_expired_event_creates_it_anew_without_an_error() {
    let s = server().await;
    let (exp, _) = KubeExporter::start_with_tuning(opts(&s), owned(), fast())
        .await
        .unwrap();
    let oom = || {
        status(
            "kernel-monitor",
            vec![],
            vec![event("OOMKilling", "Killed process 1")],
        )
    };
    exp.report(&oom());
    wait_for("event created", Duration::from_secs(10), || {
        s.events().len() == 1
    })
    .await;
    s.expire_events();
    exp.report(&oom());
    let stats = exp.stats();
    wait_for("the repeat written", Duration::from_secs(10), || {
        stats.events_sent.load(Ordering::Relaxed) == 2
    })
    .await;
    // The PATCH of the expired object got its 404, then the event was created anew.
    assert_eq!(s.requests_matching("PATCH", "/events/").len(), 1);
    assert_eq!(s.requests_matching("POST", "/events").len(), 2);
    assert_eq!(s.events().len(), 1);
    assert_eq!(s.events()[0]["count"], 1);
    // An expected outcome, not an API error, and no failure streak.
    assert!(stats.api_errors().is_empty(), "{:?}", stats.api_errors());
    assert_eq!(stats.first_failure_unix_ms.load(Ordering::Relaxed), 0);
    assert_eq!(stats.events_failed.load(Ordering::Relaxed), 0);
    exp.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn refusals_are_api_errors_but_not_an_unreachable_api_server() {
    let s = server().await;
    let (exp, _) = KubeExporter::start_with_tuning(opts(&s), owned(), fast())
        .await
        .unwrap();
    s.fail_next(
        1,
        Some("/events"),
        FaultKind::Status {
            code: 403,
            retry_after: None,
        },
    );
    s.fail_next(
        1,
        Some("/events"),
        FaultKind::Status {
            code: 422,
            retry_after: None,
        },
    );
    exp.report(&status("m", vec![], vec![event("A", "forbidden")]));
    exp.report(&status("m", vec![], vec![event("B", "invalid")]));
    let stats = exp.stats();
    wait_for("both refused", Duration::from_secs(10), || {
        stats.events_failed.load(Ordering::Relaxed) == 2
    })
    .await;
    let errors = stats.api_errors();
    assert_eq!(errors.get(&403), Some(&1), "{errors:?}");
    assert_eq!(errors.get(&422), Some(&1), "{errors:?}");
    // The API server answered: /healthz must not count it as unreachable.
    assert_eq!(stats.first_failure_unix_ms.load(Ordering::Relaxed), 0);
    assert!(!stats.unreachable_longer_than(Duration::ZERO));
    // A 503 does start the streak.
    s.fail_next(
        1,
        Some("/events"),
        FaultKind::Status {
            code: 503,
            retry_after: None,
        },
    );
    exp.report(&status("m", vec![], vec![event("C", "unavailable")]));
    wait_for("the 503", Duration::from_secs(10), || {
        stats.api_errors().get(&503) == Some(&1)
    })
    .await;
    assert!(stats.first_failure_unix_ms.load(Ordering::Relaxed) > 0);
    exp.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn event_budget_allows_25_per_source_then_drops_and_counts() {
    let s = server().await;
    let (exp, _) = KubeExporter::start_with_tuning(opts(&s), owned(), fast())
        .await
        .unwrap();
    for i in 0..30 {
        exp.report(&status(
            "flood",
            vec![],
            vec![event("TaskHung", &format!("task {i} blocked"))],
        ));
    }
    // Another source has its own budget.
    exp.report(&status("other", vec![], vec![event("Oops", "oops")]));
    // 25 of "flood" pass the budget. As client-go: 9 distinct messages are events of
    // their own, the 10th and later similar ones are one combined event (count 16).
    wait_for("all 26 written", Duration::from_secs(10), || {
        exp.stats().events_sent.load(Ordering::Relaxed) == 26
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.requests_matching("POST", "/events").len(), 11);
    assert_eq!(s.events().len(), 11);
    let combined: Vec<_> = s
        .events()
        .into_iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("(combined from similar events): ")
        })
        .collect();
    assert_eq!(combined.len(), 1, "{:?}", s.events());
    assert_eq!(combined[0]["count"], 16);
    assert_eq!(
        combined[0]["message"],
        "(combined from similar events): task 24 blocked"
    );
    let st = exp.stats();
    assert_eq!(st.events_dropped_budget.load(Ordering::Relaxed), 5);
    assert_eq!(st.events_dropped(), 5);
    assert_eq!(st.events_sent.load(Ordering::Relaxed), 26);
    exp.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn similar_events_are_combined_until_the_run_ends() {
    let s = server().await;
    let tuning = KubeTuning {
        // Long enough to cover the 12 writes below even on a slow machine.
        similar_events_window: Duration::from_secs(2),
        ..fast()
    };
    let (exp, _) = KubeExporter::start_with_tuning(opts(&s), owned(), tuning)
        .await
        .unwrap();
    let send = |i: usize| {
        exp.report(&status(
            "kernel-monitor",
            vec![],
            vec![event("TaskHung", &format!("task {i} blocked"))],
        ))
    };
    for i in 0..12 {
        send(i);
    }
    wait_for("12 written", Duration::from_secs(10), || {
        exp.stats().events_sent.load(Ordering::Relaxed) == 12
    })
    .await;
    // 9 single events + 1 combined (count 3).
    assert_eq!(s.events().len(), 10, "{:?}", s.events());
    // A repeat of a message seen in the run creates no new object: it patches its own
    // event or (if the run forgot it, as client-go's does) the combined one.
    send(0);
    wait_for("13 written", Duration::from_secs(10), || {
        exp.stats().events_sent.load(Ordering::Relaxed) == 13
    })
    .await;
    assert_eq!(s.events().len(), 10);
    let counts: Vec<u64> = s
        .events()
        .iter()
        .map(|e| e["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 13, "{counts:?}");
    // The run ends after the window: new messages are events of their own again.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    send(100);
    wait_for("14 written", Duration::from_secs(10), || {
        exp.stats().events_sent.load(Ordering::Relaxed) == 14
    })
    .await;
    assert!(
        s.events()
            .iter()
            .any(|e| e["message"] == "task 100 blocked" && e["count"] == 1),
        "{:?}",
        s.events()
    );
    let patches = s.requests_matching("PATCH", "/events/");
    assert!(
        patches
            .iter()
            .all(|p| p.body.as_ref().unwrap()["message"].is_string())
    );
    exp.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn disabled_writers_send_nothing_of_their_kind() {
    let s = server().await;
    let mut o = opts(&s);
    o.write_events = false;
    o.update_node_conditions = false;
    o.heartbeat_period = Duration::from_millis(100);
    let (exp, _) = KubeExporter::start_with_tuning(o, owned(), fast())
        .await
        .unwrap();
    exp.report(&status(
        "m",
        vec![cond("KernelDeadlock", ConditionStatus::True, "DockerHung")],
        vec![event("OOMKilling", "x")],
    ));
    tokio::time::sleep(Duration::from_millis(1800)).await;
    exp.shutdown(Duration::from_secs(1)).await;
    let reqs = s.requests();
    assert_eq!(reqs.len(), 1, "only the start GET: {reqs:?}");
    assert_eq!(reqs[0].method, "GET");
}

#[tokio::test]
async fn retry_after_of_a_429_is_honoured() {
    let s = server().await;
    let (exp, _) = KubeExporter::start_with_tuning(opts(&s), owned(), fast())
        .await
        .unwrap();
    s.fail_next(
        1,
        Some("/status"),
        FaultKind::Status {
            code: 429,
            retry_after: Some(2),
        },
    );
    exp.report(&status(
        "m",
        vec![cond("KernelDeadlock", ConditionStatus::True, "DockerHung")],
        vec![],
    ));
    wait_for(
        "the condition after the 429",
        Duration::from_secs(15),
        || s.condition(NODE, "KernelDeadlock").is_some(),
    )
    .await;
    let p = status_patches(&s);
    assert_eq!(p.len(), 2);
    let gap = p[1].at - p[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, Retry-After was 2 s"
    );
    assert_eq!(exp.stats().api_errors().get(&429), Some(&1));
    exp.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_long_retry_after_does_not_keep_shutdown_from_flushing() {
    let s = server().await;
    let (exp, _) = KubeExporter::start_with_tuning(opts(&s), owned(), fast())
        .await
        .unwrap();
    s.fail_next(
        1,
        Some("/events"),
        FaultKind::Status {
            code: 429,
            retry_after: Some(60),
        },
    );
    exp.report(&status("m", vec![], vec![event("OOMKilling", "held back")]));
    let stats = exp.stats();
    wait_for("the 429", Duration::from_secs(10), || {
        stats.api_errors().get(&429) == Some(&1)
    })
    .await;
    exp.report(&status(
        "m",
        vec![cond("KernelDeadlock", ConditionStatus::True, "DockerHung")],
        vec![],
    ));
    // Past the batch delay: the Retry-After holds the condition PATCH back too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(status_patches(&s).is_empty());
    let t0 = Instant::now();
    exp.shutdown(Duration::from_secs(2)).await;
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
    // The flush does not wait out the minute: the condition and the event get through.
    assert_eq!(
        s.condition(NODE, "KernelDeadlock").unwrap()["status"],
        "True"
    );
    assert_eq!(s.events().len(), 1);
}

#[tokio::test]
async fn client_side_rate_limit_honours_qps_and_burst() {
    let s = server().await;
    let mut o = opts(&s);
    o.qps = 5.0;
    o.burst = 2;
    let (exp, _) = KubeExporter::start_with_tuning(o, owned(), fast())
        .await
        .unwrap();
    // The start GET used one token; 11 events need (12 - 2) / 5 = 2 s at least.
    for i in 0..11 {
        exp.report(&status("m", vec![], vec![event("E", &format!("e{i}"))]));
    }
    // (The 10th and 11th are similar events: one combined object, written twice.)
    wait_for("11 events", Duration::from_secs(20), || {
        exp.stats().events_sent.load(Ordering::Relaxed) == 11
    })
    .await;
    let reqs = s.requests();
    assert_eq!(reqs.len(), 12);
    let span = reqs.last().unwrap().at - reqs[0].at;
    assert!(
        span >= Duration::from_millis(1800),
        "12 requests in {span:?} at qps 5, burst 2"
    );
    exp.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn api_server_down_then_back_converges_with_bounded_queue() {
    let s = server().await;
    let tuning = KubeTuning {
        event_queue: 20,
        event_burst: 1000,
        ..fast()
    };
    let (exp, _) = KubeExporter::start_with_tuning(opts(&s), owned(), tuning)
        .await
        .unwrap();
    s.set_down(true);
    // A storm while the API server is down: flips and events.
    for i in 0..500 {
        let st = if i % 2 == 0 {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        exp.report(&status(
            "m",
            vec![cond("KernelDeadlock", st, &format!("R{i}"))],
            vec![event("E", &format!("event {i}"))],
        ));
    }
    wait_for("failures", Duration::from_secs(10), || {
        exp.stats().first_failure_unix_ms.load(Ordering::Relaxed) > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = exp.stats();
    assert!(stats.unreachable_longer_than(Duration::from_millis(500)));
    assert!(stats.api_errors().get(&0).copied().unwrap_or(0) >= 2);
    // Queue capped: most events dropped and counted.
    assert!(stats.events_dropped_queue.load(Ordering::Relaxed) >= 470);
    s.set_down(false);
    wait_for(
        "conditions converge after the outage",
        Duration::from_secs(15),
        || {
            s.condition(NODE, "KernelDeadlock")
                .is_some_and(|c| c["reason"] == "R499" && c["status"] == "False")
        },
    )
    .await;
    wait_for("success recorded", Duration::from_secs(5), || {
        stats.first_failure_unix_ms.load(Ordering::Relaxed) == 0
    })
    .await;
    exp.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn removed_condition_types_are_deleted_when_asked() {
    let s = server().await;
    let mut o = opts(&s);
    o.delete_removed_conditions = true;
    let (exp, _) = KubeExporter::start_with_tuning(o, owned(), fast())
        .await
        .unwrap();
    exp.report(&status(
        "m",
        vec![
            cond(
                "KernelDeadlock",
                ConditionStatus::False,
                "KernelHasNoDeadlock",
            ),
            cond(
                "ReadonlyFilesystem",
                ConditionStatus::False,
                "FilesystemIsNotReadOnly",
            ),
        ],
        vec![],
    ));
    wait_for("both conditions", Duration::from_secs(10), || {
        s.condition(NODE, "ReadonlyFilesystem").is_some()
    })
    .await;
    exp.set_owned_condition_types(vec!["KernelDeadlock".into()]);
    wait_for(
        "ReadonlyFilesystem deleted",
        Duration::from_secs(10),
        || s.condition(NODE, "ReadonlyFilesystem").is_none(),
    )
    .await;
    let p = status_patches(&s);
    let last = p.last().unwrap().body.clone().unwrap();
    let conds = last["status"]["conditions"].as_array().unwrap();
    assert!(conds.contains(&json!({"type": "ReadonlyFilesystem", "$patch": "delete"})));
    assert!(s.condition(NODE, "KernelDeadlock").is_some());
    assert!(s.condition(NODE, "Ready").is_some());
    exp.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_flushes_pending_changes() {
    let s = server().await;
    let (exp, _) = KubeExporter::start_with_tuning(opts(&s), owned(), fast())
        .await
        .unwrap();
    exp.report(&status(
        "m",
        vec![cond("KernelDeadlock", ConditionStatus::True, "DockerHung")],
        vec![event("OOMKilling", "bye")],
    ));
    exp.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        s.condition(NODE, "KernelDeadlock").unwrap()["status"],
        "True"
    );
    assert_eq!(s.events().len(), 1);
    // The default event namespace: the Node reference has no namespace, as upstream's.
    let ev = &s.events()[0];
    assert_eq!(ev["metadata"]["namespace"], "default");
    assert!(ev["involvedObject"].get("namespace").is_none(), "{ev}");
}

#[tokio::test]
async fn shutdown_sends_a_change_whose_patch_failed() {
    let s = server().await;
    // The retry would come long after the shutdown.
    let tuning = KubeTuning {
        retry_period: Duration::from_secs(30),
        ..fast()
    };
    let (exp, _) = KubeExporter::start_with_tuning(opts(&s), owned(), tuning)
        .await
        .unwrap();
    s.fail_next(
        1,
        Some("/status"),
        FaultKind::Status {
            code: 500,
            retry_after: None,
        },
    );
    exp.report(&status(
        "m",
        vec![cond("KernelDeadlock", ConditionStatus::True, "DockerHung")],
        vec![],
    ));
    let stats = exp.stats();
    wait_for("the failed PATCH", Duration::from_secs(10), || {
        stats.api_errors().get(&500) == Some(&1)
    })
    .await;
    assert!(s.condition(NODE, "KernelDeadlock").is_none());
    let t0 = Instant::now();
    exp.shutdown(Duration::from_secs(2)).await;
    assert!(t0.elapsed() < Duration::from_millis(2500));
    assert_eq!(
        s.condition(NODE, "KernelDeadlock").unwrap()["status"],
        "True"
    );
    assert_eq!(status_patches(&s).len(), 2);
}

#[tokio::test]
async fn start_waits_for_the_node_then_times_out_clearly() {
    let s = ApiServer::start().await;
    let mut o = opts(&s);
    o.wait_timeout = Duration::from_millis(600);
    let err = KubeExporter::start_with_tuning(o, owned(), fast())
        .await
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(msg.contains("node-a") && msg.contains("not found"), "{msg}");
    assert!(s.requests_matching("GET", "/nodes/node-a").len() >= 3);

    // Unauthorized at first, then the node appears.
    s.add_node(NODE);
    s.fail_next(
        2,
        None,
        FaultKind::Status {
            code: 401,
            retry_after: None,
        },
    );
    let (exp, _) = KubeExporter::start_with_tuning(opts(&s), owned(), fast())
        .await
        .unwrap();
    assert_eq!(exp.stats().api_errors().get(&401), Some(&2));
    exp.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn unknown_override_parameters_are_rejected() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut o = KubeOptions {
        apiserver_override: Some("http://127.0.0.1:9?inClusterConfig=false&kubeletPort=1".into()),
        node_name: NODE.into(),
        wait_timeout: Duration::from_secs(1),
        wait_interval: Duration::from_millis(100),
        heartbeat_period: Duration::from_secs(300),
        write_events: true,
        update_node_conditions: true,
        event_namespace: String::new(),
        qps: 0.0,
        burst: 10,
        restore_conditions: true,
        delete_removed_conditions: false,
    };
    let err = rt
        .block_on(KubeExporter::start(o.clone(), owned()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("kubeletPort"), "{err}");
    o.apiserver_override = Some("http://127.0.0.1:9?auth=/nonexistent/kubeconfig".into());
    let err = rt.block_on(KubeExporter::start(o, owned())).err().unwrap();
    assert!(err.to_string().contains("/nonexistent/kubeconfig"), "{err}");
}

#[tokio::test]
async fn dropped_connections_and_slow_answers_are_retried() {
    let s = server().await;
    let tuning = KubeTuning {
        request_timeout: Duration::from_millis(500),
        ..fast()
    };
    let (exp, _) = KubeExporter::start_with_tuning(opts(&s), owned(), tuning)
        .await
        .unwrap();
    s.fail_next(1, Some("/status"), FaultKind::Drop);
    s.fail_next(1, Some("/status"), FaultKind::Delay(Duration::from_secs(2)));
    s.fail_next(
        1,
        Some("/events"),
        FaultKind::Status {
            code: 503,
            retry_after: None,
        },
    );
    exp.report(&status(
        "m",
        vec![cond("KernelDeadlock", ConditionStatus::True, "DockerHung")],
        vec![event("A", "retried after 503")],
    ));
    wait_for("the condition", Duration::from_secs(15), || {
        s.condition(NODE, "KernelDeadlock").is_some()
    })
    .await;
    wait_for("event A", Duration::from_secs(15), || {
        s.events().iter().any(|e| e["reason"] == "A")
    })
    .await;
    s.fail_next(
        1,
        Some("/events"),
        FaultKind::Status {
            code: 403,
            retry_after: None,
        },
    );
    exp.report(&status("m", vec![], vec![event("B", "refused with 403")]));
    let stats = exp.stats();
    wait_for("B counted as failed", Duration::from_secs(5), || {
        stats.events_failed.load(Ordering::Relaxed) == 1
    })
    .await;
    assert!(!s.events().iter().any(|e| e["reason"] == "B"));
    let errors = stats.api_errors();
    assert!(errors.get(&0).copied().unwrap_or(0) >= 2, "{errors:?}");
    assert_eq!(errors.get(&503), Some(&1));
    assert_eq!(errors.get(&403), Some(&1));
    exp.shutdown(Duration::from_secs(1)).await;
}
