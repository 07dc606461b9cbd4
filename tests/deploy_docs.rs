//! The worked example of README.md ("Adding a condition and a rule") is a real monitor
//! config: it loads without warnings and the rule engine reports what the text says.

use std::path::{Path, PathBuf};

use jiff::{Timestamp, ToSpan};
use npd::config::parse_monitor_config;
use npd::engine::{Monitor, ProblemMetrics};
use npd::types::{ConditionStatus, LogLine};

/// The ```json block that follows `marker` in README.md.
fn json_block_after(marker: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let at = doc
        .find(marker)
        .unwrap_or_else(|| panic!("{}: `{marker}` not found", path.display()));
    let rest = &doc[at..];
    let start = rest.find("```json\n").expect("a ```json block") + "```json\n".len();
    let len = rest[start..].find("```").expect("end of the block");
    rest[start..start + len].to_string()
}

#[test]
fn ext4_example_loads_and_reports_what_the_docs_say() {
    let text = json_block_after("`config/ext4-monitor.json`:");
    let loaded = parse_monitor_config(Path::new("ext4-monitor.json"), &text)
        .unwrap_or_else(|e| panic!("docs example rejected: {e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    let start = Timestamp::now();
    let mut monitor = Monitor::new(&loaded.config, start).unwrap();
    let mut metrics = ProblemMetrics::default();
    monitor.init_metrics(&mut metrics);
    assert_eq!(
        metrics.gauge("Ext4Error", "Ext4FilesystemError"),
        Some(false)
    );
    assert_eq!(metrics.counter("Ext4Warning"), Some(0));

    let initial = monitor.initial_status();
    assert_eq!(initial.source, "ext4-monitor");
    assert_eq!(initial.conditions.len(), 1);
    assert_eq!(initial.conditions[0].type_, "Ext4Error");
    assert_eq!(initial.conditions[0].status, ConditionStatus::False);
    assert_eq!(initial.conditions[0].reason, "NoExt4Error");

    let warn = LogLine::new(
        start + 1.second(),
        "EXT4-fs warning (device sda1): ext4_dx_add_entry:2461: Directory index full!",
    );
    let out = monitor.process(&warn, &mut metrics);
    let events: Vec<_> = out.iter().flat_map(|s| s.events.iter()).collect();
    assert_eq!(events.len(), 1, "{out:?}");
    assert_eq!(events[0].reason, "Ext4Warning");
    assert_eq!(events[0].severity.event_type(), "Warning");
    assert_eq!(metrics.counter("Ext4Warning"), Some(1));

    let error = "EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0";
    let out = monitor.process(&LogLine::new(start + 2.seconds(), error), &mut metrics);
    let cond = out
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == "Ext4Error")
        .unwrap_or_else(|| panic!("no condition in {out:?}"));
    assert_eq!(cond.status, ConditionStatus::True);
    assert_eq!(cond.reason, "Ext4FilesystemError");
    assert_eq!(
        cond.message,
        format!("{error}; run fsck on the device before reusing the node")
    );
    let events: Vec<_> = out.iter().flat_map(|s| s.events.iter()).collect();
    assert_eq!(events.len(), 1, "{out:?}");
    assert!(
        events[0]
            .message
            .starts_with("Node condition Ext4Error is now: True, reason: Ext4FilesystemError"),
        "{}",
        events[0].message
    );
    assert_eq!(
        metrics.gauge("Ext4Error", "Ext4FilesystemError"),
        Some(true)
    );
}
