//! Choosing and opening the object store from a URL: a local directory, S3 (or a compatible
//! server) or memory. Reads no environment itself: [`S3Options::from_env`] is the one place
//! that does, for callers to use at their edge.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, RetryConfig};

use crate::{ObjectsError, Result};

/// Where the object store is, parsed from a URL (see the crate docs for the accepted forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStoreUrl {
    /// A directory on the local filesystem (a plain path or `file:///absolute/path`).
    Local {
        /// The directory; keys are relative to it.
        root: PathBuf,
    },
    /// An S3 bucket, optionally with a key prefix (`s3://bucket/optional/prefix`).
    S3 {
        /// The bucket name.
        bucket: String,
        /// Every key starts with this prefix (empty for the whole bucket).
        prefix: Path,
    },
    /// A fresh in-memory store (`memory://` or `memory://optional/prefix`), for tests.
    Memory {
        /// Every key starts with this prefix.
        prefix: Path,
    },
}

impl ObjectStoreUrl {
    /// Parses an object store URL, naming the bad part when it cannot be used.
    pub fn parse(url: &str) -> Result<ObjectStoreUrl> {
        let invalid = |reason: String| ObjectsError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            if url.trim().is_empty() {
                return Err(invalid("it is empty".to_owned()));
            }
            return Ok(ObjectStoreUrl::Local {
                root: PathBuf::from(url),
            });
        };
        match scheme {
            "file" => {
                // `file:///abs/path`: what follows `file://` is the (empty) host and the path.
                if !rest.starts_with('/') {
                    return Err(invalid(format!(
                        "the host `{}` of a file url is not supported: write file:///absolute/path",
                        rest.split('/').next().unwrap_or(rest)
                    )));
                }
                Ok(ObjectStoreUrl::Local {
                    root: PathBuf::from(rest),
                })
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(invalid(
                        "the bucket is missing: write s3://bucket/optional/prefix".to_owned(),
                    ));
                }
                if !bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
                {
                    return Err(invalid(format!(
                        "the bucket `{bucket}` may hold only lowercase letters, digits, `-` and `.`"
                    )));
                }
                Ok(ObjectStoreUrl::S3 {
                    bucket: bucket.to_owned(),
                    prefix: parse_prefix(prefix).map_err(invalid)?,
                })
            }
            "memory" => Ok(ObjectStoreUrl::Memory {
                prefix: parse_prefix(rest).map_err(invalid)?,
            }),
            other => Err(invalid(format!(
                "unknown scheme `{other}`: use a directory path, file://, s3:// or memory://"
            ))),
        }
    }
}

/// Parses a key prefix; a trailing `/` is allowed, empty or relative segments are not.
fn parse_prefix(prefix: &str) -> Result<Path, String> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    Path::parse(trimmed)
        .map_err(|error| format!("the prefix `{prefix}` is not a valid key: {error}"))
}

/// How to reach an S3 bucket: endpoint, region, credentials. Filled from config by the caller,
/// or from the standard `AWS_*` variables by [`S3Options::from_env`]. Unset credentials leave
/// the S3 client to find its own (instance metadata, web identity).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// The endpoint of an S3-compatible server (`http://127.0.0.1:9000`); `None` means AWS.
    pub endpoint: Option<String>,
    /// The region; `None` means `us-east-1`.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key. Never printed by `Debug`.
    pub secret_access_key: Option<String>,
    /// A session token for temporary credentials. Never printed by `Debug`.
    pub session_token: Option<String>,
    /// Whether a plain `http://` endpoint is allowed (local test servers); off by default.
    pub allow_http: bool,
    /// How long a failing request (server unreachable, 5xx) is retried, with backoff, before it
    /// fails; `None` keeps the S3 client's default of up to 10 retries within 3 minutes. A
    /// server that answers an upload while the client waits may want less.
    pub retry_timeout: Option<Duration>,
}

impl S3Options {
    /// Returns the options the process environment gives: see [`S3Options::from_vars`].
    pub fn from_env() -> S3Options {
        S3Options::from_vars(std::env::vars())
    }

