//! The embedded backends in the data directory.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use heapfleet_catalog::{Catalog, SqliteCatalog};
use heapfleet_storage::{AggregateStore, SqliteStore};

/// The tenant of everything the local commands touch; tenants matter once servers are shared.
pub(crate) const LOCAL_TENANT: &str = "default";

/// The catalog and aggregate store of one data directory.
pub(crate) struct Local {
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) store: Arc<dyn AggregateStore>,
}

impl Local {
    /// Opens (creating if needed) the embedded catalog and store under `data_dir`.
    pub(crate) async fn open(data_dir: &Path) -> anyhow::Result<Local> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("failed to create data directory {}", data_dir.display()))?;
        let catalog = SqliteCatalog::open(data_dir)
            .await
            .with_context(|| format!("failed to open the catalog in {}", data_dir.display()))?;
        let store = SqliteStore::open(data_dir).await.with_context(|| {
            format!(
                "failed to open the aggregate store in {}",
                data_dir.display()
            )
        })?;
        Ok(Local {
            catalog: Arc::new(catalog),
            store: Arc::new(store),
        })
    }
}
