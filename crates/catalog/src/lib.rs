//! The catalog of heap dumps: which dumps exist, which tenant and process each belongs to, its
//! metadata, and where it is in its life (uploaded, queued, ingesting, ready, failed); and the
//! job queue over those same rows (claim with a lease, renew, complete, fail, release) for two
//! kinds of job: the ingest and, once a dump is ready, its ownership pass.
//!
//! Callers hold an `Arc<dyn Catalog>` ([`Catalog`]) and speak only the domain types of this
//! crate. [`SqliteCatalog`] is the embedded, durable implementation used in single-node mode and
//! in tests; [`PostgresCatalog`] serves the distributed stack. Both pass the same conformance
//! suite (`testsuite` module, behind the `testsuite` feature).
//!
//! Invariant: this crate depends on no other backend crate (in particular not on
//! `heapfleet-storage`); ids cross that boundary as plain strings ([`DumpId::as_str`]).

#![warn(missing_docs)]

mod catalog;
mod convert;
mod error;
mod model;
mod postgres;
mod sqlite;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

pub use catalog::{Catalog, DELETION_REASON};
pub use error::{BoxError, CatalogError, Result};
pub use model::{
    DumpFilter, DumpId, DumpRecord, DumpStatus, DumpStatusKind, Job, NewDump, OwnershipOutcome,
    OwnershipState, ProcessKey, ProcessSummary, QueueStats,
};
pub use postgres::PostgresCatalog;
pub use sqlite::{CATALOG_FILE_NAME, SqliteCatalog};
