//! The worker: claim a job, stream its dump from object storage through the parser into the
//! aggregate store while renewing the lease, then complete, fail or give back the job.

use std::future::Future;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use heapfleet_catalog::{Catalog, CatalogError, DumpId, DumpStatus, Job, OwnershipOutcome};
use heapfleet_dump::ParseOptions;
use heapfleet_ingest::{
    IngestError, OwnershipError, StoredDump, StoredOwnership, error_chain, ownership_into_store,
    parse_into_store,
};
use heapfleet_objects::object_store;
use heapfleet_objects::object_store::path::Path as ObjectPath;
use heapfleet_service::backends::Objects;
use heapfleet_service::health;
use heapfleet_storage::AggregateStore;
use heapfleet_telemetry::metrics::{IngestMetrics, QueueGauges, QueueReading, metrics_enabled};
use heapfleet_telemetry::{OpenTelemetrySpanExt, propagation};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::WorkerSettings;

/// How often the queue gauges' reading is refreshed from the catalog (when metrics are on).
const QUEUE_READING_INTERVAL: Duration = Duration::from_secs(15);

/// Runs ingest jobs from the catalog's queue.
#[derive(Debug, Clone)]
pub struct Ingester {
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn AggregateStore>,
    objects: Objects,
    settings: WorkerSettings,
    metrics: IngestMetrics,
}

/// Why one job's ingest failed, and whether another attempt can succeed.
#[derive(Debug)]
struct JobError {
    reason: String,
    permanent: bool,
}

/// The two jobs a worker runs from the queue.
#[derive(Debug, Clone, Copy)]
enum JobKind {
    /// Parse a dump into its aggregates.
    Ingest,
    /// Parse it again for dominators, retained sizes and owners.
    Ownership,
}

/// How a leased job ended.
enum Leased<T> {
    /// Its work ran to its end (successfully or not).
    Finished(T),
    /// Another worker holds the job now.
    LeaseLost,
    /// The worker shuts down and the grace period is over.
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
            metrics: IngestMetrics::new(),
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

    /// Runs the queued ownership passes of the worker's tenant one after another, in this task,
    /// until none is left or `shutdown` is cancelled: `heapfleet import` runs them right after
    /// its ingests. Returns how many it ran.
    pub async fn run_queued_ownership(&self, shutdown: &CancellationToken) -> usize {
        let worker = self.settings.name.clone();
        let mut ran = 0;
        while !shutdown.is_cancelled() {
            match self.next_ownership_job(&worker, shutdown).await {
                Ok(true) => ran += 1,
                Ok(false) => break,
                Err(error) => {
                    tracing::warn!(%worker, error = %error_chain(&error), "cannot claim an ownership job");
                    break;
                }
            }
        }
        ran
    }

    /// Claims one queued ownership pass for `worker` and runs it to its end. `false` when none
    /// waits.
    async fn next_ownership_job(
        &self,
        worker: &str,
        shutdown: &CancellationToken,
    ) -> Result<bool, CatalogError> {
        let claimed = self
            .catalog
            .claim_ownership_job(worker, self.settings.lease, self.settings.tenant.as_deref())
            .await?;
        let Some(job) = claimed else {
            return Ok(false);
        };
        let span = ownership_span(worker, &job);
        self.run_ownership_job(worker, job, shutdown)
            .instrument(span)
            .await;
        Ok(true)
    }

