//! The rule-set validator on real configs: the shipped defaults, upstream's configs, and
//! configs with each kind of mistake.

use std::path::{Path, PathBuf};

use npd::validate::{ValidateArgs, run};

fn check(files: Vec<PathBuf>) -> (String, npd::validate::ValidateOutcome) {
    let mut out = Vec::new();
    let o = run(&ValidateArgs { files }, &mut out).unwrap();
    (String::from_utf8(out).unwrap(), o)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn shipped_configs_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(!files.is_empty());
    let (text, o) = check(files);
    assert_eq!(o.errors, 0, "{text}");
    assert_eq!(o.exit_code(), 0);
}

#[test]
fn each_mistake_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "bad.json",
        r#"{
  "plugin": "kmsg",
  "source": "m",
  "bufferSize": 1,
  "conditions": [{"type": "A", "reason": "AOk", "message": "fine"}],
  "rules": [
    {"type": "temporary", "reason": "Empty", "pattern": ".*"},
    {"type": "temporary", "reason": "Multi", "pattern": "first\nsecond"},
    {"type": "temporary", "reason": "Anchored", "pattern": "^start"},
    {"type": "temporary", "reason": "Alt", "pattern": "foo|bar"},
    {"type": "temporary", "reason": "Dup", "pattern": "foo|bar"},
    {"type": "recovery", "condition": "A", "reason": "Back", "pattern": "ok now"}
  ]
}"#,
    );
    let (text, o) = check(vec![p.clone()]);
    let path = p.display().to_string();
    let has = |needle: &str| {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&path) && l.contains(needle)),
            "missing {needle:?} in:\n{text}"
        )
    };
    has("rule 0 (reason \"Empty\"): error: pattern \".*\" matches the empty string");
    has(
        "rule 1 (reason \"Multi\"): warning: pattern \"first\\nsecond\" can match across lines but bufferSize is 1",
    );
    has("rule 2 (reason \"Anchored\"): warning: pattern \"^start\" uses ^");
    has("rule 3 (reason \"Alt\"): warning: pattern \"foo|bar\" has a top-level alternation");
    has("rule 4 (reason \"Dup\"): warning: same pattern as rule 3");
    assert!(o.errors >= 1);
    assert_eq!(o.exit_code(), 1);
}

#[test]
fn undeclared_condition_and_bad_extension_keys() {
    let dir = tempfile::tempdir().unwrap();
    let undeclared = write(
        dir.path(),
        "undeclared.json",
        r#"{"plugin": "kmsg", "source": "m", "conditions": [],
  "rules": [{"type": "permanent", "condition": "Nope", "reason": "R", "pattern": "x"}]}"#,
    );
    let (text, o) = check(vec![undeclared]);
    assert!(text.contains("Nope"), "{text}");
    assert_eq!(o.exit_code(), 1, "{text}");

    let bad_window = write(
        dir.path(),
        "window.json",
        r#"{"plugin": "kmsg", "source": "m", "conditions": [],
  "rules": [{"type": "temporary", "reason": "R", "pattern": "x", "minOccurrences": 3, "window": "soon"}]}"#,
    );
    let (text, o) = check(vec![bad_window]);
    assert!(text.contains("window"), "{text}");
    assert_eq!(o.exit_code(), 1);

    let bad_sev = write(
        dir.path(),
        "sev.json",
        r#"{"plugin": "kmsg", "source": "m", "conditions": [],
  "rules": [{"type": "temporary", "reason": "R", "pattern": "x", "severity": "loud"}]}"#,
    );
    let (text, o) = check(vec![bad_sev]);
    assert!(text.contains("severity"), "{text}");
    assert_eq!(o.exit_code(), 1);

    let good = write(
        dir.path(),
        "good.json",
        r#"{"plugin": "kmsg", "source": "m",
  "conditions": [{"type": "A", "reason": "AOk", "message": "fine", "recoverAfter": "10m"}],
  "rules": [
    {"type": "permanent", "condition": "A", "reason": "ABad", "pattern": "bad thing"},
    {"type": "recovery", "condition": "A", "reason": "AGood", "pattern": "good thing"},
    {"type": "temporary", "reason": "Flap", "pattern": "flap", "severity": "info", "minOccurrences": 5, "window": "20m"}
  ]}"#,
    );
    let (text, o) = check(vec![good]);
    assert_eq!(o.errors, 0, "{text}");
    assert_eq!(o.warnings, 0, "{text}");
    assert!(text.contains("ok (3 rules, 1 conditions)"), "{text}");
}

