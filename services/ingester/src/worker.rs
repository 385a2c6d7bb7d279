//! The worker: claim a job, stream its dump from object storage through the parser into the
//! aggregate store while renewing the lease, then complete, fail or give back the job.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use heapfleet_catalog::{Catalog, CatalogError, DumpId, DumpStatus, Job};
use heapfleet_dump::ParseOptions;
use heapfleet_ingest::{IngestError, StoredDump, error_chain, parse_into_store};
use heapfleet_objects::object_store;
use heapfleet_objects::object_store::path::Path as ObjectPath;
use heapfleet_service::backends::Objects;
use heapfleet_storage::AggregateStore;
use tokio_util::sync::CancellationToken;

use crate::WorkerSettings;

/// Runs ingest jobs from the catalog's queue.
#[derive(Debug, Clone)]
pub struct Ingester {
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn AggregateStore>,
    objects: Objects,
    settings: WorkerSettings,
}

/// Why one job's ingest failed, and whether another attempt can succeed.
#[derive(Debug)]
struct JobError {
    reason: String,
    permanent: bool,
}

/// How a job ended.
enum Outcome {
    Finished(Box<Result<StoredDump, JobError>>),
    LeaseLost,
    GivenBack,
}

impl Ingester {
    /// A worker on these backends.
    pub fn new(
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn AggregateStore>,
        objects: Objects,
        settings: WorkerSettings,
    ) -> Ingester {
        Ingester {
            catalog,
            store,
            objects,
            settings,
        }
    }

    /// The catalog the worker claims from.
    pub fn catalog(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    /// The aggregate store the worker writes to.
    pub fn store(&self) -> Arc<dyn AggregateStore> {
        self.store.clone()
    }

    /// The object store the worker reads dumps from.
    pub fn objects(&self) -> Objects {
        self.objects.clone()
    }

    /// Runs `concurrency` job slots until `shutdown` is cancelled, then lets each running job
    /// finish within the grace period or gives its lease back.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut slots = tokio::task::JoinSet::new();
        for slot in 0..self.settings.concurrency {
            let worker = if self.settings.concurrency == 1 {
                self.settings.name.clone()
            } else {
                format!("{}/{slot}", self.settings.name)
            };
            slots.spawn(self.clone().slot(worker, shutdown.clone()));
        }
        while let Some(result) = slots.join_next().await {
            if let Err(error) = result {
                tracing::error!(%error, "an ingest slot stopped unexpectedly");
            }
        }
    }

    /// One slot: claims and runs jobs one at a time.
    async fn slot(self, worker: String, shutdown: CancellationToken) {
        tracing::info!(%worker, "ingest worker started");
        let mut idle = self.settings.poll_interval;
        while !shutdown.is_cancelled() {
            let claimed = self
                .catalog
                .claim_job(
                    &worker,
                    self.settings.lease,
                    self.settings.tenant.as_deref(),
                )
                .await;
            match claimed {
                Ok(Some(job)) => {
                    idle = self.settings.poll_interval;
                    self.run_job(&worker, job, &shutdown).await;
                    continue;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%worker, error = %error_chain(&error), "cannot claim a job; retrying");
                    idle = (idle * 2).min(Duration::from_secs(30));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(idle) => {}
                () = shutdown.cancelled() => {}
            }
        }
        tracing::info!(%worker, "ingest worker stopped");
    }

    /// Runs one claimed job to its end.
    async fn run_job(&self, worker: &str, job: Job, shutdown: &CancellationToken) {
        let id = job.dump.id.clone();
        tracing::info!(%worker, dump = %id, attempt = job.attempt, "ingest started");
        let cancel = Arc::new(AtomicBool::new(false));
        let ingest = self.ingest(&job, cancel.clone());
        tokio::pin!(ingest);
        let mut heartbeat = tokio::time::interval(self.settings.lease / 3);
        heartbeat.tick().await; // The first tick is immediate; the claim just set the lease.
        let mut give_back_at: Option<tokio::time::Instant> = None;
        let outcome = loop {
            tokio::select! {
                result = &mut ingest => break Outcome::Finished(Box::new(result)),
                _ = heartbeat.tick() => {
                    match self.catalog.renew_lease(&id, worker, self.settings.lease).await {
                        Ok(_) => {}
                        Err(CatalogError::Conflict(_) | CatalogError::NotFound(_)) => {
                            break Outcome::LeaseLost;
                        }
                        Err(error) => tracing::warn!(dump = %id, error = %error_chain(&error), "cannot renew the lease; retrying"),
                    }
                }
                () = shutdown.cancelled(), if give_back_at.is_none() => {
                    tracing::info!(dump = %id, grace = ?self.settings.shutdown_grace, "shutting down: finishing the running job");
                    give_back_at = Some(tokio::time::Instant::now() + self.settings.shutdown_grace);
                }
                () = sleep_until_opt(give_back_at) => break Outcome::GivenBack,
            }
        };
        if !matches!(outcome, Outcome::Finished(_)) {
            // Stop the parse and wait for it, so nothing of this attempt is written later.
            cancel.store(true, Ordering::Relaxed);
            let _ = ingest.await;
        }
        match outcome {
            Outcome::Finished(result) => self.finish_job(worker, &id, *result).await,
            Outcome::LeaseLost => {
                tracing::warn!(dump = %id, "lost the lease (another worker took the job); stopped");
            }
            Outcome::GivenBack => match self.catalog.release_job(&id, worker).await {
                Ok(()) => tracing::info!(dump = %id, "gave the job back for another worker"),
                Err(error) => {
                    tracing::warn!(dump = %id, error = %error_chain(&error), "cannot give the job back; its lease will expire")
                }
            },
        }
    }

