//! Deleting a dump everywhere: its aggregates and object index, its file in object storage and
//! its catalog row (which is also its ingest job), the one way the gateway's `DeleteDump`,
//! `heapfleet delete` and the retention sweeps remove dumps.
//!
//! The steps run in an order a crash cannot break. First the catalog withdraws the dump
//! ([`Catalog::begin_delete`]): no worker claims it any more, readers that trust only `ready`
//! dumps stop reading it, and a dump under a live ingest lease is refused before anything is
//! touched. Then the aggregates go, then the file, and the catalog row goes last. Until that
//! last step the row still names the dump and its file, marked as being deleted, so a delete
//! cut short at any point is finished by running it again; every step succeeds on what an
//! earlier attempt already removed.
//!
//! Nothing of another dump is touched: the store deletes by dump id, and the file is deleted
//! only when its key lies under the dump's tenant's dumps prefix and no other dump in the
//! catalog names the same key (keys the gateway builds hold the dump id, but a key registered
//! by hand may be shared).
//!
//! Sees its backends only through the `Catalog`, `AggregateStore` and `ObjectStore` traits.

use std::sync::Arc;

use heapfleet_catalog::{Catalog, CatalogError, DumpId, DumpRecord};
use heapfleet_objects::object_store::path::Path as ObjectPath;
use heapfleet_objects::object_store::{self, ObjectStore, ObjectStoreExt};
use heapfleet_storage::{AggregateStore, StorageError};

/// Deletes dumps from the catalog, the aggregate store and object storage together.
#[derive(Debug, Clone)]
pub struct DumpDeleter {
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn AggregateStore>,
    objects: Arc<dyn ObjectStore>,
    objects_prefix: ObjectPath,
}

/// What became of a deleted dump's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectOutcome {
    /// The file is gone. (S3 does not say whether it was still there.)
    Deleted,
    /// The file was already gone: an earlier, interrupted delete removed it.
    AlreadyGone,
    /// The dump had no file: it was imported from a local file.
    NoObject,
    /// The file was kept: another dump in the catalog names the same key.
    KeptShared,
    /// The file was kept: its key is not a valid key under the tenant's dumps prefix, so it
    /// may belong to something else.
    KeptOutsideTenant,
}

impl ObjectOutcome {
    /// Returns the outcome's name in command output (`"deleted"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectOutcome::Deleted => "deleted",
            ObjectOutcome::AlreadyGone => "already_gone",
            ObjectOutcome::NoObject => "none",
            ObjectOutcome::KeptShared => "kept_shared",
            ObjectOutcome::KeptOutsideTenant => "kept_outside_tenant",
        }
    }
}

/// A dump that was deleted.
#[derive(Debug, Clone)]
pub struct DeletedDump {
    /// The dump as the catalog held it before the delete.
    pub dump: DumpRecord,
    /// What became of its file.
    pub object: ObjectOutcome,
}

/// Why a delete failed. The steps done so far stay done; running the delete again finishes it.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// The catalog refused or failed: `NotFound` for an unknown dump (or another tenant's),
    /// `Conflict` while a worker holds a live lease on it.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The aggregate store failed.
    #[error("failed to delete the aggregates of dump {dump}")]
    Store {
        /// The dump.
        dump: DumpId,
        /// The store's error.
        #[source]
        source: StorageError,
    },
    /// The object store failed.
    #[error("failed to delete the file {key} of dump {dump}")]
    Object {
        /// The dump.
        dump: DumpId,
        /// The file's key.
        key: String,
        /// The object store's error.
        #[source]
        source: object_store::Error,
    },
}

impl DeleteError {
    /// Returns whether the dump is not in the catalog (or is another tenant's).
    pub fn is_not_found(&self) -> bool {
        matches!(self, DeleteError::Catalog(CatalogError::NotFound(_)))
    }

