//! The deployment manifests (deploy/) and the image recipe (Dockerfile) checked against the
//! Kubernetes API types, our flag parser, DESIGN.md's RBAC contract and config/.
//!
//! deploy/configmap.yaml and the plugin item list in deploy/daemonset.yaml are generated
//! from config/; `UPDATE_DEPLOY=1 cargo test --test deploy_manifests` (or
//! scripts/gen-configmap.sh) rewrites them, and without it the test fails when they differ.
//!
//! YAML is read with `serde_yaml_ng` (a maintained fork of serde_yaml on a pure-Rust
//! libyaml port): it splits multi-document files and deserialises into `serde_json::Value`,
//! from which the k8s-openapi types are built. k8s-openapi ignores unknown fields, so every
//! object is also serialised back and compared with what was read: a misspelt or misplaced
//! key is dropped on the way through and fails the comparison.

#[path = "support/upstream.rs"]
mod upstream_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Parser as _;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const REGENERATE: &str = "UPDATE_DEPLOY=1 cargo test --test deploy_manifests";
const CONFIG_CM: &str = "node-problem-detector-config";
const PLUGINS_CM: &str = "node-problem-detector-plugins";
const BEGIN_ITEMS: &str = "# BEGIN generated plugin items";
const END_ITEMS: &str = "# END generated plugin items";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every non-empty YAML document of a file, as JSON values.
fn yaml_docs(path: &Path) -> Vec<Value> {
    yaml_docs_str(&read(path), &path.display().to_string())
}

fn yaml_docs_str(text: &str, what: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .enumerate()
        .map(|(i, doc)| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: document {i}: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// First place where `a` (what was read) and `b` (what the type kept) differ.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    None => {
                        return Some(format!(
                            "{at}.{k}: not a field of the Kubernetes type (misspelt or misplaced key?)"
                        ));
                    }
                    Some(vb) => {
                        if let Some(d) = first_difference(va, vb, &format!("{at}.{k}")) {
                            return Some(d);
                        }
                    }
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{at}.{k}: added by the type"))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(va, vb, &format!("{at}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{at}: read {a}, type holds {b}")),
    }
}

/// Builds the Kubernetes type from `v` and checks that nothing was lost on the way.
fn typed<T: DeserializeOwned + Serialize>(v: &Value, what: &str) -> Result<T, String> {
    let t: T = serde_json::from_value(v.clone()).map_err(|e| format!("{what}: {e}"))?;
    let back = serde_json::to_value(&t).map_err(|e| format!("{what}: {e}"))?;
    match first_difference(v, &back, "") {
        None => Ok(t),
        Some(d) => Err(format!("{what}: {d}")),
    }
}

fn only_doc<T: DeserializeOwned + Serialize>(file: &str) -> T {
    let path = repo().join("deploy").join(file);
    let docs = yaml_docs(&path);
    assert_eq!(docs.len(), 1, "{file}: expected exactly one object");
    typed(&docs[0], file).unwrap_or_else(|e| panic!("{e}"))
}

fn daemonset() -> DaemonSet {
    only_doc("daemonset.yaml")
}

fn container(ds: &DaemonSet) -> Container {
    let spec = &ds.spec;
    let pod = spec
        .template
        .spec
        .as_ref()
        .expect("pod template has a spec");
    assert_eq!(pod.containers.len(), 1, "one container");
    pod.containers[0].clone()
}

fn configmaps() -> BTreeMap<String, ConfigMap> {
    let path = repo().join("deploy/configmap.yaml");
    yaml_docs(&path)
        .iter()
        .map(|v| {
            let cm: ConfigMap = typed(v, "configmap.yaml").unwrap_or_else(|e| panic!("{e}"));
            (cm.metadata.name.clone().expect("ConfigMap has a name"), cm)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Generation of deploy/configmap.yaml and the plugin items from config/.

/// (file name, contents) of the regular files directly in `dir` whose name passes `keep`,
/// sorted by name. A missing directory has no files.
fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("listing {}: {e}", dir.display())))
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| {
            let name = e
                .file_name()
                .into_string()
                .expect("UTF-8 file name in config/");
            keep(&name).then(|| (name, read(&e.path())))
        })
        .collect();
    out.sort();
    for (name, _) in &out {
        assert!(
            !name.is_empty()
                && name.len() <= 253
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)),
            "{}/{name}: not a valid ConfigMap key (letters, digits, '-', '_', '.')",
            dir.display()
        );
    }
    out
}

