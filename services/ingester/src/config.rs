//! The ingester's configuration: a TOML file (`--config`), `HEAPFLEET_*` variables and flags,
//! later ones overriding earlier ones (see `heapfleet_service::config`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use heapfleet_objects::S3Options;
use heapfleet_service::config::{S3Args, S3File, pick, read_file};

use crate::retention::{RetentionFile, RetentionSettings};

/// The default address of the ingester's health endpoint.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7401";

/// The default [`WorkerSettings::max_decompressed_bytes`]: 64 GiB.
const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 64 << 30;

/// The ingester's settings, resolved and checked.
#[derive(Debug, Clone)]
pub struct IngesterConfig {
    /// Where grpc.health.v1 is served.
    pub listen: SocketAddr,
    /// The catalog URL (`postgres://...` or a directory).
    pub catalog: String,
    /// The aggregate store URL (`scylla://...`, a directory or `memory://`).
    pub store: String,
    /// The object store URL (`s3://bucket/prefix` or a directory).
    pub objects: String,
    /// S3 endpoint, region and credentials.
    pub s3: S3Options,
    /// How the worker claims and runs jobs.
    pub worker: WorkerSettings,
    /// Which dumps age out, and how often that is checked (off by default).
    pub retention: RetentionSettings,
}

/// How a worker claims and runs jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Unique per running worker; each concurrent slot appends `/<n>`.
    pub name: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// How long a claim holds before another worker may take the job; renewed every third.
    pub lease: Duration,
    /// Attempts before a dump is failed for good.
    pub max_attempts: u32,
    /// How long to wait before asking again when the queue is empty.
    pub poll_interval: Duration,
    /// Only this tenant's dumps (`None`: any tenant).
    pub tenant: Option<String>,
    /// On shutdown, how long a running job may take to finish before its lease is given back.
    pub shutdown_grace: Duration,
    /// The largest decompressed dump parsed: past it the dump fails for good, so a gzip bomb
    /// costs at most this much parsing (it is streamed: memory does not grow with it).
    pub max_decompressed_bytes: u64,
    /// The most heap objects a dump may hold for its ownership pass (dominators, retained
    /// sizes, owners) to run; a larger dump's pass is skipped with the reason. The pass takes
    /// about 80 bytes per object and 8 per reference at peak.
    pub max_retention_objects: u64,
}

impl Default for WorkerSettings {
    fn default() -> WorkerSettings {
        WorkerSettings {
            name: default_worker_name(),
            concurrency: 1,
            lease: Duration::from_secs(30),
            max_attempts: 3,
            poll_interval: Duration::from_millis(1000),
            tenant: None,
            shutdown_grace: Duration::from_secs(20),
            // Four times the gateway's default upload limit (16 GiB): room for any real dump,
            // parsed in about a minute and a half at the parser's speed.
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            max_retention_objects: heapfleet_ingest::DEFAULT_MAX_OWNERSHIP_OBJECTS,
        }
    }
}

/// `<host>-<pid>-<random>`: unique per running worker, readable in the catalog.
pub fn default_worker_name() -> String {
    use std::hash::BuildHasher;
    let random =
        std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    format!(
        "{}-{}-{:06x}",
        gethostname::gethostname().to_string_lossy(),
        std::process::id(),
        random & 0xff_ffff
    )
}

/// The ingester's flags; each also reads a `HEAPFLEET_*` variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct IngesterArgs {
    /// A TOML config file (see deploy/config/ingester.toml); flags and variables override it.
    #[arg(long, env = "HEAPFLEET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the health endpoint [default: 0.0.0.0:7401].
    #[arg(long, env = "HEAPFLEET_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Catalog: postgres://user:password@host/db, or a directory [default: heapfleet-data].
    #[arg(long, env = "HEAPFLEET_CATALOG")]
    pub catalog: Option<String>,
    /// Aggregate store: scylla://host:9042/keyspace, or a directory [default: heapfleet-data].
    #[arg(long, env = "HEAPFLEET_STORE")]
    pub store: Option<String>,
    /// Object store holding the dump files: s3://bucket/prefix, or a directory
    /// [default: heapfleet-data/objects].
    #[arg(long, env = "HEAPFLEET_OBJECTS")]
    pub objects: Option<String>,
    /// S3 settings for the object store.
    #[command(flatten)]
    pub s3: S3Args,
    /// Jobs run at once [default: 1].
    #[arg(long, env = "HEAPFLEET_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Lease of a claimed job in seconds; renewed every third of it [default: 30].
    #[arg(long, env = "HEAPFLEET_LEASE_SECONDS")]
    pub lease_seconds: Option<u64>,
    /// Attempts before a dump is failed for good [default: 3].
    #[arg(long, env = "HEAPFLEET_MAX_ATTEMPTS")]
    pub max_attempts: Option<u32>,
    /// Wait between polls of an empty queue, in milliseconds [default: 1000].
    #[arg(long, env = "HEAPFLEET_POLL_INTERVAL_MS")]
    pub poll_interval_ms: Option<u64>,
    /// Only claim this tenant's dumps [default: any tenant].
    #[arg(long, env = "HEAPFLEET_TENANT")]
    pub tenant: Option<String>,
    /// Name of this worker in the catalog [default: <host>-<pid>-<random>].
    #[arg(long, env = "HEAPFLEET_WORKER_NAME")]
    pub worker_name: Option<String>,
    /// Largest decompressed dump parsed, in bytes; a larger one (a gzip bomb) fails
    /// [default: 68719476736, 64 GiB].
    #[arg(long, env = "HEAPFLEET_MAX_DECOMPRESSED_BYTES")]
    pub max_decompressed_bytes: Option<u64>,
    /// Most heap objects of a dump whose ownership pass (dominators, retained sizes, owners)
    /// runs; a larger dump's is skipped, at about 80 bytes of memory per object
    /// [default: 40000000].
    #[arg(long, env = "HEAPFLEET_MAX_RETENTION_OBJECTS")]
    pub max_retention_objects: Option<u64>,
    /// Delete the dumps (of --tenant, else of every tenant) taken longer ago than this, e.g.
    /// 30d, 12h: their aggregates, files and catalog rows [default: keep every dump].
    #[arg(long, env = "HEAPFLEET_RETENTION_MAX_AGE", value_name = "AGE")]
    pub retention_max_age: Option<String>,
    /// Time between two retention sweeps, e.g. 1h, 15m [default: 1h].
    #[arg(long, env = "HEAPFLEET_RETENTION_INTERVAL", value_name = "INTERVAL")]
    pub retention_interval: Option<String>,
}

