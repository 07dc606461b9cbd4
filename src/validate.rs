//! Placeholder until the validator lands.
/// Validate arguments.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {}
