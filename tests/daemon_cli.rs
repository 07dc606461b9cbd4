//! The real binary's command line: errors at start, version, upstream flags.

mod support;

use std::process::Command;

use support::daemon::BIN;

#[test]
fn no_config_is_an_error_saying_what_to_pass() {
    let out = Command::new(BIN)
        .arg("--enable-k8s-exporter=false")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--config.system-log-monitor"), "{err}");
}

#[test]
fn version_prints_version() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains(env!("CARGO_PKG_VERSION")), "{s}");
}

#[test]
fn broken_config_is_reported_with_file_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.json");
    std::fs::write(
        &cfg,
        r#"{"plugin":"kmsg","source":"k","rules":[{"type":"temporary","reason":"Broken","pattern":"(unclosed"}]}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "--enable-k8s-exporter=false",
            "--port=0",
            "--prometheus-port=0",
        ])
        .arg(format!("--config.system-log-monitor={}", cfg.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json: rule 0 (reason \"Broken\")"),
        "{err}"
    );
}

#[test]
fn unknown_flag_is_rejected() {
    let out = Command::new(BIN).arg("--no-such-flag").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // A usage error (exit 2, as clap and Go's flag package), not a crash or a start failure.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--no-such-flag"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn klog_single_dash_flags_are_accepted() {
    // -vmodule is klog's, not -v with a value; -v=2 and -v3 are -v.
    for args in [
        &["-vmodule=foo=2", "-logtostderr"][..],
        &["-v=2"][..],
        &["-v3"][..],
    ] {
        let out = Command::new(BIN)
            .arg("--enable-k8s-exporter=false")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        // It gets past the command line: the error is the missing config.
        assert!(
            err.contains("--config.system-log-monitor"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_fatal_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("k.json");
    std::fs::write(
        &cfg,
        r#"{"plugin":"kmsg","source":"k","conditions":[],"rules":[]}"#,
    )
    .unwrap();
    // The admin port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(BIN)
        .args(["--enable-k8s-exporter=false", "--prometheus-port=0"])
        .arg(format!("--port={port}"))
        .arg(format!("--config.system-log-monitor={}", cfg.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    // The cause once, not repeated as the error's source.
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}
