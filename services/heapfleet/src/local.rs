//! The embedded backends in the data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use heapfleet_catalog::{Catalog, SqliteCatalog};
use heapfleet_objects::S3Options;
use heapfleet_service::backends::Objects;
use heapfleet_storage::{AggregateStore, SqliteStore};

/// The tenant of everything the local commands touch; tenants matter once servers are shared.
pub(crate) const LOCAL_TENANT: &str = "default";

/// The catalog and aggregate store of one data directory.
pub(crate) struct Local {
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) store: Arc<dyn AggregateStore>,
    data_dir: PathBuf,
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
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// The directory of the data directory's object store.
    pub(crate) fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }

    /// The data directory's object store (`objects/`): the files `serve` receives and the
    /// copies `import` keeps.
    pub(crate) fn objects(&self) -> anyhow::Result<Objects> {
        let objects_dir = self.objects_dir();
        let objects_url = objects_dir
            .to_str()
            .context("the data directory's path is not valid UTF-8")?;
        Objects::open(objects_url, &S3Options::default())
    }
}
