//! Monitor configuration files: upstream NPD's system-log-monitor JSON format, plus our
//! opt-in extensions (DESIGN.md sections 3 and 4).
//!
//! Loading is two steps. [`load_monitor_config`] reads and parses a file, warns about keys
//! upstream does not have, fills upstream's defaults and checks everything that can be
//! checked without compiling patterns; [`crate::engine::Monitor::new`] compiles the
//! patterns. Both report errors that name the file, the rule index and the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::duration::{DurationError, parse_go_duration};
use crate::types::Severity;

/// Upstream's default `bufferSize`.
pub const DEFAULT_BUFFER_SIZE: usize = 10;
/// Default log path of the kmsg plugin.
pub const DEFAULT_KMSG_PATH: &str = "/dev/kmsg";
/// Default log path of the journald plugin (falls back to [`FALLBACK_JOURNAL_PATH`]).
pub const DEFAULT_JOURNAL_PATH: &str = "/var/log/journal";
/// Volatile journal directory used when the persistent one does not exist.
pub const FALLBACK_JOURNAL_PATH: &str = "/run/log/journal";

/// Errors that stop a monitor config from loading. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{path}:{line}:{column}: invalid JSON: {message}")]
    Json {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's message.
        message: String,
    },
    /// A key has a value of the wrong type.
    #[error("{path}: key {key}: {message}")]
    WrongType {
        /// The config file.
        path: PathBuf,
        /// JSON path of the key, e.g. `rules[3].pattern`.
        key: String,
        /// What was wrong.
        message: String,
    },
    /// `plugin` is not one this agent runs.
    #[error("{path}: unknown plugin {plugin:?} (expected one of: {expected})")]
    UnknownPlugin {
        /// The config file.
        path: PathBuf,
        /// The value given.
        plugin: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// A required key is missing.
    #[error("{path}: missing required key {key}{hint}")]
    MissingKey {
        /// The config file.
        path: PathBuf,
        /// JSON path of the missing key.
        key: String,
        /// Extra explanation, starting with "; " when present.
        hint: String,
    },
    /// A duration key does not hold a Go duration.
    #[error("{path}: key {key}: {source}")]
    Duration {
        /// The config file.
        path: PathBuf,
        /// JSON path of the key.
        key: String,
        /// The parse error.
        source: DurationError,
    },
    /// A value that cannot work (bufferSize 0, a bad rule type, ...).
    #[error("{path}: key {key}: {message}")]
    InvalidValue {
        /// The config file.
        path: PathBuf,
        /// JSON path of the key.
        key: String,
        /// Why the value cannot work.
        message: String,
    },
    /// A rule that cannot work.
    #[error("{path}: rule {index} (reason {reason:?}): {message}")]
    Rule {
        /// The config file.
        path: PathBuf,
        /// 0-based index in `rules`.
        index: usize,
        /// The rule's reason, to find it in the file.
        reason: String,
        /// Why the rule cannot work.
        message: String,
    },
}

/// A warning about a config that still loads (an unknown key, a dubious pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The config file.
    pub path: PathBuf,
    /// The warning, naming the key or rule.
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// Which log a monitor reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    /// The kernel ring buffer, `/dev/kmsg`.
    Kmsg,
    /// The systemd journal.
    Journald,
    /// A plain text log file.
    Filelog,
}

impl Plugin {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Plugin::Kmsg => "kmsg",
            Plugin::Journald => "journald",
            Plugin::Filelog => "filelog",
        }
    }
}

/// What a rule does when its pattern matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// Emits an event (upstream `temporary`).
    Temporary,
    /// Sets its condition True (upstream `permanent`).
    Permanent,
    /// Sets its condition back to False (our extension).
    Recovery,
}

/// A default node condition (`conditions[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionConfig {
    /// Condition type, e.g. `KernelDeadlock`.
    pub type_: String,
    /// Reason while the condition is False.
    pub reason: String,
    /// Message while the condition is False.
    pub message: String,
    /// Extension: return to False when no permanent rule of this condition matched for
    /// this long.
    pub recover_after: Option<Duration>,
}

/// One rule (`rules[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleConfig {
    /// temporary, permanent or recovery.
    pub kind: RuleKind,
    /// Condition type for permanent and recovery rules.
    pub condition: String,
    /// CamelCase reason.
    pub reason: String,
    /// Regular expression (Go syntax subset), matched up to the end of the buffer.
    pub pattern: String,
    /// Appended to the message as `"; " + suffix` when not empty.
    pub pattern_generated_message_suffix: String,
    /// Extension: severity of the event this rule yields (default: upstream's).
    pub severity: Option<Severity>,
    /// Extension: the rule fires only once it matched this many times within `window`.
    pub min_occurrences: u32,
    /// Extension: the window for `min_occurrences`.
    pub window: Option<Duration>,
}

