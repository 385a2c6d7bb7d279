//! Pipeline benchmark: how fast dumps move through the distributed path, on this machine.
//!
//! `cargo bench -p heapfleet-ingester --bench pipeline [-- DUMP]` uses the generated ~600 MB
//! dump (see the parse bench in tests/benches) unless a path is given, and reports:
//!
//! 1. **parse**: the bare parse with the aggregator and object index (no I/O but the file);
//! 2. **ingest from object storage**: the worker's path (`ingest_object`) from a local object
//!    store into the embedded SQLite store, and its ratio to the bare parse. Run under
//!    `taskset -c 0` to measure it on one core, as the target says;
//! 3. **upload**: the client's `upload_file` to an in-process gateway over loopback, into a
//!    local object store (hashing the file first, then streaming it), in MB/s;
//! 4. **ingest with 1 and 2 workers**: four uploaded copies of the dump (four hosts), queued
//!    in the embedded catalog, ingested by one worker and then by two, in MB/s.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use heapfleet_catalog::{Catalog, DumpId, DumpStatus, NewDump, ProcessKey};
use heapfleet_dump::ParseOptions;
use heapfleet_gateway::{Gateway, Limits, client};
use heapfleet_ingester::{Ingester, WorkerSettings, ingest_object};
use heapfleet_objects::S3Options;
use heapfleet_objects::object_store::path::Path as ObjectPath;
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_service::backends::{Objects, open_catalog, open_store};
use tokio_util::sync::CancellationToken;

