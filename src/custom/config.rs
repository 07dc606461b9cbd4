//! Custom plugin monitor configs: upstream's `--config.custom-plugin-monitor` JSON format
//! (`plugin: "custom"`), read with the same helpers as log monitor configs.
//!
//! Validation follows upstream (a rule's timeout may not exceed the global one, every
//! permanent rule's condition has a default) with one deliberate difference: a plugin
//! path that does not exist or is not executable is a load *warning*, not an error.
//! Upstream's shipped configs name paths such as `/home/kubernetes/bin/log-counter` or
//! `C:\...\health-checker.exe` that exist only on some images; they must load unchanged,
//! and such a rule reports `Unknown` ("cannot start plugin ...") each time it runs, which
//! shows up in the condition, in `/healthz` and in the dry-run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::parse_json;
use crate::config::{
    ConditionConfig, ConfigError, ConfigWarning, Loaded, duration_key, from_value, normalize_keys,
    read_json,
};

/// Upstream's default `invoke_interval`.
pub const DEFAULT_INVOKE_INTERVAL: Duration = Duration::from_secs(30);
/// Upstream's default global `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upstream's default `max_output_length`.
pub const DEFAULT_MAX_OUTPUT_LENGTH: usize = 80;
/// Upstream's default `concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 3;

/// What a custom rule reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomRuleKind {
    /// NonOK (and Unknown, as upstream) yields a Warning event.
    Temporary,
    /// The result drives the rule's condition.
    Permanent,
}

/// One rule (`rules[]`): a plugin to run and what its result means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRule {
    /// temporary or permanent.
    pub kind: CustomRuleKind,
    /// Condition type (permanent rules).
    pub condition: String,
    /// CamelCase reason of the event or condition.
    pub reason: String,
    /// The executable, as written (relative paths resolve against the working directory,
    /// as upstream's).
    pub path: PathBuf,
    /// Arguments passed to the plugin.
    pub args: Vec<String>,
    /// Effective timeout: the rule's own, else the global one.
    pub timeout: Duration,
    /// Effective interval: the rule's own `invoke_interval`, else the global one.
    pub invoke_interval: Duration,
}

/// One custom plugin monitor config file, validated, with upstream's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomPluginConfig {
    /// Where it was loaded from (for messages).
    pub path: PathBuf,
    /// `pluginConfig.invoke_interval`.
    pub invoke_interval: Duration,
    /// `pluginConfig.timeout`: the global (and maximum) plugin timeout.
    pub timeout: Duration,
    /// `pluginConfig.max_output_length`: the message is cut to this many bytes.
    pub max_output_length: usize,
    /// `pluginConfig.concurrency`: plugins running at once (as written; the runner uses
    /// at most one permit per rule, so a larger value means every rule at once).
    pub concurrency: usize,
    /// `pluginConfig.enable_message_change_based_condition_update`.
    pub enable_message_change_based_condition_update: bool,
    /// `pluginConfig.skip_initial_status`.
    pub skip_initial_status: bool,
    /// Event source component.
    pub source: String,
    /// Whether problem_counter / problem_gauge are kept.
    pub metrics_reporting: bool,
    /// Default conditions (status False).
    pub conditions: Vec<ConditionConfig>,
    /// Rules in file order.
    pub rules: Vec<CustomRule>,
}

