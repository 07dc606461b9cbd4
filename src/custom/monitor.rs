//! The pure state machine of a custom plugin monitor: plugin results in, Statuses out.
//! No processes, no clock of its own (the caller passes `now`), so it is tested directly.
//!
//! Semantics are upstream's `generateStatus`, with one addition: several permanent rules
//! may share a condition (upstream #566). Upstream applies each result as it arrives, so
//! one rule's OK sets the condition False right after another rule's NonOK set it True,
//! and the condition flips on every round. Here the condition is driven by the *latest
//! result of every rule of that condition*, combined with the precedence
//! **NonOK > Unknown > OK**:
//! - True if any of its rules' latest result is NonOK (the first such rule in file order
//!   gives reason and message);
//! - else Unknown if any is Unknown (first such rule's message);
//! - else False (default reason and message) once every rule of the condition has
//!   reported and all report OK. While some of its rules have not reported yet (the first
//!   round after start or reload is staggered), OK results alone change nothing: a
//!   condition restored from the Node or carried over by a reload keeps its state until
//!   its rules have spoken, instead of flapping to False and back.
//!
//! With a single rule per condition this is exactly upstream's behaviour.

use jiff::Timestamp;

use crate::config::ConditionConfig;
use crate::engine::{ProblemMetrics, condition_change_event};
use crate::types::{Condition, ConditionStatus, Event, Severity, Status};

use super::config::{CustomPluginConfig, CustomRuleKind};

/// What a plugin run means (upstream's OK / NonOK / Unknown). Ordered by precedence
/// when several rules drive one condition: `Ok < Unknown < NonOk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum PluginStatus {
    /// Exit code 0: no problem.
    Ok,
    /// Any other exit code, a timeout, a crash or a plugin that cannot start.
    Unknown,
    /// Exit code 1: the problem is present.
    NonOk,
}

/// The outcome of one plugin run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginResult {
    /// OK, NonOK or Unknown.
    pub status: PluginStatus,
    /// Trimmed stdout cut to `max_output_length`, or why the run failed.
    pub message: String,
    /// The run was stopped by its timeout.
    pub timed_out: bool,
}

#[derive(Debug, Clone)]
struct RuleInfo {
    kind: CustomRuleKind,
    condition: String,
    reason: String,
}

/// Upstream's custom plugin monitor state: the conditions and the latest result of every
/// permanent rule.
#[derive(Debug, Clone)]
pub struct CustomMonitor {
    source: String,
    defaults: Vec<ConditionConfig>,
    conditions: Vec<Condition>,
    rules: Vec<RuleInfo>,
    latest: Vec<Option<PluginResult>>,
    message_change_update: bool,
    metrics_reporting: bool,
    skip_initial_status: bool,
}

impl CustomMonitor {
    /// Every condition starts False with its default reason and message.
    pub fn new(config: &CustomPluginConfig, now: Timestamp) -> CustomMonitor {
        let conditions = config
            .conditions
            .iter()
            .map(|c| c.default_condition(now))
            .collect();
        CustomMonitor {
            source: config.source.clone(),
            defaults: config.conditions.clone(),
            conditions,
            rules: config
                .rules
                .iter()
                .map(|r| RuleInfo {
                    kind: r.kind,
                    condition: r.condition.clone(),
                    reason: r.reason.clone(),
                })
                .collect(),
            latest: vec![None; config.rules.len()],
            message_change_update: config.enable_message_change_based_condition_update,
            metrics_reporting: config.metrics_reporting,
            skip_initial_status: config.skip_initial_status,
        }
    }

    /// The monitor's `source`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Current conditions.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// The status to report at start (all conditions at their defaults), unless
    /// `skip_initial_status` is set.
    pub fn initial_status(&self) -> Option<Status> {
        (!self.skip_initial_status).then(|| self.status(Vec::new()))
    }

    /// Creates every rule's counter at 0 and every permanent rule's gauge at false, as
    /// upstream does at start, when metrics reporting is on. A condition that is already
    /// True (restored from the Node, or carried over by a reload) has its gauge at 1.
    /// See [`ProblemMetrics::init_monitor`], which log monitors share.
    pub fn init_metrics(&self, metrics: &mut ProblemMetrics) {
        if !self.metrics_reporting {
            return;
        }
        metrics.init_monitor(
            self.rules.iter().map(|r| r.reason.as_str()),
            self.rules
                .iter()
                .filter(|r| r.kind == CustomRuleKind::Permanent)
                .map(|r| (r.condition.as_str(), r.reason.as_str())),
            &self.conditions,
        );
    }

    /// Whether (type, reason) is one of [`crate::custom::CustomPluginConfig::gauge_series`].
    fn declares_gauge(&self, type_: &str, reason: &str) -> bool {
        self.rules.iter().any(|r| {
            r.kind == CustomRuleKind::Permanent && r.condition == type_ && r.reason == reason
        }) || self
            .defaults
            .iter()
            .any(|d| d.type_ == type_ && d.reason == reason)
    }

    /// Takes over a condition's state from the live Node at start (`--restore-conditions`):
    /// status, reason, message and transition time are kept until this monitor's rules
    /// report otherwise. Types this monitor does not declare are ignored. Returns whether
    /// the type is one of this monitor's.
    pub fn restore_condition(&mut self, condition: &Condition) -> bool {
        let Some(c) = self
            .conditions
            .iter_mut()
            .find(|c| c.type_ == condition.type_)
        else {
            return false;
        };
        *c = condition.clone();
        true
    }

