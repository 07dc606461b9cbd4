//! The real daemon, standalone (--enable-k8s-exporter=false), on a real log file:
//! endpoints, metrics, hot reload and graceful shutdown.

mod support;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use support::configmap::ConfigMapDir;
use support::daemon::{Daemon, http_get, wait_for};

const RULES_V1: &str = r#"{
  "plugin": "filelog",
  "pluginConfig": {"timestamp": "^.{15}", "message": "kernel: (?:\\[\\s*\\d+\\.\\d+\\] )?(.*)", "timestampFormat": "Jan _2 15:04:05"},
  "logPath": "LOG",
  "lookback": "5m",
  "source": "kernel-monitor",
  "conditions": [{"type": "KernelDeadlock", "reason": "KernelHasNoDeadlock", "message": "kernel has no deadlock"}],
  "rules": [
    {"type": "temporary", "reason": "OOMKilling", "pattern": "Killed process \\d+ .*"},
    {"type": "permanent", "condition": "KernelDeadlock", "reason": "DockerHung", "pattern": "task docker:\\w+ blocked for more than \\w+ seconds\\."}
  ]
}"#;

const HOST: &str = "node1";

fn append(path: &Path, msg: &str) {
    support::syslog::append(path, HOST, msg);
}

fn counter(d: &Daemon, reason: &str) -> Option<f64> {
    d.metric(&format!("problem_counter{{reason=\"{reason}\"}}"))
}

#[test]
fn endpoints_metrics_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kern.log");
    append(&log, "Linux version 6.1.0 starting");
    let cfg = dir.path().join("kernel-monitor-filelog.json");
    std::fs::write(&cfg, RULES_V1.replace("LOG", log.to_str().unwrap())).unwrap();
    let mut d = Daemon::standalone(dir.path(), &cfg, &[]);
    let healthy = wait_for(Duration::from_secs(10), || {
        http_get(d.port, "/healthz").ok().filter(|(c, _)| *c == 200)
    });
    assert!(
        healthy.is_some(),
        "healthz never 200: {:?}\n{}",
        http_get(d.port, "/healthz"),
        d.log()
    );

    // Every rule reason starts at 0, upstream's names, no _total suffix.
    let m = d.metrics();
    assert!(
        m.contains("problem_counter{reason=\"OOMKilling\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("problem_gauge{reason=\"DockerHung\",type=\"KernelDeadlock\"} 0"),
        "{m}"
    );

    append(
        &log,
        "Out of memory: Killed process 4242 (stress) total-vm:1024kB",
    );
    append(&log, "task docker:1234 blocked for more than 120 seconds.");
    let got = wait_for(Duration::from_secs(10), || {
        counter(&d, "OOMKilling").filter(|v| *v == 1.0)
    });
    assert!(
        got.is_some(),
        "OOMKilling not counted:\n{}\n{}",
        d.metrics(),
        d.log()
    );
    let g = wait_for(Duration::from_secs(10), || {
        d.metric("problem_gauge{reason=\"DockerHung\",type=\"KernelDeadlock\"}")
            .filter(|v| *v == 1.0)
    });
    assert!(g.is_some(), "{}", d.metrics());

    let (code, body) = http_get(d.port, "/conditions").unwrap();
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let c = &v[0];
    assert_eq!(c["type"], "KernelDeadlock");
    assert_eq!(c["status"], "True");
    assert_eq!(c["reason"], "DockerHung");
    assert_eq!(c["source"], "kernel-monitor");
    // The source's own counters: the three lines of the log, all read, none dropped.
    let series = |name: &str| {
        format!(
            "{name}{{config=\"{}\",plugin=\"filelog\",source=\"kernel-monitor\"}}",
            cfg.display()
        )
    };
    assert_eq!(
        d.metric(&series("npd_source_lines_read_total")),
        Some(3.0),
        "{}",
        d.metrics()
    );
    for none in [
        "npd_source_lines_skipped_total",
        "npd_source_lines_unparsed_total",
    ] {
        assert_eq!(d.metric(&series(none)), Some(0.0), "{}", d.metrics());
    }

    d.signal(libc::SIGTERM);
    let code = d.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", d.log());
}

