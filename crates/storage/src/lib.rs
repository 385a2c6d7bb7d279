//! The aggregate store: per-dump site totals, duplicated strings, roots, parse statistics, the
//! chunked object index that diffs read, and each dump's ownership results (retained sizes and
//! owners per site).
//!
//! Callers hold an `Arc<dyn AggregateStore>` ([`AggregateStore`]) and speak the domain types of
//! `heapfleet-analysis`. [`SqliteStore`] is the embedded, durable store of single-node mode;
//! [`MemoryStore`] keeps everything in memory for unit tests; a ScyllaDB store for the
//! distributed stack will run the same conformance suite (`testsuite` module, behind the
//! `testsuite` feature).
//!
//! Dumps are named by plain `&str` ids (the catalog's dump id as text): this crate does not
//! depend on `heapfleet-catalog`, since backends do not depend on each other.

#![warn(missing_docs)]

mod columns;
mod error;
mod memory;
mod ownership_pack;
mod scylla;
mod site_pack;
mod sqlite;
mod store;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

pub use error::{BoxError, Result, StorageError};
pub use memory::MemoryStore;
pub use scylla::{ScyllaConfig, ScyllaConsistency, ScyllaStore};
pub use sqlite::{STORE_FILE_NAME, SqliteStore};
pub use store::{AggregateStore, DumpSiteOwnership, DumpSiteStats, SiteSeriesPoint};
