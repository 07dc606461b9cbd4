//! Every upstream custom plugin config loads unchanged; our shipped plugins and their
//! configs work.

#[path = "support/custom.rs"]
mod custom_support;
#[path = "support/upstream.rs"]
mod upstream_support;

use std::path::{Path, PathBuf};
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
    let bin = curl_only();
    let rule = shipped_rule_on_path("check_kubelet.sh", &[&url], bin.path());
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
    let bin = curl_only();
    let rule = shipped_rule_on_path("check_kubelet.sh", &[&url], bin.path());
    let r = run_plugin(&rule, 80).await;
    assert_eq!(r.status, PluginStatus::Ok, "{}", r.message);
    assert_eq!(r.message, "kubelet is healthy");
}

#[tokio::test]
async fn kubelet_check_without_curl_or_wget_is_unknown() {
    // An empty PATH: neither curl nor wget. The check cannot run: exit 2, Unknown.
    let bin = tempfile::tempdir().unwrap();
    let rule = shipped_rule_on_path(
        "check_kubelet.sh",
        &["http://127.0.0.1:1/healthz"],
        bin.path(),
    );
    let r = run_plugin(&rule, 80).await;
    assert_eq!(r.status, PluginStatus::Unknown, "{}", r.message);
    assert!(r.message.contains("neither curl nor wget"), "{}", r.message);
}

#[tokio::test]
async fn runtime_check_reports_a_missing_live_or_dead_socket_clearly() {
    // PATH holds curl only, so an installed crictl cannot take over (it speaks gRPC, which
    // our test socket does not).
    let bin = curl_only();
    let run = |sock: &Path| {
        let rule = shipped_rule_on_path("check_runtime.sh", &[sock.to_str().unwrap()], bin.path());
        async move { run_plugin(&rule, 80).await }
    };

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("containerd.sock");
    let r = run(&missing).await;
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
    let r = run(&live).await;
    assert_eq!(r.status, PluginStatus::Ok, "{}", r.message);
    assert!(r.message.contains("accepts connections"), "{}", r.message);

    // A socket file nobody listens on.
    let dead = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let r = run(&dead).await;
    assert_eq!(r.status, PluginStatus::NonOk, "{}", r.message);
    assert!(r.message.contains("refuses"), "{}", r.message);
}

/// curl's path. The shipped plugins use it; it is a test dependency
/// (scripts/install-test-deps.sh installs it), so its absence fails the test.
fn curl() -> PathBuf {
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v curl"])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && path.starts_with('/'),
        "curl is not installed: the shipped plugin tests need it (scripts/install-test-deps.sh)"
    );
    PathBuf::from(path)
}

/// A directory holding only curl, for `PATH`: the shipped scripts then take their curl
/// branch (the image installs curl), whatever else the machine has.
fn curl_only() -> tempfile::TempDir {
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(curl(), bin.path().join("curl")).unwrap();
    bin
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

/// A shipped plugin run by /bin/sh with `PATH` set to `bin` only (through env(1)), which
/// decides which of curl, wget and crictl the script finds.
fn shipped_rule_on_path(script: &str, args: &[&str], bin: &Path) -> npd::custom::CustomRule {
    let mut argv = vec![
        format!("PATH={}", bin.display()),
        "/bin/sh".to_string(),
        repo()
            .join("config/plugin")
            .join(script)
            .display()
            .to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    npd::custom::CustomRule {
        path: PathBuf::from("/usr/bin/env"),
        args: argv,
        ..shipped_rule(script, &[])
    }
}
