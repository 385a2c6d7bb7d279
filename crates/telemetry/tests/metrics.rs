//! The instrument sets record under the names and attributes `metrics` documents, read back
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
        before_reading.gauge(names::QUEUE_DEPTH, &[("state", "queued")]),
        None,
        "no reading, no value"
    );
    reading.set(7, 2, Some(0));

    let metrics = telemetry.metrics();
    assert_eq!(metrics.counter(names::UPLOADED_BYTES, &[]), 1_024);
    assert_eq!(metrics.counter(names::DUMPS, &[("status", "queued")]), 1);
    assert_eq!(metrics.counter(names::DUMPS, &[("status", "ready")]), 1);
    assert_eq!(metrics.counter(names::DUMPS, &[("status", "failed")]), 1);
    assert_eq!(metrics.counter(names::INGEST_BYTES, &[]), 2_000_000);
    assert_eq!(metrics.counter(names::INGEST_OBJECTS, &[]), 40_000);
    assert_eq!(metrics.histogram_count(names::INGEST_DURATION, &[]), 1);
    assert_eq!(metrics.histogram_count(names::INGEST_BYTE_RATE, &[]), 1);
    assert_eq!(metrics.histogram_count(names::INGEST_OBJECT_RATE, &[]), 1);
    assert_eq!(metrics.counter(names::LEASE_EXPIRIES, &[]), 1);
    assert_eq!(metrics.counter(names::LEASES_LOST, &[]), 1);
    assert_eq!(metrics.counter(names::RETRIES, &[]), 2);
    let leak_report = [("rpc.method", "LeakReport"), ("rpc.system", "grpc")];
    assert_eq!(
        metrics.histogram_count(names::RPC_SERVER_DURATION, &leak_report),
        2
    );
    assert_eq!(
        metrics.histogram_count(
            names::RPC_SERVER_DURATION,
            &[("rpc.method", "LeakReport"), ("rpc.grpc.status_code", "5")]
        ),
        1
    );
    assert_eq!(
        metrics.gauge(names::QUEUE_DEPTH, &[("state", "queued")]),
        Some(7)
    );
    assert_eq!(
        metrics.gauge(names::QUEUE_DEPTH, &[("state", "ingesting")]),
        Some(2)
    );
    // Registered at the epoch: decades old.
    assert!(metrics.gauge(names::QUEUE_OLDEST_AGE, &[]).unwrap() > 1_000_000_000);

    reading.clear();
    assert_eq!(
        telemetry
            .metrics()
            .gauge(names::QUEUE_DEPTH, &[("state", "queued")]),
        None,
        "a cleared reading reports nothing"
    );
}
