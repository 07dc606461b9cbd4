//! Running real plugins: exit codes, spawn failures, timeouts that leave nothing behind,
//! huge output.

#[path = "support/custom.rs"]
mod custom_support;

use std::time::Duration;

use custom_support::{read_pid, running, wait_gone};
use npd::custom::{CustomRule, CustomRuleKind, PluginStatus, run_plugin};

fn rule(path: &str, args: &[&str], timeout: Duration) -> CustomRule {
    CustomRule {
        kind: CustomRuleKind::Temporary,
        condition: String::new(),
        reason: "R".into(),
        path: path.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        timeout,
        invoke_interval: Duration::from_secs(30),
    }
}

fn sh(body: &str, timeout: Duration) -> CustomRule {
    rule("/bin/sh", &["-c", body], timeout)
}

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn exit_codes_map_to_ok_nonok_unknown() {
    let r = run_plugin(&sh("echo '  all good  '; exit 0", T), 80).await;
    assert_eq!(
        (r.status, r.message.as_str()),
        (PluginStatus::Ok, "all good")
    );
    let r = run_plugin(&sh("echo broken; exit 1", T), 80).await;
    assert_eq!(
        (r.status, r.message.as_str()),
        (PluginStatus::NonOk, "broken")
    );
    let r = run_plugin(&sh("echo odd; exit 2", T), 80).await;
    assert_eq!(
        (r.status, r.message.as_str()),
        (PluginStatus::Unknown, "odd")
    );
    let r = run_plugin(&sh("exit 3", T), 80).await;
    assert_eq!(r.status, PluginStatus::Unknown);
    // Killed by a signal: Unknown with the signal named.
    let r = run_plugin(&sh("kill -9 $$", T), 80).await;
    assert_eq!(r.status, PluginStatus::Unknown);
    assert!(r.message.contains("signal 9"), "{}", r.message);
    assert!(!r.timed_out);
}

#[tokio::test]
async fn output_is_trimmed_and_cut_to_max_output_length() {
    let r = run_plugin(
        &sh("printf '\\n\\n  %s  \\n' 0123456789abcdef; exit 1", T),
        10,
    )
    .await;
    assert_eq!(r.message, "0123456789");
    // Multi-byte characters are never split.
    let r = run_plugin(&sh("printf 'aéé'; exit 1", T), 4).await;
    assert_eq!(r.message, "aé");
}

