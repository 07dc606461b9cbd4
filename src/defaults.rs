//! The default rule sets shipped in config/, embedded in the binary for the dry-run and
//! the validator.

/// (file name, JSON text) of every default monitor config, in the order they run.
pub const DEFAULT_MONITOR_CONFIGS: &[(&str, &str)] = &[
    (
        "kernel-monitor.json",
        include_str!("../config/kernel-monitor.json"),
    ),
    (
        "readonly-monitor.json",
        include_str!("../config/readonly-monitor.json"),
    ),
    (
        "systemd-monitor.json",
        include_str!("../config/systemd-monitor.json"),
    ),
    (
        "docker-monitor.json",
        include_str!("../config/docker-monitor.json"),
    ),
    (
        "containerd-monitor.json",
        include_str!("../config/containerd-monitor.json"),
    ),
];
