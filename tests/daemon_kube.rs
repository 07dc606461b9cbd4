//! The real binary against the in-repo test API server: conditions set by log rules go
//! True and recover (recovery rule and recoverAfter), events arrive, Ready is untouched;
//! a custom plugin's permanent condition follows its script's result.

#[path = "support/apiserver.rs"]
mod apiserver;
mod support;

use std::path::Path;
use std::time::Duration;

use apiserver::ApiServer;
use support::daemon::{Daemon, wait_for};

const NODE: &str = "node-e2e";

fn start_server() -> (tokio::runtime::Runtime, ApiServer) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(ApiServer::start());
    server.add_node(NODE);
    (rt, server)
}

fn append(path: &Path, msg: &str) {
    support::syslog::append(path, NODE, msg);
}

fn status_of(server: &ApiServer, t: &str) -> Option<(String, String)> {
    let c = server.condition(NODE, t)?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
    ))
}

fn wait_status(server: &ApiServer, d: &Daemon, t: &str, want: (&str, &str)) {
    let got = wait_for(Duration::from_secs(15), || {
        status_of(server, t).filter(|(s, r)| s == want.0 && r == want.1)
    });
    assert!(
        got.is_some(),
        "condition {t} never became {want:?}; node: {}\nlog:\n{}",
        server.node(NODE)["status"]["conditions"],
        d.log()
    );
}

const NIC: &str = r#"{
  "plugin": "filelog",
  "pluginConfig": {"timestamp": "^.{15}", "message": "kernel: (?:\\[\\s*\\d+\\.\\d+\\] )?(.*)", "timestampFormat": "Jan _2 15:04:05"},
  "logPath": "LOG", "lookback": "1m", "source": "nic-monitor",
  "conditions": [
    {"type": "NicLinkDown", "reason": "NicLinkUp", "message": "all links up"},
    {"type": "DiskFlaky", "reason": "DiskOk", "message": "disk ok", "recoverAfter": "8s"}
  ],
  "rules": [
    {"type": "permanent", "condition": "NicLinkDown", "reason": "NicLinkDown", "pattern": "\\S+: Link is Down"},
    {"type": "recovery", "condition": "NicLinkDown", "reason": "NicLinkUp", "pattern": "\\S+: Link is Up.*"},
    {"type": "permanent", "condition": "DiskFlaky", "reason": "DiskTimeout", "pattern": "sd \\S+: timing out command.*"},
    {"type": "temporary", "reason": "OOMKilling", "pattern": "Killed process \\d+ .*", "severity": "info"}
  ]
}"#;