    /// Returns the options in a set of environment variables: `AWS_ENDPOINT_URL` (or
    /// `AWS_ENDPOINT`), `AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and `AWS_ALLOW_HTTP` (`true` or `1`).
    /// Empty values count as unset.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> S3Options
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut vars: HashMap<String, String> = vars
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .filter(|(_, value)| !value.is_empty())
            .collect();
        let mut first = |names: &[&str]| names.iter().find_map(|name| vars.remove(*name));
        S3Options {
            endpoint: first(&["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]),
            region: first(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
            access_key_id: first(&["AWS_ACCESS_KEY_ID"]),
            secret_access_key: first(&["AWS_SECRET_ACCESS_KEY"]),
            session_token: first(&["AWS_SESSION_TOKEN"]),
            allow_http: first(&["AWS_ALLOW_HTTP"])
                .is_some_and(|value| value.eq_ignore_ascii_case("true") || value == "1"),
            retry_timeout: None,
        }
    }
}

impl fmt::Debug for S3Options {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        formatter
            .debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("retry_timeout", &self.retry_timeout)
            .finish()
    }
}

/// Opens the object store `url` names and returns it with the prefix every key goes under.
/// A local directory is created if missing; `s3_options` is used only for `s3://` URLs.
pub fn open_object_store(
    url: &str,
    s3_options: &S3Options,
) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let open_error =
        |source: Box<dyn std::error::Error + Send + Sync + 'static>| ObjectsError::Open {
            url: url.to_owned(),
            source,
        };
    match ObjectStoreUrl::parse(url)? {
        ObjectStoreUrl::Local { root } => {
            std::fs::create_dir_all(&root).map_err(|error| open_error(error.into()))?;
            let store = LocalFileSystem::new_with_prefix(&root)
                .map_err(|error| open_error(error.into()))?;
            Ok((Arc::new(store), Path::default()))
        }
        ObjectStoreUrl::S3 { bucket, prefix } => {
            // `new`, not `from_env`: the caller decides where settings come from.
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(s3_options.region.as_deref().unwrap_or("us-east-1"))
                .with_allow_http(s3_options.allow_http);
            if let Some(endpoint) = &s3_options.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(access_key_id) = &s3_options.access_key_id {
                builder = builder.with_access_key_id(access_key_id);
            }
            if let Some(secret_access_key) = &s3_options.secret_access_key {
                builder = builder.with_secret_access_key(secret_access_key);
            }
            if let Some(session_token) = &s3_options.session_token {
                builder = builder.with_token(session_token);
            }
            if let Some(retry_timeout) = s3_options.retry_timeout {
                builder = builder.with_retry(RetryConfig {
                    retry_timeout,
                    ..RetryConfig::default()
                });
            }
            let store = builder.build().map_err(|error| open_error(error.into()))?;
            Ok((Arc::new(store), prefix))
        }
        ObjectStoreUrl::Memory { prefix } => Ok((Arc::new(InMemory::new()), prefix)),
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;
    use object_store::{ObjectStoreExt, PutMode, PutPayload, WriteMultipart};

    use super::*;

    #[test]
    fn test_object_store_url_parse_accepts_each_form() {
        assert_eq!(
            ObjectStoreUrl::parse("data/objects").unwrap(),
            ObjectStoreUrl::Local {
                root: PathBuf::from("data/objects")
            }
        );
        assert_eq!(
            ObjectStoreUrl::parse("file:///var/lib/heapfleet").unwrap(),
            ObjectStoreUrl::Local {
                root: PathBuf::from("/var/lib/heapfleet")
            }
        );
        assert_eq!(
            ObjectStoreUrl::parse("s3://dumps-bucket/fleet/prod/").unwrap(),
            ObjectStoreUrl::S3 {
                bucket: "dumps-bucket".to_owned(),
                prefix: Path::from("fleet/prod")
            }
        );
        assert_eq!(
            ObjectStoreUrl::parse("s3://dumps-bucket").unwrap(),
            ObjectStoreUrl::S3 {
                bucket: "dumps-bucket".to_owned(),
                prefix: Path::default()
            }
        );
        assert_eq!(
            ObjectStoreUrl::parse("memory://").unwrap(),
            ObjectStoreUrl::Memory {
                prefix: Path::default()
            }
        );
    }

    #[test]
    fn test_object_store_url_parse_names_the_bad_part() {
        let cases = [
            ("", "it is empty"),
            ("gs://bucket", "unknown scheme `gs`"),
            ("s3://", "the bucket is missing"),
            ("s3:///prefix", "the bucket is missing"),
            ("s3://Bad_Bucket/x", "the bucket `Bad_Bucket`"),
            ("s3://bucket/a//b", "the prefix `a//b`"),
            ("s3://bucket/a/../b", "the prefix `a/../b`"),
            ("file://host/path", "the host `host`"),
        ];
        for (url, expected) in cases {
            let message = ObjectStoreUrl::parse(url).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("invalid object store url `{url}`: ")),
                "{message}"
            );
            assert!(message.contains(expected), "{url}: {message}");
        }
    }

    #[test]
    fn test_s3_options_from_vars_reads_the_aws_variables() {
        let options = S3Options::from_vars([
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "hunter2"),
            ("AWS_SESSION_TOKEN", ""),
            ("AWS_ALLOW_HTTP", "true"),
            ("UNRELATED", "x"),
        ]);
        assert_eq!(
            options,
            S3Options {
                endpoint: Some("http://127.0.0.1:9000".to_owned()),
                region: Some("eu-west-1".to_owned()),
                access_key_id: Some("AKID".to_owned()),
                secret_access_key: Some("hunter2".to_owned()),
                session_token: None,
                allow_http: true,
                retry_timeout: None,
            }
        );
        assert_eq!(
            S3Options::from_vars([("AWS_ALLOW_HTTP", "no")]),
            S3Options::default()
        );
    }

    #[test]
    fn test_s3_options_debug_redacts_secrets() {
        let options = S3Options {
            secret_access_key: Some("hunter2".to_owned()),
            session_token: Some("tok-secret".to_owned()),
            access_key_id: Some("AKID".to_owned()),
            ..S3Options::default()
        };
        let printed = format!("{options:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("tok-secret"),
            "{printed}"
        );
        assert!(
            printed.contains("<redacted>") && printed.contains("AKID"),
            "{printed}"
        );
    }

    #[test]
    fn test_open_object_store_builds_s3_without_network() {
        let options = S3Options {
            endpoint: Some("http://127.0.0.1:1".to_owned()),
            access_key_id: Some("a".to_owned()),
            secret_access_key: Some("b".to_owned()),
            allow_http: true,
            ..S3Options::default()
        };
        let (_store, prefix) = open_object_store("s3://bucket/p/q", &options).unwrap();
        assert_eq!(prefix, Path::from("p/q"));
    }

    /// Puts, gets, lists, overwrites and uploads in parts through `store` under `prefix`.
    async fn check_store_round_trip(store: Arc<dyn ObjectStore>, prefix: Path) {
        let first = prefix.clone().join("a").join("one.dump");
        let second = prefix.clone().join("a").join("two.dump");
        let outside = Path::from("elsewhere/three.dump");
        store
            .put(&first, PutPayload::from_static(b"first"))
            .await
            .unwrap();
        store
            .put(&second, PutPayload::from_static(b"second"))
            .await
            .unwrap();
        store
            .put(&outside, PutPayload::from_static(b"x"))
            .await
            .unwrap();

        let body = store.get(&first).await.unwrap().bytes().await.unwrap();
        assert_eq!(body.as_ref(), b"first");

        let mut listed: Vec<Path> = store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .unwrap();
        listed.sort();
        if prefix.as_ref().is_empty() {
            assert!(
                listed.contains(&first) && listed.contains(&second),
                "{listed:?}"
            );
        } else {
            assert_eq!(listed, vec![first.clone(), second.clone()]);
        }

        // Writing the same key again replaces it: a retried upload is harmless.
        store
            .put(&first, PutPayload::from_static(b"first"))
            .await
            .unwrap();
        store
            .put(&first, PutPayload::from_static(b"rewritten"))
            .await
            .unwrap();
        let body = store.get(&first).await.unwrap().bytes().await.unwrap();
        assert_eq!(body.as_ref(), b"rewritten");
        let create = store
            .put_opts(
                &first,
                PutPayload::from_static(b"again"),
                PutMode::Create.into(),
            )
            .await;
        assert!(
            matches!(create, Err(object_store::Error::AlreadyExists { .. })),
            "{create:?}"
        );

        // A few MB in parts, as an upload of a large dump goes.
        let large = prefix.clone().join("large.dump");
        let content: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
        let upload = store.put_multipart(&large).await.unwrap();
        let mut writer = WriteMultipart::new_with_chunk_size(upload, 1024 * 1024);
        for piece in content.chunks(300_000) {
            writer.write(piece);
        }
        writer.finish().await.unwrap();
        let body = store.get(&large).await.unwrap().bytes().await.unwrap();
        assert_eq!(body.len(), content.len());
        assert!(body.as_ref() == content.as_slice());

        store.delete(&second).await.unwrap();
        assert!(matches!(
            store.get(&second).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn test_open_object_store_memory_round_trip() {
        let (store, prefix) =
            open_object_store("memory://tenant-data", &S3Options::default()).unwrap();
        assert_eq!(prefix, Path::from("tenant-data"));
        check_store_round_trip(store, prefix).await;
    }

    #[tokio::test]
    async fn test_open_object_store_local_directory_round_trip() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("created/on/open");
        let (store, prefix) =
            open_object_store(root.to_str().unwrap(), &S3Options::default()).unwrap();
        assert!(root.is_dir());
        check_store_round_trip(store, prefix.clone()).await;
        assert!(root.join("a/one.dump").is_file());

        let url = format!("file://{}", temp.path().join("by-url").display());
        let (store, _) = open_object_store(&url, &S3Options::default()).unwrap();
        store
            .put(&Path::from("k"), PutPayload::from_static(b"v"))
            .await
            .unwrap();
        assert!(temp.path().join("by-url/k").is_file());
    }
}