impl CustomPluginConfig {
    /// Every `problem_gauge` (type, reason) series a monitor of this config may set from
    /// its rules and defaults, sorted and without duplicates: permanent rules and the
    /// conditions' default reasons. Empty when metrics reporting is off.
    /// [`super::CustomMonitor::gauge_series`] gives the same for a built monitor.
    pub fn gauge_series(&self) -> Vec<(&str, &str)> {
        if !self.metrics_reporting {
            return Vec::new();
        }
        let mut out: Vec<(&str, &str)> = self
            .rules
            .iter()
            .filter(|r| r.kind == CustomRuleKind::Permanent)
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    plugin: Option<String>,
    plugin_config: Option<RawPluginConfig>,
    source: Option<String>,
    metrics_reporting: Option<bool>,
    conditions: Option<Vec<crate::config::RawCondition>>,
    rules: Option<Vec<RawRule>>,
}

#[derive(Deserialize)]
struct RawPluginConfig {
    invoke_interval: Option<String>,
    timeout: Option<String>,
    max_output_length: Option<i64>,
    concurrency: Option<i64>,
    enable_message_change_based_condition_update: Option<bool>,
    skip_initial_status: Option<bool>,
}

#[derive(Deserialize)]
struct RawRule {
    #[serde(rename = "type")]
    type_: Option<String>,
    condition: Option<String>,
    reason: Option<String>,
    path: Option<String>,
    args: Option<Vec<String>>,
    timeout: Option<String>,
    invoke_interval: Option<String>,
}

const TOP_KEYS: &[&str] = &[
    "plugin",
    "pluginConfig",
    "source",
    "metricsReporting",
    "conditions",
    "rules",
];
const PLUGIN_KEYS: &[&str] = &[
    "invoke_interval",
    "timeout",
    "max_output_length",
    "concurrency",
    "enable_message_change_based_condition_update",
    "skip_initial_status",
];
// `status` and `transition` exist on upstream's condition type and are ignored there too.
const CONDITION_KEYS: &[&str] = &["type", "reason", "message", "status", "transition"];
const RULE_KEYS: &[&str] = &[
    "type",
    "condition",
    "reason",
    "path",
    "args",
    "timeout",
    "invoke_interval",
];

/// Loads, defaults and validates a custom plugin monitor config file.
pub fn load_custom_config(path: &Path) -> Result<Loaded<CustomPluginConfig>, ConfigError> {
    custom_config_from_value(path, read_json(path)?)
}

/// Same as [`load_custom_config`] for text already in memory.
pub fn parse_custom_config(
    path: &Path,
    text: &str,
) -> Result<Loaded<CustomPluginConfig>, ConfigError> {
    custom_config_from_value(path, parse_json(path, text)?)
}

pub(crate) fn custom_config_from_value(
    path: &Path,
    mut value: Value,
) -> Result<Loaded<CustomPluginConfig>, ConfigError> {
    let mut warnings = Vec::new();
    let p = || path.to_path_buf();
    if !value.is_object() {
        return Err(ConfigError::WrongType {
            path: p(),
            key: ".".into(),
            message: "a custom plugin monitor config must be a JSON object".into(),
        });
    }
    normalize_keys(path, "", &mut value, TOP_KEYS, &mut warnings);
    if let Some(pc) = value.get_mut("pluginConfig") {
        normalize_keys(path, "pluginConfig.", pc, PLUGIN_KEYS, &mut warnings);
    }
    if let Some(Value::Array(conds)) = value.get_mut("conditions") {
        for (i, c) in conds.iter_mut().enumerate() {
            let prefix = format!("conditions[{i}].");
            normalize_keys(path, &prefix, c, CONDITION_KEYS, &mut warnings);
        }
    }
    if let Some(Value::Array(rules)) = value.get_mut("rules") {
        for (i, r) in rules.iter_mut().enumerate() {
            normalize_keys(path, &format!("rules[{i}]."), r, RULE_KEYS, &mut warnings);
        }
    }
    let raw: RawConfig = from_value(path, value)?;

    match raw.plugin.as_deref() {
        Some("custom") => {}
        Some(other) => {
            return Err(ConfigError::UnknownPlugin {
                path: p(),
                plugin: other.to_string(),
                expected: "custom",
            });
        }
        None => {
            return Err(ConfigError::MissingKey {
                path: p(),
                key: "plugin".into(),
                hint: "; a custom plugin monitor config has \"plugin\": \"custom\"".into(),
            });
        }
    }
    let pc = raw.plugin_config.unwrap_or(RawPluginConfig {
        invoke_interval: None,
        timeout: None,
        max_output_length: None,
        concurrency: None,
        enable_message_change_based_condition_update: None,
        skip_initial_status: None,
    });
    let invoke_interval = match pc.invoke_interval.as_deref() {
        Some(s) => duration_key(path, "pluginConfig.invoke_interval", s)?,
        None => DEFAULT_INVOKE_INTERVAL,
    };
    if invoke_interval.is_zero() {
        return Err(ConfigError::InvalidValue {
            path: p(),
            key: "pluginConfig.invoke_interval".into(),
            message: "must be greater than 0".into(),
        });
    }
    let timeout = match pc.timeout.as_deref() {
        Some(s) => duration_key(path, "pluginConfig.timeout", s)?,
        None => DEFAULT_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(ConfigError::InvalidValue {
            path: p(),
            key: "pluginConfig.timeout".into(),
            message: "must be greater than 0".into(),
        });
    }
    let max_output_length = match pc.max_output_length {
        None => DEFAULT_MAX_OUTPUT_LENGTH,
        Some(n) => usize::try_from(n).map_err(|_| ConfigError::InvalidValue {
            path: p(),
            key: "pluginConfig.max_output_length".into(),
            message: format!("{n} is negative"),
        })?,
    };
    let concurrency = match pc.concurrency {
        None => DEFAULT_CONCURRENCY,
        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            return Err(ConfigError::InvalidValue {
                path: p(),
                key: "pluginConfig.concurrency".into(),
                message: format!("{n}: at least one plugin must be able to run"),
            });
        }
    };

