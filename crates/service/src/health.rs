//! grpc.health.v1 and server reflection for every heapfleet server.
//!
//! A server starts NOT_SERVING. [`watch_backends`] probes its backends every few seconds and
//! flips the overall status (the empty service name, which Kubernetes' gRPC readiness probe
//! asks for) and each named service to SERVING only while every probe answers, so a load
//! balancer stops sending work to a server whose database is down.
//!
//! The service name [`LIVENESS_SERVICE`] is SERVING as long as the server answers at all: a
//! liveness probe asks for it, so an outage of a backend takes servers out of rotation
//! without restarting every one of them.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// A backend check: resolves to `Err(reason)` when the backend does not answer.
pub type Probe =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// The health service name that only says the server is alive, whatever its backends do.
pub const LIVENESS_SERVICE: &str = "liveness";

/// How often backends are probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// How long one probe may take before its backend counts as not answering.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Builds the health service and its reporter (see [`crate::server::server_parts`], which
/// sets every status NOT_SERVING before serving).
pub fn health_service() -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

/// Builds the reflection service for heapfleet's API and the health API.
pub fn reflection_service() -> anyhow::Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
> {
    Ok(tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(heapfleet_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?)
}

/// Probes the backends every [`PROBE_INTERVAL`] and sets the overall status and each of
/// `services` (full names such as `heapfleet.ingest.v1.IngestService`) to SERVING while all
/// answer, NOT_SERVING otherwise. Logs each change. Runs until dropped.
pub async fn watch_backends(
    reporter: HealthReporter,
    services: Vec<String>,
    probes: Vec<(String, Probe)>,
) {
    reporter
        .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
        .await;
    let mut serving: Option<bool> = None;
    loop {
        let mut failures = Vec::new();
        for (name, probe) in &probes {
            match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => failures.push(format!("{name}: {reason}")),
                Err(_) => failures.push(format!("{name}: no answer within {PROBE_TIMEOUT:?}")),
            }
        }
        let now_serving = failures.is_empty();
        if serving != Some(now_serving) {
            if now_serving {
                tracing::info!("backends answer; serving");
            } else {
                tracing::warn!(failures = %failures.join("; "), "backends do not answer; not serving");
            }
            let status = if now_serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            reporter.set_service_status("", status).await;
            for service in &services {
                reporter.set_service_status(service, status).await;
            }
            serving = Some(now_serving);
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// A probe of a catalog: listing the processes of a tenant that holds none.
pub fn catalog_probe(catalog: std::sync::Arc<dyn heapfleet_catalog::Catalog>) -> Probe {
    Box::new(move || {
        let catalog = catalog.clone();
        Box::pin(async move {
            catalog
                .list_processes("heapfleet-health-probe")
                .await
                .map(|_| ())
                .map_err(|error| crate::status::error_chain(&error))
        })
    })
}

/// A probe of an aggregate store: reading a dump that does not exist (not found is fine).
pub fn store_probe(store: std::sync::Arc<dyn heapfleet_storage::AggregateStore>) -> Probe {
    Box::new(move || {
        let store = store.clone();
        Box::pin(async move {
            match store.get_site_stats("d-0000000000000000").await {
                Ok(_) | Err(heapfleet_storage::StorageError::NotFound(_)) => Ok(()),
                Err(error) => Err(crate::status::error_chain(&error)),
            }
        })
    })
}

/// A probe of an object store: listing under its prefix.
pub fn objects_probe(objects: crate::backends::Objects) -> Probe {
    Box::new(move || {
        let objects = objects.clone();
        Box::pin(async move {
            objects
                .probe()
                .await
                .map_err(|error| crate::status::error_chain(&error))
        })
    })
}
