//! Running plugins safely, and the custom plugin monitor's task on tokio.
//!
//! Guarantees (each tested in tests/custom_*.rs with real scripts):
//! - every run is its own process group; on timeout the whole group gets SIGKILL and the
//!   plugin is reaped, so a script that ignores SIGTERM or leaves a background child
//!   behind does not outlive its run. After a normal exit the group is killed as well, so
//!   no `cmd &` child of a plugin keeps running (only a process that left the group with
//!   setsid can escape; that needs cgroups, which we do not manage);
//! - at most [`READ_LIMIT`] bytes of stdout and of stderr are kept; the rest is read and
//!   discarded, so a plugin printing megabytes neither grows our memory nor blocks on a
//!   full pipe;
//! - at most `concurrency` plugins of one monitor run at once, a rule never overlaps
//!   itself (each rule is one sequential loop), and the first round is spread over
//!   `min(interval, FIRST_ROUND_SPREAD)` instead of starting every plugin at once.

use std::collections::BTreeMap;
use std::io;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::config::{ConfigError, Loaded};
use crate::engine::ProblemMetrics;
use crate::types::Status;

use super::config::{CustomPluginConfig, CustomRule, CustomRuleKind, load_custom_config};
use super::monitor::{CustomMonitor, PluginResult, PluginStatus};

/// Bytes of a plugin's stdout (and stderr) kept, as upstream's 4 KiB buffer.
pub const READ_LIMIT: usize = 4096;
/// The first round of a monitor is spread over at most this long, so a monitor with an
/// interval of a day still runs its plugins soon after start.
pub const FIRST_ROUND_SPREAD: Duration = Duration::from_secs(10);
/// How long a timed-out plugin may take to die after its group got SIGKILL before the
/// run is reported without waiting for it (a process in uninterruptible sleep ignores
/// SIGKILL until the kernel releases it).
const REAP_GRACE: Duration = Duration::from_secs(2);
/// How long the pipes are drained after the plugin's process group is gone (only a
/// process that escaped the group can hold them longer).
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Runs one plugin with its timeout and returns what it means.
pub async fn run_plugin(rule: &CustomRule, max_output_length: usize) -> PluginResult {
    let path = rule.path.display().to_string();
    let mut cmd = tokio::process::Command::new(&rule.path);
    cmd.args(&rule.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return unknown(format!("cannot start plugin {path}: {}", spawn_error(&e))),
    };
    // The group id is the child's pid (process_group(0)). `id()` is Some until reaped.
    let Some(pgid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
        return unknown(format!("plugin {path} exited before it could be tracked"));
    };
    let mut guard = GroupGuard { pgid, armed: true };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_task = tokio::spawn(read_bounded(stdout));
    let err_task = tokio::spawn(read_bounded(stderr));

    let (exit, timed_out) = match tokio::time::timeout(rule.timeout, child.wait()).await {
        Ok(r) => {
            // The leader is reaped; kill whatever it left running in its group. The pid
            // cannot be reused for a new group while members of this one remain.
            guard.kill();
            (r, false)
        }
        Err(_) => {
            // Kill the group while the leader is still unreaped (its pid is pinned),
            // then reap it, within a bound: a plugin stuck in the kernel (D state, a
            // hung NFS read) does not die from SIGKILL until the kernel lets it go, and
            // waiting for it would block this rule (and its concurrency permit) for
            // good. Not reaped here, it is killed again and reaped in the background
            // when `child` is dropped (kill_on_drop; tokio reaps orphans).
            guard.kill();
            match tokio::time::timeout(REAP_GRACE, child.wait()).await {
                Ok(r) => (r, true),
                Err(_) => {
                    tracing::warn!(plugin = %path, grace = ?REAP_GRACE, "plugin did not exit after SIGKILL; reported as timed out, it will be reaped when it ends");
                    (Err(io::Error::from(io::ErrorKind::TimedOut)), true)
                }
            }
        }
    };
    guard.armed = false;
    let stdout = drain(out_task).await;
    let stderr = drain(err_task).await;
    if !stderr.is_empty() {
        tracing::debug!(plugin = %path, stderr = %String::from_utf8_lossy(&stderr).trim(), "plugin stderr");
    }
    let output = String::from_utf8_lossy(&stdout).trim().to_string();
    // Only the plugin's own output is cut to max_output_length (as upstream); the
    // messages we write around it must stay readable.
    let cut_output = cut(&output, max_output_length);
    if timed_out {
        // As upstream: this message is not cut, it is ours and must stay readable.
        return PluginResult {
            status: PluginStatus::Unknown,
            message: format!(
                "Timeout when running plugin {path:?} after {:?}. output - {:?}",
                rule.timeout, cut_output
            ),
            timed_out: true,
        };
    }
    let exit = match exit {
        Ok(s) => s,
        Err(e) => return unknown(format!("error waiting for plugin {path}: {e}")),
    };
    use std::os::unix::process::ExitStatusExt;
    let (status, message) = match (exit.code(), exit.signal()) {
        (Some(0), _) => (PluginStatus::Ok, cut_output),
        (Some(1), _) => (PluginStatus::NonOk, cut_output),
        (Some(127), _) if output.is_empty() => (
            PluginStatus::Unknown,
            format!("plugin {path} exited with 127 (command or interpreter not found)"),
        ),
        (Some(_), _) => (PluginStatus::Unknown, cut_output),
        (None, sig) => (
            PluginStatus::Unknown,
            format!(
                "plugin {path} killed by signal {}. output - {cut_output:?}",
                sig.unwrap_or(0)
            ),
        ),
    };
    PluginResult {
        status,
        message,
        timed_out: false,
    }
}

