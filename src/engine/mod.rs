//! The rule engine: turns log lines into statuses with upstream NPD's semantics
//! (DESIGN.md section 3). Pure and synchronous: no I/O and no clock of its own, so the
//! daemon, the dry-run, the tests and the benchmarks share it and agree.
//!
//! Matching: the last `bufferSize` messages are joined with `\n` (empty slots included,
//! as upstream's ring buffer does) and every rule's pattern must match up to the end of
//! that text. Rules whose pattern can never match a newline (and do not use `^`) can only
//! match inside the newest line; those are evaluated together by one multi-pattern regex
//! (a [`regex::RegexSet`] without its own prefilter) on the newest line alone, without
//! building the joined text (the *fast path*). The
//! others are matched against the joined text (the *plain path*). A property test proves
//! both give identical results.

pub mod metrics;
pub mod pattern;

use std::collections::VecDeque;
use std::time::Duration;

use jiff::Timestamp;
use regex::Regex;
use regex_automata::{Input, PatternSet};

use crate::config::{ConditionConfig, ConfigError, MonitorConfig, RuleConfig, RuleKind};
use crate::types::{Condition, ConditionStatus, Event, LogLine, Severity, Status, go_quote};
pub use metrics::ProblemMetrics;
pub use pattern::{PatternError, PatternInfo};

/// How rules are evaluated. Both give identical results; `Plain` exists as the reference
/// the fast path is tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchStrategy {
    /// Single-line rules through one RegexSet on the newest line; the rest on the buffer.
    #[default]
    Fast,
    /// Every rule on the joined buffer, as upstream does.
    Plain,
}

struct CompiledRule {
    cfg: RuleConfig,
    anchored: Regex,
    condition_index: Option<usize>,
    /// Timestamps of the most recent matches, at most `min_occurrences` of them.
    occurrences: VecDeque<Timestamp>,
}

/// Per-condition state beyond what the API shows.
#[derive(Debug, Clone)]
struct ConditionState {
    default: ConditionConfig,
    /// When a permanent rule of this condition last matched.
    last_problem: Option<Timestamp>,
}

/// One monitor: the compiled rules of one config file and its conditions.
pub struct Monitor {
    source: String,
    metrics_reporting: bool,
    buffer_size: usize,
    strategy: MatchStrategy,
    rules: Vec<CompiledRule>,
    fast_set: Option<regex_automata::meta::Regex>,
    /// Literals one of which every fast-path match starts with; lines without any skip
    /// `fast_set`. `None` when the rules have no such literals.
    prefilter: Option<regex::bytes::Regex>,
    /// For each rule, its index in `fast_set`, if it takes the fast path.
    fast_index: Vec<Option<usize>>,
    fast_hits: PatternSet,
    has_slow_rules: bool,
    /// The last `buffer_size` messages with their timestamps, oldest first.
    buffer: VecDeque<(String, Timestamp)>,
    joined: String,
    conditions: Vec<Condition>,
    states: Vec<ConditionState>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("source", &self.source)
            .field("rules", &self.rules.len())
            .field("conditions", &self.conditions)
            .finish()
    }
}

/// The `Node condition X is now: S, reason: R, message: "M"` event upstream emits.
pub fn condition_change_event(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    timestamp: Timestamp,
    severity: Severity,
) -> Event {
    Event {
        severity,
        timestamp,
        reason: reason.to_string(),
        message: format!(
            "Node condition {type_} is now: {status}, reason: {reason}, message: {}",
            go_quote(message)
        ),
    }
}

impl Monitor {
    /// Compiles a monitor. `now` becomes the transition time of the initial conditions.
    pub fn new(config: &MonitorConfig, now: Timestamp) -> Result<Monitor, ConfigError> {
        Self::with_strategy(config, now, MatchStrategy::Fast)
    }