#[test]
fn load_errors_and_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let broken = write(dir.path(), "broken.json", "{\"plugin\": ");
    let unknown = write(
        dir.path(),
        "unknown.json",
        r#"{"plugin": "kmsg", "source": "m", "bogusKey": 1, "conditions": [], "rules": []}"#,
    );
    let (text, o) = check(vec![broken, unknown]);
    assert!(text.contains("broken.json"), "{text}");
    assert!(text.contains("bogusKey"), "{text}");
    assert_eq!(o.errors, 1, "{text}");
    assert!(o.warnings >= 1, "{text}");
    assert_eq!(o.exit_code(), 1);
}

#[test]
fn filelog_timestamp_format_is_checked() {
    // A layout the filelog source cannot use: validate (and the loader, so a reload)
    // rejects it instead of the source failing when it starts.
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "filelog.json",
        r#"{"plugin": "filelog", "source": "m", "logPath": "/var/log/kern.log",
  "pluginConfig": {"timestamp": "^.{15}", "message": "kernel: (.*)", "timestampFormat": "%b %d %H:%M:%S"},
  "conditions": [], "rules": []}"#,
    );
    let (text, o) = check(vec![bad.clone()]);
    assert!(
        text.contains(&format!(
            "{}: key pluginConfig.timestampFormat: Go time layout \"%b %d %H:%M:%S\"",
            bad.display()
        )),
        "{text}"
    );
    assert_eq!(o.exit_code(), 1, "{text}");
}

#[test]
fn severity_on_a_recovery_rule_is_not_warned_about() {
    // It sets the type of the recovery's event (Normal by default): it has an effect.
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "recovery.json",
        r#"{"plugin": "kmsg", "source": "m",
  "conditions": [{"type": "A", "reason": "AOk", "message": "fine"}],
  "rules": [
    {"type": "permanent", "condition": "A", "reason": "ABad", "pattern": "bad thing"},
    {"type": "recovery", "condition": "A", "reason": "AGood", "pattern": "good thing", "severity": "warn"}
  ]}"#,
    );
    let (text, o) = check(vec![p]);
    assert_eq!((o.errors, o.warnings), (0, 0), "{text}");
    assert!(text.contains("ok (2 rules, 1 conditions)"), "{text}");
}

#[test]
fn validate_and_the_loader_agree_on_window() {
    // A window without minOccurrences above 1 is the loader's warning, once; a zero
    // window then is no error either (the daemon loads the config).
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "window.json",
        r#"{"plugin": "kmsg", "source": "m", "conditions": [],
  "rules": [{"type": "temporary", "reason": "R", "pattern": "x", "minOccurrences": 1, "window": "0s"}]}"#,
    );
    let (text, o) = check(vec![p.clone()]);
    assert_eq!((o.errors, o.warnings), (0, 1), "{text}");
    assert_eq!(o.exit_code(), 0, "{text}");
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        vec![format!(
            "{}: warning: rule 0 (reason \"R\"): window has no effect without minOccurrences above 1",
            p.display()
        )],
        "{text}"
    );
    assert!(npd::config::load_monitor_config(&p).is_ok());
}

#[test]
fn patterns_are_compiled_as_the_daemon_compiles_them() {
    // Parses fine, but too big to compile: the daemon and the dry-run reject it.
    let dir = tempfile::tempdir().unwrap();
    let big = write(
        dir.path(),
        "big.json",
        r#"{"plugin": "kmsg", "source": "m", "conditions": [],
  "rules": [{"type": "temporary", "reason": "Big", "pattern": "\\w{1000}\\w{1000}\\w{1000}"}]}"#,
    );
    let (text, o) = check(vec![big.clone()]);
    assert!(
        text.contains(&format!(
            "{}: rule 0 (reason \"Big\"): error: pattern",
            big.display()
        )),
        "{text}"
    );
    assert_eq!(o.exit_code(), 1, "{text}");
    let loaded = npd::config::load_monitor_config(&big).unwrap();
    assert!(npd::engine::Monitor::new(&loaded.config, jiff::Timestamp::now()).is_err());

    // Each rule compiles alone, the combined single-line set does not.
    let rules: Vec<String> = (0..6)
        .map(|i| {
            format!(r#"{{"type": "temporary", "reason": "R{i}", "pattern": "x{i}\\w{{300}}"}}"#)
        })
        .collect();
    let set = write(
        dir.path(),
        "set.json",
        &format!(
            r#"{{"plugin": "kmsg", "source": "m", "conditions": [], "rules": [{}]}}"#,
            rules.join(",")
        ),
    );
    let (text, o) = check(vec![set.clone()]);
    assert!(
        text.contains(&format!(
            "{}: key rules: the combined single-line rule set does not compile",
            set.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}: error: the config does not load",
            set.display()
        )),
        "{text}"
    );
    assert_eq!(o.exit_code(), 1, "{text}");
}
