//! Backend faults on the real distributed pipeline: a gateway (in this process) and ingester
//! processes against real PostgreSQL, S3 (s3s-fs) and Cassandra, where each test stops one
//! backend in the middle of an upload or an ingest and starts it again. Each test owns the
//! server it stops (its own PostgreSQL cluster, S3 server or Cassandra node, started through
//! the scripts under `scripts/` on free loopback ports and removed on drop, even when the test
//! fails) and shares the others with the rest of the suite, so a fault never reaches another
//! test or the shared Cassandra on 127.0.0.1:9042.
//!
//! In every case: an upload that was acknowledged is never lost and never counted twice (one
//! catalog row, `ready`, its stored aggregates and index equal to a clean local parse); an
//! upload that was not acknowledged left no catalog row; nothing stays leased; the ingester
//! keeps running and the servers report SERVING again without help; and while the backend is
//! down the errors say UNAVAILABLE (retry later), never INTERNAL.
//!
//! The remaining fault of the set, SIGKILL of an ingester in the middle of a dump, is
//! `test_killed_ingester_job_is_finished_by_another_without_double_counts` in `pipeline.rs`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{
    IngesterProcess, RunningGateway, Servers, assert_catalog_counts_stored_objects,
    assert_nothing_registered, assert_stored_equals_local_parse, fixture_dumps, metadata_for,
    sha256_hex, start_gateway, start_gateway_with_s3, unique, wait_health, wait_ready,
};
use futures::SinkExt;
use heapfleet_catalog::{DumpFilter, DumpId, DumpStatus};
use heapfleet_gateway::{Limits, client};
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_service::backends::open_store;
use heapfleet_tests::{
    generated_dir, generated_dump, services_required, tool_available, workspace_root,
};
use tonic_health::pb::health_check_response::ServingStatus;

