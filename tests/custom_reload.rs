//! Custom plugin monitors in the real binary against the in-repo test API server: a
//! kubelet-style ConfigMap swap reloads them (new plugins run, kept conditions keep their
//! state, dropped ones leave the Node, in-flight plugins are killed), an invalid new
//! config is rejected while the old monitor keeps running, and a True condition restored
//! from the Node at start stays True until the plugin reports otherwise.

#[path = "support/apiserver.rs"]
mod apiserver;
#[path = "support/custom.rs"]
mod custom_support;
mod support;

use std::path::Path;
use std::time::Duration;

use apiserver::ApiServer;
use custom_support::{read_pid, running, wait_gone};
use serde_json::{Value, json};
use support::configmap::ConfigMapDir;
use support::daemon::{Daemon, http_get, wait_for};

const NODE: &str = "node-custom-reload";
const CFG: &str = "custom.json";
/// Long enough for a debounced reload plus a plugin round and a batched PATCH.
const DEADLINE: Duration = Duration::from_secs(15);

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

fn start_daemon(dir: &Path, server: &ApiServer, cfg: &Path, extra: &[&str]) -> Daemon {
    let mut args = vec![
        format!("--apiserver-override={}", server.url()),
        format!("--hostname-override={NODE}"),
        "--apiserver-wait-interval=100ms".to_string(),
        format!("--config.custom-plugin-monitor={}", cfg.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut d = Daemon::start(dir, &args);
    d.wait_up();
    d
}

/// A rule running `/bin/sh -c body` (no script file: no ETXTBSY races).
fn rule(kind: &str, condition: &str, reason: &str, body: &str, extra: Value) -> Value {
    let mut r = json!({"type": kind, "reason": reason, "path": "/bin/sh", "args": ["-c", body]});
    if !condition.is_empty() {
        r["condition"] = json!(condition);
    }
    if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
        r.extend(extra.clone());
    }
    r
}

fn cond(type_: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "reason": reason, "message": message})
}

fn config(conditions: &[Value], rules: &[Value]) -> String {
    json!({
        "plugin": "custom",
        "pluginConfig": {"invoke_interval": "300ms", "timeout": "60s", "concurrency": 4},
        "source": "reload-test-plugins",
        "conditions": conditions,
        "rules": rules,
    })
    .to_string()
}

/// (status, reason, message, lastTransitionTime) of a condition on the Node.
fn on_node(server: &ApiServer, t: &str) -> Option<(String, String, String, String)> {
    let c = server.condition(NODE, t)?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
        c["message"].as_str()?.to_string(),
        c["lastTransitionTime"].as_str()?.to_string(),
    ))
}

fn wait_node(
    server: &ApiServer,
    d: &Daemon,
    t: &str,
    status: &str,
    reason: &str,
) -> (String, String, String, String) {
    wait_for(DEADLINE, || {
        on_node(server, t).filter(|c| c.0 == status && c.1 == reason)
    })
    .unwrap_or_else(|| {
        panic!(
            "condition {t} never became {status}/{reason} on the Node: {}\nlog:\n{}",
            server.node(NODE)["status"]["conditions"],
            d.log()
        )
    })
}

/// The entries of /conditions for type `t`.
fn local_conditions(d: &Daemon, t: &str) -> Vec<Value> {
    let (code, body) = http_get(d.port, "/conditions").unwrap();
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == t)
        .cloned()
        .collect()
}

fn healthz_plugins(d: &Daemon) -> Vec<Value> {
    let (_, body) = http_get(d.port, "/healthz").unwrap();
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["plugins"].as_array().cloned().unwrap_or_default()
}

