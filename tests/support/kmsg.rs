//! Helpers for tests that write real records into /dev/kmsg (run as root).
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::{Mutex, MutexGuard};

const DEVKMSG_SYSCTL: &str = "/proc/sys/kernel/printk_devkmsg";

/// Serializes kmsg tests of one binary: they share the ring buffer and the sysctl.
static KMSG_LOCK: Mutex<()> = Mutex::new(());

/// Holds the kmsg test lock and `kernel.printk_devkmsg = on`; restores the old value on
/// drop, also when the test panics.
pub struct KmsgGuard {
    old: String,
    _lock: MutexGuard<'static, ()>,
}

impl KmsgGuard {
    /// Takes the lock, checks root and /dev/kmsg, and turns off the write rate limit.
    /// Panics (fails the test loudly) when that is not possible.
    pub fn acquire() -> KmsgGuard {
        let lock = KMSG_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: geteuid has no arguments and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "kmsg tests must run as root (they write to /dev/kmsg)"
        );
        OpenOptions::new()
            .read(true)
            .open("/dev/kmsg")
            .unwrap_or_else(|e| panic!("/dev/kmsg is not readable: {e}"));
        let old = std::fs::read_to_string(DEVKMSG_SYSCTL)
            .unwrap_or_else(|e| panic!("reading {DEVKMSG_SYSCTL}: {e}"))
            .trim()
            .to_string();
        // The kernel wants the trailing newline (it checks the written length).
        std::fs::write(DEVKMSG_SYSCTL, "on\n")
            .unwrap_or_else(|e| panic!("setting {DEVKMSG_SYSCTL} to on: {e}"));
        KmsgGuard { old, _lock: lock }
    }
}

impl Drop for KmsgGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(DEVKMSG_SYSCTL, format!("{}\n", self.old)) {
            eprintln!("restoring {DEVKMSG_SYSCTL} to {}: {e}", self.old);
        }
    }
}

/// A writer of kernel records from user space.
pub struct KmsgWriter(std::fs::File);

impl KmsgWriter {
    /// Opens /dev/kmsg for writing.
    pub fn open() -> KmsgWriter {
        KmsgWriter(
            OpenOptions::new()
                .write(true)
                .open("/dev/kmsg")
                .unwrap_or_else(|e| panic!("opening /dev/kmsg for writing: {e}")),
        )
    }

    /// Writes one record at level 6 (info: stays off the serial console). The trailing
    /// newline matters: without it the kernel keeps the record open for a continuation
    /// and readers see it only when the next record arrives.
    pub fn info(&mut self, text: &str) {
        self.0
            .write_all(format!("<6>{text}\n").as_bytes())
            .unwrap_or_else(|e| panic!("writing to /dev/kmsg: {e}"));
    }
}

/// A marker unique to this process and call, for telling our records apart.
pub fn unique_marker(test: &str) -> String {
    format!(
        "npdtest-{test}-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    )
}