    // recoverAfter is a log-monitor extension; here the key is warned about as unknown
    // and not read (a custom rule's OK result already recovers its condition).
    let conditions =
        crate::config::parse_conditions(path, raw.conditions.unwrap_or_default(), false)?;

    let mut rules = Vec::new();
    for (index, r) in raw.rules.unwrap_or_default().into_iter().enumerate() {
        let reason = r.reason.clone().unwrap_or_default();
        let rule_err = |message: String| ConfigError::Rule {
            path: p(),
            index,
            reason: reason.clone(),
            message,
        };
        let kind = match r.type_.as_deref() {
            Some("temporary") => CustomRuleKind::Temporary,
            Some("permanent") => CustomRuleKind::Permanent,
            Some(other) => {
                return Err(rule_err(format!(
                    "type {other:?} is not temporary or permanent"
                )));
            }
            None => return Err(rule_err("missing type (temporary or permanent)".into())),
        };
        let rule_path = r
            .path
            .filter(|s| !s.is_empty())
            .ok_or_else(|| rule_err("missing path (the plugin to run)".into()))?;
        let rule_timeout = match r.timeout.as_deref() {
            Some(s) => duration_key(path, &format!("rules[{index}].timeout"), s)?,
            None => timeout,
        };
        if rule_timeout > timeout {
            return Err(rule_err(format!(
                "timeout {:?} is greater than the global timeout {:?}",
                rule_timeout, timeout
            )));
        }
        if rule_timeout.is_zero() {
            return Err(rule_err("timeout must be greater than 0".into()));
        }
        let rule_interval = match r.invoke_interval.as_deref() {
            Some(s) => duration_key(path, &format!("rules[{index}].invoke_interval"), s)?,
            None => invoke_interval,
        };
        if rule_interval.is_zero() {
            return Err(rule_err("invoke_interval must be greater than 0".into()));
        }
        let condition = r.condition.unwrap_or_default();
        if kind == CustomRuleKind::Permanent && !conditions.iter().any(|c| c.type_ == condition) {
            return Err(rule_err(format!(
                "permanent rule's condition {condition:?} has no default in conditions"
            )));
        }
        if let Some(problem) = plugin_path_problem(Path::new(&rule_path)) {
            warnings.push(ConfigWarning {
                path: p(),
                message: format!(
                    "rule {index} (reason {reason:?}): plugin {rule_path:?} {problem}; \
                     the rule will report Unknown until it is fixed"
                ),
            });
        }
        rules.push(CustomRule {
            kind,
            condition,
            reason,
            path: PathBuf::from(rule_path),
            args: r.args.unwrap_or_default(),
            timeout: rule_timeout,
            invoke_interval: rule_interval,
        });
    }

