//! Shared helpers for integration tests. Each test file includes what it needs.
#![allow(dead_code)]

pub mod configmap;
pub mod daemon;
pub mod syslog;
