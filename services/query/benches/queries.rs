//! Query benchmark: the leak report over a synthetic fleet, and a diff of real dumps.
//!
//! `cargo bench -p heapfleet-query --bench queries` measures:
//!
//! 1. **leak report**: 1,000 processes x 10 dumps of synthetic aggregates (100 sites x 2
//!    generations per dump, three planted leaks) in the embedded SQLite store, and in Cassandra
//!    when `HEAPFLEET_TEST_SCYLLA_URI` names a CQL node (`eval "$(scripts/cassandra.sh start)"`);
//!    the whole `leak_report` call as the query service runs it, best of three;
//! 2. **diff**: three dumps of one process holding the generated ~600 MB dump's 1.6 M objects
//!    each, stored in the embedded store, diffed through `StoreQueries::diff` (index loads and
//!    the identity match), best of three.
//!
//! Set `HEAPFLEET_BENCH_PROCESSES` to change the fleet's size.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;
use heapfleet_analysis::{DumpAggregates, SiteGenerationStats, SiteKey, Totals};
use heapfleet_catalog::{Catalog, DumpId, NewDump, ProcessKey, SqliteCatalog};
use heapfleet_dump::{ObjectType, ParseOptions};
use heapfleet_query::model::DumpQuery;
use heapfleet_query::{Queries, StoreQueries};
use heapfleet_storage::{AggregateStore, ScyllaConfig, ScyllaStore, SqliteStore};

const DUMPS_PER_PROCESS: usize = 10;
const SITES_PER_DUMP: u32 = 100;
const LEAKY_SITES: u32 = 3;

// The allocator the services run with.
#[global_allocator]
static ALLOCATOR: heapfleet_service::Allocator = heapfleet_service::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let processes: usize = std::env::var("HEAPFLEET_BENCH_PROCESSES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1000);
    let directory = tempfile::tempdir()?;
    let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open(directory.path()).await?);
    let mut stores: Vec<(&str, Arc<dyn AggregateStore>)> = vec![(
        "sqlite",
        Arc::new(SqliteStore::open(directory.path()).await?),
    )];
    match std::env::var("HEAPFLEET_TEST_SCYLLA_URI") {
        Ok(uri) => stores.push((
            "cql",
            Arc::new(
                ScyllaStore::connect(&ScyllaConfig::single_node(uri, "heapfleet_bench_queries"))
                    .await?,
            ),
        )),
        Err(_) => {
            eprintln!("HEAPFLEET_TEST_SCYLLA_URI is not set: measuring the embedded store only")
        }
    }

    // The fleet: registered once in the catalog, written into every store.
    let mut dumps = Vec::new();
    for process in 0..processes {
        for dump in 0..DUMPS_PER_PROCESS {
            let id = register(catalog.as_ref(), process, dump).await?;
            dumps.push((id, process, dump));
        }
    }
    // Each store is written, then measured, before the next is written: a CQL node busy
    // flushing a fresh write would slow the other store's measurement on a shared machine.
    for (name, store) in &stores {
        let write_start = Instant::now();
        // Bounded concurrency: a single test node times requests out under thousands at once.
        let writes = dumps.iter().map(|(id, process, dump)| {
            let store = store.clone();
            let aggregates = synthetic_aggregates(*process, *dump);
            async move { store.put_dump_aggregates(id.as_str(), &aggregates).await }
        });
        let mut writes = futures::stream::iter(writes).buffer_unordered(16);
        while let Some(result) = writes.next().await {
            result?;
        }
        eprintln!(
            "{name}: wrote {} dumps ({} site rows) in {:.1} s",
            dumps.len(),
            dumps.len() as u32 * SITES_PER_DUMP * 2, // about: leaky sites hold more
            write_start.elapsed().as_secs_f64()
        );
        let queries = StoreQueries::new("bench", catalog.clone(), store.clone());
        let mut best = f64::MAX;
        let mut suspects = 0;
        for _ in 0..3 {
            let start = Instant::now();
            let report = queries
                .leak_report(
                    &DumpQuery::default(),
                    20,
                    heapfleet_analysis::LeakRank::Memory,
                )
                .await?;
            best = best.min(start.elapsed().as_secs_f64());
            suspects = report.suspects.len();
            assert_eq!(report.processes_analysed, processes);
        }
        println!(
            "leak report, {processes} processes x {DUMPS_PER_PROCESS} dumps, {name:<6}: {best:6.3} s ({suspects} suspects)"
        );
        // The share of that spent reading: every process's site rows, 16 processes in flight.
        let mut best_read = f64::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            let reads = dumps.chunks(DUMPS_PER_PROCESS).map(|process| {
                let store = store.clone();
                let ids: Vec<String> = process.iter().map(|(id, _, _)| id.to_string()).collect();
                async move {
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    store
                        .site_totals_for_dumps(&ids)
                        .await
                        .map(|stats| stats.len())
                }
            });
            let mut reads = futures::stream::iter(reads).buffer_unordered(16);
            while let Some(read) = reads.next().await {
                read?;
            }
            best_read = best_read.min(start.elapsed().as_secs_f64());
        }
        println!("  of which reading the site rows alone, {name:<6}: {best_read:6.3} s");
    }

    // The diff: three copies of a real, large dump as one process's dumps.
    let dump = heapfleet_tests::generated_dump(
        "large",
        &heapfleet_tests::generated_dir().join("large"),
        &["--target-mb", "600"],
    )?;
    let diff_dir = tempfile::tempdir()?;
    let diff_catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open(diff_dir.path()).await?);
    let diff_store: Arc<dyn AggregateStore> = Arc::new(SqliteStore::open(diff_dir.path()).await?);
    let mut ids = Vec::new();
    let mut objects = 0;
    for copy in 0..3 {
        let id = register(diff_catalog.as_ref(), 0, copy).await?;
        let file =
            std::fs::File::open(&dump).with_context(|| format!("open {}", dump.display()))?;
        let stored = heapfleet_ingest::parse_into_store(
            file,
            &id,
            diff_store.clone(),
            ParseOptions::default(),
        )
        .await?;
        objects = stored.aggregates.parse.objects;
        ids.push(id.to_string());
    }
    let queries = StoreQueries::new("bench", diff_catalog, diff_store);
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let diff = queries.diff(&ids, 20).await?;
        best = best.min(start.elapsed().as_secs_f64());
        assert_eq!(diff.dumps.len(), 3);
    }
    println!("diff of 3 dumps x {objects} objects, sqlite: {best:6.3} s");
    Ok(())
}

