//! Bad input through the whole distributed pipeline, on the real servers pipeline.rs uses
//! (PostgreSQL, the S3-compatible server, Cassandra): a gateway in this process and an ingester
//! process. The corpus is generated here, at test time (a 3 MB line and a gzip bomb are not
//! committed): invalid JSON lines, NUL bytes, 3 MB lines, truncated and corrupt gzip, gzip bombs,
//! binary, empty and whitespace-only files, misnamed files, oversize uploads and path-traversal
//! names and labels. Every input ends one exact way: refused at upload with its gRPC code,
//! `failed` with a reason naming the problem, or `ready` with its exact object and bad-line
//! counts. Afterwards both services still take a good dump to `ready` and report SERVING.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    IngesterProcess, RunningGateway, Servers, assert_nothing_registered, fixture_dumps,
    metadata_for, raw_upload, sha256_hex, start_gateway, unique,
};
use flate2::Compression;
use flate2::write::GzEncoder;
use heapfleet_gateway::{INGEST_SERVICE_NAME, Limits, client};
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_service::backends::open_store;
use heapfleet_tests::fixture;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The ingester's decompressed-size limit in these tests: far above every real input of the
/// corpus (the largest decompresses to about 6.1 MB), far below the bombs (1 GiB each).
const MAX_DECOMPRESSED_BYTES: u64 = 16 << 20;

/// How a dump of the corpus must end.
#[derive(Debug)]
enum Expected {
    /// Ingested, with exactly these counts.
    Ready { objects: u64, bad_lines: u64 },
    /// Failed after `attempts` attempts, with a reason holding every one of `reason`.
    Failed {
        reason: &'static [&'static str],
        attempts: u32,
    },
}

/// One input of the corpus, uploaded as `file_name` with `encoding` whatever its bytes are.
struct Case {
    file_name: &'static str,
    encoding: pb::ContentEncoding,
    labels: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    expected: Expected,
}

impl Case {
    fn new(file_name: &'static str, body: Vec<u8>, expected: Expected) -> Case {
        let encoding = if heapfleet_dump::is_gzip(&body) {
            pb::ContentEncoding::Gzip
        } else {
            pb::ContentEncoding::Plain
        };
        Case {
            file_name,
            encoding,
            labels: vec![("version", "1.0")],
            body,
            expected,
        }
    }
}

/// One valid object line; `index` makes its address unique.
fn object_line(index: u64) -> String {
    format!(
        "{{\"address\":\"0x7f00{index:08x}\", \"type\":\"STRING\", \"bytesize\":5, \
         \"value\":\"hello\", \"file\":\"app/models/user.rb\", \"line\":12, \"generation\":3, \
         \"memsize\":40}}\n"
    )
}

/// The objects of [`mixed_dump`] that are not counted as bad lines.
const MIXED_GOOD_OBJECTS: u64 = 2000;

