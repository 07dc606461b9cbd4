//! node-problem-detector in Rust: reads a node's kernel and system logs, recognises known
//! problems with JSON rules, and reports them as Node conditions and Events.
//!
//! Data flow (DESIGN.md section 2): [`source`] -> [`engine::Monitor`] -> exporters.

pub mod admin;
pub mod cli;
pub mod config;
pub mod custom;
pub mod daemon;
pub mod defaults;
pub mod dryrun;
pub mod duration;
pub mod engine;
pub mod exporter;
pub mod footprint;
pub mod gotime;
pub mod source;
pub mod types;
pub mod validate;
