//! The [`Catalog`] trait: what the gateway, ingesters and query service ask of the catalog,
//! in domain types only. Backends implement it; callers hold an `Arc<dyn Catalog>`.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{
    DumpFilter, DumpId, DumpRecord, DumpStatus, Job, NewDump, OwnershipOutcome, OwnershipState,
    ProcessSummary, QueueStats,
};

/// The catalog of dumps: which dumps exist, whose they are and where each is in its life.
///
/// Every implementation runs the same conformance suite (`testsuite` feature).
///
/// The ingest job queue works on the same dump rows: a queued job is a dump in
/// [`DumpStatus::Queued`], a claimed one is [`DumpStatus::Ingesting`] with a lease held by one
/// worker, and each claim counts an attempt. A worker claims ([`Catalog::claim_job`]), renews
/// its lease while it works ([`Catalog::renew_lease`]) and ends the job with
/// [`Catalog::complete_job`], [`Catalog::fail_job`] or, on shutdown, [`Catalog::release_job`].
/// A worker that crashes stops renewing; once its lease expires another worker claims the job.
/// Only the lease holder may end a job, so a worker that lost its lease gets `Conflict` and
/// cannot complete a job twice. Worker names must be unique per running worker (host, pid and
/// a random suffix, say): two workers with one name would be taken for each other. Lease
/// expiry reads the database's clock where the backend has one (PostgreSQL), else the system
/// clock.
///
/// A second job kind, the ownership pass, runs on the same rows once a dump is ready: a
/// successful ingest ([`Catalog::complete_job`], [`Catalog::mark_ready`]) of a dump with a
/// file in object storage queues it ([`OwnershipState::Queued`], [`DumpRecord::ownership`]),
/// and a worker claims ([`Catalog::claim_ownership_job`]), renews
/// ([`Catalog::renew_ownership_lease`]) and ends it ([`Catalog::complete_ownership_job`],
/// [`Catalog::fail_ownership_job`], [`Catalog::release_ownership_job`]) exactly as it does an
/// ingest job, under a lease and attempt count of its own. The pass belongs to one ingest: a
/// dump that leaves [`DumpStatus::Ready`] (a re-ingest, a failure, a delete) drops its pass
/// and any lease on it, and the next successful ingest queues a new one.
#[async_trait]
pub trait Catalog: Debug + Send + Sync + 'static {
    /// Registers a dump, or finds it if it is already registered.
    ///
    /// The id is [`NewDump::dump_id`], so registering the same content from the same process
    /// again returns the existing record unchanged and `false`; a new dump starts as
    /// [`DumpStatus::Uploaded`] and comes back with `true`. Fails with `Invalid` when
    /// [`NewDump::validate`] does.
    async fn register_dump(&self, new_dump: NewDump) -> Result<(DumpRecord, bool)>;

    /// Registers a dump and queues its ingest job in one transaction, as the gateway does once
    /// the dump's file is durable: a new dump starts [`DumpStatus::Queued`], and one already
    /// registered but never queued ([`DumpStatus::Uploaded`]) is queued. A dump already
    /// queued, ingesting, ready or failed is returned unchanged (a failed dump is retried only
    /// through [`Catalog::enqueue`], on purpose). The `bool` is `true` when the dump is new.
    async fn register_and_enqueue(&self, new_dump: NewDump) -> Result<(DumpRecord, bool)> {
        self.register_and_enqueue_traced(new_dump, None).await
    }

    /// [`Catalog::register_and_enqueue`], keeping the upload's W3C trace context with the job
    /// when this call creates or queues it; the claim returns it ([`Job::trace_context`]) so
    /// the ingest's span can link to the upload's. The text is opaque here; `Invalid` if it
    /// holds a NUL character ([`NewDump::validate_trace_context`]).
    async fn register_and_enqueue_traced(
        &self,
        new_dump: NewDump,
        trace_context_opt: Option<&str>,
    ) -> Result<(DumpRecord, bool)>;

    /// Returns one dump, `NotFound` if it is not registered.
    async fn get_dump(&self, id: &DumpId) -> Result<DumpRecord>;

    /// Returns the dumps `filter` matches (see [`DumpFilter::matches`]), ordered by host, pid,
    /// instance, taken-at time and id (text compared bytewise). `Invalid` for an empty tenant.
    async fn list_dumps(&self, filter: &DumpFilter) -> Result<Vec<DumpRecord>>;

    /// Sets a dump's status. Moving to [`DumpStatus::Ingesting`] counts an attempt; moving to
    /// any state but [`DumpStatus::Failed`] clears the failure reason. This is the queue's
    /// override, not part of it: it clears any ingest lease, so a dump set to ingesting here is
    /// never re-claimed by lease expiry. Moving to any state but [`DumpStatus::Ready`] drops
    /// the dump's ownership pass and any lease on it; moving to ready leaves the pass as it is
    /// (none, unless the dump was ready already).
    async fn set_status(&self, id: &DumpId, status: DumpStatus) -> Result<()>;

    /// Records a successful ingest: the heap objects and malformed lines it found, and status
    /// [`DumpStatus::Ready`], in one atomic update. Clears any lease (see
    /// [`Catalog::complete_job`] for the lease holder's way). Queues the dump's ownership pass
    /// afresh ([`OwnershipState::Queued`], no attempts, any earlier pass's state, reason and
    /// lease dropped) when the dump has an object key; without one it has no pass.
    async fn mark_ready(&self, id: &DumpId, objects: u64, bad_lines: u64) -> Result<()>;

    /// Records a failed ingest with the reason people will read.
    async fn mark_failed(&self, id: &DumpId, reason: &str) -> Result<()> {
        self.set_status(
            id,
            DumpStatus::Failed {
                reason: reason.to_owned(),
            },
        )
        .await
    }

    /// Queues a dump for ingest: an [`DumpStatus::Uploaded`] or [`DumpStatus::Failed`] dump
    /// becomes [`DumpStatus::Queued`] and `true` comes back. A failed dump's reason is cleared
    /// and its attempt count starts again from 0, so a retry asked for by a person gets the
    /// full attempt budget. A dump already queued, ingesting or ready is left unchanged and
    /// `false` comes back, so enqueueing twice is harmless. A queued dump has no ownership
    /// pass. `NotFound` for an unknown dump.
    async fn enqueue(&self, id: &DumpId) -> Result<bool>;

    /// Claims one job for `worker` with a lease of `lease`, or returns `None` when there is
    /// nothing to do.
    ///
    /// The job is the oldest registered dump that is queued or whose worker's lease expired
    /// (a crashed worker). The claim sets it [`DumpStatus::Ingesting`], counts an attempt and
    /// records the worker and the lease's expiry, atomically: two workers never claim the same
    /// job at once. An ingesting dump has no ownership pass. `tenant_opt` limits the claim to
    /// one tenant's dumps (`None`: any tenant). `Invalid` for an empty worker name or a lease
    /// under a millisecond.
    async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        tenant_opt: Option<&str>,
    ) -> Result<Option<Job>>;

    /// Returns the job queue's backlog: how many dumps are queued and ingesting, when the
    /// oldest queued one was registered, and how many ownership passes are queued and running,
    /// for `tenant_opt`'s dumps (`None`: every tenant). A cheap read of the backlog alone, for
    /// gauges polled every few seconds.
    async fn queue_stats(&self, tenant_opt: Option<&str>) -> Result<QueueStats>;

    /// Extends `worker`'s lease on a job to `lease` from now and returns the new expiry (Unix
    /// milliseconds). A holder whose lease expired may still renew it as long as no other
    /// worker claimed the job. `Conflict` when `worker` no longer holds the job (another worker
    /// claimed it, or it is no longer ingesting), `NotFound` for an unknown dump.
    async fn renew_lease(&self, id: &DumpId, worker: &str, lease: Duration) -> Result<i64>;

    /// Completes `worker`'s job: records the ingest's counts and [`DumpStatus::Ready`] as
    /// [`Catalog::mark_ready`] does (queueing the ownership pass of a dump with an object key)
    /// and ends the lease, atomically. `Conflict` when `worker` no longer holds the job,
    /// `NotFound` for an unknown dump.
    async fn complete_job(
        &self,
        id: &DumpId,
        worker: &str,
        objects: u64,
        bad_lines: u64,
    ) -> Result<()>;

    /// Fails `worker`'s job with `reason` and ends the lease. While the dump has had fewer than
    /// `max_attempts` attempts it goes back to [`DumpStatus::Queued`] for another try (the
    /// worker logs the reason; a queued dump keeps none); after that it becomes
    /// [`DumpStatus::Failed`] with `reason`, for good, so a bad dump does not loop forever.
    /// Returns the dump's new status. `Conflict` when `worker` no longer holds the job,
    /// `NotFound` for an unknown dump, `Invalid` for `max_attempts` 0.
    async fn fail_job(
        &self,
        id: &DumpId,
        worker: &str,
        reason: &str,
        max_attempts: u32,
    ) -> Result<DumpStatus>;

    /// Gives `worker`'s job back, for a graceful shutdown: the dump returns to
    /// [`DumpStatus::Queued`] and the claim's attempt is taken back, since the dump did not
    /// fail. `Conflict` when `worker` no longer holds the job, `NotFound` for an unknown dump.
    async fn release_job(&self, id: &DumpId, worker: &str) -> Result<()>;

    /// Claims one ownership pass for `worker` with a lease of `lease`, or returns `None` when
    /// there is nothing to do.
    ///
    /// The pass is that of the oldest registered [`DumpStatus::Ready`] dump whose pass is
    /// [`OwnershipState::Queued`], or [`OwnershipState::Running`] under an expired lease (a
    /// crashed worker). The claim sets it running, counts an ownership attempt and records the
    /// worker and the lease's expiry, atomically: two workers never claim the same pass at
    /// once. The [`Job`]'s `dump` is the record after the claim, its `attempt` the ownership
    /// attempt count and its `trace_context` the one the dump's upload left, if any.
    /// `tenant_opt` limits the claim to one tenant's dumps (`None`: any tenant). `Invalid` for
    /// an empty worker name or a lease under a millisecond.
    async fn claim_ownership_job(
        &self,
        worker: &str,
        lease: Duration,
        tenant_opt: Option<&str>,
    ) -> Result<Option<Job>>;

    /// Extends `worker`'s lease on an ownership pass to `lease` from now and returns the new
    /// expiry (Unix milliseconds), as [`Catalog::renew_lease`] does for an ingest job.
    /// `Conflict` when `worker` no longer holds the pass (another worker claimed it, it is no
    /// longer running, or the dump is no longer ready), `NotFound` for an unknown dump.
    async fn renew_ownership_lease(
        &self,
        id: &DumpId,
        worker: &str,
        lease: Duration,
    ) -> Result<i64>;

    /// Completes `worker`'s ownership pass with `outcome`: [`OwnershipState::Ready`], or
    /// [`OwnershipState::Skipped`] with the reason, and ends the lease, atomically. `Conflict`
    /// when `worker` no longer holds the pass, `NotFound` for an unknown dump, `Invalid` for a
    /// reason with a NUL character.
    async fn complete_ownership_job(
        &self,
        id: &DumpId,
        worker: &str,
        outcome: OwnershipOutcome,
    ) -> Result<()>;

    /// Fails `worker`'s ownership pass with `reason` and ends the lease. While the pass has had
    /// fewer than `max_attempts` attempts it goes back to [`OwnershipState::Queued`] (keeping
    /// no reason), after that it becomes [`OwnershipState::Failed`] with `reason`, for good;
    /// the dump stays ready either way. Returns the pass's new state. `Conflict` when `worker`
    /// no longer holds the pass, `NotFound` for an unknown dump, `Invalid` for `max_attempts`
    /// 0.
    async fn fail_ownership_job(
        &self,
        id: &DumpId,
        worker: &str,
        reason: &str,
        max_attempts: u32,
    ) -> Result<OwnershipState>;

    /// Gives `worker`'s ownership pass back, for a graceful shutdown: it returns to
    /// [`OwnershipState::Queued`] and the claim's attempt is taken back. `Conflict` when
    /// `worker` no longer holds the pass, `NotFound` for an unknown dump.
    async fn release_ownership_job(&self, id: &DumpId, worker: &str) -> Result<()>;

    /// Returns every process of `tenant` that has dumps, with counts, ordered by host, pid and
    /// instance. `Invalid` for an empty tenant.
    async fn list_processes(&self, tenant: &str) -> Result<Vec<ProcessSummary>>;

    /// Removes a dump from the catalog, and with it its jobs (they are the dump's row).
    /// `NotFound` if it is not registered; `Conflict` while a worker holds a live lease on it
    /// (ingesting, or its ownership pass running, lease not yet expired), so a running ingest
    /// or pass is never deleted under its worker. A dump ingesting under an expired lease is removed: its worker is presumed dead,
    /// as the queue presumes when it hands such a job to another worker, and that worker's
    /// renewal or completion then finds the dump gone. Its object-storage file and stored
    /// aggregates are the caller's to remove, before this call (see [`Catalog::begin_delete`]).
    async fn delete_dump(&self, id: &DumpId) -> Result<()>;

    /// Starts deleting a dump, the first step of a delete that removes its aggregates and file
    /// next and its row last ([`Catalog::delete_dump`]). The dump becomes
    /// [`DumpStatus::Failed`] with the reason [`DELETION_REASON`] and loses any lease and its
    /// ownership pass, atomically: no worker claims it from now on, readers that trust only `ready` dumps stop
    /// reading it, and a worker whose lease had expired can neither renew nor complete it. A
    /// delete cut short therefore leaves a row that says so, which a second delete finishes.
    /// Returns the record after the change. Calling it again is harmless.
    ///
    /// `NotFound` for an unknown dump; `Conflict`, changing nothing, while a worker holds a
    /// live lease on it (see [`Catalog::delete_dump`]).
    async fn begin_delete(&self, id: &DumpId) -> Result<DumpRecord>;

    /// Returns up to `limit` dumps taken strictly before `taken_before_unix`, oldest first (ties
    /// by id, text compared bytewise), of the tenant `tenant_opt` names (`None`: every tenant,
    /// for a retention sweep that spans them): what an age-based retention policy deletes.
    ///
    /// A dump's age is its taken time, when the process wrote it, not when it was registered:
    /// a dump uploaded late is as old as its contents, and every listing and report orders
    /// dumps by taken time too. `Invalid` for an empty tenant or a `limit` of 0.
    async fn list_dumps_taken_before(
        &self,
        tenant_opt: Option<&str>,
        taken_before_unix: i64,
        limit: usize,
    ) -> Result<Vec<DumpRecord>>;

    /// Returns whether a dump other than `id` is registered with `object_key`, so that the file
    /// is not `id`'s alone to delete. Keys the gateway builds name the dump's id and are never
    /// shared; a key registered by hand (`RegisterDump`) may be.
    async fn object_key_shared(&self, id: &DumpId, object_key: &str) -> Result<bool>;
}

/// The failure reason of a dump whose delete has begun ([`Catalog::begin_delete`]): people
/// read it in listings when a delete was cut short.
pub const DELETION_REASON: &str = "being deleted (if this stays, delete the dump again to finish)";
