//! Dry-run over captures of THIS machine's own logs, made by the test: `dmesg` output,
//! the live /dev/kmsg, and `journalctl` output of a real journald the test starts in a
//! namespace of its own. Needs root; fails loudly without it.

#[path = "support/journald.rs"]
mod journald_support;
#[path = "support/kmsg.rs"]
mod kmsg_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use npd::dryrun::{DryRunArgs, OutputFormat};

fn json_run(args: &DryRunArgs) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    npd::dryrun::run(args, &mut out).expect("dry-run runs");
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn input(v: &[serde_json::Value]) -> serde_json::Value {
    v.iter().find(|o| o["kind"] == "input").unwrap().clone()
}

fn capture(dir: &Path, name: &str, cmd: &str, args: &[&str]) -> PathBuf {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = dir.join(name);
    std::fs::write(&p, &out.stdout).unwrap();
    p
}

#[test]
fn this_machines_dmesg_parses() {
    // Root, /dev/kmsg, no write rate limit, and no other kmsg test of this binary at once.
    let _kmsg = kmsg_support::KmsgGuard::acquire();
    let marker = kmsg_support::unique_marker("dryrun");
    kmsg_support::KmsgWriter::open().info(&format!(
        "EXT4-fs error (device {marker}): ext4_find_entry:1683: inode #2: test"
    ));
    let dir = tempfile::tempdir().unwrap();
    let plain = capture(dir.path(), "dmesg", "dmesg", &[]);
    let human = capture(dir.path(), "dmesg-T", "dmesg", &["-T"]);
    let raw = capture(dir.path(), "dmesg-r", "dmesg", &["-r"]);
    for (p, format) in [(&plain, "dmesg"), (&human, "dmesg-T")] {
        let v = json_run(&DryRunArgs {
            files: vec![p.clone()],
            output: OutputFormat::Json,
            ..Default::default()
        });
        let inp = input(&v);
        let lines = std::fs::read_to_string(p).unwrap().lines().count() as u64;
        assert!(lines > 0);
        // Other programs may log messages with embedded newlines, which dmesg prints as
        // unstamped lines: allow a few (1%), but every stamped line must parse.
        let unplaced = inp["lines_unplaced"].as_u64().unwrap();
        let parsed = inp["by_format"][format].as_u64().unwrap();
        assert!(unplaced * 100 <= lines, "{format}: {inp}");
        assert_eq!(parsed + unplaced, lines, "{format}: {inp}");
        let text = std::fs::read_to_string(p).unwrap();
        let stamped = text.lines().filter(|l| l.starts_with('[')).count() as u64;
        assert_eq!(parsed, stamped, "{format}: {inp}");
        let marked = v
            .iter()
            .any(|o| o["kind"] == "event" && o["message"].as_str().unwrap().contains(&marker));
        assert!(marked, "{format}: our own record fires Ext4Error");
    }
    // `dmesg -r` prints `<3>[ 1.0] msg`: not a supported format; counted, never fatal.
    let v = json_run(&DryRunArgs {
        files: vec![raw],
        output: OutputFormat::Json,
        ..Default::default()
    });
    assert!(input(&v)["lines_unplaced"].as_u64().unwrap() > 0);

    // The live /dev/kmsg, from the oldest record held until caught up.
    let v = json_run(&DryRunArgs {
        output: OutputFormat::Json,
        ..Default::default()
    });
    let hit = v.iter().find(|o| {
        o["kind"] == "event"
            && o["reason"] == "Ext4Error"
            && o["message"].as_str().unwrap().contains(&marker)
    });
    let hit = hit.unwrap_or_else(|| panic!("no Ext4Error for {marker} in live kmsg"));
    // Live stamps are real wall-clock times (boot time of this machine).
    let t: jiff::Timestamp = hit["time"].as_str().unwrap().parse().unwrap();
    let age = jiff::Timestamp::now().duration_since(t);
    assert!(age.as_secs() < 3600, "{t}");
    assert_eq!(input(&v)["lines_unplaced"], 0);
    // Losses while reading are reported for the live device (0 unless flooded).
    assert!(input(&v)["kmsg_records_lost"].is_u64(), "{}", input(&v));
}

