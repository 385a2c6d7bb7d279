//! The aggregate-store conformance suite on a real CQL server (Apache Cassandra 5, standing in
//! for ScyllaDB), which scripts/test.sh starts and names in `HEAPFLEET_TEST_SCYLLA_URI`; plus a
//! real dump ingested into it equals the same dump ingested into the embedded store.

use std::sync::Arc;

use heapfleet_catalog::DumpId;
use heapfleet_dump::ParseOptions;
use heapfleet_ingest::parse_into_store;
use heapfleet_storage::{AggregateStore, MemoryStore, ScyllaConfig, ScyllaStore};
use heapfleet_tests::{fixture, service_url};

async fn connect() -> Option<ScyllaStore> {
    let uri = service_url("HEAPFLEET_TEST_SCYLLA_URI")?;
    Some(
        ScyllaStore::connect(&ScyllaConfig::single_node(uri, "heapfleet_test"))
            .await
            .expect("Cassandra accepts the schema"),
    )
}

#[tokio::test]
async fn test_scylla_store_passes_the_conformance_suite() {
    let Some(store) = connect().await else { return };
    heapfleet_storage::testsuite::run_aggregate_store_test_suite(&store).await;
}

#[tokio::test]
async fn test_scylla_store_reconnects_to_an_existing_schema() {
    let Some(first) = connect().await else { return };
    drop(first);
    // The schema is already there: connecting again applies nothing and keeps working.
    let store = connect().await.expect("service is configured");
    assert!(matches!(
        store.get_site_stats("d-never-stored").await,
        Err(heapfleet_storage::StorageError::NotFound(_))
    ));
}

#[tokio::test]
async fn test_real_dump_stored_in_cassandra_equals_the_embedded_store() {
    let Some(store) = connect().await else { return };
    let cassandra: Arc<dyn AggregateStore> = Arc::new(store);
    let memory: Arc<dyn AggregateStore> = Arc::new(MemoryStore::new());
    let dump = std::fs::read_dir(fixture("dumps/small"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.extension()
                .is_some_and(|extension| extension == "dump")
        })
        .unwrap();
    let id: DumpId = format!("d-{:016x}", std::process::id() as u64 * 7919 + 17)
        .parse()
        .unwrap();
    for store in [&cassandra, &memory] {
        let file = std::fs::File::open(&dump).unwrap();
        parse_into_store(file, &id, store.clone(), ParseOptions::default())
            .await
            .unwrap();
    }
    assert_eq!(
        cassandra.get_dump_aggregates(id.as_str()).await.unwrap(),
        memory.get_dump_aggregates(id.as_str()).await.unwrap()
    );
    let from_cassandra = cassandra.load_index(id.as_str()).await.unwrap();
    let from_memory = memory.load_index(id.as_str()).await.unwrap();
    assert_eq!(from_cassandra.entries, from_memory.entries);
    assert_eq!(from_cassandra.sites, from_memory.sites);
    cassandra.delete_dump(id.as_str()).await.unwrap();
}