/// The conditions of type `t` in the status PATCH bodies sent from request `from` on.
fn patched(server: &ApiServer, from: usize, t: &str) -> Vec<Value> {
    server.requests()[from..]
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/status"))
        .filter_map(|r| r.body.as_ref())
        .flat_map(|b| {
            b["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|c| c["type"] == t)
        .collect()
}

#[test]
fn configmap_swap_reloads_custom_plugins_and_keeps_kept_conditions() {
    let (_rt, server) = start_server();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("hang.pid");
    let short = json!({"timeout": "5s"});
    let v1 = config(
        &[
            cond("X", "XOk", "x ok"),
            cond("Y", "YOk", "y ok"),
            cond("Z", "ZOk", "z ok"),
        ],
        &[
            // A run in flight at the reload: it must be killed, not left behind. First, so
            // its first run is not staggered (the spread of a 1h interval is 10 s).
            rule(
                "temporary",
                "",
                "Hang",
                &format!("echo $$ > {}; exec sleep 1000", pidfile.display()),
                json!({"invoke_interval": "1h"}),
            ),
            rule(
                "permanent",
                "X",
                "XBad",
                "echo 'x broken (v1)'; exit 1",
                short.clone(),
            ),
            rule(
                "permanent",
                "Y",
                "YBad",
                "echo 'y broken'; exit 1",
                short.clone(),
            ),
            rule(
                "permanent",
                "Z",
                "ZBad",
                "echo 'z broken'; exit 1",
                short.clone(),
            ),
        ],
    );
    let mut cm = ConfigMapDir::new(&dir.path().join("config"), &[(CFG, &v1)]);
    let d = start_daemon(
        dir.path(),
        &server,
        &cm.path(CFG),
        &["--delete-removed-conditions"],
    );
    wait_node(&server, &d, "X", "True", "XBad");
    wait_node(&server, &d, "Z", "True", "ZBad");
    let y_before = wait_node(&server, &d, "Y", "True", "YBad");
    let hang = read_pid(&pidfile);
    assert!(running(hang), "the hanging plugin should be running");
    assert_eq!(healthz_plugins(&d).len(), 4);

    // v2: X's plugin is now OK (a changed threshold) with a new default reason; Y's rule
    // reports the same result but only after 2 s; Z is dropped, and so is Hang.
    let v2 = config(
        &[cond("X", "XFine", "x fine (v2)"), cond("Y", "YOk", "y ok")],
        &[
            rule(
                "permanent",
                "X",
                "XBad",
                "echo 'x ok (v2)'; exit 0",
                short.clone(),
            ),
            rule(
                "permanent",
                "Y",
                "YBad",
                "sleep 2; echo 'y broken'; exit 1",
                short.clone(),
            ),
        ],
    );
    let from = server.requests().len();
    cm.update(&[(CFG, &v2)]);

    let x = wait_node(&server, &d, "X", "False", "XFine");
    assert_eq!(x.2, "x fine (v2)");
    let ok = wait_for(DEADLINE, || {
        d.metric("npd_config_reloads_total{result=\"success\"}")
            .filter(|v| *v == 1.0)
    });
    assert!(ok.is_some(), "{}", d.metrics());
    // The in-flight run of the dropped rule was killed with its process group.
    assert!(
        wait_gone(hang, Duration::from_secs(10)),
        "plugin {hang} of the old config still runs after the reload\n{}",
        d.log()
    );
    // Z left our configs: deleted from the Node (--delete-removed-conditions) and gone
    // from /conditions.
    let gone = wait_for(DEADLINE, || on_node(&server, "Z").is_none().then_some(()));
    assert!(
        gone.is_some(),
        "Z still on the Node: {}",
        server.node(NODE)["status"]["conditions"]
    );
    assert!(local_conditions(&d, "Z").is_empty());
    let x_local = local_conditions(&d, "X");
    assert_eq!(x_local.len(), 1, "{x_local:?}");
    assert_eq!(x_local[0]["status"], "False");
    assert_eq!(x_local[0]["reason"], "XFine");

    // /healthz lists the new config's rules once, none of the old ones.
    let wait_y_ran = wait_for(DEADLINE, || {
        let p = healthz_plugins(&d);
        (p.len() == 2
            && p.iter()
                .any(|r| r["reason"] == "YBad" && r["runs"].as_u64() >= Some(1)))
        .then_some(p)
    });
    let plugins = wait_y_ran.unwrap_or_else(|| panic!("{:?}", healthz_plugins(&d)));
    let reasons: Vec<&str> = plugins
        .iter()
        .filter_map(|p| p["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["XBad", "YBad"], "{plugins:?}");

    // Y was True before the reload and its new plugin took 2 s to report True again: it
    // never went back to the default, on the Node or in /conditions.
    let y_after = on_node(&server, "Y").unwrap();
    assert_eq!(y_after, y_before, "Y changed across the reload");
    let flaps: Vec<Value> = patched(&server, from, "Y")
        .into_iter()
        .filter(|c| c["status"] != "True")
        .collect();
    assert!(flaps.is_empty(), "Y was sent as {flaps:?} after the reload");
    let y_local = local_conditions(&d, "Y");
    assert_eq!(y_local[0]["status"], "True", "{y_local:?}");
    let events: Vec<String> = server
        .events()
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect();
    assert!(
        events.contains(
            &"Node condition X is now: False, reason: XFine, message: \"x fine (v2)\"".to_string()
        ),
        "{events:#?}"
    );
    assert!(
        !events
            .iter()
            .any(|m| m.starts_with("Node condition Y is now: False")),
        "{events:#?}"
    );
}

#[test]
fn invalid_custom_config_is_rejected_and_the_old_monitor_keeps_running() {
    let (_rt, server) = start_server();
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("fixed");
    let v1 = config(
        &[cond("X", "XOk", "x ok")],
        &[rule(
            "permanent",
            "X",
            "XBad",
            &format!(
                "if [ -e {} ]; then echo fine; exit 0; fi; echo 'x broken'; exit 1",
                flag.display()
            ),
            json!({"timeout": "5s"}),
        )],
    );
    let mut cm = ConfigMapDir::new(&dir.path().join("config"), &[(CFG, &v1)]);
    let d = start_daemon(dir.path(), &server, &cm.path(CFG), &[]);
    wait_node(&server, &d, "X", "True", "XBad");

    // A permanent rule whose condition has no default: rejected, naming file and rule.
    let bad = config(
        &[cond("X", "XOk", "x ok")],
        &[rule(
            "permanent",
            "Nope",
            "NopeBad",
            "exit 0",
            json!({"timeout": "5s"}),
        )],
    );
    cm.update(&[(CFG, &bad)]);
    let failed = wait_for(DEADLINE, || {
        d.metric("npd_config_reloads_total{result=\"failure\"}")
            .filter(|v| *v == 1.0)
    });
    assert!(failed.is_some(), "{}\n{}", d.metrics(), d.log());
    assert_eq!(
        d.metric("npd_config_reloads_total{result=\"success\"}"),
        Some(0.0)
    );
    let log = d.log();
    let rejected = log
        .lines()
        .find(|l| l.contains("config reload rejected"))
        .unwrap_or_else(|| panic!("no rejection logged:\n{log}"));
    assert!(
        rejected.contains(CFG) && rejected.contains("rule 0") && rejected.contains("\"Nope\""),
        "{rejected}"
    );
    let ev = wait_for(DEADLINE, || {
        server
            .events()
            .into_iter()
            .find(|e| e["reason"] == "ConfigReloadFailed")
    })
    .unwrap_or_else(|| panic!("no ConfigReloadFailed event: {:?}", server.events()));
    assert!(
        ev["message"].as_str().unwrap().contains(CFG),
        "{}",
        ev["message"]
    );

    // Broken JSON: rejected too.
    cm.update(&[(CFG, "{\"plugin\": \"custom\",")]);
    let failed = wait_for(DEADLINE, || {
        d.metric("npd_config_reloads_total{result=\"failure\"}")
            .filter(|v| *v == 2.0)
    });
    assert!(failed.is_some(), "{}\n{}", d.metrics(), d.log());

    // The old monitor still runs its plugin: the fix is seen.
    assert_eq!(
        healthz_plugins(&d)
            .iter()
            .map(|p| p["reason"].clone())
            .collect::<Vec<_>>(),
        ["XBad"]
    );
    std::fs::write(&flag, "").unwrap();
    wait_node(&server, &d, "X", "False", "XOk");
    assert_eq!(local_conditions(&d, "X")[0]["status"], "False");
}

#[test]
fn restored_plugin_condition_stays_true_until_the_plugin_reports() {
    let (_rt, server) = start_server();
    let dir = tempfile::tempdir().unwrap();
    // A True condition set by the plugin before the agent restarted (during this boot).
    let boot = npd::source::boot_time();
    let set_at = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(90)).max(boot);
    let set_at = set_at + jiff::SignedDuration::from_secs(1);
    let stamp = set_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    server.set_condition(
        NODE,
        json!({"type": "X", "status": "True", "reason": "XBad", "message": "x broken before the restart",
               "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}),
    );
    // The plugin's first run does not report until the gate file exists.
    let gate = dir.path().join("gate");
    let cfg = dir.path().join(CFG);
    std::fs::write(
        &cfg,
        config(
            &[cond("X", "XOk", "x ok")],
            &[rule(
                "permanent",
                "X",
                "XBad",
                &format!(
                    "while [ ! -e {} ]; do sleep 0.05; done; echo fine; exit 0",
                    gate.display()
                ),
                json!({"timeout": "60s"}),
            )],
        ),
    )
    .unwrap();
    let d = start_daemon(dir.path(), &server, &cfg, &[]);

    // The initial status has reached the Node: it carries the restored state.
    let sent = wait_for(DEADLINE, || {
        let p = patched(&server, 0, "X");
        (!p.is_empty()).then_some(p)
    })
    .unwrap_or_else(|| panic!("no status PATCH with X\n{}", d.log()));
    assert_eq!(sent[0]["status"], "True", "{sent:?}");
    assert_eq!(
        on_node(&server, "X").unwrap(),
        (
            "True".into(),
            "XBad".into(),
            "x broken before the restart".into(),
            stamp.clone()
        )
    );
    let local = local_conditions(&d, "X");
    assert_eq!(local[0]["status"], "True", "{local:?}");
    assert_eq!(
        local[0]["lastTransitionTime"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        stamp.parse::<jiff::Timestamp>().unwrap()
    );
    assert_eq!(
        d.metric("problem_gauge{reason=\"XBad\",type=\"X\"}"),
        Some(1.0),
        "{}",
        d.metrics()
    );
    let plugins = healthz_plugins(&d);
    assert_eq!(plugins[0]["runs"], 0, "the plugin has not reported yet");
    assert!(d.log().contains("restored custom plugin condition"));

    // The plugin reports OK: now, and only now, the condition goes False.
    std::fs::write(&gate, "").unwrap();
    let x = wait_node(&server, &d, "X", "False", "XOk");
    assert_ne!(x.3, stamp);
    assert!(
        patched(&server, 0, "X")
            .iter()
            .all(|c| c["status"] == "True" || c["reason"] == "XOk"),
        "{:?}",
        patched(&server, 0, "X")
    );
}