#[test]
fn log_conditions_go_true_and_recover_on_the_node() {
    let (_rt, server) = start_server();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kern.log");
    append(&log, "boot");
    let cfg = dir.path().join("nic.json");
    std::fs::write(&cfg, NIC.replace("LOG", log.to_str().unwrap())).unwrap();
    let mut d = Daemon::start(
        dir.path(),
        &[
            &format!("--apiserver-override={}", server.url()),
            &format!("--hostname-override={NODE}"),
            "--apiserver-wait-interval=100ms",
            &format!("--config.system-log-monitor={}", cfg.display()),
        ],
    );
    d.wait_up();
    wait_status(&server, &d, "NicLinkDown", ("False", "NicLinkUp"));

    append(&log, "e1000e 0000:00:1f.6 eth0: Link is Down");
    wait_status(&server, &d, "NicLinkDown", ("True", "NicLinkDown"));
    append(
        &log,
        "e1000e 0000:00:1f.6 eth0: Link is Up 1000 Mbps Full Duplex, Flow Control: None",
    );
    wait_status(&server, &d, "NicLinkDown", ("False", "NicLinkUp"));
    let c = server.condition(NODE, "NicLinkDown").unwrap();
    assert_eq!(
        c["message"],
        "e1000e 0000:00:1f.6 eth0: Link is Up 1000 Mbps Full Duplex, Flow Control: None"
    );

    // recoverAfter: no further match for 8 s brings the condition back by itself. The
    // deadline counts from the line's timestamp (whole seconds), and condition changes
    // reach the node in 1 s batches: 8 s keeps the True state on the node for several
    // batches even when the line is read late on a loaded machine.
    append(&log, "sd 0:0:0:0: timing out command, waited 180s");
    wait_status(&server, &d, "DiskFlaky", ("True", "DiskTimeout"));
    wait_status(&server, &d, "DiskFlaky", ("False", "DiskOk"));

    // Severity info gives a Normal event.
    append(&log, "Killed process 77 (x) total-vm:1kB");
    let ev = wait_for(Duration::from_secs(15), || {
        server
            .events()
            .into_iter()
            .find(|e| e["reason"] == "OOMKilling")
    });
    let ev =
        ev.unwrap_or_else(|| panic!("no OOMKilling event: {:?}\n{}", server.events(), d.log()));
    assert_eq!(ev["type"], "Normal");
    assert_eq!(ev["source"]["component"], "nic-monitor");
    assert_eq!(ev["involvedObject"]["kind"], "Node");
    let events = server.events();
    let msgs: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        msgs.contains(&"Node condition NicLinkDown is now: False, reason: NicLinkUp, message: \"e1000e 0000:00:1f.6 eth0: Link is Up 1000 Mbps Full Duplex, Flow Control: None\""),
        "{msgs:#?}"
    );
    assert!(
        msgs.contains(&"Node condition DiskFlaky is now: True, reason: DiskTimeout, message: \"sd 0:0:0:0: timing out command, waited 180s\""),
        "{msgs:#?}"
    );
    assert!(
        msgs.contains(
            &"Node condition DiskFlaky is now: False, reason: DiskOk, message: \"disk ok\""
        ),
        "{msgs:#?}"
    );

    // Conditions owned by others are untouched.
    assert_eq!(
        status_of(&server, "Ready").map(|x| x.0),
        Some("True".to_string())
    );
    let m = d.metrics();
    assert!(
        m.contains("problem_gauge{reason=\"DiskTimeout\",type=\"DiskFlaky\"} 0"),
        "{m}"
    );
    // Every status PATCH the server received succeeded and is counted: at least the first
    // one and the four changes above, each awaited on its own, so never batched together.
    let received = || {
        server
            .requests_matching("PATCH", &format!("/api/v1/nodes/{NODE}/status"))
            .len() as f64
    };
    let counted = wait_for(Duration::from_secs(10), || {
        d.metric("npd_condition_patches_total")
            .filter(|v| *v == received())
    });
    let counted = counted.unwrap_or_else(|| {
        panic!(
            "npd_condition_patches_total {:?}, server received {}",
            d.metric("npd_condition_patches_total"),
            received()
        )
    });
    assert!(counted >= 5.0, "{counted} patches");

    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(15)), Some(0), "{}", d.log());
}

#[test]
fn custom_plugin_condition_follows_script_result() {
    let (_rt, server) = start_server();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(&state, "1").unwrap();
    let script = dir.path().join("check.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nif [ \"$(cat {})\" = 0 ]; then echo healthy; exit 0; fi\necho 'ntp is not synchronised'\nexit 1\n", state.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("ntp.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "plugin": "custom",
            "pluginConfig": {"invoke_interval": "500ms", "timeout": "5s", "max_output_length": 80, "concurrency": 1},
            "source": "ntp-custom-plugin-monitor",
            "conditions": [{"type": "NTPProblem", "reason": "NTPIsUp", "message": "ntp service is up"}],
            "rules": [{"type": "permanent", "condition": "NTPProblem", "reason": "NTPIsDown", "path": script}]
        })
        .to_string(),
    )
    .unwrap();
    let mut d = Daemon::start(
        dir.path(),
        &[
            &format!("--apiserver-override={}", server.url()),
            &format!("--hostname-override={NODE}"),
            "--apiserver-wait-interval=100ms",
            &format!("--config.custom-plugin-monitor={}", cfg.display()),
        ],
    );
    d.wait_up();
    wait_status(&server, &d, "NTPProblem", ("True", "NTPIsDown"));
    assert_eq!(
        server.condition(NODE, "NTPProblem").unwrap()["message"],
        "ntp is not synchronised"
    );
    std::fs::write(&state, "0").unwrap();
    wait_status(&server, &d, "NTPProblem", ("False", "NTPIsUp"));
    let (_, health) = support::daemon::http_get(d.port, "/healthz").unwrap();
    assert!(health.contains("\"plugins\""), "{health}");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(15)), Some(0), "{}", d.log());
}
