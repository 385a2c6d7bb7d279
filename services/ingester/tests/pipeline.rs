//! The distributed pipeline end to end, on real servers: a gateway (in this process, on a
//! loopback port) and ingester processes (this package's binary) against the PostgreSQL
//! catalog, the S3-compatible object store and the Cassandra store that scripts/test.sh
//! starts. Each test uses its own tenant, object prefix and keyspace rows, so tests share the
//! servers without seeing each other's dumps. The helpers live in `common/mod.rs`, shared with
//! `bad_input.rs`, `faults.rs` and `retention.rs`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    IngesterProcess, Servers, assert_catalog_counts_stored_objects, assert_nothing_registered,
    assert_stored_equals_local_parse, fixture_dumps, metadata_for, raw_upload, sha256_hex,
    start_gateway, unique, wait_ready,
};
use heapfleet_catalog::DumpId;
use heapfleet_gateway::{Limits, client};
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_service::backends::open_store;
use heapfleet_tests::{fixture, generated_dir, generated_dump, tool_available};

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
    assert_catalog_counts_stored_objects(&store, &id, record.objects).await;
    store.delete_dump(id.as_str()).await.unwrap();
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
