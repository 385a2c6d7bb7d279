//! Starting and stopping a gRPC server the same way in every heapfleet binary.

use std::future::Future;
use std::process::ExitCode;

use anyhow::Context;
use heapfleet_telemetry::TelemetryConfig;
use tokio::net::TcpListener;
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::server::HealthReporter;

use crate::health;
use crate::tls::TlsFile;

/// HTTP/2 flow-control window of one stream (see [`serve`]).
pub const STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// HTTP/2 flow-control window of a connection.
pub const CONNECTION_WINDOW_BYTES: u32 = 32 << 20;

/// A server's routes with grpc.health.v1 and reflection already added, and the reporter that
/// sets the health statuses (all NOT_SERVING until set).
pub struct ServerParts {
    /// Add the server's own services here.
    pub routes: RoutesBuilder,
    /// Sets health statuses.
    pub reporter: HealthReporter,
}

/// Builds the routes every server starts from, with the overall status and each of
/// `services` NOT_SERVING until [`health::watch_backends`] has seen the backends answer.
pub async fn server_parts(services: &[&str]) -> anyhow::Result<ServerParts> {
    let (reporter, health_server) = health::health_service();
    // tonic-health starts the overall status SERVING; nothing is known about the backends yet.
    reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    for service in services {
        reporter
            .set_service_status(*service, tonic_health::ServingStatus::NotServing)
            .await;
    }
    let mut routes = RoutesBuilder::default();
    routes.add_service(health_server);
    routes.add_service(health::reflection_service()?);
    Ok(ServerParts { routes, reporter })
}

/// Binds `address`, failing with a message that names it.
pub async fn bind(address: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))
}

/// Serves `routes` on `listener` until `shutdown` resolves, then lets in-flight calls finish;
/// over TLS when `tls` names a certificate and key.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    tls: &TlsFile,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    let mut builder = tonic::transport::Server::builder();
    match tls.server_config()? {
        Some(config) => {
            builder = builder
                .tls_config(config)
                .context("the TLS certificate or key is not usable")?;
            tracing::info!(%address, "listening (TLS)");
        }
        None => tracing::info!(%address, "listening"),
    }
    builder
        // HTTP/2's default 64 KiB flow-control windows cap a single upload stream far below
        // what a loopback or LAN link carries; larger windows let a dump stream at disk speed.
        .initial_stream_window_size(Some(STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(CONNECTION_WINDOW_BYTES))
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
        .context("the gRPC server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Runs a server binary's `main`: a tokio runtime, telemetry started in it for
/// `service_name` (logs to stderr by `RUST_LOG`, default `info`; traces and metrics over OTLP
/// as the `OTEL_*` variables say, see `heapfleet_telemetry::TelemetryConfig::from_lookup`),
/// then `main`; at the end the last spans and metrics are flushed and any error is printed on
/// one line with a failing exit code. A bad `OTEL_*` setting fails before `main` runs, so
/// before anything is bound.
pub fn run_main<F, Fut>(service_name: &str, main: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return fatal(&anyhow::Error::new(error).context("failed to start the async runtime"));
        }
    };
    let telemetry = TelemetryConfig::from_env(service_name, "info").and_then(|config| {
        // The OTLP exporter's gRPC channel lives on this runtime.
        let _runtime_context = runtime.enter();
        heapfleet_telemetry::init(&config)
    });
    let guard = match telemetry {
        Ok(guard) => guard,
        Err(error) => return fatal(&anyhow::Error::new(error).context("cannot start telemetry")),
    };
    let result = runtime.block_on(main());
    if let Err(error) = &result {
        tracing::error!("{error:#}");
    }
    // While the runtime still runs: the exporters send their last batches through it.
    guard.shutdown();
    drop(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fatal(&error),
    }
}

/// Prints a server's fatal error on one line and returns the failing exit code.
fn fatal(error: &anyhow::Error) -> ExitCode {
    #[allow(clippy::print_stderr)] // The one place a server's fatal error is shown.
    {
        eprintln!("error: {error:#}");
    }
    ExitCode::FAILURE
}