fn unknown(message: String) -> PluginResult {
    PluginResult {
        status: PluginStatus::Unknown,
        message,
        timed_out: false,
    }
}

fn spawn_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => {
            "no such file, or its interpreter (#! line) does not exist".to_string()
        }
        Some(libc::EACCES) => "permission denied (is it executable?)".to_string(),
        Some(libc::ENOEXEC) => "not an executable format (missing #! line?)".to_string(),
        _ => e.to_string(),
    }
}

/// Cuts at `max` bytes as upstream does, backing off to a UTF-8 character boundary.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Kills the process group when dropped while armed (a cancelled run).
struct GroupGuard {
    pgid: i32,
    armed: bool,
}

impl GroupGuard {
    fn kill(&self) {
        // SAFETY: kill(2) has no memory safety preconditions; a negative pid addresses
        // the process group we created for this run.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            self.kill();
        }
    }
}

/// Keeps the first [`READ_LIMIT`] bytes and discards the rest, until EOF.
async fn read_bounded<R: AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = READ_LIMIT - kept.len();
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

async fn drain(task: tokio::task::JoinHandle<Vec<u8>>) -> Vec<u8> {
    let abort = task.abort_handle();
    match tokio::time::timeout(DRAIN_GRACE, task).await {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => Vec::new(),
        Err(_) => {
            // A process outside the group still holds the pipe; stop reading it.
            abort.abort();
            Vec::new()
        }
    }
}

/// Health of one rule, for `/healthz`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleHealth {
    /// The rule's reason.
    pub reason: String,
    /// The plugin path.
    pub path: String,
    /// Result of the last completed run.
    pub last_result: Option<PluginResult>,
    /// When the last run started.
    pub last_run: Option<Timestamp>,
    /// Runs that ended in a timeout, in a row (0 after any run that finished in time).
    pub consecutive_timeouts: u64,
    /// Runs that ended Unknown (timeout, crash, cannot start, other exit code), in a row.
    pub consecutive_unknown: u64,
    /// Completed runs.
    pub runs: u64,
}

impl RuleHealth {
    /// Whether its last `n` or more runs all timed out (a plugin that always hangs):
    /// `/healthz` shows such a rule as `timing-out`.
    pub fn timing_out(&self, n: u64) -> bool {
        self.consecutive_timeouts >= n
    }
}

/// Per-rule health of one custom plugin monitor, shared with the HTTP endpoints.
#[derive(Debug, Default)]
pub struct PluginHealth {
    source: String,
    config_path: String,
    rules: Vec<Mutex<RuleHealth>>,
}

impl PluginHealth {
    fn new(config: &CustomPluginConfig) -> PluginHealth {
        PluginHealth {
            source: config.source.clone(),
            config_path: config.path.display().to_string(),
            rules: config
                .rules
                .iter()
                .map(|r| {
                    Mutex::new(RuleHealth {
                        reason: r.reason.clone(),
                        path: r.path.display().to_string(),
                        ..RuleHealth::default()
                    })
                })
                .collect(),
        }
    }

    /// The monitor's source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The config file.
    pub fn config_path(&self) -> &str {
        &self.config_path
    }

    /// A copy of every rule's health, in rule order.
    pub fn rules(&self) -> Vec<RuleHealth> {
        self.rules
            .iter()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }

    /// Rules whose last `n` or more runs all timed out (a plugin that always hangs).
    pub fn timing_out(&self, n: u64) -> Vec<RuleHealth> {
        self.rules()
            .into_iter()
            .filter(|r| r.timing_out(n))
            .collect()
    }

    fn started(&self, index: usize, at: Timestamp) {
        if let Some(m) = self.rules.get(index) {
            m.lock().unwrap_or_else(|e| e.into_inner()).last_run = Some(at);
        }
    }

