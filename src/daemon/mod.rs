//! The daemon: one monitor per config file, each fed by its own source, all feeding the
//! exporters; the admin and metrics servers; config reload; graceful shutdown.

mod health;
mod reload;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;

use crate::admin;
use crate::cli::DaemonArgs;
use crate::config::{MonitorConfig, Plugin, load_monitor_config};
use crate::custom::{CustomMonitor, CustomPluginConfig, CustomPluginMonitor};
use crate::engine::Monitor;
use crate::exporter::kube::{KubeExporter, KubeOptions, resolve_node_name};
use crate::source::filelog::FilelogSource;
use crate::source::journald::JournaldSource;
use crate::source::kmsg::KmsgSource;
use crate::source::{LineFilter, LineSink, LogSource, SourceStats, StopSignal, boot_time};
use crate::types::{LogLine, Status};
pub use state::{MonitorInfo, Shared};

/// How long shutdown may take in all, from the first signal.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// The part of [`SHUTDOWN_DEADLINE`] kept for pending condition changes to reach the API
/// server (monitors get the rest to stop).
const SHUTDOWN_FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// No monitor config was given.
    #[error(
        "no monitor config given: pass --config.system-log-monitor=/config/kernel-monitor.json[,...] and/or --config.custom-plugin-monitor=FILE"
    )]
    NoConfig,
    /// Every monitor failed to start.
    #[error("no monitor could start:\n  {}", .0.join("\n  "))]
    NothingStarted(Vec<String>),
    /// The Kubernetes exporter could not start.
    #[error("kubernetes exporter: {0}")]
    Kube(String),
    /// An admin server could not start.
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
}

/// Messages to a running monitor task.
pub(crate) enum Control {
    /// Replace the monitor (reload), keeping the state of conditions that still exist.
    Swap(Box<Monitor>),
    /// Stop the task.
    Stop,
}

/// A monitor running in the daemon: its source thread and its task.
pub(crate) struct RunningMonitor {
    pub config: MonitorConfig,
    pub control: mpsc::Sender<Control>,
    pub stop: Arc<StopSignal>,
    /// The monitor task; it returns the monitor (its conditions) when it ends.
    task: tokio::task::JoinHandle<Monitor>,
}

/// How long stopping a log monitor's task may take (it only finishes the batch at hand).
const MONITOR_STOP_DEADLINE: Duration = Duration::from_secs(5);

impl RunningMonitor {
    /// Asks the source and the task to stop without waiting.
    pub(crate) fn request_stop(&self) {
        self.stop.set();
        // Full or closed: the task is busy with a control message or already gone; the
        // stop signal ends its source, and with it the task.
        let _ = self.control.try_send(Control::Stop);
    }

    /// Stops the source and the task and returns the monitor once the task has published
    /// everything it will ever publish; None if it did not end within
    /// [`MONITOR_STOP_DEADLINE`] (it is then aborted).
    pub(crate) async fn stop(self) -> Option<Monitor> {
        self.stop.set();
        let _ = self.control.send(Control::Stop).await;
        let path = self.config.path.display().to_string();
        let abort = self.task.abort_handle();
        match tokio::time::timeout(MONITOR_STOP_DEADLINE, self.task).await {
            Ok(Ok(monitor)) => Some(monitor),
            Ok(Err(e)) => {
                tracing::error!(config = %path, "monitor task failed: {e}");
                None
            }
            Err(_) => {
                abort.abort();
                tracing::error!(config = %path, "monitor task did not stop in time; aborted");
                None
            }
        }
    }
}

/// How long stopping a custom plugin monitor may take (its in-flight plugins are killed
/// at once; this only bounds a stuck task).
const CUSTOM_STOP_DEADLINE: Duration = Duration::from_secs(5);

/// A custom plugin monitor running in the daemon: its task and what stops it.
pub(crate) struct RunningCustom {
    pub config: CustomPluginConfig,
    stop: tokio::sync::watch::Sender<bool>,
    /// Runs the monitor and publishes its Statuses; returns its final state once every
    /// Status it produced has been published.
    task: tokio::task::JoinHandle<CustomMonitor>,
}

impl RunningCustom {
    /// Asks the monitor to stop without waiting (shutdown stops them all at once).
    pub(crate) fn request_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops the monitor: in-flight plugins are killed (their whole process group) and
    /// every Status it produced is published. Returns its final state, or None if the
    /// task did not end within [`CUSTOM_STOP_DEADLINE`] (it is then aborted).
    pub(crate) async fn stop(self) -> Option<CustomMonitor> {
        self.request_stop();
        let path = self.config.path.display().to_string();
        let abort = self.task.abort_handle();
        match tokio::time::timeout(CUSTOM_STOP_DEADLINE, self.task).await {
            Ok(Ok(state)) => Some(state),
            Ok(Err(e)) => {
                tracing::error!(config = %path, "custom plugin monitor task failed: {e}");
                None
            }
            Err(_) => {
                abort.abort();
                tracing::error!(config = %path, "custom plugin monitor did not stop in time; aborted");
                None
            }
        }
    }
}

