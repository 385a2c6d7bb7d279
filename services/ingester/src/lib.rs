//! The ingest worker of the distributed stack; run as many replicas as the queue needs.
//!
//! Each worker claims a queued dump from the catalog with a lease (PostgreSQL:
//! `FOR UPDATE SKIP LOCKED`, so workers never take the same job), renews the lease every third
//! of its length while it works, streams the dump file from object storage through the parser
//! (never whole in memory) and writes the aggregates and object index through the store trait,
//! keyed by dump id so a repeated ingest overwrites instead of adding. Then it completes the
//! job. A worker that dies stops renewing; when its lease expires another worker claims the
//! job. A failure is retried up to `max_attempts` times, except failures no retry can fix (no
//! heap objects, too large, corrupt gzip), which fail the dump at once. A failed attempt counts
//! only once the store and the object store answer again (the worker holds and renews the lease
//! meanwhile), so a backend outage does not use up a dump's attempts. On SIGTERM a worker
//! stops claiming, lets its running jobs finish within a grace period and gives back the rest.
//!
//! With a retention policy (`[retention] max_age`), the process also runs [`Retention`]: every
//! `interval` it deletes the dumps taken longer ago than `max_age` everywhere, until shutdown.

#![warn(missing_docs)]

mod config;
mod retention;
mod worker;

use std::future::Future;

pub use config::{
    DEFAULT_LISTEN, IngesterArgs, IngesterConfig, IngesterFile, WorkerSettings, default_worker_name,
};
use heapfleet_ingest::DumpDeleter;
use heapfleet_service::backends::{Objects, open_catalog, open_store};
use heapfleet_service::{health, server};
pub use retention::{
    DEFAULT_RETENTION_INTERVAL, Retention, RetentionFile, RetentionSettings, RetentionSweep,
    parse_duration,
};
use tokio_util::sync::CancellationToken;
pub use worker::{Ingester, ObjectIngestError, ingest_object};

/// Opens the ingester's backends from `config`.
pub async fn open(config: &IngesterConfig) -> anyhow::Result<Ingester> {
    let catalog = open_catalog(&config.catalog).await?;
    let store = open_store(&config.store).await?;
    let objects = Objects::open(&config.objects, &config.s3)?;
    Ok(Ingester::new(
        catalog,
        store,
        objects,
        config.worker.clone(),
    ))
}

/// Runs the workers and the health endpoint until `shutdown` resolves, then stops claiming and
/// waits for the running jobs to finish or be given back.
pub async fn run(
    config: IngesterConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let ingester = open(&config).await?;
    let listener = server::bind(config.listen).await?;
    let parts = server::server_parts(&[]).await?;
    let probes = vec![
        (
            "catalog".to_owned(),
            health::catalog_probe(ingester.catalog()),
        ),
        ("store".to_owned(), health::store_probe(ingester.store())),
        (
            "objects".to_owned(),
            health::objects_probe(ingester.objects()),
        ),
    ];
    let watcher = tokio::spawn(health::watch_backends(
        parts.reporter.clone(),
        Vec::new(),
        probes,
    ));
    let stop = CancellationToken::new();
    // Retention shares the workers' backends and stop signal; it is off unless max_age is set.
    let retention_task = config.retention.max_age.map(|max_age| {
        let objects = ingester.objects();
        let deleter = DumpDeleter::new(
            ingester.catalog(),
            ingester.store(),
            objects.store,
            objects.prefix,
        );
        let retention = Retention::new(deleter, max_age, config.worker.tenant.clone());
        tokio::spawn(retention.run(config.retention.interval, stop.clone()))
    });
    let workers = tokio::spawn(ingester.run(stop.clone()));
    let server_stop = stop.clone();
    // The ingester serves only health and reflection: no middleware, no TLS of its own.
    let no_tls = heapfleet_service::tls::TlsFile::default();
    let server = tokio::spawn(async move {
        server::serve(listener, parts.routes.routes(), &no_tls, async move {
            server_stop.cancelled().await
        })
        .await
    });
    shutdown.await;
    stop.cancel();
    let workers_result = workers.await;
    // A sweep stops between two deletes, so this waits for one delete at most.
    let retention_result = match retention_task {
        Some(task) => task.await,
        None => Ok(()),
    };
    watcher.abort();
    server.await??;
    workers_result?;
    retention_result?;
    Ok(())
}
