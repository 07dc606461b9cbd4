//! A private systemd-journald for tests: runs `/lib/systemd/systemd-journald <namespace>`
//! outside systemd (it creates its own sockets under /run/systemd/journal.<namespace>/ and
//! writes /var/log/journal/<machine-id>.<namespace>/), so the system journal is untouched.
//! Starting it fails loudly: tests that need it must not skip.
#![allow(dead_code)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The journald binary the tests run.
pub const JOURNALD: &str = "/lib/systemd/systemd-journald";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A running namespace journald, killed (and its files removed) on drop.
pub struct TestJournald {
    /// The namespace name.
    pub ns: String,
    /// The directory journald writes the namespace's journal files to.
    pub dir: PathBuf,
    /// The native protocol socket.
    pub socket: PathBuf,
    child: Child,
    run_dir: PathBuf,
}

fn machine_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .expect("/etc/machine-id is needed to find the namespace's journal directory")
        .trim()
        .to_string()
}

impl TestJournald {
    /// Starts a journald in a fresh namespace and waits until it accepts entries.
    /// Panics (the test fails) when that is not possible.
    pub fn start() -> TestJournald {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "journald tests need root (to run {JOURNALD})"
        );
        assert!(
            Path::new(JOURNALD).exists(),
            "{JOURNALD} is missing: install systemd"
        );
        let ns = format!(
            "npdt{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mid = machine_id();
        let run_dir = PathBuf::from(format!("/run/systemd/journal.{ns}"));
        let persistent = Path::new("/var/log/journal").is_dir();
        let dir = if persistent {
            PathBuf::from(format!("/var/log/journal/{mid}.{ns}"))
        } else {
            PathBuf::from(format!("/run/log/journal/{mid}.{ns}"))
        };
        let child = Command::new(JOURNALD)
            .arg(&ns)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {JOURNALD} {ns}: {e}"));
        let mut j = TestJournald {
            socket: run_dir.join("socket"),
            ns,
            dir,
            child,
            run_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(j.socket.exists() && j.dir.join("system.journal").exists()) {
            if let Ok(Some(st)) = j.child.try_wait() {
                panic!("{JOURNALD} {} exited at start: {st}", j.ns);
            }
            assert!(
                Instant::now() < deadline,
                "{JOURNALD} {} did not create {} and {} within 20 s",
                j.ns,
                j.socket.display(),
                j.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        j
    }

    /// Writes one entry through the native protocol (binary-safe field encoding).
    pub fn send(&self, identifier: &str, message: &str) {
        let mut d = Vec::with_capacity(message.len() + 64);
        d.extend_from_slice(b"SYSLOG_IDENTIFIER=");
        d.extend_from_slice(identifier.as_bytes());
        d.extend_from_slice(b"\nPRIORITY=6\nMESSAGE\n");
        d.extend_from_slice(&(message.len() as u64).to_le_bytes());
        d.extend_from_slice(message.as_bytes());
        d.push(b'\n');
        let s = UnixDatagram::unbound().expect("unix datagram socket");
        s.send_to(&d, &self.socket)
            .unwrap_or_else(|e| panic!("send to {}: {e}", self.socket.display()));
    }

    fn journalctl(&self, args: &[&str]) {
        self.journalctl_output(args);
    }

    /// Runs `journalctl --namespace=<ns> --no-pager ARGS` and returns its stdout; a failing
    /// journalctl fails the test.
    pub fn journalctl_output(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("journalctl")
            .arg(format!("--namespace={}", self.ns))
            .arg("--no-pager")
            .args(args)
            .output()
            .expect("run journalctl");
        assert!(
            out.status.success(),
            "journalctl --namespace={} {args:?}: {}",
            self.ns,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Asks journald to write everything it received to disk.
    pub fn sync(&self) {
        self.journalctl(&["--sync"]);
    }

    /// Archives the active file and starts a new one; waits until done. Entries sent
    /// before are written first (journald would otherwise race the socket against the
    /// rotate request and may put them in the new file).
    pub fn rotate(&self) {
        self.sync();
        let before = self.archived_files();
        self.journalctl(&["--rotate"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.archived_files() <= before {
            assert!(
                Instant::now() < deadline,
                "rotation of {} did not happen",
                self.ns
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Deletes archived files so that at most `n` journal files remain.
    pub fn vacuum_files(&self, n: usize) {
        self.journalctl(&[&format!("--vacuum-files={n}")]);
    }

    /// Number of archived (`system@...journal`) files.
    pub fn archived_files(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.starts_with("system@") && n.ends_with(".journal")
                    })
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for TestJournald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}
