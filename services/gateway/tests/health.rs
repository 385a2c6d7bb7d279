//! The gateway's grpc.health.v1 and reflection, through the real tonic clients: SERVING once
//! its catalog and object store answer, never SERVING while its object store refuses
//! connections or accepts them and never answers (through the probe's timeout and into the next
//! probe),
//! and reflection lists the ingest and health services.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use heapfleet_gateway::{Gateway, INGEST_SERVICE_NAME, Limits};
use heapfleet_objects::S3Options;
use heapfleet_service::backends::{Objects, open_catalog};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// A gateway served in this process until dropped.
struct Served {
    address: SocketAddr,
    stop: CancellationToken,
    _dirs: Vec<tempfile::TempDir>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Served {
    fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// Serves a gateway with an embedded catalog in a temp dir and the object store `objects_url`
/// (a temp dir when `None`).
async fn serve_gateway(objects_url: Option<&str>, s3: &S3Options) -> Served {
    let catalog_dir = tempfile::tempdir().unwrap();
    let objects_dir = tempfile::tempdir().unwrap();
    let catalog = open_catalog(catalog_dir.path().to_str().unwrap())
        .await
        .unwrap();
    let objects_url = objects_url.unwrap_or_else(|| objects_dir.path().to_str().unwrap());
    let objects = Objects::open(objects_url, s3).unwrap();
    let gateway = Gateway::new("default", catalog, objects, Limits::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        heapfleet_gateway::serve(gateway, listener, async move {
            shutdown.cancelled().await;
        })
        .await
        .unwrap();
    });
    Served {
        address,
        stop,
        _dirs: vec![catalog_dir, objects_dir],
    }
}

/// The status `service` reports, or the gRPC code when the check itself fails (an unknown
/// service is NOT_FOUND).
async fn check(client: &mut HealthClient<tonic::transport::Channel>, service: &str) -> String {
    match client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
    {
        Ok(response) => match ServingStatus::try_from(response.into_inner().status) {
            Ok(status) => status.as_str_name().to_owned(),
            Err(_) => "INVALID".to_owned(),
        },
        Err(status) => format!("error {:?}", status.code()),
    }
}

async fn channel(url: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn health_client(url: &str) -> HealthClient<tonic::transport::Channel> {
    HealthClient::new(channel(url).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_health_serving_once_backends_answer() {
    let served = serve_gateway(None, &S3Options::default()).await;
    let mut client = health_client(&served.url()).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        let overall = check(&mut client, "").await;
        let ingest = check(&mut client, INGEST_SERVICE_NAME).await;
        if overall == "SERVING" && ingest == "SERVING" {
            break;
        }
        seen.push((overall, ingest));
        assert!(
            Instant::now() < deadline,
            "not SERVING within 5 s; statuses seen (overall, ingest): {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A service the gateway does not serve is unknown, not SERVING.
    assert_eq!(
        check(&mut client, "heapfleet.query.v1.QueryService").await,
        "error NotFound"
    );
}

/// S3 options for an endpoint on this machine.
fn s3_at(endpoint: String) -> S3Options {
    S3Options {
        endpoint: Some(endpoint),
        region: Some("us-east-1".to_owned()),
        access_key_id: Some("heapfleet-test".to_owned()),
        secret_access_key: Some("heapfleet-test-secret".to_owned()),
        session_token: None,
        allow_http: true,
        retry_timeout: None,
    }
}

/// An address that accepts connections and never answers on them: a hung backend, which
/// only the probe's timeout can call down.
async fn silent_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_health_never_serving_while_objects_unreachable() {
    // One object store refuses connections, the other accepts them and never answers.
    let refusing =
        serve_gateway(Some("s3://bucket"), &s3_at("http://127.0.0.1:1".to_owned())).await;
    let hung = serve_gateway(Some("s3://bucket"), &s3_at(silent_endpoint().await)).await;
    let mut clients = [
        ("refusing", health_client(&refusing.url()).await),
        ("hung", health_client(&hung.url()).await),
    ];
    // Long enough for the first probe to time out and the next one to start.
    let watch = heapfleet_service::health::PROBE_TIMEOUT
        + heapfleet_service::health::PROBE_INTERVAL
        + Duration::from_secs(1);
    let deadline = Instant::now() + watch;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        for (name, client) in &mut clients {
            let overall = check(client, "").await;
            let ingest = check(client, INGEST_SERVICE_NAME).await;
            seen.push((*name, overall, ingest));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.len() > 20, "too few checks: {seen:?}");
    let serving: Vec<_> = seen
        .iter()
        .filter(|(_, overall, ingest)| overall == "SERVING" || ingest == "SERVING")
        .collect();
    assert!(
        serving.is_empty(),
        "SERVING while the object store refuses connections or never answers; {} of {} checks \
         (store, overall, ingest), first: {:?}, last: {:?}",
        serving.len(),
        seen.len(),
        serving.first(),
        serving.last()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reflection_lists_ingest_and_health_services() {
    let served = serve_gateway(None, &S3Options::default()).await;
    let mut client = ServerReflectionClient::new(channel(&served.url()).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    assert!(
        names.iter().any(|name| name == INGEST_SERVICE_NAME),
        "{names:?}"
    );
    assert!(
        names.iter().any(|name| name == "grpc.health.v1.Health"),
        "{names:?}"
    );
    assert_eq!(INGEST_SERVICE_NAME, "heapfleet.ingest.v1.IngestService");
}
