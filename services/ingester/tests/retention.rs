//! Deleting dumps on the distributed stack, on real servers: real dumps uploaded through a
//! gateway (in this process, with the aggregate store, so it serves `DeleteDump`) and ingested
//! by an ingester process into the PostgreSQL catalog, the S3-compatible object store and the
//! Cassandra store that scripts/test.sh starts. One dump is deleted: its file leaves the bucket,
//! its row the catalog, its aggregates and index the store, and the other dump stays whole and
//! queryable. Then an ingester with a retention policy deletes the dumps taken too long ago,
//! and only those. Each test uses its own tenant, so tests share the servers without seeing
//! each other's dumps; the dump files go under the object prefix `retention`. The servers, the
//! gateway, the ingester process and the comparison with a local parse come from
//! `common/mod.rs`, shared with `pipeline.rs`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    IngesterProcess, RunningGateway, Servers, assert_stored_equals_local_parse, start_gateway_on,
    unique, wait_ready,
};
use heapfleet_catalog::{CatalogError, DumpId, DumpRecord};
use heapfleet_gateway::{Limits, client};
use heapfleet_objects::object_store::ObjectStoreExt;
use heapfleet_objects::object_store::path::Path as ObjectPath;
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_query::{Queries, StoreQueries};
use heapfleet_service::backends::open_store;
use heapfleet_storage::{AggregateStore, StorageError};
use heapfleet_tests::fixture;

/// How long a test waits for the stack to ingest or delete before it fails.
const DEADLINE: Duration = Duration::from_secs(120);

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The backends of one test, as the services open them, and a gateway on them serving one
/// tenant on a loopback port (stopped on drop), its dump files under the prefix `retention`.
struct Stack {
    tenant: String,
    gateway: RunningGateway,
    store: Arc<dyn AggregateStore>,
}

impl Stack {
    async fn start(servers: &Servers, label: &str) -> Stack {
        let tenant = unique(label);
        let store = open_store(&servers.store_url()).await.unwrap();
        let gateway = start_gateway_on(
            servers,
            &tenant,
            Limits::default(),
            "retention",
            &servers.s3_options(),
            Some(store.clone()),
        )
        .await;
        Stack {
            tenant,
            gateway,
            store,
        }
    }

    /// Starts `heapfleet-ingester` for the stack's tenant, logging at debug level (retention
    /// says at debug when a sweep finds nothing due), with `extra` variables on top.
    fn start_ingester(&self, servers: &Servers, extra: &[(&str, &str)]) -> IngesterProcess {
        let mut settings = vec![("RUST_LOG", "info,heapfleet_ingester=debug")];
        settings.extend_from_slice(extra);
        IngesterProcess::start_with(servers, &self.gateway, &self.tenant, "worker", &settings)
    }

    /// Uploads `path` through the gateway as taken at `taken_at_unix` on `host`.
    async fn upload(&self, path: &Path, host: &str, taken_at_unix: i64) -> DumpId {
        let mut ingest = client::connect(&self.gateway.url).await.unwrap();
        let metadata = pb::DumpMetadata {
            host: host.to_owned(),
            pid: 4242,
            taken_at_unix,
            role: "sidekiq".to_owned(),
            ..pb::DumpMetadata::default()
        };
        let response = client::upload_file(&mut ingest, path, metadata, None)
            .await
            .unwrap();
        assert!(response.created, "{} is new", path.display());
        response.dump.unwrap().dump_id.parse().unwrap()
    }

    /// The catalog row of `id`, or `None` once it is deleted.
    async fn row(&self, id: &DumpId) -> Option<DumpRecord> {
        match self.gateway.catalog.get_dump(id).await {
            Ok(record) => Some(record),
            Err(CatalogError::NotFound(_)) => None,
            Err(error) => panic!("reading {id}: {error}"),
        }
    }

    /// Whether the bucket holds `key`.
    async fn object_exists(&self, key: &str) -> bool {
        match self
            .gateway
            .objects
            .store
            .head(&ObjectPath::from(key))
            .await
        {
            Ok(_) => true,
            Err(heapfleet_objects::object_store::Error::NotFound { .. }) => false,
            Err(error) => panic!("reading {key}: {error}"),
        }
    }

    /// Whether the store holds `id`'s aggregates (`true`) or neither them nor its object index
    /// (`false`); one without the other fails the test.
    async fn stored(&self, id: &DumpId) -> bool {
        let aggregates = self.store.get_dump_aggregates(id.as_str()).await;
        let index = self.store.load_index(id.as_str()).await;
        match (aggregates, index) {
            (Ok(_), Ok(_)) => true,
            (Err(StorageError::NotFound(_)), Err(StorageError::NotFound(_))) => false,
            (aggregates, index) => panic!(
                "{id} is half stored: aggregates {:?}, index {:?}",
                aggregates.map(drop),
                index.map(drop)
            ),
        }
    }

    /// Waits until every dump in `ids` is ready, with the ingester's log on a timeout.
    async fn wait_ready(&self, ids: &[DumpId], ingester: &IngesterProcess) {
        wait_ready(self.gateway.catalog.as_ref(), ids, DEADLINE, &|| {
            ingester.log()
        })
        .await;
    }
}

