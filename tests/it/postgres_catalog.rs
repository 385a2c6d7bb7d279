//! `PostgresCatalog` against a real PostgreSQL server: the catalog conformance suite (job queue
//! and deletes included), dumps surviving a reconnect, a claim and a retention listing spanning
//! tenants, and the schema migrations (idempotent, applied once when services start together,
//! upgrading a database that holds dumps, refusing a newer schema). Also what a caller sees when
//! there is no server.
//!
//! The server comes from `HEAPFLEET_TEST_POSTGRES_URL`, which scripts/test.sh sets after starting
//! a throwaway cluster. Without it the server tests skip with a note, or fail under
//! `HEAPFLEET_REQUIRE_SERVICES=1`. The suite shares the database given (each run works in tenants
//! of its own); the migration tests each create a scratch database, so the URL's user needs the
//! CREATEDB privilege.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::join_all;
use std::time::Duration;

use heapfleet_catalog::testsuite::{
    check_claim_job_spans_tenants, check_list_dumps_taken_before_spans_tenants,
    run_catalog_test_suite, sample_dump, unique_tenant,
};
use heapfleet_catalog::{Catalog, CatalogError, DumpFilter, DumpStatus, PostgresCatalog};
use heapfleet_tests::service_url;
use tokio_postgres::NoTls;

const POSTGRES_URL_VARIABLE: &str = "HEAPFLEET_TEST_POSTGRES_URL";

/// Where the catalog records applied migrations (see crates/catalog/src/postgres.rs).
const SCHEMA_TABLE: &str = "catalog_schema_migrations";

/// A database of its own for a test that changes or inspects the schema. `drop_database` removes
/// it; a failed test leaves it behind in the throwaway cluster, which goes away with the run.
struct ScratchDatabase {
    admin: tokio_postgres::Client,
    config: tokio_postgres::Config,
    name: String,
}

