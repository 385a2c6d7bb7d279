//! The distributed pipeline end to end, on real servers: a gateway (in this process, on a
//! loopback port) and ingester processes (this package's binary) against the PostgreSQL
//! catalog, the S3-compatible object store and the Cassandra store that scripts/test.sh
//! starts. Each test uses its own tenant, object prefix and keyspace rows, so tests share the
//! servers without seeing each other's dumps.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use heapfleet_catalog::{Catalog, DumpId, PostgresCatalog};
use heapfleet_dump::ParseOptions;
use heapfleet_gateway::{Gateway, Limits, client};
use heapfleet_ingest::parse_into_store;
use heapfleet_objects::S3Options;
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_service::backends::{Objects, open_store};
use heapfleet_storage::{AggregateStore, MemoryStore};
use heapfleet_tests::{fixture, generated_dir, generated_dump, service_url, tool_available};
use tokio::sync::oneshot;

/// The real servers the pipeline runs on.
struct Servers {
    postgres: String,
    scylla: String,
    s3_endpoint: String,
    s3_bucket: String,
    s3_access_key: String,
    s3_secret_key: String,
}

impl Servers {
    /// The servers scripts/test.sh started, or `None` (the test skips, or fails under
    /// HEAPFLEET_REQUIRE_SERVICES=1).
    fn from_env() -> Option<Servers> {
        Some(Servers {
            postgres: postgres_url(&service_url("HEAPFLEET_TEST_POSTGRES_URL")?),
            scylla: service_url("HEAPFLEET_TEST_SCYLLA_URI")?,
            s3_endpoint: service_url("HEAPFLEET_TEST_S3_ENDPOINT")?,
            s3_bucket: service_url("HEAPFLEET_TEST_S3_BUCKET")?,
            s3_access_key: service_url("HEAPFLEET_TEST_S3_ACCESS_KEY")?,
            s3_secret_key: service_url("HEAPFLEET_TEST_S3_SECRET_KEY")?,
        })
    }

    fn store_url(&self) -> String {
        format!("scylla://{}/heapfleet_pipeline", self.scylla)
    }

    fn s3_options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.s3_endpoint.clone()),
            access_key_id: Some(self.s3_access_key.clone()),
            secret_access_key: Some(self.s3_secret_key.clone()),
            allow_http: true,
            ..S3Options::default()
        }
    }
}

/// The test script gives PostgreSQL as `key=value` pairs; the services take a URL.
fn postgres_url(setting: &str) -> String {
    if setting.starts_with("postgres") {
        return setting.to_owned();
    }
    let mut host = "127.0.0.1";
    let mut port = "5432";
    let mut user = "postgres";
    let mut dbname = "postgres";
    for pair in setting.split_whitespace() {
        match pair.split_once('=') {
            Some(("host", value)) => host = value,
            Some(("port", value)) => port = value,
            Some(("user", value)) => user = value,
            Some(("dbname", value)) => dbname = value,
            _ => {}
        }
    }
    format!("postgres://{user}@{host}:{port}/{dbname}")
}

/// A tenant (and object prefix) no other test run uses.
fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // Short: s3s-fs keeps a multipart upload under a file named after the whole key.
    format!(
        "{label}-{:x}",
        (nanos ^ u128::from(std::process::id()) << 40) & 0xff_ffff_ffff
    )
}

