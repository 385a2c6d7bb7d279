//! Telemetry end to end, in this process on the embedded backends (SQLite catalog, dump files
//! in a directory, SQLite store), exported to the SDK's in-memory exporters: an upload through
//! a real gateway, its ingest by a real worker and a query through the query service form the
//! traces and metrics operators rely on. The ingest's span is linked to the upload's (the trace
//! context travels in the catalog's job row), the store writes are its children, the query
//! service continues the client's trace, and the counters and gauges move as they should.
//!
//! One test function: the subscriber and the meter provider are process-wide, so the exact
//! counts asserted here hold only with nothing else running in this binary.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use heapfleet_catalog::{Catalog, DumpId, DumpStatus, SqliteCatalog};
use heapfleet_gateway::{Gateway, Limits, client};
use heapfleet_ingester::{Ingester, WorkerSettings};
use heapfleet_objects::S3Options;
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_query::{Queries, QueryServer, RemoteQueries, StoreQueries};
use heapfleet_service::backends::Objects;
use heapfleet_storage::{AggregateStore, SqliteStore};
use heapfleet_telemetry::OpenTelemetrySpanExt;
use heapfleet_telemetry::metrics as names;
use heapfleet_telemetry::opentelemetry::trace::{SpanId, TraceContextExt};
use heapfleet_telemetry::testing::{self, MetricsReading, SpanData, TestTelemetry};
use heapfleet_tests::fixture;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

const TENANT: &str = "telemetry";
/// How long a test waits for something that should take well under a second.
const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `probe` until it returns something or [`DEADLINE`] passes (then fails with `what`).
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first finished span that `matches`, waiting for it to end.
async fn finished_span(
    telemetry: &TestTelemetry,
    what: &str,
    matches: impl Fn(&SpanData) -> bool,
) -> SpanData {
    eventually(what, || {
        let found = telemetry.finished_spans().into_iter().find(&matches);
        async move { found }
    })
    .await
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| attribute.value.as_str().into_owned())
}

/// Waits until the dump is ready.
async fn wait_ready(catalog: &dyn Catalog, id: &DumpId) {
    eventually(&format!("dump {id} to be ready"), || async {
        let status = catalog.get_dump(id).await.unwrap().status;
        assert!(
            !matches!(status, DumpStatus::Failed { .. }),
            "dump {id} failed: {status:?}"
        );
        (status == DumpStatus::Ready).then_some(())
    })
    .await;
}

/// Uploads `path` as a dump of process web-1/`pid`; returns its id.
async fn upload(url: &str, path: &Path, pid: u32) -> DumpId {
    let mut ingest = client::connect(url).await.unwrap();
    let metadata = pb::DumpMetadata {
        host: "web-1".to_owned(),
        pid,
        taken_at_unix: 1_800_000_000 + i64::from(pid),
        ..pb::DumpMetadata::default()
    };
    let response = client::upload_file(&mut ingest, path, metadata, None)
        .await
        .unwrap();
    assert!(response.created);
    response.dump.unwrap().dump_id.parse().unwrap()
}

/// A worker on the backends with `concurrency` slots, running until `stop` is cancelled.
fn start_worker(
    catalog: &Arc<dyn Catalog>,
    store: &Arc<dyn AggregateStore>,
    objects: &Objects,
    name: &str,
    concurrency: usize,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let settings = WorkerSettings {
        name: name.to_owned(),
        concurrency,
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_secs(30),
        ..WorkerSettings::default()
    };
    let ingester = Ingester::new(catalog.clone(), store.clone(), objects.clone(), settings);
    tokio::spawn(ingester.run(stop.clone()))
}

