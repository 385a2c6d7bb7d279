//! Ingest: one dump in, its aggregates and object index stored, its catalog entry `ready`.
//!
//! The same code serves the embedded `heapfleet import` and (later) the distributed ingest
//! workers. It sees the catalog and the aggregate store through their traits only.
//!
//! The parse runs on a blocking thread (it is CPU-bound); object-index chunks flow to the store
//! through a bounded channel, so a slow store slows the parser instead of growing memory.
//! Re-ingesting a dump overwrites what an earlier attempt stored under the same dump id, so an
//! interrupted or repeated ingest never double-counts.
//!
//! The ownership pass (module `ownership`) parses a stored dump once more into its whole object
//! graph for dominators, retained sizes and owners, as a job of its own after the ingest.
//!
//! The reverse, deleting a dump from the catalog, the store and object storage in an order a
//! crash cannot break, is [`DumpDeleter`] (module `delete`).

#![warn(missing_docs)]

mod delete;
mod ownership;

pub use delete::{DeleteError, DeletedDump, DumpDeleter, ObjectOutcome};
pub use ownership::{
    DEFAULT_MAX_OWNERSHIP_OBJECTS, OwnershipError, StoredOwnership, dump_graph, dump_ownership,
    ownership_into_store,
};

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use heapfleet_analysis::{DumpAggregates, DumpAggregator};
use heapfleet_catalog::{Catalog, CatalogError, DumpId, DumpRecord, DumpStatus, NewDump};
use heapfleet_dump::{ParseError, ParseOptions, parse_reader};
use heapfleet_storage::{AggregateStore, StorageError};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::Instrument;

/// How many encoded index chunks (about 1 MiB each) may wait for the store.
const INDEX_CHUNKS_IN_FLIGHT: usize = 4;