    /// Runs `concurrency` job slots until `shutdown` is cancelled, then lets each running job
    /// finish within the grace period or gives its lease back.
    pub async fn run(self, shutdown: CancellationToken) {
        // The queue gauges, fed from the catalog only when metrics go somewhere.
        let queue_reader = metrics_enabled().then(|| {
            tokio::spawn(read_queue(
                self.catalog.clone(),
                self.settings.tenant.clone(),
                shutdown.clone(),
            ))
        });
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
        if let Some(queue_reader) = queue_reader
            && let Err(error) = queue_reader.await
        {
            tracing::error!(%error, "the queue reader stopped unexpectedly");
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
                    self.metrics.claimed(job.after_expired_lease);
                    let span = job_span(&worker, &job);
                    self.run_job(&worker, job, &shutdown).instrument(span).await;
                    continue;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%worker, error = %error_chain(&error), "cannot claim a job; retrying");
                    idle = (idle * 2).min(Duration::from_secs(30));
                    tokio::select! {
                        () = tokio::time::sleep(idle) => {}
                        () = shutdown.cancelled() => {}
                    }
                    continue;
                }
            }
            // No dump waits for its ingest: run an ownership pass, if one waits.
            match self.next_ownership_job(&worker, &shutdown).await {
                Ok(true) => {
                    idle = self.settings.poll_interval;
                    continue;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%worker, error = %error_chain(&error), "cannot claim an ownership job; retrying");
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
        let ingest = async {
            let result = self.ingest(&job, cancel.clone()).await;
            // A failure a retry may fix is most often an outage: charged now, and the job
            // claimed again at once, an outage of a few seconds would use up every attempt.
            // The attempt counts once the backends answer again; meanwhile the lease is renewed
            // as during the ingest.
            if result.as_ref().is_err_and(|error| !error.permanent) {
                let probes = [
                    ("store", health::store_probe(self.store.clone())),
                    ("objects", health::objects_probe(self.objects.clone())),
                ];
                wait_for_backends(&id, &probes, &cancel).await;
            }
            result
        };
        tokio::pin!(ingest);
        let outcome = self
            .drive_leased(&id, worker, JobKind::Ingest, ingest.as_mut(), shutdown)
            .await;
        if !matches!(outcome, Leased::Finished(_)) {
            // Stop the parse and wait for it, so nothing of this attempt is written later.
            cancel.store(true, Ordering::Relaxed);
            let _ = ingest.await;
        }
        match outcome {
            Leased::Finished(result) => self.finish_job(worker, &id, result).await,
            Leased::LeaseLost => {
                self.metrics.lease_lost();
                tracing::warn!(dump = %id, "lost the lease (another worker took the job); stopped");
            }
            Leased::GivenBack => match self.catalog.release_job(&id, worker).await {
                Ok(()) => tracing::info!(dump = %id, "gave the job back for another worker"),
                Err(error) => {
                    tracing::warn!(dump = %id, error = %error_chain(&error), "cannot give the job back; its lease will expire")
                }
            },
        }
    }

    /// Drives `work` under `worker`'s lease on a job of `kind`: renews the lease every third of
    /// its length, and on shutdown gives the work the grace period to finish. Returns when the
    /// work finishes, the lease is lost (the renewal answers `Conflict` or `NotFound`) or the
    /// grace period ends; in the last two cases `work` is left unfinished for the caller to
    /// cancel.
    async fn drive_leased<F: Future>(
        &self,
        id: &DumpId,
        worker: &str,
        kind: JobKind,
        mut work: std::pin::Pin<&mut F>,
        shutdown: &CancellationToken,
    ) -> Leased<F::Output> {
        let mut heartbeat = tokio::time::interval(self.settings.lease / 3);
        heartbeat.tick().await; // The first tick is immediate; the claim just set the lease.
        let mut give_back_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                result = &mut work => return Leased::Finished(result),
                _ = heartbeat.tick() => {
                    let renewed = match kind {
                        JobKind::Ingest => self.catalog.renew_lease(id, worker, self.settings.lease).await,
                        JobKind::Ownership => {
                            self.catalog
                                .renew_ownership_lease(id, worker, self.settings.lease)
                                .await
                        }
                    };
                    match renewed {
                        Ok(_) => {}
                        Err(CatalogError::Conflict(_) | CatalogError::NotFound(_)) => {
                            return Leased::LeaseLost;
                        }
                        Err(error) => tracing::warn!(dump = %id, error = %error_chain(&error), "cannot renew the lease; retrying"),
                    }
                }
                () = shutdown.cancelled(), if give_back_at.is_none() => {
                    tracing::info!(dump = %id, grace = ?self.settings.shutdown_grace, "shutting down: finishing the running job");
                    give_back_at = Some(tokio::time::Instant::now() + self.settings.shutdown_grace);
                }
                () = sleep_until_opt(give_back_at) => return Leased::GivenBack,
            }
        }
    }

    /// Runs one claimed ownership job to its end: parse the dump again, compute its dominator
    /// tree, retained sizes and owners, store them, and record the outcome. A dump over
    /// `max_retention_objects` is skipped without reading it; a failure never touches the
    /// dump's own status.
    async fn run_ownership_job(&self, worker: &str, job: Job, shutdown: &CancellationToken) {
        let id = job.dump.id.clone();
        if job.dump.objects > self.settings.max_retention_objects {
            let reason = format!(
                "the dump holds {} objects, more than max_retention_objects ({})",
                job.dump.objects, self.settings.max_retention_objects
            );
            self.end_ownership_job(worker, &id, Ok(OwnershipOutcome::Skipped { reason }))
                .await;
            return;
        }
        tracing::info!(%worker, dump = %id, attempt = job.attempt, "ownership pass started");
        let cancel = Arc::new(AtomicBool::new(false));
        let pass = self.ownership(&job, cancel.clone());
        tokio::pin!(pass);
        let outcome = self
            .drive_leased(&id, worker, JobKind::Ownership, pass.as_mut(), shutdown)
            .await;
        if !matches!(outcome, Leased::Finished(_)) {
            cancel.store(true, Ordering::Relaxed);
            let _ = pass.await;
        }
        match outcome {
            Leased::Finished(Ok(stored)) => {
                tracing::info!(
                    dump = %id,
                    sites = stored.ownership.sites.len(),
                    reachable_objects = stored.ownership.reachable_objects,
                    seconds = stored.seconds,
                    "ownership pass finished"
                );
                self.end_ownership_job(worker, &id, Ok(OwnershipOutcome::Ready))
                    .await;
            }
            Leased::Finished(Err(error)) if error.is_skip() => {
                let reason = error_chain(&error);
                self.end_ownership_job(worker, &id, Ok(OwnershipOutcome::Skipped { reason }))
                    .await;
            }
            Leased::Finished(Err(error)) => {
                self.end_ownership_job(worker, &id, Err(error)).await;
            }
            Leased::LeaseLost => {
                tracing::warn!(dump = %id, "lost the ownership lease (another worker took the job); stopped");
            }
            Leased::GivenBack => {
                if let Err(error) = self.catalog.release_ownership_job(&id, worker).await {
                    tracing::warn!(dump = %id, error = %error_chain(&error), "cannot give the ownership job back; its lease will expire");
                }
            }
        }
    }

    /// Records how an ownership pass ended: ready, skipped, or failed (retried up to
    /// `max_attempts` unless no retry can help).
    async fn end_ownership_job(
        &self,
        worker: &str,
        id: &DumpId,
        result: Result<OwnershipOutcome, OwnershipError>,
    ) {
        let recorded = match result {
            Ok(outcome) => {
                if let OwnershipOutcome::Skipped { reason } = &outcome {
                    tracing::info!(dump = %id, %reason, "ownership pass skipped");
                }
                self.catalog
                    .complete_ownership_job(id, worker, outcome)
                    .await
            }
            Err(error) => {
                let reason = error_chain(&error);
                let max_attempts = if error.is_permanent() {
                    1
                } else {
                    self.settings.max_attempts
                };
                self.catalog
                    .fail_ownership_job(id, worker, &reason, max_attempts)
                    .await
                    .map(|state| {
                        tracing::warn!(dump = %id, %reason, state = ?state, "ownership pass failed");
                    })
            }
        };
        if let Err(error) = recorded {
            tracing::warn!(dump = %id, error = %error_chain(&error), "cannot record the ownership pass's end; its lease will expire");
        }
    }

    /// Streams the job's dump from object storage into the ownership pass and stores the
    /// results.
    async fn ownership(
        &self,
        job: &Job,
        cancel: Arc<AtomicBool>,
    ) -> Result<StoredOwnership, OwnershipError> {
        let key = job.dump.object_key.as_deref().unwrap_or_default();
        let key = ObjectPath::parse(key).map_err(|error| OwnershipError::Open {
            reason: format!("the stored object key {key:?} is invalid: {error}"),
            gone: true,
        })?;
        let inner = self
            .objects
            .reader(&key)
            .await
            .map_err(|error| OwnershipError::Open {
                gone: matches!(error, object_store::Error::NotFound { .. }),
                reason: error_chain(&error),
            })?;
        let options = ParseOptions {
            max_dump_bytes: Some(self.settings.max_decompressed_bytes),
            ..ParseOptions::default()
        };
        ownership_into_store(
            CancellableReader { inner, cancel },
            job.dump.id.as_str(),
            self.store.clone(),
            options,
            self.settings.max_retention_objects,
            job.dump.objects,
        )
        .await
    }

    /// Completes or fails a job whose ingest ran to its end.
    async fn finish_job(&self, worker: &str, id: &DumpId, result: Result<StoredDump, JobError>) {
        match result {
            Ok(stored) => {
                let parse = &stored.aggregates.parse;
                match self
                    .complete_job(id, worker, parse.objects, parse.bad_lines)
                    .await
                {
                    Ok(()) => {
                        self.metrics.ready(
                            parse.bytes,
                            parse.objects,
                            Duration::from_secs_f64(stored.seconds),
                        );
                        tracing::info!(
                            dump = %id,
                            objects = parse.objects,
                            bad_lines = parse.bad_lines,
                            seconds = stored.seconds,
                            mb_per_second = parse.bytes as f64 / 1e6 / stored.seconds.max(1e-9),
                            "ingest finished"
                        )
                    }
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
                        self.metrics.attempt_failed(false);
                        tracing::warn!(dump = %id, reason = %error.reason, "ingest failed for good");
                    }
                    Ok(_) => {
                        self.metrics.attempt_failed(true);
                        tracing::warn!(dump = %id, reason = %error.reason, "ingest failed; it will be retried")
                    }
                    Err(catalog_error) => {
                        tracing::warn!(dump = %id, reason = %error.reason, error = %error_chain(&catalog_error), "ingest failed and the failure could not be recorded; the lease will expire")
                    }
                }
            }
        }
    }

    /// Marks the job complete, retrying while the catalog is unavailable: the dump is already
    /// stored, and a completion lost to a short outage would cost a whole second ingest. Gives
    /// up once the job is no longer this worker's (another took it after the lease expired),
    /// or after twice the lease (at least 30 s), leaving the job to expire and run again.
    async fn complete_job(
        &self,
        id: &DumpId,
        worker: &str,
        objects: u64,
        bad_lines: u64,
    ) -> Result<(), CatalogError> {
        let patience = (self.settings.lease * 2).max(Duration::from_secs(30));
        let deadline = tokio::time::Instant::now() + patience;
        let mut pause = Duration::from_millis(100);
        loop {
            match self
                .catalog
                .complete_job(id, worker, objects, bad_lines)
                .await
            {
                Err(error @ CatalogError::Unavailable { .. })
                    if tokio::time::Instant::now() + pause < deadline =>
                {
                    tracing::warn!(dump = %id, error = %error_chain(&error), "ingest finished; cannot complete the job yet, retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => return other,
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
        .map_err(|error| {
            let mut reason = error.to_string();
            if let ObjectIngestError::Ingest(IngestError::Parse(
                heapfleet_dump::ParseError::TooLarge { .. },
            )) = &error
            {
                // Name the setting, so whoever reads the failure knows what to raise.
                reason.push_str(" (the ingester's max_decompressed_bytes)");
            }
            JobError {
                permanent: error.is_permanent(),
                reason,
            }
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
    /// Whether retrying cannot help: the object is gone, it holds no heap objects, it is larger
    /// than the limit or its gzip stream is corrupt. Read errors and backend outages are worth
    /// retrying.
    pub fn is_permanent(&self) -> bool {
        match self {
            ObjectIngestError::Open { not_found, .. } => *not_found,
            ObjectIngestError::Ingest(error) => !error.is_retryable(),
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

/// The span of one ownership pass, a trace of its own.
fn ownership_span(worker: &str, job: &Job) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "ownership",
        otel.name = "ownership pass",
        otel.kind = "consumer",
        dump = %job.dump.id,
        attempt = job.attempt,
        worker = %worker,
        objects = job.dump.objects,
        trace_id = tracing::field::Empty,
    );
    propagation::record_trace_id(&span);
    span
}

/// The span of one job: a trace of its own (the job runs after the upload was answered, and
/// maybe more than once), linked to the upload's span when the job carries its trace context.
fn job_span(worker: &str, job: &Job) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "ingest",
        otel.name = "ingest dump",
        otel.kind = "consumer",
        dump = %job.dump.id,
        attempt = job.attempt,
        worker = %worker,
        bytes = job.dump.size_bytes,
        trace_id = tracing::field::Empty,
    );
    if let Some(upload) = job
        .trace_context
        .as_deref()
        .and_then(propagation::span_context_from_text)
    {
        span.add_link(upload);
    }
    propagation::record_trace_id(&span);
    span
}

/// Reads the queue's backlog from the catalog every [`QUEUE_READING_INTERVAL`] for the queue
/// gauges, until `shutdown`. The gauges' callbacks cannot wait for the catalog, so they report
/// the last reading.
async fn read_queue(
    catalog: Arc<dyn Catalog>,
    tenant_opt: Option<String>,
    shutdown: CancellationToken,
) {
    let reading = Arc::new(QueueReading::new());
    let _gauges = QueueGauges::register(reading.clone());
    let mut ticks = tokio::time::interval(QUEUE_READING_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => break,
        }
        match catalog.queue_stats(tenant_opt.as_deref()).await {
            Ok(stats) => reading.set(
                stats.queued,
                stats.ingesting,
                stats.oldest_queued_registered_at_unix,
            ),
            Err(error) => {
                tracing::debug!(error = %error_chain(&error), "cannot read the job queue for its gauges");
            }
        }
    }
    // The gauges' callbacks live as long as the meter provider: report nothing from now on.
    reading.clear();
}

/// The first pause between probes of backends that do not answer; it doubles up to
/// [`BACKEND_WAIT_MAX_PAUSE`].
const BACKEND_WAIT_FIRST_PAUSE: Duration = Duration::from_millis(250);
/// The longest pause between probes: how late, at most, a job notices its backends are back.
const BACKEND_WAIT_MAX_PAUSE: Duration = Duration::from_secs(8);

/// Waits until every probe answers, or until `cancel` is set (the lease was lost, or the
/// worker shuts down and gives the job back).
async fn wait_for_backends(id: &DumpId, probes: &[(&str, health::Probe)], cancel: &AtomicBool) {
    let mut pause = BACKEND_WAIT_FIRST_PAUSE;
    let mut waited = false;
    loop {
        let mut silent = Vec::new();
        for (name, probe) in probes {
            match tokio::time::timeout(health::PROBE_TIMEOUT, probe()).await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => silent.push(format!("{name}: {reason}")),
                Err(_) => silent.push(format!(
                    "{name}: no answer within {:?}",
                    health::PROBE_TIMEOUT
                )),
            }
        }
        if silent.is_empty() {
            if waited {
                tracing::info!(dump = %id, "the backends answer again; the failed attempt counts now");
            }
            return;
        }
        if !waited {
            tracing::warn!(dump = %id, failures = %silent.join("; "), "the ingest failed while a backend does not answer; waiting for it before the attempt counts");
            waited = true;
        }
        // In short steps, so a cancelled job stops waiting at once.
        let until = tokio::time::Instant::now() + pause;
        while tokio::time::Instant::now() < until {
            if cancel.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pause = (pause * 2).min(BACKEND_WAIT_MAX_PAUSE);
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A probe that fails `failures` times, then answers; counts its calls in `calls`.
    fn flaky_probe(failures: usize, calls: Arc<AtomicUsize>) -> health::Probe {
        Box::new(move || {
            let call = calls.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move {
                if call < failures {
                    Err("connection refused".to_owned())
                } else {
                    Ok(())
                }
            })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn test_wait_for_backends_returns_once_every_probe_answers() {
        let id: DumpId = "d-0123456789abcdef".parse().unwrap();
        let store_calls = Arc::new(AtomicUsize::new(0));
        let objects_calls = Arc::new(AtomicUsize::new(0));
        let probes = [
            ("store", flaky_probe(4, store_calls.clone())),
            ("objects", flaky_probe(0, objects_calls.clone())),
        ];
        let started = tokio::time::Instant::now();
        wait_for_backends(&id, &probes, &AtomicBool::new(false)).await;
        assert_eq!(
            store_calls.load(Ordering::Relaxed),
            5,
            "four failures, then an answer"
        );
        // Pauses of 250 ms, 500 ms, 1 s and 2 s between the five rounds.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(3750) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn test_wait_for_backends_stops_when_the_job_is_cancelled() {
        let id: DumpId = "d-0123456789abcdef".parse().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let probes = [("store", flaky_probe(usize::MAX, calls.clone()))];
        let cancel = AtomicBool::new(false);
        let waiting = wait_for_backends(&id, &probes, &cancel);
        tokio::pin!(waiting);
        // A store that never answers keeps the job waiting...
        assert!(
            tokio::time::timeout(Duration::from_secs(60), &mut waiting)
                .await
                .is_err()
        );
        // ...until the lease is lost or the worker gives the job back.
        cancel.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("a cancelled job stops waiting within a step");
        assert!(calls.load(Ordering::Relaxed) > 1);
    }
}
