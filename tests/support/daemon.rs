//! Helpers for tests that run the real binary.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_node-problem-detector");

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GETs a URL path from 127.0.0.1:port; returns (status code, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let code = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Polls `f` every 50 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running daemon, killed on drop.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub metrics_port: u16,
    pub stderr_path: std::path::PathBuf,
}

impl Daemon {
    /// Starts the binary with `args` plus admin/metrics ports; stderr goes to a file in `dir`.
    pub fn start(dir: &Path, args: &[&str]) -> Daemon {
        let port = free_port();
        let metrics_port = free_port();
        let stderr_path = dir.join(format!("daemon-{port}.log"));
        let child = Command::new(BIN)
            .args(args)
            .arg(format!("--port={port}"))
            .arg(format!("--prometheus-port={metrics_port}"))
            .env("NPD_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child,
            port,
            metrics_port,
            stderr_path,
        }
    }

    /// Starts the binary standalone (Kubernetes exporter off) with one system log monitor
    /// config and `extra` flags, and waits until it answers.
    pub fn standalone(dir: &Path, cfg: &Path, extra: &[&str]) -> Daemon {
        let mut args = vec![
            "--enable-k8s-exporter=false".to_string(),
            format!("--config.system-log-monitor={}", cfg.display()),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut d = Daemon::start(dir, &args);
        d.wait_up();
        d
    }

    /// Waits until /healthz answers (any status).
    pub fn wait_up(&mut self) {
        let port = self.port;
        let up = wait_for(Duration::from_secs(20), || http_get(port, "/healthz").ok());
        assert!(up.is_some(), "daemon did not come up; log:\n{}", self.log());
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The /metrics body.
    pub fn metrics(&self) -> String {
        http_get(self.metrics_port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// The value of one metric series (exact series text before the value).
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics().lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|v| v.trim().strip_prefix(""))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for exit up to `timeout`; returns the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