fn config_files() -> Vec<(String, String)> {
    files_in(&repo().join("config"), |n| n.ends_with(".json"))
}

fn plugin_files() -> Vec<(String, String)> {
    files_in(&repo().join("config/plugin"), |n| !n.starts_with('.'))
}

fn yaml_key(k: &str) -> String {
    let plain = k.starts_with(|c: char| c.is_ascii_alphabetic())
        && !["true", "false", "yes", "no", "on", "off", "null", "y", "n"]
            .contains(&k.to_ascii_lowercase().as_str());
    if plain {
        k.to_string()
    } else {
        format!("\"{k}\"")
    }
}

/// `value` as a YAML scalar whose content lines are indented by `indent` spaces: a literal
/// block when that is exact, else a double-quoted string (JSON escapes are valid YAML).
fn yaml_scalar(value: &str, indent: usize) -> String {
    let body = value.strip_suffix('\n');
    let literal_ok = !value.is_empty()
        && !value.starts_with([' ', '\t', '\n'])
        && !value.ends_with("\n\n")
        && value.lines().all(|l| l == l.trim_end())
        && value.chars().all(|c| {
            (c == '\n' || c == '\t' || !c.is_control())
                && !matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{85}')
        });
    if literal_ok {
        let pad = " ".repeat(indent);
        let (header, text) = match body {
            Some(b) => ("|", b),
            None => ("|-", value),
        };
        let mut out = header.to_string();
        for line in text.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
                out.push_str(line);
            }
        }
        out
    } else {
        serde_json::to_string(value)
            .expect("a string serialises")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029")
            .replace('\u{85}', "\\u0085")
            .replace('\u{feff}', "\\ufeff")
    }
}

fn render_configmap(out: &mut String, name: &str, what: &str, files: &[(String, String)]) {
    writeln!(out, "# {what}").unwrap();
    out.push_str("apiVersion: v1\nkind: ConfigMap\nmetadata:\n");
    writeln!(out, "  name: {name}").unwrap();
    out.push_str("  namespace: kube-system\n  labels:\n    app: node-problem-detector\n");
    if files.is_empty() {
        out.push_str("data: {}\n");
        return;
    }
    out.push_str("data:\n");
    for (key, text) in files {
        writeln!(out, "  {}: {}", yaml_key(key), yaml_scalar(text, 4)).unwrap();
    }
}

/// The text deploy/configmap.yaml must have.
fn render_configmaps() -> String {
    let mut out = format!(
        "# GENERATED from config/*.json and config/plugin/* by `{REGENERATE}`\n\
         # (or scripts/gen-configmap.sh). Do not edit: edit config/ and regenerate.\n"
    );
    render_configmap(
        &mut out,
        CONFIG_CM,
        "Monitor configs, mounted at /config/<key>.",
        &config_files(),
    );
    out.push_str("---\n");
    render_configmap(
        &mut out,
        PLUGINS_CM,
        "Custom plugin scripts, mounted at /config/plugin/<key> (mode 0755).",
        &plugin_files(),
    );
    out
}

/// deploy/daemonset.yaml with the plugin item list regenerated.
fn render_daemonset(current: &str) -> String {
    let begin = current
        .find(BEGIN_ITEMS)
        .unwrap_or_else(|| panic!("deploy/daemonset.yaml: marker `{BEGIN_ITEMS}` missing"));
    let line_start = current[..begin].rfind('\n').map_or(0, |i| i + 1);
    let indent = &current[line_start..begin];
    assert!(
        indent.chars().all(|c| c == ' '),
        "marker must start its line"
    );
    let after_begin = current[begin..].find('\n').map(|i| begin + i + 1).unwrap();
    let end = current[after_begin..]
        .find(END_ITEMS)
        .map(|i| after_begin + i)
        .unwrap_or_else(|| panic!("deploy/daemonset.yaml: marker `{END_ITEMS}` missing"));
    let end_line_start = current[..end].rfind('\n').map_or(0, |i| i + 1);
    let plugins = plugin_files();
    let mut block = String::new();
    if plugins.is_empty() {
        writeln!(block, "{indent}items: []").unwrap();
    } else {
        writeln!(block, "{indent}items:").unwrap();
        for (key, _) in &plugins {
            writeln!(block, "{indent}  - key: {}", yaml_key(key)).unwrap();
            writeln!(block, "{indent}    path: plugin/{key}").unwrap();
            writeln!(block, "{indent}    mode: 493 # 0755").unwrap();
        }
    }
    format!(
        "{}{}{}",
        &current[..after_begin],
        block,
        &current[end_line_start..]
    )
}

