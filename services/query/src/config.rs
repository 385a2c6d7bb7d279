//! The query service's configuration: a TOML file (`--config`), `HEAPFLEET_*` variables and
//! flags, later ones overriding earlier ones (see `heapfleet_service::config`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use heapfleet_service::auth::AuthFile;
use heapfleet_service::config::{S3Args, pick, read_file};
use heapfleet_service::stack::{CallsFile, ServingArgs, ServingConfig};
use heapfleet_service::tls::TlsFile;

/// Calls the query service serves at once by default.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 64;
/// Longest a query may run by default, in seconds.
pub const DEFAULT_CALL_TIMEOUT_SECONDS: u64 = 120;

/// The default listen address of the query service.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7402";

/// The query service's settings, resolved and checked.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Where the gRPC server listens.
    pub listen: SocketAddr,
    /// The tenant whose dumps are read.
    pub tenant: String,
    /// The catalog URL.
    pub catalog: String,
    /// The aggregate store URL.
    pub store: String,
    /// The object store holding the dump files (for retainer paths), when configured.
    pub objects: Option<String>,
    /// S3 endpoint, region and credentials for `objects`.
    pub s3: heapfleet_objects::S3Options,
    /// Authentication, call limits and TLS.
    pub serving: ServingConfig,
}

/// The query service's flags; each also reads a `HEAPFLEET_*` variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct QueryArgs {
    /// A TOML config file (see deploy/config/query.toml); flags and variables override it.
    #[arg(long, env = "HEAPFLEET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:7402].
    #[arg(long, env = "HEAPFLEET_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Tenant whose dumps are read [default: default].
    #[arg(long, env = "HEAPFLEET_TENANT")]
    pub tenant: Option<String>,
    /// Catalog: postgres://user:password@host/db, or a directory [default: heapfleet-data].
    #[arg(long, env = "HEAPFLEET_CATALOG")]
    pub catalog: Option<String>,
    /// Aggregate store: scylla://host:9042/keyspace, or a directory [default: heapfleet-data].
    #[arg(long, env = "HEAPFLEET_STORE")]
    pub store: Option<String>,
    /// Object store holding the dump files, for retainer paths: s3://bucket/prefix or a
    /// directory (the gateway's `objects`) [default: none; `paths` then needs --file].
    #[arg(long, env = "HEAPFLEET_OBJECTS")]
    pub objects: Option<String>,
    /// S3 settings for the object store.
    #[command(flatten)]
    pub s3: S3Args,
    /// TLS and call limits [default: 64 calls at once, 120 s each].
    #[command(flatten)]
    pub serving: ServingArgs,
}

/// The config file's shape.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryFile {
    /// See [`QueryArgs::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`QueryArgs::tenant`].
    pub tenant: Option<String>,
    /// See [`QueryArgs::catalog`].
    pub catalog: Option<String>,
    /// See [`QueryArgs::store`].
    pub store: Option<String>,
    /// See [`QueryArgs::objects`].
    pub objects: Option<String>,
    /// S3 settings.
    #[serde(default)]
    pub s3: heapfleet_service::config::S3File,
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

impl QueryArgs {
    /// Reads the config file, if any, and resolves every setting.
    pub fn resolve(&self) -> anyhow::Result<QueryConfig> {
        let file: QueryFile = match &self.config {
            Some(path) => read_file(path)?,
            None => QueryFile::default(),
        };
        self.resolve_with(file)
    }

    /// Resolves every setting against an already parsed file.
    pub fn resolve_with(&self, file: QueryFile) -> anyhow::Result<QueryConfig> {
        let listen = match self.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse()?,
        };
        let tenant = pick(self.tenant.clone(), file.tenant, "default".to_owned());
        let serving = self.serving.resolve(
            &file.auth,
            file.tls,
            &file.calls,
            &tenant,
            &CallsFile {
                max_concurrent: Some(DEFAULT_MAX_CONCURRENT_CALLS),
                timeout_seconds: Some(DEFAULT_CALL_TIMEOUT_SECONDS),
            },
        )?;
        let config = QueryConfig {
            listen,
            tenant,
            catalog: pick(
                self.catalog.clone(),
                file.catalog,
                "heapfleet-data".to_owned(),
            ),
            store: pick(self.store.clone(), file.store, "heapfleet-data".to_owned()),
            objects: self.objects.clone().or(file.objects),
            s3: self.s3.options(file.s3),
            serving,
        };
        if let Some(objects) = &config.objects {
            heapfleet_objects::ObjectStoreUrl::parse(objects)
                .map_err(|error| anyhow::anyhow!("objects: {error}"))?;
        }
        for (name, value) in [
            ("tenant", &config.tenant),
            ("catalog", &config.catalog),
            ("store", &config.store),
        ] {
            if value.is_empty() {
                bail!("{name} must not be empty");
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use heapfleet_service::config::parse_toml;

    use super::*;

    #[test]
    fn test_resolve_prefers_flags_over_the_file() {
        let file: QueryFile = parse_toml("tenant = \"acme\"\nstore = \"memory://\"\n").unwrap();
        let args = QueryArgs {
            tenant: Some("other".to_owned()),
            ..QueryArgs::default()
        };
        let config = args.resolve_with(file).unwrap();
        assert_eq!(config.tenant, "other");
        assert_eq!(config.store, "memory://");
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().unwrap());
        assert!(parse_toml::<QueryFile>("limits = 3\n").is_err());
    }
}
