//! `heapfleet-query`: the query service of the distributed stack.

use std::process::ExitCode;

use clap::Parser;
use heapfleet_query::QueryArgs;

/// Answers heapfleet.query.v1 over gRPC from the catalog and the stored aggregates.
///
/// Settings come from --config FILE (TOML), then HEAPFLEET_* variables, then flags.
/// Traces and metrics go over OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT when it is set; the
/// other standard OTEL_* variables apply (see the README).
#[derive(Debug, Parser)]
#[command(name = "heapfleet-query", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    query: QueryArgs,
}

#[global_allocator]
static ALLOCATOR: heapfleet_service::Allocator = heapfleet_service::Allocator {};

fn main() -> ExitCode {
    heapfleet_service::run_main("heapfleet-query", || async {
        let cli = Cli::parse();
        let config = cli.query.resolve()?;
        heapfleet_query::run(config, heapfleet_service::shutdown::signal()).await
    })
}