/// A gateway serving one tenant on a loopback port, stopped on drop.
struct RunningGateway {
    url: String,
    catalog: Arc<dyn Catalog>,
    objects: Objects,
    objects_url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start_gateway(servers: &Servers, tenant: &str, limits: Limits) -> RunningGateway {
    let catalog: Arc<dyn Catalog> = Arc::new(
        PostgresCatalog::connect(&servers.postgres)
            .await
            .expect("connect to PostgreSQL"),
    );
    let objects_url = format!("s3://{}/pipeline", servers.s3_bucket);
    let objects = Objects::open(&objects_url, &servers.s3_options()).expect("open S3");
    let gateway = Gateway::new(tenant, catalog.clone(), objects.clone(), limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(heapfleet_gateway::serve(gateway, listener, async {
        let _ = stopped.await;
    }));
    RunningGateway {
        url,
        catalog,
        objects,
        objects_url,
        stop: Some(stop),
    }
}

/// An ingester process, killed on drop; its log is kept for failure messages.
struct IngesterProcess {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl IngesterProcess {
    fn start(
        servers: &Servers,
        gateway: &RunningGateway,
        tenant: &str,
        name: &str,
    ) -> IngesterProcess {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ingester.log");
        let child = Command::new(env!("CARGO_BIN_EXE_heapfleet-ingester"))
            .env_clear()
            .env("RUST_LOG", "info")
            .env("HEAPFLEET_LISTEN", "127.0.0.1:0")
            .env("HEAPFLEET_CATALOG", &servers.postgres)
            .env("HEAPFLEET_STORE", servers.store_url())
            .env("HEAPFLEET_OBJECTS", &gateway.objects_url)
            .env("HEAPFLEET_S3_ENDPOINT", &servers.s3_endpoint)
            .env("HEAPFLEET_S3_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", &servers.s3_access_key)
            .env("AWS_SECRET_ACCESS_KEY", &servers.s3_secret_key)
            .env("HEAPFLEET_TENANT", tenant)
            .env("HEAPFLEET_WORKER_NAME", format!("{tenant}-{name}"))
            .env("HEAPFLEET_LEASE_SECONDS", "3")
            .env("HEAPFLEET_POLL_INTERVAL_MS", "100")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start heapfleet-ingester");
        IngesterProcess {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no lease given back.
    fn kill(&mut self) {
        self.child.kill().expect("kill the ingester");
        self.child.wait().expect("reap the ingester");
    }
}

impl Drop for IngesterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metadata_for(path: &Path, host: &str) -> pb::DumpMetadata {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let parsed = heapfleet_dump::parse_dump_file_name(&name).ok();
    pb::DumpMetadata {
        host: host.to_owned(),
        pid: parsed.as_ref().and_then(|parsed| parsed.pid).unwrap_or(0),
        taken_at_unix: parsed
            .as_ref()
            .map_or(1_700_000_000, |parsed| parsed.taken_at_unix),
        jobs: parsed.as_ref().and_then(|parsed| parsed.jobs),
        role: "sidekiq".to_owned(),
        labels: [("version".to_owned(), "1.0".to_owned())].into(),
        ..pb::DumpMetadata::default()
    }
}

/// Waits until every dump in `ids` is ready (or one failed), with the ingesters' logs on a
/// timeout.
async fn wait_ready(
    catalog: &dyn Catalog,
    ids: &[DumpId],
    timeout: Duration,
    logs: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut pending = Vec::new();
        for id in ids {
            let dump = catalog.get_dump(id).await.unwrap();
            if let Some(reason) = dump.status.failure_reason() {
                panic!("dump {id} failed: {reason}\n{}", logs());
            }
            if dump.status != heapfleet_catalog::DumpStatus::Ready {
                pending.push((id.clone(), dump.status));
            }
        }
        if pending.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "dumps not ready after {timeout:?}: {pending:?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks the stored result of `id` equals a local parse of `path`: same aggregates, same
/// object index.
async fn assert_stored_equals_local_parse(
    store: &Arc<dyn AggregateStore>,
    id: &DumpId,
    path: &Path,
) {
    let local: Arc<dyn AggregateStore> = Arc::new(MemoryStore::new());
    let file = std::fs::File::open(path).unwrap();
    parse_into_store(file, id, local.clone(), ParseOptions::default())
        .await
        .unwrap();
    assert_eq!(
        store.get_dump_aggregates(id.as_str()).await.unwrap(),
        local.get_dump_aggregates(id.as_str()).await.unwrap(),
        "aggregates of {}",
        path.display()
    );
    let stored_index = store.load_index(id.as_str()).await.unwrap();
    let local_index = local.load_index(id.as_str()).await.unwrap();
    assert_eq!(
        stored_index.entries,
        local_index.entries,
        "index of {}",
        path.display()
    );
}

fn fixture_dumps() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for dir in ["dumps/series", "dumps/small"] {
        for entry in std::fs::read_dir(fixture(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.to_string_lossy();
            if name.ends_with(".dump") || name.ends_with(".dump.gz") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_gateway_and_two_ingesters_ingest_concurrent_uploads_exactly() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let tenant = unique("pipeline");
    let gateway = start_gateway(&servers, &tenant, Limits::default()).await;
    let ingesters = [
        IngesterProcess::start(&servers, &gateway, &tenant, "a"),
        IngesterProcess::start(&servers, &gateway, &tenant, "b"),
    ];
    let logs = || {
        ingesters
            .iter()
            .map(IngesterProcess::log)
            .collect::<Vec<_>>()
            .join("\n---\n")
    };

    let paths = fixture_dumps();
    assert!(paths.len() >= 4, "the series and the small dump");
    let uploads = paths.iter().map(|path| {
        let url = gateway.url.clone();
        let path = path.clone();
        async move {
            let mut client = client::connect(&url).await.unwrap();
            let response =
                client::upload_file(&mut client, &path, metadata_for(&path, "web-1"), None)
                    .await
                    .unwrap();
            (path, response)
        }
    });
    let responses = futures::future::join_all(uploads).await;
    let mut ids = Vec::new();
    for (path, response) in &responses {
        assert!(response.created, "{} is new", path.display());
        let dump = response.dump.as_ref().unwrap();
        assert_eq!(
            dump.state,
            pb::DumpState::Queued as i32,
            "acknowledged means queued"
        );
        ids.push(dump.dump_id.parse::<DumpId>().unwrap());
    }

    // The same content from the same process again is the same dump.
    let mut client = client::connect(&gateway.url).await.unwrap();
    let again = client::upload_file(
        &mut client,
        &paths[0],
        metadata_for(&paths[0], "web-1"),
        None,
    )
    .await
    .unwrap();
    assert!(!again.created);
    assert_eq!(
        again.dump.unwrap().dump_id,
        responses[0].1.dump.as_ref().unwrap().dump_id
    );

    wait_ready(
        gateway.catalog.as_ref(),
        &ids,
        Duration::from_secs(120),
        &logs,
    )
    .await;

    let store = open_store(&servers.store_url()).await.unwrap();
    for ((path, _), id) in responses.iter().zip(&ids) {
        assert_stored_equals_local_parse(&store, id, path).await;
        let dump = gateway.catalog.get_dump(id).await.unwrap();
        assert_eq!(dump.attempts, 1, "{id} was ingested once");
    }
    let listed = client
        .list_dumps(pb::ListDumpsRequest {
            state: pb::DumpState::Ready as i32,
            ..pb::ListDumpsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .dumps;
    assert_eq!(listed.len(), ids.len());
    for id in &ids {
        store.delete_dump(id.as_str()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_killed_ingester_job_is_finished_by_another_without_double_counts() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    if !tool_available("ruby") {
        return;
    }
    let dump = generated_dump(
        "large",
        &generated_dir().join("medium"),
        &["--target-mb", "24"],
    )
    .unwrap();
    let tenant = unique("kill");
    let gateway = start_gateway(&servers, &tenant, Limits::default()).await;
    let mut first = IngesterProcess::start(&servers, &gateway, &tenant, "first");

    let mut client = client::connect(&gateway.url).await.unwrap();
    let response = client::upload_file(&mut client, &dump, metadata_for(&dump, "web-2"), None)
        .await
        .unwrap();
    let id: DumpId = response.dump.unwrap().dump_id.parse().unwrap();

    // Kill the first worker as soon as it holds the job, in the middle of the ingest.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = gateway.catalog.get_dump(&id).await.unwrap().status;
        match status {
            heapfleet_catalog::DumpStatus::Ingesting => break,
            heapfleet_catalog::DumpStatus::Queued => {}
            other => panic!(
                "the dump went {other:?} before it could be killed\n{}",
                first.log()
            ),
        }
        assert!(Instant::now() < deadline, "never claimed\n{}", first.log());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill();
    let killed_at = Instant::now();
    assert_eq!(
        gateway.catalog.get_dump(&id).await.unwrap().status,
        heapfleet_catalog::DumpStatus::Ingesting,
        "the killed worker's job stays leased until the lease expires"
    );

    let second = IngesterProcess::start(&servers, &gateway, &tenant, "second");
    wait_ready(
        gateway.catalog.as_ref(),
        std::slice::from_ref(&id),
        Duration::from_secs(120),
        &|| format!("{}\n---\n{}", first.log(), second.log()),
    )
    .await;
    assert!(
        killed_at.elapsed() >= Duration::from_secs(2),
        "the second worker waited for the lease to expire"
    );
    let record = gateway.catalog.get_dump(&id).await.unwrap();
    assert_eq!(record.attempts, 2, "one attempt killed, one finished");
    assert!(second.log().contains("ingest finished"), "{}", second.log());

    let store = open_store(&servers.store_url()).await.unwrap();
    assert_stored_equals_local_parse(&store, &id, &dump).await;
    assert_eq!(
        store
            .get_dump_aggregates(id.as_str())
            .await
            .unwrap()
            .parse
            .objects,
        record.objects
    );
    store.delete_dump(id.as_str()).await.unwrap();
}

/// Sends an upload by hand: `metadata`, then `body` in 64 KiB chunks.
async fn raw_upload(
    url: &str,
    metadata: pb::DumpMetadata,
    body: Vec<u8>,
) -> Result<pb::UploadDumpResponse, tonic::Status> {
    let mut client = client::connect(url).await.unwrap();
    let mut messages = vec![pb::UploadDumpRequest {
        part: Some(pb::upload_dump_request::Part::Metadata(metadata)),
    }];
    for chunk in body.chunks(64 << 10) {
        messages.push(pb::UploadDumpRequest {
            part: Some(pb::upload_dump_request::Part::Chunk(
                bytes::Bytes::copy_from_slice(chunk),
            )),
        });
    }
    client
        .upload_dump(futures::stream::iter(messages))
        .await
        .map(tonic::Response::into_inner)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Nothing of a refused upload remains: no catalog row, no object under the tenant.
async fn assert_nothing_registered(gateway: &RunningGateway, tenant: &str) {
    let dumps = gateway
        .catalog
        .list_dumps(&heapfleet_catalog::DumpFilter::for_tenant(tenant))
        .await
        .unwrap();
    assert!(dumps.is_empty(), "{dumps:?}");
    let tenant_prefix = heapfleet_objects::dumps_prefix(&gateway.objects.prefix, tenant).unwrap();
    let objects: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
        gateway.objects.store.list(Some(&tenant_prefix)),
    )
    .await
    .unwrap();
    assert!(objects.is_empty(), "{objects:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_bad_uploads_are_refused_and_leave_nothing_behind() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let tenant = unique("refused");
    let limits = Limits {
        max_dump_bytes: 4 << 20,
        ..Limits::default()
    };
    let gateway = start_gateway(&servers, &tenant, limits).await;
    let body = std::fs::read(
        std::fs::read_dir(fixture("dumps/small"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "dump")
            })
            .unwrap(),
    )
    .unwrap();
    let good = pb::DumpMetadata {
        size_bytes: body.len() as u64,
        sha256: sha256_hex(&body),
        file_name: "heap-1-1700000000-1.dump".to_owned(),
        ..metadata_for(Path::new("heap-1-1700000000-1.dump"), "web-3")
    };

    // A stream that ends early.
    let half = body[..body.len() / 2].to_vec();
    let truncated = raw_upload(&gateway.url, good.clone(), half)
        .await
        .unwrap_err();
    assert_eq!(
        truncated.code(),
        tonic::Code::InvalidArgument,
        "{truncated:?}"
    );
    assert!(
        truncated.message().contains("truncated"),
        "{}",
        truncated.message()
    );

    // The bytes do not hash to what the metadata says.
    let mut corrupted = body.clone();
    corrupted[10] ^= 0x20;
    let wrong_hash = raw_upload(&gateway.url, good.clone(), corrupted)
        .await
        .unwrap_err();
    assert_eq!(wrong_hash.code(), tonic::Code::InvalidArgument);
    assert!(
        wrong_hash.message().contains("SHA-256"),
        "{}",
        wrong_hash.message()
    );

    // Over the gateway's size limit: refused before a byte is stored.
    let big = vec![b'{'; (4 << 20) + 1];
    let oversize_metadata = pb::DumpMetadata {
        size_bytes: big.len() as u64,
        sha256: sha256_hex(&big),
        ..good.clone()
    };
    let oversize = raw_upload(&gateway.url, oversize_metadata, big)
        .await
        .unwrap_err();
    assert_eq!(oversize.code(), tonic::Code::ResourceExhausted);
    assert!(
        oversize.message().contains("max_dump_bytes"),
        "{}",
        oversize.message()
    );

    // More bytes than announced.
    let short_metadata = pb::DumpMetadata {
        size_bytes: 10,
        ..good.clone()
    };
    let overlong = raw_upload(&gateway.url, short_metadata, body.clone())
        .await
        .unwrap_err();
    assert_eq!(overlong.code(), tonic::Code::InvalidArgument);

    // A path in the file name.
    let traversal = pb::DumpMetadata {
        file_name: "../../etc/cron.d/x".to_owned(),
        ..good.clone()
    };
    let refused = raw_upload(&gateway.url, traversal, body.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    assert_nothing_registered(&gateway, &tenant).await;

    // And the gateway still takes a good upload afterwards.
    let accepted = raw_upload(&gateway.url, good, body).await.unwrap();
    assert!(accepted.created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_registered_and_bad_dumps_end_ready_or_failed_with_a_reason() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let tenant = unique("register");
    let gateway = start_gateway(&servers, &tenant, Limits::default()).await;
    let ingester = IngesterProcess::start(&servers, &gateway, &tenant, "a");
    let mut client = client::connect(&gateway.url).await.unwrap();

    // A worker put the file into the bucket itself, under its tenant's dumps.
    let dump = fixture_dumps().pop().unwrap();
    let body = std::fs::read(&dump).unwrap();
    let tenant_prefix = heapfleet_objects::dumps_prefix(&gateway.objects.prefix, &tenant).unwrap();
    let key = tenant_prefix
        .clone()
        .join("web-9")
        .join("1-")
        .join("registered.dump");
    use heapfleet_objects::object_store::ObjectStoreExt;
    gateway
        .objects
        .store
        .put(&key, body.clone().into())
        .await
        .unwrap();
    let metadata = pb::DumpMetadata {
        size_bytes: body.len() as u64,
        sha256: sha256_hex(&body),
        file_name: "registered.dump".to_owned(),
        ..metadata_for(&dump, "web-9")
    };
    let registered = client
        .register_dump(pb::RegisterDumpRequest {
            metadata: Some(metadata.clone()),
            object_key: key.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(registered.created);
    let registered_id: DumpId = registered.dump.unwrap().dump_id.parse().unwrap();

    // A key outside the tenant's dumps, and a size that does not match, are refused.
    let outside = client
        .register_dump(pb::RegisterDumpRequest {
            metadata: Some(metadata.clone()),
            object_key: "elsewhere/registered.dump".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(outside.code(), tonic::Code::InvalidArgument, "{outside:?}");
    let wrong_size = client
        .register_dump(pb::RegisterDumpRequest {
            metadata: Some(pb::DumpMetadata {
                size_bytes: 7,
                ..metadata.clone()
            }),
            object_key: key.to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        wrong_size.code(),
        tonic::Code::InvalidArgument,
        "{wrong_size:?}"
    );

    // Bytes that are no heap dump: uploaded fine, then failed once with the reason, not retried.
    let garbage = b"\x00\x01binary, not JSON lines\n".repeat(1000);
    let bad = raw_upload(
        &gateway.url,
        pb::DumpMetadata {
            size_bytes: garbage.len() as u64,
            sha256: sha256_hex(&garbage),
            file_name: "garbage.dump".to_owned(),
            ..metadata_for(Path::new("heap-2-1700000000-1.dump"), "web-9")
        },
        garbage,
    )
    .await
    .unwrap();
    let bad_id: DumpId = bad.dump.unwrap().dump_id.parse().unwrap();

    wait_ready(
        gateway.catalog.as_ref(),
        std::slice::from_ref(&registered_id),
        Duration::from_secs(60),
        &|| ingester.log(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let record = gateway.catalog.get_dump(&bad_id).await.unwrap();
        if record.status.kind() == heapfleet_catalog::DumpStatusKind::Failed {
            break record;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}\n{}",
            record.status,
            ingester.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = failed.status.failure_reason().unwrap();
    assert!(reason.contains("no heap objects"), "{reason}");
    assert_eq!(failed.attempts, 1, "a dump no retry can fix fails at once");
    let store = open_store(&servers.store_url()).await.unwrap();
    assert_stored_equals_local_parse(&store, &registered_id, &dump).await;
    store.delete_dump(registered_id.as_str()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_sigterm_stops_an_ingester_gracefully() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let tenant = unique("term");
    let gateway = start_gateway(&servers, &tenant, Limits::default()).await;
    let mut ingester = IngesterProcess::start(&servers, &gateway, &tenant, "a");
    let mut client = client::connect(&gateway.url).await.unwrap();
    let dump = fixture_dumps().pop().unwrap();
    let id: DumpId = client::upload_file(&mut client, &dump, metadata_for(&dump, "web-8"), None)
        .await
        .unwrap()
        .dump
        .unwrap()
        .dump_id
        .parse()
        .unwrap();
    wait_ready(
        gateway.catalog.as_ref(),
        std::slice::from_ref(&id),
        Duration::from_secs(60),
        &|| ingester.log(),
    )
    .await;
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(ingester.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = ingester.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after SIGTERM\n{}",
            ingester.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}\n{}", ingester.log());
    assert!(
        ingester.log().contains("ingest worker stopped"),
        "{}",
        ingester.log()
    );
    let store = open_store(&servers.store_url()).await.unwrap();
    store.delete_dump(id.as_str()).await.unwrap();
}