    fn finished(&self, index: usize, result: &PluginResult) {
        if let Some(m) = self.rules.get(index) {
            let mut h = m.lock().unwrap_or_else(|e| e.into_inner());
            h.runs += 1;
            h.consecutive_timeouts = if result.timed_out {
                h.consecutive_timeouts + 1
            } else {
                0
            };
            h.consecutive_unknown = if result.status == PluginStatus::Unknown {
                h.consecutive_unknown + 1
            } else {
                0
            };
            h.last_result = Some(result.clone());
        }
    }
}

/// A custom plugin monitor: one config file's rules, run on tokio, reported as Statuses.
#[derive(Debug)]
pub struct CustomPluginMonitor {
    config: CustomPluginConfig,
    monitor: CustomMonitor,
    health: Arc<PluginHealth>,
}

/// Why a custom plugin monitor could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CustomError {
    /// The config file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl CustomPluginMonitor {
    /// Builds the monitor; conditions start at their defaults.
    pub fn new(config: CustomPluginConfig) -> Result<CustomPluginMonitor, CustomError> {
        let monitor = CustomMonitor::new(&config, Timestamp::now());
        let health = Arc::new(PluginHealth::new(&config));
        Ok(CustomPluginMonitor {
            config,
            monitor,
            health,
        })
    }

    /// Loads a config file and builds the monitor, returning the load warnings too.
    pub fn load(path: &std::path::Path) -> Result<Loaded<CustomPluginMonitor>, CustomError> {
        let loaded = load_custom_config(path)?;
        Ok(Loaded {
            config: CustomPluginMonitor::new(loaded.config)?,
            warnings: loaded.warnings,
        })
    }

    /// The config it runs.
    pub fn config(&self) -> &CustomPluginConfig {
        &self.config
    }

    /// The status to report at start, unless `skip_initial_status`.
    pub fn initial_status(&self) -> Option<Status> {
        self.monitor.initial_status()
    }

    /// Per-rule health, shared with `/healthz`.
    pub fn health(&self) -> Arc<PluginHealth> {
        self.health.clone()
    }

    /// The current conditions (defaults, restored or carried over until it runs).
    pub fn conditions(&self) -> &[crate::types::Condition] {
        self.monitor.conditions()
    }

    /// Takes over a condition restored from the live Node at start; see
    /// [`CustomMonitor::restore_condition`]. Returns whether the type is this monitor's.
    pub fn restore_condition(&mut self, condition: &crate::types::Condition) -> bool {
        self.monitor.restore_condition(condition)
    }

    /// Carries condition state over from the stopped monitor this one replaces (hot
    /// reload); see [`CustomMonitor::adopt_state`].
    pub fn adopt_state(&mut self, old: &CustomMonitor) {
        self.monitor.adopt_state(old);
    }

    /// Runs every rule on its interval until `stop` becomes true (or its sender is
    /// dropped) or `tx` is closed. Sends the initial status first (unless
    /// `skip_initial_status`), then one Status per result that produced an event.
    /// Running plugins are killed (their whole group) before it returns. Returns the
    /// monitor's final state, for a reload to carry over.
    pub async fn run(
        self,
        tx: mpsc::Sender<Status>,
        metrics: Arc<Mutex<ProblemMetrics>>,
        mut stop: watch::Receiver<bool>,
    ) -> CustomMonitor {
        let CustomPluginMonitor {
            config,
            mut monitor,
            health,
        } = self;
        monitor.init_metrics(&mut lock(&metrics));
        if let Some(s) = monitor.initial_status()
            && tx.send(s).await.is_err()
        {
            return monitor;
        }
        let sem = Arc::new(Semaphore::new(permits(&config)));
        let n = config.rules.len().max(1) as u32;
        // Bounded: each rule task has at most one result in flight.
        let (res_tx, mut res_rx) = mpsc::channel(config.rules.len().max(1));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, rule) in config.rules.iter().cloned().enumerate() {
            let spread = rule.invoke_interval.min(FIRST_ROUND_SPREAD);
            let offset = spread * i as u32 / n;
            let sem = sem.clone();
            let res_tx = res_tx.clone();
            let health = health.clone();
            let max = config.max_output_length;
            tasks.spawn(async move {
                let mut next = tokio::time::Instant::now() + offset;
                loop {
                    tokio::time::sleep_until(next).await;
                    let Ok(permit) = sem.acquire().await else {
                        return;
                    };
                    let started = tokio::time::Instant::now();
                    health.started(i, Timestamp::now());
                    let result = run_plugin(&rule, max).await;
                    drop(permit);
                    health.finished(i, &result);
                    if res_tx.send((i, result)).await.is_err() {
                        return;
                    }
                    // Next run one interval after this one started; if the run took
                    // longer than the interval, start again right away (never overlap).
                    next = (started + rule.invoke_interval).max(tokio::time::Instant::now());
                }
            });
        }
        drop(res_tx);
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                got = res_rx.recv() => {
                    let Some((i, result)) = got else { break };
                    let status = monitor.apply(i, &result, Timestamp::now(), &mut lock(&metrics));
                    if let Some(s) = status
                        && tx.send(s).await.is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping the tasks drops their in-flight runs; each run's guard kills its group.
        tasks.shutdown().await;
        monitor
    }
}