    /// Carries condition state over from the monitor this one replaces (hot reload):
    /// every condition type both declare keeps its current status, reason, message and
    /// transition time; types only the new config declares start at their defaults.
    /// A condition still at the old config's default (False with its default reason and
    /// message) takes the new config's default reason and message, so a changed default
    /// reaches the Node at once. Plugin results are not carried over (the rules may have
    /// changed): the new rules' first results decide, by the usual precedence.
    pub fn adopt_state(&mut self, old: &CustomMonitor) {
        for c in &mut self.conditions {
            let Some(o) = old.conditions.iter().find(|o| o.type_ == c.type_) else {
                continue;
            };
            let at_old_default = o.status == ConditionStatus::False
                && old
                    .defaults
                    .iter()
                    .any(|d| d.type_ == o.type_ && d.reason == o.reason && d.message == o.message);
            let (reason, message) = (c.reason.clone(), c.message.clone());
            *c = o.clone();
            if at_old_default {
                // `c` was built at the new default: keep its reason and message.
                c.reason = reason;
                c.message = message;
            }
        }
    }

    /// Applies one plugin result of rule `index`. Returns the Status to report when it
    /// produced an event (upstream reports after every result; a Status without events
    /// carries nothing new, so it is not sent).
    pub fn apply(
        &mut self,
        index: usize,
        result: &PluginResult,
        now: Timestamp,
        metrics: &mut ProblemMetrics,
    ) -> Option<Status> {
        let rule = self.rules.get(index)?.clone();
        let mut active = Vec::new();
        let mut inactive = Vec::new();
        match rule.kind {
            CustomRuleKind::Temporary => {
                // Upstream: `ExitStatus >= NonOK`, so Unknown (a timeout, a crash) also
                // yields the Warning event.
                if result.status != PluginStatus::Ok {
                    active.push(Event {
                        severity: Severity::Warn,
                        timestamp: now,
                        reason: rule.reason.clone(),
                        message: result.message.clone(),
                    });
                }
            }
            CustomRuleKind::Permanent => {
                self.latest[index] = Some(result.clone());
                if let Some(ev) = self.update_condition(&rule.condition, now) {
                    if ev.severity == Severity::Warn {
                        active.push(ev);
                    } else {
                        inactive.push(ev);
                    }
                }
            }
        }
        if self.metrics_reporting {
            for ev in &active {
                metrics.increment(&ev.reason, 1);
            }
            // As upstream, every condition's gauge; but only under a reason this config
            // declares: a condition restored with a reason no rule has (renamed since)
            // gets no series, as at start, and the reload does not have to chase it.
            for c in &self.conditions {
                if self.declares_gauge(&c.type_, &c.reason) {
                    metrics.set_gauge(&c.type_, &c.reason, c.status == ConditionStatus::True);
                }
            }
        }
        if active.is_empty() && inactive.is_empty() {
            return None;
        }
        active.extend(inactive);
        Some(self.status(active))
    }

    /// The combined result of all permanent rules of `condition` (see the module docs):
    /// (status, reason of the deciding rule, message). None while nothing decides: no
    /// rule has reported, or those that have are OK and others have not reported yet.
    fn combined(&self, condition: &str) -> Option<(PluginStatus, String, String)> {
        let mut best: Option<(PluginStatus, String, String)> = None;
        let mut pending = false;
        for (rule, latest) in self.rules.iter().zip(&self.latest) {
            if rule.kind != CustomRuleKind::Permanent || rule.condition != condition {
                continue;
            }
            let Some(r) = latest else {
                pending = true;
                continue;
            };
            // Strictly greater: among equals the first rule in file order decides.
            if best.as_ref().is_none_or(|(s, _, _)| r.status > *s) {
                best = Some((r.status, rule.reason.clone(), r.message.clone()));
            }
        }
        if pending
            && best
                .as_ref()
                .is_some_and(|(s, _, _)| *s == PluginStatus::Ok)
        {
            return None;
        }
        best
    }

    /// Upstream's five scenarios, applied to the combined result.
    fn update_condition(&mut self, type_: &str, now: Timestamp) -> Option<Event> {
        let (result, rule_reason, result_message) = self.combined(type_)?;
        let (def_reason, def_message) = self
            .defaults
            .iter()
            .find(|d| d.type_ == type_)
            .map(|d| (d.reason.clone(), d.message.clone()))
            .unwrap_or_default();
        let message_change_update = self.message_change_update;
        let cond = self.conditions.iter_mut().find(|c| c.type_ == type_)?;
        let status = match result {
            PluginStatus::Ok => ConditionStatus::False,
            PluginStatus::NonOk => ConditionStatus::True,
            PluginStatus::Unknown => ConditionStatus::Unknown,
        };
        let back_to_default = |status: ConditionStatus| {
            // When Unknown, the plugin's message is what helps debugging.
            if status == ConditionStatus::False {
                (def_reason.clone(), def_message.clone())
            } else {
                (def_reason.clone(), result_message.clone())
            }
        };
        let (reason, message) =
            if cond.status == ConditionStatus::True && status != ConditionStatus::True {
                back_to_default(status)
            } else if cond.status != ConditionStatus::True && status == ConditionStatus::True {
                (rule_reason, result_message)
            } else if cond.status != status {
                back_to_default(status)
            } else if status == ConditionStatus::True
                && (cond.reason != rule_reason
                    || (message_change_update && cond.message != result_message))
            {
                (rule_reason, result_message)
            } else {
                return None;
            };
        cond.status = status;
        cond.transition = now;
        cond.reason = reason.clone();
        cond.message = message.clone();
        let severity = if status == ConditionStatus::True {
            Severity::Warn
        } else {
            Severity::Info
        };
        Some(condition_change_event(
            type_, status, &reason, &message, now, severity,
        ))
    }

    fn status(&self, events: Vec<Event>) -> Status {
        Status {
            source: self.source.clone(),
            events,
            conditions: self.conditions.clone(),
        }
    }
}
