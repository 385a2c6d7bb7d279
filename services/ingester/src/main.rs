//! `heapfleet-ingester`: an ingest worker of the distributed stack.

use std::process::ExitCode;

use clap::Parser;
use heapfleet_ingester::IngesterArgs;

/// Claims queued dumps from the catalog, streams each from object storage through the parser
/// and stores its aggregates and object index. Run as many as the queue needs.
///
/// Settings come from --config FILE (TOML), then HEAPFLEET_* variables, then flags.
/// Traces and metrics go over OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT when it is set; the
/// other standard OTEL_* variables apply (see the README).
#[derive(Debug, Parser)]
#[command(name = "heapfleet-ingester", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    ingester: IngesterArgs,
}

#[global_allocator]
static ALLOCATOR: heapfleet_service::Allocator = heapfleet_service::Allocator {};

fn main() -> ExitCode {
    heapfleet_service::run_main("heapfleet-ingester", || async {
        let cli = Cli::parse();
        let config = cli.ingester.resolve()?;
        heapfleet_ingester::run(config, heapfleet_service::shutdown::signal()).await
    })
}
