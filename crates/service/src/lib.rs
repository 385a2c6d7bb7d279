//! What every heapfleet server shares, so the gateway, the ingesters, the query service and
//! the all-in-one `heapfleet serve` start, report health and stop alike:
//!
//! - [`backends`]: the catalog, aggregate store and object store, each opened from one URL;
//! - [`config`]: reading a service's TOML config file, with the rule that flags and
//!   `HEAPFLEET_*` variables override the file;
//! - [`health`]: grpc.health.v1 that says NOT_SERVING until the backends answer, and server
//!   reflection, so grpcurl works against every server;
//! - [`convert`]: catalog records to and from the API messages;
//! - [`status`]: backend errors as gRPC status codes (UNAVAILABLE is retryable, INTERNAL not);
//! - [`server`]: one way to serve, bind and run a server binary's `main` (telemetry included);
//! - [`grpc_telemetry`]: trace context and a span per call at the gRPC edge, both sides;
//! - [`shutdown`]: the future that resolves on SIGTERM or Ctrl-C.

#![warn(missing_docs)]

pub mod auth;
pub mod backends;
pub mod config;
pub mod convert;
pub mod grpc_telemetry;
pub mod health;
pub mod server;
pub mod shutdown;
pub mod stack;
pub mod status;
pub mod tls;

pub use server::run_main;

/// The allocator every heapfleet binary uses (`#[global_allocator]`): mimalloc, which serves
/// the many small, short-lived allocations of parsing and of fleet reports (site keys, rows)
/// faster than the system allocator across threads.
pub type Allocator = mimalloc::MiMalloc;