#[test]
fn this_machines_journalctl_output_parses_and_routes() {
    // A journald of our own, in a namespace (fails loudly without root or journald).
    let j = journald_support::TestJournald::start();
    let entries: &[(&str, &str)] = &[
        (
            "systemd",
            "Starting containerd.service - containerd container runtime...",
        ),
        ("containerd", "starting containerd"),
        (
            "kubelet",
            "Out of memory: Killed process 1 (x) total-vm:1kB, anon-rss:1kB, file-rss:1kB",
        ),
        (
            "systemd",
            "Started kubelet.service - kubelet: The Kubernetes Node Agent.",
        ),
    ];
    for (ident, msg) in entries {
        j.send(ident, msg);
    }
    j.sync();
    // Wait until journalctl shows the last entry.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&j.journalctl_output(&["-o", "cat"]))
        .contains("Started kubelet.service")
    {
        assert!(
            Instant::now() < deadline,
            "entries did not reach the journal of {}",
            j.ns
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = tempfile::tempdir().unwrap();
    let formats: &[(&str, &[&str], &str)] = &[
        ("short", &["-o", "short"], "syslog"),
        ("short-precise", &["-o", "short-precise"], "syslog"),
        ("short-iso", &["-o", "short-iso"], "syslog-iso"),
        ("catalog", &["-x"], "syslog"),
        ("json", &["-o", "json"], "journal-json"),
        ("export", &["-o", "export"], "journal-export"),
    ];
    for (name, args, format) in formats {
        let p = dir.path().join(name);
        std::fs::write(&p, j.journalctl_output(args)).unwrap();
        let v = json_run(&DryRunArgs {
            files: vec![p],
            output: OutputFormat::Json,
            ..Default::default()
        });
        let inp = input(&v);
        assert_eq!(inp["lines_unplaced"], 0, "{name}: {inp}");
        assert!(
            inp["by_format"][format].as_u64().unwrap() >= 4,
            "{name}: {inp}"
        );
        assert!(
            inp["by_origin"]["kubelet"].as_u64().unwrap() >= 1,
            "{name}: {inp}"
        );
        let evs: Vec<(String, String)> = v
            .iter()
            .filter(|o| o["kind"] == "event")
            .map(|o| {
                (
                    o["source"].as_str().unwrap().into(),
                    o["reason"].as_str().unwrap().into(),
                )
            })
            .collect();
        // kubelet's "Out of memory" line is a program's line: no OOMKilling.
        assert_eq!(
            evs,
            vec![
                ("systemd-monitor".into(), "ContainerdStart".into()),
                ("systemd-monitor".into(), "KubeletStart".into()),
            ],
            "{name}"
        );
    }
    // The binary journal itself: the namespace's directory, and one .journal file in it.
    j.sync();
    let jdir = j.dir.clone();
    let file = std::fs::read_dir(&jdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "journal"))
        .expect("a .journal file");
    for path in [jdir, file] {
        let v = json_run(&DryRunArgs {
            files: vec![path.clone()],
            output: OutputFormat::Json,
            ..Default::default()
        });
        let inp = input(&v);
        assert!(
            inp["by_format"]["journal-file"].as_u64().unwrap() >= 4,
            "{path:?}: {inp}"
        );
        assert_eq!(inp["by_origin"]["kubelet"], 1, "{path:?}: {inp}");
        let reasons: Vec<&str> = v
            .iter()
            .filter(|o| o["kind"] == "event")
            .map(|o| o["reason"].as_str().unwrap())
            .collect();
        assert_eq!(reasons, ["ContainerdStart", "KubeletStart"], "{path:?}");
    }
    drop(j);
}