impl ScratchDatabase {
    async fn create(url: &str, purpose: &str) -> ScratchDatabase {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let admin_config: tokio_postgres::Config = url.parse().unwrap();
        let admin = connect_client(&admin_config).await;
        let name = format!(
            "heapfleet_test_{purpose}_{}_{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let mut config = admin_config;
        config.dbname(&name);
        ScratchDatabase {
            admin,
            config,
            name,
        }
    }

    async fn connect_catalog(&self) -> Result<PostgresCatalog, CatalogError> {
        PostgresCatalog::connect_with_config(self.config.clone()).await
    }

    /// Returns the applied schema versions, read past the catalog.
    async fn recorded_versions(&self) -> Vec<i64> {
        let client = connect_client(&self.config).await;
        client
            .query(
                &format!("SELECT version FROM {SCHEMA_TABLE} ORDER BY version"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    async fn drop_database(self) {
        // FORCE: pools of catalogs dropped a moment ago may still be closing their connections.
        self.admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

async fn connect_client(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn test_postgres_catalog_passes_the_conformance_suite() {
    let Some(url) = service_url(POSTGRES_URL_VARIABLE) else {
        return;
    };
    let catalog = PostgresCatalog::connect(&url).await.unwrap();
    run_catalog_test_suite(&catalog).await;
}

#[tokio::test]
async fn test_postgres_catalog_keeps_dumps_across_reconnect() {
    let Some(url) = service_url(POSTGRES_URL_VARIABLE) else {
        return;
    };
    let catalog = PostgresCatalog::connect(&url).await.unwrap();
    heapfleet_catalog::testsuite::check_dumps_survive_reopen(catalog, || {
        PostgresCatalog::connect(&url)
    })
    .await;
}

#[tokio::test]
async fn test_postgres_catalog_debug_hides_the_password() {
    let Some(url) = service_url(POSTGRES_URL_VARIABLE) else {
        return;
    };
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    // The test cluster trusts loopback connections, so any password gets in.
    config.password("not-for-logs-4711");
    let catalog = PostgresCatalog::connect_with_config(config).await.unwrap();
    let debug = format!("{catalog:?}");
    assert!(debug.starts_with("PostgresCatalog"), "{debug}");
    assert!(!debug.contains("not-for-logs-4711"), "{debug}");
}

#[tokio::test]
async fn test_postgres_catalog_migrations_are_idempotent() {
    let Some(url) = service_url(POSTGRES_URL_VARIABLE) else {
        return;
    };
    let scratch = ScratchDatabase::create(&url, "idempotent").await;
    let latest = PostgresCatalog::latest_schema_version();
    let first = scratch.connect_catalog().await.unwrap();
    assert_eq!(first.schema_version().await.unwrap(), latest);
    let tenant = unique_tenant("migrate-twice");
    let (registered, _) = first
        .register_dump(sample_dump(&tenant, "web-1", 1, "", 100))
        .await
        .unwrap();

    // A second start finds nothing to do and loses nothing.
    let second = scratch.connect_catalog().await.unwrap();
    assert_eq!(second.schema_version().await.unwrap(), latest);
    assert_eq!(
        scratch.recorded_versions().await,
        (1..=latest).collect::<Vec<_>>()
    );
    assert_eq!(second.get_dump(&registered.id).await.unwrap(), registered);
    drop((first, second));
    scratch.drop_database().await;
}

#[tokio::test]
async fn test_postgres_catalog_concurrent_starters_migrate_once() {
    let Some(url) = service_url(POSTGRES_URL_VARIABLE) else {
        return;
    };
    let scratch = ScratchDatabase::create(&url, "concurrent").await;
    // Without the migration lock these would race to create the same tables and most would
    // fail with a duplicate-object error.
    let starters = join_all((0..6).map(|_| scratch.connect_catalog())).await;
    let catalogs: Vec<PostgresCatalog> = starters
        .into_iter()
        .map(|started| started.expect("every concurrent starter connects"))
        .collect();
    let latest = PostgresCatalog::latest_schema_version();
    assert_eq!(
        scratch.recorded_versions().await,
        (1..=latest).collect::<Vec<_>>()
    );
    let tenant = unique_tenant("concurrent-start");
    catalogs[0]
        .register_dump(sample_dump(&tenant, "web-1", 1, "", 100))
        .await
        .unwrap();
    for catalog in &catalogs {
        let listed = catalog
            .list_dumps(&DumpFilter::for_tenant(&tenant))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
    }
    drop(catalogs);
    scratch.drop_database().await;
}

#[tokio::test]
async fn test_postgres_catalog_claims_jobs_across_tenants() {
    let Some(url) = service_url(POSTGRES_URL_VARIABLE) else {
        return;
    };
    // A claim without a tenant takes any tenant's jobs, so it gets a database of its own.
    let scratch = ScratchDatabase::create(&url, "span").await;
    let catalog = scratch.connect_catalog().await.unwrap();
    check_claim_job_spans_tenants(&catalog).await;
    drop(catalog);
    scratch.drop_database().await;
}

#[tokio::test]
async fn test_postgres_catalog_lists_old_dumps_across_tenants() {
    let Some(url) = service_url(POSTGRES_URL_VARIABLE) else {
        return;
    };
    // A listing without a tenant sees every tenant's old dumps, so it gets a database of its own.
    let scratch = ScratchDatabase::create(&url, "taken_before").await;
    let catalog = scratch.connect_catalog().await.unwrap();
    check_list_dumps_taken_before_spans_tenants(&catalog).await;
    drop(catalog);
    scratch.drop_database().await;
}

#[tokio::test]
async fn test_postgres_catalog_upgrades_a_database_holding_dumps() {
    let Some(url) = service_url(POSTGRES_URL_VARIABLE) else {
        return;
    };
    let scratch = ScratchDatabase::create(&url, "upgrade").await;
    // Schema version 1 as an older build left it, with a queued dump in it.
    let client = connect_client(&scratch.config).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE {SCHEMA_TABLE} (version BIGINT NOT NULL PRIMARY KEY, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()); \
             {} \
             INSERT INTO {SCHEMA_TABLE} (version) VALUES (1);",
            include_str!("../../crates/catalog/migrations/postgres/0001_create_dumps.sql")
        ))
        .await
        .unwrap();
    let tenant = unique_tenant("upgrade");
    let new_dump = sample_dump(&tenant, "web-1", 1, "", 100);
    let id = new_dump.dump_id();
    client
        .execute(
            "INSERT INTO dumps (dump_id, tenant, host, pid, instance, taken_at_unix, file_name, \
             size_bytes, content_sha256, status) \
             VALUES ($1, $2, 'web-1', 1, '', 100, 'heap.dump', 10, $3, 'queued')",
            &[&id.as_str(), &tenant, &new_dump.content_sha256],
        )
        .await
        .unwrap();

    let catalog = scratch.connect_catalog().await.unwrap();
    assert_eq!(
        catalog.schema_version().await.unwrap(),
        PostgresCatalog::latest_schema_version()
    );
    let job = catalog
        .claim_job("worker-a", Duration::from_secs(60), Some(&tenant))
        .await
        .unwrap()
        .expect("the dump queued before the upgrade is claimable");
    assert_eq!((job.dump.id.clone(), job.attempt), (id.clone(), 1));
    catalog.complete_job(&id, "worker-a", 5, 0).await.unwrap();
    assert_eq!(
        catalog.get_dump(&id).await.unwrap().status,
        DumpStatus::Ready
    );
    drop((client, catalog));
    scratch.drop_database().await;
}

#[tokio::test]
async fn test_postgres_catalog_refuses_a_newer_schema() {
    let Some(url) = service_url(POSTGRES_URL_VARIABLE) else {
        return;
    };
    let scratch = ScratchDatabase::create(&url, "newer").await;
    drop(scratch.connect_catalog().await.unwrap());
    let newer = PostgresCatalog::latest_schema_version() + 1;
    connect_client(&scratch.config)
        .await
        .execute(
            &format!("INSERT INTO {SCHEMA_TABLE} (version) VALUES ($1)"),
            &[&newer],
        )
        .await
        .unwrap();
    let refused = scratch.connect_catalog().await;
    match refused {
        Err(CatalogError::Invalid(message)) => {
            assert!(message.contains("newer than this build"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    scratch.drop_database().await;
}

#[tokio::test]
async fn test_postgres_catalog_without_a_server_is_unavailable() {
    // A port that was just free: nothing listens there, so the connection is refused. This
    // needs no server and always runs.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgresql://heapfleet:hunter2-secret@127.0.0.1:{port}/catalog");
    let error = PostgresCatalog::connect(&url).await.unwrap_err();
    assert!(
        matches!(error, CatalogError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    let mut chain = Vec::new();
    let mut source_opt: Option<&dyn std::error::Error> = Some(&error);
    while let Some(source) = source_opt {
        chain.push(source.to_string());
        source_opt = source.source();
    }
    let chain = chain.join(": ");
    assert!(!chain.contains("hunter2-secret"), "{chain}");
}

#[tokio::test]
async fn test_postgres_catalog_rejects_a_malformed_connection_string() {
    for malformed in [
        "host=127.0.0.1 port=not-a-port password=hunter2-secret",
        "postgresql://heapfleet:hunter2-secret@127.0.0.1:99999999/catalog",
        "host=127.0.0.1 password=hunter2 secret",
    ] {
        let error = PostgresCatalog::connect(malformed).await.unwrap_err();
        assert!(matches!(error, CatalogError::Invalid(_)), "{error:?}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