#[test]
fn generated_manifests_are_current() {
    let targets = [
        (repo().join("deploy/configmap.yaml"), None),
        (
            repo().join("deploy/daemonset.yaml"),
            Some(read(&repo().join("deploy/daemonset.yaml"))),
        ),
    ];
    let mut stale = Vec::new();
    for (path, current_ds) in targets {
        let want = match &current_ds {
            None => render_configmaps(),
            Some(ds) => render_daemonset(ds),
        };
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            if std::env::var_os("UPDATE_DEPLOY").is_some() {
                std::fs::write(&path, &want)
                    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
                eprintln!("regenerated {}", path.display());
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{} out of date with config/; regenerate with `{REGENERATE}` (or scripts/gen-configmap.sh)",
        stale.join(" and ")
    );
}

#[test]
fn yaml_scalar_round_trips_awkward_text() {
    for text in [
        "{\n    \"a\": 1\n}\n",
        "no newline at the end",
        "two newlines\n\n",
        "  leading spaces\n",
        "\nleading newline\n",
        "trailing space \nx\n",
        "tab\tinside\n\tand at the start of a line\n",
        "blank\n\nlines\n\n\ninside\n",
        "carriage\r\nreturn\n",
        "# not a comment\n- not a list\nkey: not a map\n",
        "unicode ✓ \u{2028} line separator\n",
        "",
    ] {
        let doc = format!("data:\n  k: {}\n", yaml_scalar(text, 4));
        let v = yaml_docs_str(&doc, "generated");
        assert_eq!(v[0]["data"]["k"], Value::String(text.into()), "{doc}");
    }
}

// ---------------------------------------------------------------------------------------
// Structure.

#[test]
fn every_manifest_parses_into_the_kubernetes_types() {
    let dir = repo().join("deploy");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for (i, doc) in yaml_docs(&path).iter().enumerate() {
            let what = format!("{name} document {i}");
            let kind = doc["kind"].as_str().unwrap_or_default();
            let r = match kind {
                "DaemonSet" => typed::<DaemonSet>(doc, &what).map(drop),
                "ConfigMap" => typed::<ConfigMap>(doc, &what).map(drop),
                "ServiceAccount" => typed::<ServiceAccount>(doc, &what).map(drop),
                "ClusterRole" => typed::<ClusterRole>(doc, &what).map(drop),
                "ClusterRoleBinding" => typed::<ClusterRoleBinding>(doc, &what).map(drop),
                "Kustomization" => Ok(()),
                other => Err(format!("{what}: unexpected kind {other:?}")),
            };
            r.unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 6, "only {seen} objects found in deploy/");
}

#[test]
fn misspelt_keys_are_caught() {
    let good = yaml_docs(&repo().join("deploy/daemonset.yaml")).remove(0);
    typed::<DaemonSet>(&good, "daemonset").unwrap();
    for (pointer, key) in [
        ("/spec/template/spec", "toleration"),
        ("/spec/template/spec/containers/0", "volumeMount"),
        (
            "/spec/template/spec/containers/0/securityContext",
            "readOnlyRootFileSystem",
        ),
    ] {
        let mut bad = good.clone();
        bad.pointer_mut(pointer)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(key.into(), Value::Bool(true));
        let err = typed::<DaemonSet>(&bad, "daemonset").unwrap_err();
        assert!(err.contains(key), "{err}");
    }
}

#[test]
fn kustomization_lists_the_manifests() {
    let k = yaml_docs(&repo().join("deploy/kustomization.yaml")).remove(0);
    assert_eq!(k["kind"], "Kustomization");
    let resources: BTreeSet<&str> = k["resources"]
        .as_array()
        .expect("resources list")
        .iter()
        .map(|r| r.as_str().expect("resource is a path"))
        .collect();
    let want: BTreeSet<&str> = [
        "serviceaccount.yaml",
        "clusterrolebinding.yaml",
        "configmap.yaml",
        "daemonset.yaml",
    ]
    .into();
    assert_eq!(resources, want);
    for r in resources {
        assert!(
            repo().join("deploy").join(r).is_file(),
            "deploy/{r} missing"
        );
    }
}

// ---------------------------------------------------------------------------------------
// ConfigMap and the DaemonSet's view of it.

#[test]
fn configmap_data_equals_config_files_byte_for_byte() {
    let cms = configmaps();
    assert_eq!(
        cms.keys().map(String::as_str).collect::<Vec<_>>(),
        [CONFIG_CM, PLUGINS_CM]
    );
    for (name, files) in [(CONFIG_CM, config_files()), (PLUGINS_CM, plugin_files())] {
        let cm = &cms[name];
        assert_eq!(cm.metadata.namespace.as_deref(), Some("kube-system"));
        assert!(cm.binary_data.is_none(), "{name}: binaryData");
        let data = cm.data.clone().unwrap_or_default();
        let want: BTreeMap<String, String> = files.into_iter().collect();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{name}: keys differ from config/; regenerate with `{REGENERATE}`"
        );
        for (k, text) in &want {
            assert!(
                data[k] == *text,
                "{name}: {k} differs from config/; regenerate with `{REGENERATE}`"
            );
        }
    }
    assert!(
        !cms[CONFIG_CM].data.clone().unwrap_or_default().is_empty(),
        "no config/*.json found"
    );
}

