//! Kernel lines as syslog writes them to kern.log, for tests that feed the daemon a real
//! log file through a filelog monitor.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

/// `Mmm dd HH:MM:SS HOST kernel: [ 1234.567890] MSG\n`, stamped now in local time (the
/// layout `Jan _2 15:04:05` of upstream's kernel-monitor-filelog.json).
pub fn kernel_line(host: &str, msg: &str) -> String {
    let now = jiff::Zoned::now();
    format!(
        "{} {host} kernel: [ 1234.567890] {msg}\n",
        now.strftime("%b %e %H:%M:%S")
    )
}

/// Appends one [`kernel_line`] to `path` (created if missing) in a single write.
pub fn append(path: &Path, host: &str, msg: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    f.write_all(kernel_line(host, msg).as_bytes())
        .unwrap_or_else(|e| panic!("appending to {}: {e}", path.display()));
}