/// One monitor config file, validated, with upstream's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Where it was loaded from (for messages).
    pub path: PathBuf,
    /// Which log to read.
    pub plugin: Plugin,
    /// Plugin settings (filelog: timestamp, message, timestampFormat; journald: source).
    pub plugin_config: BTreeMap<String, String>,
    /// The log to read (defaults: /dev/kmsg, /var/log/journal).
    pub log_path: String,
    /// Lines older than now - lookback at start are skipped ("0": only new lines).
    pub lookback: Duration,
    /// Lines before boot time + delay are skipped.
    pub delay: Duration,
    /// Lines containing any of these strings are skipped.
    pub skip_list: Vec<String>,
    /// How many recent messages a pattern may span.
    pub buffer_size: usize,
    /// Event source component.
    pub source: String,
    /// Whether problem_counter / problem_gauge are kept for this monitor.
    pub metrics_reporting: bool,
    /// Default conditions.
    pub conditions: Vec<ConditionConfig>,
    /// Rules in file order.
    pub rules: Vec<RuleConfig>,
}

impl MonitorConfig {
    /// Every `problem_gauge` (type, reason) series a monitor of this config may set from
    /// its rules and defaults, sorted and without duplicates: permanent and recovery
    /// rules and the conditions' default reasons. Empty when metrics reporting is off.
    /// [`crate::engine::Monitor::gauge_series`] gives the same for a built monitor.
    pub fn gauge_series(&self) -> Vec<(&str, &str)> {
        if !self.metrics_reporting {
            return Vec::new();
        }
        let mut out: Vec<(&str, &str)> = self
            .rules
            .iter()
            .filter(|r| r.kind != RuleKind::Temporary)
            .map(|r| (r.condition.as_str(), r.reason.as_str()))
            .chain(
                self.conditions
                    .iter()
                    .map(|c| (c.type_.as_str(), c.reason.as_str())),
            )
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The result of loading one file: the config and the warnings it produced.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The validated config.
    pub config: T,
    /// Warnings (unknown keys and the like).
    pub warnings: Vec<ConfigWarning>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMonitorConfig {
    plugin: Option<String>,
    plugin_config: Option<BTreeMap<String, String>>,
    log_path: Option<String>,
    lookback: Option<String>,
    delay: Option<String>,
    skip_list: Option<Vec<String>>,
    buffer_size: Option<i64>,
    source: Option<String>,
    metrics_reporting: Option<bool>,
    conditions: Option<Vec<RawCondition>>,
    rules: Option<Vec<RawRule>>,
}

/// A `conditions[]` entry as written; shared by the log and custom plugin configs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawCondition {
    #[serde(rename = "type")]
    type_: Option<String>,
    reason: Option<String>,
    message: Option<String>,
    recover_after: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    #[serde(rename = "type")]
    type_: Option<String>,
    condition: Option<String>,
    reason: Option<String>,
    pattern: Option<String>,
    pattern_generated_message_suffix: Option<String>,
    severity: Option<String>,
    min_occurrences: Option<i64>,
    window: Option<String>,
}

const TOP_KEYS: &[&str] = &[
    "plugin",
    "pluginConfig",
    "logPath",
    "lookback",
    "delay",
    "skipList",
    "bufferSize",
    "source",
    "metricsReporting",
    "conditions",
    "rules",
];
// `status` and `transition` exist on upstream's condition type and are ignored there too.
const CONDITION_KEYS: &[&str] = &[
    "type",
    "reason",
    "message",
    "recoverAfter",
    "status",
    "transition",
];
const RULE_KEYS: &[&str] = &[
    "type",
    "condition",
    "reason",
    "pattern",
    "patternGeneratedMessageSuffix",
    "severity",
    "minOccurrences",
    "window",
];

/// Validates `conditions[]`: a type is required and declared once. With
/// `recover_after`, `recoverAfter`, when given, is a positive Go duration; without it
/// (custom plugin configs, whose loader warns about the key as unknown) it is not read
/// at all, so an unknown key's value can never fail the load.
pub(crate) fn parse_conditions(
    path: &Path,
    raw: Vec<RawCondition>,
    recover_after: bool,
) -> Result<Vec<ConditionConfig>, ConfigError> {
    let mut conditions: Vec<ConditionConfig> = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("conditions[{i}].{k}");
        let type_ = c
            .type_
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConfigError::MissingKey {
                path: path.to_path_buf(),
                key: key("type"),
                hint: String::new(),
            })?;
        if conditions.iter().any(|x| x.type_ == type_) {
            return Err(ConfigError::InvalidValue {
                path: path.to_path_buf(),
                key: key("type"),
                message: format!("condition {type_:?} is declared twice"),
            });
        }
        let given = c.recover_after.as_deref().filter(|_| recover_after);
        let recover_after = match given {
            None | Some("") => None,
            Some(v) => {
                let d = duration_key(path, &key("recoverAfter"), v)?;
                if d.is_zero() {
                    return Err(ConfigError::InvalidValue {
                        path: path.to_path_buf(),
                        key: key("recoverAfter"),
                        message: "must be greater than 0 (omit it to never recover by time)".into(),
                    });
                }
                Some(d)
            }
        };
        conditions.push(ConditionConfig {
            type_,
            reason: c.reason.unwrap_or_default(),
            message: c.message.unwrap_or_default(),
            recover_after,
        });
    }
    Ok(conditions)
}

