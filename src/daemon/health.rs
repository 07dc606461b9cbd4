//! /healthz, /conditions and /metrics.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::StatusCode;
use serde_json::json;

use super::state::Shared;
use crate::admin::Handler;
use crate::source::unix_ms_now;

/// Consecutive timeouts after which a plugin is reported as timing out.
pub const PLUGIN_TIMEOUTS_DEGRADED: u64 = 3;

/// /healthz and /conditions.
pub struct AdminHandler(pub Arc<Shared>);
/// /metrics.
pub struct MetricsHandler(pub Arc<Shared>);

impl Handler for AdminHandler {
    fn get(&self, path: &str) -> Option<(StatusCode, &'static str, String)> {
        match path {
            "/healthz" => {
                let (healthy, body) = health(&self.0);
                let code = if healthy {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                Some((code, "application/json", body.to_string() + "\n"))
            }
            "/conditions" => Some((
                StatusCode::OK,
                "application/json",
                conditions_json(&self.0) + "\n",
            )),
            _ => None,
        }
    }
}

impl Handler for MetricsHandler {
    fn get(&self, path: &str) -> Option<(StatusCode, &'static str, String)> {
        match path {
            "/metrics" => Some((
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                render_metrics(&self.0),
            )),
            _ => None,
        }
    }
}

fn ms_to_rfc3339(ms: u64) -> Option<String> {
    if ms == 0 {
        return None;
    }
    jiff::Timestamp::from_millisecond(ms as i64)
        .ok()
        .map(|t| t.to_string())
}

/// How long a source has been stalled, when that is past --source-stall-timeout.
fn stalled(
    shared: &Shared,
    stats: &crate::source::SourceStats,
    now_ms: u64,
) -> Option<std::time::Duration> {
    let limit = shared.source_stall_timeout;
    stats
        .stalled_for(now_ms)
        .filter(|d| !limit.is_zero() && *d >= limit)
}

/// Evaluates health: (healthy, JSON body naming every source and the reason).
pub fn health(shared: &Shared) -> (bool, serde_json::Value) {
    if !shared.is_ready() {
        return (
            false,
            json!({"status": "starting", "reason": "monitors are starting"}),
        );
    }
    let mut healthy = true;
    let mut sources = Vec::new();
    let now_ms = unix_ms_now();
    for m in shared.monitors() {
        let exit = m.exit_error.lock().ok().and_then(|g| g.clone());
        let dead = m.stats.dead();
        let stalled = stalled(shared, &m.stats, now_ms);
        let (state, reason) = if let Some(e) = exit {
            healthy = false;
            ("dead", Some(e))
        } else if let Some(d) = dead {
            if crate::source::is_waiting_reason(&d) {
                ("waiting", Some(d))
            } else {
                healthy = false;
                ("failing", Some(d))
            }
        } else if let Some(d) = stalled {
            healthy = false;
            (
                "stalled",
                Some(format!(
                    "no read and no lines handed over for {}s although the source is not waiting for input (a read blocked on the log's file system, or a monitor that stopped consuming); limit --source-stall-timeout={}s",
                    d.as_secs(),
                    shared.source_stall_timeout.as_secs()
                )),
            )
        } else {
            ("ok", None)
        };
        sources.push(json!({
            "config": m.key,
            "source": m.source,
            "plugin": m.plugin,
            "log": m.log_path,
            "state": state,
            "reason": reason,
            "linesRead": m.stats.lines_read.load(Ordering::Relaxed),
            "restarts": m.stats.restarts.load(Ordering::Relaxed),
            "recordsLost": m.stats.records_lost.load(Ordering::Relaxed),
            "lastRead": ms_to_rfc3339(m.stats.last_read_unix_ms.load(Ordering::Relaxed)),
        }));
    }
    // A plugin that keeps timing out is shown (and makes the status "degraded") but does
    // not fail the liveness probe: restarting the agent cannot fix a hanging check.
    let mut degraded = false;
    let mut plugins = Vec::new();
    for p in shared.plugins() {
        for r in p.rules() {
            let timing_out = r.timing_out(PLUGIN_TIMEOUTS_DEGRADED);
            degraded |= timing_out;
            plugins.push(json!({
                "config": p.config_path(),
                "source": p.source(),
                "reason": r.reason,
                "path": r.path,
                "state": if timing_out { "timing-out" } else if r.runs == 0 { "pending" } else { "ok" },
                "runs": r.runs,
                "consecutiveTimeouts": r.consecutive_timeouts,
                "lastStatus": r.last_result.as_ref().map(|x| format!("{:?}", x.status)),
                "lastMessage": r.last_result.as_ref().map(|x| x.message.clone()),
            }));
        }
    }
    let api = super::kube_health(shared, unix_ms_now());
    if let Some((ok, _)) = &api {
        healthy &= *ok;
    }
    let body = json!({
        "status": if !healthy { "unhealthy" } else if degraded { "degraded" } else { "ok" },
        "sources": sources,
        "plugins": plugins,
        "apiserver": api.map(|(_, v)| v),
    });
    (healthy, body)
}

fn conditions_json(shared: &Shared) -> String {
    let mut out = Vec::new();
    for (_, (source, conds)) in shared.conditions() {
        for c in conds {
            out.push(json!({
                "source": source,
                "type": c.type_,
                "status": c.status.as_str(),
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": c.transition.to_string(),
            }));
        }
    }
    serde_json::Value::Array(out).to_string()
}

/// (name, type, help, getter) of a per-source metric.
type SourceMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::source::SourceStats) -> u64,
);