/// A valid dump with bad lines among its good ones: a GC root, [`MIXED_GOOD_OBJECTS`] good
/// objects, and 8 bad lines: a line cut inside its JSON, plain text, a non-hex address, an
/// object without an address, a blank line, a JSON array, 3 MB of garbage (all skipped), and an
/// object with a raw NUL byte in its value (repaired and used). Besides, one valid 3 MB STRING
/// line, which is no bad line. Objects: 2,002; bad lines: 8.
fn mixed_dump() -> Vec<u8> {
    let mut dump = Vec::new();
    dump.extend_from_slice(
        b"{\"type\":\"ROOT\", \"root\":\"vm\", \"references\":[\"0x7f0000000001\"]}\n",
    );
    // Each after the good object of the same position.
    let bad_lines: [(u64, &[u8]); 6] = [
        (150, b"{\"address\":\"0x7f0300000001\", \"type\":\"STRI\n"),
        (450, b"this is not JSON\n"),
        (
            750,
            b"{\"address\":\"0xZZ\", \"type\":\"STRING\", \"memsize\":40}\n",
        ),
        (1050, b"{\"type\":\"STRING\", \"memsize\":40}\n"),
        (1350, b"\n"),
        (1650, b"[1, 2, 3]\n"),
    ];
    for index in 0..MIXED_GOOD_OBJECTS {
        dump.extend_from_slice(object_line(index).as_bytes());
        if let Some((_, line)) = bad_lines.iter().find(|(after, _)| *after == index) {
            dump.extend_from_slice(line);
        }
        if index == 1000 {
            dump.extend_from_slice(
                b"{\"address\":\"0x7f0200000000\", \"type\":\"STRING\", \"bytesize\":3, \
                  \"value\":\"a\0b\", \"memsize\":40}\n",
            );
            dump.extend_from_slice(&vec![b'z'; 3_000_000]);
            dump.push(b'\n');
        }
        if index == 1500 {
            dump.extend_from_slice(
                b"{\"address\":\"0x7f0200000001\", \"type\":\"STRING\", \"bytesize\":3000000, \
                  \"value\":\"",
            );
            dump.extend_from_slice(&vec![b'a'; 3_000_000]);
            dump.extend_from_slice(b"\", \"memsize\":3000041}\n");
        }
    }
    dump
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// About 1 GiB once decompressed, about a thousandth of that compressed: 1,024 gzip members
/// of 1 MiB of `unit` repeated. Building it costs one member's compression.
fn gzip_bomb(unit: &[u8]) -> Vec<u8> {
    let member: Vec<u8> = unit.iter().copied().cycle().take(1 << 20).collect();
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(&member).unwrap();
    encoder.finish().unwrap().repeat(1024)
}

/// Pseudo-random bytes (xorshift), the same on every run, not starting with the gzip magic.
fn binary(length: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes: Vec<u8> = (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    bytes[0] = 0x42;
    bytes
}

/// Every input that passes the gateway, with how it must end.
fn corpus() -> Vec<Case> {
    let mixed = mixed_dump();
    let mixed_gzip = gzip(&mixed);
    let mixed_counts = || Expected::Ready {
        objects: MIXED_GOOD_OBJECTS + 2,
        bad_lines: 8,
    };
    // A wrong CRC-32 in the trailer: every line decodes, then the stream proves corrupt.
    let mut corrupt_gzip = mixed_gzip.clone();
    let crc = corrupt_gzip.len() - 8;
    corrupt_gzip[crc] ^= 0xff;
    let read_fixture = |name: &str| std::fs::read(fixture(&format!("dumps/bad/{name}"))).unwrap();
    let bomb_reason: &'static [&'static str] = &[
        "exceeds the limit of 16777216 bytes",
        "max_decompressed_bytes",
    ];
    let no_objects = |reason: &'static [&'static str]| Expected::Failed {
        reason,
        attempts: 1,
    };

    let mut cases = vec![
        Case::new("mixed.dump", mixed.clone(), mixed_counts()),
        Case::new("mixed.dump.gz", mixed_gzip.clone(), mixed_counts()),
        // The committed bad dumps (tests/fixtures/dumps/bad/EXPECTED.md): 18 objects (13 good,
        // 5 repaired) and 7 bad lines; cut tails keep the lines before the cut (4 of them GC
        // roots, not objects).
        Case::new(
            "invalid-lines.dump",
            read_fixture("invalid-lines.dump"),
            Expected::Ready {
                objects: 18,
                bad_lines: 7,
            },
        ),
        Case::new(
            "truncated.dump",
            read_fixture("truncated.dump"),
            Expected::Ready {
                objects: 25,
                bad_lines: 1,
            },
        ),
        Case::new(
            "truncated.dump.gz",
            read_fixture("truncated.dump.gz"),
            Expected::Ready {
                objects: 64,
                bad_lines: 1,
            },
        ),
        Case::new(
            "binary.dump",
            read_fixture("binary.dump"),
            no_objects(&["no heap objects found in 14 lines (14 bad; first: line 1:"]),
        ),
        Case::new(
            "random.dump",
            binary(1 << 20),
            no_objects(&["no heap objects found in 3965 lines (3965 bad; first: line 1:"]),
        ),
        Case::new(
            "blank.dump",
            b"\n\n   \n\t\n".to_vec(),
            no_objects(&["no heap objects found in 4 lines (4 bad; first: line 1: blank line)"]),
        ),
        Case::new(
            "not-a-dump.json",
            b"{\"hello\":\"world\"}\n".to_vec(),
            no_objects(&[
                "no heap objects found in 1 lines (1 bad; first: line 1: object line has no address)",
            ]),
        ),
        // Gzip of nothing: a valid, empty stream.
        Case::new(
            "empty.dump.gz",
            gzip(b""),
            no_objects(&["no heap objects found in 0 lines (0 bad)"]),
        ),
        // Cut right after the gzip header: nothing decodes.
        Case::new(
            "header-only.dump.gz",
            gzip(b"")[..10].to_vec(),
            no_objects(&["no heap objects found in 0 lines (0 bad)"]),
        ),
        // Corrupt gzip: no retry reads it differently, so one attempt.
        Case::new(
            "corrupt.dump.gz",
            corrupt_gzip,
            Expected::Failed {
                reason: &["the gzip stream is corrupt after", "checksum"],
                attempts: 1,
            },
        ),
        // The gzip magic, then an unknown compression method.
        Case::new(
            "bad-header.dump.gz",
            b"\x1f\x8b\x07\0\0\0\0\0\0\xffnot deflate".to_vec(),
            Expected::Failed {
                reason: &["the gzip stream is corrupt after 0 decompressed bytes"],
                attempts: 1,
            },
        ),
        // Bombs: valid dump lines, and NUL bytes without a newline; each stops at the limit.
        Case::new(
            "bomb.dump.gz",
            gzip_bomb(object_line(1).as_bytes()),
            Expected::Failed {
                reason: bomb_reason,
                attempts: 1,
            },
        ),
        Case::new(
            "zeros.dump.gz",
            gzip_bomb(&[0]),
            Expected::Failed {
                reason: bomb_reason,
                attempts: 1,
            },
        ),
    ];
    // Misnamed: the content decides, never the name or the announced encoding.
    cases.push(Case {
        file_name: "plain-named.dump.gz",
        encoding: pb::ContentEncoding::Gzip,
        ..Case::new("", mixed, mixed_counts())
    });
    cases.push(Case {
        file_name: "gzip-named.dump",
        encoding: pb::ContentEncoding::Plain,
        ..Case::new("", mixed_gzip, mixed_counts())
    });
    // Labels are data, never paths: traversal in them is stored as written and harmless.
    cases.push(Case {
        labels: vec![("../../etc/passwd", "../../../root/.ssh"), ("dir", "/etc")],
        ..Case::new(
            "labels.dump",
            read_fixture("invalid-lines.dump"),
            Expected::Ready {
                objects: 18,
                bad_lines: 7,
            },
        )
    });
    cases
}