/// Starts a custom plugin monitor: registers its health (replacing the monitor of the
/// same config, if any) and its condition types, and spawns its task, which publishes
/// every Status under the config path.
pub(crate) fn start_custom(shared: &Arc<Shared>, monitor: CustomPluginMonitor) -> RunningCustom {
    let config = monitor.config().clone();
    let key = config.path.display().to_string();
    shared.register_plugin(monitor.health());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = mpsc::channel::<Status>(64);
    let run = monitor.run(tx, shared.metrics_handle(), stop_rx);
    let fwd_shared = shared.clone();
    let task = tokio::spawn(async move {
        // The forwarder ends when `run` returns and drops its sender, so awaiting this
        // task means every Status of this monitor has been published: a stopped
        // monitor cannot publish after the monitor that replaces it.
        let forward = async {
            while let Some(s) = rx.recv().await {
                fwd_shared.publish(&key, &s);
            }
        };
        let (state, ()) = tokio::join!(run, forward);
        state
    });
    RunningCustom { config, stop, task }
}

/// Loads one custom plugin monitor config and builds its monitor, with warnings logged.
pub(crate) fn load_custom(path: &Path) -> Result<CustomPluginMonitor, String> {
    let loaded = CustomPluginMonitor::load(path).map_err(|e| e.to_string())?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Ok(loaded.config)
}

/// Creates the live source for a config; `boot` is the machine's boot time (kmsg stamps
/// count from it).
fn make_source(config: &MonitorConfig, boot: Timestamp) -> Result<Box<dyn LogSource>, String> {
    Ok(match config.plugin {
        Plugin::Kmsg => Box::new(KmsgSource::from_config(config).with_boot_time(boot)),
        Plugin::Journald => Box::new(JournaldSource::new(config)),
        Plugin::Filelog => Box::new(FilelogSource::new(config).map_err(|e| e.to_string())?),
    })
}

/// Whether two configs read the same log the same way under the same name, so a reload
/// can keep the source running and only swap the rules. (`source` names the monitor in
/// /healthz and /metrics labels, which are registered with the source.)
fn same_source(a: &MonitorConfig, b: &MonitorConfig) -> bool {
    a.plugin == b.plugin
        && a.plugin_config == b.plugin_config
        && a.log_path == b.log_path
        && a.skip_list == b.skip_list
        && a.source == b.source
}

/// Starts a monitor: its source on a thread of its own and its task on the runtime.
/// `not_before` overrides the lookback cutoff (reload: never re-read old lines).
pub(crate) fn start_monitor(
    shared: &Arc<Shared>,
    config: MonitorConfig,
    monitor: Monitor,
    not_before: Option<Timestamp>,
) -> Result<RunningMonitor, String> {
    let boot = boot_time();
    let source = make_source(&config, boot)?;
    let stop = StopSignal::new()
        .map_err(|e| format!("{}: cannot create stop signal: {e}", config.path.display()))?;
    let mut filter = LineFilter::live(&config, Timestamp::now(), boot);
    if let Some(nb) = not_before {
        filter.not_before = Some(nb);
    }
    let (sink, rx) = LineSink::new(filter, stop.clone());
    let stats: Arc<SourceStats> = sink.stats.clone();
    let alive = Arc::new(AtomicBool::new(true));
    let exit_error = Arc::new(std::sync::Mutex::new(None));
    let key = config.path.display().to_string();
    shared.register(MonitorInfo {
        key: key.clone(),
        source: config.source.clone(),
        plugin: config.plugin.as_str(),
        log_path: config.log_path.clone(),
        stats,
        alive: alive.clone(),
        exit_error: exit_error.clone(),
    });
    let name = source.name();
    let thread_stop = stop.clone();
    std::thread::Builder::new()
        .name(format!("src-{}", config.plugin.as_str()))
        .spawn(move || {
            let result = source.run(sink);
            alive.store(false, Ordering::SeqCst);
            if !thread_stop.is_set() {
                let msg = match result {
                    Ok(()) => format!("source {name} stopped"),
                    Err(e) => format!("source {name} failed: {e}"),
                };
                tracing::error!("{msg}");
                if let Ok(mut g) = exit_error.lock() {
                    *g = Some(msg);
                }
            }
        })
        .map_err(|e| format!("{}: cannot start source thread: {e}", config.path.display()))?;
    let (ctl_tx, ctl_rx) = mpsc::channel(4);
    shared.publish(&key, &monitor.initial_status());
    let task = tokio::spawn(monitor_task(monitor, rx, ctl_rx, shared.clone(), key));
    Ok(RunningMonitor {
        config,
        control: ctl_tx,
        stop,
        task,
    })
}

