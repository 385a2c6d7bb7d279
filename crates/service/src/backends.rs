//! The three backends, each opened from one URL, so a config names them the same way
//! everywhere:
//!
//! | backend      | URL                                                   | implementation     |
//! |--------------|-------------------------------------------------------|--------------------|
//! | catalog      | `postgres://user@host/db` (or `postgresql://`)        | [`PostgresCatalog`] |
//! |              | a directory path (or `sqlite://DIR`)                  | [`SqliteCatalog`]  |
//! | store        | `scylla://host:9042,host2:9042/keyspace?replication_factor=3&consistency=local_quorum` (or `cassandra://`) | [`ScyllaStore`] |
//! |              | a directory path (or `sqlite://DIR`)                  | [`SqliteStore`]    |
//! |              | `memory://`                                           | [`MemoryStore`]    |
//! | objects      | a directory path, `s3://bucket/prefix`, `memory://`   | `heapfleet_objects` |

use std::sync::Arc;

use anyhow::{Context, bail};
use heapfleet_catalog::{Catalog, PostgresCatalog, SqliteCatalog};
pub use heapfleet_objects::object_store::path::Path as ObjectPath;
use heapfleet_objects::object_store::{ObjectStore, ObjectStoreExt};
use heapfleet_objects::{ObjectStoreUrl, S3Options, open_object_store};
use heapfleet_storage::{
    AggregateStore, MemoryStore, ScyllaConfig, ScyllaConsistency, ScyllaStore, SqliteStore,
};

/// Opens the catalog `url` names (see the module docs), applying its migrations.
pub async fn open_catalog(url: &str) -> anyhow::Result<Arc<dyn Catalog>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let catalog = PostgresCatalog::connect(url)
            .await
            .context("failed to open the PostgreSQL catalog")?;
        return Ok(Arc::new(catalog));
    }
    let directory = url.strip_prefix("sqlite://").unwrap_or(url);
    if directory.is_empty() || directory.contains("://") {
        bail!("catalog URL {url:?} is neither postgres://... nor a directory");
    }
    std::fs::create_dir_all(directory)
        .with_context(|| format!("failed to create the catalog directory {directory}"))?;
    let catalog = SqliteCatalog::open(directory)
        .await
        .with_context(|| format!("failed to open the embedded catalog in {directory}"))?;
    Ok(Arc::new(catalog))
}

/// Opens the aggregate store `url` names (see the module docs), creating its schema.
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn AggregateStore>> {
    if let Some(rest) = url
        .strip_prefix("scylla://")
        .or_else(|| url.strip_prefix("cassandra://"))
    {
        let config = parse_scylla(rest).with_context(|| format!("bad store URL {url:?}"))?;
        let store = ScyllaStore::connect(&config)
            .await
            .context("failed to open the CQL store")?;
        return Ok(Arc::new(store));
    }
    if url == "memory://" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    let directory = url.strip_prefix("sqlite://").unwrap_or(url);
    if directory.is_empty() || directory.contains("://") {
        bail!("store URL {url:?} is neither scylla://..., memory:// nor a directory");
    }
    std::fs::create_dir_all(directory)
        .with_context(|| format!("failed to create the store directory {directory}"))?;
    let store = SqliteStore::open(directory)
        .await
        .with_context(|| format!("failed to open the embedded store in {directory}"))?;
    Ok(Arc::new(store))
}

/// Parses `host:port,host:port/keyspace?replication_factor=N&consistency=LEVEL`.
fn parse_scylla(rest: &str) -> anyhow::Result<ScyllaConfig> {
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (nodes, keyspace) = location
        .split_once('/')
        .context("expected scylla://HOST:PORT[,HOST:PORT...]/KEYSPACE")?;
    let nodes: Vec<String> = nodes
        .split(',')
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect();
    if nodes.is_empty() {
        bail!("no contact point before the keyspace");
    }
    let mut config = ScyllaConfig::single_node(nodes[0].clone(), keyspace);
    config.nodes = nodes;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("query part {pair:?} is not key=value"))?;
        match key {
            "replication_factor" => {
                config.replication_factor = value
                    .parse()
                    .with_context(|| format!("replication_factor {value:?} is not a number"))?;
            }
            "consistency" => {
                config.consistency = match value.to_ascii_lowercase().as_str() {
                    "one" => ScyllaConsistency::One,
                    "quorum" => ScyllaConsistency::Quorum,
                    "local_quorum" => ScyllaConsistency::LocalQuorum,
                    "all" => ScyllaConsistency::All,
                    _ => bail!("consistency {value:?} is not one, quorum, local_quorum or all"),
                };
            }
            _ => bail!("unknown store option {key:?} (replication_factor, consistency)"),
        }
    }
    Ok(config)
}

