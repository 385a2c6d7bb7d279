//! `heapfleet-gateway`: the gRPC gateway of the distributed stack.

use std::process::ExitCode;

use clap::Parser;
use heapfleet_gateway::GatewayArgs;

/// Receives heap dumps over gRPC (heapfleet.ingest.v1), stores them in object storage and
/// queues their ingest in the catalog.
///
/// Settings come from --config FILE (TOML), then HEAPFLEET_* variables, then flags.
/// Traces and metrics go over OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT when it is set; the
/// other standard OTEL_* variables apply (see the README).
#[derive(Debug, Parser)]
#[command(name = "heapfleet-gateway", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[global_allocator]
static ALLOCATOR: heapfleet_service::Allocator = heapfleet_service::Allocator {};

fn main() -> ExitCode {
    heapfleet_service::run_main("heapfleet-gateway", || async {
        let cli = Cli::parse();
        let config = cli.gateway.resolve()?;
        heapfleet_gateway::run(config, heapfleet_service::shutdown::signal()).await
    })
}
