//! The embedded backends in the data directory, and resolving the dump ids people type.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use heapfleet_catalog::{Catalog, DumpFilter, DumpRecord, SqliteCatalog};
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

    /// Returns the dump whose id is `reference` or starts with it (`d-` may be left out).
    pub(crate) async fn resolve(&self, reference: &str) -> anyhow::Result<DumpRecord> {
        let wanted = if reference.starts_with("d-") {
            reference.to_owned()
        } else {
            format!("d-{reference}")
        };
        let dumps = self
            .catalog
            .list_dumps(&DumpFilter::for_tenant(LOCAL_TENANT))
            .await?;
        let mut matches = dumps
            .into_iter()
            .filter(|dump| dump.id.as_str().starts_with(&wanted));
        match (matches.next(), matches.next()) {
            (Some(dump), None) => Ok(dump),
            (None, _) => bail!("no dump matches {reference:?} (see `heapfleet dumps`)"),
            (Some(_), Some(_)) => bail!("{reference:?} matches several dumps; give more of the id"),
        }
    }
}