/// An opened object store: where dump files are kept.
#[derive(Debug, Clone)]
pub struct Objects {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix every key goes under.
    pub prefix: ObjectPath,
    /// The root directory when the store is a local directory: a finished file is synced to
    /// disk there before it is acknowledged (object_store does not fsync).
    local_root: Option<std::path::PathBuf>,
}

impl Objects {
    /// Opens the object store `url` names; `s3` applies to `s3://` URLs only.
    pub fn open(url: &str, s3: &S3Options) -> anyhow::Result<Objects> {
        let (store, prefix) =
            open_object_store(url, s3).with_context(|| format!("bad object store {url:?}"))?;
        let local_root = match ObjectStoreUrl::parse(url)? {
            ObjectStoreUrl::Local { root } => Some(root),
            _ => None,
        };
        Ok(Objects {
            store,
            prefix,
            local_root,
        })
    }

    /// Makes a finished object durable where the store does not: on a local directory, syncs
    /// the file and its directory to disk. S3 acknowledges a completed upload only once it is
    /// durable, so there is nothing to do there.
    pub async fn sync(&self, key: &ObjectPath) -> std::io::Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let local = heapfleet_objects::object_store::local::LocalFileSystem::new_with_prefix(root)
            .map_err(std::io::Error::other)?;
        let file_path = local
            .path_to_filesystem(key)
            .map_err(std::io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&file_path)?.sync_all()?;
            if let Some(parent) = file_path.parent() {
                std::fs::File::open(parent)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Checks that the store answers: a listing under the prefix (empty is fine).
    pub async fn probe(&self) -> Result<(), heapfleet_objects::object_store::Error> {
        self.store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map(|_| ())
    }

    /// Opens the object at `key` for reading on a blocking thread (a parse). A local file is
    /// read directly; anything else streams through the async client (call this inside a tokio
    /// runtime, and read from a blocking task). Errors keep object_store's kind (NotFound).
    pub async fn reader(
        &self,
        key: &ObjectPath,
    ) -> Result<Box<dyn std::io::Read + Send>, heapfleet_objects::object_store::Error> {
        use std::io::{Read, Seek, SeekFrom};

        use futures::TryStreamExt;
        use heapfleet_objects::object_store::GetResultPayload;

        let object = self.store.get(key).await?;
        let range = object.range.clone();
        // The generic stream hands a local file over in 8 KiB pieces, each from a blocking
        // task, which costs more than parsing them: read the file directly instead.
        Ok(match object.payload {
            GetResultPayload::File(mut file, path) => {
                file.seek(SeekFrom::Start(range.start)).map_err(|source| {
                    heapfleet_objects::object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: format!("cannot seek {}: {source}", path.display()).into(),
                    }
                })?;
                Box::new(file.take(range.end - range.start))
            }
            GetResultPayload::Stream(stream) => {
                let bytes = stream
                    .map_err(|error| std::io::Error::other(crate::status::error_chain(&error)));
                Box::new(tokio_util::io::SyncIoBridge::new(
                    tokio_util::io::StreamReader::new(bytes),
                ))
            }
        })
    }

    /// Reads an object's size (HEAD).
    pub async fn size(
        &self,
        key: &ObjectPath,
    ) -> Result<u64, heapfleet_objects::object_store::Error> {
        Ok(self.store.head(key).await?.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_scylla_reads_nodes_keyspace_and_options() {
        let config =
            parse_scylla("a:9042,b:9042/heapfleet?replication_factor=3&consistency=LOCAL_QUORUM")
                .unwrap();
        assert_eq!(config.nodes, ["a:9042", "b:9042"]);
        assert_eq!(config.keyspace, "heapfleet");
        assert_eq!(config.replication_factor, 3);
        assert!(matches!(config.consistency, ScyllaConsistency::LocalQuorum));
        for bad in [
            "a:9042",
            "/ks",
            "a:9042/ks?speed=fast",
            "a:9042/ks?consistency=two",
        ] {
            assert!(parse_scylla(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn test_open_catalog_and_store_take_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let catalog = open_catalog(path).await.unwrap();
        assert!(catalog.list_processes("t").await.unwrap().is_empty());
        open_store(&format!("sqlite://{path}")).await.unwrap();
        assert!(open_catalog("mysql://nope").await.is_err());
        assert!(open_store("redis://nope").await.is_err());
    }
}
