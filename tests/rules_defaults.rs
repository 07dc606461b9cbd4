//! Runs the example lines under tests/data/rules/ (format in its README.md) through the
//! engine with the shipped configs in config/: each expected reason fires (and its
//! condition turns True for a permanent rule), near misses produce nothing, every rule
//! has an example and every reason a near miss.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use npd::config::{MonitorConfig, RuleKind, load_monitor_config};
use npd::engine::{Monitor, ProblemMetrics, pattern};
use npd::types::{ConditionStatus, LogLine};
use regex::Regex;

const CONFIGS: &[&str] = &[
    "kernel-monitor",
    "readonly-monitor",
    "systemd-monitor",
    "docker-monitor",
    "containerd-monitor",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(name: &str) -> MonitorConfig {
    let path = root().join("config").join(format!("{name}.json"));
    let loaded = load_monitor_config(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        loaded.warnings.is_empty(),
        "{name}: warnings {:?}",
        loaded.warnings
    );
    loaded.config
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Raw,
    Dmesg,
    Syslog,
}

#[derive(Debug)]
struct Example {
    file: String,
    lineno: usize,
    form: Form,
    /// Reasons that must fire; empty for a near miss.
    expect: Vec<String>,
    /// For a near miss: the reason it is near to.
    near: Option<String>,
    text: String,
}

fn examples(name: &str) -> Vec<Example> {
    let file = format!("tests/data/rules/{name}.txt");
    let text =
        std::fs::read_to_string(root().join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, rest) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("{file}:{lineno}: no ': ' separator"));
        let (form, expectation) = head
            .split_once(' ')
            .unwrap_or_else(|| panic!("{file}:{lineno}: expected '<form> <expectation>'"));
        let form = match form {
            "raw" => Form::Raw,
            "dmesg" => Form::Dmesg,
            "syslog" => Form::Syslog,
            other => panic!("{file}:{lineno}: unknown form {other:?}"),
        };
        let (expect, near) = match expectation.strip_prefix('!') {
            Some(r) => (Vec::new(), Some(r.to_string())),
            None => (expectation.split(',').map(str::to_string).collect(), None),
        };
        out.push(Example {
            file: file.clone(),
            lineno,
            form,
            expect,
            near,
            text: rest.to_string(),
        });
    }
    assert!(!out.is_empty(), "{file}: no examples");
    out
}

/// The message the engine sees for an example in `form`.
fn message(ex: &Example, filelog_message: &Regex) -> String {
    match ex.form {
        Form::Raw => ex.text.clone(),
        Form::Dmesg => {
            let re = Regex::new(r"^\[ *[0-9]+\.[0-9]+\] ").unwrap();
            let m = re
                .find(&ex.text)
                .unwrap_or_else(|| panic!("{}:{}: not a dmesg line", ex.file, ex.lineno));
            ex.text[m.end()..].to_string()
        }
        Form::Syslog => {
            // As the filelog source does: the last capture group of pluginConfig.message.
            let caps = filelog_message.captures(&ex.text).unwrap_or_else(|| {
                panic!(
                    "{}:{}: filelog message regex does not match",
                    ex.file, ex.lineno
                )
            });
            let last = caps.len() - 1;
            caps.get(last)
                .map(|m| m.as_str().to_string())
                .unwrap_or_default()
        }
    }
}

/// Feeds one line to a fresh monitor; returns the fired reasons and the True conditions.
fn run(cfg: &MonitorConfig, msg: &str) -> (Vec<String>, Vec<(String, String)>) {
    let now = Timestamp::from_second(1_700_000_000).unwrap();
    let mut m = Monitor::new(cfg, now).unwrap();
    let mut pm = ProblemMetrics::default();
    m.init_metrics(&mut pm);
    let statuses = m.process(&LogLine::new(now, msg), &mut pm);
    let reasons = statuses
        .iter()
        .flat_map(|s| s.events.iter().map(|e| e.reason.clone()))
        .collect();
    let conditions = m
        .conditions()
        .iter()
        .filter(|c| c.status == ConditionStatus::True)
        .map(|c| (c.type_.clone(), c.reason.clone()))
        .collect();
    (reasons, conditions)
}

fn check(cfg: &MonitorConfig, ex: &Example, msg: &str, failures: &mut Vec<String>) {
    let (fired, true_conditions) = run(cfg, msg);
    let at = format!("{}:{} ({})", ex.file, ex.lineno, cfg.path.display());
    if fired != ex.expect {
        failures.push(format!(
            "{at}: expected {:?}, fired {fired:?} for {msg:?}",
            ex.expect
        ));
    }
    let mut want_conditions = Vec::new();
    for reason in &ex.expect {
        for rule in cfg.rules.iter().filter(|r| &r.reason == reason) {
            if rule.kind == RuleKind::Permanent {
                want_conditions.push((rule.condition.clone(), reason.clone()));
            }
        }
    }
    want_conditions.sort();
    want_conditions.dedup();
    if true_conditions != want_conditions {
        failures.push(format!(
            "{at}: expected True conditions {want_conditions:?}, got {true_conditions:?} for {msg:?}"
        ));
    }
}

