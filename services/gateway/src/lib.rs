//! The gateway: the one way dumps enter the distributed stack.
//!
//! [`Gateway`] serves `heapfleet.ingest.v1.IngestService`. An upload streams into object
//! storage as a multipart upload while its size and SHA-256 are checked; only when the bytes
//! match what the metadata announced is the upload completed (the object appears atomically),
//! synced where the store does not sync itself, registered in the catalog and queued for
//! ingest in one transaction. Then, and only then, the client gets its dump id. A failed upload
//! is aborted: no object, no catalog row.
//!
//! Given the aggregate store too (`store`), it also deletes dumps everywhere (`DeleteDump`,
//! through `heapfleet_ingest::DumpDeleter`); without one it refuses deletes.

#![warn(missing_docs)]

pub mod client;
mod config;
mod metadata;
mod service;

pub use config::{
    DEFAULT_LISTEN, DEFAULT_MAX_CONCURRENT_CALLS, GatewayArgs, GatewayConfig, GatewayFile, Limits,
    LimitsFile,
};
pub use metadata::check_metadata;
pub use service::{Gateway, INGEST_SERVICE_NAME};

use std::future::Future;

use heapfleet_service::backends::{Objects, open_catalog, open_store};
use heapfleet_service::stack::{ServingConfig, service_stack};
use heapfleet_service::{health, server};

/// Opens the gateway's backends from `config`.
pub async fn open(config: &GatewayConfig) -> anyhow::Result<Gateway> {
    let catalog = open_catalog(&config.catalog).await?;
    let objects = Objects::open(&config.objects, &config.s3)?;
    let gateway = Gateway::new(
        config.tenant.clone(),
        catalog,
        objects,
        config.limits.clone(),
    );
    Ok(match &config.store {
        Some(store) => gateway.with_store(open_store(store).await?),
        None => gateway,
    })
}

/// Runs the gateway server until `shutdown` resolves: the ingest service, health (SERVING while
/// the catalog and object store answer) and reflection.
pub async fn run(
    config: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let gateway = open(&config).await?;
    let listener = server::bind(config.listen).await?;
    serve_with(gateway, listener, &config.serving, shutdown).await
}

/// Serves `gateway` on `listener` until `shutdown` resolves, with health and reflection, no
/// authentication, no TLS and the default call limit.
pub async fn serve(
    gateway: Gateway,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let serving = ServingConfig::open(gateway.default_tenant(), DEFAULT_MAX_CONCURRENT_CALLS, None);
    serve_with(gateway, listener, &serving, shutdown).await
}

/// Serves `gateway` on `listener` until `shutdown` resolves, inside the middleware `serving`
/// describes (authentication, call limits) and over TLS if it names a certificate.
pub async fn serve_with(
    gateway: Gateway,
    listener: tokio::net::TcpListener,
    serving: &ServingConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mut parts = server::server_parts(&[INGEST_SERVICE_NAME]).await?;
    let mut probes = vec![
        (
            "catalog".to_owned(),
            health::catalog_probe(gateway.catalog()),
        ),
        (
            "objects".to_owned(),
            health::objects_probe(gateway.objects()),
        ),
    ];
    if let Some(store) = gateway.store() {
        probes.push(("store".to_owned(), health::store_probe(store)));
    }
    let watcher = tokio::spawn(health::watch_backends(
        parts.reporter.clone(),
        vec![INGEST_SERVICE_NAME.to_owned()],
        probes,
    ));
    parts
        .routes
        .add_service(service_stack(gateway.into_server(), &serving.stack));
    let result = server::serve(listener, parts.routes.routes(), &serving.tls, shutdown).await;
    watcher.abort();
    result
}