impl ConditionConfig {
    /// The condition in its default state: False with the default reason and message.
    pub fn default_condition(&self, transition: jiff::Timestamp) -> crate::types::Condition {
        crate::types::Condition {
            type_: self.type_.clone(),
            status: crate::types::ConditionStatus::False,
            transition,
            reason: self.reason.clone(),
            message: self.message.clone(),
        }
    }
}

/// Reads a JSON file into a `serde_json::Value`, with errors naming the file and position.
pub fn read_json(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_json(path, &text)
}

/// Parses JSON text, with errors naming the file and position.
pub fn parse_json(path: &Path, text: &str) -> Result<Value, ConfigError> {
    serde_json::from_str(text).map_err(|e| {
        let full = e.to_string();
        // serde_json appends " at line L column C"; we put the position in front instead.
        let message = match full.rfind(" at line ") {
            Some(i) => full[..i].to_string(),
            None => full,
        };
        ConfigError::Json {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message,
        }
    })
}

/// Go's encoding/json matches keys case-insensitively. This renames such keys to their
/// canonical spelling and warns about keys that match nothing, naming the JSON path.
pub fn normalize_keys(
    path: &Path,
    prefix: &str,
    value: &mut Value,
    known: &[&str],
    warnings: &mut Vec<ConfigWarning>,
) {
    let Value::Object(map) = value else { return };
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if known.contains(&key.as_str()) {
            continue;
        }
        if let Some(canon) = known.iter().find(|k| k.eq_ignore_ascii_case(&key))
            && !map.contains_key(*canon)
        {
            if let Some(v) = map.remove(&key) {
                map.insert((*canon).to_string(), v);
            }
            continue;
        }
        warnings.push(ConfigWarning {
            path: path.to_path_buf(),
            message: format!("unknown key {prefix}{key} (ignored)"),
        });
    }
}