/// The DaemonSet's command line as our binary would see it.
fn parsed_command(c: &Container) -> npd::cli::Cli {
    let mut argv = c.command.clone().unwrap_or_default();
    argv.extend(c.args.clone().unwrap_or_default());
    npd::cli::Cli::try_parse_from(npd::cli::normalize_args(argv.clone()))
        .unwrap_or_else(|e| panic!("command line {argv:?} rejected: {e}"))
}

#[test]
fn daemonset_command_line_is_accepted_and_names_configmap_files() {
    let ds = daemonset();
    let c = container(&ds);
    let cmd = c.command.clone().unwrap_or_default();
    assert_eq!(
        cmd.first().map(String::as_str),
        Some("/node-problem-detector")
    );
    let cli = parsed_command(&c);
    assert!(cli.command.is_none(), "the DaemonSet runs the daemon");
    let d = &cli.daemon;

    let data = configmaps()[CONFIG_CM].data.clone().unwrap_or_default();
    let monitors: Vec<PathBuf> = d
        .system_log_monitor_paths()
        .into_iter()
        .chain(d.custom_plugin_monitor_paths())
        .collect();
    assert!(
        !monitors.is_empty(),
        "no monitor configs on the command line"
    );
    for m in &monitors {
        let key = m
            .strip_prefix("/config")
            .unwrap_or_else(|_| panic!("{} is not under /config", m.display()));
        let key = key.to_str().unwrap();
        assert!(
            data.contains_key(key),
            "{} is not a key of the ConfigMap {CONFIG_CM}",
            m.display()
        );
    }
    // Every default rule set the binary embeds runs in the DaemonSet.
    for (name, _) in npd::defaults::DEFAULT_MONITOR_CONFIGS {
        assert!(
            monitors.contains(&PathBuf::from("/config").join(name)),
            "default rule set {name} not run by the DaemonSet"
        );
    }

    // The kubelet probes the pod IP, so the admin server listens on all addresses; the
    // named ports are the ones the flags set.
    assert_eq!(d.address, "0.0.0.0");
    assert_eq!(d.prometheus_address, "0.0.0.0");
    let ports: BTreeMap<String, i32> = c
        .ports
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.container_port))
        .collect();
    assert_eq!(ports.get("metrics"), Some(&i32::from(d.prometheus_port)));
    assert_eq!(ports.get("healthz"), Some(&i32::from(d.port)));
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let on_healthz = |probe: &k8s_openapi::api::core::v1::Probe, what: &str| {
        let get = probe.http_get.clone().expect("httpGet probe");
        assert_eq!(get.path.as_deref(), Some("/healthz"), "{what}");
        assert!(
            get.port == IntOrString::String("healthz".into())
                || get.port == IntOrString::Int(i32::from(d.port)),
            "{what} port {:?}",
            get.port
        );
    };
    let liveness = c.liveness_probe.clone().expect("liveness probe");
    on_healthz(&liveness, "liveness probe");

    // /healthz answers 503 "starting" while the agent waits up to --apiserver-wait-timeout
    // for the API server. A startup probe must cover that wait, so that the liveness probe
    // (which only starts after the startup probe's first success) cannot restart the
    // container into CrashLoopBackOff during an API server outage at start.
    let startup = c.startup_probe.clone().expect("startup probe");
    on_healthz(&startup, "startup probe");
    let period = startup.period_seconds.unwrap_or(10);
    let failures = startup.failure_threshold.unwrap_or(3);
    let budget = i64::from(startup.initial_delay_seconds.unwrap_or(0))
        + i64::from(period) * i64::from(failures);
    let wait = d.apiserver_wait_timeout.as_secs() as i64;
    assert!(
        budget >= wait + 30,
        "startup probe allows {budget} s, less than --apiserver-wait-timeout ({wait} s) plus \
         30 s to start the monitors"
    );
}

