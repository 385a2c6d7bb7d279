//! Store write benchmark: ingest a real dump into each aggregate store and report how fast the
//! aggregates go in.
//!
//! `cargo bench -p heapfleet-tests --bench store_write [-- DUMP]` uses the generated ~600 MB
//! dump (see the parse bench) unless a path is given. It measures the embedded SQLite store
//! and, when `HEAPFLEET_TEST_SCYLLA_URI` names a CQL node (`eval "$(scripts/cassandra.sh
//! start)"` starts one), the ScyllaDB store. For each: a whole ingest (parse, object index,
//! aggregates; wall seconds and MB/s), then the aggregates alone written again (site rows per
//! second, the partition-per-dump write path).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use heapfleet_catalog::DumpId;
use heapfleet_dump::ParseOptions;
use heapfleet_ingest::parse_into_store;
use heapfleet_storage::{AggregateStore, ScyllaConfig, ScyllaStore, SqliteStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dump = match std::env::args().skip(1).find(|arg| !arg.starts_with("--")) {
        Some(path) => PathBuf::from(path),
        None => heapfleet_tests::generated_dump(
            "large",
            &heapfleet_tests::generated_dir().join("large"),
            &["--target-mb", "600"],
        )?,
    };
    let directory = tempfile::tempdir()?;
    let mut stores: Vec<(&str, Arc<dyn AggregateStore>)> = vec![(
        "sqlite",
        Arc::new(SqliteStore::open(directory.path()).await?),
    )];
    match std::env::var("HEAPFLEET_TEST_SCYLLA_URI") {
        Ok(uri) => {
            let store =
                ScyllaStore::connect(&ScyllaConfig::single_node(uri, "heapfleet_bench")).await?;
            stores.push(("cql", Arc::new(store)));
        }
        Err(_) => {
            eprintln!("HEAPFLEET_TEST_SCYLLA_URI is not set: measuring the embedded store only")
        }
    }
    println!(
        "{:<8} {:>12} {:>10} {:>12} {:>14} {:>14}",
        "store", "ingest s", "MB/s", "site rows", "agg write s", "site rows/s"
    );
    for (name, store) in stores {
        let id: DumpId = "d-00000000000b3c4e".parse().context("bench dump id")?;
        let file = std::fs::File::open(&dump)
            .with_context(|| format!("failed to open {}", dump.display()))?;
        let start = Instant::now();
        let stored = parse_into_store(file, &id, store.clone(), ParseOptions::default()).await?;
        let ingest_seconds = start.elapsed().as_secs_f64();
        let start = Instant::now();
        store
            .put_dump_aggregates(id.as_str(), &stored.aggregates)
            .await?;
        let write_seconds = start.elapsed().as_secs_f64();
        let rows = stored.aggregates.sites.len() + stored.aggregates.index_sites.len();
        println!(
            "{:<8} {:>12.2} {:>10.0} {:>12} {:>14.2} {:>14.0}",
            name,
            ingest_seconds,
            stored.aggregates.parse.bytes as f64 / 1e6 / ingest_seconds,
            rows,
            write_seconds,
            rows as f64 / write_seconds,
        );
        store.delete_dump(id.as_str()).await?;
    }
    Ok(())
}