/// Deserializes a normalized value, naming the offending key on a type error.
pub fn from_value<T: serde::de::DeserializeOwned>(
    path: &Path,
    value: Value,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| ConfigError::WrongType {
        path: path.to_path_buf(),
        key: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Parses a Go duration held by `key`.
pub fn duration_key(path: &Path, key: &str, value: &str) -> Result<Duration, ConfigError> {
    parse_go_duration(value).map_err(|source| ConfigError::Duration {
        path: path.to_path_buf(),
        key: key.to_string(),
        source,
    })
}

/// Loads, defaults and validates a monitor config file.
pub fn load_monitor_config(path: &Path) -> Result<Loaded<MonitorConfig>, ConfigError> {
    let value = read_json(path)?;
    monitor_config_from_value(path, value)
}

/// Same as [`load_monitor_config`] for text already in memory (embedded defaults, tests).
pub fn parse_monitor_config(path: &Path, text: &str) -> Result<Loaded<MonitorConfig>, ConfigError> {
    monitor_config_from_value(path, parse_json(path, text)?)
}

pub(crate) fn monitor_config_from_value(
    path: &Path,
    mut value: Value,
) -> Result<Loaded<MonitorConfig>, ConfigError> {
    let mut warnings = Vec::new();
    if !value.is_object() {
        return Err(ConfigError::WrongType {
            path: path.to_path_buf(),
            key: ".".into(),
            message: "a monitor config must be a JSON object".into(),
        });
    }
    normalize_keys(path, "", &mut value, TOP_KEYS, &mut warnings);
    if let Some(Value::Array(conds)) = value.get_mut("conditions") {
        for (i, c) in conds.iter_mut().enumerate() {
            normalize_keys(
                path,
                &format!("conditions[{i}]."),
                c,
                CONDITION_KEYS,
                &mut warnings,
            );
        }
    }
    if let Some(Value::Array(rules)) = value.get_mut("rules") {
        for (i, r) in rules.iter_mut().enumerate() {
            normalize_keys(path, &format!("rules[{i}]."), r, RULE_KEYS, &mut warnings);
        }
    }
    let raw: RawMonitorConfig = from_value(path, value)?;
    let p = || path.to_path_buf();

    let plugin = match raw.plugin.as_deref() {
        Some("kmsg") => Plugin::Kmsg,
        Some("journald") => Plugin::Journald,
        Some("filelog") => Plugin::Filelog,
        Some(other) => {
            let hint = if other == "custom" {
                " (a custom plugin config belongs in --config.custom-plugin-monitor)"
            } else {
                ""
            };
            return Err(ConfigError::UnknownPlugin {
                path: p(),
                plugin: format!("{other}{hint}"),
                expected: "kmsg, journald, filelog",
            });
        }
        None => {
            return Err(ConfigError::MissingKey {
                path: p(),
                key: "plugin".into(),
                hint: "; one of kmsg, journald, filelog".into(),
            });
        }
    };
    let plugin_config = raw.plugin_config.unwrap_or_default();
    let known_plugin_keys: &[&str] = match plugin {
        Plugin::Kmsg => &[],
        Plugin::Journald => &["source"],
        Plugin::Filelog => &["timestamp", "message", "timestampFormat"],
    };
    for key in plugin_config.keys() {
        if !known_plugin_keys.contains(&key.as_str()) {
            warnings.push(ConfigWarning {
                path: p(),
                message: format!(
                    "unknown key pluginConfig.{key} for plugin {} (ignored)",
                    plugin.as_str()
                ),
            });
        }
    }
    if plugin == Plugin::Filelog {
        for key in ["timestamp", "message", "timestampFormat"] {
            if plugin_config.get(key).is_none_or(|v| v.is_empty()) {
                return Err(ConfigError::MissingKey {
                    path: p(),
                    key: format!("pluginConfig.{key}"),
                    hint: "; the filelog plugin needs timestamp, message and timestampFormat"
                        .into(),
                });
            }
        }
        for key in ["timestamp", "message"] {
            if let Some(re) = plugin_config.get(key)
                && let Err(e) = crate::engine::pattern::compile_plain(re)
            {
                return Err(ConfigError::InvalidValue {
                    path: p(),
                    key: format!("pluginConfig.{key}"),
                    message: e.to_string(),
                });
            }
        }
        // Checked here, not only when the source starts: on a reload the old monitor is
        // replaced only by one whose source can start.
        if let Some(layout) = plugin_config.get("timestampFormat")
            && let Err(e) = crate::gotime::GoLayout::new(layout)
        {
            return Err(ConfigError::InvalidValue {
                path: p(),
                key: "pluginConfig.timestampFormat".into(),
                message: e.to_string(),
            });
        }
    }
    let log_path = match (raw.log_path.filter(|s| !s.is_empty()), plugin) {
        (Some(lp), _) => lp,
        (None, Plugin::Kmsg) => DEFAULT_KMSG_PATH.into(),
        (None, Plugin::Journald) => DEFAULT_JOURNAL_PATH.into(),
        (None, Plugin::Filelog) => {
            return Err(ConfigError::MissingKey {
                path: p(),
                key: "logPath".into(),
                hint: "; the filelog plugin needs the file to follow".into(),
            });
        }
    };
    let lookback = duration_key(
        path,
        "lookback",
        raw.lookback
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("0"),
    )?;
    let delay = duration_key(
        path,
        "delay",
        raw.delay
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("0"),
    )?;
    let buffer_size = match raw.buffer_size {
        None => DEFAULT_BUFFER_SIZE,
        Some(n) if (1..=10_000).contains(&n) => n as usize,
        Some(n) => {
            return Err(ConfigError::InvalidValue {
                path: p(),
                key: "bufferSize".into(),
                message: format!(
                    "{n} is out of range: it must be between 1 and 10000 (omit it for upstream's default of {DEFAULT_BUFFER_SIZE})"
                ),
            });
        }
    };
    let source = raw.source.unwrap_or_default();
    if source.is_empty() {
        warnings.push(ConfigWarning {
            path: p(),
            message: "key source is empty: events will have no source component".into(),
        });
    }

    let conditions = parse_conditions(path, raw.conditions.unwrap_or_default(), true)?;

    let mut rules = Vec::new();
    for (index, r) in raw.rules.unwrap_or_default().into_iter().enumerate() {
        let reason = r.reason.unwrap_or_default();
        let rule_err = |message: String| ConfigError::Rule {
            path: path.to_path_buf(),
            index,
            reason: reason.clone(),
            message,
        };
        let kind = match r.type_.as_deref() {
            Some("temporary") => RuleKind::Temporary,
            Some("permanent") => RuleKind::Permanent,
            Some("recovery") => RuleKind::Recovery,
            Some(other) => {
                return Err(rule_err(format!(
                    "unknown type {other:?} (expected temporary, permanent or recovery)"
                )));
            }
            None => {
                return Err(rule_err(
                    "missing type (temporary, permanent or recovery)".into(),
                ));
            }
        };
        if reason.is_empty() {
            return Err(rule_err("missing reason".into()));
        }
        let pattern = r.pattern.unwrap_or_default();
        if pattern.is_empty() {
            return Err(rule_err("missing or empty pattern".into()));
        }
        let condition = r.condition.unwrap_or_default();
        match kind {
            RuleKind::Temporary => {
                if !condition.is_empty() {
                    warnings.push(ConfigWarning {
                        path: p(),
                        message: format!(
                            "rule {index} (reason {reason:?}): a temporary rule ignores condition {condition:?}"
                        ),
                    });
                }
            }
            RuleKind::Permanent | RuleKind::Recovery => {
                if condition.is_empty() {
                    return Err(rule_err(format!(
                        "a {} rule needs a condition",
                        if kind == RuleKind::Permanent {
                            "permanent"
                        } else {
                            "recovery"
                        }
                    )));
                }
                if !conditions.iter().any(|c| c.type_ == condition) {
                    let declared: Vec<&str> = conditions.iter().map(|c| c.type_.as_str()).collect();
                    return Err(rule_err(format!(
                        "condition {condition:?} is not declared in conditions (declared: [{}])",
                        declared.join(", ")
                    )));
                }
            }
        }
        let severity = match r.severity.as_deref() {
            None | Some("") => None,
            Some("info") => Some(Severity::Info),
            Some("warn") | Some("warning") => Some(Severity::Warn),
            Some(other) => {
                return Err(rule_err(format!(
                    "unknown severity {other:?} (expected info or warn)"
                )));
            }
        };
        let min_occurrences = match r.min_occurrences {
            None => 1,
            Some(n) if (1..=100_000).contains(&n) => n as u32,
            Some(n) => {
                return Err(rule_err(format!(
                    "minOccurrences {n} must be between 1 and 100000"
                )));
            }
        };
        let window = match r.window.as_deref() {
            None | Some("") => None,
            Some(w) => Some(duration_key(path, &format!("rules[{index}].window"), w)?),
        };
        if min_occurrences > 1 && window.is_none_or(|w| w.is_zero()) {
            return Err(rule_err(
                "minOccurrences above 1 needs a window greater than 0".into(),
            ));
        }
        if window.is_some() && min_occurrences == 1 {
            warnings.push(ConfigWarning {
                path: p(),
                message: format!("rule {index} (reason {reason:?}): window has no effect without minOccurrences above 1"),
            });
        }
        rules.push(RuleConfig {
            kind,
            condition,
            reason,
            pattern,
            pattern_generated_message_suffix: r
                .pattern_generated_message_suffix
                .unwrap_or_default(),
            severity,
            min_occurrences,
            window,
        });
    }

    Ok(Loaded {
        config: MonitorConfig {
            path: path.to_path_buf(),
            plugin,
            plugin_config,
            log_path,
            lookback,
            delay,
            skip_list: raw.skip_list.unwrap_or_default(),
            buffer_size,
            source,
            metrics_reporting: raw.metrics_reporting.unwrap_or(true),
            conditions,
            rules,
        },
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Loaded<MonitorConfig>, ConfigError> {
        parse_monitor_config(Path::new("test.json"), text)
    }

    #[test]
    fn filelog_regexes_have_the_rules_dialect() {
        // Octal escapes mean what they mean in Go and in the rules (`\101` is "A"), in
        // the loader and in the translator alike.
        let l = parse(
            r#"{"plugin":"filelog","logPath":"/x","source":"s","pluginConfig":{
                "timestamp":"^\\S+ \\S+","message":"\\101: (.*)","timestampFormat":"2006-01-02 15:04:05"}}"#,
        )
        .unwrap();
        let t = crate::source::filelog::Translator::new(&l.config)
            .unwrap()
            .with_time_zone(jiff::tz::TimeZone::UTC);
        match t.translate(
            "2026-01-02 03:04:05 A: disk on fire",
            jiff::Timestamp::now(),
            None,
        ) {
            crate::source::filelog::Translated::Line(line) => {
                assert_eq!(line.message, "disk on fire")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_upstreams() {
        let l = parse(r#"{"plugin":"kmsg","source":"k","rules":[]}"#).unwrap();
        let c = l.config;
        assert_eq!(c.buffer_size, 10);
        assert_eq!(c.lookback, Duration::ZERO);
        assert_eq!(c.log_path, "/dev/kmsg");
        assert!(c.metrics_reporting);
        assert!(l.warnings.is_empty());
    }

    #[test]
    fn unknown_keys_warn_with_path() {
        let l = parse(r#"{"plugin":"kmsg","source":"k","bogus":1,"rules":[{"type":"temporary","reason":"R","pattern":"x","extra":true}]}"#)
            .unwrap();
        let msgs: Vec<String> = l.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                "test.json: unknown key bogus (ignored)",
                "test.json: unknown key rules[0].extra (ignored)"
            ]
        );
    }

    #[test]
    fn keys_match_case_insensitively_like_go() {
        let l = parse(r#"{"Plugin":"kmsg","Source":"k","BufferSize":3}"#).unwrap();
        assert_eq!(l.config.buffer_size, 3);
        assert_eq!(l.config.source, "k");
        assert!(l.warnings.is_empty());
    }

    #[test]
    fn errors_name_file_rule_and_reason() {
        let e = parse(r#"{"plugin":"kmsg","source":"k","rules":[{"type":"permanent","condition":"Nope","reason":"R","pattern":"x"}]}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "test.json: rule 0 (reason \"R\"): condition \"Nope\" is not declared in conditions (declared: [])"
        );
        let e = parse(r#"{"plugin":"syslog"}"#).unwrap_err().to_string();
        assert!(e.starts_with("test.json: unknown plugin \"syslog\""), "{e}");
        let e = parse(r#"{"plugin":"kmsg","bufferSize":0}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("test.json: key bufferSize: 0 is out of range"),
            "{e}"
        );
        let e = parse(r#"{"plugin":"filelog","logPath":"/x","pluginConfig":{"timestamp":"x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("test.json: missing required key pluginConfig.message"),
            "{e}"
        );
        let filelog = |plugin_config: &str| {
            parse(&format!(
                r#"{{"plugin":"filelog","logPath":"/x","pluginConfig":{plugin_config}}}"#
            ))
        };
        let e =
            filelog(r#"{"timestamp":"^.{15}","message":"(.*)","timestampFormat":"Jan 002 15:04"}"#)
                .unwrap_err()
                .to_string();
        assert_eq!(
            e,
            "test.json: key pluginConfig.timestampFormat: unsupported element \"002\" in Go time layout \"Jan 002 15:04\""
        );
        let e = filelog(r#"{"timestamp":"^.{10}","message":"(.*)","timestampFormat":"%Y-%m-%d"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "test.json: key pluginConfig.timestampFormat: Go time layout \"%Y-%m-%d\""
            ),
            "{e}"
        );
        let e = filelog(r#"{"timestamp":"^.{15}","message":"\\Qkernel:\\E(.*)","timestampFormat":"Jan _2 15:04:05"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("test.json: key pluginConfig.message: Go's \\Q...\\E"),
            "{e}"
        );
        let e = parse(r#"{"plugin":"kmsg","lookback":"5 minutes"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("test.json: key lookback: "), "{e}");
        let e =
            parse(r#"{"plugin":"kmsg","rules":[{"type":"temporary","reason":5,"pattern":"x"}]}"#)
                .unwrap_err()
                .to_string();
        assert!(
            e.starts_with("test.json: key rules[0].reason: invalid type"),
            "{e}"
        );
        let e = parse("{\n\"plugin\": \"kmsg\",,\n}")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "test.json:2:18: invalid JSON: key must be a string");
    }
}
