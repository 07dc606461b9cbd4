//! The problem metrics state upstream keeps: `problem_counter{reason}` and
//! `problem_gauge{type,reason}`. Pure state; the metrics exporter publishes it.

use std::collections::{BTreeMap, HashMap};

use crate::types::{Condition, ConditionStatus};

/// Counter and gauge values, shared by all monitors of a process (as upstream's global
/// problem metrics manager is).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProblemMetrics {
    counters: BTreeMap<String, u64>,
    gauges: BTreeMap<(String, String), bool>,
    last_reason: HashMap<String, String>,
}

impl ProblemMetrics {
    /// Adds `n` to `problem_counter{reason}` (n = 0 creates the series at 0).
    pub fn increment(&mut self, reason: &str, n: u64) {
        match self.counters.get_mut(reason) {
            Some(v) => *v += n,
            None => {
                self.counters.insert(reason.to_string(), n);
            }
        }
    }

    /// Sets `problem_gauge{type,reason}`. A type has one reason at a time: the series of
    /// the type's previous reason is set to 0, as upstream does.
    pub fn set_gauge(&mut self, type_: &str, reason: &str, value: bool) {
        if let Some(last) = self.last_reason.get(type_)
            && last != reason
        {
            self.gauges.insert((type_.to_string(), last.clone()), false);
        }
        self.last_reason
            .insert(type_.to_string(), reason.to_string());
        self.gauges
            .insert((type_.to_string(), reason.to_string()), value);
    }

    /// Creates one monitor's series at start, as upstream does: every reason in
    /// `counters` at 0 (an existing counter keeps its value) and every (type, reason) in
    /// `gauges` (its permanent rules) at 0; then 1 for each condition already True
    /// (restored from the Node, or carried over by a reload) whose (type, reason) is one
    /// of `gauges`. A True condition with a reason no rule of the monitor has (restored,
    /// or carried over from a rule a reload dropped) gets no series: the reload removes
    /// the series of reasons no config declares, and this does not bring it back. The
    /// 1s come last because setting a type's gauge for one reason zeroes its other
    /// reasons. Log and custom plugin monitors share this.
    pub fn init_monitor<'a>(
        &mut self,
        counters: impl IntoIterator<Item = &'a str>,
        gauges: impl IntoIterator<Item = (&'a str, &'a str)>,
        conditions: &[Condition],
    ) {
        for reason in counters {
            self.increment(reason, 0);
        }
        let gauges: Vec<(&str, &str)> = gauges.into_iter().collect();
        for (type_, reason) in &gauges {
            self.set_gauge(type_, reason, false);
        }
        for c in conditions {
            if c.status == ConditionStatus::True
                && gauges.contains(&(c.type_.as_str(), c.reason.as_str()))
            {
                self.set_gauge(&c.type_, &c.reason, true);
            }
        }
    }

    /// Removes the `problem_gauge` series whose (type, reason) no config declares any
    /// more (after a reload), so a dropped rule does not leave a gauge stuck at 1.
    pub fn retain_gauges(&mut self, keep: impl Fn(&str, &str) -> bool) {
        self.gauges.retain(|(t, r), _| keep(t, r));
        self.last_reason
            .retain(|t, r| self.gauges.contains_key(&(t.clone(), r.clone())));
    }

    /// `problem_counter` series, sorted by reason.
    pub fn counters(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counters.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// `problem_gauge` series, sorted by (type, reason).
    pub fn gauges(&self) -> impl Iterator<Item = (&str, &str, bool)> {
        self.gauges
            .iter()
            .map(|((t, r), v)| (t.as_str(), r.as_str(), *v))
    }

    /// The counter for one reason, if it exists.
    pub fn counter(&self, reason: &str) -> Option<u64> {
        self.counters.get(reason).copied()
    }

    /// The gauge for one (type, reason), if it exists.
    pub fn gauge(&self, type_: &str, reason: &str) -> Option<bool> {
        self.gauges
            .get(&(type_.to_string(), reason.to_string()))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_reason_zeroes_previous() {
        let mut m = ProblemMetrics::default();
        m.set_gauge("KernelDeadlock", "DockerHung", true);
        m.set_gauge("KernelDeadlock", "OtherHung", true);
        assert_eq!(m.gauge("KernelDeadlock", "DockerHung"), Some(false));
        assert_eq!(m.gauge("KernelDeadlock", "OtherHung"), Some(true));
        m.increment("OOMKilling", 0);
        m.increment("OOMKilling", 2);
        assert_eq!(m.counter("OOMKilling"), Some(2));
    }
}