/// The shipped custom plugin monitors, when the DaemonSet enables them, get what their
/// scripts need: the kubelet check the node's network (the kubelet's healthz is on the
/// node's 127.0.0.1), the runtime check the runtime socket.
#[test]
fn daemonset_gives_enabled_plugin_monitors_what_they_need() {
    let ds = daemonset();
    let c = container(&ds);
    let pod = ds.spec.clone().template.spec.unwrap();
    let custom = parsed_command(&c).daemon.custom_plugin_monitor_paths();
    let enabled = |name: &str| custom.contains(&PathBuf::from("/config").join(name));
    if enabled("kubelet-health-monitor.json") {
        assert_eq!(
            pod.host_network,
            Some(true),
            "kubelet-health-monitor.json needs hostNetwork: true"
        );
    }
    if enabled("runtime-health-monitor.json") {
        let volumes = pod.volumes.clone().unwrap_or_default();
        let socket = c.volume_mounts.clone().unwrap_or_default().iter().any(|m| {
            volumes.iter().any(|v| {
                v.name == m.name
                    && v.host_path
                        .as_ref()
                        .is_some_and(|h| h.path.ends_with(".sock") && h.path == m.mount_path)
            })
        });
        assert!(
            socket,
            "runtime-health-monitor.json needs the runtime socket mounted at its host path"
        );
    }
    // As shipped, neither is enabled (the base DaemonSet is not on the host network and
    // mounts no runtime socket); the header says so.
    assert!(
        custom.is_empty(),
        "custom plugin monitors enabled: {custom:?}"
    );
    assert!(pod.host_network.is_none_or(|h| !h));
    let header = read(&repo().join("deploy/daemonset.yaml"));
    assert!(
        header.contains("hostNetwork: true"),
        "header explains the kubelet check"
    );
}

