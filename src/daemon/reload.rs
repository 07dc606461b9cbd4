//! Hot reload: watch the config files' directories and swap monitors when the files
//! change. A ConfigMap volume update arrives as an atomic swap of the `..data` symlink in
//! the mounted directory, so we watch directories, not files, and compare contents.
//!
//! Both kinds of config reload together, all or nothing: system log monitors (the rules
//! are swapped in the running task, see [`super::Control::Swap`]) and custom plugin
//! monitors (a changed config stops the old monitor, killing its in-flight plugins, and
//! starts the new one with the state of the conditions both declare).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::Timestamp;
use notify::Watcher;
use tokio::sync::{Mutex, mpsc};

use super::{
    Control, RunningCustom, RunningMonitor, Shared, custom_types, load_custom, load_monitor,
    owned_types, same_source, start_custom, start_monitor,
};
use crate::custom::CustomPluginMonitor;
use crate::types::{Event, Severity, Status};

/// Wait after the last change before reloading: the kubelet's swap and editors' saves
/// produce bursts of events.
const DEBOUNCE: Duration = Duration::from_millis(500);

/// The monitors the daemon runs.
pub(crate) struct Running {
    /// System log monitors.
    pub logs: Vec<RunningMonitor>,
    /// Custom plugin monitors.
    pub customs: Vec<RunningCustom>,
}

/// Owns the running monitors for the daemon's lifetime.
pub(crate) struct Reloader {
    running: Arc<Mutex<Running>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Reloader {
    /// Stops every monitor and its source, and every custom plugin monitor (their
    /// in-flight plugins are killed), all at once; gives up on what has not stopped by
    /// `deadline` (shutdown must stay bounded even while a reload holds the monitors).
    pub(crate) async fn stop_all(self, deadline: tokio::time::Instant) {
        let Ok(mut running) = tokio::time::timeout_at(deadline, self.running.lock()).await else {
            tracing::warn!("shutdown: a config reload did not finish in time; not waiting");
            return;
        };
        for r in &running.logs {
            r.request_stop();
        }
        for r in &running.customs {
            r.request_stop();
        }
        let mut stopping = tokio::task::JoinSet::new();
        for r in running.customs.drain(..) {
            stopping.spawn(r.stop());
        }
        for r in running.logs.drain(..) {
            stopping.spawn(async move {
                r.stop().await;
                None
            });
        }
        if tokio::time::timeout_at(deadline, stopping.join_all())
            .await
            .is_err()
        {
            tracing::warn!("shutdown: some monitors did not stop in time");
        }
    }
}

/// Keeps the monitors without watching for changes (`--watch-config=false`).
pub(crate) fn hold(logs: Vec<RunningMonitor>, customs: Vec<RunningCustom>) -> Reloader {
    Reloader {
        running: Arc::new(Mutex::new(Running { logs, customs })),
        _watcher: None,
    }
}

fn read_all(paths: &[PathBuf]) -> HashMap<PathBuf, Option<Vec<u8>>> {
    paths
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).ok()))
        .collect()
}

