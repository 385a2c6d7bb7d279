//! The `heapfleet` command: parses the command line, sets up logging and runs one command.

mod cli;
mod commands;
mod local;
mod output;
mod plot;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: heapfleet_service::Allocator = heapfleet_service::Allocator {};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return report(&anyhow::Error::new(error).context("failed to start the async runtime"));
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(error) => report(&error),
    }
}

/// Prints an error and its causes on one line, the way every command reports failure.
fn report(error: &anyhow::Error) -> ExitCode {
    // `heapfleet dumps | head` closes our stdout early: that is the reader's choice, not a failure.
    let broken_pipe = error.chain().any(|cause| {
        let kind = match cause.downcast_ref::<std::io::Error>() {
            Some(io_error) => Some(io_error.kind()),
            None => cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind),
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    #[allow(clippy::print_stderr)] // The one place errors reach the user.
    {
        eprintln!("error: {error:#}");
    }
    ExitCode::FAILURE
}
