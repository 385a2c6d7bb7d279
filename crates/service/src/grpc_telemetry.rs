//! OpenTelemetry at the gRPC edge: [`GrpcTelemetryLayer`], the server middleware that
//! continues the caller's trace (W3C `traceparent` in the request metadata), opens one span per
//! call and records the call's duration; and [`TraceContextInterceptor`], which a client puts
//! on its channel so every call carries the current span's trace context.
//!
//! Health checks and reflection are left alone: probes call them every few seconds and a span
//! or a time series for each would drown the calls that matter.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use heapfleet_telemetry::OpenTelemetrySpanExt;
use heapfleet_telemetry::metrics::RpcMetrics;
use heapfleet_telemetry::opentelemetry::propagation::{Extractor, Injector};
use heapfleet_telemetry::propagation;
use tonic::codegen::http;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

/// The gRPC services no span or metric is kept for.
const UNTRACED_SERVICE_PREFIXES: [&str; 2] = ["grpc.health.", "grpc.reflection."];

/// Server middleware: one span and one duration per gRPC call (see the module docs). Build it
/// after telemetry has started, so its instruments reach the installed meter provider.
#[derive(Debug, Clone, Default)]
pub struct GrpcTelemetryLayer {
    metrics: RpcMetrics,
}

impl GrpcTelemetryLayer {
    /// The layer, recording into the global meter provider.
    pub fn new() -> GrpcTelemetryLayer {
        GrpcTelemetryLayer {
            metrics: RpcMetrics::new(),
        }
    }
}

impl<S> Layer<S> for GrpcTelemetryLayer {
    type Service = GrpcTelemetry<S>;

    fn layer(&self, inner: S) -> GrpcTelemetry<S> {
        GrpcTelemetry {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`GrpcTelemetryLayer`] wraps around a server's routes.
#[derive(Debug, Clone)]
pub struct GrpcTelemetry<S> {
    inner: S,
    metrics: RpcMetrics,
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for GrpcTelemetry<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let path = request.uri().path();
        let (service, method) = split_path(path);
        if UNTRACED_SERVICE_PREFIXES
            .iter()
            .any(|prefix| service.starts_with(prefix))
        {
            return Box::pin(self.inner.call(request));
        }
        let (service, method) = (service.to_owned(), method.to_owned());
        let span = tracing::info_span!(
            "grpc",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        // The caller's span is the parent, so one trace runs from the CLI through the server.
        // An error only means telemetry is off (no OpenTelemetry layer): nothing to continue.
        let _ = span.set_parent(propagation::extract(&HeaderExtractor(request.headers())));
        propagation::record_trace_id(&span);
        // tonic's routes decode nothing before the future is polled, but enter the span anyway
        // so whatever `call` logs belongs to the request.
        let future = span.in_scope(|| self.inner.call(request));
        let metrics = self.metrics.clone();
        let call_span = span.clone();
        let started = Instant::now();
        Box::pin(
            async move {
                let result = future.await;
                // A failed call answers with its status in the headers (a trailers-only
                // response); a successful one sends it in the trailers, after this point, and
                // is counted OK. An error here is the transport's, not a gRPC status.
                let code = match &result {
                    Ok(response) => grpc_status(response.headers()),
                    Err(_) => i32::from(tonic::Code::Unknown),
                };
                call_span.record("rpc.grpc.status_code", code);
                if is_server_fault(code) {
                    call_span.record("otel.status_code", "ERROR");
                }
                metrics.call(&service, &method, code, started.elapsed());
                result
            }
            .instrument(span),
        )
    }
}

/// Splits `/package.Service/Method` into the service and the method.
fn split_path(path: &str) -> (&str, &str) {
    let trimmed = path.trim_start_matches('/');
    trimmed.split_once('/').unwrap_or((trimmed, ""))
}

/// The `grpc-status` of a response's headers, 0 (OK) when they carry none.
fn grpc_status(headers: &http::HeaderMap) -> i32 {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Whether a gRPC status is the server's fault, which marks the span as an error (the
/// OpenTelemetry conventions for RPC servers): the caller's mistakes (INVALID_ARGUMENT,
/// NOT_FOUND, ...) are not.
fn is_server_fault(code: i32) -> bool {
    matches!(
        tonic::Code::from_i32(code),
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    )
}

/// Reads trace context from a request's HTTP/2 headers.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// A client channel whose every call carries the caller's trace context.
pub type TracedChannel = InterceptedService<Channel, TraceContextInterceptor>;

/// Wraps `channel` so every call carries the current span's trace context.
pub fn traced(channel: Channel) -> TracedChannel {
    InterceptedService::new(channel, TraceContextInterceptor)
}

/// Writes the current span's W3C trace context into each outgoing request's metadata; nothing
/// when the caller is not in a traced span (the CLI's quick commands).
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextInterceptor;

impl tonic::service::Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        propagation::inject_current(&mut MetadataInjector(request.metadata_mut()));
        Ok(request)
    }
}

/// Writes trace context into gRPC metadata.
struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes only valid lowercase header names and ASCII values; anything
        // else is dropped rather than failing the call.
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_split_path_names_the_service_and_method() {
        assert_eq!(
            split_path("/heapfleet.query.v1.QueryService/LeakReport"),
            ("heapfleet.query.v1.QueryService", "LeakReport")
        );
        assert_eq!(split_path("/odd"), ("odd", ""));
    }

    #[test]
    fn test_grpc_status_reads_a_trailers_only_answer() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_status(&headers), 0);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(grpc_status(&headers), 5);
        assert!(!is_server_fault(5));
        assert!(is_server_fault(i32::from(tonic::Code::Unavailable)));
    }

    #[test]
    fn test_metadata_injector_writes_trace_headers() {
        let mut metadata = MetadataMap::new();
        MetadataInjector(&mut metadata).set(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        );
        MetadataInjector(&mut metadata).set("bad key", "x".to_owned());
        let headers = metadata.into_headers();
        assert_eq!(headers.len(), 1);
        let context = propagation::extract(&HeaderExtractor(&headers));
        use heapfleet_telemetry::opentelemetry::trace::TraceContextExt;
        assert!(context.span().span_context().is_valid());
    }
}
