//! The real binary with kmsg and journald monitor configs, run against the live kernel
//! log and a real journald (the test starts its own, in a journal namespace).

#[path = "support/journald.rs"]
mod journald_support;
#[path = "support/kmsg.rs"]
mod kmsg_support;
mod support;

use std::time::Duration;

use support::daemon::{Daemon, wait_for};

#[test]
fn kmsg_monitor_through_the_binary() {
    let _guard = kmsg_support::KmsgGuard::acquire();
    let dir = tempfile::tempdir().unwrap();
    let marker = kmsg_support::unique_marker("daemon");
    let cfg = dir.path().join("kmsg.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "plugin": "kmsg", "source": "kernel-monitor", "lookback": "0",
            "rules": [{"type": "temporary", "reason": "MarkerSeen", "pattern": format!("{marker} problem \\d+")}]
        })
        .to_string(),
    )
    .unwrap();
    let mut d = Daemon::standalone(dir.path(), &cfg, &[]);
    let mut w = kmsg_support::KmsgWriter::open();
    for i in 0..3 {
        w.info(&format!("{marker} problem {i}"));
    }
    let got = wait_for(Duration::from_secs(10), || {
        d.metric("problem_counter{reason=\"MarkerSeen\"}")
            .filter(|v| *v == 3.0)
    });
    assert!(got.is_some(), "{}\n{}", d.metrics(), d.log());
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0), "{}", d.log());
}

#[test]
fn journald_monitor_through_the_binary() {
    let j = journald_support::TestJournald::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("systemd.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "plugin": "journald", "pluginConfig": {"source": "npd-e2e-kubelet"},
            "logPath": j.dir, "lookback": "5m", "source": "systemd-monitor",
            "rules": [{"type": "temporary", "reason": "KubeletStart", "pattern": "Started kubelet.*"}]
        })
        .to_string(),
    )
    .unwrap();
    j.send("npd-e2e-kubelet", "Started kubelet before the agent");
    j.sync();
    let mut d = Daemon::standalone(dir.path(), &cfg, &[]);
    // Lookback: the entry written before start is read; a new one follows live; another
    // program's identical line is not ours.
    j.send("npd-e2e-kubelet", "Started kubelet after the agent");
    j.send("someone-else", "Started kubelet (not ours)");
    let got = wait_for(Duration::from_secs(15), || {
        d.metric("problem_counter{reason=\"KubeletStart\"}")
            .filter(|v| *v == 2.0)
    });
    assert!(got.is_some(), "{}\n{}", d.metrics(), d.log());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        d.metric("problem_counter{reason=\"KubeletStart\"}"),
        Some(2.0)
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0), "{}", d.log());
}