/// Two real dumps of one process (the committed series), oldest first.
fn series_dumps() -> [PathBuf; 2] {
    let directory = fixture("dumps/series");
    [
        directory.join("heap-10536-1795773583-100.dump.gz"),
        directory.join("heap-10536-1795773643-200.dump.gz"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_delete_dump_removes_one_dump_everywhere_and_keeps_the_other() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let stack = Stack::start(&servers, "delete").await;
    let ingester = stack.start_ingester(&servers, &[]);
    let [deleted_path, kept_path] = series_dumps();
    let now = unix_now();
    let deleted = stack.upload(&deleted_path, "web-1", now - 60).await;
    let kept = stack.upload(&kept_path, "web-1", now).await;
    stack
        .wait_ready(&[deleted.clone(), kept.clone()], &ingester)
        .await;

    let deleted_record = stack.row(&deleted).await.unwrap();
    let deleted_key = deleted_record.object_key.clone().unwrap();
    let kept_record = stack.row(&kept).await.unwrap();
    let kept_key = kept_record.object_key.clone().unwrap();
    assert!(stack.object_exists(&deleted_key).await);
    assert!(stack.stored(&deleted).await);

    let mut ingest = client::connect(&stack.gateway.url).await.unwrap();
    let response = ingest
        .delete_dump(pb::DeleteDumpRequest {
            dump_id: deleted.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.dump.unwrap().dump_id, deleted.as_str());
    assert_eq!(response.object, "deleted");

    // Gone everywhere: bucket, catalog, store.
    assert!(!stack.object_exists(&deleted_key).await, "{deleted_key}");
    assert_eq!(stack.row(&deleted).await, None);
    assert!(!stack.stored(&deleted).await);

    // The other dump is whole: same row, same file, same aggregates and index, and the query
    // layer still answers for it.
    assert_eq!(stack.row(&kept).await.unwrap(), kept_record);
    assert!(stack.object_exists(&kept_key).await);
    assert_stored_equals_local_parse(&stack.store, &kept, &kept_path).await;
    let queries = StoreQueries::new(
        stack.tenant.clone(),
        stack.gateway.catalog.clone(),
        stack.store.clone(),
    );
    let listed = queries
        .list_dumps(&heapfleet_query::model::DumpQuery::default())
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|dump| dump.id.clone())
            .collect::<Vec<_>>(),
        vec![kept.clone()]
    );
    let summary = queries.dump_summary(kept.as_str()).await.unwrap();
    assert_eq!(summary.dump.id, kept);
    assert_eq!(summary.dump.objects, kept_record.objects);

    // A repeat of the finished delete, a malformed id, and another tenant's gateway.
    let again = ingest
        .delete_dump(pb::DeleteDumpRequest {
            dump_id: deleted.to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound, "{again:?}");
    let malformed = ingest
        .delete_dump(pb::DeleteDumpRequest {
            dump_id: "not-an-id".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        malformed.code(),
        tonic::Code::InvalidArgument,
        "{malformed:?}"
    );
    let other = Stack::start(&servers, "delete-other").await;
    let mut other_ingest = client::connect(&other.gateway.url).await.unwrap();
    let foreign = other_ingest
        .delete_dump(pb::DeleteDumpRequest {
            dump_id: kept.to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), tonic::Code::NotFound, "{foreign:?}");
    assert!(
        stack.stored(&kept).await,
        "another tenant's gateway touched nothing"
    );

    // Clean up the shared servers.
    ingest
        .delete_dump(pb::DeleteDumpRequest {
            dump_id: kept.to_string(),
        })
        .await
        .unwrap();
    assert!(!stack.object_exists(&kept_key).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_ingester_retention_deletes_only_dumps_older_than_max_age() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let stack = Stack::start(&servers, "retention").await;
    let ingester = stack.start_ingester(
        &servers,
        &[
            ("HEAPFLEET_RETENTION_MAX_AGE", "30d"),
            ("HEAPFLEET_RETENTION_INTERVAL", "1s"),
        ],
    );
    let [old_path, young_path] = series_dumps();
    let now = unix_now();
    let young = stack.upload(&young_path, "web-1", now - 29 * 86_400).await;
    stack
        .wait_ready(std::slice::from_ref(&young), &ingester)
        .await;
    let young_record = stack.row(&young).await.unwrap();
    let young_key = young_record.object_key.clone().unwrap();
    let old = stack.upload(&old_path, "web-1", now - 31 * 86_400).await;
    let old_key = stack.row(&old).await.unwrap().object_key.unwrap();

    // A sweep takes the old dump (queued, being ingested or ready: whatever it is by then).
    let deadline = Instant::now() + DEADLINE;
    while stack.row(&old).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the old dump is still there after {DEADLINE:?}\n{}",
            ingester.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!stack.object_exists(&old_key).await, "{old_key}");
    assert!(!stack.stored(&old).await);
    let log = ingester.log();
    assert!(log_deleted(&log, &old), "{log}");

    // Sweeps after it find nothing due: the young dump outlives them, whole.
    let quiet = "retention sweep found nothing due";
    let quiet_before = ingester.log().matches(quiet).count();
    let deadline = Instant::now() + DEADLINE;
    while ingester.log().matches(quiet).count() < quiet_before + 2 {
        assert!(
            Instant::now() < deadline,
            "no later sweep within {DEADLINE:?}\n{}",
            ingester.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stack.row(&young).await.unwrap(), young_record);
    assert!(stack.object_exists(&young_key).await);
    assert_stored_equals_local_parse(&stack.store, &young, &young_path).await;
    assert!(!log_deleted(&ingester.log(), &young));

    // Clean up the shared servers.
    let mut ingest = client::connect(&stack.gateway.url).await.unwrap();
    ingest
        .delete_dump(pb::DeleteDumpRequest {
            dump_id: young.to_string(),
        })
        .await
        .unwrap();
}

/// Whether the log says retention deleted `id`.
fn log_deleted(log: &str, id: &DumpId) -> bool {
    log.lines()
        .any(|line| line.contains("retention deleted a dump") && line.contains(id.as_str()))
}
