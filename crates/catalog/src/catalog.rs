//! The [`Catalog`] trait: what the gateway, ingesters and query service ask of the catalog,
//! in domain types only. Backends implement it; callers hold an `Arc<dyn Catalog>`.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{DumpFilter, DumpId, DumpRecord, DumpStatus, NewDump, ProcessSummary};

/// The catalog of dumps: which dumps exist, whose they are and where each is in its life.
///
/// Every implementation runs the same conformance suite (`testsuite` feature). The ingest job
/// queue (enqueue, claim with a lease, renew, complete, expire and retry) will be added to this
/// trait and work on the same dump rows: a queued job is a dump in [`DumpStatus::Queued`], a
/// claimed one is [`DumpStatus::Ingesting`] and counts an attempt.
#[async_trait]
pub trait Catalog: Debug + Send + Sync + 'static {
    /// Registers a dump, or finds it if it is already registered.
    ///
    /// The id is [`NewDump::dump_id`], so registering the same content from the same process
    /// again returns the existing record unchanged and `false`; a new dump starts as
    /// [`DumpStatus::Uploaded`] and comes back with `true`. Fails with `Invalid` when
    /// [`NewDump::validate`] does.
    async fn register_dump(&self, new_dump: NewDump) -> Result<(DumpRecord, bool)>;

    /// Returns one dump, `NotFound` if it is not registered.
    async fn get_dump(&self, id: &DumpId) -> Result<DumpRecord>;

    /// Returns the dumps `filter` matches (see [`DumpFilter::matches`]), ordered by host, pid,
    /// instance, taken-at time and id (text compared bytewise). `Invalid` for an empty tenant.
    async fn list_dumps(&self, filter: &DumpFilter) -> Result<Vec<DumpRecord>>;

    /// Sets a dump's status. Moving to [`DumpStatus::Ingesting`] counts an attempt; moving to
    /// any state but [`DumpStatus::Failed`] clears the failure reason.
    async fn set_status(&self, id: &DumpId, status: DumpStatus) -> Result<()>;

    /// Records a successful ingest: the heap objects and malformed lines it found, and status
    /// [`DumpStatus::Ready`], in one atomic update.
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

    /// Returns every process of `tenant` that has dumps, with counts, ordered by host, pid and
    /// instance. `Invalid` for an empty tenant.
    async fn list_processes(&self, tenant: &str) -> Result<Vec<ProcessSummary>>;

    /// Removes a dump from the catalog, `NotFound` if it is not registered. Its object-storage
    /// file and stored aggregates are the caller's to remove.
    async fn delete_dump(&self, id: &DumpId) -> Result<()>;
}