/// The config file's shape.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngesterFile {
    /// See [`IngesterArgs::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`IngesterArgs::catalog`].
    pub catalog: Option<String>,
    /// See [`IngesterArgs::store`].
    pub store: Option<String>,
    /// See [`IngesterArgs::objects`].
    pub objects: Option<String>,
    /// S3 settings.
    #[serde(default)]
    pub s3: S3File,
    /// See [`IngesterArgs::tenant`].
    pub tenant: Option<String>,
    /// See [`IngesterArgs::concurrency`].
    pub concurrency: Option<usize>,
    /// See [`IngesterArgs::lease_seconds`].
    pub lease_seconds: Option<u64>,
    /// See [`IngesterArgs::max_attempts`].
    pub max_attempts: Option<u32>,
    /// See [`IngesterArgs::poll_interval_ms`].
    pub poll_interval_ms: Option<u64>,
    /// See [`IngesterArgs::max_decompressed_bytes`].
    pub max_decompressed_bytes: Option<u64>,
    /// See [`IngesterArgs::max_retention_objects`].
    pub max_retention_objects: Option<u64>,
    /// The retention policy.
    #[serde(default)]
    pub retention: RetentionFile,
}

impl IngesterArgs {
    /// Reads the config file, if any, and resolves every setting.
    pub fn resolve(&self) -> anyhow::Result<IngesterConfig> {
        let file: IngesterFile = match &self.config {
            Some(path) => read_file(path)?,
            None => IngesterFile::default(),
        };
        self.resolve_with(file)
    }

    /// Resolves every setting against an already parsed file.
    pub fn resolve_with(&self, file: IngesterFile) -> anyhow::Result<IngesterConfig> {
        let defaults = WorkerSettings::default();
        let listen = match self.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse()?,
        };
        let config = IngesterConfig {
            listen,
            catalog: pick(
                self.catalog.clone(),
                file.catalog,
                "heapfleet-data".to_owned(),
            ),
            store: pick(self.store.clone(), file.store, "heapfleet-data".to_owned()),
            objects: pick(
                self.objects.clone(),
                file.objects,
                "heapfleet-data/objects".to_owned(),
            ),
            s3: self.s3.options(file.s3),
            worker: WorkerSettings {
                name: pick(self.worker_name.clone(), None, defaults.name),
                tenant: self.tenant.clone().or(file.tenant),
                concurrency: pick(self.concurrency, file.concurrency, defaults.concurrency),
                lease: Duration::from_secs(pick(
                    self.lease_seconds,
                    file.lease_seconds,
                    defaults.lease.as_secs(),
                )),
                max_attempts: pick(self.max_attempts, file.max_attempts, defaults.max_attempts),
                poll_interval: Duration::from_millis(pick(
                    self.poll_interval_ms,
                    file.poll_interval_ms,
                    u64::try_from(defaults.poll_interval.as_millis()).unwrap_or(1000),
                )),
                max_decompressed_bytes: pick(
                    self.max_decompressed_bytes,
                    file.max_decompressed_bytes,
                    defaults.max_decompressed_bytes,
                ),
                max_retention_objects: pick(
                    self.max_retention_objects,
                    file.max_retention_objects,
                    defaults.max_retention_objects,
                ),
                ..defaults
            },
            retention: RetentionSettings::parse(
                self.retention_max_age
                    .as_deref()
                    .or(file.retention.max_age.as_deref()),
                self.retention_interval
                    .as_deref()
                    .or(file.retention.interval.as_deref()),
            )?,
        };
        config.validate()?;
        Ok(config)
    }
}