    /// Completes or fails a job whose ingest ran to its end.
    async fn finish_job(&self, worker: &str, id: &DumpId, result: Result<StoredDump, JobError>) {
        match result {
            Ok(stored) => {
                let parse = &stored.aggregates.parse;
                match self
                    .catalog
                    .complete_job(id, worker, parse.objects, parse.bad_lines)
                    .await
                {
                    Ok(()) => tracing::info!(
                        dump = %id,
                        objects = parse.objects,
                        bad_lines = parse.bad_lines,
                        seconds = stored.seconds,
                        mb_per_second = parse.bytes as f64 / 1e6 / stored.seconds.max(1e-9),
                        "ingest finished"
                    ),
                    Err(error) => {
                        tracing::warn!(dump = %id, error = %error_chain(&error), "ingest finished but the job could not be completed; another worker will redo it")
                    }
                }
            }
            Err(error) => {
                let max_attempts = if error.permanent {
                    1
                } else {
                    self.settings.max_attempts
                };
                match self
                    .catalog
                    .fail_job(id, worker, &error.reason, max_attempts)
                    .await
                {
                    Ok(DumpStatus::Failed { .. }) => {
                        tracing::warn!(dump = %id, reason = %error.reason, "ingest failed for good");
                    }
                    Ok(_) => {
                        tracing::warn!(dump = %id, reason = %error.reason, "ingest failed; it will be retried")
                    }
                    Err(catalog_error) => {
                        tracing::warn!(dump = %id, reason = %error.reason, error = %error_chain(&catalog_error), "ingest failed and the failure could not be recorded; the lease will expire")
                    }
                }
            }
        }
    }

    /// Streams the job's dump from object storage through the parser into the store.
    async fn ingest(&self, job: &Job, cancel: Arc<AtomicBool>) -> Result<StoredDump, JobError> {
        let Some(key) = &job.dump.object_key else {
            return Err(JobError {
                reason: "the dump has no object key: it was imported locally, not uploaded"
                    .to_owned(),
                permanent: true,
            });
        };
        let key = ObjectPath::parse(key).map_err(|error| JobError {
            reason: format!("the stored object key {key:?} is invalid: {error}"),
            permanent: true,
        })?;
        let started = Instant::now();
        let options = ParseOptions {
            max_dump_bytes: Some(self.settings.max_decompressed_bytes),
            ..ParseOptions::default()
        };
        let stored = ingest_object(
            &self.objects,
            &key,
            &job.dump.id,
            self.store.clone(),
            options,
            cancel,
        )
        .await
        .map_err(|error| JobError {
            permanent: error.is_permanent(),
            reason: error.to_string(),
        })?;
        tracing::debug!(dump = %job.dump.id, seconds = started.elapsed().as_secs_f64(), "dump parsed and stored");
        Ok(stored)
    }
}

/// Why [`ingest_object`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectIngestError {
    /// The object could not be opened.
    #[error("cannot read {key}: {reason}")]
    Open {
        /// The object's key.
        key: String,
        /// Why.
        reason: String,
        /// Whether the object does not exist.
        not_found: bool,
    },
    /// The parse or a store write failed.
    #[error("{}", error_chain(.0))]
    Ingest(#[from] IngestError),
}

impl ObjectIngestError {
    /// Whether retrying cannot help: the object is gone, it holds no heap objects, or it is
    /// larger than the limit. Read errors and backend outages are worth retrying.
    pub fn is_permanent(&self) -> bool {
        match self {
            ObjectIngestError::Open { not_found, .. } => *not_found,
            ObjectIngestError::Ingest(error) => is_permanent(error),
        }
    }
}

/// Streams the dump at `key` from object storage through the parser into `store` under
/// `dump_id`: the worker's whole ingest, without the catalog. Setting `cancel` stops the parse
/// at its next read.
pub async fn ingest_object(
    objects: &Objects,
    key: &ObjectPath,
    dump_id: &DumpId,
    store: Arc<dyn AggregateStore>,
    options: ParseOptions,
    cancel: Arc<AtomicBool>,
) -> Result<StoredDump, ObjectIngestError> {
    let inner = objects
        .reader(key)
        .await
        .map_err(|error| ObjectIngestError::Open {
            key: key.to_string(),
            not_found: matches!(error, object_store::Error::NotFound { .. }),
            reason: error_chain(&error),
        })?;
    let reader = CancellableReader { inner, cancel };
    Ok(parse_into_store(reader, dump_id, store, options).await?)
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Whether retrying the same dump cannot help: it holds no heap objects, or it is larger than
/// the limit. Read errors (the store or the network) and store or catalog outages are retried.
fn is_permanent(error: &IngestError) -> bool {
    match error {
        IngestError::NoObjects { .. } => true,
        IngestError::Parse(parse_error) => matches!(
            parse_error,
            heapfleet_dump::ParseError::TooLarge { .. } | heapfleet_dump::ParseError::Strict(_)
        ),
        IngestError::Store(store_error) => !store_error.is_retryable(),
        IngestError::Catalog(catalog_error) => !catalog_error.is_retryable(),
        IngestError::Read { .. } | IngestError::TaskFailed(_) => false,
    }
}

/// A reader that fails once `cancel` is set, so a parse running on a blocking thread stops at
/// its next read.
struct CancellableReader<R> {
    inner: R,
    cancel: Arc<AtomicBool>,
}

impl<R: Read> Read for CancellableReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("ingest cancelled"));
        }
        self.inner.read(buffer)
    }
}
