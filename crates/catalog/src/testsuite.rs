//! The conformance suite every [`Catalog`] implementation must pass (feature `testsuite`).
//!
//! One `pub async fn` per behaviour, each taking `&dyn Catalog`; [`run_catalog_test_suite`] runs
//! them all. The functions know nothing about the backend and may share a database with other
//! runs: each one works in a tenant of its own ([`unique_tenant`]) and only reads that tenant's
//! data or ids it registered itself. Hosts and instances are ASCII so that byte order and a
//! database collation agree on the expected ordering.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::error::{CatalogError, Result};
use crate::model::{DumpFilter, DumpId, DumpStatus, DumpStatusKind, NewDump, ProcessKey};

/// Returns a tenant name no other suite run uses, even against a shared database.
pub fn unique_tenant(test_name: &str) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| since_epoch.as_nanos());
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!(
        "suite-{test_name}-{}-{nanos}-{sequence}",
        std::process::id()
    )
}

/// Returns the lowercase hex SHA-256 of `seed`, standing in for a dump's content hash.
pub fn content_hash(seed: &str) -> String {
    Sha256::digest(seed.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Returns a valid dump of process (`tenant`, `host`, `pid`, `instance`) taken at `taken_at_unix`,
/// its content hash derived from all of these.
pub fn sample_dump(
    tenant: &str,
    host: &str,
    pid: u32,
    instance: &str,
    taken_at_unix: i64,
) -> NewDump {
    NewDump {
        process: ProcessKey {
            tenant: tenant.to_owned(),
            host: host.to_owned(),
            pid,
            instance: instance.to_owned(),
        },
        taken_at_unix,
        jobs: Some(10),
        role: Some("sidekiq".to_owned()),
        labels: BTreeMap::from([("version".to_owned(), "v1".to_owned())]),
        file_name: format!("heap-{pid}-{taken_at_unix}-10.dump"),
        size_bytes: 1024,
        content_sha256: content_hash(&format!("{tenant}/{host}/{pid}/{instance}/{taken_at_unix}")),
        gc_count: Some(42),
        rss_bytes: Some(200 << 20),
    }
}

async fn register(catalog: &dyn Catalog, new_dump: NewDump) -> DumpId {
    let (record, created) = catalog
        .register_dump(new_dump)
        .await
        .expect("registering a valid dump succeeds");
    assert!(created, "a fresh dump is newly created");
    record.id
}

fn ids(records: &[crate::DumpRecord]) -> Vec<DumpId> {
    records.iter().map(|record| record.id.clone()).collect()
}

/// A new dump comes back with every field as sent, status uploaded, no attempts and the derived
/// id; `get_dump` returns the same record.
pub async fn test_catalog_register_dump_returns_the_record(catalog: &dyn Catalog) {
    let tenant = unique_tenant("register");
    let mut new_dump = sample_dump(&tenant, "web-1", 4242, "1700000000", 1_700_000_100);
    new_dump
        .labels
        .insert("region".to_owned(), "eu-west".to_owned());
    new_dump
        .labels
        .insert("deploy.sha".to_owned(), "it's \"quoted\"".to_owned());
    new_dump.jobs = Some(u64::from(u32::MAX) + 7);
    new_dump.gc_count = None;
    let (record, created) = catalog
        .register_dump(new_dump.clone())
        .await
        .expect("register");
    assert!(created);
    assert_eq!(record.id, new_dump.dump_id());
    assert_eq!(
        record.id,
        DumpId::derive(&new_dump.process, &new_dump.content_sha256)
    );
    assert_eq!(record.process, new_dump.process);
    assert_eq!(record.taken_at_unix, new_dump.taken_at_unix);
    assert_eq!(record.jobs, new_dump.jobs);
    assert_eq!(record.role, new_dump.role);
    assert_eq!(record.labels, new_dump.labels);
    assert_eq!(record.file_name, new_dump.file_name);
    assert_eq!(record.size_bytes, new_dump.size_bytes);
    assert_eq!(record.content_sha256, new_dump.content_sha256);
    assert_eq!(record.gc_count, None);
    assert_eq!(record.rss_bytes, new_dump.rss_bytes);
    assert_eq!(record.status, DumpStatus::Uploaded);
    assert_eq!(
        (record.attempts, record.objects, record.bad_lines),
        (0, 0, 0)
    );
    assert!(record.registered_at_unix > 0);
    let fetched = catalog.get_dump(&record.id).await.expect("get");
    assert_eq!(fetched, record);
}

/// Registering the same content from the same process again returns the existing record and
/// `false`, even when the rest of the metadata differs; another process gets another dump.
pub async fn test_catalog_register_dump_is_idempotent(catalog: &dyn Catalog) {
    let tenant = unique_tenant("idempotent");
    let new_dump = sample_dump(&tenant, "web-1", 7, "boot-a", 1_700_000_000);
    let (first, first_created) = catalog
        .register_dump(new_dump.clone())
        .await
        .expect("first register");
    catalog
        .set_status(&first.id, DumpStatus::Queued)
        .await
        .expect("queue");

    let mut again = new_dump.clone();
    again.file_name = "renamed.dump".to_owned();
    again.labels.insert("extra".to_owned(), "label".to_owned());
    let (second, second_created) = catalog.register_dump(again).await.expect("second register");
    assert!(first_created);
    assert!(!second_created);
    assert_eq!(second.id, first.id);
    assert_eq!(
        second.file_name, first.file_name,
        "the existing record is returned unchanged"
    );
    assert_eq!(second.labels, first.labels);
    assert_eq!(second.status, DumpStatus::Queued);

    // The same bytes from a restarted process (same pid, new instance) are another dump.
    let mut restarted = new_dump;
    restarted.process.instance = "boot-b".to_owned();
    let (third, third_created) = catalog
        .register_dump(restarted)
        .await
        .expect("third register");
    assert!(third_created);
    assert_ne!(third.id, first.id);
    let listed = catalog
        .list_dumps(&DumpFilter::for_tenant(&tenant))
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
}

/// Malformed registrations fail with `Invalid` and register nothing.
pub async fn test_catalog_register_dump_rejects_invalid_input(catalog: &dyn Catalog) {
    let tenant = unique_tenant("invalid");
    let valid = sample_dump(&tenant, "web-1", 1, "", 1_700_000_000);
    let mut bad_hash = valid.clone();
    bad_hash.content_sha256 = "not-a-hash".to_owned();
    let mut no_host = valid.clone();
    no_host.process.host = String::new();
    let mut too_large = valid.clone();
    too_large.size_bytes = u64::MAX;
    let mut nul_in_label = valid.clone();
    nul_in_label
        .labels
        .insert("deploy".to_owned(), "a\0b".to_owned());
    for invalid in [bad_hash, no_host, too_large, nul_in_label] {
        let result = catalog.register_dump(invalid).await;
        assert!(
            matches!(result, Err(CatalogError::Invalid(_))),
            "{result:?}"
        );
    }
    let listed = catalog
        .list_dumps(&DumpFilter::for_tenant(&tenant))
        .await
        .expect("list");
    assert!(listed.is_empty());
    // Reads never span tenants, so an empty tenant is a mistake, not "all tenants".
    let all_tenants = catalog.list_dumps(&DumpFilter::for_tenant("")).await;
    assert!(
        matches!(all_tenants, Err(CatalogError::Invalid(_))),
        "{all_tenants:?}"
    );
    let all_processes = catalog.list_processes("").await;
    assert!(
        matches!(all_processes, Err(CatalogError::Invalid(_))),
        "{all_processes:?}"
    );
}

/// Every call naming an unknown dump fails with `NotFound`.
pub async fn test_catalog_unknown_dump_is_not_found(catalog: &dyn Catalog) {
    let tenant = unique_tenant("not-found");
    let missing = sample_dump(&tenant, "web-1", 1, "", 1).dump_id();
    let outcomes: Vec<Result<()>> = vec![
        catalog.get_dump(&missing).await.map(drop),
        catalog.set_status(&missing, DumpStatus::Queued).await,
        catalog.mark_ready(&missing, 1, 0).await,
        catalog.mark_failed(&missing, "boom").await,
        catalog.delete_dump(&missing).await,
    ];
    for outcome in outcomes {
        assert!(
            matches!(outcome, Err(CatalogError::NotFound(_))),
            "{outcome:?}"
        );
    }
}

/// `list_dumps` returns a tenant's dumps ordered by host, pid, instance, taken-at time and id,
/// and never another tenant's.
pub async fn test_catalog_list_dumps_orders_by_process_and_time(catalog: &dyn Catalog) {
    let tenant = unique_tenant("order");
    let other_tenant = unique_tenant("order-other");
    // Registered out of order on purpose. Pid 9 sorts before pid 10 (numeric, not text).
    let registrations = [
        ("web-2", 1, "a", 300),
        ("web-1", 10, "a", 200),
        ("web-1", 9, "b", 100),
        ("web-1", 9, "a", 500),
        ("web-1", 9, "a", 100),
        ("web-1", 9, "a", 300),
    ];
    let mut expected = Vec::new();
    for (host, pid, instance, taken_at_unix) in registrations {
        let id = register(
            catalog,
            sample_dump(&tenant, host, pid, instance, taken_at_unix),
        )
        .await;
        expected.push(((host, pid, instance, taken_at_unix, id.clone()), id));
    }
    register(catalog, sample_dump(&other_tenant, "web-1", 9, "a", 100)).await;
    expected.sort();
    let expected: Vec<DumpId> = expected.into_iter().map(|(_, id)| id).collect();
    let listed = catalog
        .list_dumps(&DumpFilter::for_tenant(&tenant))
        .await
        .expect("list");
    assert_eq!(ids(&listed), expected);
    assert!(listed.iter().all(|record| record.process.tenant == tenant));
}

/// Each filter field narrows the listing, labels must all match, the time window is
/// [taken_after, taken_before), and the results agree with [`DumpFilter::matches`].
pub async fn test_catalog_list_dumps_applies_every_filter(catalog: &dyn Catalog) {
    let tenant = unique_tenant("filter");
    let mut web = sample_dump(&tenant, "web-1", 1, "a", 100);
    web.role = Some("web".to_owned());
    web.labels = BTreeMap::from([
        ("version".to_owned(), "v2".to_owned()),
        ("region".to_owned(), "eu".to_owned()),
    ]);
    let web = register(catalog, web).await;
    let early = register(catalog, sample_dump(&tenant, "worker-1", 2, "a", 100)).await;
    let middle = register(catalog, sample_dump(&tenant, "worker-1", 2, "a", 200)).await;
    let mut no_role = sample_dump(&tenant, "worker-2", 3, "b", 300);
    no_role.role = None;
    no_role.labels.clear();
    let no_role = register(catalog, no_role).await;
    catalog.mark_ready(&middle, 10, 0).await.expect("ready");

    let all = catalog
        .list_dumps(&DumpFilter::for_tenant(&tenant))
        .await
        .expect("list all");
    assert_eq!(all.len(), 4);
    let base = DumpFilter::for_tenant(&tenant);
    let cases: Vec<(DumpFilter, Vec<DumpId>)> = vec![
        (
            DumpFilter {
                host: Some("worker-1".to_owned()),
                ..base.clone()
            },
            vec![early.clone(), middle.clone()],
        ),
        (
            DumpFilter {
                pid: Some(3),
                ..base.clone()
            },
            vec![no_role.clone()],
        ),
        (
            DumpFilter {
                instance: Some("a".to_owned()),
                ..base.clone()
            },
            vec![web.clone(), early.clone(), middle.clone()],
        ),
        (
            DumpFilter {
                role: Some("web".to_owned()),
                ..base.clone()
            },
            vec![web.clone()],
        ),
        (
            DumpFilter {
                role: Some("sidekiq".to_owned()),
                ..base.clone()
            },
            vec![early.clone(), middle.clone()],
        ),
        (
            DumpFilter {
                labels: BTreeMap::from([("version".to_owned(), "v1".to_owned())]),
                ..base.clone()
            },
            vec![early.clone(), middle.clone()],
        ),
        (
            DumpFilter {
                labels: BTreeMap::from([
                    ("version".to_owned(), "v2".to_owned()),
                    ("region".to_owned(), "eu".to_owned()),
                ]),
                ..base.clone()
            },
            vec![web.clone()],
        ),
        (
            DumpFilter {
                labels: BTreeMap::from([
                    ("version".to_owned(), "v2".to_owned()),
                    ("region".to_owned(), "us".to_owned()),
                ]),
                ..base.clone()
            },
            vec![],
        ),
        (
            DumpFilter {
                taken_after: Some(200),
                ..base.clone()
            },
            vec![middle.clone(), no_role.clone()],
        ),
        (
            DumpFilter {
                taken_before: Some(200),
                ..base.clone()
            },
            vec![web.clone(), early.clone()],
        ),
        (
            DumpFilter {
                taken_after: Some(100),
                taken_before: Some(300),
                host: Some("worker-1".to_owned()),
                ..base.clone()
            },
            vec![early.clone(), middle.clone()],
        ),
        (
            DumpFilter {
                status: Some(DumpStatusKind::Ready),
                ..base.clone()
            },
            vec![middle.clone()],
        ),
        (
            DumpFilter {
                status: Some(DumpStatusKind::Failed),
                ..base.clone()
            },
            vec![],
        ),
        (
            DumpFilter {
                tenant: unique_tenant("filter-empty"),
                ..base.clone()
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        let listed = catalog.list_dumps(&filter).await.expect("list filtered");
        assert_eq!(ids(&listed), expected, "{filter:?}");
        let reference: Vec<DumpId> = all
            .iter()
            .filter(|record| filter.matches(record))
            .map(|record| record.id.clone())
            .collect();
        if filter.tenant == tenant {
            assert_eq!(
                reference, expected,
                "DumpFilter::matches disagrees for {filter:?}"
            );
        }
    }
}

/// Status changes are stored; each move to ingesting counts an attempt; a failure keeps its
/// reason until the dump moves on.
pub async fn test_catalog_set_status_tracks_attempts_and_reasons(catalog: &dyn Catalog) {
    let tenant = unique_tenant("status");
    let id = register(catalog, sample_dump(&tenant, "web-1", 1, "", 100)).await;
    catalog
        .set_status(&id, DumpStatus::Queued)
        .await
        .expect("queue");
    assert_eq!(
        catalog.get_dump(&id).await.expect("get").status,
        DumpStatus::Queued
    );
    catalog
        .set_status(&id, DumpStatus::Ingesting)
        .await
        .expect("ingest");
    catalog
        .mark_failed(&id, "worker lost its lease")
        .await
        .expect("fail");
    let failed = catalog.get_dump(&id).await.expect("get failed");
    assert_eq!(
        failed.status,
        DumpStatus::Failed {
            reason: "worker lost its lease".to_owned()
        }
    );
    assert_eq!(failed.attempts, 1);

    catalog
        .set_status(&id, DumpStatus::Ingesting)
        .await
        .expect("retry");
    let retried = catalog.get_dump(&id).await.expect("get retried");
    assert_eq!(retried.status, DumpStatus::Ingesting);
    assert_eq!(retried.status.failure_reason(), None);
    assert_eq!(retried.attempts, 2);

    catalog
        .set_status(
            &id,
            DumpStatus::Failed {
                reason: "line 7: invalid JSON".to_owned(),
            },
        )
        .await
        .expect("fail via set_status");
    let failed_again = catalog.get_dump(&id).await.expect("get failed again");
    assert_eq!(
        failed_again.status.failure_reason(),
        Some("line 7: invalid JSON")
    );
    assert_eq!(failed_again.attempts, 2);
}

/// `mark_ready` stores the counts and the ready status together and clears a failure.
pub async fn test_catalog_mark_ready_records_ingest_results(catalog: &dyn Catalog) {
    let tenant = unique_tenant("ready");
    let id = register(catalog, sample_dump(&tenant, "web-1", 1, "", 100)).await;
    catalog
        .mark_failed(&id, "first try failed")
        .await
        .expect("fail");
    catalog
        .set_status(&id, DumpStatus::Ingesting)
        .await
        .expect("ingest");
    catalog.mark_ready(&id, 1_234_567, 3).await.expect("ready");
    let ready = catalog.get_dump(&id).await.expect("get");
    assert_eq!(ready.status, DumpStatus::Ready);
    assert_eq!(
        (ready.objects, ready.bad_lines, ready.attempts),
        (1_234_567, 3, 1)
    );
    // A second successful ingest overwrites the counts, it does not add to them.
    catalog
        .mark_ready(&id, 1_234_567, 3)
        .await
        .expect("ready again");
    let again = catalog.get_dump(&id).await.expect("get again");
    assert_eq!((again.objects, again.bad_lines), (1_234_567, 3));
}

/// `list_processes` returns one row per (host, pid, instance) of the tenant with its dump count
/// and time span, ordered by host, pid and instance.
pub async fn test_catalog_list_processes_counts_dumps(catalog: &dyn Catalog) {
    let tenant = unique_tenant("processes");
    for (host, pid, instance, taken_at_unix) in [
        ("web-2", 5, "a", 100),
        ("web-1", 5, "b", 400),
        ("web-1", 5, "a", 300),
        ("web-1", 5, "a", 100),
        ("web-1", 5, "a", 200),
    ] {
        register(
            catalog,
            sample_dump(&tenant, host, pid, instance, taken_at_unix),
        )
        .await;
    }
    register(
        catalog,
        sample_dump(&unique_tenant("processes-other"), "web-1", 5, "a", 100),
    )
    .await;
    let processes = catalog
        .list_processes(&tenant)
        .await
        .expect("list processes");
    let summary: Vec<(&str, u32, &str, u64, i64, i64)> = processes
        .iter()
        .map(|process| {
            assert_eq!(process.process.tenant, tenant);
            (
                process.process.host.as_str(),
                process.process.pid,
                process.process.instance.as_str(),
                process.dump_count,
                process.first_taken_at_unix,
                process.last_taken_at_unix,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("web-1", 5, "a", 3, 100, 300),
            ("web-1", 5, "b", 1, 400, 400),
            ("web-2", 5, "a", 1, 100, 100)
        ]
    );
    let empty = catalog
        .list_processes(&unique_tenant("processes-none"))
        .await
        .expect("list none");
    assert!(empty.is_empty());
}

/// A deleted dump is gone from reads and listings and can be registered anew.
pub async fn test_catalog_delete_dump_removes_it(catalog: &dyn Catalog) {
    let tenant = unique_tenant("delete");
    let kept = register(catalog, sample_dump(&tenant, "web-1", 1, "", 100)).await;
    let new_dump = sample_dump(&tenant, "web-1", 1, "", 200);
    let deleted = register(catalog, new_dump.clone()).await;
    catalog.mark_ready(&deleted, 5, 0).await.expect("ready");
    catalog.delete_dump(&deleted).await.expect("delete");
    assert!(matches!(
        catalog.get_dump(&deleted).await,
        Err(CatalogError::NotFound(_))
    ));
    assert!(matches!(
        catalog.delete_dump(&deleted).await,
        Err(CatalogError::NotFound(_))
    ));
    let listed = catalog
        .list_dumps(&DumpFilter::for_tenant(&tenant))
        .await
        .expect("list");
    assert_eq!(ids(&listed), vec![kept]);
    let (again, created) = catalog
        .register_dump(new_dump)
        .await
        .expect("register again");
    assert!(created);
    assert_eq!(again.id, deleted);
    assert_eq!(again.status, DumpStatus::Uploaded);
}

/// Concurrent registrations of the same dump create it once.
pub async fn test_catalog_concurrent_registration_creates_once(catalog: &dyn Catalog) {
    let tenant = unique_tenant("concurrent");
    let new_dump = sample_dump(&tenant, "web-1", 1, "", 100);
    let attempts = (0..8).map(|_| catalog.register_dump(new_dump.clone()));
    let outcomes = join_all(attempts).await;
    let mut created = 0;
    for outcome in outcomes {
        let (record, newly_created) = outcome.expect("concurrent register");
        assert_eq!(record.id, new_dump.dump_id());
        created += usize::from(newly_created);
    }
    assert_eq!(created, 1);
}

/// Registers a dump, drops `catalog`, reopens with `reopen` and checks that the dump and its
/// status are still there. Backends with durable storage run this with their own reopen.
pub async fn check_dumps_survive_reopen<C, F, Fut>(catalog: C, reopen: F)
where
    C: Catalog,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<C>>,
{
    let tenant = unique_tenant("durable");
    let id = register(&catalog, sample_dump(&tenant, "web-1", 1, "", 100)).await;
    catalog.mark_ready(&id, 99, 1).await.expect("ready");
    let before = catalog.get_dump(&id).await.expect("get before");
    drop(catalog);
    let reopened = reopen().await.expect("reopen the catalog");
    let after = reopened
        .get_dump(&id)
        .await
        .expect("the dump survives a reopen");
    assert_eq!(after, before);
    let processes = reopened
        .list_processes(&tenant)
        .await
        .expect("list processes");
    assert_eq!(processes.len(), 1);
}

/// Runs every backend-independent behaviour against `catalog`.
pub async fn run_catalog_test_suite(catalog: &dyn Catalog) {
    test_catalog_register_dump_returns_the_record(catalog).await;
    test_catalog_register_dump_is_idempotent(catalog).await;
    test_catalog_register_dump_rejects_invalid_input(catalog).await;
    test_catalog_unknown_dump_is_not_found(catalog).await;
    test_catalog_list_dumps_orders_by_process_and_time(catalog).await;
    test_catalog_list_dumps_applies_every_filter(catalog).await;
    test_catalog_set_status_tracks_attempts_and_reasons(catalog).await;
    test_catalog_mark_ready_records_ingest_results(catalog).await;
    test_catalog_list_processes_counts_dumps(catalog).await;
    test_catalog_delete_dump_removes_it(catalog).await;
    test_catalog_concurrent_registration_creates_once(catalog).await;
}
