//! The gateway's configuration: a TOML file (`--config`), `HEAPFLEET_*` variables and flags,
//! later ones overriding earlier ones (see `heapfleet_service::config`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use heapfleet_objects::S3Options;
use heapfleet_service::auth::AuthFile;
use heapfleet_service::config::{S3Args, S3File, pick, read_file};
use heapfleet_service::stack::{CallsFile, ServingArgs, ServingConfig};
use heapfleet_service::tls::TlsFile;

/// Uploads (and other calls) the gateway serves at once by default: each upload holds up to
/// about 40 MiB of parts in flight, so 16 keep the gateway under about 700 MiB.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 16;

/// Limits on what one upload may carry; each breach is refused with a message naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest dump accepted, in bytes.
    pub max_dump_bytes: u64,
    /// The largest gRPC message accepted, in bytes (chunks are smaller: see the client).
    pub max_message_bytes: usize,
    /// The most labels one dump may carry.
    pub max_labels: usize,
    /// The longest label key or value, host, role, instance or file name, in bytes.
    pub max_label_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_dump_bytes: 16 << 30,
            max_message_bytes: 4 << 20,
            max_labels: 32,
            max_label_bytes: 256,
        }
    }
}

/// The gateway's settings, resolved and checked.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where the gRPC server listens.
    pub listen: SocketAddr,
    /// The tenant of uploads without a token (authentication off); with `[auth]` tokens, each
    /// token's tenant.
    pub tenant: String,
    /// The catalog URL (`postgres://...` or a directory).
    pub catalog: String,
    /// The object store URL (`s3://bucket/prefix`, a directory or `memory://`).
    pub objects: String,
    /// The aggregate store URL (the ingesters' `store`), which `DeleteDump` deletes a dump's
    /// aggregates from; `None`: the gateway refuses deletes. No default, so a gateway never
    /// deletes from an embedded store while the dumps' aggregates live elsewhere.
    pub store: Option<String>,
    /// S3 endpoint, region and credentials.
    pub s3: S3Options,
    /// Upload limits.
    pub limits: Limits,
    /// Authentication, call limits and TLS.
    pub serving: ServingConfig,
}

/// The default listen address of the gateway.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7400";

/// The gateway's flags; each also reads a `HEAPFLEET_*` variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GatewayArgs {
    /// A TOML config file (see deploy/config/gateway.toml); flags and variables override it.
    #[arg(long, env = "HEAPFLEET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:7400].
    #[arg(long, env = "HEAPFLEET_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Tenant of every upload [default: default].
    #[arg(long, env = "HEAPFLEET_TENANT")]
    pub tenant: Option<String>,
    /// Catalog: postgres://user:password@host/db, or a directory for the embedded one
    /// [default: heapfleet-data].
    #[arg(long, env = "HEAPFLEET_CATALOG")]
    pub catalog: Option<String>,
    /// Object store for dump files: s3://bucket/prefix, or a directory
    /// [default: heapfleet-data/objects].
    #[arg(long, env = "HEAPFLEET_OBJECTS")]
    pub objects: Option<String>,
    /// Aggregate store the ingesters write (scylla://host:9042/keyspace, or a directory), from
    /// which DeleteDump deletes a dump's aggregates [default: none, and deletes are refused].
    #[arg(long, env = "HEAPFLEET_STORE")]
    pub store: Option<String>,
    /// S3 settings for the object store.
    #[command(flatten)]
    pub s3: S3Args,
    /// Largest dump accepted, in bytes [default: 17179869184, 16 GiB].
    #[arg(long, env = "HEAPFLEET_MAX_DUMP_BYTES")]
    pub max_dump_bytes: Option<u64>,
    /// TLS and call limits [default: 16 calls at once, no timeout].
    #[command(flatten)]
    pub serving: ServingArgs,
}

/// The config file's shape.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// See [`GatewayArgs::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`GatewayArgs::tenant`].
    pub tenant: Option<String>,
    /// See [`GatewayArgs::catalog`].
    pub catalog: Option<String>,
    /// See [`GatewayArgs::objects`].
    pub objects: Option<String>,
    /// See [`GatewayArgs::store`].
    pub store: Option<String>,
    /// S3 settings.
    #[serde(default)]
    pub s3: S3File,
    /// Upload limits.
    #[serde(default)]
    pub limits: LimitsFile,
    /// Accepted tokens (none: authentication off).
    #[serde(default)]
    pub auth: AuthFile,
    /// Certificate and key for TLS.
    #[serde(default)]
    pub tls: TlsFile,
    /// Call limits.
    #[serde(default)]
    pub calls: CallsFile,
}

/// The `[limits]` table.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// See [`Limits::max_dump_bytes`].
    pub max_dump_bytes: Option<u64>,
    /// See [`Limits::max_message_bytes`].
    pub max_message_bytes: Option<usize>,
    /// See [`Limits::max_labels`].
    pub max_labels: Option<usize>,
    /// See [`Limits::max_label_bytes`].
    pub max_label_bytes: Option<usize>,
}

