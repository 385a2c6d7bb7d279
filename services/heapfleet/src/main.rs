//! The `heapfleet` command: parses the command line, sets up logging (and, for the long-running
//! `serve` and `agent`, OpenTelemetry) and runs one command.

mod cli;
mod commands;
mod local;
mod output;
mod plot;

use std::process::ExitCode;

use clap::Parser;
use heapfleet_telemetry::TelemetryConfig;

#[global_allocator]
static ALLOCATOR: heapfleet_service::Allocator = heapfleet_service::Allocator {};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return report(&anyhow::Error::new(error).context("failed to start the async runtime"));
        }
    };
    // `serve` and `agent` run for long like the service binaries and report like them (traces
    // and metrics as the OTEL_* variables say). Every other command only logs: it starts no
    // exporter and no background thread, so it stays quiet and fast.
    let telemetry = match &cli.command {
        cli::Command::Serve(_) => TelemetryConfig::from_env("heapfleet-serve", default_level),
        cli::Command::Agent(_) => TelemetryConfig::from_env("heapfleet-agent", default_level),
        _ => Ok(TelemetryConfig::logs_only(default_level, |name| {
            std::env::var(name).ok()
        })),
    }
    .and_then(|mut config| {
        config.log_format = cli.log_format.into();
        // The OTLP exporter's gRPC channel lives on this runtime.
        let _runtime_context = runtime.enter();
        heapfleet_telemetry::init(&config)
    });
    let telemetry_guard = match telemetry {
        Ok(guard) => guard,
        Err(error) => {
            return report(&anyhow::Error::new(error).context("cannot start telemetry"));
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // While the runtime still runs: the exporters send their last batches through it.
    telemetry_guard.shutdown();
    drop(runtime);
    match result {
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