#[test]
fn example_lines_fire_exactly_the_expected_reasons() {
    let filelog = load("kernel-monitor-filelog");
    let filelog_message = Regex::new(&filelog.plugin_config["message"]).unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    for name in CONFIGS {
        let cfg = load(name);
        let reasons: BTreeSet<&str> = cfg.rules.iter().map(|r| r.reason.as_str()).collect();
        let exs = examples(name);
        for ex in &exs {
            for r in ex.expect.iter().chain(ex.near.iter()) {
                assert!(
                    reasons.contains(r.as_str()),
                    "{}:{}: {r} is not a reason of {name}",
                    ex.file,
                    ex.lineno
                );
            }
            let msg = message(ex, &filelog_message);
            match ex.form {
                Form::Syslog => {
                    assert_eq!(*name, "kernel-monitor", "syslog lines are kern.log lines");
                    check(&filelog, ex, &msg, &mut failures);
                }
                Form::Raw | Form::Dmesg => {
                    check(&cfg, ex, &msg, &mut failures);
                    if *name == "kernel-monitor" {
                        check(&filelog, ex, &msg, &mut failures);
                    }
                }
            }
            count += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count > 100, "only {count} examples");
}

#[test]
fn every_rule_has_an_example_and_every_reason_a_near_miss() {
    let filelog_message =
        Regex::new(&load("kernel-monitor-filelog").plugin_config["message"]).unwrap();
    let mut missing = Vec::new();
    for name in CONFIGS {
        let cfg = load(name);
        let exs = examples(name);
        let mut near: BTreeMap<&str, usize> = BTreeMap::new();
        for ex in &exs {
            if let Some(r) = &ex.near {
                *near.entry(r.as_str()).or_default() += 1;
            }
        }
        for (i, rule) in cfg.rules.iter().enumerate() {
            let re = pattern::compile_anchored(&rule.pattern).unwrap();
            let covered = exs.iter().any(|ex| {
                ex.form == Form::Raw
                    && ex.expect.contains(&rule.reason)
                    && re.is_match(&message(ex, &filelog_message))
            });
            if !covered {
                missing.push(format!(
                    "{name} rule {i} ({}): no raw example matches {:?}",
                    rule.reason, rule.pattern
                ));
            }
            if !near.contains_key(rule.reason.as_str()) {
                missing.push(format!("{name} rule {i} ({}): no near miss", rule.reason));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn shipped_patterns_take_the_single_line_fast_path() {
    for name in CONFIGS.iter().chain(&["kernel-monitor-filelog"]) {
        for rule in &load(name).rules {
            let info = pattern::analyse(&rule.pattern).unwrap();
            assert!(
                !info.can_match_newline && !info.anchors_buffer_start && !info.matches_empty,
                "{name}: {} pattern {:?}: {info:?}",
                rule.reason,
                rule.pattern
            );
        }
    }
}

#[test]
fn filelog_kernel_rules_equal_kmsg_kernel_rules() {
    let kmsg = load("kernel-monitor");
    let filelog = load("kernel-monitor-filelog");
    assert_eq!(kmsg.rules, filelog.rules);
    assert_eq!(kmsg.conditions, filelog.conditions);
    assert_eq!(kmsg.source, filelog.source);
    assert_eq!(filelog.log_path, "/var/log/kern.log");
}

#[test]
fn filelog_message_regex_keeps_the_whole_message() {
    let filelog = load("kernel-monitor-filelog");
    let re = Regex::new(&filelog.plugin_config["message"]).unwrap();
    for (line, want) in [
        (
            "Nov 23 09:57:24 node-1 kernel: [ 4242.424242] divide error: 0000 [#1] SMP",
            "divide error: 0000 [#1] SMP",
        ),
        (
            "Nov 23 09:57:24 node-1 kernel: [    2.000001] x86/cpu: [Firmware Bug]: TSC_DEADLINE disabled",
            "x86/cpu: [Firmware Bug]: TSC_DEADLINE disabled",
        ),
        (
            "Nov  3 09:57:24 node-1 kernel: watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [kworker/3:1:123]",
            "watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [kworker/3:1:123]",
        ),
    ] {
        let caps = re.captures(line).unwrap();
        assert_eq!(&caps[caps.len() - 1], want);
    }
    let ts = Regex::new(&filelog.plugin_config["timestamp"]).unwrap();
    assert_eq!(
        ts.find("Nov  3 09:57:24 node-1 kernel: x")
            .unwrap()
            .as_str(),
        "Nov  3 09:57:24"
    );
    assert_eq!(filelog.plugin_config["timestampFormat"], "Jan _2 15:04:05");
}

#[test]
fn embedded_defaults_are_the_shipped_files() {
    for (file, text) in npd::defaults::DEFAULT_MONITOR_CONFIGS {
        let on_disk = std::fs::read_to_string(root().join("config").join(file)).unwrap();
        assert_eq!(&on_disk, text, "{file}");
        let cfg = npd::config::parse_monitor_config(Path::new(file), text).unwrap();
        assert!(cfg.warnings.is_empty(), "{file}: {:?}", cfg.warnings);
    }
}
