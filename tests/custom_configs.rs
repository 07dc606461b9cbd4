//! Every upstream custom plugin config loads unchanged; our shipped plugins and their
//! configs work.

#[path = "support/custom.rs"]
mod custom_support;
#[path = "support/upstream.rs"]
mod upstream_support;

use std::path::Path;
use std::time::Duration;

use npd::custom::{CustomRuleKind, PluginStatus, load_custom_config, run_once, run_plugin};
use npd::types::ConditionStatus;

#[test]
fn every_upstream_custom_config_loads() {
    let dir = upstream_support::config_dir();
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if value.get("plugin").and_then(|p| p.as_str()) != Some("custom") {
            continue;
        }
        let l = load_custom_config(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!l.config.rules.is_empty(), "{}", path.display());
        // No unknown keys in upstream's own files; only missing-plugin warnings.
        for w in &l.warnings {
            assert!(
                w.message.contains("plugin") && !w.message.contains("unknown key"),
                "{w}"
            );
        }
        loaded += 1;
    }
    // custom-plugin-monitor, 3 counters, 3 health checkers, network, iptables, 5 windows.
    assert!(
        loaded >= 14,
        "only {loaded} custom configs found in {}",
        dir.display()
    );

    let kubelet = load_custom_config(&dir.join("health-checker-kubelet.json")).unwrap();
    let c = kubelet.config;
    assert_eq!(c.invoke_interval, Duration::from_secs(10));
    assert_eq!(c.timeout, Duration::from_secs(180));
    assert_eq!(c.concurrency, 1);
    assert_eq!(c.rules[0].kind, CustomRuleKind::Permanent);
    assert_eq!(c.rules[0].args.len(), 5);
    assert!(
        kubelet.warnings[0]
            .message
            .contains("/home/kubernetes/bin/health-checker"),
        "{:?}",
        kubelet.warnings
    );
}

#[tokio::test]
async fn upstream_config_with_a_missing_plugin_runs_and_reports_unknown() {
    let dir = upstream_support::config_dir();
    let cfg = load_custom_config(&dir.join("kernel-monitor-counter.json"))
        .unwrap()
        .config;
    let statuses = run_once(cfg).await;
    let last = statuses.last().unwrap();
    let c = &last.conditions[0];
    assert_eq!(c.type_, "FrequentUnregisterNetDevice");
    assert_eq!(c.status, ConditionStatus::Unknown);
    assert!(
        c.message.contains("/home/kubernetes/bin/log-counter"),
        "{}",
        c.message
    );
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_monitor_configs_load_cleanly() {
    // Their plugin paths are relative to the image's working directory (/), like
    // upstream's; cargo runs tests from the repository root, where they resolve the same.
    for name in ["kubelet-health-monitor.json", "runtime-health-monitor.json"] {
        let l = load_custom_config(&repo().join("config").join(name)).unwrap();
        assert!(l.warnings.is_empty(), "{name}: {:?}", l.warnings);
        assert_eq!(l.config.rules.len(), 1);
    }
}

#[tokio::test]
async fn kubelet_check_reports_an_absent_kubelet_clearly() {
    // Nothing listens on this port (we bind it and close it to find a free one).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/healthz");
    let rule = shipped_rule("check_kubelet.sh", &[&url]);
    let r = run_plugin(&rule, 80).await;
    assert_eq!(r.status, PluginStatus::NonOk, "{}", r.message);
    assert!(r.message.contains("not reachable"), "{}", r.message);
}

#[tokio::test]
async fn kubelet_check_accepts_a_healthy_kubelet() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nok",
            );
        }
    });
    let url = format!("http://127.0.0.1:{port}/healthz");
    let r = run_plugin(&shipped_rule("check_kubelet.sh", &[&url]), 80).await;
    assert_eq!(r.status, PluginStatus::Ok, "{}", r.message);
    assert_eq!(r.message, "kubelet is healthy");
}

#[tokio::test]
async fn runtime_check_reports_a_missing_or_dead_socket_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("containerd.sock");
    let r = run_plugin(
        &shipped_rule("check_runtime.sh", &[missing.to_str().unwrap()]),
        80,
    )
    .await;
    assert_eq!(r.status, PluginStatus::NonOk, "{}", r.message);
    assert!(r.message.contains("missing"), "{}", r.message);

    // A socket that accepts connections and reads the request, as a runtime does (it
    // speaks gRPC, so it then closes on curl's HTTP/1.1).
    let live = dir.path().join("live.sock");
    let listener = std::os::unix::net::UnixListener::bind(&live).unwrap();
    std::thread::spawn(move || {
        use std::io::Read;
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
        }
    });
    let r = run_plugin(
        &shipped_rule("check_runtime.sh", &[live.to_str().unwrap()]),
        80,
    )
    .await;
    assert!(
        matches!(r.status, PluginStatus::Ok | PluginStatus::NonOk),
        "{:?}",
        r
    );
    if which("crictl") {
        // crictl speaks gRPC and our socket does not: NonOK is the right answer.
        return;
    }
    assert_eq!(r.status, PluginStatus::Ok, "{}", r.message);
    assert!(
        r.message.contains("accepts connections") || r.message.contains("exists"),
        "{}",
        r.message
    );

    // A socket file nobody listens on.
    let dead = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let r = run_plugin(
        &shipped_rule("check_runtime.sh", &[dead.to_str().unwrap()]),
        80,
    )
    .await;
    if which("curl") {
        assert_eq!(r.status, PluginStatus::NonOk, "{}", r.message);
        assert!(r.message.contains("refuses"), "{}", r.message);
    }
}

fn which(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn shipped_rule(script: &str, args: &[&str]) -> npd::custom::CustomRule {
    npd::custom::CustomRule {
        kind: CustomRuleKind::Permanent,
        condition: "X".into(),
        reason: "R".into(),
        path: repo().join("config/plugin").join(script),
        args: args.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(30),
        invoke_interval: Duration::from_secs(30),
    }
}
