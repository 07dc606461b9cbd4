//! Custom plugin monitors: upstream's `--config.custom-plugin-monitor`. Each config names
//! scripts (plugins) run on an interval; exit code 0 means OK, 1 a problem, anything else
//! Unknown, and stdout is the message. See the README, "Custom plugin monitors".
//!
//! - [`config`]: loading and validating the JSON format;
//! - [`monitor`]: the pure state machine (results to events and conditions);
//! - [`runner`]: running plugins safely and the monitor's tokio task.

pub mod config;
pub mod monitor;
pub mod runner;

pub use config::{CustomPluginConfig, CustomRule, CustomRuleKind, load_custom_config};
pub use monitor::{CustomMonitor, PluginResult, PluginStatus};
pub use runner::{CustomPluginMonitor, PluginHealth, RuleHealth, run_once, run_plugin};
