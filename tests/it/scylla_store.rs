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

/// A dump stored by schema version 1 has its site rows in `site_totals`, one CQL row each, and
/// no packed blocks: the store still reads them, alone and in a bulk read.
#[tokio::test]
async fn test_scylla_store_reads_site_rows_stored_by_schema_version_1() {
    let Some(store) = connect().await else { return };
    let uri = service_url("HEAPFLEET_TEST_SCYLLA_URI").expect("service is configured");
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(uri)
        .build()
        .await
        .expect("connect");
    session
        .use_keyspace("heapfleet_test", false)
        .await
        .expect("keyspace");
    let legacy = heapfleet_storage::testsuite::unique_dump_id("schema-1");
    let packed = heapfleet_storage::testsuite::unique_dump_id("schema-2");
    let aggregates = heapfleet_storage::testsuite::sample_aggregates(4);
    for dump in [&legacy, &packed] {
        store.put_dump_aggregates(dump, &aggregates).await.unwrap();
    }
    // Turn `legacy` into what version 1 wrote: site_totals rows instead of blocks.
    session
        .query_unpaged("DELETE FROM site_blocks WHERE dump_id = ?", (&legacy,))
        .await
        .unwrap();
    for row in &aggregates.sites {
        let absent =
            i64::from(row.site.file.is_none()) | (i64::from(row.site.class_name.is_none()) << 1);
        session
            .query_unpaged(
                "INSERT INTO site_totals (dump_id, file, line, object_type, class_name, absent, \
                 generation, object_count, memsize, bytesize, reference_count) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    &legacy,
                    row.site.file.as_deref().unwrap_or(""),
                    row.site.line.map_or(-1, i64::from),
                    row.site.object_type.as_str(),
                    row.site.class_name.as_deref().unwrap_or(""),
                    absent,
                    row.generation.map_or(-1, i64::from),
                    row.totals.count as i64,
                    row.totals.memsize as i64,
                    row.totals.bytesize as i64,
                    row.totals.references as i64,
                ),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        store.get_site_stats(&legacy).await.unwrap(),
        aggregates.sites
    );
    let bulk = store
        .site_totals_for_dumps(&[&packed, &legacy])
        .await
        .unwrap();
    assert_eq!(bulk[0].sites, aggregates.sites);
    assert_eq!(bulk[1].dump, legacy);
    assert_eq!(bulk[1].sites, aggregates.sites);
    store.delete_dump(&legacy).await.unwrap();
    assert!(matches!(
        store.get_site_stats(&legacy).await,
        Err(heapfleet_storage::StorageError::NotFound(_))
    ));
}

/// Ownership site rows that belong to no stored summary (left by a writer that raced another
/// or was cut short, under the same dump id) are never read: whole reads and site reads see
/// exactly the rows of the write the summary names, and a summary whose rows went missing is
/// an internal error, not a shorter answer.
#[tokio::test]
async fn test_scylla_store_reads_only_the_ownership_rows_of_the_stored_write() {
    let Some(store) = connect().await else { return };
    let uri = service_url("HEAPFLEET_TEST_SCYLLA_URI").expect("service is configured");
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(uri)
        .build()
        .await
        .expect("connect");
    session
        .use_keyspace("heapfleet_test", false)
        .await
        .expect("keyspace");
    let dump = heapfleet_storage::testsuite::unique_dump_id("ownership-stale-rows");
    let other = heapfleet_storage::testsuite::unique_dump_id("ownership-stale-source");
    let ownership = heapfleet_storage::testsuite::sample_ownership(1);
    let other_ownership = heapfleet_storage::testsuite::ownership_with_sites(4, 9);
    store.put_dump_ownership(&dump, &ownership).await.unwrap();
    store
        .put_dump_ownership(&other, &other_ownership)
        .await
        .unwrap();
    let rows_of = |dump: String| {
        let session = &session;
        async move {
            session
                .query_unpaged(
                    "SELECT site_hash, position, write_id, site FROM ownership_sites WHERE dump_id = ?",
                    (dump,),
                )
                .await
                .unwrap()
                .into_rows_result()
                .unwrap()
                .rows::<(i64, i32, i64, Vec<u8>)>()
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        }
    };
    let own_rows = rows_of(dump.clone()).await;
    let other_rows = rows_of(other.clone()).await;
    let row_at = |position: i32| {
        own_rows
            .iter()
            .find(|row| row.1 == position)
            .expect("a row per position")
    };
    let write_id = row_at(0).2;
    // Another write's rows, as a writer racing this one would leave them: one under the first
    // site's hash and position holding another site (which a hash collision could also put
    // there), and one of a site the stored results do not have.
    for (site_hash, position, blob) in [
        (row_at(0).0, 0, other_rows[0].3.clone()),
        (other_rows[1].0, 1, other_rows[1].3.clone()),
    ] {
        session
            .query_unpaged(
                "INSERT INTO ownership_sites (dump_id, site_hash, position, write_id, site) \
                 VALUES (?, ?, ?, ?, ?)",
                (&dump, site_hash, position, write_id - 1, blob),
            )
            .await
            .unwrap();
    }
    assert_eq!(store.get_dump_ownership(&dump).await.unwrap(), ownership);
    let asked = [
        other_ownership.sites[1].site.clone(),
        other_ownership.sites[0].site.clone(),
        ownership.sites[0].site.clone(),
    ];
    let read = store.site_ownership(&[&dump], &asked).await.unwrap();
    assert_eq!(read[0].sites, vec![ownership.sites[0].clone()]);

    // A row of the stored write gone missing: damaged, not a smaller dump.
    let (site_hash, position, _, _) = *row_at(1);
    session
        .query_unpaged(
            "DELETE FROM ownership_sites WHERE dump_id = ? AND site_hash = ? AND write_id = ? \
             AND position = ?",
            (&dump, site_hash, write_id, position),
        )
        .await
        .unwrap();
    let result = store.get_dump_ownership(&dump).await;
    assert!(
        matches!(
            result,
            Err(heapfleet_storage::StorageError::Internal { .. })
        ),
        "{result:?}"
    );
    for stored in [&dump, &other] {
        store.delete_dump(stored).await.unwrap();
    }
}
