//! Kubernetes reporter (DESIGN.md section 3): node conditions through a strategic merge
//! PATCH of the Node status, passing problems as core/v1 Events.
//!
//! [`KubeExporter`] is a cheap handle. [`KubeExporter::report`] never blocks: conditions go
//! into a latest-state map, events into a bounded queue after the per-source budget. One
//! background tokio task owns the client and does all I/O: it batches condition changes
//! (sent about a second after the first change), retries failures with the latest state,
//! sends a jittered heartbeat, and writes events through a client-side token bucket.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::types::{Condition, ConditionStatus, Status};

/// What the daemon's command line configures for the Kubernetes reporter.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// `--apiserver-override`: a URL, optionally with upstream's query parameters
    /// (`inClusterConfig`, `auth`, `insecure`).
    pub apiserver_override: Option<String>,
    /// The Node this agent reports for (see [`resolve_node_name`]).
    pub node_name: String,
    /// `--apiserver-wait-timeout`: how long [`KubeExporter::start`] waits for the API server.
    pub wait_timeout: Duration,
    /// `--apiserver-wait-interval`: the pause between attempts while waiting.
    pub wait_interval: Duration,
    /// `--k8s-exporter-heartbeat-period`: how often unchanged conditions are re-sent.
    pub heartbeat_period: Duration,
    /// `--k8s-exporter-write-events`.
    pub write_events: bool,
    /// `--k8s-exporter-update-node-conditions`.
    pub update_node_conditions: bool,
    /// `--event-namespace`; empty means `default`.
    pub event_namespace: String,
    /// `--kube-api-qps`; zero or less disables the client-side rate limit.
    pub qps: f32,
    /// `--kube-api-burst`.
    pub burst: u32,
    /// `--restore-conditions`: keep True conditions set during this boot across restarts.
    pub restore_conditions: bool,
    /// `--delete-removed-conditions`: delete condition types that left our configs.
    pub delete_removed_conditions: bool,
}

/// Internal timings, exposed so tests and simulations can shorten them.
#[derive(Debug, Clone)]
pub struct KubeTuning {
    /// Delay between the first unsent condition change and its PATCH (batches changes).
    pub batch_delay: Duration,
    /// Pause before retrying a failed condition PATCH (with the latest state).
    pub retry_period: Duration,
    /// Capacity of the event queue between `report` and the writer task.
    pub event_queue: usize,
    /// Per-request deadline (connect + answer).
    pub request_timeout: Duration,
    /// Event budget per (source, node): burst size.
    pub event_burst: u32,
    /// Event budget per (source, node): one more event per this period.
    pub event_refill: Duration,
    /// Relative heartbeat jitter (0.1 = +-10%).
    pub heartbeat_jitter: f64,
    /// The shortest heartbeat period: a shorter `heartbeat_period` (even 0) is raised to
    /// this, with a warning, and no jittered heartbeat comes sooner. Upstream checks for
    /// changes once a second; a heartbeat more often than that only loads the API server.
    pub min_heartbeat_period: Duration,
    /// Similar events (same source, reason and type, different messages) are combined
    /// once this many distinct messages were seen within `similar_events_window`.
    pub similar_events_max: usize,
    /// How long a run of similar events lasts without a new one.
    pub similar_events_window: Duration,
}

impl Default for KubeTuning {
    fn default() -> Self {
        KubeTuning {
            batch_delay: Duration::from_secs(1),
            retry_period: Duration::from_secs(10),
            event_queue: 1000,
            request_timeout: Duration::from_secs(20),
            // client-go's EventSourceObjectSpamFilter: burst 25, refill 1 per 5 minutes.
            event_burst: 25,
            event_refill: Duration::from_secs(300),
            heartbeat_jitter: 0.1,
            min_heartbeat_period: Duration::from_secs(1),
            // client-go's EventAggregator: 10 distinct messages within 10 minutes.
            similar_events_max: 10,
            similar_events_window: Duration::from_secs(600),
        }
    }
}

/// Errors of the Kubernetes reporter.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No node name could be determined.
    #[error("cannot determine the node name: pass --hostname-override or set NODE_NAME ({0})")]
    NodeName(String),
    /// `--apiserver-override` is not a usable URL or carries unknown parameters.
    #[error("--apiserver-override {url:?}: {reason}")]
    Override {
        /// The flag's value.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The client configuration could not be built (kubeconfig, in-cluster files).
    #[error("Kubernetes client configuration: {0}")]
    Config(String),
    /// The API server did not answer with the Node within the wait timeout.
    #[error("API server did not return node {node:?} within {timeout:?}: {last_error}")]
    WaitTimeout {
        /// Node name.
        node: String,
        /// The configured wait timeout.
        timeout: Duration,
        /// The last error seen.
        last_error: String,
    },
}

/// Counters for metrics and /healthz. All fields are updated by the writer task.
#[derive(Debug, Default)]
pub struct KubeStats {
    /// Events written (created or repeat-patched).
    pub events_sent: AtomicU64,
    /// Events dropped by the per-source budget.
    pub events_dropped_budget: AtomicU64,
    /// Events dropped because the queue was full.
    pub events_dropped_queue: AtomicU64,
    /// Events the API server refused or that could not be delivered.
    pub events_failed: AtomicU64,
    /// Successful condition PATCHes.
    pub condition_patches: AtomicU64,
    /// Failed requests by HTTP status code; 0 counts connection errors and timeouts.
    pub api_errors: Mutex<BTreeMap<u16, u64>>,
    /// Unix milliseconds of the last successful request (0: never).
    pub last_success_unix_ms: AtomicI64,
    /// Unix milliseconds of the first failure of the current streak of the API server
    /// being unreachable or unavailable (no connection or answer, 429, 5xx); 0: none. Any
    /// other answer ends the streak: a refusal (403, 422, ...) is an API error but proves
    /// the server reachable.
    pub first_failure_unix_ms: AtomicI64,
}