#[test]
fn daemonset_node_mounts_env_and_scheduling() {
    let ds = daemonset();
    assert_eq!(ds.metadata.namespace.as_deref(), Some("kube-system"));
    let spec = ds.spec.clone();
    let pod = spec.template.spec.clone().unwrap();
    let c = container(&ds);

    let env = c.env.clone().unwrap_or_default();
    let node = env
        .iter()
        .find(|e| e.name == "NODE_NAME")
        .expect("NODE_NAME");
    let field = node
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .expect("NODE_NAME from the downward API");
    assert_eq!(field.field_path, "spec.nodeName");

    let volumes: BTreeMap<String, _> = pod
        .volumes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect();
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    for (host, at) in [
        ("/dev/kmsg", "/dev/kmsg"),
        ("/var/log", "/var/log"),
        ("/run/log/journal", "/run/log/journal"),
        ("/etc/localtime", "/etc/localtime"),
    ] {
        let m = mounts
            .iter()
            .find(|m| m.mount_path == at)
            .unwrap_or_else(|| panic!("no mount at {at}"));
        assert_eq!(m.read_only, Some(true), "{at} must be read-only");
        let v = &volumes[&m.name];
        let hp = v
            .host_path
            .as_ref()
            .unwrap_or_else(|| panic!("{at}: hostPath"));
        assert_eq!(hp.path.trim_end_matches('/'), host);
    }
    let cfg = mounts
        .iter()
        .find(|m| m.mount_path == "/config")
        .expect("no mount at /config");
    assert_eq!(cfg.read_only, Some(true));
    assert!(
        cfg.sub_path.is_none(),
        "/config must be a directory mount (reload)"
    );
    let sources = volumes[&cfg.name]
        .projected
        .as_ref()
        .expect("/config is a projected volume")
        .sources
        .clone()
        .unwrap_or_default();
    let cms: Vec<_> = sources
        .iter()
        .filter_map(|s| s.config_map.clone())
        .collect();
    assert_eq!(cms.len(), 2);
    assert_eq!(cms[0].name, CONFIG_CM);
    assert!(cms[0].items.is_none(), "all rule files are mounted");
    assert_eq!(cms[1].name, PLUGINS_CM);
    let items = cms[1].items.clone().unwrap_or_default();
    let keys: Vec<_> = items.iter().map(|i| i.key.clone()).collect();
    let want: Vec<_> = plugin_files().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, want, "plugin items; regenerate with `{REGENERATE}`");
    for i in items {
        assert_eq!(i.path, format!("plugin/{}", i.key));
        assert_eq!(i.mode, Some(0o755));
    }

    // Scheduling: every node, whatever its taints, before ordinary pods.
    let tol = pod.tolerations.clone().unwrap_or_default();
    assert!(
        tol.iter().any(|t| t.operator.as_deref() == Some("Exists")
            && t.key.is_none()
            && t.effect.is_none()),
        "a toleration for all taints: {tol:?}"
    );
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("node-problem-detector")
    );

    let sc = c.security_context.clone().expect("securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));

    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let res = c.resources.clone().expect("resources");
    let req = res.requests.unwrap_or_default();
    let lim = res.limits.unwrap_or_default();
    assert_eq!(req.get("cpu"), Some(&Quantity("10m".into())));
    assert_eq!(req.get("memory"), Some(&Quantity("20Mi".into())));
    assert_eq!(lim.get("memory"), Some(&Quantity("64Mi".into())));
}

// ---------------------------------------------------------------------------------------
// RBAC: exactly DESIGN.md section 3.