impl GatewayArgs {
    /// Reads the config file, if any, and resolves every setting.
    pub fn resolve(&self) -> anyhow::Result<GatewayConfig> {
        let file: GatewayFile = match &self.config {
            Some(path) => read_file(path)?,
            None => GatewayFile::default(),
        };
        self.resolve_with(file)
    }

    /// Resolves every setting against an already parsed file.
    pub fn resolve_with(&self, file: GatewayFile) -> anyhow::Result<GatewayConfig> {
        let defaults = Limits::default();
        let tenant = pick(self.tenant.clone(), file.tenant, "default".to_owned());
        let serving = self.serving.resolve(
            &file.auth,
            file.tls,
            &file.calls,
            &tenant,
            &CallsFile {
                max_concurrent: Some(DEFAULT_MAX_CONCURRENT_CALLS),
                timeout_seconds: None,
            },
        )?;
        let config = GatewayConfig {
            listen: pick(self.listen, file.listen, default_listen()),
            tenant,
            catalog: pick(
                self.catalog.clone(),
                file.catalog,
                "heapfleet-data".to_owned(),
            ),
            objects: pick(
                self.objects.clone(),
                file.objects,
                "heapfleet-data/objects".to_owned(),
            ),
            store: self.store.clone().or(file.store),
            s3: self.s3.options(file.s3),
            limits: Limits {
                max_dump_bytes: pick(
                    self.max_dump_bytes,
                    file.limits.max_dump_bytes,
                    defaults.max_dump_bytes,
                ),
                max_message_bytes: file
                    .limits
                    .max_message_bytes
                    .unwrap_or(defaults.max_message_bytes),
                max_labels: file.limits.max_labels.unwrap_or(defaults.max_labels),
                max_label_bytes: file
                    .limits
                    .max_label_bytes
                    .unwrap_or(defaults.max_label_bytes),
            },
            serving,
        };
        config.validate()?;
        Ok(config)
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .unwrap_or_else(|_| unreachable!("a valid literal address"))
}

impl GatewayConfig {
    /// Checks the settings, failing with one line that names the bad one.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.tenant.is_empty() {
            bail!("tenant must not be empty");
        }
        if self.catalog.is_empty() {
            bail!("catalog must name a postgres:// URL or a directory");
        }
        if self.objects.is_empty() {
            bail!("objects must name an s3:// URL or a directory");
        }
        heapfleet_objects::ObjectStoreUrl::parse(&self.objects)
            .map_err(|error| anyhow::anyhow!("objects: {error}"))?;
        if self.store.as_deref() == Some("") {
            bail!("store must name the ingesters' aggregate store, or be left out");
        }
        if self.limits.max_dump_bytes == 0 {
            bail!("limits.max_dump_bytes must be positive");
        }
        if self.limits.max_message_bytes < 64 << 10 {
            bail!("limits.max_message_bytes must be at least 65536");
        }
        if self.limits.max_label_bytes == 0 {
            bail!("limits.max_label_bytes must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use heapfleet_service::config::parse_toml;

    use super::*;

    #[test]
    fn test_resolve_prefers_flags_then_file_then_defaults() {
        let file: GatewayFile = parse_toml(
            "tenant = \"acme\"\nobjects = \"s3://bucket/p\"\n[limits]\nmax_labels = 4\n",
        )
        .unwrap();
        let args = GatewayArgs {
            objects: Some("memory://".to_owned()),
            ..GatewayArgs::default()
        };
        let config = args.resolve_with(file).unwrap();
        assert_eq!(config.tenant, "acme");
        assert_eq!(config.objects, "memory://");
        assert_eq!(config.listen, default_listen());
        assert_eq!(config.limits.max_labels, 4);
        assert_eq!(
            config.limits.max_dump_bytes,
            Limits::default().max_dump_bytes
        );
    }

    #[test]
    fn test_resolve_rejects_bad_settings_with_their_name() {
        let args = GatewayArgs {
            tenant: Some(String::new()),
            ..GatewayArgs::default()
        };
        let error = args.resolve_with(GatewayFile::default()).unwrap_err();
        assert!(error.to_string().contains("tenant"), "{error}");
        let file: GatewayFile = parse_toml("[limits]\nmax_dump_bytes = 0\n").unwrap();
        let error = GatewayArgs::default().resolve_with(file).unwrap_err();
        assert!(error.to_string().contains("max_dump_bytes"), "{error}");
        let file: GatewayFile = parse_toml("store = \"\"\n").unwrap();
        let error = GatewayArgs::default().resolve_with(file).unwrap_err();
        assert!(error.to_string().starts_with("store "), "{error}");
    }

    #[test]
    fn test_resolve_leaves_the_store_unset_by_default() {
        let config = GatewayArgs::default()
            .resolve_with(GatewayFile::default())
            .unwrap();
        assert_eq!(config.store, None);
        let file: GatewayFile = parse_toml("store = \"scylla://a:9042/k\"\n").unwrap();
        let config = GatewayArgs::default().resolve_with(file).unwrap();
        assert_eq!(config.store.as_deref(), Some("scylla://a:9042/k"));
    }
}
