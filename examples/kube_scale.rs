//! Scale simulation: how many requests one agent sends to the API server per hour at
//! steady state, and during a storm of 10,000 problem lines in a minute, next to what
//! upstream NPD sends in the same cases.
//!
//! Runs the real reporter against the in-repo test API server with every period scaled
//! down by a time factor (the agent's logic is unchanged; only its clock constants shrink).
//!
//! `cargo run --example kube_scale` (about 8 s).

#[path = "../tests/support/apiserver.rs"]
mod apiserver;

use std::time::Duration;

use jiff::Timestamp;
use npd::exporter::kube::{KubeExporter, KubeOptions, KubeTuning};
use npd::types::{Condition, ConditionStatus, Event, Severity, Status};

const NODE: &str = "node-1";

fn scaled(d: Duration, k: f64) -> Duration {
    Duration::from_secs_f64(d.as_secs_f64() / k)
}

async fn start(server: &apiserver::ApiServer, k: f64) -> KubeExporter {
    let opts = KubeOptions {
        apiserver_override: Some(server.url()),
        node_name: NODE.into(),
        wait_timeout: Duration::from_secs(5),
        wait_interval: Duration::from_millis(100),
        heartbeat_period: scaled(Duration::from_secs(300), k),
        write_events: true,
        update_node_conditions: true,
        event_namespace: String::new(),
        // The defaults, upstream's and ours (--kube-api-qps 500, --kube-api-burst 500),
        // the rate scaled.
        qps: (500.0 * k) as f32,
        burst: 500,
        restore_conditions: true,
        delete_removed_conditions: false,
    };
    let d = KubeTuning::default();
    let tuning = KubeTuning {
        batch_delay: scaled(d.batch_delay, k),
        retry_period: scaled(d.retry_period, k),
        event_refill: scaled(d.event_refill, k),
        min_heartbeat_period: scaled(d.min_heartbeat_period, k),
        ..d
    };
    let (exp, _) = KubeExporter::start_with_tuning(
        opts,
        vec!["KernelDeadlock".into(), "ReadonlyFilesystem".into()],
        tuning,
    )
    .await
    .expect("start against the test API server");
    exp
}

fn cond(t: &str, status: ConditionStatus, reason: &str) -> Condition {
    Condition {
        type_: t.into(),
        status,
        transition: Timestamp::now(),
        reason: reason.into(),
        message: String::new(),
    }
}

fn healthy() -> Vec<Condition> {
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
    ]
}

struct Counts {
    status_patches: usize,
    event_posts: usize,
    event_patches: usize,
}

fn counts(s: &apiserver::ApiServer) -> Counts {
    let r = s.requests();
    Counts {
        status_patches: r
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with("/status"))
            .count(),
        event_posts: r.iter().filter(|r| r.method == "POST").count(),
        event_patches: r
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.contains("/events/"))
            .count(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Steady state: one simulated hour, no problems (time factor 600: 1 h = 6 s).
    let k = 600.0;
    let server = apiserver::ApiServer::start().await;
    server.add_node(NODE);
    let exp = start(&server, k).await;
    server.clear_requests();
    exp.report(&Status {
        source: "kernel-monitor".into(),
        events: vec![],
        conditions: healthy(),
    });
    tokio::time::sleep(scaled(Duration::from_secs(3600), k)).await;
    let steady = counts(&server);
    exp.shutdown(Duration::from_secs(1)).await;

    // Storm: 10,000 problem lines in one simulated minute (time factor 60: 1 min = 1 s),
    // 80% temporary (OOM kills of 200 different processes), 20% permanent lines flipping
    // KernelDeadlock (the worst case: a recovery rule or recoverAfter flips it back), each
    // flip with its condition-change event as upstream emits it. Then one quiet minute.
    let k = 60.0;
    let server = apiserver::ApiServer::start().await;
    server.add_node(NODE);
    let exp = start(&server, k).await;
    exp.report(&Status {
        source: "kernel-monitor".into(),
        events: vec![],
        conditions: healthy(),
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.clear_requests();
    let lines = 10_000;
    let step = scaled(Duration::from_secs(60), k) / (lines / 10);
    let mut flips = 0;
    let t0 = tokio::time::Instant::now();
    for i in 0..lines {
        let st = if i % 5 == 4 {
            flips += 1;
            let (status, reason) = if flips % 2 == 1 {
                (ConditionStatus::True, "DockerHung")
            } else {
                (ConditionStatus::False, "KernelHasNoDeadlock")
            };
            let mut c = healthy();
            c[0] = cond("KernelDeadlock", status, reason);
            Status {
                source: "kernel-monitor".into(),
                events: vec![Event {
                    severity: Severity::Warn,
                    timestamp: Timestamp::now(),
                    reason: reason.into(),
                    message: format!(
                        "Node condition KernelDeadlock is now: {status}, reason: {reason}"
                    ),
                }],
                conditions: c,
            }
        } else {
            Status {
                source: "kernel-monitor".into(),
                events: vec![Event {
                    severity: Severity::Warn,
                    timestamp: Timestamp::now(),
                    reason: "OOMKilling".into(),
                    message: format!("Killed process {} (stress)", i % 200),
                }],
                conditions: vec![],
            }
        };
        exp.report(&st);
        if i % 10 == 9 {
            // Pace against the start so scheduling delays don't stretch the minute.
            tokio::time::sleep_until(t0 + step * (i / 10 + 1)).await;
        }
    }
    let storm = counts(&server);
    let storm_minutes = t0.elapsed().as_secs_f64() * k / 60.0;
    tokio::time::sleep(scaled(Duration::from_secs(60), k)).await;
    let after = counts(&server);
    let stats = exp.stats();
    exp.shutdown(Duration::from_secs(1)).await;

    println!("requests one agent sends (test API server, scaled clock)");
    println!("steady state, one hour (heartbeat 5m; counting the first sync):");
    println!(
        "  ours:     {} status PATCH, {} event POST, {} event PATCH",
        steady.status_patches, steady.event_posts, steady.event_patches
    );
    println!("  upstream: 13 status PATCH (the first sync + 12 heartbeats), 0 events");
    println!(
        "storm of {lines} lines ({flips} condition flips) over {storm_minutes:.2} simulated minutes:"
    );
    println!(
        "  ours, during the minute: {} status PATCH, {} event POST, {} event PATCH",
        storm.status_patches, storm.event_posts, storm.event_patches
    );
    println!(
        "  ours, incl. the next minute: {} status PATCH, {} event POST, {} event PATCH; \
         events dropped by budget {}, by full queue {}",
        after.status_patches,
        after.event_posts,
        after.event_patches,
        stats
            .events_dropped_budget
            .load(std::sync::atomic::Ordering::Relaxed),
        stats
            .events_dropped_queue
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    println!(
        "  upstream (model): up to 60 status PATCH (a sync each second with a change), \
         about 26 event writes (spam filter burst 25 + 1 per 5 min per source)"
    );
}
