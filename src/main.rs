//! The `quarry` binary.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    // `quarry --network dev rpc ...` as well as `quarry rpc --network dev ...`.
    let cli =
        quarry::cli::Cli::parse_from(quarry::cli::argv::hoist_leading_options(std::env::args_os().collect()));
    // The node logs its progress by default; one-shot commands only warnings. RUST_LOG wins.
    let default = if matches!(cli.command, quarry::cli::Command::Node(_)) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log redirected to a file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match quarry::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
