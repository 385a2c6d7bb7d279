//! Every metric heapfleet reports, by name, in one place: the instruments each part of the
//! system records into, created from the global meter provider.
//!
//! Build the instrument sets after [`crate::init`] (or `testing::install`): an instrument made
//! before a meter provider is installed stays a no-op. With metrics export off no provider is
//! installed and recording costs next to nothing.
//!
//! Attributes are few and bounded (a status, an RPC method, an outcome); never a dump id, host
//! or tenant, which would make one time series per dump.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableGauge};

/// The instrumentation scope of every heapfleet instrument.
pub const METER_NAME: &str = "heapfleet";

/// Bytes of dump files the gateway received and stored (counter, `By`). Uploads refused or
/// failed show in [`RPC_SERVER_DURATION`] under their status code.
pub const UPLOADED_BYTES: &str = "heapfleet.upload.bytes";
/// Dumps that reached a status, by `status`: `queued` (registered and queued by the gateway),
/// `ready` or `failed` (final, by a worker) (counter).
pub const DUMPS: &str = "heapfleet.dumps";
/// Dump bytes ingested (counter, `By`).
pub const INGEST_BYTES: &str = "heapfleet.ingest.bytes";
/// Heap objects ingested (counter).
pub const INGEST_OBJECTS: &str = "heapfleet.ingest.objects";
/// Wall-clock time of one successful ingest, parse and store writes (histogram, `s`).
pub const INGEST_DURATION: &str = "heapfleet.ingest.duration";
/// Throughput of one successful ingest in bytes per second (histogram, `By/s`).
pub const INGEST_BYTE_RATE: &str = "heapfleet.ingest.byte_rate";
/// Throughput of one successful ingest in objects per second (histogram).
pub const INGEST_OBJECT_RATE: &str = "heapfleet.ingest.object_rate";
/// Jobs a worker took over because the previous holder's lease had expired (counter).
pub const LEASE_EXPIRIES: &str = "heapfleet.ingest.lease.expiries";
/// Jobs a worker gave up because it lost its lease while working (counter).
pub const LEASES_LOST: &str = "heapfleet.ingest.lease.lost";
/// Failed attempts put back in the queue for another try (counter).
pub const RETRIES: &str = "heapfleet.ingest.retries";
/// Jobs in the queue, by `state`: `queued` or `ingesting` (observable gauge).
pub const QUEUE_DEPTH: &str = "heapfleet.queue.depth";
/// Age of the oldest queued job, from its registration (observable gauge, `s`; 0 when empty).
pub const QUEUE_OLDEST_AGE: &str = "heapfleet.queue.oldest_age";
/// Server-side duration of one gRPC call, by `rpc.service`, `rpc.method` and
/// `rpc.grpc.status_code` (histogram, `s`): the OpenTelemetry semantic-convention name.
pub const RPC_SERVER_DURATION: &str = "rpc.server.call.duration";

/// Set once a meter provider that exports is installed.
static METRICS_ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether metrics go anywhere: work done only to feed a metric (polling the catalog for the
/// queue gauges) is skipped when they do not.
pub fn metrics_enabled() -> bool {
    METRICS_ENABLED.load(Ordering::Relaxed)
}

pub(crate) fn set_metrics_enabled(enabled: bool) {
    METRICS_ENABLED.store(enabled, Ordering::Relaxed);
}

/// The meter every heapfleet instrument comes from.
pub fn meter() -> Meter {
    opentelemetry::global::meter(METER_NAME)
}

/// Bucket bounds for durations in seconds: 1 ms to 10 minutes (gRPC calls to large ingests).
const SECONDS_BOUNDS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
    600.0,
];
/// Bucket bounds for ingest throughput in bytes per second: 1 MB/s to 2 GB/s.
const BYTE_RATE_BOUNDS: [f64; 11] = [
    1e6, 5e6, 10e6, 25e6, 50e6, 100e6, 200e6, 350e6, 500e6, 1e9, 2e9,
];
/// Bucket bounds for ingest throughput in objects per second: 10 thousand to 50 million.
const OBJECT_RATE_BOUNDS: [f64; 9] = [1e4, 1e5, 5e5, 1e6, 2.5e6, 5e6, 1e7, 2.5e7, 5e7];

/// What the gateway records.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    uploaded_bytes: Counter<u64>,
    dumps: Counter<u64>,
}

impl GatewayMetrics {
    /// The gateway's instruments, from the global meter provider.
    pub fn new() -> GatewayMetrics {
        let meter = meter();
        GatewayMetrics {
            uploaded_bytes: meter
                .u64_counter(UPLOADED_BYTES)
                .with_unit("By")
                .with_description("Bytes of dump files received and stored")
                .build(),
            dumps: dumps_counter(&meter),
        }
    }

