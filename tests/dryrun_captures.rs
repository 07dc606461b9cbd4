//! Dry-run over real captured lines in every supported format, through the library.

use std::io::Write;
use std::path::{Path, PathBuf};

use npd::dryrun::{DryRunArgs, FailOn, OutputFormat};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/captures")
        .join(name)
}

fn run(args: &DryRunArgs) -> (String, npd::dryrun::DryRunOutcome) {
    let mut out = Vec::new();
    let o = npd::dryrun::run(args, &mut out).expect("dry-run runs");
    (String::from_utf8(out).expect("utf-8 output"), o)
}

fn json_run(files: Vec<PathBuf>, config: Vec<PathBuf>) -> Vec<serde_json::Value> {
    let args = DryRunArgs {
        config,
        output: OutputFormat::Json,
        fail_on: FailOn::Never,
        files,
    };
    let (text, _) = run(&args);
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn events(v: &[serde_json::Value]) -> Vec<(String, String)> {
    v.iter()
        .filter(|o| o["kind"] == "event")
        .map(|o| {
            (
                o["source"].as_str().unwrap().to_string(),
                o["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn input(v: &[serde_json::Value]) -> &serde_json::Value {
    v.iter()
        .find(|o| o["kind"] == "input")
        .expect("input record")
}

fn ev(s: &str, r: &str) -> (String, String) {
    (s.to_string(), r.to_string())
}

#[test]
fn every_format_parses_and_fires_kernel_rules() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "dmesg.txt",
            &[
                ("kernel-monitor", "OOMKilling"),
                ("kernel-monitor", "TaskHung"),
                ("kernel-monitor", "Ext4Error"),
                ("kernel-monitor", "IOError"),
            ],
        ),
        (
            "dmesg-caller.txt",
            &[
                ("kernel-monitor", "Ext4Warning"),
                ("kernel-monitor", "TaskHung"),
            ],
        ),
        (
            "dmesg-T.txt",
            &[
                ("kernel-monitor", "OOMKilling"),
                ("kernel-monitor", "UnregisterNetDevice"),
            ],
        ),
        (
            "journal-short-precise.txt",
            &[
                ("systemd-monitor", "ContainerdStart"),
                ("kernel-monitor", "TaskHung"),
            ],
        ),
        (
            "journal-short-iso.txt",
            &[
                ("systemd-monitor", "DockerStart"),
                ("kernel-monitor", "Ext4Error"),
            ],
        ),
        (
            "journal.export",
            &[
                ("systemd-monitor", "ContainerdStart"),
                ("kernel-monitor", "TaskHung"),
            ],
        ),
    ];
    for (file, want) in cases {
        let v = json_run(vec![data(file)], vec![]);
        let got = events(&v);
        let want: Vec<_> = want.iter().map(|(s, r)| ev(s, r)).collect();
        assert_eq!(got, want, "{file}");
        assert_eq!(input(&v)["lines_unplaced"], 0, "{file}");
    }
}

#[test]
fn kmsg_capture_with_continuations_and_permanent_condition() {
    let v = json_run(vec![data("kmsg.txt")], vec![]);
    let got = events(&v);
    assert!(got.contains(&ev("kernel-monitor", "OOMKilling")), "{got:?}");
    assert!(got.contains(&ev("kernel-monitor", "TaskHung")), "{got:?}");
    assert!(got.contains(&ev("kernel-monitor", "Ext4Error")), "{got:?}");
    assert!(
        got.contains(&ev("kernel-monitor", "XfsHasShutdown")),
        "{got:?}"
    );
    let xfs = v
        .iter()
        .find(|o| o["kind"] == "condition" && o["type"] == "XfsShutdown")
        .expect("XfsShutdown condition");
    assert_eq!(xfs["status"], "True");
    assert_eq!(xfs["reason"], "XfsHasShutdown");
    // The continuation lines are fields, not lines.
    assert_eq!(input(&v)["by_format"]["kmsg"], 5);
    assert_eq!(input(&v)["lines_unplaced"], 0);
}

#[test]
fn syslog_routes_kernel_and_program_lines_apart() {
    let v = json_run(vec![data("syslog.txt")], vec![]);
    let got = events(&v);
    // myapp's fake OOM line must not reach the kernel rules.
    assert_eq!(
        got,
        vec![
            ev("systemd-monitor", "ContainerdStart"),
            ev("kernel-monitor", "OOMKilling"),
            ev("kernel-monitor", "TaskHung"),
            ev("kernel-monitor", "Ext4Error"),
        ]
    );
    let inp = input(&v);
    assert_eq!(inp["lines_unplaced"], 0);
    assert_eq!(inp["by_origin"]["kernel"], 3);
    assert_eq!(inp["by_origin"]["myapp"], 1);
    // The kernel's [ 1843.222510] stamp is stripped from the message.
    let oom = v.iter().find(|o| o["reason"] == "OOMKilling").unwrap();
    assert!(
        oom["message"]
            .as_str()
            .unwrap()
            .starts_with("Out of memory: Killed process 48211")
    );
}

#[test]
fn journal_routing_by_identifier_and_ignored_lines() {
    let v = json_run(vec![data("journal-short.txt")], vec![]);
    assert_eq!(
        events(&v),
        vec![
            ev("systemd-monitor", "DockerStart"),
            ev("kernel-monitor", "OOMKilling"),
            ev("systemd-monitor", "KubeletStart"),
        ]
    );
    let inp = input(&v);
    assert_eq!(inp["lines_unplaced"], 0);
    assert_eq!(inp["lines_ignored"], 4);

    let v = json_run(vec![data("journal.json")], vec![]);
    assert_eq!(
        events(&v),
        vec![
            ev("systemd-monitor", "KubeletStart"),
            ev("kernel-monitor", "OOMKilling"),
        ]
    );
    let oom = v.iter().find(|o| o["reason"] == "OOMKilling").unwrap();
    assert_eq!(oom["time"], "2026-11-23T07:34:35.22251Z");
}

#[test]
fn rfc3339_syslog_and_mixed_formats_in_one_run() {
    let v = json_run(
        vec![
            data("syslog-rfc3339.txt"),
            data("dmesg.txt"),
            data("journal.json"),
        ],
        vec![],
    );
    let got = events(&v);
    assert_eq!(
        got.iter().filter(|e| e.1 == "OOMKilling").count(),
        3,
        "{got:?}"
    );
    assert!(got.contains(&ev("kernel-monitor", "XfsHasShutdown")));
    let inp = input(&v);
    assert_eq!(inp["by_format"]["syslog-iso"], 3);
    assert_eq!(inp["by_format"]["dmesg"], 9);
    assert_eq!(inp["by_format"]["journal-json"], 3);
    assert_eq!(inp["lines_unplaced"], 0);
}

#[test]
fn gzip_input_is_detected_by_magic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("kern.log.1"); // no .gz suffix on purpose
    let f = std::fs::File::create(&p).unwrap();
    let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    gz.write_all(&std::fs::read(data("syslog.txt")).unwrap())
        .unwrap();
    gz.finish().unwrap();
    let v = json_run(vec![p], vec![]);
    assert_eq!(events(&v).len(), 4);
    assert_eq!(input(&v)["by_format"]["syslog"], 7);
}

#[test]
fn garbage_is_counted_never_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk");
    let mut bytes = b"\x00\x01\xff\xfe binary junk\n{not json\n[abc] nope\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'A', 200_000));
    bytes.extend_from_slice(b"\n[ 5.000000] EXT4-fs error (device sdb): boom\n");
    std::fs::write(&p, bytes).unwrap();
    let v = json_run(vec![p], vec![]);
    assert_eq!(events(&v), vec![ev("kernel-monitor", "Ext4Error")]);
    let inp = input(&v);
    assert_eq!(inp["lines_unplaced"], 4);
    assert_eq!(inp["lines_truncated"], 1);
}