impl KubeStats {
    /// Events dropped for any reason (budget or full queue).
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped_budget.load(Ordering::Relaxed)
            + self.events_dropped_queue.load(Ordering::Relaxed)
    }

    /// A copy of the error counters.
    pub fn api_errors(&self) -> BTreeMap<u16, u64> {
        self.api_errors
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// True when requests have been failing for longer than `limit` (for /healthz).
    pub fn unreachable_longer_than(&self, limit: Duration) -> bool {
        let first = self.first_failure_unix_ms.load(Ordering::Relaxed);
        first != 0 && unix_ms(Timestamp::now()).saturating_sub(first) > limit.as_millis() as i64
    }

    fn record_success(&self) {
        self.last_success_unix_ms
            .store(unix_ms(Timestamp::now()), Ordering::Relaxed);
        self.first_failure_unix_ms.store(0, Ordering::Relaxed);
    }

    fn record_error(&self, code: u16) {
        if let Ok(mut m) = self.api_errors.lock() {
            *m.entry(code).or_insert(0) += 1;
        }
        self.record_reachability(code);
    }

    /// Starts (or extends) the unreachable streak on an unavailability; ends it on any
    /// other answer.
    fn record_reachability(&self, code: u16) {
        if unavailable(code) {
            let _ = self.first_failure_unix_ms.compare_exchange(
                0,
                unix_ms(Timestamp::now()),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        } else {
            self.first_failure_unix_ms.store(0, Ordering::Relaxed);
        }
    }
}

/// A failure that says the API server is unreachable or unavailable (no connection or
/// answer, 429, 5xx) rather than refusing this request: worth retrying.
fn unavailable(code: u16) -> bool {
    matches!(code, 0 | 429 | 500..=599)
}

fn unix_ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// The node name: `--hostname-override`, then `NODE_NAME`, then the host name.
pub fn resolve_node_name(hostname_override: Option<&str>) -> Result<String, KubeError> {
    if let Some(h) = hostname_override.map(str::trim).filter(|h| !h.is_empty()) {
        return Ok(h.to_string());
    }
    if let Ok(n) = std::env::var("NODE_NAME") {
        let n = n.trim();
        if !n.is_empty() {
            return Ok(n.to_string());
        }
    }
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_err(|e| KubeError::NodeName(format!("/proc/sys/kernel/hostname: {e}")))?;
    let h = h.trim();
    if h.is_empty() {
        return Err(KubeError::NodeName("the host name is empty".into()));
    }
    // Like upstream (and the kubelet), node names are lower case.
    Ok(h.to_lowercase())
}

/// Builds the client configuration the way upstream's `--apiserver-override` does.
async fn build_config(over: Option<&str>) -> Result<kube::Config, KubeError> {
    let Some(raw) = over.filter(|s| !s.trim().is_empty()) else {
        return kube::Config::infer()
            .await
            .map_err(|e| KubeError::Config(e.to_string()));
    };
    let bad = |reason: String| KubeError::Override {
        url: raw.to_string(),
        reason,
    };
    let uri: hyper::Uri = raw.parse().map_err(|e| bad(format!("not a URL: {e}")))?;
    let mut in_cluster: Option<bool> = None;
    let mut auth: Option<String> = None;
    let mut insecure = false;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let parse_bool = |v: &str| match v {
            "true" | "1" | "True" | "TRUE" | "" => Ok(true),
            "false" | "0" | "False" | "FALSE" => Ok(false),
            other => Err(bad(format!("parameter {k}: {other:?} is not a boolean"))),
        };
        match k {
            "inClusterConfig" => in_cluster = Some(parse_bool(v)?),
            "auth" => auth = Some(v.to_string()).filter(|s| !s.is_empty()),
            "insecure" => insecure = parse_bool(v)?,
            other => {
                return Err(bad(format!(
                    "unknown parameter {other:?} (supported: inClusterConfig, auth, insecure)"
                )));
            }
        }
    }
    let mut config = if let Some(path) = &auth {
        let kc = kube::config::Kubeconfig::read_from(path)
            .map_err(|e| bad(format!("auth={path}: {e}")))?;
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| bad(format!("auth={path}: {e}")))?
    } else {
        match in_cluster {
            Some(true) => {
                kube::Config::incluster().map_err(|e| bad(format!("inClusterConfig=true: {e}")))?
            }
            // Upstream defaults to in-cluster; out of a cluster a bare URL (the test API
            // server, kubectl proxy) is used as is, with no credentials.
            None => kube::Config::incluster().unwrap_or_else(|_| kube::Config::new(uri.clone())),
            Some(false) => kube::Config::new(uri.clone()),
        }
    };
    if let (Some(scheme), Some(auth)) = (uri.scheme(), uri.authority()) {
        let base = format!("{scheme}://{auth}");
        config.cluster_url = base.parse().map_err(|e| bad(format!("bad host: {e}")))?;
    }
    if insecure {
        config.accept_invalid_certs = true;
    }
    Ok(config)
}

