//! What the tests on real servers share (`pipeline.rs`, `bad_input.rs`, `faults.rs`,
//! `retention.rs`): the real servers from the environment, a gateway served in the test
//! process, ingester processes (this package's binary), uploads sent by hand, the waits on a
//! dump's state and on a server's health, and the check of a stored result against a local
//! parse. Each test binary uses part of it.

// Each test binary that includes this module uses only some of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use heapfleet_catalog::{Catalog, DumpId, OwnershipState, PostgresCatalog};
use heapfleet_gateway::{Gateway, Limits, client};
use heapfleet_objects::S3Options;
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_service::backends::Objects;
use heapfleet_storage::AggregateStore;
use heapfleet_tests::{fixture, service_url};
use tokio::sync::oneshot;

/// The real servers the pipeline runs on.
pub(crate) struct Servers {
    pub(crate) postgres: String,
    pub(crate) scylla: String,
    s3_endpoint: String,
    s3_bucket: String,
    s3_access_key: String,
    s3_secret_key: String,
}

impl Servers {
    /// The servers scripts/test.sh started, or `None` (the test skips, or fails under
    /// HEAPFLEET_REQUIRE_SERVICES=1).
    pub(crate) fn from_env() -> Option<Servers> {
        Some(Servers {
            postgres: postgres_url(&service_url("HEAPFLEET_TEST_POSTGRES_URL")?),
            scylla: service_url("HEAPFLEET_TEST_SCYLLA_URI")?,
            s3_endpoint: service_url("HEAPFLEET_TEST_S3_ENDPOINT")?,
            s3_bucket: service_url("HEAPFLEET_TEST_S3_BUCKET")?,
            s3_access_key: service_url("HEAPFLEET_TEST_S3_ACCESS_KEY")?,
            s3_secret_key: service_url("HEAPFLEET_TEST_S3_SECRET_KEY")?,
        })
    }

    pub(crate) fn store_url(&self) -> String {
        format!("scylla://{}/heapfleet_pipeline", self.scylla)
    }