    /// Compiles a monitor with an explicit evaluation strategy.
    pub fn with_strategy(
        config: &MonitorConfig,
        now: Timestamp,
        strategy: MatchStrategy,
    ) -> Result<Monitor, ConfigError> {
        let mut rules = Vec::with_capacity(config.rules.len());
        let mut fast_patterns: Vec<&str> = Vec::new();
        let mut fast_index = Vec::with_capacity(config.rules.len());
        let mut has_slow_rules = false;
        for (index, rule) in config.rules.iter().enumerate() {
            let rule_err = |e: PatternError| ConfigError::Rule {
                path: config.path.clone(),
                index,
                reason: rule.reason.clone(),
                message: format!("pattern {:?}: {e}", rule.pattern),
            };
            let info = pattern::analyse(&rule.pattern).map_err(rule_err)?;
            let anchored = pattern::compile_anchored(&rule.pattern).map_err(rule_err)?;
            let single_line =
                config.buffer_size == 1 || (!info.can_match_newline && !info.anchors_buffer_start);
            if strategy == MatchStrategy::Fast && single_line {
                fast_index.push(Some(fast_patterns.len()));
                fast_patterns.push(&rule.pattern);
            } else {
                fast_index.push(None);
                has_slow_rules = true;
            }
            let condition_index = match rule.kind {
                RuleKind::Temporary => None,
                RuleKind::Permanent | RuleKind::Recovery => config
                    .conditions
                    .iter()
                    .position(|c| c.type_ == rule.condition),
            };
            rules.push(CompiledRule {
                cfg: rule.clone(),
                anchored,
                condition_index,
                occurrences: VecDeque::new(),
            });
        }
        let fast_set = if fast_patterns.is_empty() {
            None
        } else {
            Some(
                pattern::compile_set(&fast_patterns).map_err(|e| ConfigError::InvalidValue {
                    path: config.path.clone(),
                    key: "rules".into(),
                    message: format!("the combined single-line rule set does not compile: {e}"),
                })?,
            )
        };
        let prefilter = pattern::literal_prefilter(&fast_patterns);
        let conditions = config
            .conditions
            .iter()
            .map(|c| c.default_condition(now))
            .collect();
        let states = config
            .conditions
            .iter()
            .map(|c| ConditionState {
                default: c.clone(),
                last_problem: None,
            })
            .collect();
        Ok(Monitor {
            source: config.source.clone(),
            metrics_reporting: config.metrics_reporting,
            buffer_size: config.buffer_size,
            strategy,
            fast_hits: PatternSet::new(fast_patterns.len()),
            rules,
            fast_set,
            prefilter,
            fast_index,
            has_slow_rules,
            buffer: VecDeque::with_capacity(config.buffer_size),
            joined: String::new(),
            conditions,
            states,
        })
    }

    /// The monitor's `source`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The current conditions.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// The status to report at start: every condition at its default, no events.
    pub fn initial_status(&self) -> Status {
        self.status(Vec::new())
    }

    /// Sets every rule's counter (and permanent rules' gauges) to 0, as upstream does at
    /// start, when metrics reporting is on; a condition already True (restored from the
    /// Node, or carried over by a reload) with a permanent rule's reason has that gauge
    /// at 1. See [`ProblemMetrics::init_monitor`], which the custom plugin monitor shares.
    pub fn init_metrics(&self, metrics: &mut ProblemMetrics) {
        if !self.metrics_reporting {
            return;
        }
        let rules = || self.rules.iter().map(|r| &r.cfg);
        metrics.init_monitor(
            rules()
                .filter(|r| r.kind != RuleKind::Recovery)
                .map(|r| r.reason.as_str()),
            rules()
                .filter(|r| r.kind == RuleKind::Permanent)
                .map(|r| (r.condition.as_str(), r.reason.as_str())),
            &self.conditions,
        );
    }

    /// Takes over a condition's state from elsewhere (the live Node at start). Unknown
    /// types are ignored. Returns whether the type is one of this monitor's. `now` is the
    /// time of the restore: a restored True condition's `recoverAfter` quiet period counts
    /// from it (the Node does not say when a rule last matched, and its transition time
    /// may be long past, which would recover the condition at the first tick).
    pub fn restore_condition(&mut self, condition: &Condition, now: Timestamp) -> bool {
        let Some(i) = self
            .conditions
            .iter()
            .position(|c| c.type_ == condition.type_)
        else {
            return false;
        };
        self.conditions[i] = condition.clone();
        if condition.status == ConditionStatus::True {
            // Recovery by time counts from the restore; we do not know the last match.
            self.states[i].last_problem = Some(now);
        }
        true
    }