#[test]
fn exit_codes_and_fail_on() {
    let mut args = DryRunArgs {
        files: vec![data("dmesg.txt")],
        ..Default::default()
    };
    assert_eq!(run(&args).1.exit_code, 0);
    args.fail_on = FailOn::Problem;
    assert_eq!(run(&args).1.exit_code, 1);
    // A clean log passes the gate.
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean");
    std::fs::write(&clean, "[ 1.000000] all good\n").unwrap();
    args.files = vec![clean];
    assert_eq!(run(&args).1.exit_code, 0);
    // Config errors: exit 2.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"plugin\": \"kmsg\", \"rules\": [").unwrap();
    args.config = vec![bad];
    let err = npd::dryrun::run(&args, &mut Vec::new()).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("bad.json"), "{err}");
    let custom = dir.path().join("custom.json");
    std::fs::write(
        &custom,
        r#"{"plugin": "custom", "pluginConfig": {}, "rules": []}"#,
    )
    .unwrap();
    args.config = vec![custom];
    let err = npd::dryrun::run(&args, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("custom"), "{err}");
    assert_eq!(err.exit_code(), 2);
    // A missing input is an error too.
    args.config = vec![];
    args.files = vec![dir.path().join("missing")];
    let err = npd::dryrun::run(&args, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn json_output_is_stable() {
    let v = json_run(vec![data("dmesg-T.txt")], vec![]);
    let keys =
        |o: &serde_json::Value| -> Vec<String> { o.as_object().unwrap().keys().cloned().collect() };
    let ev = v.iter().find(|o| o["kind"] == "event").unwrap();
    assert_eq!(
        keys(ev),
        ["kind", "message", "reason", "severity", "source", "time"]
    );
    let c = v.iter().find(|o| o["kind"] == "condition").unwrap();
    assert_eq!(
        keys(c),
        [
            "kind",
            "message",
            "reason",
            "source",
            "status",
            "transition",
            "type"
        ]
    );
    let s = v.iter().find(|o| o["kind"] == "summary").unwrap();
    assert_eq!(
        keys(s),
        ["count", "first", "kind", "last", "reason", "source"]
    );
    assert_eq!(
        keys(input(&v)),
        [
            "by_format",
            "by_origin",
            "kind",
            "lines_ignored",
            "lines_parsed",
            "lines_routed",
            "lines_truncated",
            "lines_unplaced"
        ]
    );
    // Same input, same bytes.
    let a = json_run(vec![data("dmesg-T.txt")], vec![]);
    assert_eq!(a, v);
}

#[test]
fn text_output_has_sections_and_relative_times() {
    let args = DryRunArgs {
        files: vec![data("dmesg.txt")],
        ..Default::default()
    };
    let (text, _) = run(&args);
    assert!(text.contains("boot+1843.222510s"), "{text}");
    assert!(text.contains("CONDITIONS (final state)"));
    assert!(text.contains("SUMMARY (events per reason)"));
    assert!(text.contains("KernelDeadlock"));
    assert!(!text.contains('\x1b'), "no colour when not a terminal");
    let summary = text.split("SUMMARY").nth(1).unwrap();
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("OOMKilling") && l.contains(" 1  ")),
        "{summary}"
    );
}

