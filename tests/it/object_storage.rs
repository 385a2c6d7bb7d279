//! Object storage on a real S3-compatible server (s3s-fs, which checks SigV4 like S3), opened
//! through `open_object_store("s3://bucket/prefix", ..)` as the services will: put, get, list,
//! multipart upload, overwrite and create-only puts, delete, and the dump key layout.
//!
//! scripts/test.sh starts the server and sets `HEAPFLEET_TEST_S3_ENDPOINT`, `_BUCKET`,
//! `_ACCESS_KEY` and `_SECRET_KEY`. Without them the tests skip with a note, or fail under
//! `HEAPFLEET_REQUIRE_SERVICES=1`. Each test works under a prefix of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::TryStreamExt;
use heapfleet_objects::object_store::path::Path;
use heapfleet_objects::object_store::{
    self, ObjectStore, ObjectStoreExt, PutMode, PutPayload, WriteMultipart,
};
use heapfleet_objects::{DumpCompression, DumpKey, S3Options, open_object_store};
use heapfleet_tests::service_url;

/// S3's smallest part size (every part but the last).
const PART_BYTES: usize = 5 * 1024 * 1024;

/// Opens the test bucket under a fresh prefix, or `None` when no server is configured.
fn open_test_bucket(purpose: &str) -> Option<(Arc<dyn ObjectStore>, Path)> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let endpoint = service_url("HEAPFLEET_TEST_S3_ENDPOINT")?;
    let bucket = service_url("HEAPFLEET_TEST_S3_BUCKET")?;
    let options = S3Options {
        endpoint: Some(endpoint.clone()),
        access_key_id: service_url("HEAPFLEET_TEST_S3_ACCESS_KEY"),
        secret_access_key: service_url("HEAPFLEET_TEST_S3_SECRET_KEY"),
        allow_http: endpoint.starts_with("http://"),
        ..S3Options::default()
    };
    let run = format!(
        "it-{}-{}-{purpose}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    );
    let (store, prefix) =
        open_object_store(&format!("s3://{bucket}/heapfleet-tests/{run}"), &options)
            .expect("the test bucket URL is valid");
    assert_eq!(prefix.as_ref(), format!("heapfleet-tests/{run}"));
    Some((store, prefix))
}

async fn read_all(store: &Arc<dyn ObjectStore>, path: &Path) -> Vec<u8> {
    store
        .get(path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn list_sorted(store: &Arc<dyn ObjectStore>, prefix: &Path) -> Vec<(Path, u64)> {
    let mut listed: Vec<(Path, u64)> = store
        .list(Some(prefix))
        .map_ok(|meta| (meta.location, meta.size))
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    listed
}

#[tokio::test]
async fn test_s3_put_get_list_delete() {
    let Some((store, prefix)) = open_test_bucket("basic") else {
        return;
    };
    let first = prefix.clone().join("a").join("one.dump");
    let second = prefix.clone().join("a").join("two.dump");
    store
        .put(&first, PutPayload::from_static(b"first"))
        .await
        .unwrap();
    store
        .put(&second, PutPayload::from_static(b"second!"))
        .await
        .unwrap();

    assert_eq!(read_all(&store, &first).await, b"first");
    assert_eq!(store.head(&second).await.unwrap().size, 7);
    assert_eq!(
        list_sorted(&store, &prefix).await,
        vec![(first.clone(), 5), (second.clone(), 7)]
    );

    store.delete(&first).await.unwrap();
    assert!(matches!(
        store.get(&first).await,
        Err(object_store::Error::NotFound { .. })
    ));
    assert_eq!(list_sorted(&store, &prefix).await, vec![(second, 7)]);
}

#[tokio::test]
async fn test_s3_multipart_upload_of_12_mb_in_5_mb_parts() {
    let Some((store, prefix)) = open_test_bucket("multipart") else {
        return;
    };
    let path = prefix.join("large.dump.gz");
    let content: Vec<u8> = (0..12 * 1024 * 1024 + 123)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let upload = store.put_multipart(&path).await.unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    // Writes of an odd size, as a streaming upload does; the writer cuts 5 MB parts.
    for piece in content.chunks(777_777) {
        writer.write(piece);
    }
    writer.finish().await.unwrap();

    assert_eq!(store.head(&path).await.unwrap().size, content.len() as u64);
    let stored = read_all(&store, &path).await;
    assert!(
        stored == content,
        "the stored object differs from what was uploaded"
    );
}

#[tokio::test]
async fn test_s3_overwrite_replaces_and_create_only_put_refuses() {
    let Some((store, prefix)) = open_test_bucket("overwrite") else {
        return;
    };
    let path = prefix.clone().join("dump.dump");
    // A retried upload writes the same key again: it replaces the object.
    for body in [&b"v1"[..], b"v1", b"version two"] {
        store
            .put(&path, PutPayload::from(body.to_vec()))
            .await
            .unwrap();
    }
    assert_eq!(read_all(&store, &path).await, b"version two");

    let create = store
        .put_opts(
            &path,
            PutPayload::from_static(b"v3"),
            PutMode::Create.into(),
        )
        .await;
    assert!(
        matches!(create, Err(object_store::Error::AlreadyExists { .. })),
        "{create:?}"
    );
    assert_eq!(read_all(&store, &path).await, b"version two");

    let fresh = prefix.join("fresh.dump");
    store
        .put_opts(
            &fresh,
            PutPayload::from_static(b"new"),
            PutMode::Create.into(),
        )
        .await
        .unwrap();
    assert_eq!(read_all(&store, &fresh).await, b"new");
}

#[tokio::test]
async fn test_s3_dump_keys_list_by_tenant() {
    let Some((store, prefix)) = open_test_bucket("layout") else {
        return;
    };
    let key = |tenant, pid| DumpKey {
        tenant,
        host: "web-1",
        pid,
        instance: "boot-1",
        dump_id: "d-0001",
        compression: DumpCompression::Gzip,
    };
    for (tenant, pid) in [("acme", 10), ("acme", 11), ("acme-corp", 10)] {
        let path = key(tenant, pid).path(&prefix).unwrap();
        store
            .put(&path, PutPayload::from_static(b"dump"))
            .await
            .unwrap();
    }
    let acme = heapfleet_objects::dumps_prefix(&prefix, "acme").unwrap();
    let listed: Vec<String> = list_sorted(&store, &acme)
        .await
        .into_iter()
        .map(|(path, _)| path.as_ref().to_owned())
        .collect();
    assert_eq!(
        listed,
        vec![
            format!("{prefix}/dumps/acme/web-1/10-boot-1/d-0001.dump.gz"),
            format!("{prefix}/dumps/acme/web-1/11-boot-1/d-0001.dump.gz"),
        ]
    );
}

#[tokio::test]
async fn test_s3_wrong_secret_is_refused() {
    let Some(endpoint) = service_url("HEAPFLEET_TEST_S3_ENDPOINT") else {
        return;
    };
    let Some(bucket) = service_url("HEAPFLEET_TEST_S3_BUCKET") else {
        return;
    };
    let options = S3Options {
        endpoint: Some(endpoint.clone()),
        access_key_id: service_url("HEAPFLEET_TEST_S3_ACCESS_KEY"),
        secret_access_key: Some("not-the-secret".to_owned()),
        allow_http: endpoint.starts_with("http://"),
        ..S3Options::default()
    };
    let (store, prefix) = open_object_store(&format!("s3://{bucket}/denied"), &options).unwrap();
    let put = store
        .put(&prefix.join("x"), PutPayload::from_static(b"x"))
        .await;
    assert!(put.is_err(), "a bad signature must be refused: {put:?}");
}