/// Why an ingest failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The dump file could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The copy of the dump file could not be kept in the data directory.
    #[error("failed to keep a copy of {path}")]
    Keep {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The dump could not be parsed (strict mode, a size limit, an unreadable stream).
    #[error("failed to parse the dump")]
    Parse(#[from] ParseError),
    /// The aggregate store failed.
    #[error("failed to store the dump's aggregates")]
    Store(#[from] StorageError),
    /// The catalog failed.
    #[error("failed to update the catalog")]
    Catalog(#[from] CatalogError),
    /// The input holds no heap object: empty, not a heap dump, or nothing but bad lines.
    #[error("no heap objects found in {lines} lines ({bad_lines} bad{first_bad})")]
    NoObjects {
        /// Lines read.
        lines: u64,
        /// Bad lines among them.
        bad_lines: u64,
        /// The first bad line, formatted as `; first: line N: reason`, or empty.
        first_bad: String,
    },
    /// The blocking parse task died.
    #[error("the parse task stopped unexpectedly")]
    TaskFailed(#[source] tokio::task::JoinError),
}

impl IngestError {
    /// Whether ingesting the same dump again may succeed: a read error (the disk or the
    /// network), a store or catalog outage, a task that died. A dump with no heap objects, or
    /// one whose parse fails the same way every time ([`ParseError::is_retryable`]), is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::NoObjects { .. } => false,
            IngestError::Parse(error) => error.is_retryable(),
            IngestError::Store(error) => error.is_retryable(),
            IngestError::Catalog(error) => error.is_retryable(),
            IngestError::Read { .. } | IngestError::Keep { .. } | IngestError::TaskFailed(_) => {
                true
            }
        }
    }
}

/// What parsing a dump into the store produced.
#[derive(Debug)]
pub struct StoredDump {
    /// The aggregates that were stored.
    pub aggregates: DumpAggregates,
    /// How many object-index chunks were stored.
    pub index_chunks: u32,
    /// Wall-clock seconds of parse + store.
    pub seconds: f64,
}

/// Parses a dump from `reader` and stores its aggregates and object index under `dump_id`.
///
/// The object index is written first and the aggregates last, so a reader that finds a dump's
/// aggregates also finds its complete index.
pub async fn parse_into_store<R>(
    reader: R,
    dump_id: &DumpId,
    store: Arc<dyn AggregateStore>,
    options: ParseOptions,
) -> Result<StoredDump, IngestError>
where
    R: Read + Send + 'static,
{
    let start = Instant::now();
    let (chunk_tx, mut chunk_rx) = mpsc::channel::<Vec<u8>>(INDEX_CHUNKS_IN_FLIGHT);
    // The parse runs on a blocking thread, outside the caller's span unless handed it.
    let parse_span = tracing::info_span!("parse", otel.name = "parse dump");
    let parse_task = tokio::task::spawn_blocking(move || {
        let _parse_entered = parse_span.enter();
        let mut aggregator = DumpAggregator::new(|chunk| {
            // A closed channel means the writer failed; its error is reported below.
            let _ = chunk_tx.blocking_send(chunk);
        });
        let parse = parse_reader(reader, &options, &mut aggregator)?;
        Ok::<_, ParseError>(aggregator.finish(parse))
    });

    let mut index_chunks: u32 = 0;
    let mut write_error = None;
    while let Some(chunk) = chunk_rx.recv().await {
        if write_error.is_some() {
            continue; // Drain so the parser is not blocked; the first error is kept.
        }
        // One span per store write, so a trace shows where an ingest's time went.
        let write_span = tracing::info_span!(
            "store.put_index_chunk",
            otel.name = "store put_index_chunk",
            chunk = index_chunks,
            bytes = chunk.len(),
        );
        match store
            .put_index_chunk(dump_id.as_str(), index_chunks, chunk)
            .instrument(write_span)
            .await
        {
            Ok(()) => index_chunks += 1,
            Err(error) => write_error = Some(error),
        }
    }
    let aggregates = parse_task.await.map_err(IngestError::TaskFailed)??;
    if let Some(error) = write_error {
        return Err(error.into());
    }
    let parse = &aggregates.parse;
    if parse.objects == 0 {
        return Err(IngestError::NoObjects {
            lines: parse.lines,
            bad_lines: parse.bad_lines,
            first_bad: parse
                .bad_line_samples
                .first()
                .map(|bad| format!("; first: {bad}"))
                .unwrap_or_default(),
        });
    }
    store
        .finish_index(dump_id.as_str(), index_chunks)
        .instrument(tracing::info_span!(
            "store.finish_index",
            otel.name = "store finish_index",
            chunks = index_chunks,
        ))
        .await?;
    store
        .put_dump_aggregates(dump_id.as_str(), &aggregates)
        .instrument(tracing::info_span!(
            "store.put_dump_aggregates",
            otel.name = "store put_dump_aggregates",
            sites = aggregates.sites.len(),
        ))
        .await?;
    Ok(StoredDump {
        aggregates,
        index_chunks,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Returns the size and hex SHA-256 of a file, read in 1 MiB blocks.
pub fn file_size_and_sha256(path: &Path) -> Result<(u64, String), IngestError> {
    let read_error = |source| IngestError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(read_error)?;
        if read == 0 {
            break;
        }
        size += read as u64;
        hasher.update(&buffer[..read]);
    }
    let digest = hasher.finalize();
    let hex = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok((size, hex))
}

/// What importing one file did.
#[derive(Debug)]
pub struct ImportOutcome {
    /// The dump's catalog record after the import.
    pub dump: DumpRecord,
    /// True when the same content from the same process was already ingested (nothing done).
    pub already_imported: bool,
    /// The parse and store result, when the dump was ingested now.
    pub stored: Option<StoredDump>,
}

/// Called with the number of bytes just read from a dump file (for progress bars).
pub type ReadProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// Passes through reads, reporting their sizes.
struct ProgressReader<R> {
    inner: R,
    progress: ReadProgress,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        (self.progress)(read as u64);
        Ok(read)
    }
}

/// Registers a local dump file in the catalog and ingests it, unless the same content from the
/// same process is already `ready`. `new_dump.size_bytes` and `content_sha256` are filled in
/// here. With `keep_in` (a local object-store directory, as `heapfleet serve` keeps uploads),
/// a copy of the file is kept there first, at the dump's key, durable before the dump is
/// registered with it, so its ownership pass and retainer paths can read it later. On
/// failure the dump is marked `failed` with the reason and the error returned.
pub async fn import_file(
    path: &Path,
    mut new_dump: NewDump,
    catalog: &dyn Catalog,
    store: Arc<dyn AggregateStore>,
    options: ParseOptions,
    progress: Option<ReadProgress>,
    keep_in: Option<&Path>,
) -> Result<ImportOutcome, IngestError> {
    let hash_path = path.to_path_buf();
    let (size, sha256) = tokio::task::spawn_blocking(move || file_size_and_sha256(&hash_path))
        .await
        .map_err(IngestError::TaskFailed)??;
    new_dump.size_bytes = size;
    new_dump.content_sha256 = sha256;
    if let Some(root) = keep_in {
        let key = keep_copy(path, root, &new_dump).await?;
        new_dump.object_key = Some(key);
    }
    let (dump, _created) = catalog.register_dump(new_dump).await?;
    if dump.status == DumpStatus::Ready {
        return Ok(ImportOutcome {
            dump,
            already_imported: true,
            stored: None,
        });
    }
    catalog.set_status(&dump.id, DumpStatus::Ingesting).await?;
    let file = std::fs::File::open(path).map_err(|source| IngestError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let progress = progress.unwrap_or_else(|| Arc::new(|_| {}));
    let reader = ProgressReader {
        inner: file,
        progress,
    };
    match parse_into_store(reader, &dump.id, store, options).await {
        Ok(stored) => {
            let parse = &stored.aggregates.parse;
            catalog
                .mark_ready(&dump.id, parse.objects, parse.bad_lines)
                .await?;
            let dump = catalog.get_dump(&dump.id).await?;
            tracing::info!(dump = %dump.id, objects = parse.objects, bad_lines = parse.bad_lines, "dump ingested");
            Ok(ImportOutcome {
                dump,
                already_imported: false,
                stored: Some(stored),
            })
        }
        Err(error) => {
            let reason = error_chain(&error);
            tracing::warn!(dump = %dump.id, reason = %reason, "dump ingest failed");
            catalog.mark_failed(&dump.id, &reason).await?;
            Err(error)
        }
    }
}

/// Copies a dump file into the local object-store directory `root` at the dump's key, unless
/// a file of the same size is already there, and syncs it to disk. Returns the key.
async fn keep_copy(path: &Path, root: &Path, new_dump: &NewDump) -> Result<String, IngestError> {
    let dump_id = new_dump.dump_id();
    let process = &new_dump.process;
    let gzip = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("gz"));
    let key = heapfleet_objects::DumpKey {
        tenant: &process.tenant,
        host: &process.host,
        pid: process.pid,
        instance: &process.instance,
        dump_id: dump_id.as_str(),
        compression: if gzip {
            heapfleet_objects::DumpCompression::Gzip
        } else {
            heapfleet_objects::DumpCompression::None
        },
    }
    .path(&heapfleet_objects::object_store::path::Path::default())
    .map_err(|error| IngestError::Keep {
        path: path.display().to_string(),
        source: std::io::Error::other(error),
    })?;
    let source = path.to_path_buf();
    let root = root.to_path_buf();
    let size = new_dump.size_bytes;
    let key_text = key.to_string();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&root)?;
        let local = heapfleet_objects::object_store::local::LocalFileSystem::new_with_prefix(&root)
            .map_err(std::io::Error::other)?;
        let target = local
            .path_to_filesystem(&key)
            .map_err(std::io::Error::other)?;
        if std::fs::metadata(&target).is_ok_and(|metadata| metadata.len() == size) {
            return Ok(());
        }
        let directory = target
            .parent()
            .ok_or_else(|| std::io::Error::other("the dump's key has no directory"))?;
        std::fs::create_dir_all(directory)?;
        // Written under a temporary name and renamed, so a crash never leaves half a copy at
        // the key.
        let partial = target.with_extension("partial");
        std::fs::copy(&source, &partial)?;
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, &target)?;
        std::fs::File::open(directory)?.sync_all()?;
        Ok(())
    })
    .await
    .map_err(IngestError::TaskFailed)?
    .map_err(|source| IngestError::Keep {
        path: path.display().to_string(),
        source,
    })?;
    Ok(key_text)
}

