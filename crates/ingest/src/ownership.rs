//! The ownership pass over one dump: parse it again into its whole object graph, compute the
//! dominator tree and retained sizes, and store the per-dump results. It runs after the
//! aggregate ingest, as a job of its own, so the aggregates are queryable first and a failure
//! here never fails the dump.
//!
//! Memory: the graph and the dominator tree take about 80 bytes per object and 8 per reference
//! at peak (see `heapfleet_analysis::HeapGraph`), so a dump over the caller's object limit is
//! skipped with a reason instead of risking the worker's memory.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use heapfleet_analysis::{
    DumpOwnership, HeapGraph, HeapGraphBuilder, HeapGraphError, OwnershipAnalysis, OwnershipOptions,
};
use heapfleet_dump::{ParseError, ParseOptions, parse_reader};
use heapfleet_storage::{AggregateStore, StorageError};

/// The default limit on the objects of a dump the ownership pass takes on: about 4 GB of
/// memory at peak for the graph and its dominator tree.
pub const DEFAULT_MAX_OWNERSHIP_OBJECTS: u64 = 40_000_000;

/// Why an ownership pass did not store results.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    /// The dump is larger than the pass takes on: skipped, not failed.
    #[error(transparent)]
    TooLarge(#[from] HeapGraphError),
    /// The dump's file could not be opened.
    #[error("cannot open the dump's file: {reason}")]
    Open {
        /// Why.
        reason: String,
        /// Whether the file is gone (or its key is invalid): no retry can help.
        gone: bool,
    },
    /// The dump could not be read or parsed.
    #[error("failed to parse the dump")]
    Parse(#[from] ParseError),
    /// The store failed.
    #[error("failed to store the ownership results")]
    Store(#[from] StorageError),
    /// The blocking task died.
    #[error("the ownership task stopped unexpectedly")]
    TaskFailed(#[source] tokio::task::JoinError),
}

impl OwnershipError {
    /// Whether the dump is to be skipped (recorded as skipped with this reason) rather than
    /// failed.
    pub fn is_skip(&self) -> bool {
        matches!(self, OwnershipError::TooLarge(_))
    }

    /// Whether retrying cannot help: the dump is too large, or does not parse (the aggregate
    /// ingest read it, so a parse error now is the same file failing the same way). Store and
    /// read outages are worth retrying.
    pub fn is_permanent(&self) -> bool {
        match self {
            OwnershipError::TooLarge(_) => true,
            OwnershipError::Open { gone, .. } => *gone,
            OwnershipError::Parse(error) => !error.is_retryable(),
            OwnershipError::Store(error) => !error.is_retryable(),
            OwnershipError::TaskFailed(_) => false,
        }
    }
}

/// Parses a dump into its object graph, refusing one of more than `max_objects` objects.
/// `expected_objects` (the count the aggregate ingest found, 0 when unknown) sizes the
/// graph's arrays up front.
pub fn dump_graph(
    reader: impl Read,
    parse: &ParseOptions,
    max_objects: u64,
    expected_objects: u64,
) -> Result<HeapGraph, OwnershipError> {
    let mut builder = HeapGraphBuilder::new(max_objects);
    builder.expect_objects(expected_objects);
    parse_reader(reader, parse, &mut builder)?;
    Ok(builder.finish()?)
}

/// Parses a dump and computes its ownership results (`expected_objects` as in
/// [`dump_graph`]).
pub fn dump_ownership(
    reader: impl Read,
    parse: &ParseOptions,
    max_objects: u64,
    expected_objects: u64,
    options: &OwnershipOptions,
) -> Result<DumpOwnership, OwnershipError> {
    let mut graph = dump_graph(reader, parse, max_objects, expected_objects)?;
    Ok(OwnershipAnalysis::new(&mut graph).summary(options))
}

/// What an ownership pass stored.
#[derive(Debug)]
pub struct StoredOwnership {
    /// The results.
    pub ownership: DumpOwnership,
    /// Wall-clock seconds of parse, analysis and store.
    pub seconds: f64,
}

/// Parses the dump from `reader` on a blocking thread, computes its ownership results and
/// stores them under `dump_id`, replacing earlier ones.
pub async fn ownership_into_store<R>(
    reader: R,
    dump_id: &str,
    store: Arc<dyn AggregateStore>,
    parse: ParseOptions,
    max_objects: u64,
    expected_objects: u64,
) -> Result<StoredOwnership, OwnershipError>
where
    R: Read + Send + 'static,
{
    let started = Instant::now();
    let span = tracing::info_span!("ownership", otel.name = "dominators and retained sizes");
    let ownership = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        dump_ownership(
            reader,
            &parse,
            max_objects,
            expected_objects,
            &OwnershipOptions::default(),
        )
    })
    .await
    .map_err(OwnershipError::TaskFailed)??;
    store.put_dump_ownership(dump_id, &ownership).await?;
    Ok(StoredOwnership {
        ownership,
        seconds: started.elapsed().as_secs_f64(),
    })
}
