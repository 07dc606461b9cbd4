//! Upstream NPD's own system-log-monitor configs (vendored in tests/data/upstream/config)
//! load with our loader and mean the same: same conditions, same rules, and a
//! representative line per upstream rule fires the same reason in our engine. Where we ship
//! a replacement (kernel, filelog kernel, readonly, systemd, docker monitors), our config
//! fires that reason for the line too.

#[path = "support/upstream.rs"]
mod upstream_support;

use std::collections::BTreeSet;
use std::path::Path;

use jiff::Timestamp;
use npd::config::{MonitorConfig, RuleKind, load_monitor_config};
use npd::duration::parse_go_duration;
use npd::engine::{Monitor, ProblemMetrics};
use npd::types::{ConditionStatus, LogLine};
use serde_json::Value;

/// Configs for other plugins, not the system log monitor: upstream's custom-plugin monitors
/// (`"plugin": "custom"`, run external check scripts) and the system-stats monitors (no
/// `plugin` key at all; they configure cpu/disk/memory/net metric collection).
const SKIPPED: &[(&str, &str)] = &[
    ("custom-plugin-monitor.json", "plugin custom"),
    ("docker-monitor-counter.json", "plugin custom"),
    ("health-checker-containerd.json", "plugin custom"),
    ("health-checker-docker.json", "plugin custom"),
    ("health-checker-kubelet.json", "plugin custom"),
    ("iptables-mode-monitor.json", "plugin custom"),
    ("kernel-monitor-counter.json", "plugin custom"),
    ("network-problem-monitor.json", "plugin custom"),
    ("systemd-monitor-counter.json", "plugin custom"),
    ("windows-defender-monitor.json", "plugin custom"),
    ("windows-health-checker-containerd.json", "plugin custom"),
    ("windows-health-checker-docker.json", "plugin custom"),
    ("windows-health-checker-kubelet.json", "plugin custom"),
    ("windows-health-checker-kubeproxy.json", "plugin custom"),
    (
        "net-cgroup-system-stats-monitor.json",
        "system stats (no plugin key)",
    ),
    ("system-stats-monitor.json", "system stats (no plugin key)"),
    (
        "windows-system-stats-monitor.json",
        "system stats (no plugin key)",
    ),
];