/// Returns an error and its sources joined by ": ", for a one-line reason.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use heapfleet_catalog::{ProcessKey, SqliteCatalog};
    use heapfleet_storage::MemoryStore;

    use super::*;

    fn new_dump(file_name: &str) -> NewDump {
        NewDump {
            process: ProcessKey {
                tenant: "t".to_owned(),
                host: "h".to_owned(),
                pid: 1,
                instance: String::new(),
            },
            taken_at_unix: 1_700_000_000,
            jobs: None,
            role: None,
            labels: BTreeMap::new(),
            file_name: file_name.to_owned(),
            size_bytes: 0,
            content_sha256: String::new(),
            gc_count: None,
            rss_bytes: None,
            object_key: None,
        }
    }

    #[tokio::test]
    async fn test_import_file_twice_stores_one_identical_result() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(dir.path()).await.unwrap();
        let store: Arc<dyn AggregateStore> = Arc::new(MemoryStore::new());
        let dump = heapfleet_tests::fixture("dumps/small")
            .read_dir()
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "dump")
            })
            .unwrap();

        let first = import_file(
            &dump,
            new_dump("a.dump"),
            &catalog,
            store.clone(),
            ParseOptions::default(),
            None,
            None,
        )
        .await
        .unwrap();
        assert!(!first.already_imported);
        assert_eq!(first.dump.status, DumpStatus::Ready);
        let stored_first = store
            .get_dump_aggregates(first.dump.id.as_str())
            .await
            .unwrap();
        let index_first = store.load_index(first.dump.id.as_str()).await.unwrap();
        assert_eq!(index_first.entries.len() as u64, first.dump.objects);

        let second = import_file(
            &dump,
            new_dump("a.dump"),
            &catalog,
            store.clone(),
            ParseOptions::default(),
            None,
            None,
        )
        .await
        .unwrap();
        assert!(second.already_imported);
        assert_eq!(second.dump.id, first.dump.id);

        // A forced re-ingest under the same id overwrites: same rows, same index, no doubling.
        let file = std::fs::File::open(&dump).unwrap();
        parse_into_store(file, &first.dump.id, store.clone(), ParseOptions::default())
            .await
            .unwrap();
        assert_eq!(
            store
                .get_dump_aggregates(first.dump.id.as_str())
                .await
                .unwrap(),
            stored_first
        );
        assert_eq!(
            store
                .load_index(first.dump.id.as_str())
                .await
                .unwrap()
                .entries,
            index_first.entries
        );
    }

    #[tokio::test]
    async fn test_import_file_marks_a_dump_without_objects_failed() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(dir.path()).await.unwrap();
        let store: Arc<dyn AggregateStore> = Arc::new(MemoryStore::new());
        let binary = heapfleet_tests::fixture("dumps/bad/binary.dump");
        let error = import_file(
            &binary,
            new_dump("binary.dump"),
            &catalog,
            store,
            ParseOptions::default(),
            None,
            None,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, IngestError::NoObjects { bad_lines: 14, .. }),
            "{error}"
        );
        let dumps = catalog
            .list_dumps(&heapfleet_catalog::DumpFilter::for_tenant("t"))
            .await
            .unwrap();
        assert_eq!(dumps.len(), 1);
        let reason = dumps[0].status.failure_reason().unwrap();
        assert!(
            reason.contains("no heap objects") && reason.contains("line 1"),
            "{reason}"
        );
    }
}