    /// Carries condition state and recent lines over from the monitor this one replaces
    /// (hot reload): conditions that still exist keep their status, and the buffer keeps
    /// its lines so multi-line rules still see them. A condition still at the old
    /// config's default (False with its default reason and message) takes the new
    /// config's default reason and message, so a changed default reaches the Node without
    /// waiting for the condition to flip; its status and transition time stay.
    pub fn adopt_state(&mut self, old: &Monitor) {
        for i in 0..self.conditions.len() {
            let Some(j) = old
                .conditions
                .iter()
                .position(|o| o.type_ == self.conditions[i].type_)
            else {
                continue;
            };
            let carried = &old.conditions[j];
            let old_default = &old.states[j].default;
            let at_old_default = carried.status == ConditionStatus::False
                && carried.reason == old_default.reason
                && carried.message == old_default.message;
            let new_default = &self.states[i].default;
            let mut c = carried.clone();
            if at_old_default {
                c.reason.clone_from(&new_default.reason);
                c.message.clone_from(&new_default.message);
            }
            self.conditions[i] = c;
            self.states[i].last_problem = old.states[j].last_problem;
        }
        for (msg, ts) in old.buffer.iter().rev().take(self.buffer_size).rev() {
            self.buffer.push_back((msg.clone(), *ts));
        }
    }