/// (upstream file, rule index, a line as the source hands it to the engine).
const LINES: &[(&str, usize, &str)] = &[
    (
        "kernel-monitor.json",
        0,
        "Killed process 1234 (stress) total-vm:1048776kB, anon-rss:1043456kB, file-rss:1152kB, shmem-rss:0kB",
    ),
    (
        "kernel-monitor.json",
        1,
        "INFO: task kworker/u16:2:123 blocked for more than 120 seconds.",
    ),
    (
        "kernel-monitor.json",
        2,
        "unregister_netdevice: waiting for eth0 to become free. Usage count = 1",
    ),
    (
        "kernel-monitor.json",
        3,
        "BUG: unable to handle kernel NULL pointer dereference at 0000000000000008",
    ),
    ("kernel-monitor.json", 4, "divide error: 0000 [#1] SMP"),
    (
        "kernel-monitor.json",
        5,
        "EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0",
    ),
    (
        "kernel-monitor.json",
        6,
        "EXT4-fs warning (device sdb1): ext4_dx_add_entry:2461: Directory (ino: 1234) index full, reach max htree level :2",
    ),
    (
        "kernel-monitor.json",
        7,
        "Buffer I/O error on dev sdb1, logical block 0, async page read",
    ),
    (
        "kernel-monitor.json",
        8,
        "XFS (sdb1): Corruption of in-memory data detected.  Shutting down filesystem",
    ),
    (
        "kernel-monitor.json",
        9,
        "EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x12345 offset:0x0 grain:32 syndrome:0x0)",
    ),
    (
        "kernel-monitor.json",
        10,
        "{1}[Hardware Error]: event severity: corrected",
    ),
    (
        "kernel-monitor.json",
        11,
        "{2}[Hardware Error]: event severity: recoverable",
    ),
    (
        "kernel-monitor.json",
        12,
        "{3}[Hardware Error]: event severity: fatal",
    ),
    (
        "kernel-monitor.json",
        13,
        "INFO: task docker:1902 blocked for more than 120 seconds.",
    ),
    (
        "kernel-monitor-filelog.json",
        0,
        "Killed process 1234 (stress) total-vm:1048776kB, anon-rss:1043456kB, file-rss:1152kB, shmem-rss:0kB",
    ),
    (
        "kernel-monitor-filelog.json",
        1,
        "INFO: task kworker/u16:2:123 blocked for more than 120 seconds.",
    ),
    (
        "kernel-monitor-filelog.json",
        2,
        "unregister_netdevice: waiting for eth0 to become free. Usage count = 1",
    ),
    (
        "kernel-monitor-filelog.json",
        3,
        "BUG: unable to handle kernel NULL pointer dereference at 0000000000000008",
    ),
    (
        "kernel-monitor-filelog.json",
        4,
        "divide error: 0000 [#1] SMP",
    ),
    (
        "kernel-monitor-filelog.json",
        5,
        "INFO: task docker:1902 blocked for more than 120 seconds.",
    ),
    (
        "readonly-monitor.json",
        0,
        "EXT4-fs (sda1): Remounting filesystem read-only",
    ),
    ("systemd-monitor.json", 0, "Started Kubernetes kubelet."),
    (
        "systemd-monitor.json",
        1,
        "Starting Docker Application Container Engine...",
    ),
    (
        "systemd-monitor.json",
        2,
        "Starting containerd container runtime...",
    ),
    (
        "docker-monitor.json",
        0,
        "Error trying v2 registry: failed to register layer: rename /var/lib/docker/image/overlay2/layerdb/tmp/write-set-1 /var/lib/docker/image/overlay2/layerdb/sha256/abc: directory not empty",
    ),
    (
        "docker-monitor.json",
        1,
        "Handler for POST /v1.41/containers/3f4e/start returned error: readlink /var/lib/docker/overlay2/l/ABCDEFGHIJKLMNOP: invalid argument",
    ),
    (
        "docker-monitor.json",
        2,
        "OCI runtime start failed: container process is already dead: unknown",
    ),
    (
        "abrt-adaptor.json",
        0,
        "Process 4242 (bash) crashed in __strlen_avx2()",
    ),
    (
        "abrt-adaptor.json",
        1,
        "Process 4242 (python3) of user 1000 encountered an uncaught ZeroDivisionError exception",
    ),
    (
        "abrt-adaptor.json",
        2,
        "Display server Xorg crash in /usr/libexec/Xorg",
    ),
    (
        "abrt-adaptor.json",
        3,
        "System encountered a fatal error in ext4_find_entry",
    ),
    (
        "abrt-adaptor.json",
        4,
        "System encountered a non-fatal error in ext4_find_entry",
    ),
    (
        "disk-log-message-filelog.json",
        0,
        "smartd[812]: Device: /dev/sda [SAT], 120 Currently unreadable (pending) sectors",
    ),
    (
        "docker-monitor-filelog.json",
        0,
        "Error trying v2 registry: failed to register layer: rename /var/lib/docker/image/overlay2/layerdb/tmp/write-set-1 /var/lib/docker/image/overlay2/layerdb/sha256/abc: directory not empty",
    ),
    (
        "windows-containerd-monitor-filelog.json",
        0,
        "CreateContainer failed: failed to create containerd container: error unpacking image: wrong diff id calculated on extraction \"sha256:abc\"",
    ),
    (
        "windows-containerd-monitor-filelog.json",
        1,
        "PullImage failed: failed to pull and unpack image \"mcr.microsoft.com/x\": failed to extract layer sha256:abc: archive/tar: invalid tar header",
    ),
    (
        "windows-containerd-monitor-filelog.json",
        2,
        "hcs: Failed to unmarshall layerchain json - invalid character '\u{0}' looking for beginning of value",
    ),
];

/// Upstream file -> the config we ship in its place.
fn ours(upstream: &str) -> Option<&'static str> {
    match upstream {
        "kernel-monitor.json" => Some("kernel-monitor.json"),
        "kernel-monitor-filelog.json" => Some("kernel-monitor-filelog.json"),
        "readonly-monitor.json" => Some("readonly-monitor.json"),
        "systemd-monitor.json" => Some("systemd-monitor.json"),
        "docker-monitor.json" => Some("docker-monitor.json"),
        _ => None,
    }
}

fn str_key<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The system-log-monitor configs upstream ships, and the skip list checked to be exact.
fn system_log_configs() -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(upstream_support::config_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    let mut skipped = BTreeSet::new();
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        match raw.get("plugin").and_then(Value::as_str) {
            Some("custom") | None => {
                skipped.insert(name);
            }
            Some(_) => out.push((name, raw)),
        }
    }
    let expected: BTreeSet<String> = SKIPPED.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(skipped, expected, "the skip list changed");
    assert_eq!(
        out.len(),
        9,
        "system log monitor configs: {:?}",
        out.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    out
}

