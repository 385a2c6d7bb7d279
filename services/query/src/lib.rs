//! The query service: what the ingested dumps reveal, read only through the catalog and
//! aggregate-store traits, so the same answers come from the embedded data directory and from
//! the distributed backends.
//!
//! [`Queries`] is the one interface: [`StoreQueries`] computes answers from the backends (in
//! the service, and in the `heapfleet` command on its data directory), [`RemoteQueries`] asks
//! a query service over gRPC (`heapfleet --server URL`). [`QueryServer`] serves
//! `heapfleet.query.v1.QueryService` over a [`StoreQueries`].

#![warn(missing_docs)]

mod client;
mod config;
mod convert;
mod error;
pub mod model;
mod reader;
mod service;

use std::future::Future;

pub use client::RemoteQueries;
pub use config::{
    DEFAULT_CALL_TIMEOUT_SECONDS, DEFAULT_LISTEN, DEFAULT_MAX_CONCURRENT_CALLS, QueryArgs,
    QueryConfig, QueryFile,
};
pub use error::QueryError;
use heapfleet_service::backends::{open_catalog, open_store};
use heapfleet_service::stack::service_stack;
use heapfleet_service::{health, server};
pub use reader::{Queries, StoreQueries, dominators_in, paths_in};
pub use service::{QUERY_SERVICE_NAME, QueryServer};

/// Opens the query service's backends from `config`.
pub async fn open(config: &QueryConfig) -> anyhow::Result<StoreQueries> {
    let catalog = open_catalog(&config.catalog).await?;
    let store = open_store(&config.store).await?;
    let queries = StoreQueries::new(config.tenant.clone(), catalog, store);
    Ok(match &config.objects {
        Some(url) => {
            queries.with_objects(heapfleet_service::backends::Objects::open(url, &config.s3)?)
        }
        None => queries,
    })
}

/// Runs the query service until `shutdown` resolves: the query API, health (SERVING while the
/// catalog and store answer) and reflection.
pub async fn run(
    config: QueryConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let queries = open(&config).await?;
    let listener = server::bind(config.listen).await?;
    let mut parts = server::server_parts(&[QUERY_SERVICE_NAME]).await?;
    let probes = vec![
        (
            "catalog".to_owned(),
            health::catalog_probe(queries.catalog()),
        ),
        ("store".to_owned(), health::store_probe(queries.store())),
    ];
    let watcher = tokio::spawn(health::watch_backends(
        parts.reporter.clone(),
        vec![QUERY_SERVICE_NAME.to_owned()],
        probes,
    ));
    parts.routes.add_service(service_stack(
        QueryServer::new(queries).into_server(),
        &config.serving.stack,
    ));
    let result = server::serve(
        listener,
        parts.routes.routes(),
        &config.serving.tls,
        shutdown,
    )
    .await;
    watcher.abort();
    result
}
