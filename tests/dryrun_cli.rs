//! The `dry-run` and `validate` subcommands through the real binary: exit codes, stdout,
//! stderr.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::daemon::BIN;

fn npd(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run the binary")
}

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/captures")
        .join(name)
        .display()
        .to_string()
}

fn config(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn dry_run_exit_codes() {
    let o = npd(&["dry-run", &data("syslog.txt")]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("OOMKilling"), "{text}");
    assert!(!text.contains('\x1b'), "no colour into a pipe");

    let o = npd(&["dry-run", "--fail-on=problem", &data("syslog.txt")]);
    assert_eq!(o.status.code(), Some(1));
    let o = npd(&["dry-run", "--fail-on", "never", &data("syslog.txt")]);
    assert_eq!(o.status.code(), Some(0));

    let o = npd(&["dry-run", "/nonexistent/capture"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/capture"));

    let o = npd(&["dry-run", "--output", "yaml", &data("syslog.txt")]);
    assert_eq!(o.status.code(), Some(2), "usage error");
}

#[test]
fn dry_run_json_from_stdin_with_config() {
    let mut child = Command::new(BIN)
        .args([
            "dry-run",
            "--output=json",
            "--config",
            &config("kernel-monitor.json"),
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(&std::fs::read(data("dmesg.txt")).unwrap())
            .unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sources: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter(|o| o["kind"] == "condition")
        .map(|o| o["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources.into_iter().collect::<Vec<_>>(), ["kernel-monitor"]);
    assert_eq!(lines.last().unwrap()["kind"], "input");
}

#[test]
fn validate_exit_codes() {
    let o = npd(&["validate", &config("kernel-monitor.json")]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad: PathBuf = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"plugin": "kmsg", "source": "m", "conditions": [], "rules": [{"type": "temporary", "reason": "All", "pattern": "x*"}]}"#,
    )
    .unwrap();
    let o = npd(&["validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("rule 0 (reason \"All\"): error: pattern \"x*\" matches the empty string"),
        "{out}"
    );
}