/// Metadata for `body` from a process of its own (`pid`), so equal bytes make distinct dumps.
fn metadata_of(body: &[u8], file_name: &str, pid: u32) -> pb::DumpMetadata {
    pb::DumpMetadata {
        size_bytes: body.len() as u64,
        sha256: sha256_hex(body),
        file_name: file_name.to_owned(),
        pid,
        ..metadata_for(Path::new(file_name), "web-bad")
    }
}

/// Polls the gateway until every dump in `ids` is `ready` or `failed`; fails at `timeout`.
async fn wait_settled(
    gateway: &RunningGateway,
    ids: &[String],
    timeout: Duration,
    logs: &dyn Fn() -> String,
) -> Vec<pb::Dump> {
    let mut client = client::connect(&gateway.url).await.unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        let mut dumps = Vec::new();
        for id in ids {
            let dump = client
                .get_dump(pb::GetDumpRequest {
                    dump_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            dumps.push(dump);
        }
        let pending: Vec<(&str, &str)> = dumps
            .iter()
            .filter(|dump| {
                dump.state != pb::DumpState::Ready as i32
                    && dump.state != pb::DumpState::Failed as i32
            })
            .map(|dump| (dump.file_name.as_str(), dump.state().as_str_name()))
            .collect();
        if pending.is_empty() {
            return dumps;
        }
        assert!(
            Instant::now() < deadline,
            "not settled after {timeout:?}: {pending:?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `url`'s overall health (and each of `services`) until SERVING; fails at `timeout`.
async fn assert_serving(url: &str, services: &[&str], timeout: Duration) {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let deadline = Instant::now() + timeout;
    for service in std::iter::once(&"").chain(services) {
        loop {
            let status = health
                .check(HealthCheckRequest {
                    service: (*service).to_owned(),
                })
                .await
                .map(|response| response.into_inner().status);
            if status
                .as_ref()
                .is_ok_and(|status| *status == ServingStatus::Serving as i32)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url} health {service:?} is {status:?}, not SERVING, after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_bad_dumps_end_failed_or_ready_with_their_counts_and_services_keep_serving() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let tenant = unique("badinput");
    let gateway = start_gateway(&servers, &tenant, Limits::default()).await;
    let limit = MAX_DECOMPRESSED_BYTES.to_string();
    let mut ingester = IngesterProcess::start_with(
        &servers,
        &gateway,
        &tenant,
        "a",
        &[("HEAPFLEET_MAX_DECOMPRESSED_BYTES", limit.as_str())],
    );
    let logs = || ingester.log();

    let cases = corpus();
    let mut ids = Vec::new();
    for (pid, case) in (100..).zip(&cases) {
        let metadata = pb::DumpMetadata {
            content_encoding: case.encoding as i32,
            labels: case
                .labels
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            ..metadata_of(&case.body, case.file_name, pid)
        };
        let response = raw_upload(&gateway.url, metadata, case.body.clone())
            .await
            .unwrap_or_else(|status| panic!("{} was refused: {status:?}", case.file_name));
        assert!(response.created, "{} is new", case.file_name);
        ids.push(response.dump.unwrap().dump_id);
    }

    let dumps = wait_settled(&gateway, &ids, Duration::from_secs(180), &logs).await;
    let mut wrong = Vec::new();
    for (case, dump) in cases.iter().zip(&dumps) {
        let outcome = match &case.expected {
            Expected::Ready { objects, bad_lines } => {
                dump.state == pb::DumpState::Ready as i32
                    && dump.objects == *objects
                    && dump.bad_lines == *bad_lines
                    && dump.attempts == 1
            }
            Expected::Failed { reason, attempts } => {
                dump.state == pb::DumpState::Failed as i32
                    && reason.iter().all(|part| dump.failure_reason.contains(part))
                    && dump.attempts == *attempts
            }
        };
        if !outcome {
            wrong.push(format!(
                "{}: expected {:?}, got {} after {} attempt(s), {} objects, {} bad lines, reason {:?}",
                case.file_name,
                case.expected,
                dump.state().as_str_name(),
                dump.attempts,
                dump.objects,
                dump.bad_lines,
                dump.failure_reason
            ));
        }
    }
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), logs());

    // The traversal labels are kept as written, and the file sits under the tenant's dumps.
    let labelled = dumps.last().unwrap();
    assert_eq!(
        labelled.labels.get("../../etc/passwd").map(String::as_str),
        Some("../../../root/.ssh")
    );
    let record = gateway
        .catalog
        .get_dump(&labelled.dump_id.parse().unwrap())
        .await
        .unwrap();
    let tenant_prefix = heapfleet_objects::dumps_prefix(&gateway.objects.prefix, &tenant).unwrap();
    let key = record.object_key.unwrap();
    assert!(
        key.starts_with(&format!("{tenant_prefix}/")) && !key.contains(".."),
        "{key} is not under {tenant_prefix}/"
    );

    // Both services came through: a good dump still goes to ready, health is SERVING and the
    // ingester process is alive.
    let good = fixture_dumps().pop().unwrap();
    let mut client = client::connect(&gateway.url).await.unwrap();
    let response = client::upload_file(&mut client, &good, metadata_for(&good, "web-good"), None)
        .await
        .unwrap();
    let good_id = response.dump.unwrap().dump_id;
    let settled = wait_settled(
        &gateway,
        std::slice::from_ref(&good_id),
        Duration::from_secs(60),
        &logs,
    )
    .await;
    assert_eq!(
        settled[0].state(),
        pb::DumpState::Ready,
        "{:?}\n{}",
        settled[0].failure_reason,
        logs()
    );
    assert!(settled[0].objects > 0);
    assert_serving(
        &gateway.url,
        &[INGEST_SERVICE_NAME],
        Duration::from_secs(10),
    )
    .await;
    let ingester_health = ingester.health_url(Duration::from_secs(10)).await;
    assert_serving(&ingester_health, &[], Duration::from_secs(10)).await;
    let exited = ingester.child.try_wait().unwrap();
    assert!(
        exited.is_none(),
        "the ingester exited: {exited:?}\n{}",
        ingester.log()
    );

    // Dumps stored in the shared Cassandra keyspace are removed, whatever their state.
    let store = open_store(&servers.store_url()).await.unwrap();
    for id in ids.iter().chain([&good_id]) {
        store.delete_dump(id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_bad_uploads_are_refused_with_their_code_and_leave_nothing_behind() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let tenant = unique("refusebad");
    let limits = Limits {
        max_dump_bytes: 1 << 20,
        ..Limits::default()
    };
    let gateway = start_gateway(&servers, &tenant, limits.clone()).await;
    let body = object_line(1).repeat(100).into_bytes();
    let good = metadata_of(&body, "heap-1-1700000000-1.dump", 1);
    let with = |change: &dyn Fn(&mut pb::DumpMetadata)| {
        let mut metadata = good.clone();
        change(&mut metadata);
        metadata
    };
    let empty = Vec::new();
    let oversize = vec![b'{'; (1 << 20) + 1];
    let cases: Vec<(&str, pb::DumpMetadata, &[u8], tonic::Code, &str)> = vec![
        (
            "an empty file",
            metadata_of(&empty, "empty.dump", 1),
            &empty,
            tonic::Code::InvalidArgument,
            "size_bytes is 0",
        ),
        (
            "an upload over limits.max_dump_bytes",
            metadata_of(&oversize, "big.dump", 1),
            &oversize,
            tonic::Code::ResourceExhausted,
            "limits.max_dump_bytes",
        ),
        (
            "more bytes than announced (an oversize upload that lies)",
            with(&|metadata| metadata.size_bytes = 100),
            &body,
            tonic::Code::InvalidArgument,
            "more than the 100 bytes",
        ),
        (
            "a file name that climbs out",
            with(&|metadata| metadata.file_name = "..".to_owned()),
            &body,
            tonic::Code::InvalidArgument,
            "bare file name",
        ),
        (
            "a file name with a Windows path",
            with(&|metadata| metadata.file_name = r"..\..\heap.dump".to_owned()),
            &body,
            tonic::Code::InvalidArgument,
            "bare file name",
        ),
        (
            "a host that climbs out of the tenant's dumps",
            with(&|metadata| metadata.host = "../../other-tenant".to_owned()),
            &body,
            tonic::Code::InvalidArgument,
            "host",
        ),
        (
            "a host that is ..",
            with(&|metadata| metadata.host = "..".to_owned()),
            &body,
            tonic::Code::InvalidArgument,
            "host",
        ),
        (
            "an instance with a path",
            with(&|metadata| metadata.instance = "a/../../b".to_owned()),
            &body,
            tonic::Code::InvalidArgument,
            "instance",
        ),
        (
            "a label with a control character",
            with(&|metadata| {
                metadata
                    .labels
                    .insert("version".to_owned(), "1\n../x".to_owned());
            }),
            &body,
            tonic::Code::InvalidArgument,
            "control character",
        ),
        (
            "too many labels",
            with(&|metadata| {
                metadata.labels = (0..=limits.max_labels)
                    .map(|index| (format!("key{index}"), "value".to_owned()))
                    .collect();
            }),
            &body,
            tonic::Code::InvalidArgument,
            "labels given",
        ),
        (
            "a label over limits.max_label_bytes",
            with(&|metadata| {
                metadata
                    .labels
                    .insert("long".to_owned(), "x".repeat(limits.max_label_bytes + 1));
            }),
            &body,
            tonic::Code::InvalidArgument,
            "at most 256 are allowed",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, metadata, bytes, code, message) in cases {
        match raw_upload(&gateway.url, metadata, bytes.to_vec()).await {
            Ok(response) => wrong.push(format!("{what}: accepted as {response:?}")),
            Err(status) if status.code() == code && status.message().contains(message) => {}
            Err(status) => wrong.push(format!(
                "{what}: expected {code:?} with {message:?}, got {:?}: {}",
                status.code(),
                status.message()
            )),
        }
    }

    // RegisterDump: a key that climbs out of the tenant's dumps, and one that names nothing.
    let mut client = client::connect(&gateway.url).await.unwrap();
    let tenant_prefix = heapfleet_objects::dumps_prefix(&gateway.objects.prefix, &tenant).unwrap();
    for (what, object_key, code) in [
        (
            "a registered key with ..",
            format!("{tenant_prefix}/../other-tenant/web-1/1-/x.dump"),
            tonic::Code::InvalidArgument,
        ),
        (
            "a registered key that does not exist",
            format!("{tenant_prefix}/web-1/1-/missing.dump"),
            tonic::Code::NotFound,
        ),
    ] {
        let result = client
            .register_dump(pb::RegisterDumpRequest {
                metadata: Some(good.clone()),
                object_key,
            })
            .await;
        match result {
            Err(status) if status.code() == code => {}
            other => wrong.push(format!("{what}: expected {code:?}, got {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_nothing_registered(&gateway, &tenant).await;

    // The gateway still takes a good upload afterwards and reports SERVING.
    let accepted = raw_upload(&gateway.url, good, body).await.unwrap();
    assert!(accepted.created);
    assert_serving(
        &gateway.url,
        &[INGEST_SERVICE_NAME],
        Duration::from_secs(10),
    )
    .await;
}