fn rules_as_set(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for r in rules {
        assert!(r.non_resource_urls.is_none() && r.resource_names.is_none());
        for g in r.api_groups.clone().unwrap_or_default() {
            for res in r.resources.clone().unwrap_or_default() {
                for v in &r.verbs {
                    out.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn rbac_grants_exactly_the_design() {
    let want: BTreeSet<(String, String, String)> = [
        ("", "nodes", "get"),
        ("", "nodes/status", "patch"),
        ("", "events", "create"),
        ("", "events", "update"),
        ("", "events", "patch"),
    ]
    .iter()
    .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
    .collect();

    let sa: ServiceAccount = only_doc("serviceaccount.yaml");
    assert_eq!(sa.metadata.name.as_deref(), Some("node-problem-detector"));
    assert_eq!(sa.metadata.namespace.as_deref(), Some("kube-system"));

    let check_binding = |b: &ClusterRoleBinding, role: &str| {
        assert_eq!(b.role_ref.kind, "ClusterRole");
        assert_eq!(
            b.role_ref.api_group.as_deref(),
            Some("rbac.authorization.k8s.io")
        );
        assert_eq!(b.role_ref.name, role);
        let s = b.subjects.clone().unwrap_or_default();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, "ServiceAccount");
        assert_eq!(s[0].name, "node-problem-detector");
        assert_eq!(s[0].namespace.as_deref(), Some("kube-system"));
    };
    let b: ClusterRoleBinding = only_doc("clusterrolebinding.yaml");
    check_binding(&b, "system:node-problem-detector");

    // The optional file: our own ClusterRole with the built-in role's rules, and its binding.
    let path = repo().join("deploy/clusterrole.yaml");
    let docs = yaml_docs(&path);
    assert_eq!(
        docs.len(),
        2,
        "clusterrole.yaml: a ClusterRole and its binding"
    );
    let role: ClusterRole = typed(&docs[0], "clusterrole.yaml").unwrap();
    let rb: ClusterRoleBinding = typed(&docs[1], "clusterrole.yaml").unwrap();
    let name = role.metadata.name.clone().unwrap();
    assert_eq!(name, "node-problem-detector");
    assert!(role.aggregation_rule.is_none());
    assert_eq!(rules_as_set(&role.rules.unwrap_or_default()), want);
    check_binding(&rb, &name);
}

// ---------------------------------------------------------------------------------------
// Upstream's DaemonSets run on our binary.

#[test]
fn upstream_daemonset_command_lines_are_accepted() {
    let dir = upstream_support::deployment_dir();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.starts_with("node-problem-detector") && name.ends_with(".yaml")) {
            continue;
        }
        for doc in yaml_docs(&path) {
            if doc["kind"] != "DaemonSet" {
                continue;
            }
            let ds: DaemonSet = typed(&doc, &name).unwrap_or_else(|e| panic!("{e}"));
            let c = container(&ds);
            let cli = parsed_command(&c);
            let d = cli.daemon;
            assert!(
                !d.system_log_monitor_paths().is_empty(),
                "{name}: no system log monitors parsed"
            );
            // Upstream's image layout: the configs it names are under /config.
            for m in d.system_log_monitor_paths() {
                assert!(m.starts_with("/config"), "{name}: {}", m.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "only {checked} upstream DaemonSets in {}",
        dir.display()
    );
}

// ---------------------------------------------------------------------------------------
// The image recipe (no container engine runs here, so the Dockerfile is checked as text).

struct Copy {
    from_stage: bool,
    sources: Vec<String>,
    dest: String,
}

fn dockerfile_copies() -> Vec<Copy> {
    let text = read(&repo().join("Dockerfile"));
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first().map(|w| w.to_ascii_uppercase()) != Some("COPY".into()) {
            continue;
        }
        let from_stage = words.iter().any(|w| w.starts_with("--from="));
        let args: Vec<String> = words[1..]
            .iter()
            .filter(|w| !w.starts_with("--"))
            .map(|w| w.to_string())
            .collect();
        assert!(
            args.len() >= 2,
            "Dockerfile: COPY needs a source and a destination: {line}"
        );
        let (dest, sources) = args.split_last().unwrap();
        out.push(Copy {
            from_stage,
            sources: sources.to_vec(),
            dest: dest.clone(),
        });
    }
    out
}

fn dockerignore() -> Vec<String> {
    read(&repo().join(".dockerignore"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/').to_string())
        .collect()
}

#[test]
fn dockerfile_copies_existing_paths_and_matches_the_daemonset() {
    let copies = dockerfile_copies();
    let ignored = dockerignore();
    for c in copies.iter().filter(|c| !c.from_stage) {
        for s in &c.sources {
            let rel = s.trim_start_matches("./").trim_end_matches('/');
            assert!(
                repo().join(rel).exists(),
                "Dockerfile copies {s}, which is not in the repository"
            );
            let top = rel.split('/').next().unwrap();
            assert!(
                !ignored.iter().any(|i| i == rel || i == top),
                ".dockerignore excludes {s}, which the Dockerfile copies"
            );
        }
    }
    // Everything the build needs is in the context: the manifest, the lock file (for
    // --locked), and every source tree cargo reads (include_str! reads config/).
    let copied: BTreeSet<String> = copies
        .iter()
        .filter(|c| !c.from_stage)
        .flat_map(|c| c.sources.iter())
        .map(|s| s.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock", "src", "config", "benches"] {
        assert!(copied.contains(needed), "Dockerfile does not copy {needed}");
    }
    let text = read(&repo().join("Dockerfile"));
    assert!(text.contains("cargo build --release --locked"));

    // The final stage: the binary at /node-problem-detector (the DaemonSet's command) and
    // config/ at /config (the default rule sets and plugin scripts, as upstream's image).
    let last_from = text
        .lines()
        .collect::<Vec<_>>()
        .iter()
        .rposition(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM "))
        .unwrap();
    let final_stage: Vec<&str> = text.lines().skip(last_from).collect();
    let final_copies: Vec<&Copy> = {
        let n = final_stage
            .iter()
            .filter(|l| l.trim_start().to_ascii_uppercase().starts_with("COPY "))
            .count();
        copies[copies.len() - n..].iter().collect()
    };
    let manifest = read(&repo().join("Cargo.toml"));
    let bin = "node-problem-detector";
    assert!(manifest.contains(&format!("[[bin]]\nname = \"{bin}\"")));
    assert!(
        final_copies.iter().any(|c| c.from_stage
            && c.dest == "/node-problem-detector"
            && c.sources
                .iter()
                .any(|s| s.ends_with(&format!("/target/release/{bin}")))),
        "final stage must copy target/release/{bin} to /node-problem-detector"
    );
    assert!(
        final_copies
            .iter()
            .any(|c| !c.from_stage && c.sources == ["config/"] && c.dest == "/config/"),
        "final stage must copy config/ to /config/"
    );
    // The shipped plugins use curl (the kubelet check needs curl or wget, the runtime
    // check probes the socket with curl); debian slim has neither.
    assert!(
        final_stage
            .iter()
            .any(|l| l.contains("apt-get install") && l.split_whitespace().any(|w| w == "curl")),
        "final stage must install curl for config/plugin/*.sh"
    );
    let entry = final_stage
        .iter()
        .find(|l| l.starts_with("ENTRYPOINT"))
        .expect("ENTRYPOINT");
    let argv: Vec<String> =
        serde_json::from_str(entry.trim_start_matches("ENTRYPOINT").trim()).expect("exec form");
    let ds_cmd = container(&daemonset()).command.unwrap();
    assert_eq!(
        argv[0], ds_cmd[0],
        "image entry point and DaemonSet command"
    );
    let cli = npd::cli::Cli::try_parse_from(npd::cli::normalize_args(argv.clone()))
        .unwrap_or_else(|e| panic!("ENTRYPOINT {argv:?} rejected: {e}"));
    for m in cli.daemon.system_log_monitor_paths() {
        let rel = m.strip_prefix("/config").expect("under /config");
        assert!(
            repo().join("config").join(rel).is_file(),
            "ENTRYPOINT names {}, not in config/",
            m.display()
        );
    }
}

// ---------------------------------------------------------------------------------------
// The least-privilege component.

/// Applies the `add` and `replace` operations of a JSON 6902 patch.
fn apply_json6902(target: &mut Value, ops: &[Value]) {
    for op in ops {
        let path = op["path"].as_str().expect("op path");
        let (parent, last) = path.rsplit_once('/').expect("path has a parent");
        let value = op["value"].clone();
        let p = target
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("patch path {path}: no parent {parent}"));
        match op["op"].as_str() {
            Some("replace") => {
                let slot = p
                    .get_mut(last)
                    .unwrap_or_else(|| panic!("replace {path}: nothing there"));
                *slot = value;
            }
            Some("add") => {
                p.as_object_mut()
                    .unwrap_or_else(|| panic!("add {path}: parent not an object"))
                    .insert(last.to_string(), value);
            }
            other => panic!("unsupported op {other:?}"),
        }
    }
}

#[test]
fn least_privilege_component_drops_all_but_syslog() {
    let dir = repo().join("deploy/components/least-privilege");
    let k = yaml_docs(&dir.join("kustomization.yaml")).remove(0);
    assert_eq!(k["kind"], "Component");
    let patches = k["patches"].as_array().expect("patches");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0]["target"]["kind"], "DaemonSet");
    assert_eq!(patches[0]["target"]["name"], "node-problem-detector");
    let file = patches[0]["path"].as_str().expect("patch path");
    let ops = yaml_docs(&dir.join(file)).remove(0);

    let mut ds = yaml_docs(&repo().join("deploy/daemonset.yaml")).remove(0);
    apply_json6902(&mut ds, ops.as_array().expect("a JSON 6902 op list"));
    let ds: DaemonSet = typed(&ds, "patched daemonset").unwrap_or_else(|e| panic!("{e}"));
    let sc = container(&ds).security_context.expect("securityContext");
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let caps = sc.capabilities.expect("capabilities");
    assert_eq!(caps.drop, Some(vec!["ALL".to_string()]));
    assert_eq!(caps.add, Some(vec!["SYSLOG".to_string()]));
}