/// How long any one wait of these tests may take before it fails the test.
const PATIENCE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_postgres_down_during_upload_is_unavailable_and_a_retry_lands_once() {
    let started = Instant::now();
    let Some(shared) = Servers::from_env() else {
        return;
    };
    let Some(postgres) = OwnPostgres::start() else {
        return;
    };
    // Its own S3 server too, only to see when the gateway has started storing the upload.
    let Some(s3) = OwnS3::start() else {
        return;
    };
    let servers = shared
        .with_postgres(&postgres.url)
        .with_s3_endpoint(&s3.endpoint);
    let tenant = unique("pgup");
    let gateway = start_gateway(&servers, &tenant, Limits::default()).await;
    let mut ingester = IngesterProcess::start(&servers, &gateway, &tenant, "a");
    let ingester_health = ingester.health_url(PATIENCE).await;
    wait_status(&gateway.url, ServingStatus::Serving, &ingester).await;

    let dump = fixture_dumps().pop().unwrap();
    let body = std::fs::read(&dump).unwrap();
    let metadata = full_metadata(&dump, &body, "web-1");
    let mut upload = StreamedUpload::start(&gateway.url, metadata).await;
    upload.send(&body[..body.len() / 2]).await;
    s3.wait_upload_started().await;
    postgres.pause().await;
    upload.send(&body[body.len() / 2..]).await;
    let refused = upload.finish().await.unwrap_err();
    assert_unavailable(&refused, "catalog unavailable");

    // While the catalog is down every call that needs it says so, and health follows.
    let mut api = client::connect(&gateway.url).await.unwrap();
    let listed = api
        .list_dumps(pb::ListDumpsRequest::default())
        .await
        .unwrap_err();
    assert_unavailable(&listed, "catalog unavailable");
    wait_status(&gateway.url, ServingStatus::NotServing, &ingester).await;

    postgres.resume().await;
    // The refused upload left no row (its object may stay in the bucket, unregistered, until
    // the retry overwrites it under the same key).
    let rows = tenant_dumps(&gateway, &tenant).await;
    assert!(
        rows.is_empty(),
        "an unacknowledged upload registered {rows:?}"
    );

    let mut api = client::connect(&gateway.url).await.unwrap();
    let retried = upload_with_retries(&mut api, &dump, "web-1").await;
    assert!(
        retried.created,
        "the refused upload was not registered before"
    );
    let id: DumpId = retried.dump.unwrap().dump_id.parse().unwrap();
    wait_dump_ready(&gateway, &id, &ingester).await;
    assert_eq!(gateway.catalog.get_dump(&id).await.unwrap().attempts, 1);
    // The retry stored its file under the key the refused upload had used: one object.
    assert_eq!(tenant_objects(&gateway, &tenant).await, 1);
    assert_recovered(&servers, &gateway, &tenant, &[(id, dump)], &mut ingester).await;
    wait_serving(&[&ingester_health, &gateway.url], &ingester).await;
    note_time("postgres down during upload", started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_postgres_hung_turns_health_not_serving_through_the_probe_timeout() {
    let started = Instant::now();
    let Some(shared) = Servers::from_env() else {
        return;
    };
    let Some(postgres) = OwnPostgres::start() else {
        return;
    };
    let servers = shared.with_postgres(&postgres.url);
    let tenant = unique("pghung");
    let gateway = start_gateway(&servers, &tenant, Limits::default()).await;
    let no_logs = || String::new();
    wait_health(&gateway.url, ServingStatus::Serving, PATIENCE, &no_logs).await;

    // Every process of the cluster stopped: connections stay open and nothing answers, so
    // only the probe's own timeout can tell that the catalog is gone.
    postgres.signal("STOP").unwrap();
    // A probe every 5 s that gives up after 3 s: NOT_SERVING within 8 s, allowed 30 here (a
    // bound of its own, not the constants, so that a lost timeout fails this test).
    let within = Duration::from_secs(30);
    wait_health(&gateway.url, ServingStatus::NotServing, within, &no_logs).await;

    postgres.signal("CONT").unwrap();
    wait_health(&gateway.url, ServingStatus::Serving, PATIENCE, &no_logs).await;
    note_time("postgres hung", started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_postgres_down_during_ingest_the_job_still_ends_ready_once() {
    let started = Instant::now();
    let Some(shared) = Servers::from_env() else {
        return;
    };
    let Some(dump) = large_dump() else {
        return;
    };
    let Some(postgres) = OwnPostgres::start() else {
        return;
    };
    let servers = shared.with_postgres(&postgres.url);
    let tenant = unique("pgin");
    let gateway = start_gateway(&servers, &tenant, Limits::default()).await;
    let mut ingester = IngesterProcess::start(&servers, &gateway, &tenant, "a");
    let ingester_health = ingester.health_url(PATIENCE).await;

    let mut api = client::connect(&gateway.url).await.unwrap();
    let response = upload_with_retries(&mut api, &dump, "web-2").await;
    let id: DumpId = response.dump.unwrap().dump_id.parse().unwrap();
    wait_ingesting(&gateway, &id, &ingester).await;
    postgres.pause().await;

    // The parse goes on without the catalog; renewing the lease and completing the job fail
    // as retryable, and the ingester neither exits nor gives up: it keeps trying to complete.
    let log = wait_log(
        &ingester,
        "cannot complete the job yet",
        "ingest finished dump=",
    )
    .await;
    assert!(
        log.contains("catalog unavailable") && !log.contains("internal catalog error"),
        "{log}"
    );
    assert!(
        ingester.child.try_wait().unwrap().is_none(),
        "the ingester exited while PostgreSQL was down\n{log}"
    );
    let down = api
        .get_dump(pb::GetDumpRequest {
            dump_id: id.to_string(),
        })
        .await
        .unwrap_err();
    assert_unavailable(&down, "catalog unavailable");

    postgres.resume().await;
    wait_dump_ready(&gateway, &id, &ingester).await;
    let record = gateway.catalog.get_dump(&id).await.unwrap();
    // The attempt's result was stored while the catalog was down; its completion, retried,
    // reached the catalog once it was back, so the dump was not ingested a second time (the
    // only ingester has one slot: nothing else could claim the job meanwhile).
    assert_eq!(
        record.attempts,
        1,
        "the one attempt completed after the outage\n{}",
        ingester.log()
    );
    assert_recovered(&servers, &gateway, &tenant, &[(id, dump)], &mut ingester).await;
    wait_serving(&[&ingester_health], &ingester).await;
    note_time("postgres down during ingest", started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_s3_down_during_upload_is_unavailable_and_a_retry_lands_once() {
    let started = Instant::now();
    let Some(shared) = Servers::from_env() else {
        return;
    };
    let Some(mut s3) = OwnS3::start() else {
        return;
    };
    let servers = shared.with_s3_endpoint(&s3.endpoint);
    let tenant = unique("s3up");
    // The S3 client retries a failed request for up to 3 minutes by default; a short budget
    // makes the stopped server an error within the test's patience.
    let s3_options = heapfleet_objects::S3Options {
        retry_timeout: Some(Duration::from_secs(2)),
        ..servers.s3_options()
    };
    let gateway = start_gateway_with_s3(&servers, &tenant, Limits::default(), &s3_options).await;
    let mut ingester = IngesterProcess::start(&servers, &gateway, &tenant, "a");
    let ingester_health = ingester.health_url(PATIENCE).await;

    let dump = fixture_dumps().pop().unwrap();
    let body = std::fs::read(&dump).unwrap();
    let metadata = full_metadata(&dump, &body, "web-3");
    let mut upload = StreamedUpload::start(&gateway.url, metadata).await;
    upload.send(&body[..body.len() / 2]).await;
    s3.wait_upload_started().await;
    s3.kill().await;
    upload.send(&body[body.len() / 2..]).await;
    let refused = upload.finish().await.unwrap_err();
    assert_unavailable(&refused, "upload");
    wait_status(&gateway.url, ServingStatus::NotServing, &ingester).await;

    s3.restart().await;
    assert_nothing_registered(&gateway, &tenant).await;
    let mut api = client::connect(&gateway.url).await.unwrap();
    let retried = upload_with_retries(&mut api, &dump, "web-3").await;
    assert!(retried.created);
    let id: DumpId = retried.dump.unwrap().dump_id.parse().unwrap();
    wait_dump_ready(&gateway, &id, &ingester).await;
    assert_eq!(gateway.catalog.get_dump(&id).await.unwrap().attempts, 1);
    assert_recovered(&servers, &gateway, &tenant, &[(id, dump)], &mut ingester).await;
    wait_serving(&[&ingester_health, &gateway.url], &ingester).await;
    note_time("s3 down during upload", started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_cassandra_down_during_ingest_the_job_ends_ready_once_it_is_back() {
    let started = Instant::now();
    let Some(shared) = Servers::from_env() else {
        return;
    };
    let Some(dump) = large_dump() else {
        return;
    };
    let Some(mut cassandra) = tokio::task::spawn_blocking(OwnCassandra::start)
        .await
        .unwrap()
    else {
        return;
    };
    let servers = shared.with_scylla(&cassandra.node);
    let tenant = unique("cqlin");
    let gateway = start_gateway(&servers, &tenant, Limits::default()).await;
    let mut ingester = IngesterProcess::start(&servers, &gateway, &tenant, "a");
    let ingester_health = ingester.health_url(PATIENCE).await;
    wait_status(&ingester_health, ServingStatus::Serving, &ingester).await;

    let mut api = client::connect(&gateway.url).await.unwrap();
    let response = upload_with_retries(&mut api, &dump, "web-4").await;
    let id: DumpId = response.dump.unwrap().dump_id.parse().unwrap();
    wait_ingesting(&gateway, &id, &ingester).await;
    cassandra.kill().await;

    // The store's errors are retryable and the dump is not failed while the node is down.
    let log = wait_log(&ingester, "store unavailable", "ingest finished dump=").await;
    assert!(!log.contains("internal store error"), "{log}");
    wait_status(&ingester_health, ServingStatus::NotServing, &ingester).await;
    let record = gateway.catalog.get_dump(&id).await.unwrap();
    assert!(
        record.status.failure_reason().is_none(),
        "the dump failed while the store was down: {:?}\n{}",
        record.status,
        ingester.log()
    );

    cassandra.restart().await;
    wait_dump_ready(&gateway, &id, &ingester).await;
    // The attempt the outage broke counted once the store answered again; the next one
    // completed.
    let attempts = gateway.catalog.get_dump(&id).await.unwrap().attempts;
    assert_eq!(attempts, 2, "{}", ingester.log());
    assert_recovered(&servers, &gateway, &tenant, &[(id, dump)], &mut ingester).await;
    wait_serving(&[&ingester_health], &ingester).await;
    note_time(
        &format!("cassandra down during ingest ({attempts} attempts)"),
        started,
    );
}

/// Checks what every fault test ends with: each acknowledged dump of `tenant` is `ready` in
/// exactly one catalog row, with stored results equal to a clean parse; nothing is leased;
/// the ingester still runs.
async fn assert_recovered(
    servers: &Servers,
    gateway: &RunningGateway,
    tenant: &str,
    acknowledged: &[(DumpId, PathBuf)],
    ingester: &mut IngesterProcess,
) {
    let rows = tenant_dumps(gateway, tenant).await;
    let mut expected: Vec<DumpId> = acknowledged.iter().map(|(id, _)| id.clone()).collect();
    expected.sort();
    assert_eq!(rows, expected, "one catalog row per acknowledged dump");
    for id in &rows {
        let record = gateway.catalog.get_dump(id).await.unwrap();
        assert_eq!(record.status, DumpStatus::Ready, "{id}");
    }
    let queue = gateway.catalog.queue_stats(Some(tenant)).await.unwrap();
    assert_eq!(
        (queue.queued, queue.ingesting),
        (0, 0),
        "nothing is left queued or leased"
    );
    let store = open_store(&servers.store_url()).await.unwrap();
    for (id, path) in acknowledged {
        assert_stored_equals_local_parse(&store, id, path).await;
        let record = gateway.catalog.get_dump(id).await.unwrap();
        assert_catalog_counts_stored_objects(&store, id, record.objects).await;
        store.delete_dump(id.as_str()).await.unwrap();
    }
    assert!(
        ingester.child.try_wait().unwrap().is_none(),
        "the ingester exited\n{}",
        ingester.log()
    );
}

/// Waits until each server of `urls` reports SERVING again, as every fault test ends.
async fn wait_serving(urls: &[&str], ingester: &IngesterProcess) {
    for url in urls {
        wait_status(url, ServingStatus::Serving, ingester).await;
    }
}

/// Waits until the server at `url` reports `wanted`, with the ingester's log on a timeout.
async fn wait_status(url: &str, wanted: ServingStatus, ingester: &IngesterProcess) {
    wait_health(url, wanted, PATIENCE, &|| ingester.log()).await;
}

/// Waits until `id` is ready, with the ingester's log on a timeout.
async fn wait_dump_ready(gateway: &RunningGateway, id: &DumpId, ingester: &IngesterProcess) {
    wait_ready(
        gateway.catalog.as_ref(),
        std::slice::from_ref(id),
        PATIENCE,
        &|| ingester.log(),
    )
    .await;
}

/// How many objects the bucket holds under `tenant`'s dumps.
async fn tenant_objects(gateway: &RunningGateway, tenant: &str) -> usize {
    let prefix = heapfleet_objects::dumps_prefix(&gateway.objects.prefix, tenant).unwrap();
    futures::TryStreamExt::try_collect::<Vec<_>>(gateway.objects.store.list(Some(&prefix)))
        .await
        .unwrap()
        .len()
}

/// The ids of every dump of `tenant` in the catalog, sorted.
async fn tenant_dumps(gateway: &RunningGateway, tenant: &str) -> Vec<DumpId> {
    let mut ids: Vec<DumpId> = gateway
        .catalog
        .list_dumps(&DumpFilter::for_tenant(tenant))
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.id)
        .collect();
    ids.sort();
    ids
}

/// Checks a call made while a backend was down failed as retryable, saying what was down.
fn assert_unavailable(status: &tonic::Status, mentions: &str) {
    note_error("while a backend was down", status);
    assert_eq!(
        status.code(),
        tonic::Code::Unavailable,
        "a backend outage must be retryable: {status:?}"
    );
    assert!(
        status.message().contains(mentions),
        "the message should say {mentions:?}: {}",
        status.message()
    );
}

/// Uploads `path`, retrying while the gateway answers UNAVAILABLE (a backend that just came
/// back may refuse a first call on a connection that died with it).
async fn upload_with_retries(
    api: &mut client::IngestClient,
    path: &Path,
    host: &str,
) -> pb::UploadDumpResponse {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client::upload_file(api, path, metadata_for(path, host), None).await {
            Ok(response) => return response,
            Err(error) => {
                let text = format!("{error:#}");
                assert!(
                    text.contains("UNAVAILABLE") || text.contains("Unavailable"),
                    "the upload failed for good: {text}"
                );
                assert!(
                    Instant::now() < deadline,
                    "no upload within {PATIENCE:?}: {text}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The metadata of an upload sent by hand: the client's, with size, hash and file name.
fn full_metadata(path: &Path, body: &[u8], host: &str) -> pb::DumpMetadata {
    pb::DumpMetadata {
        size_bytes: body.len() as u64,
        sha256: sha256_hex(body),
        file_name: path.file_name().unwrap().to_string_lossy().into_owned(),
        ..metadata_for(path, host)
    }
}

/// Waits until a worker holds `id`'s job.
async fn wait_ingesting(gateway: &RunningGateway, id: &DumpId, ingester: &IngesterProcess) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match gateway.catalog.get_dump(id).await.unwrap().status {
            DumpStatus::Ingesting => return,
            DumpStatus::Queued => {}
            other => panic!(
                "the dump went {other:?} before the fault\n{}",
                ingester.log()
            ),
        }
        assert!(
            Instant::now() < deadline,
            "never claimed\n{}",
            ingester.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the ingester's log holds `needle`; returns the log. Fails at once when it
/// holds `too_late` instead: the job finished before the fault, so the test cannot show it.
async fn wait_log(ingester: &IngesterProcess, needle: &str, too_late: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let log = ingester.log();
        if log.contains(needle) {
            return log;
        }
        assert!(
            !log.contains(too_late),
            "the ingest finished before the backend stopped (a slower dump or a faster stop is \
             needed)\n{log}"
        );
        assert!(
            Instant::now() < deadline,
            "the ingester never logged {needle:?}\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The 24 MB dump the kill test in pipeline.rs uses too, generated with Ruby once; large
/// enough that a backend can be stopped in the middle of its ingest. `None` (skip) without
/// Ruby.
fn large_dump() -> Option<PathBuf> {
    // Two tests of this binary may ask at once; make_dumps.rb must run once.
    static GENERATING: Mutex<()> = Mutex::new(());
    if !tool_available("ruby") {
        return None;
    }
    let _once = GENERATING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Some(
        generated_dump(
            "large",
            &generated_dir().join("medium"),
            &["--target-mb", "24"],
        )
        .unwrap(),
    )
}

#[allow(clippy::print_stderr)]
fn note_time(case: &str, started: Instant) {
    eprintln!("{case}: {:.1} s", started.elapsed().as_secs_f64());
}

/// Shows what a client saw during a fault (in the output of a failed or `--nocapture` run).
#[allow(clippy::print_stderr)]
fn note_error(what: &str, status: &tonic::Status) {
    eprintln!("{what}: {:?}: {}", status.code(), status.message());
}

/// An upload whose body the test sends piece by piece, so a backend can fail in its middle.
struct StreamedUpload {
    sender: futures::channel::mpsc::Sender<pb::UploadDumpRequest>,
    call: tokio::task::JoinHandle<Result<pb::UploadDumpResponse, tonic::Status>>,
}

impl StreamedUpload {
    async fn start(url: &str, metadata: pb::DumpMetadata) -> StreamedUpload {
        let mut api = client::connect(url).await.unwrap();
        // No buffer beyond one message per sender: a send returns once the gateway is reading.
        let (mut sender, receiver) = futures::channel::mpsc::channel(0);
        let call = tokio::spawn(async move {
            api.upload_dump(receiver)
                .await
                .map(tonic::Response::into_inner)
        });
        sender
            .send(pb::UploadDumpRequest {
                part: Some(pb::upload_dump_request::Part::Metadata(metadata)),
            })
            .await
            .unwrap();
        StreamedUpload { sender, call }
    }

    /// Sends `bytes` in 64 KiB chunks; a gateway that already refused the upload stops reading,
    /// which `finish` then reports.
    async fn send(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(64 << 10) {
            let message = pb::UploadDumpRequest {
                part: Some(pb::upload_dump_request::Part::Chunk(
                    bytes::Bytes::copy_from_slice(chunk),
                )),
            };
            if self.sender.send(message).await.is_err() {
                return;
            }
        }
    }

    /// Ends the stream and returns the gateway's answer.
    async fn finish(mut self) -> Result<pb::UploadDumpResponse, tonic::Status> {
        self.sender.close_channel();
        tokio::time::timeout(PATIENCE, self.call)
            .await
            .expect("the gateway answered the upload within the patience")
            .unwrap()
    }
}

/// Runs `scripts/<name>` and returns the variables of the `export` lines it printed, or why it
/// failed with its stderr.
fn run_script(
    name: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> Result<HashMap<String, String>, String> {
    let path = workspace_root().join("scripts").join(name);
    let output = Command::new(&path)
        .args(args)
        .envs(env.iter().map(|(key, value)| (*key, value)))
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {}: {error}", path.display()))?;
    if !output.status.success() {
        return Err(format!(
            "scripts/{name} {} failed ({}):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut exports = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(assignments) = line.strip_prefix("export ") else {
            continue;
        };
        for assignment in shell_words(assignments) {
            if let Some((key, value)) = assignment.split_once('=') {
                exports.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    Ok(exports)
}

/// Splits the scripts' `export` lines: words separated by spaces, single quotes grouping.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for character in line.chars() {
        match character {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            other => word.push(other),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A server a test needs could not start: fails under HEAPFLEET_REQUIRE_SERVICES=1, else
/// skips with a note.
fn unavailable_server(what: &str, error: &str) {
    assert!(
        !services_required(),
        "{what} is required (HEAPFLEET_REQUIRE_SERVICES=1) but did not start: {error}"
    );
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipping: {what} did not start: {error}");
    }
}

/// [`run_script`] off the runtime's threads: starting Cassandra takes a while.
async fn run_script_async(
    name: &'static str,
    args: Vec<String>,
) -> Result<HashMap<String, String>, String> {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_script(name, &args, &[])
    })
    .await
    .unwrap()
}

/// Waits until nothing accepts connections on 127.0.0.1:`port`: a killed server is gone.
async fn wait_port_closed(port: u16, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "{what} still listens on {port} after it was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends SIGKILL to `pid` (a server a script started, so not this process's child).
fn kill_9(pid: u32) {
    let _ = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A PostgreSQL cluster of this test's own (scripts/test-services.sh), stopped and removed
/// on drop.
struct OwnPostgres {
    dir: String,
    url: String,
}

impl OwnPostgres {
    fn start() -> Option<OwnPostgres> {
        match run_script("test-services.sh", &["start"], &[]) {
            Ok(exports) => Some(OwnPostgres {
                dir: exports["HEAPFLEET_TEST_SERVICES_DIR"].clone(),
                url: exports["HEAPFLEET_TEST_POSTGRES_URL"].clone(),
            }),
            Err(error) => {
                unavailable_server("a PostgreSQL of the test's own", &error);
                None
            }
        }
    }

    /// Stops the server as a crash would (every session ends at once), keeping its data.
    async fn pause(&self) {
        run_script_async("test-services.sh", vec!["pause".into(), self.dir.clone()])
            .await
            .unwrap();
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server and every backend process it forked.
    fn signal(&self, signal: &str) -> Result<(), String> {
        let pid_file = format!("{}/postgres/data/postmaster.pid", self.dir);
        let text =
            std::fs::read_to_string(&pid_file).map_err(|error| format!("{pid_file}: {error}"))?;
        let postmaster = text.lines().next().unwrap_or_default().trim().to_owned();
        // Its children from /proc (the fourth field of /proc/PID/stat is the parent's pid).
        let mut pids = vec![postmaster.clone()];
        for entry in std::fs::read_dir("/proc").map_err(|error| format!("/proc: {error}"))? {
            let Ok(entry) = entry else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The command name is in parentheses and may hold spaces: read after it.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if parent == Some(postmaster.as_str()) {
                pids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&pids)
            .status()
            .map_err(|error| format!("kill: {error}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{signal} {pids:?} failed"))
        }
    }

    /// Starts it again on the same data and port.
    async fn resume(&self) {
        run_script_async("test-services.sh", vec!["resume".into(), self.dir.clone()])
            .await
            .unwrap();
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        // A test that failed while the cluster was stopped (SIGSTOP) would leave it unable to
        // stop.
        let _ = self.signal("CONT");
        if let Err(error) = run_script("test-services.sh", &["stop", &self.dir], &[]) {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("cannot stop the test's PostgreSQL: {error}");
            }
        }
    }
}

/// An S3 server (s3s-fs) of this test's own (scripts/s3-server.sh), same bucket and
/// credentials as the shared one; stopped and removed on drop.
struct OwnS3 {
    endpoint: String,
    port: u16,
    root: String,
    /// `None` while killed.
    pid: Option<u32>,
}

impl OwnS3 {
    fn start() -> Option<OwnS3> {
        // The first start on a machine builds s3s-fs; two tests must not build it at once.
        static STARTING: Mutex<()> = Mutex::new(());
        let started = {
            let _one_at_a_time = STARTING
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            run_script("s3-server.sh", &["start"], &[])
        };
        match started {
            Ok(exports) => {
                let endpoint = exports["HEAPFLEET_TEST_S3_ENDPOINT"].clone();
                let port = endpoint.rsplit(':').next().unwrap().parse().unwrap();
                Some(OwnS3 {
                    endpoint,
                    port,
                    root: exports["S3_SERVER_ROOT"].clone(),
                    pid: Some(exports["S3_SERVER_PID"].parse().unwrap()),
                })
            }
            Err(error) => {
                unavailable_server("an S3 server of the test's own", &error);
                None
            }
        }
    }

    /// Waits until a multipart upload is open on the server: the gateway has checked the
    /// catalog and is storing bytes. s3s-fs keeps each open upload as `.upload-<id>.json` in
    /// its data directory.
    async fn wait_upload_started(&self) {
        let data = Path::new(&self.root).join("data");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let open = std::fs::read_dir(&data).unwrap().any(|entry| {
                let name = entry.unwrap().file_name();
                let name = name.to_string_lossy();
                name.starts_with(".upload-") && name.ends_with(".json")
            });
            if open {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no multipart upload appeared in {} (does s3s-fs still keep .upload-<id>.json \
                 files there?)",
                data.display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn kill(&mut self) {
        kill_9(self.pid.take().expect("the S3 server runs"));
        wait_port_closed(self.port, "the S3 server").await;
    }

    /// Serves the same objects on the same port again.
    async fn restart(&mut self) {
        assert!(self.pid.is_none(), "the S3 server already runs");
        let exports = run_script_async(
            "s3-server.sh",
            vec!["restart".into(), self.port.to_string(), self.root.clone()],
        )
        .await
        .unwrap();
        self.pid = Some(exports["S3_SERVER_PID"].parse().unwrap());
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        match self.pid {
            Some(pid) => {
                let _ = run_script("s3-server.sh", &["stop", &pid.to_string(), &self.root], &[]);
            }
            None => remove_made_dir(&self.root, "heapfleet-s3."),
        }
    }
}

/// A Cassandra node of this test's own (scripts/cassandra.sh on free ports, beside the shared
/// node on 9042, which no test may stop); killed and removed on drop.
struct OwnCassandra {
    node: String,
    cql_port: u16,
    work: String,
    /// `None` while killed.
    pid: Option<u32>,
}

impl OwnCassandra {
    fn start() -> Option<OwnCassandra> {
        if !tool_available("java") || !tool_available("mvn") {
            return None;
        }
        // Three ports free now; the script fails (and the test with it) if one is taken before
        // the node binds it.
        let listeners: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|listener| listener.local_addr().unwrap().port())
            .collect();
        drop(listeners);
        let env = [
            ("CASSANDRA_CQL_PORT", ports[0].to_string()),
            ("CASSANDRA_STORAGE_PORT", ports[1].to_string()),
            ("CASSANDRA_JMX_PORT", ports[2].to_string()),
            // Its schema must survive the kill.
            ("CASSANDRA_CRASH_SAFE", "1".to_owned()),
        ];
        match run_script("cassandra.sh", &["start"], &env) {
            Ok(exports) => Some(OwnCassandra {
                node: exports["HEAPFLEET_TEST_SCYLLA_URI"].clone(),
                cql_port: ports[0],
                work: exports["CASSANDRA_WORK"].clone(),
                pid: Some(exports["CASSANDRA_PID"].parse().unwrap()),
            }),
            Err(error) => {
                unavailable_server("a Cassandra node of the test's own", &error);
                None
            }
        }
    }

    async fn kill(&mut self) {
        kill_9(self.pid.take().expect("the Cassandra node runs"));
        wait_port_closed(self.cql_port, "the Cassandra node").await;
    }

    /// Starts the node again on its data and ports.
    async fn restart(&mut self) {
        assert!(self.pid.is_none(), "the Cassandra node already runs");
        let exports = run_script_async("cassandra.sh", vec!["restart".into(), self.work.clone()])
            .await
            .unwrap();
        self.pid = Some(exports["CASSANDRA_PID"].parse().unwrap());
    }
}

impl Drop for OwnCassandra {
    fn drop(&mut self) {
        // SIGKILL, not the script's graceful stop: the data is thrown away next.
        if let Some(pid) = self.pid.take() {
            kill_9(pid);
        }
        remove_made_dir(&self.work, "heapfleet-cassandra.");
    }
}

/// Removes `dir` if a script made it (its name starts with `prefix`), never anything else.
fn remove_made_dir(dir: &str, prefix: &str) {
    let made = Path::new(dir)
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with(prefix));
    if made {
        let _ = std::fs::remove_dir_all(dir);
    }
}
