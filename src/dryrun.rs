//! Placeholder until the dry-run lands.
/// Dry-run arguments.
#[derive(Debug, clap::Args)]
pub struct DryRunArgs {}
