//! `dry-run` of a custom plugin config through the real binary: each rule runs once.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_node-problem-detector");

#[test]
fn custom_plugin_dry_run_runs_each_rule_once() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let script = dir.path().join("check.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> {}\necho 'clock offset too large'\nexit 1\n",
            count.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ok = dir.path().join("ok.sh");
    std::fs::write(&ok, "#!/bin/sh\necho fine\nexit 0\n").unwrap();
    std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("ntp.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "plugin": "custom", "pluginConfig": {"invoke_interval": "30s", "timeout": "5s"},
            "source": "ntp-monitor",
            "conditions": [{"type": "NTPProblem", "reason": "NTPIsUp", "message": "ntp ok"}],
            "rules": [
                {"type": "permanent", "condition": "NTPProblem", "reason": "NTPIsDown", "path": script},
                {"type": "temporary", "reason": "Fine", "path": ok}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "dry-run",
            "--output",
            "json",
            "--fail-on=problem",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let plugins: Vec<_> = lines.iter().filter(|v| v["kind"] == "plugin").collect();
    assert_eq!(plugins.len(), 2, "{stdout}");
    assert_eq!(plugins[0]["result"], "NonOk");
    assert_eq!(plugins[1]["result"], "Ok");
    let cond = lines.iter().find(|v| v["kind"] == "condition").unwrap();
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["message"], "clock offset too large");
    assert!(
        lines.iter().any(|v| v["kind"] == "event"
            && v["message"] == "Node condition NTPProblem is now: True, reason: NTPIsDown, message: \"clock offset too large\""),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&count).unwrap().lines().count(),
        1,
        "the rule ran more than once"
    );

    // Mixed with log monitor configs: a usage error (exit 2).
    let out = Command::new(BIN)
        .args(["dry-run", "--config"])
        .arg(&cfg)
        .arg("some.log")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn huge_concurrency_runs_every_rule_at_once() {
    // Above tokio's semaphore limit: the loader keeps it at the number of rules (it made
    // the dry-run panic).
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "plugin": "custom",
            "pluginConfig": {"concurrency": i64::MAX},
            "source": "s",
            "rules": [
                {"type": "temporary", "reason": "A", "path": "/bin/true"},
                {"type": "temporary", "reason": "B", "path": "/bin/false"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["dry-run", "--output", "json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains(r#""kind":"plugin""#))
            .count(),
        2,
        "{stdout}"
    );
}

#[test]
fn plugin_key_is_matched_case_insensitively() {
    // As the loaders match keys (Go's JSON decoder): "Plugin": "custom" is a custom
    // plugin config, for dry-run and validate alike.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(
        &cfg,
        r#"{"Plugin": "custom", "Source": "s",
            "Rules": [{"type": "temporary", "reason": "A", "path": "/bin/true"}]}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["dry-run", "--output", "json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(r#""kind":"plugin""#), "{stdout}");
    let out = Command::new(BIN)
        .arg("validate")
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout.trim(),
        format!("{}: ok (custom plugin)", cfg.display())
    );
}
