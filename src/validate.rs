//! Placeholder until the validator lands.
/// Validate arguments.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {}
/// Runs the validator.
pub fn main(_args: &ValidateArgs) -> std::process::ExitCode {
    std::process::ExitCode::from(2)
}