fn assert_counter(reading: &MetricsReading, name: &str, attributes: &[(&str, &str)], want: u64) {
    assert_eq!(
        reading.counter(name, attributes),
        want,
        "{name} {attributes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_upload_ingest_and_query_are_traced_and_measured() {
    let telemetry = testing::install();
    let dir = tempfile::tempdir().unwrap();
    let catalog: Arc<dyn Catalog> = Arc::new(
        SqliteCatalog::open(dir.path().join("catalog"))
            .await
            .unwrap(),
    );
    let store: Arc<dyn AggregateStore> =
        Arc::new(SqliteStore::open(dir.path().join("store")).await.unwrap());
    let objects_dir = dir.path().join("objects");
    std::fs::create_dir_all(&objects_dir).unwrap();
    let objects = Objects::open(objects_dir.to_str().unwrap(), &S3Options::default()).unwrap();

    // The gateway and the query service on one port, as `heapfleet serve` runs them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut parts = heapfleet_service::server::server_parts(&[]).await.unwrap();
    let gateway = Gateway::new(TENANT, catalog.clone(), objects.clone(), Limits::default());
    // The middleware the servers run, with its trace and metrics layer.
    let serving = heapfleet_service::stack::ServingConfig::open(TENANT, 16, None);
    parts
        .routes
        .add_service(heapfleet_service::stack::service_stack(
            gateway.into_server(),
            &serving.stack,
        ));
    let queries = StoreQueries::new(TENANT, catalog.clone(), store.clone());
    parts
        .routes
        .add_service(heapfleet_service::stack::service_stack(
            QueryServer::new(queries).into_server(),
            &serving.stack,
        ));
    let server_stop = CancellationToken::new();
    let stopped = server_stop.clone();
    let routes = parts.routes.routes();
    let server = tokio::spawn(async move {
        heapfleet_service::server::serve(
            listener,
            routes,
            &heapfleet_service::tls::TlsFile::default(),
            async move { stopped.cancelled().await },
        )
        .await
    });

    // An upload, then its ingest.
    let small = fixture("dumps/small/heap-1795773583.dump");
    let small_bytes = std::fs::metadata(&small).unwrap().len();
    let first = upload(&url, &small, 1).await;
    let stop_first_worker = CancellationToken::new();
    let first_worker = start_worker(
        &catalog,
        &store,
        &objects,
        "worker-1",
        1,
        &stop_first_worker,
    );
    wait_ready(catalog.as_ref(), &first).await;

    let upload_span = finished_span(telemetry, "the gateway's upload span", |span| {
        span.name == "heapfleet.ingest.v1.IngestService/UploadDump"
    })
    .await;
    let client_span = finished_span(telemetry, "the client's upload span", |span| {
        span.name == "upload dump"
    })
    .await;
    assert_eq!(
        upload_span.span_context.trace_id(),
        client_span.span_context.trace_id(),
        "the gateway continues the client's trace"
    );
    assert_eq!(
        upload_span.parent_span_id,
        client_span.span_context.span_id()
    );
    assert_eq!(
        attribute(&upload_span, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );

    let ingest_span = finished_span(telemetry, "the ingest span", |span| {
        span.name == "ingest dump" && attribute(span, "dump").as_deref() == Some(first.as_str())
    })
    .await;
    assert_eq!(
        ingest_span.parent_span_id,
        SpanId::INVALID,
        "a trace of its own"
    );
    assert_ne!(
        ingest_span.span_context.trace_id(),
        upload_span.span_context.trace_id()
    );
    let links: Vec<_> = ingest_span
        .links
        .iter()
        .map(|link| link.span_context.clone())
        .collect();
    assert_eq!(links.len(), 1, "one link, to the upload: {links:?}");
    assert_eq!(links[0].trace_id(), upload_span.span_context.trace_id());
    assert_eq!(links[0].span_id(), upload_span.span_context.span_id());

    let spans = telemetry.finished_spans();
    for write in [
        "store put_index_chunk",
        "store finish_index",
        "store put_dump_aggregates",
    ] {
        let children: Vec<&SpanData> = spans
            .iter()
            .filter(|span| span.name == write)
            .filter(|span| span.span_context.trace_id() == ingest_span.span_context.trace_id())
            .collect();
        assert!(
            !children.is_empty(),
            "no {write} span in the ingest's trace"
        );
        for child in children {
            assert_eq!(
                child.parent_span_id,
                ingest_span.span_context.span_id(),
                "{write} is a child of the ingest span"
            );
        }
    }

    // A query from inside a span of the caller's joins the caller's trace.
    let remote = RemoteQueries::connect(&url).await.unwrap();
    let caller = tracing::info_span!(target: "heapfleet_test", "caller");
    let caller_context = caller.context();
    let caller_span_context = caller_context.span().span_context().clone();
    assert!(caller_span_context.is_valid());
    let summary = remote
        .dump_summary(first.as_str())
        .instrument(caller.clone())
        .await
        .unwrap();
    drop(caller);
    assert_eq!(summary.dump.id, first);
    let query_span = finished_span(telemetry, "the query span", |span| {
        span.name == "heapfleet.query.v1.QueryService/DumpSummary"
    })
    .await;
    assert_eq!(
        query_span.span_context.trace_id(),
        caller_span_context.trace_id()
    );
    assert_eq!(query_span.parent_span_id, caller_span_context.span_id());

    let reading = telemetry.metrics();
    let stored = catalog.get_dump(&first).await.unwrap();
    assert_counter(&reading, names::UPLOADED_BYTES, &[], small_bytes);
    assert_counter(&reading, names::DUMPS, &[("status", "queued")], 1);
    assert_counter(&reading, names::DUMPS, &[("status", "ready")], 1);
    assert_counter(&reading, names::DUMPS, &[("status", "failed")], 0);
    assert_counter(&reading, names::INGEST_OBJECTS, &[], stored.objects);
    assert!(reading.counter(names::INGEST_BYTES, &[]) >= small_bytes);
    assert_eq!(reading.histogram_count(names::INGEST_DURATION, &[]), 1);
    assert_eq!(reading.histogram_count(names::INGEST_OBJECT_RATE, &[]), 1);
    assert_counter(&reading, names::LEASE_EXPIRIES, &[], 0);
    let query_calls = [
        ("rpc.service", "heapfleet.query.v1.QueryService"),
        ("rpc.method", "DumpSummary"),
        ("rpc.grpc.status_code", "0"),
    ];
    assert_eq!(
        reading.histogram_count(names::RPC_SERVER_DURATION, &query_calls),
        1
    );
    assert_eq!(
        reading.histogram_count(names::RPC_SERVER_DURATION, &[("rpc.method", "UploadDump")]),
        1
    );

    // A stopped worker's queue gauges go quiet.
    stop_first_worker.cancel();
    first_worker.await.unwrap();
    assert_eq!(
        telemetry
            .metrics()
            .gauge(names::QUEUE_DEPTH, &[("state", "queued")]),
        None
    );

    // A second upload waits in the queue: a worker without slots reports it in the gauges.
    let series = fixture("dumps/series/heap-10536-1795773583-100.dump.gz");
    let second = upload(&url, &series, 2).await;
    let stop_reader = CancellationToken::new();
    let reader = start_worker(&catalog, &store, &objects, "reader", 0, &stop_reader);
    eventually("the queue gauges to report the queued dump", || {
        let reading = telemetry.metrics();
        let queued = reading.gauge(names::QUEUE_DEPTH, &[("state", "queued")]);
        let oldest = reading.gauge(names::QUEUE_OLDEST_AGE, &[]);
        async move { (queued == Some(1) && oldest.is_some()).then_some(()) }
    })
    .await;
    stop_reader.cancel();
    reader.await.unwrap();

    // A worker that crashed holding the job: the next worker takes it over once the lease
    // expires, and counts the expiry.
    let crashed = catalog
        .claim_job("crashed-worker", Duration::from_millis(1), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(crashed.dump.id, second);
    let stop_second_worker = CancellationToken::new();
    let second_worker = start_worker(
        &catalog,
        &store,
        &objects,
        "worker-2",
        1,
        &stop_second_worker,
    );
    wait_ready(catalog.as_ref(), &second).await;
    let retried_span = finished_span(telemetry, "the second ingest span", |span| {
        span.name == "ingest dump" && attribute(span, "dump").as_deref() == Some(second.as_str())
    })
    .await;
    assert_eq!(retried_span.links.len(), 1, "linked to its upload");
    let reading = telemetry.metrics();
    assert_counter(&reading, names::LEASE_EXPIRIES, &[], 1);
    assert_counter(&reading, names::DUMPS, &[("status", "queued")], 2);
    assert_counter(&reading, names::DUMPS, &[("status", "ready")], 2);
    assert_counter(
        &reading,
        names::UPLOADED_BYTES,
        &[],
        small_bytes + std::fs::metadata(&series).unwrap().len(),
    );

    stop_second_worker.cancel();
    second_worker.await.unwrap();
    server_stop.cancel();
    server.await.unwrap().unwrap();
}