/// Client-side token bucket for `--kube-api-qps` / `--kube-api-burst`.
struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(qps: f32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            qps: f64::from(qps),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// How long until a token is available, without taking it.
    fn wait(&self, now: Instant) -> Duration {
        if self.qps <= 0.0 || !self.qps.is_finite() {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        if tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - tokens) / self.qps)
        }
    }

    /// Takes a token, returning how long the caller must wait first.
    fn take(&mut self, now: Instant) -> Duration {
        if self.qps <= 0.0 || !self.qps.is_finite() {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

/// client-go's spam filter: a token bucket per (source, node).
struct Budget {
    tokens: f64,
    last: Instant,
}

/// Logs failures without flooding: the first one, then at most one a minute.
#[derive(Default)]
struct LogLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    fn failure(&mut self, what: &str, err: &str) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < Duration::from_secs(60))
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            suppressed = self.suppressed,
            "Kubernetes API: {what} failed: {err}"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }

    fn success(&mut self) {
        if self.last.take().is_some() {
            tracing::info!("Kubernetes API: requests succeed again");
            self.suppressed = 0;
        }
    }
}

struct QueuedEvent {
    source: String,
    type_: &'static str,
    reason: String,
    message: String,
    attempts: u8,
    /// Combined with similar events (decided once, before the first attempt).
    combined: bool,
}

/// State shared between the handle and the writer task.
struct Shared {
    owned: BTreeSet<String>,
    /// Latest state of every owned condition reported so far.
    latest: BTreeMap<String, Condition>,
    /// Types to delete from the Node on the next PATCH.
    deletes: BTreeSet<String>,
    /// When the first unsent change happened.
    dirty_since: Option<Instant>,
    budgets: HashMap<String, Budget>,
}

struct Inner {
    opts: KubeOptions,
    tuning: KubeTuning,
    shared: Mutex<Shared>,
    wake: Notify,
    events_tx: mpsc::Sender<QueuedEvent>,
    stats: Arc<KubeStats>,
}

/// The writer task and the channel that tells it to flush and stop (with a deadline).
type WorkerTask = (tokio::task::JoinHandle<()>, oneshot::Sender<Instant>);

/// Handle to the Kubernetes reporter; cloning is cheap.
#[derive(Clone)]
pub struct KubeExporter {
    inner: Arc<Inner>,
    task: Arc<Mutex<Option<WorkerTask>>>,
}

impl KubeExporter {
    /// Connects, waits for the API server by getting the Node (resourceVersion=0) every
    /// `wait_interval` up to `wait_timeout`, caches the Node UID, and returns the owned
    /// conditions to restore (True and set during this boot) unless `restore_conditions`
    /// is false.
    pub async fn start(
        opts: KubeOptions,
        owned_condition_types: Vec<String>,
    ) -> Result<(KubeExporter, Vec<Condition>), KubeError> {
        Self::start_with_tuning(opts, owned_condition_types, KubeTuning::default()).await
    }