// The allocator the services run with.
#[global_allocator]
static ALLOCATOR: heapfleet_service::Allocator = heapfleet_service::Allocator {};

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
    let size = std::fs::metadata(&dump)?.len();
    let megabytes = size as f64 / 1e6;
    println!("dump: {} ({megabytes:.0} MB)", dump.display());

    // 1. The bare parse, best of two.
    let mut parse_seconds = f64::MAX;
    for _ in 0..2 {
        let file = std::fs::File::open(&dump)?;
        let start = Instant::now();
        let mut aggregator = heapfleet_analysis::DumpAggregator::new(|_chunk| {});
        let parse = heapfleet_dump::parse_reader(file, &ParseOptions::default(), &mut aggregator)?;
        let _ = aggregator.finish(parse);
        parse_seconds = parse_seconds.min(start.elapsed().as_secs_f64());
    }
    println!(
        "parse (aggregates + index):        {parse_seconds:6.2} s  {:6.0} MB/s",
        megabytes / parse_seconds
    );

    // 2. The worker's path from a local object store into the embedded store.
    let directory = tempfile::tempdir()?;
    let objects_dir = directory.path().join("objects");
    let objects = Objects::open(
        objects_dir.to_str().context("utf-8 path")?,
        &S3Options::default(),
    )?;
    let key = ObjectPath::from("bench/one.dump");
    std::fs::create_dir_all(objects_dir.join("bench"))?;
    std::fs::copy(&dump, objects_dir.join("bench/one.dump"))?;
    let store_dir = directory.path().join("store");
    let mut ingest_seconds = f64::MAX;
    for round in 0..2 {
        let store = open_store(store_dir.to_str().context("utf-8 path")?).await?;
        let id: DumpId = format!("d-00000000000be{round:03x}").parse()?;
        let start = Instant::now();
        ingest_object(
            &objects,
            &key,
            &id,
            store,
            ParseOptions::default(),
            Arc::new(AtomicBool::new(false)),
        )
        .await?;
        ingest_seconds = ingest_seconds.min(start.elapsed().as_secs_f64());
    }
    println!(
        "ingest from object storage:        {ingest_seconds:6.2} s  {:6.0} MB/s  ({:.2}x the bare parse)",
        megabytes / ingest_seconds,
        ingest_seconds / parse_seconds
    );

    // 3. Upload over loopback into a local object store.
    let catalog = open_catalog(directory.path().join("catalog").to_str().context("utf-8")?).await?;
    let gateway_objects = Objects::open(
        directory.path().join("uploads").to_str().context("utf-8")?,
        &S3Options::default(),
    )?;
    let gateway = Gateway::new(
        "bench",
        catalog.clone(),
        gateway_objects.clone(),
        Limits::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let server_stop = stop.clone();
    tokio::spawn(heapfleet_gateway::serve(gateway, listener, async move {
        server_stop.cancelled().await;
    }));
    let mut ingest = client::connect(&url).await?;
    let mut ids = Vec::new();
    let hash_start = Instant::now();
    heapfleet_ingest::file_size_and_sha256(&dump)?;
    let hash_seconds = hash_start.elapsed().as_secs_f64();
    for host in ["web-1", "web-2", "web-3", "web-4"] {
        let start = Instant::now();
        let response = client::upload_file(
            &mut ingest,
            &dump,
            pb::DumpMetadata {
                host: host.to_owned(),
                taken_at_unix: 1_700_000_000,
                ..pb::DumpMetadata::default()
            },
            None,
        )
        .await?;
        let seconds = start.elapsed().as_secs_f64();
        if host == "web-1" {
            println!(
                "upload over loopback:              {seconds:6.2} s  {:6.0} MB/s  (streaming alone {:.0} MB/s; hashing {:.2} s)",
                megabytes / seconds,
                megabytes / (seconds - hash_seconds).max(1e-9),
                hash_seconds
            );
        }
        ids.push(
            response
                .dump
                .context("dump in the answer")?
                .dump_id
                .parse::<DumpId>()?,
        );
    }

    // 4. Ingest throughput with one and then two workers, on copies of the queued dumps.
    for workers in [1usize, 2] {
        let round_ids = requeue_as_new(catalog.as_ref(), &ids, workers).await?;
        let store = open_store(
            directory
                .path()
                .join(format!("store-{workers}"))
                .to_str()
                .context("utf-8")?,
        )
        .await?;
        let stop = CancellationToken::new();
        let start = Instant::now();
        let mut running = Vec::new();
        for worker in 0..workers {
            let settings = WorkerSettings {
                name: format!("bench-{workers}-{worker}"),
                poll_interval: Duration::from_millis(20),
                ..WorkerSettings::default()
            };
            let ingester = Ingester::new(
                catalog.clone(),
                store.clone(),
                gateway_objects.clone(),
                settings,
            );
            running.push(tokio::spawn(ingester.run(stop.clone())));
        }
        loop {
            let mut ready = 0;
            for id in &round_ids {
                match catalog.get_dump(id).await?.status {
                    DumpStatus::Ready => ready += 1,
                    DumpStatus::Failed { reason } => anyhow::bail!("{id} failed: {reason}"),
                    _ => {}
                }
            }
            if ready == round_ids.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seconds = start.elapsed().as_secs_f64();
        stop.cancel();
        for handle in running {
            handle.await?;
        }
        println!(
            "ingest, {workers} worker(s), {} dumps:     {seconds:6.2} s  {:6.0} MB/s",
            round_ids.len(),
            megabytes * round_ids.len() as f64 / seconds
        );
    }
    stop.cancel();
    Ok(())
}

/// Registers, under fresh process names, dumps pointing at the same stored files as `ids`, so
/// each round ingests the same bytes as new, queued jobs.
async fn requeue_as_new(
    catalog: &dyn Catalog,
    ids: &[DumpId],
    round: usize,
) -> anyhow::Result<Vec<DumpId>> {
    let mut fresh = Vec::new();
    for id in ids {
        let record = catalog.get_dump(id).await?;
        let new_dump = NewDump {
            process: ProcessKey {
                host: format!("{}-round-{round}", record.process.host),
                ..record.process.clone()
            },
            taken_at_unix: record.taken_at_unix,
            jobs: None,
            role: None,
            labels: BTreeMap::new(),
            file_name: record.file_name.clone(),
            size_bytes: record.size_bytes,
            content_sha256: record.content_sha256.clone(),
            gc_count: None,
            rss_bytes: None,
            object_key: record.object_key.clone(),
        };
        let (registered, _) = catalog.register_and_enqueue(new_dump).await?;
        fresh.push(registered.id);
    }
    // The original uploads are queued too; park them so only this round's jobs run.
    for id in ids {
        if catalog.get_dump(id).await?.status == DumpStatus::Queued {
            catalog.set_status(id, DumpStatus::Uploaded).await?;
        }
    }
    Ok(fresh)
}