fn instant_of(t: Timestamp) -> tokio::time::Instant {
    let now = Timestamp::now();
    let delta = t.duration_since(now);
    let wait = Duration::try_from(delta).unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + wait.min(Duration::from_secs(365 * 24 * 3600))
}

/// Feeds lines to the monitor and publishes what it reports until stopped; returns the
/// monitor (a reload that restarts the source takes its conditions over).
async fn monitor_task(
    mut monitor: Monitor,
    mut rx: crate::source::LineReceiver,
    mut control: mpsc::Receiver<Control>,
    shared: Arc<Shared>,
    key: String,
) -> Monitor {
    let mut batch: Vec<LogLine> = Vec::with_capacity(256);
    let mut statuses: Vec<Status> = Vec::new();
    // Lines since the last footprint trim and when the last one arrived: after a burst
    // the monitor gives memory back once (footprint::release_after_burst).
    let mut since_trim: u64 = 0;
    let mut last_line = tokio::time::Instant::now();
    loop {
        let deadline = monitor.next_deadline().map(instant_of);
        let trim_at = (since_trim >= crate::footprint::TRIM_AFTER_LINES)
            .then(|| last_line + crate::footprint::TRIM_WHEN_IDLE_FOR);
        tokio::select! {
            // Control first: after a Stop or a Swap no batch is processed by the old rules.
            biased;
            c = control.recv() => match c {
                Some(Control::Swap(mut new)) => {
                    new.adopt_state(&monitor);
                    shared.with_metrics(|pm| new.init_metrics(pm));
                    monitor = *new;
                    shared.publish(&key, &monitor.initial_status());
                }
                Some(Control::Stop) | None => break,
            },
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break;
                }
                since_trim += n as u64;
                last_line = tokio::time::Instant::now();
                shared.with_metrics(|pm| {
                    for line in batch.drain(..) {
                        statuses.extend(monitor.process(&line, pm));
                    }
                });
                for s in statuses.drain(..) {
                    shared.publish(&key, &s);
                }
            }
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                let out = shared.with_metrics(|pm| monitor.tick(Timestamp::now(), pm));
                for s in &out {
                    shared.publish(&key, s);
                }
            }
            _ = async { tokio::time::sleep_until(trim_at.unwrap_or_else(tokio::time::Instant::now)).await }, if trim_at.is_some() => {
                since_trim = 0;
                // Inline: a millisecond or two of madvise and malloc_trim, once per burst;
                // a blocking-pool thread would itself stay resident for seconds.
                crate::footprint::release_after_burst();
            }
        }
    }
    monitor
}

/// Loads one config and compiles its monitor, with warnings logged.
pub(crate) fn load_monitor(path: &Path) -> Result<(MonitorConfig, Monitor), String> {
    let loaded = load_monitor_config(path).map_err(|e| e.to_string())?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let monitor = Monitor::new(&loaded.config, Timestamp::now()).map_err(|e| e.to_string())?;
    Ok((loaded.config, monitor))
}