    /// [`KubeExporter::start`] with explicit internal timings.
    pub async fn start_with_tuning(
        opts: KubeOptions,
        owned_condition_types: Vec<String>,
        tuning: KubeTuning,
    ) -> Result<(KubeExporter, Vec<Condition>), KubeError> {
        let mut opts = opts;
        if opts.heartbeat_period < tuning.min_heartbeat_period {
            tracing::warn!(
                "--k8s-exporter-heartbeat-period={} is shorter than the minimum; using {}",
                crate::duration::format_go_duration(opts.heartbeat_period),
                crate::duration::format_go_duration(tuning.min_heartbeat_period),
            );
            opts.heartbeat_period = tuning.min_heartbeat_period;
        }
        let mut config = build_config(opts.apiserver_override.as_deref()).await?;
        config.connect_timeout = Some(Duration::from_secs(5).min(tuning.request_timeout));
        config.read_timeout = Some(tuning.request_timeout);
        config.write_timeout = Some(tuning.request_timeout);
        // Our writer retries with the latest state and honours Retry-After; kube's own
        // retry layer would resend stale bodies and hide errors from the metrics.
        config.default_retry = false;
        let client =
            kube::Client::try_from(config).map_err(|e| KubeError::Config(e.to_string()))?;
        let stats = Arc::new(KubeStats::default());
        let mut api = Api {
            client,
            limiter: TokenBucket::new(opts.qps, opts.burst),
            stats: stats.clone(),
            timeout: tuning.request_timeout,
            blocked_until: None,
            log: LogLimiter::default(),
        };

        let node_path = format!("/api/v1/nodes/{}", opts.node_name);
        let deadline = Instant::now() + opts.wait_timeout;
        let node: Node = loop {
            let req = hyper::Request::get(format!("{node_path}?resourceVersion=0"))
                .body(Vec::new())
                .map_err(|e| KubeError::Config(e.to_string()))?;
            let err = match api.send(req, "get node").await {
                Ok(body) => match serde_json::from_slice::<Node>(&body) {
                    Ok(n) => break n,
                    Err(e) => format!("decoding node: {e}"),
                },
                Err(e) => e.to_string(),
            };
            // The next attempt after the wait interval, or later if the rate limit or a
            // Retry-After says so.
            let now = Instant::now();
            let next = (now + opts.wait_interval).max(api.ready_at(now, true));
            if next > deadline {
                return Err(KubeError::WaitTimeout {
                    node: opts.node_name.clone(),
                    timeout: opts.wait_timeout,
                    last_error: err,
                });
            }
            tracing::info!("waiting for the API server: {err}");
            tokio::time::sleep_until(next).await;
        };
        let uid = node.metadata.uid.clone().unwrap_or_default();
        let owned: BTreeSet<String> = owned_condition_types.into_iter().collect();
        let restored = if opts.restore_conditions {
            restorable(&node, &owned, crate::source::boot_time())
        } else {
            Vec::new()
        };

        let (events_tx, events_rx) = mpsc::channel(tuning.event_queue.max(1));
        let inner = Arc::new(Inner {
            opts,
            tuning,
            shared: Mutex::new(Shared {
                owned,
                latest: BTreeMap::new(),
                deletes: BTreeSet::new(),
                dirty_since: None,
                budgets: HashMap::new(),
            }),
            wake: Notify::new(),
            events_tx,
            stats,
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let worker = Worker {
            inner: inner.clone(),
            api,
            uid,
            events_rx,
            pending: None,
            recent: EventCache::new(EVENT_CACHE_CAP),
            similar: SimilarEvents::new(),
            next_condition_attempt: None,
            next_heartbeat: None,
            next_event_attempt: None,
            conditions_unsent: false,
        };
        let handle = tokio::spawn(worker.run(stop_rx));
        Ok((
            KubeExporter {
                inner,
                task: Arc::new(Mutex::new(Some((handle, stop_tx)))),
            },
            restored,
        ))
    }

    /// Takes a monitor's status. Never blocks: conditions update the latest-state map
    /// (sent batched), events pass the per-source budget into a bounded queue.
    pub fn report(&self, status: &Status) {
        let opts = &self.inner.opts;
        let mut wake = false;
        let mut to_queue = Vec::new();
        if let Ok(mut sh) = self.inner.shared.lock() {
            if opts.update_node_conditions {
                for c in &status.conditions {
                    if !sh.owned.contains(&c.type_) {
                        continue;
                    }
                    if sh.latest.get(&c.type_) != Some(c) {
                        sh.latest.insert(c.type_.clone(), c.clone());
                        sh.deletes.remove(&c.type_);
                        if sh.dirty_since.is_none() {
                            sh.dirty_since = Some(Instant::now());
                        }
                        wake = true;
                    }
                }
            }
            if opts.write_events && !status.events.is_empty() {
                let now = Instant::now();
                let t = &self.inner.tuning;
                let budget = sh.budgets.entry(status.source.clone()).or_insert(Budget {
                    tokens: f64::from(t.event_burst),
                    last: now,
                });
                let refill = t.event_refill.as_secs_f64();
                for e in &status.events {
                    if refill > 0.0 {
                        let dt = now.saturating_duration_since(budget.last).as_secs_f64();
                        budget.tokens = (budget.tokens + dt / refill).min(f64::from(t.event_burst));
                    }
                    budget.last = now;
                    if budget.tokens >= 1.0 {
                        budget.tokens -= 1.0;
                        to_queue.push(QueuedEvent {
                            source: status.source.clone(),
                            type_: e.severity.event_type(),
                            reason: e.reason.clone(),
                            message: e.message.clone(),
                            attempts: 0,
                            combined: false,
                        });
                    } else {
                        self.inner
                            .stats
                            .events_dropped_budget
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                // The map is bounded by the number of monitors' sources.
            }
        }
        for e in to_queue {
            match self.inner.events_tx.try_send(e) {
                Ok(()) => wake = true,
                Err(_) => {
                    self.inner
                        .stats
                        .events_dropped_queue
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if wake {
            self.inner.wake.notify_one();
        }
    }

    /// Replaces the owned condition types (config reload). Types that left the configs
    /// are no longer sent; with `delete_removed_conditions` they are deleted from the Node.
    pub fn set_owned_condition_types(&self, types: Vec<String>) {
        let new: BTreeSet<String> = types.into_iter().collect();
        let mut wake = false;
        if let Ok(mut sh) = self.inner.shared.lock() {
            let removed: Vec<String> = sh.owned.difference(&new).cloned().collect();
            for t in removed {
                sh.latest.remove(&t);
                if self.inner.opts.delete_removed_conditions
                    && self.inner.opts.update_node_conditions
                {
                    sh.deletes.insert(t);
                    if sh.dirty_since.is_none() {
                        sh.dirty_since = Some(Instant::now());
                    }
                    wake = true;
                }
            }
            for t in &new {
                sh.deletes.remove(t);
            }
            sh.owned = new;
        }
        if wake {
            self.inner.wake.notify_one();
        }
    }

    /// Flushes pending condition changes (and queued events while time allows), then
    /// stops the writer task. Returns by `deadline` at the latest.
    pub async fn shutdown(self, deadline: Duration) {
        let taken = self.task.lock().ok().and_then(|mut t| t.take());
        let Some((mut handle, stop)) = taken else {
            return;
        };
        let _ = stop.send(Instant::now() + deadline);
        if tokio::time::timeout(deadline, &mut handle).await.is_err() {
            handle.abort();
        }
    }

    /// Counters for metrics and /healthz.
    pub fn stats(&self) -> Arc<KubeStats> {
        self.inner.stats.clone()
    }
}

/// Owned conditions of the live Node that are True and changed after `boot`.
fn restorable(node: &Node, owned: &BTreeSet<String>, boot: Timestamp) -> Vec<Condition> {
    let conds = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    conds
        .iter()
        .filter(|c| owned.contains(&c.type_) && c.status == "True")
        .filter_map(|c| {
            let t = c.last_transition_time.as_ref()?.0;
            (t > boot).then(|| Condition {
                type_: c.type_.clone(),
                status: ConditionStatus::True,
                transition: t,
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// Kubernetes timestamps have second precision (metav1.Time).
fn k8s_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A failed request.
#[derive(Debug)]
struct ApiFailure {
    /// HTTP status, 0 for connection errors and timeouts.
    code: u16,
    retry_after: Option<Duration>,
    message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.code == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "HTTP {}: {}", self.code, self.message)
        }
    }
}

struct Api {
    client: kube::Client,
    limiter: TokenBucket,
    stats: Arc<KubeStats>,
    timeout: Duration,
    /// Set by a 429/503 with Retry-After: no request before then (see [`Api::ready_at`]).
    blocked_until: Option<Instant>,
    log: LogLimiter,
}

impl Api {
    /// The failure of a request that could not even be built (a name that cannot be part
    /// of a URL): logged like a failed request and handled like one (retried), so nothing
    /// is counted as sent that was not.
    fn unbuildable(&mut self, what: &str, err: &hyper::http::Error) -> ApiFailure {
        let f = ApiFailure {
            code: 0,
            retry_after: None,
            message: format!("building the request: {err}"),
        };
        self.log.failure(what, &f.to_string());
        f
    }

    /// The earliest time the next request may go: when the client-side rate limit has a
    /// token and (with `honour_retry_after`) a Retry-After pause is over. Callers wait for
    /// it before [`Api::send`], each where it can also watch what else matters (the
    /// worker's stop signal).
    fn ready_at(&self, now: Instant, honour_retry_after: bool) -> Instant {
        let limit = now + self.limiter.wait(now);
        match self.blocked_until {
            Some(b) if honour_retry_after => limit.max(b),
            _ => limit,
        }
    }

    /// Sends one request, taking a rate-limit token; returns the body of a 2xx answer.
    /// Never sleeps: a caller that did not wait for [`Api::ready_at`] runs the token
    /// bucket into debt, which later requests wait out.
    async fn send(
        &mut self,
        req: hyper::Request<Vec<u8>>,
        what: &str,
    ) -> Result<Vec<u8>, ApiFailure> {
        self.send_expecting(req, what, None).await
    }

    /// [`Api::send`] for a request where the status `expected` is a normal outcome the
    /// caller handles (the 404 of a PATCH of an event that expired): it is still returned
    /// as an error, but neither counted nor logged as one.
    async fn send_expecting(
        &mut self,
        req: hyper::Request<Vec<u8>>,
        what: &str,
        expected: Option<u16>,
    ) -> Result<Vec<u8>, ApiFailure> {
        let _ = self.limiter.take(Instant::now());
        let result = tokio::time::timeout(self.timeout, async {
            let res = self
                .client
                .send(req.map(kube::client::Body::from))
                .await
                .map_err(|e| ApiFailure {
                    code: 0,
                    retry_after: None,
                    message: e.to_string(),
                })?;
            let status = res.status();
            let retry_after = res
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(600)));
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| ApiFailure {
                    code: 0,
                    retry_after: None,
                    message: format!("reading answer: {e}"),
                })?
                .to_bytes();
            if status.is_success() {
                Ok(body.to_vec())
            } else {
                let message = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from))
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
                Err(ApiFailure {
                    code: status.as_u16(),
                    retry_after,
                    message,
                })
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(ApiFailure {
                code: 0,
                retry_after: None,
                message: format!("no answer within {:?}", self.timeout),
            })
        });
        match &result {
            Ok(_) => {
                self.blocked_until = None;
                self.stats.record_success();
                self.log.success();
            }
            Err(f) if Some(f.code) == expected => self.stats.record_reachability(f.code),
            Err(f) => {
                self.stats.record_error(f.code);
                self.log.failure(what, &f.to_string());
                if let Some(ra) = f.retry_after {
                    self.blocked_until = Some(Instant::now() + ra);
                }
            }
        }
        result
    }
}

/// `period` with a uniformly random relative jitter of +-`jitter` (clamped to 0..=0.5).
fn jittered(period: Duration, jitter: f64) -> Duration {
    let p = period.as_secs_f64();
    let j = jitter.clamp(0.0, 0.5);
    Duration::from_secs_f64((p * (1.0 + j * (2.0 * fastrand::f64() - 1.0))).max(0.001))
}

/// (source, reason, message, type): what makes two events identical. The message is
/// `None` for the one combined event of a run of similar events.
type EventKey = (String, String, Option<String>, &'static str);

/// The prefix client-go gives a combined event's message.
const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// client-go's EventAggregator: events with the same source, reason and type but
/// different messages are "similar". Once `max` distinct messages were seen within the
/// window, further similar events are written as one combined event (message prefixed
/// with [`COMBINED_PREFIX`], the latest message) whose count goes up, instead of one
/// object each. Bounded like [`EventCache`].
struct SimilarEvents {
    runs: BoundedMap<(String, String, &'static str), SimilarRun>,
}

struct SimilarRun {
    messages: std::collections::HashSet<String>,
    last: Instant,
}

impl SimilarEvents {
    fn new() -> Self {
        SimilarEvents {
            runs: BoundedMap::new(EVENT_CACHE_CAP),
        }
    }

    /// Records an event; true when it is to be combined.
    fn observe(&mut self, e: &QueuedEvent, now: Instant, max: usize, window: Duration) -> bool {
        let key = (e.source.clone(), e.reason.clone(), e.type_);
        let run = self.runs.get_or_insert_with(key, || SimilarRun {
            messages: std::collections::HashSet::new(),
            last: now,
        });
        if now.saturating_duration_since(run.last) > window {
            run.messages.clear();
        }
        run.last = now;
        run.messages.insert(e.message.clone());
        if run.messages.len() < max {
            return false;
        }
        // As client-go: forget one message so the set stays below the limit.
        if let Some(any) = run.messages.iter().next().cloned() {
            run.messages.remove(&any);
        }
        true
    }
}

/// A map of at most `cap` entries that evicts the oldest inserted key to make room
/// (client-go's event caches are LRUs of 4096 keys; insertion order is close enough for
/// what they bound). `order` holds every key of `map` exactly once.
struct BoundedMap<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V> BoundedMap<K, V> {
    fn new(cap: usize) -> Self {
        BoundedMap {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k)
    }

    /// The value of `k`, inserted from `f` (evicting the oldest key if full) when absent.
    fn get_or_insert_with(&mut self, k: K, f: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(&k) {
            while self.map.len() >= self.cap {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                self.map.remove(&old);
            }
            self.order.push_back(k.clone());
        }
        self.map.entry(k).or_insert_with(f)
    }

    /// Inserts or replaces; a new key is the newest (an existing one keeps its place).
    fn insert(&mut self, k: K, v: V) {
        match self.map.get_mut(&k) {
            Some(slot) => *slot = v,
            None => {
                self.get_or_insert_with(k, || v);
            }
        }
    }

    /// Removes `k` from the map and from the order (linear in `cap`; removal is rare: an
    /// expired event).
    fn remove(&mut self, k: &K) -> Option<V> {
        let v = self.map.remove(k)?;
        self.order.retain(|o| o != k);
        Some(v)
    }
}

/// Remembers recently written events so an identical repeat patches the existing object
/// (client-go's EventLogger: an LRU of 4096 keys).
type EventCache = BoundedMap<EventKey, CachedEvent>;

struct CachedEvent {
    name: String,
    count: u64,
}

const EVENT_CACHE_CAP: usize = 4096;

struct Worker {
    inner: Arc<Inner>,
    api: Api,
    uid: String,
    events_rx: mpsc::Receiver<QueuedEvent>,
    /// The event taken from the queue that awaits its (first or next) attempt; the others
    /// wait in the bounded queue.
    pending: Option<QueuedEvent>,
    recent: EventCache,
    similar: SimilarEvents,
    next_condition_attempt: Option<Instant>,
    next_heartbeat: Option<Instant>,
    next_event_attempt: Option<Instant>,
    /// The condition state taken for a PATCH has not reached the API server yet (the
    /// PATCH failed or is under way): `dirty_since` is cleared when the state is taken, so
    /// this is what tells the shutdown flush that a change is still unsent.
    conditions_unsent: bool,
}

impl Worker {
    fn namespace(&self) -> &str {
        if self.inner.opts.event_namespace.is_empty() {
            "default"
        } else {
            &self.inner.opts.event_namespace
        }
    }

    fn jittered_heartbeat(&self) -> Duration {
        jittered(
            self.inner.opts.heartbeat_period,
            self.inner.tuning.heartbeat_jitter,
        )
        .max(self.inner.tuning.min_heartbeat_period)
    }

    /// When the condition loop wants to run next.
    fn condition_due(&self) -> Option<Instant> {
        if !self.inner.opts.update_node_conditions {
            return None;
        }
        let dirty = self
            .inner
            .shared
            .lock()
            .ok()
            .and_then(|s| s.dirty_since)
            .map(|d| d + self.inner.tuning.batch_delay);
        // After a failure the retry timer alone rules: changes since and a heartbeat that
        // fell due during the outage wait for it (the retry sends the latest state). A
        // heartbeat time in the past must not win, or an outage longer than the heartbeat
        // period becomes a request as fast as the server can fail it.
        if let Some(retry) = self.next_condition_attempt {
            return Some(retry);
        }
        [dirty, self.next_heartbeat].into_iter().flatten().min()
    }

    async fn run(mut self, mut stop: oneshot::Receiver<Instant>) {
        let mut events_open = true;
        let stop_at = loop {
            let now = Instant::now();
            // A retry pause that has passed is over (keeping it would make the sleep
            // below return at once, a busy loop).
            if self.next_event_attempt.is_some_and(|t| t <= now) {
                self.next_event_attempt = None;
            }
            if self.next_event_attempt.is_none()
                && self.pending.is_none()
                && let Ok(e) = self.events_rx.try_recv()
            {
                self.pending = Some(e);
            }
            let condition_due = self.condition_due();
            let event_due = self
                .next_event_attempt
                .or_else(|| self.pending.as_ref().map(|_| now));
            // No request before the rate limit and a Retry-After allow it. Api::send never
            // waits itself: waiting happens here, where `stop` is always watched.
            let ready = self.api.ready_at(now, true);
            if ready <= now {
                if condition_due.is_some_and(|d| d <= now) {
                    self.sync_conditions().await;
                    continue;
                }
                if event_due.is_some_and(|d| d <= now)
                    && let Some(e) = self.pending.take()
                {
                    self.write_event(e).await;
                    continue;
                }
            }
            let next = [condition_due, event_due]
                .into_iter()
                .flatten()
                .min()
                .map(|t| t.max(ready));
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let recv = async {
                if events_open && self.pending.is_none() && self.next_event_attempt.is_none() {
                    self.events_rx.recv().await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                r = &mut stop => break r.unwrap_or_else(|_| Instant::now()),
                _ = self.inner.wake.notified() => {}
                _ = sleep => {}
                e = recv => match e {
                    Some(e) => self.pending = Some(e),
                    None => events_open = false,
                },
            }
        };
        self.flush(stop_at).await;
    }

    /// Shutdown: unsent condition changes first (new ones and ones whose PATCH failed),
    /// then queued events while time allows. Retry pauses and Retry-After are not waited
    /// out (the deadline bounds what the flush may cost the API server); the client-side
    /// rate limit still is.
    async fn flush(&mut self, deadline: Instant) {
        let dirty = self
            .inner
            .shared
            .lock()
            .ok()
            .is_some_and(|s| s.dirty_since.is_some());
        if (dirty || self.conditions_unsent) && self.inner.opts.update_node_conditions {
            let _ = tokio::time::timeout_at(deadline, async {
                tokio::time::sleep_until(self.api.ready_at(Instant::now(), false)).await;
                self.sync_conditions().await;
            })
            .await;
        }
        self.next_event_attempt = None;
        while Instant::now() < deadline {
            let e = match self.pending.take() {
                Some(e) => e,
                None => match self.events_rx.try_recv() {
                    Ok(e) => e,
                    Err(_) => break,
                },
            };
            let written = tokio::time::timeout_at(deadline, async {
                tokio::time::sleep_until(self.api.ready_at(Instant::now(), false)).await;
                self.write_event(e).await;
            })
            .await;
            if written.is_err() {
                break;
            }
            if self.next_event_attempt.is_some() {
                break; // the API server is failing; don't spend the deadline on retries
            }
        }
    }

    async fn sync_conditions(&mut self) {
        let (conds, deletes) = {
            let Ok(mut sh) = self.inner.shared.lock() else {
                // Poisoned (cannot happen: nothing panics while holding it); don't spin.
                self.next_condition_attempt = Some(Instant::now() + self.inner.tuning.retry_period);
                return;
            };
            sh.dirty_since = None;
            let conds: Vec<Condition> = sh.latest.values().cloned().collect();
            let deletes: Vec<String> = sh.deletes.iter().cloned().collect();
            (conds, deletes)
        };
        if conds.is_empty() && deletes.is_empty() {
            self.next_condition_attempt = None;
            self.next_heartbeat = None;
            self.conditions_unsent = false;
            return;
        }
        self.conditions_unsent = true;
        let now = k8s_time(Timestamp::now());
        let mut list: Vec<Value> = conds
            .iter()
            .map(|c| {
                json!({
                    "type": c.type_,
                    "status": c.status.as_str(),
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": k8s_time(c.transition),
                    "reason": c.reason,
                    "message": c.message,
                })
            })
            .collect();
        list.extend(
            deletes
                .iter()
                .map(|t| json!({"type": t, "$patch": "delete"})),
        );
        let body = json!({"status": {"conditions": list}});
        let req = hyper::Request::patch(format!(
            "/api/v1/nodes/{}/status",
            self.inner.opts.node_name
        ))
        .header(
            hyper::header::CONTENT_TYPE,
            "application/strategic-merge-patch+json",
        )
        .body(body.to_string().into_bytes());
        let result = match req {
            Ok(req) => self.api.send(req, "patch node status").await,
            Err(e) => Err(self.api.unbuildable("patch node status", &e)),
        };
        match result {
            Ok(_) => {
                self.inner
                    .stats
                    .condition_patches
                    .fetch_add(1, Ordering::Relaxed);
                if let Ok(mut sh) = self.inner.shared.lock() {
                    for d in &deletes {
                        sh.deletes.remove(d);
                    }
                }
                self.next_condition_attempt = None;
                self.next_heartbeat = Some(Instant::now() + self.jittered_heartbeat());
                self.conditions_unsent = false;
            }
            Err(f) => {
                let wait = f.retry_after.map_or(self.inner.tuning.retry_period, |ra| {
                    ra.max(self.inner.tuning.retry_period)
                });
                self.next_condition_attempt = Some(Instant::now() + wait);
            }
        }
    }

    async fn write_event(&mut self, mut e: QueuedEvent) {
        let ns = self.namespace().to_string();
        let node = self.inner.opts.node_name.clone();
        if e.attempts == 0
            && !e.combined
            && self.similar.observe(
                &e,
                Instant::now(),
                self.inner.tuning.similar_events_max,
                self.inner.tuning.similar_events_window,
            )
        {
            e.combined = true;
            e.message = format!("{COMBINED_PREFIX}{}", e.message);
        }
        let key = (
            e.source.clone(),
            e.reason.clone(),
            (!e.combined).then(|| e.message.clone()),
            e.type_,
        );
        let now = k8s_time(Timestamp::now());
        let result = if let Some(cached) = self.recent.get(&key) {
            let count = cached.count + 1;
            let name = cached.name.clone();
            // As client-go: the message too (a combined event shows the latest one).
            let body = json!({"count": count, "lastTimestamp": now, "message": e.message});
            let req = hyper::Request::patch(format!("/api/v1/namespaces/{ns}/events/{name}"))
                .header(
                    hyper::header::CONTENT_TYPE,
                    "application/strategic-merge-patch+json",
                )
                .body(body.to_string().into_bytes());
            match req {
                Ok(req) => match self.api.send_expecting(req, "patch event", Some(404)).await {
                    Ok(_) => {
                        if let Some(c) = self.recent.get_mut(&key) {
                            c.count = count;
                        }
                        Ok(())
                    }
                    Err(f) if f.code == 404 => {
                        // The event expired (TTL); create it anew below.
                        self.recent.remove(&key);
                        self.create_event(&ns, &node, &e, &key, &now).await
                    }
                    Err(f) => Err(f),
                },
                Err(err) => Err(self.api.unbuildable("patch event", &err)),
            }
        } else {
            self.create_event(&ns, &node, &e, &key, &now).await
        };
        match result {
            Ok(()) => {
                self.next_event_attempt = None;
                self.inner.stats.events_sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(f) => {
                let transient = unavailable(f.code);
                e.attempts += 1;
                if transient && e.attempts < 3 {
                    // Retry the same event later; newer ones wait in the bounded queue
                    // (full queue = drops counted), so memory stays bounded.
                    let wait = f.retry_after.unwrap_or(self.inner.tuning.retry_period);
                    self.next_event_attempt = Some(Instant::now() + wait);
                    self.pending = Some(e);
                } else {
                    self.next_event_attempt =
                        transient.then(|| Instant::now() + self.inner.tuning.retry_period);
                    self.inner
                        .stats
                        .events_failed
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    async fn create_event(
        &mut self,
        ns: &str,
        node: &str,
        e: &QueuedEvent,
        key: &EventKey,
        now: &str,
    ) -> Result<(), ApiFailure> {
        // client-go names events "<object>.<hex unix nanos>".
        let nanos = Timestamp::now().as_nanosecond();
        let name = format!("{node}.{nanos:x}");
        let mut involved =
            json!({"apiVersion": "v1", "kind": "Node", "name": node, "uid": self.uid});
        // As upstream's getNodeRef: the reference carries --event-namespace as given. The
        // API server rejects (422) an event whose namespace differs from a non-empty
        // involvedObject.namespace; an empty one (the default) is allowed only in
        // "default", and is what `kubectl describe node` searches for.
        if !self.inner.opts.event_namespace.is_empty() {
            involved["namespace"] = json!(ns);
        }
        let body = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved,
            "reason": e.reason,
            "message": e.message,
            "source": {"component": e.source, "host": node},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": e.type_,
        });
        let req = hyper::Request::post(format!("/api/v1/namespaces/{ns}/events"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(body.to_string().into_bytes())
            .map_err(|err| self.api.unbuildable("create event", &err))?;
        self.api.send(req, "create event").await?;
        self.recent
            .insert(key.clone(), CachedEvent { name, count: 1 });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_burst_then_qps() {
        let mut b = TokenBucket::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.wait(t0), Duration::ZERO);
            assert_eq!(b.take(t0), Duration::ZERO);
        }
        // `wait` tells what `take` will say, without taking.
        let peek = b.wait(t0);
        assert_eq!(b.wait(t0), peek);
        let w = b.take(t0);
        assert_eq!(w, peek);
        assert!(
            w > Duration::from_millis(400) && w <= Duration::from_millis(500),
            "{w:?}"
        );
    }

    #[test]
    fn heartbeat_jitter_stays_in_range_and_spreads() {
        let period = Duration::from_millis(400);
        let samples: Vec<Duration> = (0..1000).map(|_| jittered(period, 0.25)).collect();
        let min = samples.iter().min().copied().unwrap_or_default();
        let max = samples.iter().max().copied().unwrap_or_default();
        // +-25% of 400 ms: 300..=500 ms.
        assert!(min >= Duration::from_millis(300), "min {min:?}");
        assert!(max <= Duration::from_millis(500), "max {max:?}");
        // Uniform over 200 ms: 1000 samples span nearly all of it (a spread under 150 ms
        // has a probability of about 1e-120); without jitter the spread is 0.
        assert!(max - min > Duration::from_millis(150), "{min:?}..{max:?}");
        // Both halves are used (not a one-sided jitter).
        assert!(samples.iter().any(|d| *d < Duration::from_millis(350)));
        assert!(samples.iter().any(|d| *d > Duration::from_millis(450)));
        // No jitter: exactly the period. Jitter beyond 50% is capped at 50%.
        assert_eq!(jittered(period, 0.0), period);
        for _ in 0..1000 {
            let d = jittered(period, 3.0);
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(600));
        }
    }

    #[test]
    fn only_unavailability_makes_the_api_server_unreachable() {
        let st = KubeStats::default();
        let streak = || st.first_failure_unix_ms.load(Ordering::Relaxed);
        for code in [400, 401, 403, 404, 409, 422] {
            st.record_error(code);
            assert_eq!(streak(), 0, "{code} starts no streak");
        }
        st.record_error(0);
        let start = streak();
        assert!(start > 0);
        for code in [429, 500, 503, 0] {
            st.record_error(code);
            assert_eq!(streak(), start, "{code} extends the streak");
        }
        // The server answered: reachable again.
        st.record_error(403);
        assert_eq!(streak(), 0);
        st.record_error(503);
        assert!(streak() > 0);
        st.record_success();
        assert_eq!(streak(), 0);
        // Every failure is counted by code.
        assert_eq!(st.api_errors().get(&403), Some(&2));
        assert_eq!(st.api_errors().get(&0), Some(&2));
        assert_eq!(st.api_errors().values().sum::<u64>(), 13);
    }

    #[test]
    fn bounded_map_evicts_oldest_and_forgets_removed_keys() {
        let mut m: BoundedMap<&str, u32> = BoundedMap::new(3);
        // A removed and re-inserted key is one key: with a stale copy of it left in the
        // order, inserting b and c evicted the live a although only 3 keys were held.
        m.insert("a", 1);
        assert_eq!(m.remove(&"a"), Some(1));
        m.insert("a", 2);
        m.insert("b", 3);
        m.insert("c", 4);
        assert_eq!(
            (m.get(&"a"), m.get(&"b"), m.get(&"c")),
            (Some(&2), Some(&3), Some(&4))
        );
        // Replacing keeps the place; a new key evicts the oldest.
        m.insert("a", 5);
        m.insert("d", 6);
        assert_eq!(m.get(&"a"), None);
        assert_eq!(m.get(&"d"), Some(&6));
        *m.get_or_insert_with("b", || 0) += 10;
        assert_eq!(m.get(&"b"), Some(&13));
        m.get_or_insert_with("e", || 7);
        assert_eq!(m.get(&"b"), None, "b was the oldest");
        // Remove and re-insert many times: the order never grows past the map.
        for i in 0..10_000 {
            m.remove(&"c");
            m.insert("c", i);
            assert!(m.map.len() <= 3 && m.order.len() == m.map.len());
        }
        assert_eq!(m.remove(&"zz"), None);
        assert_eq!(m.order.len(), m.map.len());
    }

    #[test]
    fn override_rejects_unknown_parameters() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt
            .block_on(build_config(Some("http://127.0.0.1:1?bogus=1")))
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown parameter \"bogus\""),
            "{err}"
        );
        let cfg = rt
            .block_on(build_config(Some(
                "http://127.0.0.1:1234?inClusterConfig=false",
            )))
            .unwrap();
        assert_eq!(cfg.cluster_url.to_string(), "http://127.0.0.1:1234/");
    }

    #[test]
    fn node_name_prefers_override() {
        assert_eq!(resolve_node_name(Some("n1")).unwrap(), "n1");
    }
}