/// Starts watching the directories of the system log monitor configs (`paths`) and the
/// custom plugin monitor configs (`custom_paths`) and reloading on change.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    paths: Vec<PathBuf>,
    custom_paths: Vec<PathBuf>,
    logs: Vec<RunningMonitor>,
    customs: Vec<RunningCustom>,
) -> Reloader {
    let running = Arc::new(Mutex::new(Running { logs, customs }));
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Only changes matter. Opens and reads (our own re-reads of the configs, a
        // source reading a log in the same directory) would otherwise loop forever.
        if let Ok(ev) = res
            && !matches!(
                ev.kind,
                notify::EventKind::Access(_) | notify::EventKind::Other
            )
        {
            // Full channel: a reload is already pending, which will see this change too.
            let _ = tx.try_send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch config files; reload disabled");
            return Reloader {
                running,
                _watcher: None,
            };
        }
    };
    let mut dirs: Vec<PathBuf> = paths
        .iter()
        .chain(&custom_paths)
        .map(|p| {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf()
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        if let Err(e) = watcher.watch(d, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot watch config directory; changes there will not reload");
        }
    }
    let task_running = running.clone();
    tokio::spawn(async move {
        let all: Vec<PathBuf> = paths.iter().chain(&custom_paths).cloned().collect();
        let mut last = read_all(&all);
        while rx.recv().await.is_some() {
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            let now = read_all(&all);
            if now == last {
                continue;
            }
            last = now;
            let mut guard = task_running.lock().await;
            reload(&shared, &paths, &custom_paths, &mut guard).await;
        }
    });
    Reloader {
        running,
        _watcher: Some(watcher),
    }
}

/// Loads every config again (system log and custom plugin monitors); applies all or
/// nothing.
pub(crate) async fn reload(
    shared: &Arc<Shared>,
    paths: &[PathBuf],
    custom_paths: &[PathBuf],
    running: &mut Running,
) {
    let mut loaded = Vec::new();
    let mut loaded_custom = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match load_monitor(p) {
            Ok(x) => loaded.push(x),
            Err(e) => errors.push(e),
        }
    }
    for p in custom_paths {
        match load_custom(p) {
            Ok(x) => loaded_custom.push(x),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        shared.reloads_failed.fetch_add(1, Ordering::Relaxed);
        let message = format!(
            "config reload rejected, the previous config keeps running: {}",
            errors.join("; ")
        );
        tracing::error!("{message}");
        shared.with_kube(|k| {
            k.report(&Status {
                source: "node-problem-detector".into(),
                events: vec![Event {
                    severity: Severity::Warn,
                    timestamp: Timestamp::now(),
                    reason: "ConfigReloadFailed".into(),
                    message,
                }],
                conditions: Vec::new(),
            })
        });
        return;
    }
    let now = Timestamp::now();

    // Custom plugin monitors whose config changed (or that did not start before) are
    // stopped first: once they have stopped nothing reports the types they drop, and
    // their final state is what the new monitors take over.
    let custom = custom_types(loaded_custom.iter().map(|m| m.config()));
    let mut to_start: Vec<CustomPluginMonitor> = Vec::new();
    for mut monitor in loaded_custom {
        let pos = running
            .customs
            .iter()
            .position(|r| r.config.path == monitor.config().path);
        if let Some(i) = pos {
            if running.customs[i].config == *monitor.config() {
                continue; // unchanged: keeps running, nothing restarts
            }
            let old = running.customs.remove(i);
            if let Some(state) = old.stop().await {
                monitor.adopt_state(&state);
            }
        }
        to_start.push(monitor);
    }
    // Ownership changes before the new monitors report: a type that only the new
    // configs declare is accepted from their first Status, one they dropped leaves the
    // exporter (and, with --delete-removed-conditions, the Node). The reload is all or
    // nothing, so the loaded configs are every config.
    let types = owned_types(loaded.iter().map(|(c, _)| c), &custom);
    shared.with_kube(|k| k.set_owned_condition_types(types));

    for (config, mut monitor) in loaded {
        let pos = running
            .logs
            .iter()
            .position(|r| r.config.path == config.path);
        if let Some(i) = pos {
            if running.logs[i].config == config {
                continue; // unchanged: keeps running with its state, nothing recompiled
            }
            if same_source(&running.logs[i].config, &config) {
                match running.logs[i]
                    .control
                    .send(Control::Swap(Box::new(monitor)))
                    .await
                {
                    Ok(()) => {
                        running.logs[i].config = config;
                        continue;
                    }
                    // The task is gone: start the monitor anew below.
                    Err(mpsc::error::SendError(Control::Swap(m))) => monitor = *m,
                    Err(mpsc::error::SendError(Control::Stop)) => continue,
                }
            }
            // The source changes (another log, filter or name): stop the old one, then
            // the new monitor takes over the conditions the old one reported last.
            let old = running.logs.remove(i);
            if let Some(old) = old.stop().await {
                for c in old.initial_status().conditions {
                    monitor.restore_condition(&c, now);
                }
            }
        }
        shared.with_metrics(|pm| monitor.init_metrics(pm));
        let path = config.path.display().to_string();
        match start_monitor(shared, config, monitor, Some(now)) {
            Ok(r) => running.logs.push(r),
            Err(e) => {
                tracing::error!(config = %path, "monitor not restarted after reload: {e}")
            }
        }
    }

    for monitor in to_start {
        let key = monitor.config().path.display().to_string();
        // /conditions shows the new monitor's conditions at once (dropped types gone,
        // kept ones as they were), even if it skips its initial status.
        shared.set_conditions(
            &key,
            &monitor.config().source,
            monitor.conditions().to_vec(),
        );
        tracing::info!(config = %key, rules = monitor.config().rules.len(), "custom plugin monitor restarted with the new config");
        running.customs.push(start_custom(shared, monitor));
    }
    // Gauge series no running config declares any more go away (a dropped rule's gauge
    // would otherwise stay at its last value, possibly 1). Counters stay: they are
    // history.
    let declared: std::collections::HashSet<(&str, &str)> = running
        .logs
        .iter()
        .flat_map(|r| r.config.gauge_series())
        .chain(running.customs.iter().flat_map(|r| r.config.gauge_series()))
        .collect();
    shared.with_metrics(|pm| pm.retain_gauges(|t, r| declared.contains(&(t, r))));
    shared.reloads_ok.fetch_add(1, Ordering::Relaxed);
    tracing::info!("config reloaded");
}