fn kube_options(args: &DaemonArgs) -> Result<KubeOptions, DaemonError> {
    let node_name = resolve_node_name(args.hostname_override.as_deref())
        .map_err(|e| DaemonError::Kube(e.to_string()))?;
    Ok(KubeOptions {
        apiserver_override: args.apiserver_override.clone().filter(|s| !s.is_empty()),
        node_name,
        wait_timeout: args.apiserver_wait_timeout,
        wait_interval: args.apiserver_wait_interval,
        heartbeat_period: args.k8s_exporter_heartbeat_period,
        write_events: args.k8s_exporter_write_events,
        update_node_conditions: args.k8s_exporter_update_node_conditions,
        event_namespace: args.event_namespace.clone(),
        qps: args.kube_api_qps,
        burst: args.kube_api_burst,
        restore_conditions: args.restore_conditions,
        delete_removed_conditions: args.delete_removed_conditions,
    })
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(args: DaemonArgs) -> Result<(), DaemonError> {
    let paths: Vec<PathBuf> = args.system_log_monitor_paths();
    let custom_paths = args.custom_plugin_monitor_paths();
    if paths.is_empty() && custom_paths.is_empty() {
        return Err(DaemonError::NoConfig);
    }
    if !args.system_stats_monitors.is_empty() {
        tracing::warn!(
            configs = ?args.system_stats_monitors,
            "--config.system-stats-monitor is accepted for compatibility but system stats monitors are not implemented; ignoring"
        );
    }
    if args.stackdriver_exporter.is_some() {
        tracing::warn!("--exporter.stackdriver is not supported; ignoring");
    }

    // Load everything first, so a bad config is reported before anything runs.
    let mut failures = Vec::new();
    let mut loaded = Vec::new();
    for path in &paths {
        match load_monitor(path) {
            Ok(pair) => loaded.push(pair),
            Err(e) => {
                tracing::error!("monitor not started: {e}");
                failures.push(e);
            }
        }
    }
    let shared = Shared::new(args.apiserver_wait_timeout, args.source_stall_timeout);
    let mut customs = Vec::new();
    for path in &custom_paths {
        match load_custom(path) {
            Ok(m) => customs.push(m),
            Err(e) => {
                tracing::error!("custom plugin monitor not started: {e}");
                failures.push(e);
            }
        }
    }
    let custom_types = custom_types(customs.iter().map(|c| c.config()));

    // The admin server starts first and answers 503 until the monitors run.
    if args.port != 0 {
        let addr = admin::listen_addr(&args.address, args.port)?;
        let bound = admin::serve(addr, Arc::new(health::AdminHandler(shared.clone()))).await?;
        tracing::info!(%bound, "admin server listening (/healthz, /conditions)");
    }
    if args.prometheus_port != 0 {
        let addr = admin::listen_addr(&args.prometheus_address, args.prometheus_port)?;
        let bound = admin::serve(addr, Arc::new(health::MetricsHandler(shared.clone()))).await?;
        tracing::info!(%bound, "metrics server listening (/metrics)");
    }

    if args.enable_k8s_exporter {
        let types = owned_types(loaded.iter().map(|(c, _)| c), &custom_types);
        let opts = kube_options(&args)?;
        let (exporter, restored) = KubeExporter::start(opts, types)
            .await
            .map_err(|e| DaemonError::Kube(e.to_string()))?;
        for cond in &restored {
            for (_, m) in loaded.iter_mut() {
                if m.restore_condition(cond, Timestamp::now()) {
                    tracing::info!(condition = %cond.type_, reason = %cond.reason, "restored condition from the Node (set during this boot)");
                }
            }
            for m in customs.iter_mut() {
                if m.restore_condition(cond) {
                    tracing::info!(config = %m.config().path.display(), condition = %cond.type_, reason = %cond.reason, "restored custom plugin condition from the Node (set during this boot)");
                }
            }
        }
        shared.set_kube(exporter);
    }

    let mut running = Vec::new();
    for (config, monitor) in loaded {
        shared.with_metrics(|pm| monitor.init_metrics(pm));
        let path = config.path.display().to_string();
        match start_monitor(&shared, config, monitor, None) {
            Ok(r) => {
                tracing::info!(config = %path, plugin = r.config.plugin.as_str(), log = %r.config.log_path, "monitor started");
                running.push(r);
            }
            Err(e) => {
                tracing::error!("monitor not started: {e}");
                failures.push(e);
            }
        }
    }
    let mut running_custom = Vec::new();
    for monitor in customs {
        tracing::info!(config = %monitor.config().path.display(), rules = monitor.config().rules.len(), "custom plugin monitor started");
        running_custom.push(start_custom(&shared, monitor));
    }
    if running.is_empty() && running_custom.is_empty() {
        return Err(DaemonError::NothingStarted(failures));
    }
    shared.set_ready();
    crate::footprint::release_startup_pages();

    let reloader = if args.watch_config {
        reload::spawn(
            shared.clone(),
            paths.clone(),
            custom_paths.clone(),
            running,
            running_custom,
        )
    } else {
        reload::hold(running, running_custom)
    };

    // Both signal streams exist before the first signal arrives, so a quick second one
    // is not missed.
    let mut signals = Signals::new();
    signals.next().await;
    tracing::info!("shutting down: stopping sources, flushing conditions");
    tokio::spawn(async move {
        signals.next().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(1);
    });
    // One deadline for the whole shutdown: stopping monitors, then flushing conditions.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE;
    reloader.stop_all(deadline - SHUTDOWN_FLUSH_DEADLINE).await;
    if let Some(kube) = shared.take_kube() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let _ = tokio::time::timeout(
            left,
            kube.shutdown(left.saturating_sub(Duration::from_millis(500))),
        )
        .await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Names in first-seen order, without duplicates.
fn unique_types<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for n in names {
        if !types.iter().any(|t| t == n) {
            types.push(n.to_string());
        }
    }
    types
}

/// The condition types the custom plugin monitor configs declare, in config order.
pub(crate) fn custom_types<'a>(
    configs: impl Iterator<Item = &'a CustomPluginConfig>,
) -> Vec<String> {
    unique_types(configs.flat_map(|c| c.conditions.iter().map(|x| x.type_.as_str())))
}