    Ok(Loaded {
        config: CustomPluginConfig {
            path: p(),
            invoke_interval,
            timeout,
            max_output_length,
            concurrency,
            enable_message_change_based_condition_update: pc
                .enable_message_change_based_condition_update
                .unwrap_or(false),
            skip_initial_status: pc.skip_initial_status.unwrap_or(false),
            source: raw.source.unwrap_or_default(),
            metrics_reporting: raw.metrics_reporting.unwrap_or(true),
            conditions,
            rules,
        },
        warnings,
    })
}

/// Why a plugin path cannot be run, if it cannot.
fn plugin_path_problem(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist".into()),
        Err(e) => Some(format!("cannot be checked: {e}")),
        Ok(m) if !m.is_file() => Some("is not a regular file".into()),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Some("is not executable".into()),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Loaded<CustomPluginConfig>, ConfigError> {
        parse_custom_config(Path::new("t.json"), text)
    }

    #[test]
    fn defaults_and_rule_overrides() {
        let l = parse(
            r#"{"plugin":"custom","source":"s","conditions":[{"type":"C","reason":"Ok","message":"fine"}],
            "rules":[{"type":"permanent","condition":"C","reason":"Bad","path":"/bin/true","timeout":"2s","invoke_interval":"1m"},
                     {"type":"temporary","reason":"T","path":"/bin/false","bogus":1}]}"#,
        )
        .unwrap();
        let c = l.config;
        assert_eq!(c.invoke_interval, DEFAULT_INVOKE_INTERVAL);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.max_output_length, 80);
        assert_eq!(c.concurrency, 3);
        assert!(c.metrics_reporting);
        assert_eq!(c.rules[0].timeout, Duration::from_secs(2));
        assert_eq!(c.rules[0].invoke_interval, Duration::from_secs(60));
        assert_eq!(c.rules[1].timeout, DEFAULT_TIMEOUT);
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        assert!(l.warnings[0].message.contains("rules[1].bogus"));
    }

    #[test]
    fn validation_errors_name_the_rule() {
        let e = parse(
            r#"{"plugin":"custom","pluginConfig":{"timeout":"1s"},
            "rules":[{"type":"temporary","reason":"T","path":"/bin/true","timeout":"2s"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("t.json") && e.contains("rule 0") && e.contains("global"),
            "{e}"
        );
        let e = parse(
            r#"{"plugin":"custom","rules":[{"type":"permanent","condition":"X","reason":"T","path":"/bin/true"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rule 0") && e.contains("\"X\""), "{e}");
        let e = parse(r#"{"plugin":"kmsg"}"#).unwrap_err().to_string();
        assert!(e.contains("kmsg"), "{e}");
    }

    #[test]
    fn recover_after_is_an_ignored_unknown_key() {
        let l = parse(
            r#"{"plugin":"custom","conditions":[{"type":"C","reason":"Ok","message":"m","recoverAfter":"bogus"}],
            "rules":[{"type":"permanent","condition":"C","reason":"Bad","path":"/bin/true"}]}"#,
        )
        .unwrap();
        assert_eq!(l.config.conditions[0].recover_after, None);
        let msgs: Vec<String> = l.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            msgs,
            vec!["t.json: unknown key conditions[0].recoverAfter (ignored)"]
        );
    }

    #[test]
    fn missing_plugin_is_a_warning() {
        let l = parse(
            r#"{"plugin":"custom","rules":[{"type":"temporary","reason":"T","path":"/nonexistent/x"}]}"#,
        )
        .unwrap();
        assert_eq!(l.warnings.len(), 1);
        assert!(l.warnings[0].message.contains("does not exist"));
        assert!(l.warnings[0].message.contains("rule 0"));
    }
}
