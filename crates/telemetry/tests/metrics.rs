//! The instrument sets record under the names and attributes the README documents (spelled out
//! here, not taken from the crate's constants), read back
//! through the in-memory exporter `testing::install` sets up. One test function: the meter
//! provider is process-wide, so exact counts hold only with nothing else recording.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use heapfleet_telemetry::metrics::{
    self as names, GatewayMetrics, IngestMetrics, QueueGauges, QueueReading, RpcMetrics,
};
use heapfleet_telemetry::testing;

#[test]
fn test_instruments_record_under_their_documented_names() {
    let telemetry = testing::install();
    assert!(names::metrics_enabled());

    let gateway = GatewayMetrics::new();
    gateway.stored(1_000);
    gateway.stored(24);
    gateway.queued();

    let ingest = IngestMetrics::new();
    ingest.claimed(false);
    ingest.claimed(true);
    ingest.ready(2_000_000, 40_000, Duration::from_millis(500));
    ingest.attempt_failed(true);
    ingest.attempt_failed(true);
    ingest.attempt_failed(false);
    ingest.lease_lost();

    let rpc = RpcMetrics::new();
    rpc.call(
        "heapfleet.query.v1.QueryService",
        "LeakReport",
        0,
        Duration::from_millis(3),
    );
    rpc.call(
        "heapfleet.query.v1.QueryService",
        "LeakReport",
        5,
        Duration::from_millis(1),
    );

    let reading = Arc::new(QueueReading::new());
    let _gauges = QueueGauges::register(reading.clone());
    let before_reading = telemetry.metrics();
    assert_eq!(
        before_reading.gauge("heapfleet.queue.depth", &[("state", "queued")]),
        None,
        "no reading, no value"
    );
    reading.set(7, 2, Some(0));

    let metrics = telemetry.metrics();
    assert_eq!(metrics.counter("heapfleet.upload.bytes", &[]), 1_024);
    assert_eq!(
        metrics.counter("heapfleet.dumps", &[("status", "queued")]),
        1
    );
    assert_eq!(
        metrics.counter("heapfleet.dumps", &[("status", "ready")]),
        1
    );
    assert_eq!(
        metrics.counter("heapfleet.dumps", &[("status", "failed")]),
        1
    );
    assert_eq!(metrics.counter("heapfleet.ingest.bytes", &[]), 2_000_000);
    assert_eq!(metrics.counter("heapfleet.ingest.objects", &[]), 40_000);
    assert_eq!(metrics.histogram_count("heapfleet.ingest.duration", &[]), 1);
    assert_eq!(
        metrics.histogram_count("heapfleet.ingest.byte_rate", &[]),
        1
    );
    assert_eq!(
        metrics.histogram_count("heapfleet.ingest.object_rate", &[]),
        1
    );
    assert_eq!(metrics.counter("heapfleet.ingest.lease.expiries", &[]), 1);
    assert_eq!(metrics.counter("heapfleet.ingest.lease.lost", &[]), 1);
    assert_eq!(metrics.counter("heapfleet.ingest.retries", &[]), 2);
    let leak_report = [("rpc.method", "LeakReport"), ("rpc.system", "grpc")];
    assert_eq!(
        metrics.histogram_count("rpc.server.call.duration", &leak_report),
        2
    );
    assert_eq!(
        metrics.histogram_count(
            "rpc.server.call.duration",
            &[("rpc.method", "LeakReport"), ("rpc.grpc.status_code", "5")]
        ),
        1
    );
    assert_eq!(
        metrics.gauge("heapfleet.queue.depth", &[("state", "queued")]),
        Some(7)
    );
    assert_eq!(
        metrics.gauge("heapfleet.queue.depth", &[("state", "ingesting")]),
        Some(2)
    );
    // Registered at the epoch: decades old.
    assert!(metrics.gauge("heapfleet.queue.oldest_age", &[]).unwrap() > 1_000_000_000);

    reading.clear();
    assert_eq!(
        telemetry
            .metrics()
            .gauge("heapfleet.queue.depth", &[("state", "queued")]),
        None,
        "a cleared reading reports nothing"
    );
}

/// The metric names operators build dashboards on, as the README lists them: the test above
/// records under each of them, spelled out rather than through the crate's constants, so that
/// renaming one fails it.
const DOCUMENTED: [&str; 13] = [
    "heapfleet.upload.bytes",
    "heapfleet.dumps",
    "heapfleet.ingest.bytes",
    "heapfleet.ingest.objects",
    "heapfleet.ingest.duration",
    "heapfleet.ingest.byte_rate",
    "heapfleet.ingest.object_rate",
    "heapfleet.queue.depth",
    "heapfleet.queue.oldest_age",
    "heapfleet.ingest.lease.expiries",
    "heapfleet.ingest.lease.lost",
    "heapfleet.ingest.retries",
    "rpc.server.call.duration",
];

#[test]
fn test_readme_documents_every_metric() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    for name in DOCUMENTED {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not document the metric {name}"
        );
    }
    let test = include_str!("metrics.rs");
    for name in DOCUMENTED {
        assert!(
            test.matches(&format!("\"{name}\"")).count() >= 2,
            "the recording test does not read back {name}"
        );
    }
}
