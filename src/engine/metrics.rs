//! The problem metrics state upstream keeps: `problem_counter{reason}` and
//! `problem_gauge{type,reason}`. Pure state; the metrics exporter publishes it.

use std::collections::{BTreeMap, HashMap};

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
