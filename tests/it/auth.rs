//! Tokens, roles, tenants and TLS through real servers: a gateway, an ingest worker and a query
//! service in this process, on embedded backends, behind the same middleware the binaries use.
//!
//! Two tenants share the servers. A call without a token, or with a token the server does not
//! know, is UNAUTHENTICATED; a token without the method's role is PERMISSION_DENIED; and
//! nothing of one tenant shows in the other's answers (another tenant's dump is NOT_FOUND).

use std::time::{Duration, Instant};

use heapfleet_gateway::{Gateway, Limits};
use heapfleet_ingester::{Ingester, WorkerSettings};
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_query::model::DumpQuery;
use heapfleet_query::{QUERY_SERVICE_NAME, Queries, QueryServer, RemoteQueries, StoreQueries};
use heapfleet_service::auth::{AuthFile, Authenticator, Role, TokenEntry, hash_token};
use heapfleet_service::backends::{Objects, open_catalog, open_store};
use heapfleet_service::stack::{ServingConfig, StackOptions, service_stack};
use heapfleet_service::tls::{ClientOptions, TlsFile};
use heapfleet_tests::fixture;
use tokio_util::sync::CancellationToken;

/// The servers of one test, stopped on drop.
struct Servers {
    gateway: String,
    query: String,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn token(tenant: &str, role: Role, secret: &str) -> TokenEntry {
    TokenEntry {
        tenant: tenant.to_owned(),
        role,
        sha256: hash_token(secret),
    }
}

/// Starts the gateway, one ingest worker and the query service with two tenants' tokens; over
/// TLS when `tls` names a certificate. URLs use `scheme://localhost`.
async fn start(tls: TlsFile) -> Servers {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let catalog = open_catalog(&data).await.unwrap();
    let store = open_store(&data).await.unwrap();
    let objects = Objects::open(
        dir.path().join("objects").to_str().unwrap(),
        &Default::default(),
    )
    .unwrap();
    let auth = AuthFile {
        tokens: vec![
            token("acme", Role::Upload, "acme-agent"),
            token("acme", Role::Read, "acme-reader"),
            token("globex", Role::Upload, "globex-agent"),
            token("globex", Role::Read, "globex-reader"),
            token("acme", Role::Admin, "acme-admin"),
            token("globex", Role::Admin, "globex-admin"),
        ],
    };
    let serving = ServingConfig {
        stack: StackOptions {
            timeout: None,
            max_concurrent_calls: 16,
            authenticator: Authenticator::from_file(&auth, "default").unwrap(),
        },
        tls,
    };
    let scheme = if serving.tls.cert.is_some() {
        "https"
    } else {
        "http"
    };
    let stop = CancellationToken::new();

    let gateway_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_url = format!(
        "{scheme}://localhost:{}",
        gateway_listener.local_addr().unwrap().port()
    );
    let gateway = Gateway::new(
        "default",
        catalog.clone(),
        objects.clone(),
        Limits::default(),
    )
    .with_store(store.clone());
    let (gateway_serving, gateway_stop) = (serving.clone(), stop.clone());
    tokio::spawn(async move {
        heapfleet_gateway::serve_with(gateway, gateway_listener, &gateway_serving, async move {
            gateway_stop.cancelled().await;
        })
        .await
        .unwrap();
    });

    let query_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let query_url = format!(
        "{scheme}://localhost:{}",
        query_listener.local_addr().unwrap().port()
    );
    let queries = StoreQueries::new("default", catalog.clone(), store.clone());
    let mut parts = heapfleet_service::server::server_parts(&[QUERY_SERVICE_NAME])
        .await
        .unwrap();
    parts.routes.add_service(service_stack(
        QueryServer::new(queries).into_server(),
        &serving.stack,
    ));
    let (routes, query_stop) = (parts.routes.routes(), stop.clone());
    tokio::spawn(async move {
        heapfleet_service::server::serve(query_listener, routes, &serving.tls, async move {
            query_stop.cancelled().await;
        })
        .await
        .unwrap();
    });

    let ingester = Ingester::new(
        catalog,
        store,
        objects,
        WorkerSettings {
            poll_interval: Duration::from_millis(50),
            ..WorkerSettings::default()
        },
    );
    tokio::spawn(ingester.run(stop.clone()));
    Servers {
        gateway: gateway_url,
        query: query_url,
        stop,
        _dir: dir,
    }
}

fn client(secret: Option<&str>, tls_ca: Option<&std::path::Path>) -> ClientOptions {
    ClientOptions {
        token: secret.map(str::to_owned),
        tls_ca: tls_ca.map(std::path::Path::to_path_buf),
    }
}

fn small_dump() -> std::path::PathBuf {
    fixture("dumps/small/heap-1795773583.dump")
}

fn other_dump() -> std::path::PathBuf {
    fixture("dumps/series/heap-10536-1795773583-100.dump.gz")
}

/// Uploads `path` as `host` with `options`; the gRPC code of a refusal.
async fn upload(
    url: &str,
    options: &ClientOptions,
    path: &std::path::Path,
    host: &str,
) -> Result<pb::UploadDumpResponse, String> {
    let mut ingest = heapfleet_gateway::client::connect_with(url, options)
        .await
        .map_err(|error| format!("{error:#}"))?;
    let metadata = pb::DumpMetadata {
        host: host.to_owned(),
        pid: 7,
        ..Default::default()
    };
    heapfleet_gateway::client::upload_file(&mut ingest, path, metadata, None)
        .await
        .map_err(|error| format!("{error:#}"))
}

/// Waits until the dump is ingested and its ownership pass has ended (a pass that runs holds
/// the dump against deletion), asking with `options`.
async fn wait_ready(url: &str, options: &ClientOptions, dump_id: &str) {
    let mut ingest = heapfleet_gateway::client::connect_with(url, options)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dump = ingest
            .get_dump(pb::GetDumpRequest {
                dump_id: dump_id.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_ne!(dump.ownership_state, "failed", "{dump:?}");
        if dump.state == pb::DumpState::Ready as i32
            && !matches!(dump.ownership_state.as_str(), "queued" | "running")
        {
            return;
        }
        assert_ne!(dump.state, pb::DumpState::Failed as i32, "{dump:?}");
        assert!(
            Instant::now() < deadline,
            "dump {dump_id} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_tokens_roles_and_tenants_are_enforced_on_every_server() {
    let servers = start(TlsFile::default()).await;
    let acme_agent = client(Some("acme-agent"), None);
    let globex_agent = client(Some("globex-agent"), None);

    // Who may upload.
    for (options, expected) in [
        (client(None, None), "Unauthenticated"),
        (client(Some("not-a-token"), None), "Unauthenticated"),
        (client(Some("acme-reader"), None), "PermissionDenied"),
    ] {
        let error = upload(&servers.gateway, &options, &small_dump(), "web-1")
            .await
            .unwrap_err();
        assert!(error.contains(expected), "{expected}: {error}");
    }
    let acme = upload(&servers.gateway, &acme_agent, &small_dump(), "acme-web")
        .await
        .unwrap()
        .dump
        .unwrap();
    let globex = upload(&servers.gateway, &globex_agent, &other_dump(), "globex-web")
        .await
        .unwrap()
        .dump
        .unwrap();
    assert_eq!(acme.tenant, "acme");
    assert_eq!(globex.tenant, "globex");
    wait_ready(&servers.gateway, &acme_agent, &acme.dump_id).await;
    wait_ready(&servers.gateway, &globex_agent, &globex.dump_id).await;

    // The gateway shows each tenant only its own dumps.
    let mut globex_ingest = heapfleet_gateway::client::connect_with(
        &servers.gateway,
        &client(Some("globex-reader"), None),
    )
    .await
    .unwrap();
    let status = globex_ingest
        .get_dump(pb::GetDumpRequest {
            dump_id: acme.dump_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    let listed = globex_ingest
        .list_dumps(pb::ListDumpsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .dumps;
    let listed: Vec<&str> = listed.iter().map(|dump| dump.dump_id.as_str()).collect();
    assert_eq!(listed, vec![globex.dump_id.as_str()]);

    // The query service too.
    let acme_queries =
        RemoteQueries::connect_with(&servers.query, &client(Some("acme-reader"), None))
            .await
            .unwrap();
    let dumps = acme_queries
        .list_dumps(&DumpQuery::default())
        .await
        .unwrap();
    let ids: Vec<String> = dumps.iter().map(|dump| dump.id.to_string()).collect();
    assert_eq!(ids, vec![acme.dump_id.clone()]);
    let processes = acme_queries
        .list_processes(&DumpQuery::default())
        .await
        .unwrap();
    assert!(
        processes
            .iter()
            .all(|process| process.process.host == "acme-web"),
        "{processes:?}"
    );
    assert!(acme_queries.dump_summary(&acme.dump_id).await.is_ok());
    let error = acme_queries
        .dump_summary(&globex.dump_id)
        .await
        .unwrap_err();
    assert!(
        matches!(error, heapfleet_query::QueryError::NotFound(_)),
        "{error}"
    );
    // An upload token may read (agents wait for their dumps); no token may not.
    let agent_queries = RemoteQueries::connect_with(&servers.query, &acme_agent)
        .await
        .unwrap();
    assert_eq!(
        agent_queries
            .list_dumps(&DumpQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let anonymous = RemoteQueries::connect_with(&servers.query, &client(None, None))
        .await
        .unwrap();
    let error = anonymous
        .list_dumps(&DumpQuery::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("Unauthenticated"), "{error}");

    // Deleting takes an admin token of the dump's own tenant.
    let delete = |secret: &'static str, dump_id: String| {
        let url = servers.gateway.clone();
        async move {
            let mut ingest =
                heapfleet_gateway::client::connect_with(&url, &client(Some(secret), None))
                    .await
                    .unwrap();
            ingest
                .delete_dump(pb::DeleteDumpRequest { dump_id })
                .await
                .map(|_| ())
                .map_err(|status| status.code())
        }
    };
    assert_eq!(
        delete("acme-agent", acme.dump_id.clone()).await,
        Err(tonic::Code::PermissionDenied)
    );
    assert_eq!(
        delete("globex-admin", acme.dump_id.clone()).await,
        Err(tonic::Code::NotFound)
    );
    assert_eq!(delete("acme-admin", acme.dump_id.clone()).await, Ok(()));
    assert!(
        acme_queries
            .list_dumps(&DumpQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        globex_ingest
            .list_dumps(pb::ListDumpsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .dumps
            .len(),
        1,
        "the other tenant's dump stays"
    );

    // Probes need no token.
    let channel = tonic::transport::Endpoint::from_shared(servers.query.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(health.is_ok(), "{health:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_servers_speak_tls_to_clients_that_trust_their_ca() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let servers = start(TlsFile {
        cert: Some(cert.clone()),
        key: Some(key),
    })
    .await;
    assert!(servers.gateway.starts_with("https://"));

    let trusted = client(Some("acme-agent"), Some(&cert));
    let uploaded = upload(&servers.gateway, &trusted, &small_dump(), "tls-web")
        .await
        .unwrap();
    assert_eq!(uploaded.dump.unwrap().tenant, "acme");
    let queries =
        RemoteQueries::connect_with(&servers.query, &client(Some("acme-reader"), Some(&cert)))
            .await
            .unwrap();
    assert_eq!(
        queries
            .list_dumps(&DumpQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );

    // Without the CA the certificate is not trusted; plain HTTP gets no gRPC answer.
    let untrusted = upload(
        &servers.gateway,
        &client(Some("acme-agent"), None),
        &small_dump(),
        "tls-web",
    )
    .await
    .unwrap_err();
    assert!(!untrusted.is_empty());
    let plain = servers.gateway.replace("https://", "http://");
    assert!(
        upload(
            &plain,
            &client(Some("acme-agent"), None),
            &small_dump(),
            "tls-web"
        )
        .await
        .is_err()
    );
}