#[test]
fn configmap_swap_reloads_rules_and_rejects_broken_config() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kern.log");
    append(&log, "boot");
    let v1 = RULES_V1.replace("LOG", log.to_str().unwrap());
    let cm = dir.path().join("config");
    let mut cmdir = ConfigMapDir::new(&cm, &[("kernel-monitor-filelog.json", &v1)]);
    let cfg = cm.join("kernel-monitor-filelog.json");
    let d = Daemon::standalone(dir.path(), &cfg, &[]);
    append(&log, "task docker:1 blocked for more than 120 seconds.");
    assert!(
        wait_for(Duration::from_secs(10), || {
            d.metric("problem_gauge{reason=\"DockerHung\",type=\"KernelDeadlock\"}")
                .filter(|v| *v == 1.0)
        })
        .is_some(),
        "{}",
        d.log()
    );

    // v2 adds a rule; the condition keeps its True state, old lines are not re-read.
    let v2 = v1.replace(
        r#"{"type": "temporary", "reason": "OOMKilling""#,
        r#"{"type": "temporary", "reason": "SoftLockup", "pattern": "watchdog: BUG: soft lockup.*"},
    {"type": "temporary", "reason": "OOMKilling""#,
    );
    cmdir.update(&[("kernel-monitor-filelog.json", &v2)]);
    let reloaded = wait_for(Duration::from_secs(10), || {
        d.metric("npd_config_reloads_total{result=\"success\"}")
            .filter(|v| *v == 1.0)
    });
    assert!(reloaded.is_some(), "{}\n{}", d.metrics(), d.log());
    // The monitor task swaps in the new rules (and initialises their metrics) after the
    // reload is counted: wait for the new reason's counter to appear, at 0.
    assert!(
        wait_for(Duration::from_secs(10), || counter(&d, "SoftLockup")
            .filter(|v| *v == 0.0))
        .is_some(),
        "{}",
        d.metrics()
    );
    append(
        &log,
        "watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [kworker/3:1:123]",
    );
    assert!(
        wait_for(Duration::from_secs(10), || counter(&d, "SoftLockup")
            .filter(|v| *v == 1.0))
        .is_some()
    );
    let (_, body) = http_get(d.port, "/conditions").unwrap();
    assert!(
        body.contains("\"status\":\"True\""),
        "condition state lost on reload: {body}"
    );
    assert_eq!(counter(&d, "DockerHung"), Some(1.0), "old lines re-read");
    let gauge = "problem_gauge{reason=\"DockerHung\",type=\"KernelDeadlock\"}";
    assert_eq!(d.metric(gauge), Some(1.0), "gauge reset by the reload");

    // A broken config is rejected; the last good one keeps running.
    cmdir.update(&[("kernel-monitor-filelog.json", "{ not json")]);
    let failed = wait_for(Duration::from_secs(10), || {
        d.metric("npd_config_reloads_total{result=\"failure\"}")
            .filter(|v| *v == 1.0)
    });
    assert!(failed.is_some(), "{}", d.metrics());
    assert!(
        d.log().contains("kernel-monitor-filelog.json"),
        "{}",
        d.log()
    );
    append(
        &log,
        "watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [kworker/1:1:12]",
    );
    assert!(
        wait_for(Duration::from_secs(10), || counter(&d, "SoftLockup")
            .filter(|v| *v == 2.0))
        .is_some()
    );

    // v3 drops the DockerHung rule: its gauge series goes away instead of staying at 1.
    let v3 = v2.replace(
        r#"{"type": "permanent", "condition": "KernelDeadlock", "reason": "DockerHung", "pattern": "task docker:\\w+ blocked for more than \\w+ seconds\\."}"#,
        r#"{"type": "permanent", "condition": "KernelDeadlock", "reason": "KernelHung", "pattern": "kernel hung"}"#,
    );
    assert_ne!(v3, v2);
    cmdir.update(&[("kernel-monitor-filelog.json", &v3)]);
    let reloaded = wait_for(Duration::from_secs(10), || {
        d.metric("npd_config_reloads_total{result=\"success\"}")
            .filter(|v| *v == 2.0)
    });
    assert!(reloaded.is_some(), "{}\n{}", d.metrics(), d.log());
    assert_eq!(d.metric(gauge), None, "{}", d.metrics());
    // The new rule's gauge appears once the monitor has swapped in the new rules.
    assert!(
        wait_for(Duration::from_secs(10), || d.metric(
            "problem_gauge{reason=\"KernelHung\",type=\"KernelDeadlock\"}"
        ))
        .is_some(),
        "{}",
        d.metrics()
    );
    assert_eq!(d.metric(gauge), None, "{}", d.metrics());
}

