//! State shared by the monitor tasks, the exporters and the admin servers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::custom::PluginHealth;
use crate::engine::ProblemMetrics;
use crate::exporter::kube::KubeExporter;
use crate::source::SourceStats;
use crate::types::{Condition, Status};

/// What /healthz and /metrics know about one running monitor.
#[derive(Debug, Clone)]
pub struct MonitorInfo {
    /// The config file path (the monitor's identity).
    pub key: String,
    /// The monitor's `source`.
    pub source: String,
    /// kmsg, journald, filelog or custom.
    pub plugin: &'static str,
    /// The log it reads.
    pub log_path: String,
    /// The source's counters.
    pub stats: Arc<SourceStats>,
    /// False once the source thread has returned.
    pub alive: Arc<AtomicBool>,
    /// Why the source thread returned, if it was not asked to.
    pub exit_error: Arc<Mutex<Option<String>>>,
}

/// Bounds the agent's own log lines about events: a storm of problem lines must not
/// become a storm of log lines. A burst of [`EventLogLimit::BURST`], then one per
/// [`EventLogLimit::REFILL`]; the next line logged says how many were left out.
#[derive(Debug)]
struct EventLogLimit {
    tokens: f64,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl Default for EventLogLimit {
    fn default() -> Self {
        EventLogLimit {
            tokens: Self::BURST,
            last: None,
            suppressed: 0,
        }
    }
}

impl EventLogLimit {
    const BURST: f64 = 25.0;
    const REFILL: Duration = Duration::from_secs(5);

    /// Some(lines left out since the last one logged) when this one may be logged.
    fn allow(&mut self, now: std::time::Instant) -> Option<u64> {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt / Self::REFILL.as_secs_f64()).min(Self::BURST);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// Shared daemon state.
pub struct Shared {
    metrics: Arc<Mutex<ProblemMetrics>>,
    plugins: Mutex<Vec<Arc<PluginHealth>>>,
    /// Condition types of each custom plugin monitor, by config path, in start order.
    monitors: Mutex<Vec<MonitorInfo>>,
    conditions: Mutex<BTreeMap<String, (String, Vec<Condition>)>>,
    event_log: Mutex<EventLogLimit>,
    kube: Mutex<Option<KubeExporter>>,
    ready: AtomicBool,
    /// Successful config reloads.
    pub reloads_ok: AtomicU64,
    /// Rejected config reloads.
    pub reloads_failed: AtomicU64,
    /// --apiserver-wait-timeout: how long the API server may be unreachable before
    /// /healthz says so.
    pub apiserver_wait_timeout: Duration,
    /// --source-stall-timeout: how long a working source may go without progress before
    /// /healthz calls it stalled (zero: never).
    pub source_stall_timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data inconsistent in a
    // way that matters more than stopping to report; keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Creates empty state.
    pub fn new(apiserver_wait_timeout: Duration, source_stall_timeout: Duration) -> Arc<Shared> {
        Arc::new(Shared {
            metrics: Arc::new(Mutex::new(ProblemMetrics::default())),
            plugins: Mutex::new(Vec::new()),
            monitors: Mutex::new(Vec::new()),
            conditions: Mutex::new(BTreeMap::new()),
            event_log: Mutex::new(EventLogLimit::default()),
            kube: Mutex::new(None),
            ready: AtomicBool::new(false),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            apiserver_wait_timeout,
            source_stall_timeout,
        })
    }

    /// Runs `f` with the problem metrics locked.
    pub fn with_metrics<R>(&self, f: impl FnOnce(&mut ProblemMetrics) -> R) -> R {
        f(&mut lock(&self.metrics))
    }

    /// The problem metrics, for monitors that lock them themselves (custom plugins).
    pub fn metrics_handle(&self) -> Arc<Mutex<ProblemMetrics>> {
        self.metrics.clone()
    }

    /// Registers a custom plugin monitor's health. A monitor of the same config path
    /// (the one a reload replaces) is replaced in place, so `/healthz` lists every rule
    /// once.
    pub fn register_plugin(&self, health: Arc<PluginHealth>) {
        let mut plugins = lock(&self.plugins);
        match plugins
            .iter_mut()
            .find(|p| p.config_path() == health.config_path())
        {
            Some(slot) => *slot = health,
            None => plugins.push(health),
        }
    }