/// The condition types this agent owns: those of the log monitor configs, then those of
/// the custom plugin monitors.
pub(crate) fn owned_types<'a>(
    configs: impl Iterator<Item = &'a MonitorConfig>,
    custom: &'a [String],
) -> Vec<String> {
    unique_types(
        configs
            .flat_map(|c| c.conditions.iter().map(|x| x.type_.as_str()))
            .chain(custom.iter().map(String::as_str)),
    )
}

/// SIGTERM and SIGINT.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        if let Err(e) = term.as_ref().and(int.as_ref()) {
            // The default actions of SIGTERM and SIGINT still end the process.
            tracing::warn!("cannot handle SIGTERM/SIGINT ({e}): shutdown will not flush");
        }
        Signals {
            term: term.ok(),
            int: int.ok(),
        }
    }

    /// Waits for the next SIGTERM or SIGINT (forever without handlers).
    async fn next(&mut self) {
        match (&mut self.term, &mut self.int) {
            (Some(t), Some(i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            (Some(one), None) | (None, Some(one)) => {
                one.recv().await;
            }
            (None, None) => std::future::pending::<()>().await,
        }
    }
}

/// API server health for /healthz: (healthy, details), or None without the exporter.
pub(crate) fn kube_health(shared: &Shared, _now_ms: u64) -> Option<(bool, serde_json::Value)> {
    let limit = shared.apiserver_wait_timeout;
    shared.with_kube(|k| {
        let st = k.stats();
        let unreachable = st.unreachable_longer_than(limit);
        let ms = |v: i64| (v > 0).then(|| jiff::Timestamp::from_millisecond(v).ok().map(|t| t.to_string())).flatten();
        let first_failure = st.first_failure_unix_ms.load(Ordering::Relaxed);
        let state = if unreachable {
            "unreachable"
        } else if first_failure > 0 {
            "failing"
        } else {
            "ok"
        };
        (
            !unreachable,
            serde_json::json!({
                "state": state,
                "reason": unreachable.then(|| format!(
                    "API server requests have failed since {} (longer than --apiserver-wait-timeout={})",
                    ms(first_failure).unwrap_or_default(),
                    crate::duration::format_go_duration(limit)
                )),
                "lastSuccess": ms(st.last_success_unix_ms.load(Ordering::Relaxed)),
                "failingSince": ms(first_failure),
            }),
        )
    })
}

/// Kubernetes exporter metrics (events sent and dropped, API errors by code).
pub(crate) fn kube_metrics(shared: &Shared, out: &mut String) {
    use std::fmt::Write as _;
    let Some(st) = shared.with_kube(|k| k.stats()) else {
        return;
    };
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP npd_events_sent_total Events written to the API server (created or repeat-patched).\n# TYPE npd_events_sent_total counter\nnpd_events_sent_total {}",
        load(&st.events_sent)
    );
    let _ = writeln!(
        out,
        "# HELP npd_events_dropped_total Events not sent, by cause.\n# TYPE npd_events_dropped_total counter"
    );
    let _ = writeln!(
        out,
        "npd_events_dropped_total{{cause=\"budget\"}} {}",
        load(&st.events_dropped_budget)
    );
    let _ = writeln!(
        out,
        "npd_events_dropped_total{{cause=\"queue_full\"}} {}",
        load(&st.events_dropped_queue)
    );
    let _ = writeln!(
        out,
        "npd_events_dropped_total{{cause=\"api_error\"}} {}",
        load(&st.events_failed)
    );
    let _ = writeln!(
        out,
        "# HELP npd_condition_patches_total Successful node status PATCHes.\n# TYPE npd_condition_patches_total counter\nnpd_condition_patches_total {}",
        load(&st.condition_patches)
    );
    let _ = writeln!(
        out,
        "# HELP npd_api_request_errors_total Failed API requests by HTTP status code (0: no connection or timeout).\n# TYPE npd_api_request_errors_total counter"
    );
    for (code, n) in st.api_errors() {
        let _ = writeln!(out, "npd_api_request_errors_total{{code=\"{code}\"}} {n}");
    }
}