#[test]
fn missing_log_file_is_waiting_not_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("not-yet.log");
    let cfg = dir.path().join("k.json");
    std::fs::write(&cfg, RULES_V1.replace("LOG", log.to_str().unwrap())).unwrap();
    let d = Daemon::standalone(dir.path(), &cfg, &[]);
    let body = wait_for(Duration::from_secs(10), || {
        http_get(d.port, "/healthz")
            .ok()
            .filter(|(_, b)| b.contains("\"waiting\""))
    });
    let (code, body) = body.unwrap_or_else(|| panic!("{:?}", http_get(d.port, "/healthz")));
    assert_eq!(code, 200, "{body}");
    // The file appears: its lines are read.
    append(&log, "Out of memory: Killed process 1 (x) total-vm:1kB");
    assert!(
        wait_for(Duration::from_secs(10), || counter(&d, "OOMKilling")
            .filter(|v| *v == 1.0))
        .is_some(),
        "{}",
        d.log()
    );
}

#[test]
fn hung_read_is_stalled_then_recovers() {
    // A FIFO as the log: opening it blocks until a writer appears, the way a read blocks
    // on a dead NFS mount. The source is working, not waiting for input, and makes no
    // progress: /healthz must say "stalled" once --source-stall-timeout has passed.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kern.fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&log)
        .status()
        .unwrap();
    assert!(status.success());
    let cfg = dir.path().join("k.json");
    std::fs::write(&cfg, RULES_V1.replace("LOG", log.to_str().unwrap())).unwrap();
    let d = Daemon::standalone(dir.path(), &cfg, &["--source-stall-timeout=2s"]);
    let stalled = wait_for(Duration::from_secs(15), || {
        http_get(d.port, "/healthz")
            .ok()
            .filter(|(_, b)| b.contains("\"stalled\""))
    });
    let (code, body) = stalled.unwrap_or_else(|| {
        panic!(
            "never stalled: {:?}\n{}",
            http_get(d.port, "/healthz"),
            d.log()
        )
    });
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("--source-stall-timeout=2s"), "{body}");
    let up = format!(
        "npd_source_up{{config=\"{}\",plugin=\"filelog\",source=\"kernel-monitor\"}}",
        cfg.display()
    );
    assert_eq!(d.metric(&up), Some(0.0), "{}", d.metrics());
    // A writer appears, writes a line and goes away: the read completes, the source
    // reaches end of file and waits for input again; healthy, and the line counted.
    {
        let mut w = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        w.write_all(
            support::syslog::kernel_line(HOST, "Out of memory: Killed process 1 (x) total-vm:1kB")
                .as_bytes(),
        )
        .unwrap();
    }
    assert!(
        wait_for(Duration::from_secs(10), || counter(&d, "OOMKilling")
            .filter(|v| *v == 1.0))
        .is_some(),
        "{}",
        d.log()
    );
    let healthy = wait_for(Duration::from_secs(10), || {
        http_get(d.port, "/healthz").ok().filter(|(c, _)| *c == 200)
    });
    assert!(
        healthy.is_some(),
        "still unhealthy: {:?}",
        http_get(d.port, "/healthz")
    );
    assert_eq!(d.metric(&up), Some(1.0), "{}", d.metrics());
    // Waiting for input past the stall timeout is not a stall: a quiet log is fine.
    std::thread::sleep(Duration::from_secs(3));
    let (code, body) = http_get(d.port, "/healthz").unwrap();
    assert_eq!(code, 200, "{body}");
}