    /// Health of every custom plugin monitor.
    pub fn plugins(&self) -> Vec<Arc<PluginHealth>> {
        lock(&self.plugins).clone()
    }

    /// Adds or replaces (same key) a monitor's info.
    pub fn register(&self, info: MonitorInfo) {
        let mut m = lock(&self.monitors);
        m.retain(|x| x.key != info.key);
        m.push(info);
    }

    /// Snapshot of the monitors.
    pub fn monitors(&self) -> Vec<MonitorInfo> {
        lock(&self.monitors).clone()
    }

    /// Records a monitor's status and hands it to the exporters.
    pub fn publish(&self, key: &str, status: &Status) {
        if !status.events.is_empty() {
            let mut limit = lock(&self.event_log);
            for e in &status.events {
                if let Some(suppressed) = limit.allow(std::time::Instant::now()) {
                    tracing::info!(source = %status.source, reason = %e.reason, r#type = e.severity.event_type(), message = %e.message, suppressed, "event");
                }
            }
        }
        lock(&self.conditions).insert(
            key.to_string(),
            (status.source.clone(), status.conditions.clone()),
        );
        if let Some(k) = lock(&self.kube).as_ref() {
            k.report(status);
        }
    }

    /// Records a monitor's current conditions for `/conditions` only, without reporting
    /// them to the exporters (a reloaded monitor that skips its initial status).
    pub fn set_conditions(&self, key: &str, source: &str, conditions: Vec<Condition>) {
        lock(&self.conditions).insert(key.to_string(), (source.to_string(), conditions));
    }

    /// Current conditions by monitor key: (source, conditions).
    pub fn conditions(&self) -> BTreeMap<String, (String, Vec<Condition>)> {
        lock(&self.conditions).clone()
    }

    /// Installs the Kubernetes exporter.
    pub fn set_kube(&self, k: KubeExporter) {
        *lock(&self.kube) = Some(k);
    }

    /// Removes the Kubernetes exporter (for shutdown).
    pub fn take_kube(&self) -> Option<KubeExporter> {
        lock(&self.kube).take()
    }

    /// Runs `f` on the exporter, if any.
    pub fn with_kube<R>(&self, f: impl FnOnce(&KubeExporter) -> R) -> Option<R> {
        lock(&self.kube).as_ref().map(f)
    }

    /// Marks start-up complete.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Whether start-up is complete.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custom::CustomPluginMonitor;
    use crate::custom::config::parse_custom_config;

    fn health(path: &str, reasons: &[&str]) -> Arc<PluginHealth> {
        let rules: Vec<String> = reasons
            .iter()
            .map(|r| format!(r#"{{"type":"temporary","reason":"{r}","path":"/bin/true"}}"#))
            .collect();
        let text = format!(r#"{{"plugin":"custom","rules":[{}]}}"#, rules.join(","));
        let config = parse_custom_config(std::path::Path::new(path), &text)
            .unwrap()
            .config;
        CustomPluginMonitor::new(config).unwrap().health()
    }

    #[test]
    fn event_log_lines_are_bounded_and_report_what_they_left_out() {
        let mut l = super::EventLogLimit::default();
        let t0 = std::time::Instant::now();
        let logged = (0..100).filter(|_| l.allow(t0).is_some()).count();
        assert_eq!(logged, 25);
        // One refill period later one more is logged, saying 75 were left out.
        assert_eq!(l.allow(t0 + super::EventLogLimit::REFILL), Some(75));
        assert_eq!(l.allow(t0 + super::EventLogLimit::REFILL), None);
    }

    #[test]
    fn register_plugin_replaces_the_same_config() {
        let s = Shared::new(Duration::from_secs(1), Duration::ZERO);
        s.register_plugin(health("/c/a.json", &["A1", "A2"]));
        s.register_plugin(health("/c/b.json", &["B"]));
        s.register_plugin(health("/c/a.json", &["A3"]));
        let p = s.plugins();
        let got: Vec<(String, Vec<String>)> = p
            .iter()
            .map(|h| {
                (
                    h.config_path().to_string(),
                    h.rules().into_iter().map(|r| r.reason).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/c/a.json".to_string(), vec!["A3".to_string()]),
                ("/c/b.json".to_string(), vec!["B".to_string()]),
            ]
        );
    }
}
