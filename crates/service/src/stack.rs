//! The middleware around each heapfleet gRPC service: one function, [`service_stack`], builds
//! it, so every server applies the same limits and checks in the same order.
//!
//! Health checks and reflection are added to a server bare, outside this stack: a probe must
//! answer while the server is at its limits, carries no token, and is not worth a span.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::auth::{AuthFile, AuthLayer, Authenticator};
use crate::grpc_telemetry::GrpcTelemetryLayer;
use crate::tls::{TlsArgs, TlsFile};

/// The limits and checks of a service's stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Longest a call may run; `None` for no limit (the gateway's uploads stream for as long as
    /// a dump takes).
    pub timeout: Option<Duration>,
    /// Calls in the service's handlers at once, over all connections; the next is refused with
    /// `UNAVAILABLE` (retryable) rather than queued, so memory stays bounded under any load.
    pub max_concurrent_calls: usize,
    /// Who may call what.
    pub authenticator: Authenticator,
}

/// The `[calls]` table of a server's config: limits on the calls it serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsFile {
    /// See [`StackOptions::max_concurrent_calls`].
    pub max_concurrent: Option<usize>,
    /// See [`StackOptions::timeout`], in seconds; 0 for none.
    pub timeout_seconds: Option<u64>,
}

/// The flags every server shares for its middleware and transport (each also read from a
/// `HEAPFLEET_*` variable). Tokens are set in the config file's `[auth]` table only.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServingArgs {
    /// TLS settings.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Calls served at once before more are refused with UNAVAILABLE.
    #[arg(long, env = "HEAPFLEET_MAX_CONCURRENT_CALLS")]
    pub max_concurrent_calls: Option<usize>,
    /// Longest a call may run, in seconds (0: no limit).
    #[arg(long, env = "HEAPFLEET_CALL_TIMEOUT_SECONDS")]
    pub call_timeout_seconds: Option<u64>,
}

/// A server's resolved middleware and transport settings.
#[derive(Debug, Clone)]
pub struct ServingConfig {
    /// The middleware's limits and checks.
    pub stack: StackOptions,
    /// Certificate and key, when the server speaks TLS.
    pub tls: TlsFile,
}

impl ServingConfig {
    /// No authentication, no TLS, `max_concurrent_calls` and `timeout`: the embedded shapes.
    pub fn open(
        tenant: &str,
        max_concurrent_calls: usize,
        timeout: Option<Duration>,
    ) -> ServingConfig {
        ServingConfig {
            stack: StackOptions {
                timeout,
                max_concurrent_calls,
                authenticator: Authenticator::disabled(tenant),
            },
            tls: TlsFile::default(),
        }
    }
}

impl ServingArgs {
    /// Resolves the flags over the file's `[auth]`, `[tls]` and `[calls]` tables over the
    /// server's defaults; calls without tokens act as `tenant`. Errors name the bad setting.
    pub fn resolve(
        &self,
        auth: &AuthFile,
        tls: TlsFile,
        calls: &CallsFile,
        tenant: &str,
        defaults: &CallsFile,
    ) -> anyhow::Result<ServingConfig> {
        let max_concurrent_calls = self
            .max_concurrent_calls
            .or(calls.max_concurrent)
            .or(defaults.max_concurrent)
            .unwrap_or(64);
        if max_concurrent_calls == 0 {
            anyhow::bail!("calls.max_concurrent must be positive");
        }
        let timeout_seconds = self
            .call_timeout_seconds
            .or(calls.timeout_seconds)
            .or(defaults.timeout_seconds)
            .unwrap_or(0);
        let tls = self.tls.resolve(tls);
        // Read now, so a bad certificate fails at start-up with its name.
        tls.server_config()?;
        Ok(ServingConfig {
            stack: StackOptions {
                timeout: (timeout_seconds > 0).then(|| Duration::from_secs(timeout_seconds)),
                max_concurrent_calls,
                authenticator: Authenticator::from_file(auth, tenant)?,
            },
            tls,
        })
    }
}

type HttpService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, tower::BoxError>;

/// A gRPC service inside its middleware; added to a server like the service itself.
#[derive(Clone)]
pub struct Stacked<S> {
    inner: HttpService,
    _service: std::marker::PhantomData<fn() -> S>,
}

impl<S: NamedService> NamedService for Stacked<S> {
    const NAME: &'static str = S::NAME;
}

/// Wraps `service` in the middleware, outermost first.
pub fn service_stack<S>(service: S, options: &StackOptions) -> Stacked<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let inner = ServiceBuilder::new()
        // Trace context and metrics: continue the caller's trace, one span and one duration
        // per call, refusals by the layers below included.
        .layer(GrpcTelemetryLayer::new())
        // Timeout: a call that runs longer fails with DEADLINE_EXCEEDED and its work is dropped.
        .option_layer(options.timeout.map(tower::timeout::TimeoutLayer::new))
        // Load shedding: when the limit below has no room, refuse at once instead of queueing
        // (a queued upload would still hold its HTTP/2 window of buffered bytes).
        .load_shed()
        // Concurrency limit, shared by every connection: bounds the memory and backend work
        // that calls hold at once.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            options.max_concurrent_calls.max(1),
        ))
        // Auth: checks the bearer token and role, and hands the caller to the handler.
        .layer(AuthLayer::new(options.authenticator.clone()))
        .service(service.map_err(|never: Infallible| match never {}));
    Stacked {
        inner: BoxCloneSyncService::new(inner),
        _service: std::marker::PhantomData,
    }
}

impl<S> Service<http::Request<Body>> for Stacked<S> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Readiness is decided per call inside (load shedding), never by blocking here.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let response = match inner.ready().await {
                Ok(ready) => ready.call(request).await,
                Err(error) => Err(error),
            };
            Ok(response.unwrap_or_else(|error| middleware_status(error).into_http()))
        })
    }
}

/// The status a middleware error answers with.
fn middleware_status(error: tower::BoxError) -> Status {
    if error.is::<tower::load_shed::error::Overloaded>() {
        Status::unavailable("the server is at its limit of concurrent calls; retry shortly")
    } else if error.is::<tower::timeout::error::Elapsed>() {
        Status::deadline_exceeded("the call ran longer than the server's timeout")
    } else {
        match error.downcast::<Status>() {
            Ok(status) => *status,
            Err(error) => Status::internal(format!("middleware failed: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_middleware_status_maps_limits_to_retryable_codes() {
        assert_eq!(
            middleware_status(Box::new(tower::load_shed::error::Overloaded::new())).code(),
            tonic::Code::Unavailable
        );
        assert_eq!(
            middleware_status(Box::new(tower::timeout::error::Elapsed::new())).code(),
            tonic::Code::DeadlineExceeded
        );
        assert_eq!(
            middleware_status(Box::new(Status::not_found("x"))).code(),
            tonic::Code::NotFound
        );
    }
}