    /// Returns whether a worker is ingesting the dump under a live lease, so nothing was
    /// deleted: try again once the ingest ends.
    pub fn is_being_ingested(&self) -> bool {
        matches!(self, DeleteError::Catalog(CatalogError::Conflict(_)))
    }
}

impl DumpDeleter {
    /// A deleter on these backends; `objects_prefix` is the prefix every dump file's key lies
    /// under in `objects` (see `heapfleet_objects::open_object_store`).
    pub fn new(
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn AggregateStore>,
        objects: Arc<dyn ObjectStore>,
        objects_prefix: ObjectPath,
    ) -> DumpDeleter {
        DumpDeleter {
            catalog,
            store,
            objects,
            objects_prefix,
        }
    }

    /// The catalog dumps are deleted from.
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    /// Deletes `tenant`'s dump `id` everywhere (see the module docs for the order).
    ///
    /// `NotFound` when the catalog has no such dump of `tenant`, which is also the answer to a
    /// retry of a delete that finished; `Conflict` (see [`DeleteError::is_being_ingested`])
    /// while a worker ingests it under a live lease, with nothing deleted.
    pub async fn delete(&self, tenant: &str, id: &DumpId) -> Result<DeletedDump, DeleteError> {
        let dump = self.catalog.get_dump(id).await?;
        // Tenants never touch each other's dumps, nor learn that one exists.
        if dump.process.tenant != tenant {
            return Err(CatalogError::NotFound(format!("dump {id}")).into());
        }
        // First, so that no worker starts an ingest that would write aggregates again, and so
        // that a live ingest stops the delete before anything is gone.
        self.catalog.begin_delete(id).await?;
        self.store
            .delete_dump(id.as_str())
            .await
            .map_err(|source| DeleteError::Store {
                dump: id.clone(),
                source,
            })?;
        let object = self.delete_object(&dump).await?;
        // Last: until the row is gone, a retry finds the dump and its file's key.
        match self.catalog.delete_dump(id).await {
            // A concurrent delete of the same dump removed the row first; it is gone either way.
            Ok(()) | Err(CatalogError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
        // Callers log the delete in their own words (an RPC, a retention sweep).
        tracing::debug!(
            dump = %id,
            tenant,
            host = %dump.process.host,
            pid = dump.process.pid,
            taken_at_unix = dump.taken_at_unix,
            object = object.as_str(),
            "dump deleted"
        );
        Ok(DeletedDump { dump, object })
    }

    /// Deletes the dump's file, unless it has none or the file may not be the dump's alone.
    async fn delete_object(&self, dump: &DumpRecord) -> Result<ObjectOutcome, DeleteError> {
        let Some(key_text) = &dump.object_key else {
            return Ok(ObjectOutcome::NoObject);
        };
        let key_opt = ObjectPath::parse(key_text).ok().filter(|key| {
            heapfleet_objects::dumps_prefix(&self.objects_prefix, &dump.process.tenant)
                .is_ok_and(|tenant_prefix| key.prefix_matches(&tenant_prefix))
        });
        let Some(key) = key_opt else {
            tracing::warn!(dump = %dump.id, key = %key_text, "kept the dump's file: its key is not under the tenant's dumps prefix");
            return Ok(ObjectOutcome::KeptOutsideTenant);
        };
        if self.catalog.object_key_shared(&dump.id, key_text).await? {
            tracing::warn!(dump = %dump.id, key = %key_text, "kept the dump's file: another dump names it too");
            return Ok(ObjectOutcome::KeptShared);
        }
        match self.objects.delete(&key).await {
            Ok(()) => Ok(ObjectOutcome::Deleted),
            Err(object_store::Error::NotFound { .. }) => Ok(ObjectOutcome::AlreadyGone),
            Err(source) => Err(DeleteError::Object {
                dump: dump.id.clone(),
                key: key_text.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    use heapfleet_catalog::{DumpStatus, NewDump, ProcessKey, SqliteCatalog};
    use heapfleet_dump::ParseOptions;
    use heapfleet_objects::object_store::PutPayload;
    use heapfleet_objects::object_store::local::LocalFileSystem;
    use heapfleet_objects::{DumpCompression, DumpKey};
    use heapfleet_storage::MemoryStore;

    use super::*;
    use crate::parse_into_store;

    const TENANT: &str = "acme";

    /// The backends of one test: a temporary catalog, an in-memory store, and dump files in a
    /// temporary directory (as in the embedded shape) under the prefix `pre`.
    struct Backends {
        catalog: Arc<SqliteCatalog>,
        store: Arc<MemoryStore>,
        objects: Arc<LocalFileSystem>,
        deleter: DumpDeleter,
        _directory: tempfile::TempDir,
    }

    fn prefix() -> ObjectPath {
        ObjectPath::from("pre")
    }

    async fn backends() -> Backends {
        let directory = tempfile::tempdir().unwrap();
        let catalog = Arc::new(SqliteCatalog::open(directory.path()).await.unwrap());
        let store = Arc::new(MemoryStore::new());
        let objects_directory = directory.path().join("objects");
        std::fs::create_dir_all(&objects_directory).unwrap();
        let objects = Arc::new(LocalFileSystem::new_with_prefix(&objects_directory).unwrap());
        let deleter = DumpDeleter::new(catalog.clone(), store.clone(), objects.clone(), prefix());
        Backends {
            catalog,
            store,
            objects,
            deleter,
            _directory: directory,
        }
    }

    fn fixture_dump() -> PathBuf {
        heapfleet_tests::fixture("dumps/small/heap-1795773583.dump")
    }

    fn new_dump(tenant: &str, pid: u32) -> NewDump {
        let (size_bytes, content_sha256) = crate::file_size_and_sha256(&fixture_dump()).unwrap();
        NewDump {
            process: ProcessKey {
                tenant: tenant.to_owned(),
                host: "web-1".to_owned(),
                pid,
                instance: String::new(),
            },
            taken_at_unix: 1_700_000_000,
            jobs: None,
            role: None,
            labels: BTreeMap::new(),
            file_name: "heap.dump".to_owned(),
            size_bytes,
            content_sha256,
            gc_count: None,
            rss_bytes: None,
            object_key: None,
        }
    }

    fn layout_key(new_dump: &NewDump) -> ObjectPath {
        DumpKey {
            tenant: &new_dump.process.tenant,
            host: &new_dump.process.host,
            pid: new_dump.process.pid,
            instance: &new_dump.process.instance,
            dump_id: new_dump.dump_id().as_str(),
            compression: DumpCompression::None,
        }
        .path(&prefix())
        .unwrap()
    }

    impl Backends {
        /// Uploads, registers and ingests a real dump as the stack does, with its file at
        /// `key_opt` (its layout key when `None`).
        async fn ready_dump(&self, mut new_dump: NewDump, key_opt: Option<ObjectPath>) -> DumpId {
            let key = key_opt.unwrap_or_else(|| layout_key(&new_dump));
            self.objects
                .put(
                    &key,
                    PutPayload::from(std::fs::read(fixture_dump()).unwrap()),
                )
                .await
                .unwrap();
            new_dump.object_key = Some(key.to_string());
            let (record, _) = self.catalog.register_and_enqueue(new_dump).await.unwrap();
            let file = std::fs::File::open(fixture_dump()).unwrap();
            let stored = parse_into_store(
                file,
                &record.id,
                self.store.clone(),
                ParseOptions::default(),
            )
            .await
            .unwrap();
            let parse = &stored.aggregates.parse;
            self.catalog
                .mark_ready(&record.id, parse.objects, parse.bad_lines)
                .await
                .unwrap();
            record.id
        }

        async fn object_exists(&self, id: &DumpId) -> bool {
            let key = self.catalog.get_dump(id).await.map(|dump| dump.object_key);
            let key = match key {
                Ok(Some(key)) => key,
                _ => return false,
            };
            self.objects
                .head(&ObjectPath::parse(key).unwrap())
                .await
                .is_ok()
        }

        async fn key_exists(&self, key: &ObjectPath) -> bool {
            self.objects.head(key).await.is_ok()
        }

        async fn store_holds(&self, id: &DumpId) -> bool {
            let aggregates = self.store.get_dump_aggregates(id.as_str()).await;
            let index = self.store.load_index(id.as_str()).await;
            match (aggregates, index) {
                (Ok(_), Ok(_)) => true,
                (Err(StorageError::NotFound(_)), Err(StorageError::NotFound(_))) => false,
                other => panic!("a dump half stored: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn test_delete_removes_the_dump_everywhere_and_nothing_else() {
        let backends = backends().await;
        let deleted = backends.ready_dump(new_dump(TENANT, 1), None).await;
        let kept = backends.ready_dump(new_dump(TENANT, 2), None).await;
        let kept_record = backends.catalog.get_dump(&kept).await.unwrap();
        let kept_aggregates = backends
            .store
            .get_dump_aggregates(kept.as_str())
            .await
            .unwrap();
        let deleted_key = ObjectPath::parse(
            backends
                .catalog
                .get_dump(&deleted)
                .await
                .unwrap()
                .object_key
                .unwrap(),
        )
        .unwrap();
        assert!(backends.store_holds(&deleted).await);

        let outcome = backends.deleter.delete(TENANT, &deleted).await.unwrap();
        assert_eq!(outcome.dump.id, deleted);
        assert_eq!(outcome.dump.status, DumpStatus::Ready);
        assert_eq!(outcome.object, ObjectOutcome::Deleted);
        assert!(matches!(
            backends.catalog.get_dump(&deleted).await,
            Err(CatalogError::NotFound(_))
        ));
        assert!(!backends.store_holds(&deleted).await);
        assert!(!backends.key_exists(&deleted_key).await);

        assert_eq!(backends.catalog.get_dump(&kept).await.unwrap(), kept_record);
        assert!(backends.object_exists(&kept).await);
        assert_eq!(
            backends
                .store
                .get_dump_aggregates(kept.as_str())
                .await
                .unwrap(),
            kept_aggregates
        );
        assert!(backends.store_holds(&kept).await);

        // A retry of a delete that finished: the dump is unknown.
        let again = backends.deleter.delete(TENANT, &deleted).await.unwrap_err();
        assert!(again.is_not_found(), "{again}");
    }

    #[tokio::test]
    async fn test_delete_finishes_a_delete_cut_short_at_any_step() {
        let backends = backends().await;
        // Cut short after the catalog withdrew the dump.
        let withdrawn = backends.ready_dump(new_dump(TENANT, 1), None).await;
        backends.catalog.begin_delete(&withdrawn).await.unwrap();
        // Cut short after the aggregates went.
        let unstored = backends.ready_dump(new_dump(TENANT, 2), None).await;
        backends.catalog.begin_delete(&unstored).await.unwrap();
        backends.store.delete_dump(unstored.as_str()).await.unwrap();
        // Cut short after the file went too, just before the row.
        let fileless = backends.ready_dump(new_dump(TENANT, 3), None).await;
        backends.catalog.begin_delete(&fileless).await.unwrap();
        backends.store.delete_dump(fileless.as_str()).await.unwrap();
        let fileless_key = layout_key(&new_dump(TENANT, 3));
        backends.objects.delete(&fileless_key).await.unwrap();

        for (id, object) in [
            (&withdrawn, ObjectOutcome::Deleted),
            (&unstored, ObjectOutcome::Deleted),
            (&fileless, ObjectOutcome::AlreadyGone),
        ] {
            let key = ObjectPath::parse(
                backends
                    .catalog
                    .get_dump(id)
                    .await
                    .unwrap()
                    .object_key
                    .unwrap(),
            )
            .unwrap();
            let outcome = backends.deleter.delete(TENANT, id).await.unwrap();
            assert_eq!(outcome.object, object, "{id}");
            assert!(matches!(
                backends.catalog.get_dump(id).await,
                Err(CatalogError::NotFound(_))
            ));
            assert!(!backends.store_holds(id).await);
            assert!(!backends.key_exists(&key).await);
        }
    }

    #[tokio::test]
    async fn test_delete_refuses_a_dump_under_a_live_lease_and_touches_nothing() {
        let backends = backends().await;
        let id = backends.ready_dump(new_dump(TENANT, 1), None).await;
        backends
            .catalog
            .set_status(&id, DumpStatus::Queued)
            .await
            .unwrap();
        let job = backends
            .catalog
            .claim_job("worker-a", Duration::from_secs(600), Some(TENANT))
            .await
            .unwrap()
            .expect("the queued dump is claimed");
        assert_eq!(job.dump.id, id);

        let error = backends.deleter.delete(TENANT, &id).await.unwrap_err();
        assert!(error.is_being_ingested(), "{error}");
        assert!(error.to_string().contains("worker-a"), "{error}");
        assert_eq!(backends.catalog.get_dump(&id).await.unwrap(), job.dump);
        assert!(backends.store_holds(&id).await);
        assert!(backends.object_exists(&id).await);

        // Once the worker is done, the delete goes through.
        backends
            .catalog
            .complete_job(&id, "worker-a", 1, 0)
            .await
            .unwrap();
        backends.deleter.delete(TENANT, &id).await.unwrap();
        assert!(!backends.store_holds(&id).await);
    }

    #[tokio::test]
    async fn test_delete_answers_not_found_for_unknown_and_other_tenants_dumps() {
        let backends = backends().await;
        let id = backends.ready_dump(new_dump(TENANT, 1), None).await;
        let error = backends.deleter.delete("other", &id).await.unwrap_err();
        assert!(error.is_not_found(), "{error}");
        assert_eq!(
            backends.catalog.get_dump(&id).await.unwrap().status,
            DumpStatus::Ready
        );
        assert!(backends.store_holds(&id).await);
        assert!(backends.object_exists(&id).await);
        let unknown = new_dump(TENANT, 99).dump_id();
        let error = backends.deleter.delete(TENANT, &unknown).await.unwrap_err();
        assert!(error.is_not_found(), "{error}");
        assert_eq!(error.to_string(), format!("dump {unknown} not found"));
    }

    #[tokio::test]
    async fn test_delete_keeps_a_file_that_may_not_be_the_dumps_alone() {
        let backends = backends().await;
        // Two dumps registered by hand with one file.
        let shared_key = ObjectPath::from("pre/dumps/acme/web-1/by-hand.dump");
        let first = backends
            .ready_dump(new_dump(TENANT, 1), Some(shared_key.clone()))
            .await;
        let second = backends
            .ready_dump(new_dump(TENANT, 2), Some(shared_key.clone()))
            .await;
        // A key outside the tenant's dumps.
        let foreign_key = ObjectPath::from("pre/dumps/other/web-1/1-/x.dump");
        let foreign = backends
            .ready_dump(new_dump(TENANT, 3), Some(foreign_key.clone()))
            .await;

        let outcome = backends.deleter.delete(TENANT, &first).await.unwrap();
        assert_eq!(outcome.object, ObjectOutcome::KeptShared);
        assert!(backends.key_exists(&shared_key).await);
        assert!(backends.store_holds(&second).await);
        // The last dump naming the file takes it along.
        let outcome = backends.deleter.delete(TENANT, &second).await.unwrap();
        assert_eq!(outcome.object, ObjectOutcome::Deleted);
        assert!(!backends.key_exists(&shared_key).await);

        let outcome = backends.deleter.delete(TENANT, &foreign).await.unwrap();
        assert_eq!(outcome.object, ObjectOutcome::KeptOutsideTenant);
        assert!(backends.key_exists(&foreign_key).await);
        assert!(!backends.store_holds(&foreign).await);
    }
}