/// Registers dump `dump` of process `process` as ready.
async fn register(catalog: &dyn Catalog, process: usize, dump: usize) -> anyhow::Result<DumpId> {
    let sha: String = format!("{process:032x}{dump:032x}");
    let new_dump = NewDump {
        process: ProcessKey {
            tenant: "bench".to_owned(),
            host: format!("host-{}", process % 50),
            pid: u32::try_from(process).unwrap_or(0) + 1000,
            instance: String::new(),
        },
        taken_at_unix: 1_800_000_000 + dump as i64 * 600,
        jobs: Some(dump as u64 * 100),
        role: Some("sidekiq".to_owned()),
        labels: BTreeMap::new(),
        file_name: format!("heap-{dump}.dump"),
        size_bytes: 1,
        content_sha256: sha,
        gc_count: None,
        rss_bytes: None,
        object_key: None,
    };
    let (record, _) = catalog.register_dump(new_dump).await?;
    catalog.mark_ready(&record.id, 1, 0).await?;
    Ok(record.id)
}

/// Dump `dump` of a process: 100 sites; the first three leak (a bucket of survivors per
/// interval), the others hold a few statics and churn.
fn synthetic_aggregates(process: usize, dump: usize) -> DumpAggregates {
    let mut sites = Vec::new();
    for line in 0..SITES_PER_DUMP {
        let site = SiteKey {
            file: Some(format!("/app/app/jobs/job_{}.rb", line % 20)),
            line: Some(line + 1),
            object_type: ObjectType::String,
            class_name: Some("String".to_owned()),
        };
        let buckets: Vec<(u32, u64)> = if line < LEAKY_SITES {
            // A leak: ten survivors from every interval so far, each keeping its generation.
            (0..=dump as u32)
                .map(|interval| (interval * 10 + 5, 10))
                .collect()
        } else {
            // Statics from boot and this interval's churn.
            vec![
                (1, (process as u64 + line as u64) % 7 + 1),
                (dump as u32 * 10 + 5, 50),
            ]
        };
        for (bucket, count) in buckets {
            sites.push(SiteGenerationStats {
                site: site.clone(),
                generation: Some(bucket),
                totals: Totals {
                    count,
                    memsize: count * 40,
                    bytesize: count * 16,
                    references: 0,
                },
            });
        }
    }
    sites
        .sort_by(|left, right| (&left.site, left.generation).cmp(&(&right.site, right.generation)));
    sites.dedup_by(|later, earlier| {
        later.site == earlier.site && later.generation == earlier.generation
    });
    DumpAggregates {
        sites,
        ..DumpAggregates::default()
    }
}
