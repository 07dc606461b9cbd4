//! The command line: upstream NPD's flags with their names, defaults and forms, klog's
//! flags that manifests carry, our own additions, and the `dry-run` / `validate`
//! subcommands. Flags follow Go's pflag conventions: `--flag=value` and `--flag value`,
//! bare `--bool` means true and `--bool=false` false (`--bool false` is not a bool value,
//! as in pflag), comma-separated lists and repeated flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::duration::parse_go_duration;

/// Long version string: crate version plus the upstream release this is compatible with.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (compatible with node-problem-detector v1.37)"
);

/// node-problem-detector: reports kernel, journal and log-file problems as Node conditions
/// and Events.
#[derive(Debug, Parser)]
#[command(name = "node-problem-detector", version = VERSION, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Subcommand; without one the daemon runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Daemon flags.
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// Subcommands besides the daemon.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay captured logs (or this machine's kernel log) through the rules and print
    /// what would be reported, without a cluster.
    DryRun(crate::dryrun::DryRunArgs),
    /// Check monitor configs without running anything.
    Validate(crate::validate::ValidateArgs),
}

fn go_duration(s: &str) -> Result<Duration, String> {
    parse_go_duration(s).map_err(|e| e.to_string())
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of the daemon (upstream's names and defaults).
#[derive(Debug, Args, Clone)]
pub struct DaemonArgs {
    /// Monitor configs for system logs (kmsg, journald, filelog), comma separated.
    #[arg(long = "config.system-log-monitor", value_delimiter = ',', action = ArgAction::Append, value_name = "FILES")]
    pub system_log_monitors: Vec<PathBuf>,
    /// Deprecated upstream alias of --config.system-log-monitor.
    #[arg(long = "system-log-monitors", value_delimiter = ',', action = ArgAction::Append, hide = true)]
    pub system_log_monitors_deprecated: Vec<PathBuf>,
    /// Custom plugin monitor configs, comma separated.
    #[arg(long = "config.custom-plugin-monitor", value_delimiter = ',', action = ArgAction::Append, value_name = "FILES")]
    pub custom_plugin_monitors: Vec<PathBuf>,
    /// Deprecated upstream alias of --config.custom-plugin-monitor.
    #[arg(long = "custom-plugin-monitors", value_delimiter = ',', action = ArgAction::Append, hide = true)]
    pub custom_plugin_monitors_deprecated: Vec<PathBuf>,
    /// System stats monitor configs (upstream's metrics monitor; accepted, not run here).
    #[arg(long = "config.system-stats-monitor", value_delimiter = ',', action = ArgAction::Append, value_name = "FILES")]
    pub system_stats_monitors: Vec<PathBuf>,
    /// Stackdriver exporter config (upstream; accepted, not supported here).
    #[arg(long = "exporter.stackdriver", value_name = "FILE", hide = true)]
    pub stackdriver_exporter: Option<String>,

    /// Node name to report for (default: $NODE_NAME, then the host name).
    #[arg(long = "hostname-override", value_name = "NAME")]
    pub hostname_override: Option<String>,
    /// Report to the API server.
    #[arg(long = "enable-k8s-exporter", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub enable_k8s_exporter: bool,
    /// API server URL, optionally with upstream's query parameters
    /// (`?inClusterConfig=false&auth=/path/kubeconfig`).
    #[arg(long = "apiserver-override", value_name = "URL")]
    pub apiserver_override: Option<String>,
    /// How long to wait for the API server at start.
    #[arg(long = "apiserver-wait-timeout", default_value = "5m", value_parser = go_duration)]
    pub apiserver_wait_timeout: Duration,
    /// How often to try the API server while waiting.
    #[arg(long = "apiserver-wait-interval", default_value = "5s", value_parser = go_duration)]
    pub apiserver_wait_interval: Duration,
    /// How often conditions are re-sent even when unchanged (at least 1s; a shorter
    /// period is raised to 1s with a warning).
    #[arg(long = "k8s-exporter-heartbeat-period", default_value = "5m", value_parser = go_duration)]
    pub k8s_exporter_heartbeat_period: Duration,
    /// Write Events.
    #[arg(long = "k8s-exporter-write-events", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub k8s_exporter_write_events: bool,
    /// Update Node conditions.
    #[arg(long = "k8s-exporter-update-node-conditions", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub k8s_exporter_update_node_conditions: bool,
    /// Namespace of the Events (empty: default).
    #[arg(long = "event-namespace", default_value = "")]
    pub event_namespace: String,
    /// Client-side rate limit for API requests (queries per second).
    #[arg(long = "kube-api-qps", default_value_t = 500.0)]
    pub kube_api_qps: f32,
    /// Client-side burst for API requests.
    #[arg(long = "kube-api-burst", default_value_t = 500)]
    pub kube_api_burst: u32,

    /// Admin server address (/healthz, /conditions).
    #[arg(long = "address", default_value = "127.0.0.1")]
    pub address: String,
    /// Admin server port; 0 disables it.
    #[arg(long = "port", default_value_t = 20256)]
    pub port: u16,
    /// Prometheus /metrics address.
    #[arg(long = "prometheus-address", default_value = "127.0.0.1")]
    pub prometheus_address: String,
    /// Prometheus /metrics port; 0 disables it.
    #[arg(long = "prometheus-port", default_value_t = 20257)]
    pub prometheus_port: u16,

    /// Ours: keep True conditions set during this boot when restarting (upstream #304).
    #[arg(long = "restore-conditions", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub restore_conditions: bool,
    /// Ours: remove condition types dropped from the configs from the Node on reload.
    #[arg(long = "delete-removed-conditions", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub delete_removed_conditions: bool,
    /// Ours: reload monitor configs when their files change (ConfigMap updates).
    #[arg(long = "watch-config", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub watch_config: bool,
    /// Ours: a source that is working (not waiting for input) but has neither read nor
    /// handed over anything for this long is reported stalled by /healthz (a hung read
    /// on a dead file system, a monitor that stopped consuming). 0 disables the check.
    #[arg(long = "source-stall-timeout", default_value = "2m", value_parser = go_duration)]
    pub source_stall_timeout: Duration,
    /// Ours: log format.
    #[arg(long = "log-format", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// klog-compatible flags, accepted so upstream manifests run unchanged.
    #[command(flatten)]
    pub klog: KlogArgs,
}

/// klog's flags. Only `--v` has an effect (it sets the log level); the rest are accepted
/// and ignored because we always log to stderr.
#[derive(Debug, Args, Clone, Default)]
pub struct KlogArgs {
    /// Log verbosity: 0-1 info, 2-3 debug, 4+ trace.
    #[arg(long = "v", short = 'v', default_value_t = 0)]
    pub v: u8,
    /// klog: log to stderr (always true here).
    #[arg(long = "logtostderr", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, hide = true)]
    pub logtostderr: Option<bool>,
    /// klog: also log to stderr.
    #[arg(long = "alsologtostderr", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, hide = true)]
    pub alsologtostderr: Option<bool>,
    /// klog: stderr threshold.
    #[arg(long = "stderrthreshold", hide = true)]
    pub stderrthreshold: Option<String>,
    /// klog: log directory (ignored).
    #[arg(long = "log_dir", hide = true)]
    pub log_dir: Option<String>,
    /// klog: log file (ignored).
    #[arg(long = "log_file", hide = true)]
    pub log_file: Option<String>,
    /// klog: log file max size (ignored).
    #[arg(long = "log_file_max_size", hide = true)]
    pub log_file_max_size: Option<String>,
    /// klog: per-module verbosity (ignored).
    #[arg(long = "vmodule", hide = true)]
    pub vmodule: Option<String>,
    /// klog: stack trace location (ignored).
    #[arg(long = "log_backtrace_at", hide = true)]
    pub log_backtrace_at: Option<String>,
    /// klog: omit headers (ignored).
    #[arg(long = "skip_headers", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, hide = true)]
    pub skip_headers: Option<bool>,
    /// klog: omit headers in log files (ignored).
    #[arg(long = "skip_log_headers", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, hide = true)]
    pub skip_log_headers: Option<bool>,
    /// klog: add directory to headers (ignored).
    #[arg(long = "add_dir_header", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, hide = true)]
    pub add_dir_header: Option<bool>,
    /// klog: one output per severity (ignored).
    #[arg(long = "one_output", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, hide = true)]
    pub one_output: Option<bool>,
}

impl DaemonArgs {
    /// All system log monitor configs, the deprecated alias included.
    pub fn system_log_monitor_paths(&self) -> Vec<PathBuf> {
        let mut v = self.system_log_monitors.clone();
        v.extend(self.system_log_monitors_deprecated.iter().cloned());
        v.retain(|p| !p.as_os_str().is_empty());
        v
    }

    /// All custom plugin monitor configs, the deprecated alias included.
    pub fn custom_plugin_monitor_paths(&self) -> Vec<PathBuf> {
        let mut v = self.custom_plugin_monitors.clone();
        v.extend(self.custom_plugin_monitors_deprecated.iter().cloned());
        v.retain(|p| !p.as_os_str().is_empty());
        v
    }

    /// The tracing filter directive for `--v`.
    pub fn log_level(&self) -> &'static str {
        match self.klog.v {
            0 | 1 => "info",
            2 | 3 => "debug",
            _ => "trace",
        }
    }
}

/// Go's flag package also accepts a single dash for long flags (`-v=2`, `-logtostderr`);
/// pflag-based upstream accepts `-v` only. Rewrites `-name...` to `--name...` so manifests
/// written for either keep working. Left as they are: klog's `-v`, `-v=N` and `-vN`
/// (clap reads them as the short flag), anything not starting with a letter (`-1`, `-0.5`:
/// values), single letters (`-h`, `-V`), and everything after `--`.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut options_ended = false;
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 || options_ended {
                return a;
            }
            if a == "--" {
                options_ended = true;
                return a;
            }
            if is_single_dash_long_flag(&a) {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

/// `-name` or `-name=value` whose name has two or more characters and starts with a
/// letter, except `-vN` (klog's verbosity with its value attached).
fn is_single_dash_long_flag(a: &str) -> bool {
    let Some(rest) = a.strip_prefix('-') else {
        return false;
    };
    let name = rest.split_once('=').map_or(rest, |(name, _)| name);
    let starts_with_letter = name.starts_with(|c: char| c.is_ascii_alphabetic());
    let v_with_number = name
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    starts_with_letter && name.len() >= 2 && !v_with_number
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut v = vec!["node-problem-detector".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        Cli::try_parse_from(normalize_args(v))
    }

    #[test]
    fn upstream_daemonset_command_line() {
        let c = parse(&[
            "--logtostderr",
            "--config.system-log-monitor=/config/kernel-monitor.json,/config/readonly-monitor.json,/config/docker-monitor.json",
            "--config.custom-plugin-monitor=/config/health-checker-kubelet.json",
        ])
        .unwrap();
        let d = c.daemon;
        assert_eq!(d.system_log_monitor_paths().len(), 3);
        assert_eq!(
            d.custom_plugin_monitor_paths(),
            vec![PathBuf::from("/config/health-checker-kubelet.json")]
        );
        assert!(d.enable_k8s_exporter);
        assert_eq!(d.port, 20256);
        assert_eq!(d.prometheus_port, 20257);
        assert_eq!(d.address, "127.0.0.1");
        assert_eq!(d.apiserver_wait_timeout, Duration::from_secs(300));
        assert_eq!(d.source_stall_timeout, Duration::from_secs(120));
        assert_eq!(d.apiserver_wait_interval, Duration::from_secs(5));
        assert_eq!(d.k8s_exporter_heartbeat_period, Duration::from_secs(300));
        assert_eq!(d.event_namespace, "");
    }

    #[test]
    fn flag_forms() {
        let c = parse(&[
            "--enable-k8s-exporter=false",
            "--config.system-log-monitor",
            "a.json",
            "--config.system-log-monitor=b.json,c.json",
            "--port",
            "0",
            "--v=4",
            "--apiserver-wait-timeout=1h30m",
            "--k8s-exporter-write-events=false",
            "--alsologtostderr",
            "--stderrthreshold=INFO",
            "--log_dir=/tmp",
        ])
        .unwrap()
        .daemon;
        assert!(!c.enable_k8s_exporter);
        assert!(!c.k8s_exporter_write_events);
        assert_eq!(
            c.system_log_monitor_paths(),
            vec![PathBuf::from("a.json"), "b.json".into(), "c.json".into()]
        );
        assert_eq!(c.port, 0);
        assert_eq!(c.log_level(), "trace");
        assert_eq!(c.apiserver_wait_timeout, Duration::from_secs(5400));
        // pflag: a bool flag does not take a separate value.
        assert!(parse(&["--enable-k8s-exporter", "false"]).is_err());
        assert!(parse(&["--apiserver-wait-timeout=5 minutes"]).is_err());
        // Go's single-dash long flags.
        let c = parse(&["-logtostderr", "-port=1234"]).unwrap().daemon;
        assert_eq!(c.port, 1234);
    }

    #[test]
    fn single_dash_forms() {
        let args = |v: &[&str]| {
            let mut all = vec!["node-problem-detector".to_string()];
            all.extend(v.iter().map(|s| s.to_string()));
            normalize_args(all)[1..].to_vec()
        };
        assert_eq!(
            args(&[
                "-vmodule=foo=2",
                "-logtostderr",
                "-v",
                "-v=2",
                "-v3",
                "-h",
                "--port=1",
                "-10",
                "-0.5",
                "-",
                "--",
                "-port=2",
            ]),
            [
                "--vmodule=foo=2",
                "--logtostderr",
                "-v",
                "-v=2",
                "-v3",
                "-h",
                "--port=1",
                "-10",
                "-0.5",
                "-",
                "--",
                "-port=2",
            ]
        );
        // klog's -vmodule is accepted (it was taken for -v with the value "module=foo=2").
        let d = parse(&["-vmodule=foo=2", "-v=2"]).unwrap().daemon;
        assert_eq!(d.klog.vmodule.as_deref(), Some("foo=2"));
        assert_eq!(d.klog.v, 2);
        assert_eq!(parse(&["-v3"]).unwrap().daemon.klog.v, 3);
        assert_eq!(parse(&["-v", "4"]).unwrap().daemon.klog.v, 4);
        assert_eq!(parse(&["--v=1"]).unwrap().daemon.klog.v, 1);
    }
}