    /// An upload of `bytes` was stored.
    pub fn stored(&self, bytes: u64) {
        self.uploaded_bytes.add(bytes, &[]);
    }

    /// A new dump was registered and its ingest queued.
    pub fn queued(&self) {
        self.dumps.add(1, &[KeyValue::new("status", "queued")]);
    }
}

impl Default for GatewayMetrics {
    fn default() -> GatewayMetrics {
        GatewayMetrics::new()
    }
}

fn dumps_counter(meter: &Meter) -> Counter<u64> {
    meter
        .u64_counter(DUMPS)
        .with_unit("{dump}")
        .with_description("Dumps that reached a status: queued, ready or failed")
        .build()
}

/// What an ingest worker records.
#[derive(Debug, Clone)]
pub struct IngestMetrics {
    bytes: Counter<u64>,
    objects: Counter<u64>,
    duration: Histogram<f64>,
    byte_rate: Histogram<f64>,
    object_rate: Histogram<f64>,
    dumps: Counter<u64>,
    lease_expiries: Counter<u64>,
    leases_lost: Counter<u64>,
    retries: Counter<u64>,
}

impl IngestMetrics {
    /// The worker's instruments, from the global meter provider.
    pub fn new() -> IngestMetrics {
        let meter = meter();
        IngestMetrics {
            bytes: meter
                .u64_counter(INGEST_BYTES)
                .with_unit("By")
                .with_description("Dump bytes ingested")
                .build(),
            objects: meter
                .u64_counter(INGEST_OBJECTS)
                .with_unit("{object}")
                .with_description("Heap objects ingested")
                .build(),
            duration: meter
                .f64_histogram(INGEST_DURATION)
                .with_unit("s")
                .with_description("Time of one successful ingest: parse and store writes")
                .with_boundaries(SECONDS_BOUNDS.to_vec())
                .build(),
            byte_rate: meter
                .f64_histogram(INGEST_BYTE_RATE)
                .with_unit("By/s")
                .with_description("Throughput of one successful ingest in bytes per second")
                .with_boundaries(BYTE_RATE_BOUNDS.to_vec())
                .build(),
            object_rate: meter
                .f64_histogram(INGEST_OBJECT_RATE)
                .with_unit("{object}/s")
                .with_description("Throughput of one successful ingest in objects per second")
                .with_boundaries(OBJECT_RATE_BOUNDS.to_vec())
                .build(),
            dumps: dumps_counter(&meter),
            lease_expiries: meter
                .u64_counter(LEASE_EXPIRIES)
                .with_unit("{job}")
                .with_description("Jobs taken over after the previous holder's lease expired")
                .build(),
            leases_lost: meter
                .u64_counter(LEASES_LOST)
                .with_unit("{job}")
                .with_description("Jobs given up because the worker lost its lease")
                .build(),
            retries: meter
                .u64_counter(RETRIES)
                .with_unit("{attempt}")
                .with_description("Failed attempts queued again for another try")
                .build(),
        }
    }

    /// A job was claimed; `after_expired_lease` when another worker's lease had run out on it.
    pub fn claimed(&self, after_expired_lease: bool) {
        if after_expired_lease {
            self.lease_expiries.add(1, &[]);
        }
    }

    /// A dump of `bytes` and `objects` was ingested in `elapsed` and marked ready.
    pub fn ready(&self, bytes: u64, objects: u64, elapsed: Duration) {
        self.bytes.add(bytes, &[]);
        self.objects.add(objects, &[]);
        self.dumps.add(1, &[KeyValue::new("status", "ready")]);
        let seconds = elapsed.as_secs_f64();
        self.duration.record(seconds, &[]);
        if seconds > 0.0 {
            self.byte_rate.record(bytes as f64 / seconds, &[]);
            self.object_rate.record(objects as f64 / seconds, &[]);
        }
    }

    /// An attempt failed: `retried` when the dump went back to the queue, else it failed for
    /// good.
    pub fn attempt_failed(&self, retried: bool) {
        if retried {
            self.retries.add(1, &[]);
        } else {
            self.dumps.add(1, &[KeyValue::new("status", "failed")]);
        }
    }

    /// The worker lost its lease on a job it was running.
    pub fn lease_lost(&self) {
        self.leases_lost.add(1, &[]);
    }
}

impl Default for IngestMetrics {
    fn default() -> IngestMetrics {
        IngestMetrics::new()
    }
}

/// The latest reading of the job queue, which the queue gauges report. The callbacks that
/// report gauges run on the exporter's thread and cannot wait for the catalog, so a task reads
/// the catalog now and then ([`QueueReading::set`]) and the callbacks report the last reading.
#[derive(Debug)]
pub struct QueueReading {
    queued: AtomicU64,
    ingesting: AtomicU64,
    /// When the oldest queued job was registered (Unix seconds); [`NO_OLDEST`] when none is.
    oldest_registered_at_unix: AtomicI64,
    /// Whether any reading was taken: before the first, the gauges report nothing.
    read: AtomicBool,
}