/// Escapes a Prometheus label value.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders every metric in Prometheus text format 0.0.4.
pub fn render_metrics(shared: &Shared) -> String {
    let mut s = String::with_capacity(4096);
    // Upstream's names and help texts, byte for byte: dashboards and alerts use them.
    s.push_str(
        "# HELP problem_counter Number of times a specific type of problem have occurred.\n",
    );
    s.push_str("# TYPE problem_counter counter\n");
    let (counters, gauges) = shared.with_metrics(|pm| {
        (
            pm.counters()
                .map(|(r, v)| (r.to_string(), v))
                .collect::<Vec<_>>(),
            pm.gauges()
                .map(|(t, r, v)| (t.to_string(), r.to_string(), v))
                .collect::<Vec<_>>(),
        )
    });
    for (reason, v) in counters {
        let _ = writeln!(
            s,
            "problem_counter{{reason=\"{}\"}} {v}",
            escape_label(&reason)
        );
    }
    s.push_str(
        "# HELP problem_gauge Whether a specific type of problem is affecting the node or not.\n",
    );
    s.push_str("# TYPE problem_gauge gauge\n");
    for (t, r, v) in gauges {
        let _ = writeln!(
            s,
            "problem_gauge{{reason=\"{}\",type=\"{}\"}} {}",
            escape_label(&r),
            escape_label(&t),
            u8::from(v)
        );
    }

    let monitors = shared.monitors();
    let per_source: [SourceMetric; 7] = [
        (
            "npd_source_lines_read_total",
            "counter",
            "Lines read by a source and handed to its monitor.",
            |s| s.lines_read.load(Ordering::Relaxed),
        ),
        (
            "npd_source_lines_skipped_total",
            "counter",
            "Lines dropped by lookback, delay or skipList.",
            |s| s.lines_skipped.load(Ordering::Relaxed),
        ),
        (
            "npd_source_lines_unparsed_total",
            "counter",
            "Lines a source could not parse.",
            |s| s.lines_unparsed.load(Ordering::Relaxed),
        ),
        (
            "npd_source_lines_dropped_total",
            "counter",
            "Of the lines read, those not handed to the monitor because the source was stopping (shutdown or reload) while the monitor's queue was full.",
            |s| s.lines_dropped.load(Ordering::Relaxed),
        ),
        (
            "npd_source_lines_truncated_total",
            "counter",
            "Lines cut to the length limit.",
            |s| s.lines_truncated.load(Ordering::Relaxed),
        ),
        (
            "npd_kmsg_records_lost_total",
            "counter",
            "Kernel records overwritten before they could be read.",
            |s| s.records_lost.load(Ordering::Relaxed),
        ),
        (
            "npd_source_restarts_total",
            "counter",
            "Times a source reopened its log after an error.",
            |s| s.restarts.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, get) in per_source {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for m in &monitors {
            if name.starts_with("npd_kmsg") && m.plugin != "kmsg" {
                continue;
            }
            let _ = writeln!(
                s,
                "{name}{{config=\"{}\",plugin=\"{}\",source=\"{}\"}} {}",
                escape_label(&m.key),
                m.plugin,
                escape_label(&m.source),
                get(&m.stats)
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP npd_source_up Whether a source is reading (1) or dead, failing or stalled (0).\n# TYPE npd_source_up gauge"
    );
    let now_ms = unix_ms_now();
    for m in &monitors {
        let up = m.alive.load(Ordering::Relaxed)
            && stalled(shared, &m.stats, now_ms).is_none()
            && m.stats
                .dead()
                .is_none_or(|d| crate::source::is_waiting_reason(&d));
        let _ = writeln!(
            s,
            "npd_source_up{{config=\"{}\",plugin=\"{}\",source=\"{}\"}} {}",
            escape_label(&m.key),
            m.plugin,
            escape_label(&m.source),
            u8::from(up)
        );
    }
    let _ = writeln!(
        s,
        "# HELP npd_config_reloads_total Config reloads by result.\n# TYPE npd_config_reloads_total counter"
    );
    let _ = writeln!(
        s,
        "npd_config_reloads_total{{result=\"success\"}} {}",
        shared.reloads_ok.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        s,
        "npd_config_reloads_total{{result=\"failure\"}} {}",
        shared.reloads_failed.load(Ordering::Relaxed)
    );
    super::kube_metrics(shared, &mut s);
    let _ = writeln!(
        s,
        "# HELP npd_build_info Build information.\n# TYPE npd_build_info gauge\nnpd_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    s
}
