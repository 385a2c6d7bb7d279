//! The [`Catalog`] trait: what the gateway, ingesters and query service ask of the catalog,
//! in domain types only. Backends implement it; callers hold an `Arc<dyn Catalog>`.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{DumpFilter, DumpId, DumpRecord, DumpStatus, Job, NewDump, ProcessSummary};

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
    async fn register_and_enqueue(&self, new_dump: NewDump) -> Result<(DumpRecord, bool)>;

    /// Returns one dump, `NotFound` if it is not registered.
    async fn get_dump(&self, id: &DumpId) -> Result<DumpRecord>;

    /// Returns the dumps `filter` matches (see [`DumpFilter::matches`]), ordered by host, pid,
    /// instance, taken-at time and id (text compared bytewise). `Invalid` for an empty tenant.
    async fn list_dumps(&self, filter: &DumpFilter) -> Result<Vec<DumpRecord>>;

    /// Sets a dump's status. Moving to [`DumpStatus::Ingesting`] counts an attempt; moving to
    /// any state but [`DumpStatus::Failed`] clears the failure reason. This is the queue's
    /// override, not part of it: it clears any lease, so a dump set to ingesting here is never
    /// re-claimed by lease expiry.
    async fn set_status(&self, id: &DumpId, status: DumpStatus) -> Result<()>;

    /// Records a successful ingest: the heap objects and malformed lines it found, and status
    /// [`DumpStatus::Ready`], in one atomic update. Clears any lease (see
    /// [`Catalog::complete_job`] for the lease holder's way).
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
    /// `false` comes back, so enqueueing twice is harmless. `NotFound` for an unknown dump.
    async fn enqueue(&self, id: &DumpId) -> Result<bool>;

    /// Claims one job for `worker` with a lease of `lease`, or returns `None` when there is
    /// nothing to do.
    ///
    /// The job is the oldest registered dump that is queued or whose worker's lease expired
    /// (a crashed worker). The claim sets it [`DumpStatus::Ingesting`], counts an attempt and
    /// records the worker and the lease's expiry, atomically: two workers never claim the same
    /// job at once. `tenant_opt` limits the claim to one tenant's dumps (`None`: any tenant).
    /// `Invalid` for an empty worker name or a lease under a millisecond.
    async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        tenant_opt: Option<&str>,
    ) -> Result<Option<Job>>;

    /// Extends `worker`'s lease on a job to `lease` from now and returns the new expiry (Unix
    /// milliseconds). A holder whose lease expired may still renew it as long as no other
    /// worker claimed the job. `Conflict` when `worker` no longer holds the job (another worker
    /// claimed it, or it is no longer ingesting), `NotFound` for an unknown dump.
    async fn renew_lease(&self, id: &DumpId, worker: &str, lease: Duration) -> Result<i64>;

    /// Completes `worker`'s job: records the ingest's counts and [`DumpStatus::Ready`] as
    /// [`Catalog::mark_ready`] does and ends the lease, atomically. `Conflict` when `worker` no
    /// longer holds the job, `NotFound` for an unknown dump.
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

    /// Returns every process of `tenant` that has dumps, with counts, ordered by host, pid and
    /// instance. `Invalid` for an empty tenant.
    async fn list_processes(&self, tenant: &str) -> Result<Vec<ProcessSummary>>;

    /// Removes a dump from the catalog, `NotFound` if it is not registered. Its object-storage
    /// file and stored aggregates are the caller's to remove.
    async fn delete_dump(&self, id: &DumpId) -> Result<()>;
}