#[tokio::test]
async fn our_messages_are_not_cut_to_max_output_length() {
    // Only the plugin's output is cut; what we say about the run stays whole.
    let r = run_plugin(&sh("/nonexistent/tool", T), 10).await;
    assert_eq!(r.status, PluginStatus::Unknown);
    assert!(
        r.message
            .ends_with("exited with 127 (command or interpreter not found)"),
        "{}",
        r.message
    );
    let r = run_plugin(&sh("echo 0123456789abcdef; kill -9 $$", T), 10).await;
    assert_eq!(r.status, PluginStatus::Unknown);
    assert!(
        r.message
            .ends_with("killed by signal 9. output - \"0123456789\""),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn missing_interpreter_and_missing_plugin_are_unknown_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-shebang.sh");
    std::fs::write(&bad, "#!/nonexistent/interpreter\necho hi\n").unwrap();
    let noexec = dir.path().join("noexec.sh");
    std::fs::write(&noexec, "#!/bin/sh\necho hi\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Retry on ETXTBSY: another test thread may fork while our write fd is open.
    let mut r = run_plugin(&rule(bad.to_str().unwrap(), &[], T), 80).await;
    for _ in 0..20 {
        if !r.message.contains("busy") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = run_plugin(&rule(bad.to_str().unwrap(), &[], T), 80).await;
    }
    assert_eq!(r.status, PluginStatus::Unknown);
    assert!(r.message.contains("interpreter"), "{}", r.message);
    assert!(r.message.contains("bad-shebang.sh"), "{}", r.message);

    let r = run_plugin(&rule("/nonexistent/plugin.sh", &[], T), 80).await;
    assert_eq!(r.status, PluginStatus::Unknown);
    assert!(
        r.message
            .contains("cannot start plugin /nonexistent/plugin.sh"),
        "{}",
        r.message
    );

    let r = run_plugin(&rule(noexec.to_str().unwrap(), &[], T), 80).await;
    assert_eq!(r.status, PluginStatus::Unknown);
    assert!(r.message.contains("permission denied"), "{}", r.message);

    // A command not found inside the script: the shell's exit code 127.
    let r = run_plugin(&sh("/nonexistent/tool", T), 80).await;
    assert_eq!(r.status, PluginStatus::Unknown);
    assert!(r.message.contains("127"), "{}", r.message);
}

#[tokio::test]
async fn timeout_kills_a_script_that_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let body = format!(
        "trap '' TERM INT HUP; echo $$ > {}; echo working; while :; do sleep 1; done",
        pidfile.display()
    );
    let r = run_plugin(&sh(&body, Duration::from_millis(700)), 80).await;
    assert_eq!(r.status, PluginStatus::Unknown);
    assert!(r.timed_out);
    assert!(r.message.contains("Timeout"), "{}", r.message);
    assert!(r.message.contains("working"), "{}", r.message);
    let pid = read_pid(&pidfile);
    assert!(
        wait_gone(pid, Duration::from_secs(10)),
        "plugin {pid} still running"
    );
}

#[tokio::test]
async fn a_timed_out_plugin_that_survives_sigkill_does_not_block_the_run() {
    // The leader leaves its process group for the test's own (same session), so the
    // group kill at the timeout misses it, as SIGKILL misses a process stuck in the
    // kernel: the run must still end soon after the timeout, not when the plugin does.
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!(
        "open(my $f, '>', '{}') or die; print $f \"$$\\n\"; close $f; \
         setpgrp(0, getpgrp(getppid())) or die \"setpgrp: $!\"; \
         open(STDOUT, '>', '/dev/null'); open(STDERR, '>', '/dev/null'); sleep 60;",
        pidfile.display()
    );
    let started = std::time::Instant::now();
    let r = run_plugin(
        &rule(
            "/usr/bin/perl",
            &["-e", &script],
            Duration::from_millis(300),
        ),
        80,
    )
    .await;
    let took = started.elapsed();
    assert!(r.timed_out, "{}", r.message);
    assert_eq!(r.status, PluginStatus::Unknown);
    assert!(r.message.contains("Timeout"), "{}", r.message);
    assert!(took < Duration::from_secs(10), "the run took {took:?}");
    // Killed and reaped once the run let go of it.
    let pid = read_pid(&pidfile);
    assert!(
        wait_gone(pid, Duration::from_secs(10)),
        "plugin {pid} still running"
    );
}

#[tokio::test]
async fn timeout_kills_background_children_too() {
    let dir = tempfile::tempdir().unwrap();
    let child = dir.path().join("child");
    let me = dir.path().join("me");
    let body = format!(
        "sleep 1000 & echo $! > {}; echo $$ > {}; sleep 1000",
        child.display(),
        me.display()
    );
    let r = run_plugin(&sh(&body, Duration::from_millis(700)), 80).await;
    assert!(r.timed_out);
    for f in [&child, &me] {
        let pid = read_pid(f);
        assert!(
            wait_gone(pid, Duration::from_secs(10)),
            "{pid} still running"
        );
    }
}

#[tokio::test]
async fn a_background_child_does_not_outlive_a_plugin_that_exits() {
    let dir = tempfile::tempdir().unwrap();
    let child = dir.path().join("child");
    // The child holds stdout open; the run must still end (not wait for the timeout)
    // and the child must be gone.
    let body = format!(
        "sleep 1000 & echo $! > {}; echo done; exit 1",
        child.display()
    );
    let r = run_plugin(&sh(&body, Duration::from_secs(60)), 80).await;
    assert_eq!(
        (r.status, r.message.as_str()),
        (PluginStatus::NonOk, "done")
    );
    assert!(!r.timed_out);
    let pid = read_pid(&child);
    assert!(
        wait_gone(pid, Duration::from_secs(10)),
        "{pid} still running"
    );
}

#[tokio::test]
async fn huge_output_is_read_bounded_and_the_run_completes() {
    // 50 MB on stdout and stderr: far more than a pipe holds, so a reader that stopped
    // reading would block the plugin until its timeout.
    let before = vm_hwm_kib();
    let r = run_plugin(
        &sh(
            "yes | head -c 50000000; yes err | head -c 5000000 >&2; exit 1",
            T,
        ),
        80,
    )
    .await;
    assert!(!r.timed_out, "{}", r.message);
    assert_eq!(r.status, PluginStatus::NonOk);
    assert_eq!(r.message.len(), 80);
    assert!(r.message.starts_with("y\ny\n"));
    // Memory: what we keep is bounded by READ_LIMIT per stream; our peak RSS must not
    // grow by anything near the 55 MB the plugin wrote.
    let grown = vm_hwm_kib().saturating_sub(before);
    eprintln!("peak RSS grew by {grown} KiB while reading 55 MB of plugin output");
    assert!(grown < 16 * 1024, "peak RSS grew by {grown} KiB");
}

#[test]
fn running_detects_live_processes() {
    assert!(running(std::process::id() as i32));
    assert!(!running(i32::MAX));
}

fn vm_hwm_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