fn load(dir: &Path, name: &str) -> MonitorConfig {
    let loaded = load_monitor_config(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
    loaded.config
}

fn fired(cfg: &MonitorConfig, line: &str) -> Vec<String> {
    let now = Timestamp::from_second(1_700_000_000).unwrap();
    let mut m = Monitor::new(cfg, now).unwrap();
    let mut pm = ProblemMetrics::default();
    m.process(&LogLine::new(now, line), &mut pm)
        .into_iter()
        .flat_map(|s| s.events.into_iter().map(|e| e.reason))
        .collect()
}

#[test]
fn upstream_configs_load_and_mean_the_same() {
    let dir = upstream_support::config_dir();
    for (name, raw) in system_log_configs() {
        let cfg = load(&dir, &name);
        assert_eq!(cfg.plugin.as_str(), str_key(&raw, "plugin"), "{name}");
        assert_eq!(cfg.source, str_key(&raw, "source"), "{name}");
        assert_eq!(cfg.log_path, str_key(&raw, "logPath"), "{name}");
        let want_buffer = raw.get("bufferSize").and_then(Value::as_u64).unwrap_or(10);
        assert_eq!(cfg.buffer_size as u64, want_buffer, "{name}");
        let want_metrics = raw
            .get("metricsReporting")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        assert_eq!(cfg.metrics_reporting, want_metrics, "{name}");
        let lookback = raw.get("lookback").and_then(Value::as_str).unwrap_or("0");
        assert_eq!(cfg.lookback, parse_go_duration(lookback).unwrap(), "{name}");
        let skip: Vec<&str> = raw
            .get("skipList")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(cfg.skip_list, skip, "{name}");
        let conds = raw["conditions"].as_array().unwrap();
        assert_eq!(cfg.conditions.len(), conds.len(), "{name}");
        for (c, r) in cfg.conditions.iter().zip(conds) {
            assert_eq!(c.type_, str_key(r, "type"), "{name}");
            assert_eq!(c.reason, str_key(r, "reason"), "{name}");
            assert_eq!(c.message, str_key(r, "message"), "{name}");
            assert_eq!(c.recover_after, None, "{name}");
        }
        let rules = raw["rules"].as_array().unwrap();
        assert_eq!(cfg.rules.len(), rules.len(), "{name}");
        for (i, (rule, r)) in cfg.rules.iter().zip(rules).enumerate() {
            let kind = match str_key(r, "type") {
                "temporary" => RuleKind::Temporary,
                "permanent" => RuleKind::Permanent,
                other => panic!("{name} rule {i}: upstream type {other}"),
            };
            assert_eq!(rule.kind, kind, "{name} rule {i}");
            assert_eq!(rule.condition, str_key(r, "condition"), "{name} rule {i}");
            assert_eq!(rule.reason, str_key(r, "reason"), "{name} rule {i}");
            assert_eq!(rule.pattern, str_key(r, "pattern"), "{name} rule {i}");
            assert_eq!(rule.min_occurrences, 1, "{name} rule {i}");
        }
        for (key, value) in raw
            .get("pluginConfig")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            assert_eq!(
                cfg.plugin_config.get(key).map(String::as_str),
                value.as_str(),
                "{name} pluginConfig.{key}"
            );
        }
        // The filelog source applies these with the same regex crate.
        for key in ["timestamp", "message"] {
            if let Some(re) = cfg.plugin_config.get(key) {
                regex::Regex::new(re).unwrap_or_else(|e| panic!("{name} pluginConfig.{key}: {e}"));
            }
        }
    }
}

#[test]
fn representative_lines_fire_the_upstream_reason() {
    let dir = upstream_support::config_dir();
    let ours_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let configs = system_log_configs();
    let mut failures = Vec::new();
    for (name, _) in &configs {
        let cfg = load(&dir, name);
        for (i, rule) in cfg.rules.iter().enumerate() {
            let Some((_, _, line)) = LINES.iter().find(|(f, r, _)| f == name && *r == i) else {
                failures.push(format!(
                    "{name} rule {i} ({}): no representative line",
                    rule.reason
                ));
                continue;
            };
            let got = fired(&cfg, line);
            if !got.contains(&rule.reason) {
                failures.push(format!(
                    "{name} rule {i}: upstream config fired {got:?}, want {}",
                    rule.reason
                ));
            }
            if rule.kind == RuleKind::Permanent {
                let now = Timestamp::from_second(1_700_000_000).unwrap();
                let mut m = Monitor::new(&cfg, now).unwrap();
                m.process(&LogLine::new(now, *line), &mut ProblemMetrics::default());
                let c = m
                    .conditions()
                    .iter()
                    .find(|c| c.type_ == rule.condition)
                    .unwrap();
                if c.status != ConditionStatus::True || c.reason != rule.reason {
                    failures.push(format!("{name} rule {i}: condition {c:?}"));
                }
            }
            if let Some(our) = ours(name) {
                let our_cfg = load(&ours_dir, our);
                let got = fired(&our_cfg, line);
                if !got.contains(&rule.reason) {
                    failures.push(format!(
                        "{name} rule {i}: our {our} fired {got:?}, want {}",
                        rule.reason
                    ));
                }
                let upstream_conditions: Vec<_> = cfg
                    .conditions
                    .iter()
                    .map(|c| (&c.type_, &c.reason, &c.message))
                    .collect();
                let our_conditions: Vec<_> = our_cfg
                    .conditions
                    .iter()
                    .map(|c| (&c.type_, &c.reason, &c.message))
                    .collect();
                for c in upstream_conditions {
                    if !our_conditions.contains(&c) {
                        failures.push(format!("{name}: our {our} lacks condition {c:?}"));
                    }
                }
            }
        }
    }
    failures.dedup();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