const NO_OLDEST: i64 = i64::MIN;

impl QueueReading {
    /// A reading not taken yet.
    pub fn new() -> QueueReading {
        QueueReading {
            queued: AtomicU64::new(0),
            ingesting: AtomicU64::new(0),
            oldest_registered_at_unix: AtomicI64::new(NO_OLDEST),
            read: AtomicBool::new(false),
        }
    }

    /// Records a reading: `queued` and `ingesting` jobs, and when the oldest queued one was
    /// registered.
    pub fn set(&self, queued: u64, ingesting: u64, oldest_registered_at_unix: Option<i64>) {
        self.queued.store(queued, Ordering::Relaxed);
        self.ingesting.store(ingesting, Ordering::Relaxed);
        self.oldest_registered_at_unix.store(
            oldest_registered_at_unix.unwrap_or(NO_OLDEST),
            Ordering::Relaxed,
        );
        self.read.store(true, Ordering::Relaxed);
    }

    /// Forgets the reading: the gauges report nothing until the next [`QueueReading::set`]. A
    /// stopped reader clears its reading, so no stale value outlives it.
    pub fn clear(&self) {
        self.read.store(false, Ordering::Relaxed);
    }

    /// The oldest queued job's age at `now_unix` in seconds, 0 when the queue is empty.
    fn oldest_age_seconds(&self, now_unix: i64) -> u64 {
        match self.oldest_registered_at_unix.load(Ordering::Relaxed) {
            NO_OLDEST => 0,
            registered => u64::try_from(now_unix.saturating_sub(registered)).unwrap_or(0),
        }
    }
}

impl Default for QueueReading {
    fn default() -> QueueReading {
        QueueReading::new()
    }
}

/// The queue gauges, reporting `reading` at each collection. Keep the value alive as long as
/// the gauges should report.
#[derive(Debug)]
pub struct QueueGauges {
    _depth: ObservableGauge<u64>,
    _oldest_age: ObservableGauge<u64>,
}

impl QueueGauges {
    /// Registers the queue gauges on the global meter provider.
    pub fn register(reading: Arc<QueueReading>) -> QueueGauges {
        let meter = meter();
        let depth_reading = reading.clone();
        let depth = meter
            .u64_observable_gauge(QUEUE_DEPTH)
            .with_unit("{job}")
            .with_description("Jobs in the ingest queue, by state")
            .with_callback(move |observer| {
                if depth_reading.read.load(Ordering::Relaxed) {
                    observer.observe(
                        depth_reading.queued.load(Ordering::Relaxed),
                        &[KeyValue::new("state", "queued")],
                    );
                    observer.observe(
                        depth_reading.ingesting.load(Ordering::Relaxed),
                        &[KeyValue::new("state", "ingesting")],
                    );
                }
            })
            .build();
        let oldest_age = meter
            .u64_observable_gauge(QUEUE_OLDEST_AGE)
            .with_unit("s")
            .with_description("Age of the oldest queued ingest job")
            .with_callback(move |observer| {
                if reading.read.load(Ordering::Relaxed) {
                    observer.observe(reading.oldest_age_seconds(unix_now()), &[]);
                }
            })
            .build();
        QueueGauges {
            _depth: depth,
            _oldest_age: oldest_age,
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// What every gRPC server records, per call.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    duration: Histogram<f64>,
}

impl RpcMetrics {
    /// The server instruments, from the global meter provider.
    pub fn new() -> RpcMetrics {
        RpcMetrics {
            duration: meter()
                .f64_histogram(RPC_SERVER_DURATION)
                .with_unit("s")
                .with_description("Server-side duration of gRPC calls")
                .with_boundaries(SECONDS_BOUNDS.to_vec())
                .build(),
        }
    }

    /// A call to `service`/`method` answered with gRPC status `code` after `elapsed`.
    pub fn call(&self, service: &str, method: &str, code: i32, elapsed: Duration) {
        self.duration.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service.to_owned()),
                KeyValue::new("rpc.method", method.to_owned()),
                KeyValue::new("rpc.grpc.status_code", i64::from(code)),
            ],
        );
    }
}

impl Default for RpcMetrics {
    fn default() -> RpcMetrics {
        RpcMetrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_queue_reading_ages_the_oldest_job() {
        let reading = QueueReading::new();
        assert_eq!(reading.oldest_age_seconds(1_000), 0);
        reading.set(3, 1, Some(900));
        assert_eq!(reading.oldest_age_seconds(1_000), 100);
        // A clock behind the catalog's never reports a negative age.
        assert_eq!(reading.oldest_age_seconds(800), 0);
        reading.set(0, 1, None);
        assert_eq!(reading.oldest_age_seconds(1_000), 0);
    }
}
