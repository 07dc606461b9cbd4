//! Placeholder until the dry-run lands.
/// Dry-run arguments.
#[derive(Debug, clap::Args)]
pub struct DryRunArgs {}
/// Runs the dry-run.
pub fn main(_args: &DryRunArgs) -> std::process::ExitCode {
    std::process::ExitCode::from(2)
}