    /// When the next time-based change (recoverAfter) is due, if any. The daemon sleeps
    /// until then instead of ticking periodically.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.conditions
            .iter()
            .zip(&self.states)
            .filter(|(c, _)| c.status == ConditionStatus::True)
            .filter_map(|(_, s)| Some(add(s.last_problem?, s.default.recover_after?)))
            .min()
    }

    /// Advances the monitor's clock: conditions whose `recoverAfter` has passed return to
    /// False. The transition time is the deadline itself, so the answer does not depend on
    /// how often the clock is advanced.
    pub fn tick(&mut self, now: Timestamp, metrics: &mut ProblemMetrics) -> Vec<Status> {
        let mut out = Vec::new();
        for i in 0..self.conditions.len() {
            let st = &self.states[i];
            let (Some(last), Some(after)) = (st.last_problem, st.default.recover_after) else {
                continue;
            };
            let deadline = add(last, after);
            if self.conditions[i].status != ConditionStatus::True || deadline > now {
                continue;
            }
            let default = st.default.clone();
            self.conditions[i] = default.default_condition(deadline);
            let c = &self.conditions[i];
            let event = condition_change_event(
                &c.type_,
                ConditionStatus::False,
                &default.reason,
                &default.message,
                deadline,
                Severity::Info,
            );
            if self.metrics_reporting {
                metrics.set_gauge(&default.type_, &default.reason, false);
            }
            out.push(self.status(vec![event]));
        }
        out
    }

    /// Feeds one line and returns the statuses it produced, one per matching rule in
    /// rule order (as upstream), preceded by any recoveries due by the line's time.
    pub fn process(&mut self, line: &LogLine, metrics: &mut ProblemMetrics) -> Vec<Status> {
        let mut out = if self.has_recover_after() {
            self.tick(line.timestamp, metrics)
        } else {
            Vec::new()
        };
        self.push(&line.message, line.timestamp);
        let newest_is_single_line = !line.message.contains('\n');
        let use_fast = self.strategy == MatchStrategy::Fast && newest_is_single_line;
        if use_fast && let Some(set) = &self.fast_set {
            self.fast_hits.clear();
            let candidate = self
                .prefilter
                .as_ref()
                .is_none_or(|p| p.is_match(line.message.as_bytes()));
            if candidate {
                set.which_overlapping_matches(&Input::new(&line.message), &mut self.fast_hits);
            }
            let any = !self.fast_hits.is_empty();
            if !any && !self.has_slow_rules {
                return out;
            }
        }
        let need_joined = !use_fast || self.has_slow_rules;
        if need_joined {
            self.rebuild_joined();
        }
        for r in 0..self.rules.len() {
            let start = match (use_fast, self.fast_index[r]) {
                (true, Some(fi)) => {
                    let hit = regex_automata::PatternID::new(fi)
                        .is_ok_and(|id| self.fast_hits.contains(id));
                    if !hit {
                        continue;
                    }
                    None
                }
                _ => match self.rules[r].anchored.find(&self.joined) {
                    Some(m) => Some(m.start()),
                    None => continue,
                },
            };
            let first = match start {
                None => self.buffer.len() - 1,
                Some(st) => self.first_covered_line(st),
            };
            if let Some(status) = self.fire(r, first, metrics) {
                out.push(status);
            }
        }
        out
    }

    fn has_recover_after(&self) -> bool {
        self.states
            .iter()
            .any(|s| s.default.recover_after.is_some())
    }

    fn push(&mut self, message: &str, ts: Timestamp) {
        if self.buffer.len() == self.buffer_size
            && let Some((mut s, _)) = self.buffer.pop_front()
        {
            // Reuse the allocation of the line that falls out.
            s.clear();
            s.push_str(message);
            self.buffer.push_back((s, ts));
            return;
        }
        self.buffer.push_back((message.to_string(), ts));
    }

    /// Upstream's joined text: empty slots first (a ring not yet full joins its empty
    /// strings too), then the messages, separated by `\n`.
    fn rebuild_joined(&mut self) {
        self.joined.clear();
        for _ in self.buffer.len()..self.buffer_size {
            self.joined.push('\n');
        }
        for (i, (m, _)) in self.buffer.iter().enumerate() {
            if i > 0 {
                self.joined.push('\n');
            }
            self.joined.push_str(m);
        }
    }

    /// Index in `buffer` of the first line a match starting at byte `start` of the
    /// joined text covers. A line's span includes its trailing `\n`; a match that starts
    /// in the empty slots covers from the oldest real line.
    fn first_covered_line(&self, start: usize) -> usize {
        let mut offset = self.buffer_size - self.buffer.len();
        let mut first = 0;
        for (i, (m, _)) in self.buffer.iter().enumerate() {
            if offset <= start {
                first = i;
            } else {
                break;
            }
            offset += m.len() + 1;
        }
        first
    }

    fn fire(&mut self, r: usize, first: usize, metrics: &mut ProblemMetrics) -> Option<Status> {
        let timestamp = self.buffer[first].1;
        let rule = &mut self.rules[r];
        if rule.cfg.min_occurrences > 1 {
            let now = self.buffer[self.buffer.len() - 1].1;
            rule.occurrences.push_back(now);
            while rule.occurrences.len() > rule.cfg.min_occurrences as usize {
                rule.occurrences.pop_front();
            }
            let window = rule.cfg.window.unwrap_or(Duration::ZERO);
            let oldest = rule.occurrences.front().copied().unwrap_or(now);
            if rule.occurrences.len() < rule.cfg.min_occurrences as usize
                || add(oldest, window) < now
            {
                return None;
            }
        }
        let mut message = String::new();
        for (i, (m, _)) in self.buffer.iter().skip(first).enumerate() {
            if i > 0 {
                message.push('\n');
            }
            message.push_str(m);
        }
        let rule = &self.rules[r].cfg;
        if !rule.pattern_generated_message_suffix.is_empty() {
            message.push_str("; ");
            message.push_str(&rule.pattern_generated_message_suffix);
        }
        let mut events = Vec::new();
        match (rule.kind, self.rules[r].condition_index) {
            (RuleKind::Temporary, _) => {
                events.push(Event {
                    severity: rule.severity.unwrap_or(Severity::Warn),
                    timestamp,
                    reason: rule.reason.clone(),
                    message,
                });
                if self.metrics_reporting {
                    metrics.increment(&rule.reason, 1);
                }
            }
            (RuleKind::Permanent, Some(ci)) => {
                let c = &mut self.conditions[ci];
                if c.status != ConditionStatus::True || c.reason != rule.reason {
                    c.transition = timestamp;
                    c.message = message.clone();
                    events.push(condition_change_event(
                        &c.type_,
                        ConditionStatus::True,
                        &rule.reason,
                        &message,
                        timestamp,
                        rule.severity.unwrap_or(Severity::Warn),
                    ));
                }
                c.status = ConditionStatus::True;
                c.reason = rule.reason.clone();
                let last = &mut self.states[ci].last_problem;
                *last = Some(last.map_or(timestamp, |l| l.max(timestamp)));
                if self.metrics_reporting {
                    for e in &events {
                        metrics.increment(&e.reason, 1);
                    }
                    metrics.set_gauge(&rule.condition, &rule.reason, true);
                }
            }
            (RuleKind::Recovery, Some(ci)) => {
                let c = &mut self.conditions[ci];
                if c.status == ConditionStatus::False {
                    return None;
                }
                c.status = ConditionStatus::False;
                c.reason = rule.reason.clone();
                c.message = message.clone();
                c.transition = timestamp;
                events.push(condition_change_event(
                    &c.type_,
                    ConditionStatus::False,
                    &rule.reason,
                    &message,
                    timestamp,
                    rule.severity.unwrap_or(Severity::Info),
                ));
                if self.metrics_reporting {
                    metrics.set_gauge(&rule.condition, &rule.reason, false);
                }
            }
            // Config validation guarantees permanent and recovery rules have a declared
            // condition; a rule without one does nothing rather than panic.
            (_, None) => return None,
        }
        Some(self.status(events))
    }

    fn status(&self, events: Vec<Event>) -> Status {
        Status {
            source: self.source.clone(),
            events,
            conditions: self.conditions.clone(),
        }
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    // Saturates instead of failing: a deadline beyond year 9999 is "never".
    let span = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.checked_add(span).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests;