    /// The dump files' place in the shared bucket: under `prefix`, one per test file.
    pub(crate) fn objects_url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.s3_bucket)
    }

    pub(crate) fn s3_options(&self) -> S3Options {
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
pub(crate) fn postgres_url(setting: &str) -> String {
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
pub(crate) fn unique(label: &str) -> String {
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
pub(crate) struct RunningGateway {
    pub(crate) url: String,
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) objects: Objects,
    pub(crate) objects_url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A gateway serving `tenant` on a loopback port, its dump files under the prefix `pipeline`.
pub(crate) async fn start_gateway(
    servers: &Servers,
    tenant: &str,
    limits: Limits,
) -> RunningGateway {
    start_gateway_with_s3(servers, tenant, limits, &servers.s3_options()).await
}

/// An ingester process, killed on drop; its log is kept for failure messages.
pub(crate) struct IngesterProcess {
    pub(crate) child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl IngesterProcess {
    pub(crate) fn start(
        servers: &Servers,
        gateway: &RunningGateway,
        tenant: &str,
        name: &str,
    ) -> IngesterProcess {
        IngesterProcess::start_with(servers, gateway, tenant, name, &[])
    }

    /// Starts an ingester with `settings` (`HEAPFLEET_*` variables) on top of the test's own.
    pub(crate) fn start_with(
        servers: &Servers,
        gateway: &RunningGateway,
        tenant: &str,
        name: &str,
        settings: &[(&str, &str)],
    ) -> IngesterProcess {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ingester.log");
        let child = Command::new(env!("CARGO_BIN_EXE_heapfleet-ingester"))
            .env_clear()
            .env("RUST_LOG", "info")
            // Plain log lines, so the listening address can be read from them.
            .env("NO_COLOR", "1")
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
            .envs(settings.iter().copied())
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

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The URL of the health endpoint, read from the line the server logs once it listens
    /// (it binds port 0).
    pub(crate) async fn health_url(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            let address = log
                .lines()
                .filter(|line| line.contains(" listening "))
                .find_map(|line| line.split_once("address="))
                .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned));
            if let Some(address) = address {
                return format!("http://{address}");
            }
            assert!(
                Instant::now() < deadline,
                "the ingester logged no listening address within {timeout:?}\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown, no lease given back.
    pub(crate) fn kill(&mut self) {
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

pub(crate) fn metadata_for(path: &Path, host: &str) -> pb::DumpMetadata {
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

/// Waits until every dump in `ids` is ready and its ownership pass has ended (or one failed),
/// with the ingesters' logs on a timeout. A pass still queued or running would change the dump's
/// record, and holds it against deletion.
pub(crate) async fn wait_ready(
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
            if let Some(OwnershipState::Failed { reason }) = &dump.ownership {
                panic!(
                    "the ownership pass of dump {id} failed: {reason}\n{}",
                    logs()
                );
            }
            let pass_pending = matches!(
                dump.ownership,
                Some(OwnershipState::Queued | OwnershipState::Running)
            );
            if dump.status != heapfleet_catalog::DumpStatus::Ready || pass_pending {
                pending.push((id.clone(), dump.status, dump.ownership));
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

pub(crate) fn fixture_dumps() -> Vec<PathBuf> {
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

/// Sends an upload by hand: `metadata`, then `body` in 64 KiB chunks.
pub(crate) async fn raw_upload(
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

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Nothing of a refused upload remains: no catalog row, no object under the tenant.
pub(crate) async fn assert_nothing_registered(gateway: &RunningGateway, tenant: &str) {
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

impl Servers {
    /// The same servers with the catalog in another PostgreSQL (a URL or `key=value` pairs),
    /// for a test that stops its own.
    pub(crate) fn with_postgres(&self, postgres: &str) -> Servers {
        Servers {
            postgres: postgres_url(postgres),
            ..self.copy()
        }
    }

    /// The same servers with dump files on another S3 endpoint (same bucket and credentials),
    /// for a test that stops its own.
    pub(crate) fn with_s3_endpoint(&self, endpoint: &str) -> Servers {
        Servers {
            s3_endpoint: endpoint.to_owned(),
            ..self.copy()
        }
    }

    /// The same servers with the store on another CQL node (`host:port`), for a test that
    /// stops its own.
    pub(crate) fn with_scylla(&self, node: &str) -> Servers {
        Servers {
            scylla: node.to_owned(),
            ..self.copy()
        }
    }

    fn copy(&self) -> Servers {
        Servers {
            postgres: self.postgres.clone(),
            scylla: self.scylla.clone(),
            s3_endpoint: self.s3_endpoint.clone(),
            s3_bucket: self.s3_bucket.clone(),
            s3_access_key: self.s3_access_key.clone(),
            s3_secret_key: self.s3_secret_key.clone(),
        }
    }
}

/// Like [`start_gateway`], with the gateway's own S3 options (for example a short retry
/// budget, so an upload to a stopped S3 server fails within a test's patience).
pub(crate) async fn start_gateway_with_s3(
    servers: &Servers,
    tenant: &str,
    limits: Limits,
    s3: &S3Options,
) -> RunningGateway {
    start_gateway_on(servers, tenant, limits, "pipeline", s3, None).await
}

/// A gateway serving `tenant` on a loopback port, with its dump files under `prefix` in the
/// shared bucket, the S3 options `s3`, and with `store` (the aggregate store the ingesters
/// write) it serves `DeleteDump` too. [`start_gateway`] is this on the prefix `pipeline`.
pub(crate) async fn start_gateway_on(
    servers: &Servers,
    tenant: &str,
    limits: Limits,
    prefix: &str,
    s3: &S3Options,
    store: Option<Arc<dyn AggregateStore>>,
) -> RunningGateway {
    let catalog: Arc<dyn Catalog> = Arc::new(
        PostgresCatalog::connect(&servers.postgres)
            .await
            .expect("connect to PostgreSQL"),
    );
    let objects_url = servers.objects_url(prefix);
    let objects = Objects::open(&objects_url, s3).expect("open S3");
    let mut gateway = Gateway::new(tenant, catalog.clone(), objects.clone(), limits);
    if let Some(store) = store {
        gateway = gateway.with_store(store);
    }
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

/// Checks the stored result of `id` equals a local parse of `path`: same aggregates, same
/// object index.
pub(crate) async fn assert_stored_equals_local_parse(
    store: &Arc<dyn AggregateStore>,
    id: &DumpId,
    path: &Path,
) {
    let local: Arc<dyn AggregateStore> = Arc::new(heapfleet_storage::MemoryStore::new());
    let file = std::fs::File::open(path).unwrap();
    // The parser reads gzip by its magic bytes, so a `.dump.gz` passes through as it is.
    heapfleet_ingest::parse_into_store(
        file,
        id,
        local.clone(),
        heapfleet_dump::ParseOptions::default(),
    )
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

/// Checks the object count the catalog row of `id` holds (`catalog_objects`) is the one its
/// stored aggregates hold.
pub(crate) async fn assert_catalog_counts_stored_objects(
    store: &Arc<dyn AggregateStore>,
    id: &DumpId,
    catalog_objects: u64,
) {
    assert_eq!(
        store
            .get_dump_aggregates(id.as_str())
            .await
            .unwrap()
            .parse
            .objects,
        catalog_objects,
        "the catalog counts the stored objects of {id}"
    );
}

/// The overall grpc.health.v1 status of the server at `url`, or why it could not be asked.
pub(crate) async fn health_status(
    url: &str,
) -> Result<tonic_health::pb::health_check_response::ServingStatus, String> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|error| format!("{url} is no server URL: {error}"))?
        .connect()
        .await
        .map_err(|error| format!("cannot connect to {url}: {error}"))?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let response = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|status| format!("health check of {url} failed: {status}"))?;
    Ok(response.into_inner().status())
}

/// Waits until the server at `url` reports `wanted` (backends are probed every few seconds),
/// with `logs` on a timeout.
pub(crate) async fn wait_health(
    url: &str,
    wanted: tonic_health::pb::health_check_response::ServingStatus,
    timeout: Duration,
    logs: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let status = health_status(url).await;
        if status.as_ref().is_ok_and(|status| *status == wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} is not {wanted:?} after {timeout:?} (last: {status:?})\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