/// Permits of a monitor's semaphore: `concurrency`, but at most one per rule (each rule
/// runs one plugin at a time, so more permits change nothing). Any value is accepted,
/// as upstream does; `Semaphore::new` panics above `MAX_PERMITS`, which the number of
/// rules never reaches.
fn permits(config: &CustomPluginConfig) -> usize {
    config
        .concurrency
        .min(config.rules.len())
        .clamp(1, Semaphore::MAX_PERMITS)
}

fn lock(m: &Mutex<ProblemMetrics>) -> std::sync::MutexGuard<'_, ProblemMetrics> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One rule's result in a dry run.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunRule {
    /// Index in `rules`.
    pub index: usize,
    /// temporary or permanent.
    pub kind: &'static str,
    /// The rule's reason.
    pub reason: String,
    /// The plugin's result.
    pub result: PluginResult,
    /// How long the run took, in milliseconds.
    pub elapsed_ms: u128,
}

/// Runs each rule once (respecting `concurrency`) and returns the Statuses the monitor
/// would report, the initial status first. For `dry-run` of a custom plugin config.
pub async fn run_once(config: CustomPluginConfig) -> Vec<Status> {
    run_once_detailed(config).await.0
}

/// Same as [`run_once`], with each rule's raw result (for printing).
pub async fn run_once_detailed(config: CustomPluginConfig) -> (Vec<Status>, Vec<DryRunRule>) {
    let mut monitor = CustomMonitor::new(&config, Timestamp::now());
    let mut metrics = ProblemMetrics::default();
    monitor.init_metrics(&mut metrics);
    let mut statuses: Vec<Status> = monitor.initial_status().into_iter().collect();
    let sem = Arc::new(Semaphore::new(permits(&config)));
    let mut set = tokio::task::JoinSet::new();
    for (i, rule) in config.rules.iter().cloned().enumerate() {
        let sem = sem.clone();
        let max = config.max_output_length;
        set.spawn(async move {
            let _permit = sem.acquire().await.ok();
            let t = Instant::now();
            let r = run_plugin(&rule, max).await;
            (i, r, t.elapsed())
        });
    }
    let mut results = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r, d)) = joined {
            results.insert(i, (r, d));
        }
    }
    let mut rules = Vec::new();
    // Apply in rule order so the output is deterministic.
    for (i, (r, d)) in results {
        if let Some(s) = monitor.apply(i, &r, Timestamp::now(), &mut metrics) {
            statuses.push(s);
        }
        let kind = match config.rules[i].kind {
            CustomRuleKind::Temporary => "temporary",
            CustomRuleKind::Permanent => "permanent",
        };
        rules.push(DryRunRule {
            index: i,
            kind,
            reason: config.rules[i].reason.clone(),
            result: r,
            elapsed_ms: d.as_millis(),
        });
    }
    (statuses, rules)
}

#[cfg(test)]
mod tests {
    use super::{Semaphore, cut, permits};

    #[test]
    fn timing_out_counts_consecutive_timeouts() {
        let mut r = super::RuleHealth::default();
        assert!(r.timing_out(0));
        assert!(!r.timing_out(1));
        r.consecutive_timeouts = 3;
        assert!(r.timing_out(3));
        assert!(!r.timing_out(4));
    }

    #[test]
    fn permits_are_at_most_one_per_rule() {
        let l = crate::custom::config::parse_custom_config(
            std::path::Path::new("c.json"),
            r#"{"plugin":"custom","pluginConfig":{"concurrency":9223372036854775807},
                "rules":[{"type":"temporary","reason":"A","path":"/bin/true"},
                         {"type":"temporary","reason":"B","path":"/bin/true"}]}"#,
        )
        .unwrap();
        let mut c = l.config;
        assert_eq!(permits(&c), 2);
        c.concurrency = 1;
        assert_eq!(permits(&c), 1);
        c.rules.clear();
        assert_eq!(permits(&c), 1);
        c.concurrency = usize::MAX;
        assert_eq!(permits(&c), 1);
        // Never above what the semaphore takes.
        assert!(permits(&c) <= Semaphore::MAX_PERMITS);
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("abcdef", 3), "abc");
        assert_eq!(cut("ab", 3), "ab");
        assert_eq!(cut("aé", 2), "a");
    }
}
