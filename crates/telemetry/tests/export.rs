//! Real OTLP/gRPC export: `init` with an endpoint sends spans and metrics to a stand-in
//! collector (the OTLP trace and metrics services, served by tonic on a loopback port), with
//! the configured service name, and the guard's shutdown flushes what is still buffered. A test
//! binary of its own: `init` installs the process-wide subscriber.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use heapfleet_telemetry::metrics::{self, GatewayMetrics};
use heapfleet_telemetry::{TelemetryConfig, init};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use tonic::{Request, Response, Status};

/// What the stand-in collector received: (service name, span or metric name).
#[derive(Debug, Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, String)>>>,
    metrics: Arc<Mutex<Vec<(String, String)>>>,
}

fn service_name(resource: Option<&Resource>) -> String {
    resource
        .into_iter()
        .flat_map(|resource| &resource.attributes)
        .find(|attribute| attribute.key == "service.name")
        .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
        .and_then(|value| match value {
            Value::StringValue(name) => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = service_name(resource_spans.resource.as_ref());
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    spans.push((service.clone(), span.name));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mut metrics = self.metrics.lock().unwrap();
        for resource_metrics in request.into_inner().resource_metrics {
            let service = service_name(resource_metrics.resource.as_ref());
            for scope_metrics in resource_metrics.scope_metrics {
                for metric in scope_metrics.metrics {
                    metrics.push((service.clone(), metric.name));
                }
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_init_exports_spans_and_metrics_over_otlp_grpc() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let config = TelemetryConfig::from_lookup("heapfleet-default", "warn", |name| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_SERVICE_NAME" => Some("heapfleet-export-test".to_owned()),
        _ => None,
    })
    .unwrap();
    let guard = init(&config).unwrap();
    assert!(metrics::metrics_enabled());
    tracing::info_span!(target: "heapfleet_test", "work", otel.name = "exported work")
        .in_scope(|| {});
    // Not heapfleet's: left out of traces.
    tracing::info_span!(target: "h2", "frame").in_scope(|| {});
    GatewayMetrics::new().stored(42);

    // Shutting down blocks until the exporters have sent their last batches.
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap();

    let service = "heapfleet-export-test".to_owned();
    let spans = collector.spans.lock().unwrap().clone();
    assert_eq!(spans, vec![(service.clone(), "exported work".to_owned())]);
    let exported_metrics = collector.metrics.lock().unwrap().clone();
    assert!(
        exported_metrics.contains(&(service, metrics::UPLOADED_BYTES.to_owned())),
        "{exported_metrics:?}"
    );
    server.abort();
}