#[test]
fn reload_keeps_unchanged_monitors_and_carries_conditions_to_a_new_source() {
    let dir = tempfile::tempdir().unwrap();
    let log_a = dir.path().join("a.log");
    let log_b = dir.path().join("b.log");
    let log_c = dir.path().join("c.log");
    append(&log_a, "boot");
    append(&log_b, "boot");
    append(&log_c, "boot");
    let kernel = RULES_V1.replace("LOG", log_a.to_str().unwrap());
    // A second monitor counting OOM kills only from the second one on within an hour.
    let counting = r#"{
  "plugin": "filelog",
  "pluginConfig": {"timestamp": "^.{15}", "message": "kernel: (?:\\[\\s*\\d+\\.\\d+\\] )?(.*)", "timestampFormat": "Jan _2 15:04:05"},
  "logPath": "LOG",
  "lookback": "5m",
  "source": "counting-monitor",
  "conditions": [],
  "rules": [{"type": "temporary", "reason": "OOMTwice", "pattern": "Killed process \\d+ .*", "minOccurrences": 2, "window": "1h"}]
}"#
    .replace("LOG", log_c.to_str().unwrap());
    let cm = dir.path().join("config");
    let mut cmdir = ConfigMapDir::new(
        &cm,
        &[("kernel.json", &kernel), ("counting.json", &counting)],
    );
    let mut d = Daemon::start(
        dir.path(),
        &[
            "--enable-k8s-exporter=false",
            &format!(
                "--config.system-log-monitor={},{}",
                cm.join("kernel.json").display(),
                cm.join("counting.json").display()
            ),
        ],
    );
    d.wait_up();
    let gauge = "problem_gauge{reason=\"DockerHung\",type=\"KernelDeadlock\"}";
    append(&log_a, "task docker:1 blocked for more than 120 seconds.");
    append(&log_c, "Out of memory: Killed process 1 (x) total-vm:1kB");
    assert!(
        wait_for(Duration::from_secs(10), || d
            .metric(gauge)
            .filter(|v| *v == 1.0))
        .is_some(),
        "{}",
        d.log()
    );

    // The kernel monitor now reads another log: its source restarts, and the True
    // condition carries over. The counting monitor's config is unchanged: it keeps its
    // occurrence window, so one more OOM kill is its second.
    let kernel_b = RULES_V1.replace("LOG", log_b.to_str().unwrap());
    cmdir.update(&[("kernel.json", &kernel_b), ("counting.json", &counting)]);
    assert!(
        wait_for(Duration::from_secs(10), || d
            .metric("npd_config_reloads_total{result=\"success\"}")
            .filter(|v| *v == 1.0))
        .is_some(),
        "{}",
        d.log()
    );
    let log_label = format!("\"log\":\"{}\"", log_b.display());
    assert!(
        wait_for(Duration::from_secs(10), || http_get(d.port, "/healthz")
            .ok()
            .filter(|(_, b)| b.contains(&log_label)))
        .is_some(),
        "new source not registered: {:?}",
        http_get(d.port, "/healthz")
    );
    let (_, body) = http_get(d.port, "/conditions").unwrap();
    assert!(
        body.contains("\"status\":\"True\"") && body.contains("DockerHung"),
        "condition lost when the source changed: {body}"
    );
    assert_eq!(d.metric(gauge), Some(1.0), "{}", d.metrics());
    append(&log_c, "Out of memory: Killed process 2 (x) total-vm:1kB");
    assert!(
        wait_for(Duration::from_secs(10), || counter(&d, "OOMTwice")
            .filter(|v| *v == 1.0))
        .is_some(),
        "the unchanged monitor lost its occurrence window: {}",
        d.metrics()
    );
}
