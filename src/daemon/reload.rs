//! Hot reload: watch the config files' directories and swap monitors when the files
//! change. A ConfigMap volume update arrives as an atomic swap of the `..data` symlink in
//! the mounted directory, so we watch directories, not files, and compare contents.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::Timestamp;
use notify::Watcher;
use tokio::sync::{Mutex, mpsc};

use super::{
    Control, RunningMonitor, Shared, load_monitor, owned_types, same_source, start_monitor,
};
use crate::types::{Event, Severity, Status};

/// Wait after the last change before reloading: the kubelet's swap and editors' saves
/// produce bursts of events.
const DEBOUNCE: Duration = Duration::from_millis(500);

/// Owns the running monitors for the daemon's lifetime.
pub(crate) struct Reloader {
    running: Arc<Mutex<Vec<RunningMonitor>>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Reloader {
    /// Stops every monitor and its source.
    pub(crate) async fn stop_all(self) {
        let mut running = self.running.lock().await;
        for r in running.drain(..) {
            r.stop.set();
            let _ = r.control.send(Control::Stop).await;
        }
    }
}

/// Keeps the monitors without watching for changes (`--watch-config=false`).
pub(crate) fn hold(running: Vec<RunningMonitor>) -> Reloader {
    Reloader {
        running: Arc::new(Mutex::new(running)),
        _watcher: None,
    }
}

fn read_all(paths: &[PathBuf]) -> HashMap<PathBuf, Option<Vec<u8>>> {
    paths
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).ok()))
        .collect()
}

/// Starts watching the directories of `paths` and reloading on change.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    paths: Vec<PathBuf>,
    running: Vec<RunningMonitor>,
) -> Reloader {
    let running = Arc::new(Mutex::new(running));
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
        let mut last = read_all(&paths);
        while rx.recv().await.is_some() {
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            let now = read_all(&paths);
            if now == last {
                continue;
            }
            last = now;
            let mut guard = task_running.lock().await;
            reload(&shared, &paths, &mut guard).await;
        }
    });
    Reloader {
        running,
        _watcher: Some(watcher),
    }
}

/// Loads every config again; applies all or nothing.
pub(crate) async fn reload(
    shared: &Arc<Shared>,
    paths: &[PathBuf],
    running: &mut Vec<RunningMonitor>,
) {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match load_monitor(p) {
            Ok(x) => loaded.push(x),
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
    let custom = shared.custom_condition_types();
    let types = owned_types(loaded.iter().map(|(c, _)| c), &custom);
    for (config, monitor) in loaded {
        let pos = running.iter().position(|r| r.config.path == config.path);
        match pos {
            Some(i) if same_source(&running[i].config, &config) => {
                if running[i]
                    .control
                    .send(Control::Swap(Box::new(monitor)))
                    .await
                    .is_ok()
                {
                    running[i].config = config;
                }
            }
            other => {
                if let Some(i) = other {
                    let old = running.remove(i);
                    old.stop.set();
                    let _ = old.control.send(Control::Stop).await;
                }
                shared.with_metrics(|pm| monitor.init_metrics(pm));
                let path = config.path.display().to_string();
                match start_monitor(shared, config, monitor, Some(now)) {
                    Ok(r) => running.push(r),
                    Err(e) => {
                        tracing::error!(config = %path, "monitor not restarted after reload: {e}")
                    }
                }
            }
        }
    }
    shared.with_kube(|k| k.set_owned_condition_types(types));
    shared.reloads_ok.fetch_add(1, Ordering::Relaxed);
    tracing::info!("config reloaded");
}