/// A log that goes bad and recovers, with a recovery rule and with recoverAfter, timed by
/// the log's own timestamps (issue 8).
#[test]
fn condition_goes_bad_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("link.json");
    std::fs::write(
        &cfg,
        r#"{
  "plugin": "kmsg",
  "source": "link-monitor",
  "conditions": [
    {"type": "LinkDown", "reason": "LinkIsUp", "message": "link is up"},
    {"type": "DiskFlaky", "reason": "DiskIsFine", "message": "disk ok", "recoverAfter": "10m"}
  ],
  "rules": [
    {"type": "permanent", "condition": "LinkDown", "reason": "LinkWentDown", "pattern": "eth0: Link is Down"},
    {"type": "recovery", "condition": "LinkDown", "reason": "LinkCameBack", "pattern": "eth0: Link is Up.*"},
    {"type": "permanent", "condition": "DiskFlaky", "reason": "DiskErrors", "pattern": "I/O error, dev sdb.*"}
  ]
}"#,
    )
    .unwrap();
    let log = dir.path().join("kern.log");
    std::fs::write(
        &log,
        "Nov 23 07:00:00 n kernel: eth0: Link is Down\n\
Nov 23 07:00:01 n kernel: I/O error, dev sdb, sector 1234 op 0x0:(READ)\n\
Nov 23 07:05:00 n kernel: eth0: Link is Up - 10Gbps/Full - flow control off\n\
Nov 23 07:30:00 n kernel: nothing to see\n",
    )
    .unwrap();
    let v = json_run(vec![log.clone()], vec![cfg.clone()]);
    let cond = |t: &str| {
        v.iter()
            .find(|o| o["kind"] == "condition" && o["type"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(cond("LinkDown")["status"], "False");
    assert_eq!(cond("LinkDown")["reason"], "LinkCameBack");
    assert_eq!(cond("DiskFlaky")["status"], "False");
    assert_eq!(cond("DiskFlaky")["reason"], "DiskIsFine");
    let evs: Vec<_> = v
        .iter()
        .filter(|o| o["kind"] == "event")
        .map(|o| {
            (
                o["severity"].as_str().unwrap(),
                o["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(evs.len(), 4, "{evs:?}");
    assert!(evs[3].1.contains("DiskFlaky is now: False"), "{evs:?}");
    assert_eq!(evs[3].0, "Normal");
    let recovered = v.iter().filter(|o| o["kind"] == "event").nth(3).unwrap();
    // The recovery is dated by the log's clock: 10 minutes after the last error.
    assert!(
        recovered["time"].as_str().unwrap().ends_with("T07:10:01Z"),
        "{recovered}"
    );

    // Without the last line the log's clock never reaches the deadline: still True
    // (the dry-run does not tick to the real now at the end of input).
    let short = dir.path().join("short.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.pop();
    std::fs::write(&short, lines.join("\n")).unwrap();
    let args = DryRunArgs {
        config: vec![cfg],
        files: vec![short],
        fail_on: FailOn::Problem,
        ..Default::default()
    };
    let (_, o) = run(&args);
    assert_eq!(o.true_conditions, 1);
    assert_eq!(o.exit_code, 1);
}

#[test]
fn summary_is_per_reason_and_source() {
    // Two monitors with the same reason: one summary record each, not one merged under
    // the first monitor's source.
    let dir = tempfile::tempdir().unwrap();
    let cfg = |source: &str| {
        let p = dir.path().join(format!("{source}.json"));
        std::fs::write(
            &p,
            format!(
                r#"{{"plugin": "kmsg", "source": "{source}",
                  "rules": [{{"type": "temporary", "reason": "DiskError", "pattern": "disk error.*"}}]}}"#
            ),
        )
        .unwrap();
        p
    };
    let capture = dir.path().join("dmesg.txt");
    std::fs::write(
        &capture,
        "[    1.000000] disk error on sda\n[    2.000000] disk error on sdb\n",
    )
    .unwrap();
    let v = json_run(
        vec![capture.clone()],
        vec![cfg("b-monitor"), cfg("a-monitor")],
    );
    let summary: Vec<(String, String, u64)> = v
        .iter()
        .filter(|o| o["kind"] == "summary")
        .map(|o| {
            (
                o["reason"].as_str().unwrap().to_string(),
                o["source"].as_str().unwrap().to_string(),
                o["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("DiskError".to_string(), "a-monitor".to_string(), 2),
            ("DiskError".to_string(), "b-monitor".to_string(), 2),
        ]
    );
    let args = DryRunArgs {
        config: vec![cfg("b-monitor"), cfg("a-monitor")],
        output: OutputFormat::Text,
        fail_on: FailOn::Never,
        files: vec![capture],
    };
    let (text, _) = run(&args);
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("SUMMARY"))
        .filter(|l| l.starts_with("DiskError"))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].contains("a-monitor") && rows[0].contains(" 2 "),
        "{text}"
    );
    assert!(
        rows[1].contains("b-monitor") && rows[1].contains(" 2 "),
        "{text}"
    );
}