impl IngesterConfig {
    /// Checks the settings, failing with one line that names the bad one.
    pub fn validate(&self) -> anyhow::Result<()> {
        let worker = &self.worker;
        if worker.name.is_empty() {
            bail!("worker_name must not be empty");
        }
        if worker.concurrency == 0 || worker.concurrency > 256 {
            bail!(
                "concurrency must be between 1 and 256, not {}",
                worker.concurrency
            );
        }
        if worker.lease < Duration::from_secs(1) {
            bail!("lease_seconds must be at least 1");
        }
        if worker.max_attempts == 0 {
            bail!("max_attempts must be at least 1");
        }
        if worker.poll_interval.is_zero() {
            bail!("poll_interval_ms must be positive");
        }
        if worker.max_decompressed_bytes == 0 {
            bail!("max_decompressed_bytes must be positive");
        }
        if worker.max_retention_objects == 0 {
            bail!("max_retention_objects must be positive");
        }
        for (name, value) in [
            ("catalog", &self.catalog),
            ("store", &self.store),
            ("objects", &self.objects),
        ] {
            if value.is_empty() {
                bail!("{name} must not be empty");
            }
        }
        heapfleet_objects::ObjectStoreUrl::parse(&self.objects)
            .map_err(|error| anyhow::anyhow!("objects: {error}"))?;
        self.retention.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use heapfleet_service::config::parse_toml;

    use super::*;

    #[test]
    fn test_resolve_reads_the_file_under_the_flags() {
        let file: IngesterFile =
            parse_toml("concurrency = 4\nlease_seconds = 10\nstore = \"scylla://a:9042/k\"\n")
                .unwrap();
        let args = IngesterArgs {
            concurrency: Some(2),
            ..IngesterArgs::default()
        };
        let config = args.resolve_with(file).unwrap();
        assert_eq!(config.worker.concurrency, 2);
        assert_eq!(config.worker.lease, Duration::from_secs(10));
        assert_eq!(config.store, "scylla://a:9042/k");
        assert_eq!(config.worker.max_attempts, 3);
    }

    #[test]
    fn test_resolve_max_decompressed_bytes_from_file_and_flag() {
        let defaults = IngesterArgs::default()
            .resolve_with(IngesterFile::default())
            .unwrap();
        assert_eq!(
            defaults.worker.max_decompressed_bytes,
            DEFAULT_MAX_DECOMPRESSED_BYTES
        );
        let file: IngesterFile = parse_toml("max_decompressed_bytes = 1000\n").unwrap();
        let from_file = IngesterArgs::default().resolve_with(file.clone()).unwrap();
        assert_eq!(from_file.worker.max_decompressed_bytes, 1000);
        let args = IngesterArgs {
            max_decompressed_bytes: Some(2000),
            ..IngesterArgs::default()
        };
        assert_eq!(
            args.resolve_with(file)
                .unwrap()
                .worker
                .max_decompressed_bytes,
            2000
        );
        let zero = IngesterArgs {
            max_decompressed_bytes: Some(0),
            ..IngesterArgs::default()
        };
        let error = zero.resolve_with(IngesterFile::default()).unwrap_err();
        assert!(
            error.to_string().contains("max_decompressed_bytes"),
            "{error}"
        );
    }

    #[test]
    fn test_resolve_reads_retention_from_the_file_under_the_flags() {
        let defaults = IngesterArgs::default()
            .resolve_with(IngesterFile::default())
            .unwrap();
        assert_eq!(defaults.retention, RetentionSettings::default());
        let file: IngesterFile =
            parse_toml("[retention]\nmax_age = \"30d\"\ninterval = \"2h\"\n").unwrap();
        let from_file = IngesterArgs::default().resolve_with(file.clone()).unwrap();
        assert_eq!(
            from_file.retention.max_age,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(from_file.retention.interval, Duration::from_secs(7200));
        let args = IngesterArgs {
            retention_max_age: Some("7d".to_owned()),
            ..IngesterArgs::default()
        };
        let flagged = args.resolve_with(file).unwrap();
        assert_eq!(
            flagged.retention.max_age,
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(flagged.retention.interval, Duration::from_secs(7200));
        let bad: IngesterFile = parse_toml("[retention]\nmax_age = \"a month\"\n").unwrap();
        let error = IngesterArgs::default().resolve_with(bad).unwrap_err();
        assert!(
            error.to_string().starts_with("retention.max_age: "),
            "{error}"
        );
        assert!(parse_toml::<IngesterFile>("[retention]\nmaxage = \"1d\"\n").is_err());
    }

    #[test]
    fn test_resolve_rejects_zero_concurrency_by_name() {
        let args = IngesterArgs {
            concurrency: Some(0),
            ..IngesterArgs::default()
        };
        let error = args.resolve_with(IngesterFile::default()).unwrap_err();
        assert!(error.to_string().contains("concurrency"), "{error}");
    }
}
