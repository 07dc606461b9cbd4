//! The `node-problem-detector` binary: parses the command line and hands over to the
//! library. Kept thin on purpose.

use std::process::ExitCode;

use clap::Parser;
use npd::cli::{Cli, Command, LogFormat};

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(npd::cli::normalize_args(std::env::args()));
    match cli.command {
        Some(Command::DryRun(args)) => npd::dryrun::main(&args),
        Some(Command::Validate(args)) => npd::validate::main(&args),
        None => {
            // Only the long-running daemon benefits (see the function); --help, --version,
            // dry-run and validate exit before the parse is done or soon after.
            npd::footprint::trim_executable_fault_around();
            init_logging(cli.daemon.log_level(), cli.daemon.log_format);
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("node-problem-detector: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(npd::daemon::run(cli.daemon)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // Display only: every DaemonError message already includes its cause
                    // (`{:#}` of an error chain printed the cause a second time).
                    tracing::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
