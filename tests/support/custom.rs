//! Helpers for the custom plugin monitor tests: configs written to a tempdir and loaded
//! through the real loader, rules that run `/bin/sh -c BODY`.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use npd::custom::{CustomPluginConfig, load_custom_config};

/// A rule running `sh -c body`. Using /bin/sh as the executable avoids ETXTBSY races of
/// exec'ing a script another test thread may still hold open for writing.
pub fn sh_rule(kind: &str, condition: &str, reason: &str, body: &str, extra: &str) -> String {
    let cond = if condition.is_empty() {
        String::new()
    } else {
        format!(r#""condition": {condition:?},"#)
    };
    format!(
        r#"{{"type": {kind:?}, {cond} "reason": {reason:?}, "path": "/bin/sh", "args": ["-c", {}] {extra}}}"#,
        serde_json::to_string(body).unwrap()
    )
}

/// Writes a config with the given pluginConfig fields, conditions and rules, and loads it.
pub fn config(
    dir: &Path,
    plugin_config: &str,
    conditions: &str,
    rules: &[String],
) -> CustomPluginConfig {
    let text = format!(
        r#"{{"plugin": "custom", "pluginConfig": {{{plugin_config}}}, "source": "test-custom",
        "conditions": [{conditions}], "rules": [{}]}}"#,
        rules.join(",")
    );
    let path = dir.join(format!("cfg-{}.json", fastrand_name()));
    std::fs::write(&path, text).unwrap();
    load_custom_config(&path).unwrap().config
}

fn fastrand_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether a process is still running (exists and is not a zombie).
pub fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => {
            // The state follows the ")" that closes the command name.
            let state = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next());
            !matches!(state, Some(Some('Z')) | Some(Some('X')))
        }
    }
}

/// Waits up to `limit` for `pid` to stop running.
pub fn wait_gone(pid: i32, limit: Duration) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if !running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !running(pid)
}

/// Reads a pid a script wrote into `path`, waiting for it to appear.
pub fn read_pid(path: &Path) -> i32 {
    for _ in 0..100 {
        if let Ok(s) = std::fs::read_to_string(path)
            && let Ok(p) = s.trim().parse()
        {
            return p;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no pid in {}", path.display());
}
