//! `heapfleet serve`: the gateway, ingest workers and the query service in one process on one
//! port, on the data directory (embedded catalog and store, dump files under `objects/`), and,
//! with --retention-max-age, the retention sweeps that delete dumps once they are that old.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use heapfleet_gateway::{Gateway, INGEST_SERVICE_NAME, Limits};
use heapfleet_ingest::DumpDeleter;
use heapfleet_ingester::{Ingester, Retention, WorkerSettings};
use heapfleet_query::{QUERY_SERVICE_NAME, QueryServer, StoreQueries};
use heapfleet_service::stack::{ServingConfig, service_stack};
use heapfleet_service::{health, server, shutdown};
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::local::{LOCAL_TENANT, Local};
use crate::output::print_line;

pub(crate) async fn run(data_dir: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let local = Local::open(data_dir).await?;
    let objects = local.objects()?;
    let limits = Limits {
        max_dump_bytes: args.max_dump_bytes,
        ..Limits::default()
    };
    let gateway = Gateway::new(LOCAL_TENANT, local.catalog.clone(), objects.clone(), limits)
        .with_store(local.store.clone());
    let settings = WorkerSettings {
        concurrency: args.concurrency.max(1),
        poll_interval: std::time::Duration::from_millis(250),
        ..WorkerSettings::default()
    };
    let ingester = Ingester::new(
        local.catalog.clone(),
        local.store.clone(),
        objects.clone(),
        settings,
    );
    let queries = StoreQueries::new(LOCAL_TENANT, local.catalog.clone(), local.store.clone())
        .with_objects(objects.clone());

    let listener = server::bind(args.listen).await?;
    let mut parts = server::server_parts(&[INGEST_SERVICE_NAME, QUERY_SERVICE_NAME]).await?;
    let probes = vec![
        (
            "catalog".to_owned(),
            health::catalog_probe(local.catalog.clone()),
        ),
        ("store".to_owned(), health::store_probe(local.store.clone())),
        ("objects".to_owned(), health::objects_probe(objects.clone())),
    ];
    let watcher = tokio::spawn(health::watch_backends(
        parts.reporter.clone(),
        vec![
            INGEST_SERVICE_NAME.to_owned(),
            QUERY_SERVICE_NAME.to_owned(),
        ],
        probes,
    ));
    // One user on one machine: no tokens; the call limit keeps a burst of uploads bounded.
    let serving = ServingConfig::open(
        LOCAL_TENANT,
        heapfleet_gateway::DEFAULT_MAX_CONCURRENT_CALLS,
        None,
    );
    parts
        .routes
        .add_service(service_stack(gateway.into_server(), &serving.stack));
    parts.routes.add_service(service_stack(
        QueryServer::new(queries).into_server(),
        &serving.stack,
    ));

    let stop = CancellationToken::new();
    let retention_task = args.retention_max_age.map(|max_age| {
        let deleter = DumpDeleter::new(
            local.catalog.clone(),
            local.store.clone(),
            objects.store.clone(),
            objects.prefix.clone(),
        );
        let retention = Retention::new(deleter, max_age, Some(LOCAL_TENANT.to_owned()));
        tokio::spawn(retention.run(args.retention_interval, stop.clone()))
    });
    let workers = tokio::spawn(ingester.run(stop.clone()));
    let address = listener.local_addr()?;
    print_line(&format!(
        "heapfleet serving {} on http://{address} (upload and query API; Ctrl-C stops)\n\
         send dumps with `heapfleet upload --server http://{address} FILE...`",
        data_dir.display()
    ))?;
    let server_stop = stop.clone();
    let served = server::serve(listener, parts.routes.routes(), &serving.tls, async move {
        tokio::select! {
            () = shutdown::signal() => server_stop.cancel(),
            () = server_stop.cancelled() => {}
        }
    })
    .await;
    stop.cancel();
    workers
        .await
        .context("the ingest workers stopped unexpectedly")?;
    if let Some(task) = retention_task {
        // A sweep stops between two deletes, so this waits for one delete at most.
        task.await
            .context("the retention sweeps stopped unexpectedly")?;
    }
    watcher.abort();
    served?;
    Ok(ExitCode::SUCCESS)
}
