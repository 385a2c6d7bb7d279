//! The conformance suite every [`Catalog`] implementation must pass (feature `testsuite`).
//!
//! One `pub async fn` per behaviour, each taking `&dyn Catalog`; [`run_catalog_test_suite`] runs
//! them all. The functions know nothing about the backend and may share a database with other
//! runs: each one works in a tenant of its own ([`unique_tenant`]) and only reads that tenant's
//! data or ids it registered itself. Hosts and instances are ASCII so that byte order and a
//! database collation agree on the expected ordering. Job-queue tests claim only within their
//! own tenant for the same reason; [`check_claim_job_spans_tenants`], which claims from every
//! tenant, needs a catalog of its own. No test sleeps a fixed time: lease expiry is awaited
//! by polling with a deadline.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, DELETION_REASON};
use crate::error::{CatalogError, Result};
use crate::model::{
    DumpFilter, DumpId, DumpRecord, DumpStatus, DumpStatusKind, Job, NewDump, OwnershipOutcome,
    OwnershipState, ProcessKey, QueueStats,
};

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
        object_key: Some(format!(
            "dumps/{tenant}/{host}/{pid}-{instance}/{taken_at_unix}.dump"
        )),
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
    assert_eq!(record.object_key, new_dump.object_key);
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
        catalog.begin_delete(&missing).await.map(drop),
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

/// A lease no test outlives.
const LONG_LEASE: Duration = Duration::from_secs(600);
/// A lease that has expired by the time the next call reaches the catalog, or soon after.
const EXPIRING_LEASE: Duration = Duration::from_millis(1);
/// How long a test waits for an expired lease to become claimable before it fails.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(10);

/// Registers a dump in `tenant` taken at `taken_at_unix` and marks it ready, which queues its
/// ownership pass (sample dumps have an object key).
async fn register_ready(catalog: &dyn Catalog, tenant: &str, taken_at_unix: i64) -> DumpId {
    let id = register(catalog, sample_dump(tenant, "web-1", 1, "", taken_at_unix)).await;
    catalog.mark_ready(&id, 10, 0).await.expect("mark ready");
    id
}

/// Claims one ownership pass of `tenant` for `worker` with [`LONG_LEASE`].
async fn claim_ownership(catalog: &dyn Catalog, worker: &str, tenant: &str) -> Option<Job> {
    catalog
        .claim_ownership_job(worker, LONG_LEASE, Some(tenant))
        .await
        .expect("claim an ownership pass")
}

/// Claims an ownership pass of `tenant` for `worker`, polling until one is claimable or the
/// deadline passes: how a test waits for another worker's ownership lease to expire.
async fn claim_ownership_when_expired(catalog: &dyn Catalog, worker: &str, tenant: &str) -> Job {
    let deadline = Instant::now() + EXPIRY_DEADLINE;
    loop {
        if let Some(job) = claim_ownership(catalog, worker, tenant).await {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "no ownership pass of {tenant} became claimable within {EXPIRY_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads a dump's ownership pass and attempt count.
async fn ownership_of(catalog: &dyn Catalog, id: &DumpId) -> (Option<OwnershipState>, u32) {
    let record = catalog.get_dump(id).await.expect("get");
    (record.ownership, record.ownership_attempts)
}

/// Registers a dump in `tenant` taken at `taken_at_unix` and queues it.
async fn register_queued(catalog: &dyn Catalog, tenant: &str, taken_at_unix: i64) -> DumpId {
    let id = register(catalog, sample_dump(tenant, "web-1", 1, "", taken_at_unix)).await;
    assert!(catalog.enqueue(&id).await.expect("enqueue"), "{id} queued");
    id
}

/// Claims one job of `tenant` for `worker` with [`LONG_LEASE`].
async fn claim(catalog: &dyn Catalog, worker: &str, tenant: &str) -> Option<Job> {
    catalog
        .claim_job(worker, LONG_LEASE, Some(tenant))
        .await
        .expect("claim a job")
}

/// Claims a job of `tenant` for `worker`, polling until one is claimable or the deadline
/// passes: how a test waits for another worker's lease to expire.
async fn claim_when_expired(catalog: &dyn Catalog, worker: &str, tenant: &str) -> Job {
    let deadline = Instant::now() + EXPIRY_DEADLINE;
    loop {
        if let Some(job) = claim(catalog, worker, tenant).await {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "no job of {tenant} became claimable within {EXPIRY_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn assert_conflict<T: std::fmt::Debug>(outcome: Result<T>, what: &str) {
    assert!(
        matches!(outcome, Err(CatalogError::Conflict(_))),
        "{what}: {outcome:?}"
    );
}

/// `enqueue` queues uploaded and failed dumps and leaves queued, ingesting and ready ones
/// alone; the queue hands out queued dumps oldest registered first, each once, and never an
/// uploaded one; a claim counts an attempt and records the worker and lease.
pub async fn test_catalog_claim_job_takes_queued_dumps_oldest_first(catalog: &dyn Catalog) {
    let tenant = unique_tenant("claim-order");
    // Registered in this order (taken-at times deliberately disagree), queued in another.
    let first = register(catalog, sample_dump(&tenant, "web-1", 1, "", 300)).await;
    let second = register(catalog, sample_dump(&tenant, "web-1", 1, "", 100)).await;
    let third = register(catalog, sample_dump(&tenant, "web-1", 1, "", 200)).await;
    let never_queued = register(catalog, sample_dump(&tenant, "web-1", 1, "", 400)).await;
    for id in [&third, &first, &second] {
        assert!(catalog.enqueue(id).await.expect("enqueue"));
    }
    assert!(!catalog.enqueue(&first).await.expect("enqueue again"));

    let before_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_millis(),
    )
    .expect("milliseconds fit in i64");
    let mut claimed = Vec::new();
    while let Some(job) = claim(catalog, "worker-a", &tenant).await {
        assert_eq!(job.worker, "worker-a");
        assert_eq!(job.attempt, 1);
        assert_eq!(job.dump.attempts, 1);
        assert_eq!(job.dump.status, DumpStatus::Ingesting);
        // Generous slack: PostgreSQL's clock need not agree with this machine's to the second.
        assert!(
            job.lease_expires_at_unix_ms > before_ms + 500_000,
            "the lease runs about ten minutes: {job:?}"
        );
        assert_eq!(catalog.get_dump(&job.dump.id).await.expect("get"), job.dump);
        claimed.push(job.dump.id);
    }
    assert_eq!(claimed, vec![first.clone(), second.clone(), third.clone()]);
    assert_eq!(
        catalog.get_dump(&never_queued).await.expect("get").status,
        DumpStatus::Uploaded
    );

    // Ingesting and ready dumps stay as they are.
    assert!(!catalog.enqueue(&first).await.expect("enqueue ingesting"));
    catalog
        .complete_job(&second, "worker-a", 10, 0)
        .await
        .expect("complete");
    assert!(!catalog.enqueue(&second).await.expect("enqueue ready"));
    assert_eq!(
        catalog.get_dump(&second).await.expect("get").status,
        DumpStatus::Ready
    );
    assert!(claim(catalog, "worker-b", &tenant).await.is_none());

    let missing = sample_dump(&tenant, "web-1", 1, "", 999).dump_id();
    assert!(matches!(
        catalog.enqueue(&missing).await,
        Err(CatalogError::NotFound(_))
    ));
    for outcome in [
        catalog.claim_job("", LONG_LEASE, Some(&tenant)).await,
        catalog
            .claim_job("worker-a", Duration::ZERO, Some(&tenant))
            .await,
        catalog
            .claim_job("bad\0worker", LONG_LEASE, Some(&tenant))
            .await,
    ] {
        assert!(
            matches!(outcome, Err(CatalogError::Invalid(_))),
            "{outcome:?}"
        );
    }
}

/// Eight claimers racing over the same queue get disjoint jobs and together every job.
pub async fn test_catalog_concurrent_claimers_get_disjoint_jobs(catalog: &dyn Catalog) {
    const JOBS: i64 = 24;
    const CLAIMERS: usize = 8;
    let tenant = unique_tenant("claim-race");
    let mut queued = BTreeSet::new();
    for taken_at_unix in 0..JOBS {
        queued.insert(register_queued(catalog, &tenant, taken_at_unix).await);
    }
    // Futures, not spawned tasks (the catalog is borrowed): a remote catalog still runs their
    // calls concurrently on separate connections.
    let claimers = (0..CLAIMERS).map(|claimer| {
        let tenant = tenant.clone();
        async move {
            let worker = format!("racer-{claimer}");
            let mut claimed = Vec::new();
            while let Some(job) = claim(catalog, &worker, &tenant).await {
                assert_eq!(job.worker, worker);
                claimed.push(job.dump.id);
            }
            claimed
        }
    });
    let mut seen = BTreeSet::new();
    for claimed in join_all(claimers).await {
        for id in claimed {
            assert!(seen.insert(id.clone()), "{id} was claimed twice");
        }
    }
    assert_eq!(seen, queued);
}

/// The holder renews its lease; another worker's renewal, or one after the job ended, is a
/// `Conflict`; an unknown dump is `NotFound`.
pub async fn test_catalog_renew_lease_only_by_the_holder(catalog: &dyn Catalog) {
    let tenant = unique_tenant("renew");
    let id = register_queued(catalog, &tenant, 100).await;
    let job = catalog
        .claim_job("worker-a", Duration::from_secs(1), Some(&tenant))
        .await
        .expect("claim")
        .expect("a queued job");
    let renewed = catalog
        .renew_lease(&id, "worker-a", LONG_LEASE)
        .await
        .expect("renew");
    assert!(
        renewed >= job.lease_expires_at_unix_ms + 599_000,
        "{renewed} extends {job:?}"
    );
    assert_conflict(
        catalog.renew_lease(&id, "worker-b", LONG_LEASE).await,
        "renewal by another worker",
    );
    // The renewed lease keeps the job from other claimers.
    assert!(claim(catalog, "worker-b", &tenant).await.is_none());
    catalog
        .complete_job(&id, "worker-a", 1, 0)
        .await
        .expect("complete");
    assert_conflict(
        catalog.renew_lease(&id, "worker-a", LONG_LEASE).await,
        "renewal after completion",
    );
    let missing = sample_dump(&tenant, "web-1", 1, "", 999).dump_id();
    assert!(matches!(
        catalog.renew_lease(&missing, "worker-a", LONG_LEASE).await,
        Err(CatalogError::NotFound(_))
    ));
}

/// A crashed worker's lease expires and another worker claims the job (a second attempt); the
/// first worker can then neither renew, complete, fail nor release it, so the job completes
/// once, with the second worker's results.
pub async fn test_catalog_expired_lease_is_claimed_by_another_worker(catalog: &dyn Catalog) {
    let tenant = unique_tenant("expiry");
    let id = register_queued(catalog, &tenant, 100).await;
    let crashed = catalog
        .claim_job("worker-a", EXPIRING_LEASE, Some(&tenant))
        .await
        .expect("claim")
        .expect("a queued job");
    assert_eq!(crashed.attempt, 1);

    let taken_over = claim_when_expired(catalog, "worker-b", &tenant).await;
    assert_eq!(taken_over.dump.id, id);
    assert_eq!(taken_over.worker, "worker-b");
    assert_eq!(taken_over.attempt, 2);

    assert_conflict(
        catalog.renew_lease(&id, "worker-a", LONG_LEASE).await,
        "renewal by the worker that lost the lease",
    );
    assert_conflict(
        catalog.complete_job(&id, "worker-a", 1, 1).await,
        "completion by the worker that lost the lease",
    );
    assert_conflict(
        catalog.fail_job(&id, "worker-a", "late", 5).await,
        "failure by the worker that lost the lease",
    );
    assert_conflict(
        catalog.release_job(&id, "worker-a").await,
        "release by the worker that lost the lease",
    );
    catalog
        .complete_job(&id, "worker-b", 77, 2)
        .await
        .expect("complete by the new holder");
    let done = catalog.get_dump(&id).await.expect("get");
    assert_eq!(done.status, DumpStatus::Ready);
    assert_eq!((done.objects, done.bad_lines, done.attempts), (77, 2, 2));
    assert_conflict(
        catalog.complete_job(&id, "worker-b", 77, 2).await,
        "a second completion",
    );
}

/// A failed job goes back to the queue until it has had `max_attempts` attempts, then fails for
/// good with the reason; only the holder may fail it; an explicit enqueue starts it afresh.
pub async fn test_catalog_fail_job_retries_until_max_attempts(catalog: &dyn Catalog) {
    const MAX_ATTEMPTS: u32 = 3;
    let tenant = unique_tenant("retry");
    let id = register_queued(catalog, &tenant, 100).await;
    for attempt in 1..=MAX_ATTEMPTS {
        let job = claim(catalog, "worker-a", &tenant)
            .await
            .expect("the dump is queued again");
        assert_eq!((job.dump.id.clone(), job.attempt), (id.clone(), attempt));
        assert_conflict(
            catalog
                .fail_job(&id, "worker-b", "not mine", MAX_ATTEMPTS)
                .await,
            "failure by another worker",
        );
        let reason = format!("line 7: invalid JSON (attempt {attempt})");
        let status = catalog
            .fail_job(&id, "worker-a", &reason, MAX_ATTEMPTS)
            .await
            .expect("fail");
        let stored = catalog.get_dump(&id).await.expect("get");
        assert_eq!(stored.status, status);
        assert_eq!(stored.attempts, attempt);
        if attempt < MAX_ATTEMPTS {
            assert_eq!(status, DumpStatus::Queued);
        } else {
            assert_eq!(status, DumpStatus::Failed { reason });
        }
    }
    assert!(claim(catalog, "worker-a", &tenant).await.is_none());
    assert!(matches!(
        catalog.fail_job(&id, "worker-a", "x", 0).await,
        Err(CatalogError::Invalid(_))
    ));

    // A person retries the dump: a fresh attempt budget.
    assert!(catalog.enqueue(&id).await.expect("enqueue failed dump"));
    let queued = catalog.get_dump(&id).await.expect("get");
    assert_eq!((queued.status, queued.attempts), (DumpStatus::Queued, 0));
    let job = claim(catalog, "worker-a", &tenant).await.expect("requeued");
    assert_eq!(job.attempt, 1);
}

/// A worker shutting down gives its job back: queued again, the attempt not counted, and the
/// next claim takes it at once; only the holder may release it.
pub async fn test_catalog_release_job_keeps_the_attempt(catalog: &dyn Catalog) {
    let tenant = unique_tenant("release");
    let id = register_queued(catalog, &tenant, 100).await;
    let job = claim(catalog, "worker-a", &tenant).await.expect("claim");
    assert_eq!(job.attempt, 1);
    assert_conflict(
        catalog.release_job(&id, "worker-b").await,
        "release by another worker",
    );
    catalog.release_job(&id, "worker-a").await.expect("release");
    let released = catalog.get_dump(&id).await.expect("get");
    assert_eq!(
        (released.status, released.attempts),
        (DumpStatus::Queued, 0)
    );
    let again = claim(catalog, "worker-b", &tenant)
        .await
        .expect("a released job is claimable at once");
    assert_eq!((again.dump.id, again.attempt), (id.clone(), 1));
    assert_conflict(
        catalog.release_job(&id, "worker-a").await,
        "release after the job moved on",
    );
    let missing = sample_dump(&tenant, "web-1", 1, "", 999).dump_id();
    assert!(matches!(
        catalog.release_job(&missing, "worker-a").await,
        Err(CatalogError::NotFound(_))
    ));
}

/// Completing a job makes the dump ready with its counts and ends the job; only the holder may
/// complete it, and a dump set ingesting outside the queue is never claimed.
pub async fn test_catalog_complete_job_marks_the_dump_ready(catalog: &dyn Catalog) {
    let tenant = unique_tenant("complete");
    let id = register_queued(catalog, &tenant, 100).await;
    claim(catalog, "worker-a", &tenant).await.expect("claim");
    assert_conflict(
        catalog.complete_job(&id, "worker-b", 1, 0).await,
        "completion by another worker",
    );
    catalog
        .complete_job(&id, "worker-a", 1_234_567, 3)
        .await
        .expect("complete");
    let ready = catalog.get_dump(&id).await.expect("get");
    assert_eq!(ready.status, DumpStatus::Ready);
    assert_eq!(
        (ready.objects, ready.bad_lines, ready.attempts),
        (1_234_567, 3, 1)
    );
    assert!(claim(catalog, "worker-a", &tenant).await.is_none());
    let missing = sample_dump(&tenant, "web-1", 1, "", 999).dump_id();
    assert!(matches!(
        catalog.complete_job(&missing, "worker-a", 1, 0).await,
        Err(CatalogError::NotFound(_))
    ));

    // set_status is the queue's override: the dump it sets ingesting holds no lease, so no
    // expiry hands it to a worker.
    let outside = register_queued(catalog, &tenant, 200).await;
    catalog
        .claim_job("worker-a", EXPIRING_LEASE, Some(&tenant))
        .await
        .expect("claim")
        .expect("queued");
    catalog
        .set_status(&outside, DumpStatus::Ingesting)
        .await
        .expect("set ingesting");
    assert!(claim(catalog, "worker-b", &tenant).await.is_none());
    assert_conflict(
        catalog.complete_job(&outside, "worker-a", 1, 0).await,
        "completion after set_status took the job",
    );
}

/// The status `begin_delete` leaves behind.
fn being_deleted() -> DumpStatus {
    DumpStatus::Failed {
        reason: DELETION_REASON.to_owned(),
    }
}

/// A dump a worker holds under a live lease is neither withdrawn nor deleted (`Conflict`
/// naming the worker, nothing changed) and its worker completes it; once the ingest ended,
/// both succeed.
pub async fn test_catalog_delete_refuses_a_dump_under_a_live_lease(catalog: &dyn Catalog) {
    let tenant = unique_tenant("delete-leased");
    let id = register_queued(catalog, &tenant, 100).await;
    let job = claim(catalog, "worker-a", &tenant).await.expect("claim");
    for outcome in [
        catalog.begin_delete(&id).await.map(drop),
        catalog.delete_dump(&id).await,
    ] {
        match outcome {
            Err(CatalogError::Conflict(message)) => {
                assert!(message.contains("worker-a"), "{message}");
            }
            other => panic!("a delete under a live lease: {other:?}"),
        }
    }
    assert_eq!(
        catalog.get_dump(&id).await.expect("get"),
        job.dump,
        "a refused delete changes nothing"
    );
    catalog
        .renew_lease(&id, "worker-a", LONG_LEASE)
        .await
        .expect("the worker keeps its lease");
    catalog
        .complete_job(&id, "worker-a", 5, 0)
        .await
        .expect("the worker completes its job");
    let withdrawn = catalog
        .begin_delete(&id)
        .await
        .expect("begin the delete once the ingest ended");
    assert_eq!(withdrawn.status, being_deleted());
    catalog
        .delete_dump(&id)
        .await
        .expect("delete once the ingest ended");
    assert!(matches!(
        catalog.get_dump(&id).await,
        Err(CatalogError::NotFound(_))
    ));
}

/// A dump whose worker's lease expired (a crashed worker) can be deleted. The worker's late
/// calls then fail cleanly: `Conflict` once the delete began (it can no longer mark the dump
/// ready), `NotFound` once the row is gone; and no other worker claims the withdrawn dump.
pub async fn test_catalog_delete_takes_a_dump_whose_lease_expired(catalog: &dyn Catalog) {
    let tenant = unique_tenant("delete-expired");
    let id = register_queued(catalog, &tenant, 100).await;
    catalog
        .claim_job("worker-a", EXPIRING_LEASE, Some(&tenant))
        .await
        .expect("claim")
        .expect("a queued job");
    let deadline = Instant::now() + EXPIRY_DEADLINE;
    let withdrawn = loop {
        match catalog.begin_delete(&id).await {
            Ok(withdrawn) => break withdrawn,
            Err(CatalogError::Conflict(_)) => {}
            Err(error) => panic!("begin_delete after the lease expired: {error:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the lease on {id} did not expire within {EXPIRY_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(withdrawn.status, being_deleted());
    assert_conflict(
        catalog.renew_lease(&id, "worker-a", LONG_LEASE).await,
        "renewal after the delete began",
    );
    assert_conflict(
        catalog.complete_job(&id, "worker-a", 1, 0).await,
        "completion after the delete began",
    );
    assert!(
        claim(catalog, "worker-b", &tenant).await.is_none(),
        "a dump being deleted is never claimed"
    );
    catalog.delete_dump(&id).await.expect("delete");
    let late: Vec<Result<()>> = vec![
        catalog
            .renew_lease(&id, "worker-a", LONG_LEASE)
            .await
            .map(drop),
        catalog.complete_job(&id, "worker-a", 1, 0).await,
        catalog.fail_job(&id, "worker-a", "late", 3).await.map(drop),
        catalog.release_job(&id, "worker-a").await,
    ];
    for outcome in late {
        assert!(
            matches!(outcome, Err(CatalogError::NotFound(_))),
            "a late call of the worker after the delete: {outcome:?}"
        );
    }
}

/// `begin_delete` withdraws a dump in any state but a live ingest: it becomes failed with
/// [`DELETION_REASON`], every other field kept, leaves the queue and the `ready` listing, and
/// a second call changes nothing. Only `delete_dump` removes the row; other dumps stay as
/// they were.
pub async fn test_catalog_begin_delete_withdraws_the_dump(catalog: &dyn Catalog) {
    let tenant = unique_tenant("begin-delete");
    let queued = register_queued(catalog, &tenant, 100).await;
    let ready = register(catalog, sample_dump(&tenant, "web-1", 1, "", 200)).await;
    catalog.mark_ready(&ready, 10, 1).await.expect("ready");
    // Ingesting outside the queue (an embedded import) holds no lease to wait for.
    let importing = register(catalog, sample_dump(&tenant, "web-1", 1, "", 300)).await;
    catalog
        .set_status(&importing, DumpStatus::Ingesting)
        .await
        .expect("set ingesting");
    let kept = register(catalog, sample_dump(&tenant, "web-2", 2, "", 400)).await;
    catalog.mark_ready(&kept, 7, 0).await.expect("ready");
    let kept_before = catalog.get_dump(&kept).await.expect("get kept");

    for id in [&queued, &ready, &importing] {
        let before = catalog.get_dump(id).await.expect("get");
        let withdrawn = catalog.begin_delete(id).await.expect("begin delete");
        // Withdrawn from `ready`, the dump loses its ownership pass too.
        let expected = DumpRecord {
            status: being_deleted(),
            ownership: None,
            ownership_attempts: 0,
            ..before
        };
        assert_eq!(withdrawn, expected);
        assert_eq!(catalog.get_dump(id).await.expect("get withdrawn"), expected);
        assert_eq!(
            catalog.begin_delete(id).await.expect("begin delete again"),
            expected
        );
    }
    assert!(
        claim(catalog, "worker-a", &tenant).await.is_none(),
        "the withdrawn queued dump is not claimed"
    );
    let ready_listing = catalog
        .list_dumps(&DumpFilter {
            status: Some(DumpStatusKind::Ready),
            ..DumpFilter::for_tenant(&tenant)
        })
        .await
        .expect("list ready");
    assert_eq!(ids(&ready_listing), vec![kept.clone()]);
    for id in [&queued, &ready, &importing] {
        catalog.delete_dump(id).await.expect("delete");
    }
    let listed = catalog
        .list_dumps(&DumpFilter::for_tenant(&tenant))
        .await
        .expect("list");
    assert_eq!(listed, vec![kept_before]);
}

/// `list_dumps_taken_before` returns a tenant's dumps taken strictly before the cutoff, in
/// any state, oldest first with ties by id, at most `limit` of them, never another tenant's.
pub async fn test_catalog_list_dumps_taken_before_finds_old_dumps(catalog: &dyn Catalog) {
    let tenant = unique_tenant("taken-before");
    let other_tenant = unique_tenant("taken-before-other");
    let newest = register(catalog, sample_dump(&tenant, "web-1", 1, "", 300)).await;
    let tied_a = register(catalog, sample_dump(&tenant, "web-2", 2, "", 100)).await;
    let middle = register(catalog, sample_dump(&tenant, "web-1", 1, "", 200)).await;
    let tied_b = register(catalog, sample_dump(&tenant, "web-1", 1, "", 100)).await;
    let at_cutoff = register(catalog, sample_dump(&tenant, "web-1", 1, "", 400)).await;
    register(catalog, sample_dump(&other_tenant, "web-1", 1, "", 50)).await;
    catalog.mark_ready(&middle, 3, 0).await.expect("ready");
    catalog
        .mark_failed(&newest, "bad dump")
        .await
        .expect("failed");
    let mut tied = vec![tied_a, tied_b];
    tied.sort();
    let mut expected = tied;
    expected.extend([middle, newest]);

    let list = |cutoff: i64, limit: usize| {
        let tenant = tenant.clone();
        async move {
            catalog
                .list_dumps_taken_before(Some(&tenant), cutoff, limit)
                .await
        }
    };
    let all = list(400, 100).await.expect("list before the cutoff");
    assert_eq!(ids(&all), expected);
    assert!(!ids(&all).contains(&at_cutoff), "the cutoff is exclusive");
    assert!(all.iter().all(|record| record.process.tenant == tenant));
    let first_two = list(400, 2).await.expect("list with a limit");
    assert_eq!(ids(&first_two), expected[..2].to_vec());
    assert!(list(100, 100).await.expect("list none").is_empty());
    for invalid in [
        catalog.list_dumps_taken_before(Some(""), 400, 10).await,
        catalog.list_dumps_taken_before(Some(&tenant), 400, 0).await,
    ] {
        assert!(
            matches!(invalid, Err(CatalogError::Invalid(_))),
            "{invalid:?}"
        );
    }
}

/// `object_key_shared` tells whether another registered dump names the same file.
pub async fn test_catalog_object_key_shared_finds_other_dumps(catalog: &dyn Catalog) {
    let tenant = unique_tenant("shared-key");
    let shared_key = format!("dumps/{tenant}/web-1/1-/registered-by-hand.dump");
    let mut first = sample_dump(&tenant, "web-1", 1, "", 100);
    first.object_key = Some(shared_key.clone());
    let mut second = sample_dump(&tenant, "web-2", 2, "", 100);
    second.object_key = Some(shared_key.clone());
    let own = sample_dump(&tenant, "web-1", 1, "", 200);
    let own_key = own.object_key.clone().expect("sample dumps have a key");
    let first = register(catalog, first).await;
    let second = register(catalog, second).await;
    let own = register(catalog, own).await;

    let shared = |id: DumpId, key: String| async move {
        catalog
            .object_key_shared(&id, &key)
            .await
            .expect("look for other dumps with the key")
    };
    assert!(shared(first.clone(), shared_key.clone()).await);
    assert!(shared(second.clone(), shared_key.clone()).await);
    assert!(!shared(own.clone(), own_key).await);
    catalog.delete_dump(&second).await.expect("delete");
    assert!(!shared(first, shared_key).await, "the other dump is gone");
}

/// `list_dumps_taken_before` without a tenant spans every tenant, oldest first. It lists
/// whatever the catalog holds, so it needs a catalog no other test registers old dumps in.
pub async fn check_list_dumps_taken_before_spans_tenants(catalog: &dyn Catalog) {
    let first = register(
        catalog,
        sample_dump(&unique_tenant("span-old-a"), "web-1", 1, "", 100),
    )
    .await;
    let second = register(
        catalog,
        sample_dump(&unique_tenant("span-old-b"), "web-1", 1, "", 50),
    )
    .await;
    register(
        catalog,
        sample_dump(&unique_tenant("span-old-a"), "web-1", 1, "", 500),
    )
    .await;
    let listed = catalog
        .list_dumps_taken_before(None, 200, 10)
        .await
        .expect("list every tenant's old dumps");
    assert_eq!(ids(&listed), vec![second, first]);
}

/// A claim without a tenant takes every tenant's queued dumps, oldest registered first. It
/// claims whatever the catalog holds, so it needs a catalog no other test queues jobs in.
pub async fn check_claim_job_spans_tenants(catalog: &dyn Catalog) {
    let first = register_queued(catalog, &unique_tenant("span-a"), 100).await;
    let second = register_queued(catalog, &unique_tenant("span-b"), 100).await;
    let mut claimed = Vec::new();
    while let Some(job) = catalog
        .claim_job("worker-a", LONG_LEASE, None)
        .await
        .expect("claim from any tenant")
    {
        claimed.push(job.dump.id);
    }
    assert_eq!(claimed, vec![first.clone(), second.clone()]);

    // So does an ownership claim, once the ingests completed (in the other order).
    for id in [&second, &first] {
        catalog
            .complete_job(id, "worker-a", 1, 0)
            .await
            .expect("complete");
    }
    let mut owned = Vec::new();
    while let Some(job) = catalog
        .claim_ownership_job("owner-a", LONG_LEASE, None)
        .await
        .expect("claim an ownership pass from any tenant")
    {
        owned.push(job.dump.id);
    }
    assert_eq!(owned, vec![first, second]);
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

/// `register_and_enqueue` creates a dump queued, queues one that was only registered, and
/// leaves any later state alone; the queued dump is claimable at once.
pub async fn test_catalog_register_and_enqueue_queues_once(catalog: &dyn Catalog) {
    let tenant = unique_tenant("register-queue");
    let fresh = sample_dump(&tenant, "web-1", 1, "a", 1_700_000_000);
    let (record, created) = catalog
        .register_and_enqueue(fresh.clone())
        .await
        .expect("register and enqueue");
    assert!(created);
    assert_eq!(record.status, DumpStatus::Queued);
    assert_eq!(record.object_key, fresh.object_key);
    let (again, created_again) = catalog
        .register_and_enqueue(fresh.clone())
        .await
        .expect("register and enqueue again");
    assert!(!created_again);
    assert_eq!(again, record, "a second upload changes nothing");

    let uploaded = sample_dump(&tenant, "web-1", 2, "a", 1_700_000_000);
    let id = register(catalog, uploaded.clone()).await;
    let (queued, created) = catalog
        .register_and_enqueue(uploaded)
        .await
        .expect("queue an uploaded dump");
    assert!(!created);
    assert_eq!((queued.id.clone(), queued.status), (id, DumpStatus::Queued));

    let job = catalog
        .claim_job(
            "register-queue-worker",
            Duration::from_secs(60),
            Some(&tenant),
        )
        .await
        .expect("claim")
        .expect("a queued dump is claimable");
    assert_eq!(job.dump.id, record.id, "the oldest registration first");
    catalog
        .fail_job(&job.dump.id, &job.worker, "bad dump", 1)
        .await
        .expect("fail");
    let (failed, _) = catalog
        .register_and_enqueue(fresh)
        .await
        .expect("re-upload a failed dump");
    assert_eq!(failed.status.failure_reason(), Some("bad dump"));
}

/// A trace context as the gateway stores it: a `traceparent`, then a `tracestate`.
const UPLOAD_TRACE_CONTEXT: &str =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=value";

/// The upload's trace context is kept by `register_and_enqueue_traced` (for a new dump, and
/// for a registered one it queues) and comes back with the job; a dump queued without one, or
/// an upload repeated with another, changes nothing.
pub async fn test_catalog_jobs_carry_the_upload_trace_context(catalog: &dyn Catalog) {
    let tenant = unique_tenant("trace-context");
    let traced = sample_dump(&tenant, "web-1", 1, "", 100);
    let (record, created) = catalog
        .register_and_enqueue_traced(traced.clone(), Some(UPLOAD_TRACE_CONTEXT))
        .await
        .expect("register and enqueue a traced upload");
    assert!(created);
    catalog
        .register_and_enqueue_traced(
            traced,
            Some("00-11111111111111111111111111111111-2222222222222222-01"),
        )
        .await
        .expect("the same upload again");

    let registered_first = sample_dump(&tenant, "web-1", 2, "", 100);
    let registered_id = register(catalog, registered_first.clone()).await;
    catalog
        .register_and_enqueue_traced(registered_first, Some(UPLOAD_TRACE_CONTEXT))
        .await
        .expect("queue a registered dump with a trace context");

    let untraced_id = register_queued(catalog, &tenant, 300).await;

    let first = claim(catalog, "worker-a", &tenant).await.expect("a job");
    assert_eq!(first.dump.id, record.id);
    assert_eq!(first.trace_context.as_deref(), Some(UPLOAD_TRACE_CONTEXT));
    let second = claim(catalog, "worker-a", &tenant).await.expect("a job");
    assert_eq!(second.dump.id, registered_id);
    assert_eq!(second.trace_context.as_deref(), Some(UPLOAD_TRACE_CONTEXT));
    let third = claim(catalog, "worker-a", &tenant).await.expect("a job");
    assert_eq!(third.dump.id, untraced_id);
    assert_eq!(third.trace_context, None);

    let outcome = catalog
        .register_and_enqueue_traced(sample_dump(&tenant, "web-1", 3, "", 100), Some("00-\0"))
        .await;
    assert!(
        matches!(outcome, Err(CatalogError::Invalid(_))),
        "{outcome:?}"
    );
}

/// A claim says whether it took the job off the queue or over from a worker whose lease
/// expired.
pub async fn test_catalog_claim_job_reports_a_take_over(catalog: &dyn Catalog) {
    let tenant = unique_tenant("take-over");
    register_queued(catalog, &tenant, 100).await;
    let crashed = catalog
        .claim_job("worker-a", EXPIRING_LEASE, Some(&tenant))
        .await
        .expect("claim")
        .expect("a queued job");
    assert!(!crashed.after_expired_lease, "a claim off the queue");
    let taken_over = claim_when_expired(catalog, "worker-b", &tenant).await;
    assert_eq!(taken_over.dump.id, crashed.dump.id);
    assert!(taken_over.after_expired_lease, "a take-over");
}

/// `queue_stats` counts a tenant's queued and ingesting dumps (never uploaded, ready or failed
/// ones) and dates its oldest queued one; without a tenant it counts at least as much.
pub async fn test_catalog_queue_stats_counts_the_backlog(catalog: &dyn Catalog) {
    let tenant = unique_tenant("queue-stats");
    let empty = catalog
        .queue_stats(Some(&tenant))
        .await
        .expect("queue stats");
    assert_eq!(empty, QueueStats::default());

    let oldest = register_queued(catalog, &tenant, 100).await;
    let next = register_queued(catalog, &tenant, 200).await;
    register(catalog, sample_dump(&tenant, "web-2", 1, "", 100)).await;
    let failed = register(catalog, sample_dump(&tenant, "web-3", 1, "", 100)).await;
    catalog
        .mark_failed(&failed, "bad dump")
        .await
        .expect("fail");
    let queued = catalog
        .queue_stats(Some(&tenant))
        .await
        .expect("queue stats");
    let oldest_record = catalog.get_dump(&oldest).await.expect("get");
    assert_eq!((queued.queued, queued.ingesting), (2, 0));
    assert_eq!(
        queued.oldest_queued_registered_at_unix,
        Some(oldest_record.registered_at_unix)
    );

    let job = claim(catalog, "worker-a", &tenant).await.expect("a job");
    assert_eq!(job.dump.id, oldest);
    let working = catalog
        .queue_stats(Some(&tenant))
        .await
        .expect("queue stats");
    let next_record = catalog.get_dump(&next).await.expect("get");
    assert_eq!((working.queued, working.ingesting), (1, 1));
    assert_eq!(
        working.oldest_queued_registered_at_unix,
        Some(next_record.registered_at_unix)
    );
    let everywhere = catalog.queue_stats(None).await.expect("queue stats");
    assert!(
        everywhere.queued >= 1 && everywhere.ingesting >= 1,
        "{everywhere:?}"
    );

    catalog
        .complete_job(&oldest, "worker-a", 1, 0)
        .await
        .expect("complete");
    let done = catalog
        .queue_stats(Some(&tenant))
        .await
        .expect("queue stats");
    assert_eq!((done.queued, done.ingesting), (1, 0));
}

/// A successful ingest queues the ownership pass of a dump with an object key, by the queue
/// (`complete_job`) or not (`mark_ready`); a dump without one, or not ready yet, has none.
pub async fn test_catalog_ownership_is_queued_after_ingest_with_an_object_key(
    catalog: &dyn Catalog,
) {
    let tenant = unique_tenant("ownership-queued");
    let with_key = register_queued(catalog, &tenant, 100).await;
    let mut local = sample_dump(&tenant, "web-2", 2, "", 100);
    local.object_key = None;
    let without_key = register(catalog, local).await;
    assert!(catalog.enqueue(&without_key).await.expect("enqueue"));
    for id in [&with_key, &without_key] {
        assert_eq!(
            ownership_of(catalog, id).await,
            (None, 0),
            "queued: no pass"
        );
    }
    for expected in [&with_key, &without_key] {
        let job = claim(catalog, "worker-a", &tenant).await.expect("a job");
        assert_eq!(&job.dump.id, expected);
        assert_eq!((job.dump.ownership, job.dump.ownership_attempts), (None, 0));
        catalog
            .complete_job(&job.dump.id, "worker-a", 10, 0)
            .await
            .expect("complete");
    }
    assert_eq!(
        ownership_of(catalog, &with_key).await,
        (Some(OwnershipState::Queued), 0)
    );
    assert_eq!(ownership_of(catalog, &without_key).await, (None, 0));

    let imported_with_key = register_ready(catalog, &tenant, 200).await;
    assert_eq!(
        ownership_of(catalog, &imported_with_key).await,
        (Some(OwnershipState::Queued), 0)
    );
    let mut imported = sample_dump(&tenant, "web-2", 2, "", 200);
    imported.object_key = None;
    let imported_without_key = register(catalog, imported).await;
    catalog
        .mark_ready(&imported_without_key, 10, 0)
        .await
        .expect("mark ready");
    assert_eq!(
        ownership_of(catalog, &imported_without_key).await,
        (None, 0)
    );
    let uploaded = register(catalog, sample_dump(&tenant, "web-3", 3, "", 100)).await;
    assert_eq!(ownership_of(catalog, &uploaded).await, (None, 0));

    // Only the dumps with a key are claimable, oldest registration first.
    let first = claim_ownership(catalog, "owner-a", &tenant)
        .await
        .expect("a pass");
    let second = claim_ownership(catalog, "owner-a", &tenant)
        .await
        .expect("a pass");
    assert_eq!(
        (first.dump.id, second.dump.id),
        (with_key, imported_with_key)
    );
    assert!(claim_ownership(catalog, "owner-a", &tenant).await.is_none());
}

/// The holder claims, renews and completes a pass (ready, or skipped with a reason); a claim
/// counts an ownership attempt and records the lease; a finished pass is not claimed again and
/// its worker's late calls are `Conflict`; unknown dumps are `NotFound`; bad arguments
/// `Invalid`.
pub async fn test_catalog_ownership_claim_renew_and_complete(catalog: &dyn Catalog) {
    let tenant = unique_tenant("ownership-complete");
    let ready = register_ready(catalog, &tenant, 100).await;
    let skipped = register_ready(catalog, &tenant, 200).await;
    let before_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_millis(),
    )
    .expect("milliseconds fit in i64");
    let job = catalog
        .claim_ownership_job("owner-a", Duration::from_secs(1), Some(&tenant))
        .await
        .expect("claim")
        .expect("a queued pass");
    assert_eq!(job.dump.id, ready);
    assert_eq!(job.worker, "owner-a");
    assert_eq!((job.attempt, job.dump.ownership_attempts), (1, 1));
    assert_eq!(job.dump.ownership, Some(OwnershipState::Running));
    assert_eq!(job.dump.status, DumpStatus::Ready, "the dump stays ready");
    assert!(!job.after_expired_lease);
    // Generous slack: PostgreSQL's clock need not agree with this machine's to the second.
    assert!(job.lease_expires_at_unix_ms > before_ms - 30_000, "{job:?}");
    assert_eq!(catalog.get_dump(&ready).await.expect("get"), job.dump);

    let renewed = catalog
        .renew_ownership_lease(&ready, "owner-a", LONG_LEASE)
        .await
        .expect("renew");
    assert!(
        renewed >= job.lease_expires_at_unix_ms + 599_000,
        "{renewed} extends {job:?}"
    );
    catalog
        .complete_ownership_job(&ready, "owner-a", OwnershipOutcome::Ready)
        .await
        .expect("complete");
    let done = catalog.get_dump(&ready).await.expect("get");
    assert_eq!(
        (done.status, done.ownership, done.ownership_attempts),
        (DumpStatus::Ready, Some(OwnershipState::Ready), 1)
    );

    let second = claim_ownership(catalog, "owner-b", &tenant)
        .await
        .expect("the next pass");
    assert_eq!(second.dump.id, skipped);
    let reason = "the dump is larger than the pass's memory limit";
    catalog
        .complete_ownership_job(
            &skipped,
            "owner-b",
            OwnershipOutcome::Skipped {
                reason: reason.to_owned(),
            },
        )
        .await
        .expect("complete as skipped");
    assert_eq!(
        ownership_of(catalog, &skipped).await,
        (
            Some(OwnershipState::Skipped {
                reason: reason.to_owned()
            }),
            1
        )
    );
    assert!(claim_ownership(catalog, "owner-a", &tenant).await.is_none());

    assert_conflict(
        catalog
            .renew_ownership_lease(&ready, "owner-a", LONG_LEASE)
            .await,
        "renewal after completion",
    );
    assert_conflict(
        catalog
            .complete_ownership_job(&ready, "owner-a", OwnershipOutcome::Ready)
            .await,
        "a second completion",
    );
    let missing = sample_dump(&tenant, "web-1", 1, "", 999).dump_id();
    let outcomes: Vec<Result<()>> = vec![
        catalog
            .renew_ownership_lease(&missing, "owner-a", LONG_LEASE)
            .await
            .map(drop),
        catalog
            .complete_ownership_job(&missing, "owner-a", OwnershipOutcome::Ready)
            .await,
        catalog
            .fail_ownership_job(&missing, "owner-a", "x", 3)
            .await
            .map(drop),
        catalog.release_ownership_job(&missing, "owner-a").await,
    ];
    for outcome in outcomes {
        assert!(
            matches!(outcome, Err(CatalogError::NotFound(_))),
            "{outcome:?}"
        );
    }
    let invalid: Vec<Result<()>> = vec![
        catalog
            .claim_ownership_job("", LONG_LEASE, Some(&tenant))
            .await
            .map(drop),
        catalog
            .claim_ownership_job("owner-a", Duration::ZERO, Some(&tenant))
            .await
            .map(drop),
        catalog
            .claim_ownership_job("bad\0worker", LONG_LEASE, Some(&tenant))
            .await
            .map(drop),
        catalog
            .complete_ownership_job(
                &ready,
                "owner-a",
                OwnershipOutcome::Skipped {
                    reason: "a\0b".to_owned(),
                },
            )
            .await,
        catalog
            .fail_ownership_job(&ready, "owner-a", "x", 0)
            .await
            .map(drop),
    ];
    for outcome in invalid {
        assert!(
            matches!(outcome, Err(CatalogError::Invalid(_))),
            "{outcome:?}"
        );
    }
}

/// A failed pass goes back to the queue until it has had `max_attempts` attempts, then fails
/// for good with the reason, the dump still ready; a new ingest starts it afresh.
pub async fn test_catalog_ownership_fail_retries_until_max_attempts(catalog: &dyn Catalog) {
    const MAX_ATTEMPTS: u32 = 3;
    let tenant = unique_tenant("ownership-retry");
    let id = register_ready(catalog, &tenant, 100).await;
    for attempt in 1..=MAX_ATTEMPTS {
        let job = claim_ownership(catalog, "owner-a", &tenant)
            .await
            .expect("the pass is queued again");
        assert_eq!((job.dump.id.clone(), job.attempt), (id.clone(), attempt));
        let reason = format!("object gone (attempt {attempt})");
        let state = catalog
            .fail_ownership_job(&id, "owner-a", &reason, MAX_ATTEMPTS)
            .await
            .expect("fail");
        let stored = catalog.get_dump(&id).await.expect("get");
        assert_eq!(stored.ownership.as_ref(), Some(&state));
        assert_eq!(stored.ownership_attempts, attempt);
        assert_eq!(stored.status, DumpStatus::Ready);
        if attempt < MAX_ATTEMPTS {
            assert_eq!(state, OwnershipState::Queued);
        } else {
            assert_eq!(state, OwnershipState::Failed { reason });
        }
    }
    assert!(claim_ownership(catalog, "owner-a", &tenant).await.is_none());
    assert_conflict(
        catalog
            .fail_ownership_job(&id, "owner-a", "late", MAX_ATTEMPTS)
            .await,
        "failing a pass that already failed",
    );

    // Marking the dump ready again (a new ingest) queues a fresh pass with a full budget.
    catalog.mark_ready(&id, 10, 0).await.expect("ready again");
    assert_eq!(
        ownership_of(catalog, &id).await,
        (Some(OwnershipState::Queued), 0)
    );
    let job = claim_ownership(catalog, "owner-a", &tenant)
        .await
        .expect("queued afresh");
    assert_eq!(job.attempt, 1);
}

/// A worker shutting down gives its pass back: queued again, the attempt not counted, and the
/// next claim takes it at once.
pub async fn test_catalog_ownership_release_gives_back_the_attempt(catalog: &dyn Catalog) {
    let tenant = unique_tenant("ownership-release");
    let id = register_ready(catalog, &tenant, 100).await;
    let job = claim_ownership(catalog, "owner-a", &tenant)
        .await
        .expect("claim");
    assert_eq!(job.attempt, 1);
    catalog
        .release_ownership_job(&id, "owner-a")
        .await
        .expect("release");
    assert_eq!(
        ownership_of(catalog, &id).await,
        (Some(OwnershipState::Queued), 0)
    );
    let again = claim_ownership(catalog, "owner-b", &tenant)
        .await
        .expect("a released pass is claimable at once");
    assert_eq!((again.dump.id, again.attempt), (id.clone(), 1));
    assert!(!again.after_expired_lease);
    assert_conflict(
        catalog.release_ownership_job(&id, "owner-a").await,
        "release after the pass moved on",
    );
}

/// A crashed worker's ownership lease expires and another worker takes the pass over (a
/// second attempt); the first can then neither renew, complete, fail nor release it.
pub async fn test_catalog_ownership_expired_lease_is_claimed_by_another_worker(
    catalog: &dyn Catalog,
) {
    let tenant = unique_tenant("ownership-expiry");
    let id = register_ready(catalog, &tenant, 100).await;
    let crashed = catalog
        .claim_ownership_job("owner-a", EXPIRING_LEASE, Some(&tenant))
        .await
        .expect("claim")
        .expect("a queued pass");
    assert_eq!(crashed.attempt, 1);
    let taken_over = claim_ownership_when_expired(catalog, "owner-b", &tenant).await;
    assert_eq!(taken_over.dump.id, id);
    assert_eq!(
        (taken_over.worker.as_str(), taken_over.attempt),
        ("owner-b", 2)
    );
    assert!(taken_over.after_expired_lease, "a take-over");

    assert_conflict(
        catalog
            .renew_ownership_lease(&id, "owner-a", LONG_LEASE)
            .await,
        "renewal by the worker that lost the lease",
    );
    assert_conflict(
        catalog
            .complete_ownership_job(&id, "owner-a", OwnershipOutcome::Ready)
            .await,
        "completion by the worker that lost the lease",
    );
    assert_conflict(
        catalog.fail_ownership_job(&id, "owner-a", "late", 5).await,
        "failure by the worker that lost the lease",
    );
    assert_conflict(
        catalog.release_ownership_job(&id, "owner-a").await,
        "release by the worker that lost the lease",
    );
    catalog
        .complete_ownership_job(&id, "owner-b", OwnershipOutcome::Ready)
        .await
        .expect("complete by the new holder");
    assert_eq!(
        ownership_of(catalog, &id).await,
        (Some(OwnershipState::Ready), 2)
    );
}

/// Only the holder of a running pass may end it: another worker, a pass still queued, and a
/// dump that is not ready get `Conflict`, and the ingest queue's calls do not touch the pass.
pub async fn test_catalog_ownership_only_the_holder_ends_the_pass(catalog: &dyn Catalog) {
    let tenant = unique_tenant("ownership-holder");
    let held = register_ready(catalog, &tenant, 100).await;
    let queued_pass = register_ready(catalog, &tenant, 200).await;
    let ingesting = register_queued(catalog, &tenant, 300).await;
    claim_ownership(catalog, "owner-a", &tenant)
        .await
        .expect("claim the oldest pass");
    assert_eq!(
        claim(catalog, "worker-a", &tenant)
            .await
            .expect("the ingest job")
            .dump
            .id,
        ingesting
    );
    for (id, what) in [
        (&held, "another worker's pass"),
        (&queued_pass, "a pass nobody holds"),
        (&ingesting, "a dump still ingesting"),
    ] {
        let worker = if id == &held { "owner-b" } else { "owner-a" };
        assert_conflict(
            catalog.renew_ownership_lease(id, worker, LONG_LEASE).await,
            &format!("renewal of {what}"),
        );
        assert_conflict(
            catalog
                .complete_ownership_job(id, worker, OwnershipOutcome::Ready)
                .await,
            &format!("completion of {what}"),
        );
        assert_conflict(
            catalog.fail_ownership_job(id, worker, "x", 3).await,
            &format!("failure of {what}"),
        );
        assert_conflict(
            catalog.release_ownership_job(id, worker).await,
            &format!("release of {what}"),
        );
    }
    // The ingest worker's lease is not the pass's, nor the other way round.
    assert_conflict(
        catalog
            .complete_ownership_job(&ingesting, "worker-a", OwnershipOutcome::Ready)
            .await,
        "completion of a pass by the ingest's worker",
    );
    assert_conflict(
        catalog.complete_job(&held, "owner-a", 1, 0).await,
        "completion of an ingest by the pass's worker",
    );
    assert_eq!(
        ownership_of(catalog, &held).await,
        (Some(OwnershipState::Running), 1)
    );
    assert_eq!(
        ownership_of(catalog, &queued_pass).await,
        (Some(OwnershipState::Queued), 0)
    );
}

/// A dump that leaves `ready` drops its pass: set failed (the pass's worker then loses it),
/// enqueued again and claimed for ingest, it has none; the re-ingest's completion queues a new
/// pass with no attempts.
pub async fn test_catalog_reingest_clears_the_ownership_state(catalog: &dyn Catalog) {
    let tenant = unique_tenant("ownership-reingest");
    let id = register_queued(catalog, &tenant, 100).await;
    claim(catalog, "worker-a", &tenant).await.expect("claim");
    catalog
        .complete_job(&id, "worker-a", 10, 0)
        .await
        .expect("complete");
    claim_ownership(catalog, "owner-a", &tenant)
        .await
        .expect("claim the pass");

    catalog
        .mark_failed(&id, "re-ingest asked for")
        .await
        .expect("fail the dump");
    assert_eq!(ownership_of(catalog, &id).await, (None, 0));
    assert_conflict(
        catalog
            .complete_ownership_job(&id, "owner-a", OwnershipOutcome::Ready)
            .await,
        "completion of a pass the dump dropped",
    );
    assert!(catalog.enqueue(&id).await.expect("enqueue"));
    assert_eq!(ownership_of(catalog, &id).await, (None, 0));
    let job = claim(catalog, "worker-a", &tenant)
        .await
        .expect("re-ingest");
    assert_eq!((job.dump.ownership, job.dump.ownership_attempts), (None, 0));
    assert!(claim_ownership(catalog, "owner-a", &tenant).await.is_none());
    catalog
        .complete_job(&id, "worker-a", 12, 0)
        .await
        .expect("complete the re-ingest");
    assert_eq!(
        ownership_of(catalog, &id).await,
        (Some(OwnershipState::Queued), 0)
    );

    // A finished pass is dropped too, and set_status to any state but ready drops it.
    let pass = claim_ownership(catalog, "owner-a", &tenant)
        .await
        .expect("the new pass");
    assert_eq!(pass.attempt, 1);
    catalog
        .complete_ownership_job(&id, "owner-a", OwnershipOutcome::Ready)
        .await
        .expect("complete the pass");
    catalog
        .set_status(&id, DumpStatus::Ready)
        .await
        .expect("set ready");
    assert_eq!(
        ownership_of(catalog, &id).await,
        (Some(OwnershipState::Ready), 1),
        "setting a ready dump ready keeps its pass"
    );
    catalog
        .set_status(&id, DumpStatus::Queued)
        .await
        .expect("set queued");
    assert_eq!(ownership_of(catalog, &id).await, (None, 0));
}

/// A dump whose ownership pass a worker holds under a live lease is neither withdrawn nor
/// deleted (`Conflict` naming the worker, nothing changed); once the pass ended, or its lease
/// expired, both succeed and the withdrawn dump has no pass.
pub async fn test_catalog_delete_refuses_a_dump_under_a_live_ownership_lease(
    catalog: &dyn Catalog,
) {
    let tenant = unique_tenant("ownership-delete");
    let id = register_ready(catalog, &tenant, 100).await;
    let job = claim_ownership(catalog, "owner-a", &tenant)
        .await
        .expect("claim");
    for outcome in [
        catalog.begin_delete(&id).await.map(drop),
        catalog.delete_dump(&id).await,
    ] {
        match outcome {
            Err(CatalogError::Conflict(message)) => {
                assert!(message.contains("owner-a"), "{message}");
            }
            other => panic!("a delete under a live ownership lease: {other:?}"),
        }
    }
    assert_eq!(
        catalog.get_dump(&id).await.expect("get"),
        job.dump,
        "a refused delete changes nothing"
    );
    catalog
        .complete_ownership_job(&id, "owner-a", OwnershipOutcome::Ready)
        .await
        .expect("the worker completes its pass");
    let withdrawn = catalog.begin_delete(&id).await.expect("begin the delete");
    assert_eq!(withdrawn.status, being_deleted());
    assert_eq!(
        (withdrawn.ownership, withdrawn.ownership_attempts),
        (None, 0)
    );
    catalog.delete_dump(&id).await.expect("delete");

    // A crashed worker's expired lease does not hold the delete up.
    let crashed = register_ready(catalog, &tenant, 200).await;
    catalog
        .claim_ownership_job("owner-a", EXPIRING_LEASE, Some(&tenant))
        .await
        .expect("claim")
        .expect("a queued pass");
    let deadline = Instant::now() + EXPIRY_DEADLINE;
    loop {
        match catalog.begin_delete(&crashed).await {
            Ok(withdrawn) => {
                assert_eq!(withdrawn.ownership, None);
                break;
            }
            Err(CatalogError::Conflict(_)) => {}
            Err(error) => panic!("begin_delete after the lease expired: {error:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the ownership lease on {crashed} did not expire within {EXPIRY_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_conflict(
        catalog
            .complete_ownership_job(&crashed, "owner-a", OwnershipOutcome::Ready)
            .await,
        "completion after the delete began",
    );
    assert!(claim_ownership(catalog, "owner-b", &tenant).await.is_none());
    catalog.delete_dump(&crashed).await.expect("delete");
}

/// An ownership claim for one tenant takes only that tenant's passes.
pub async fn test_catalog_claim_ownership_job_honours_the_tenant(catalog: &dyn Catalog) {
    let tenant = unique_tenant("ownership-tenant");
    let other_tenant = unique_tenant("ownership-tenant-other");
    let other = register_ready(catalog, &other_tenant, 100).await;
    let own = register_ready(catalog, &tenant, 200).await;
    let job = claim_ownership(catalog, "owner-a", &tenant)
        .await
        .expect("the tenant's pass");
    assert_eq!(job.dump.id, own);
    assert!(claim_ownership(catalog, "owner-a", &tenant).await.is_none());
    let other_job = claim_ownership(catalog, "owner-a", &other_tenant)
        .await
        .expect("the other tenant's pass");
    assert_eq!(other_job.dump.id, other);
}

/// `queue_stats` counts a tenant's queued and running ownership passes, apart from its ingest
/// jobs and never finished passes.
pub async fn test_catalog_queue_stats_counts_ownership_jobs(catalog: &dyn Catalog) {
    let tenant = unique_tenant("ownership-stats");
    let first = register_ready(catalog, &tenant, 100).await;
    register_ready(catalog, &tenant, 200).await;
    register_ready(catalog, &tenant, 300).await;
    register_queued(catalog, &tenant, 400).await;
    let counts = |stats: QueueStats| {
        (
            stats.queued,
            stats.ingesting,
            stats.ownership_queued,
            stats.ownership_running,
        )
    };
    let stats = catalog.queue_stats(Some(&tenant)).await.expect("stats");
    assert_eq!(counts(stats), (1, 0, 3, 0));

    let job = claim_ownership(catalog, "owner-a", &tenant)
        .await
        .expect("claim");
    assert_eq!(job.dump.id, first);
    claim_ownership(catalog, "owner-a", &tenant)
        .await
        .expect("claim");
    let stats = catalog.queue_stats(Some(&tenant)).await.expect("stats");
    assert_eq!(counts(stats), (1, 0, 1, 2));
    let everywhere = catalog.queue_stats(None).await.expect("stats");
    assert!(
        everywhere.ownership_queued >= 1 && everywhere.ownership_running >= 2,
        "{everywhere:?}"
    );

    catalog
        .complete_ownership_job(&first, "owner-a", OwnershipOutcome::Ready)
        .await
        .expect("complete");
    let stats = catalog.queue_stats(Some(&tenant)).await.expect("stats");
    assert_eq!(counts(stats), (1, 0, 1, 1));
}

/// Runs every backend-independent behaviour against `catalog`.
pub async fn run_catalog_test_suite(catalog: &dyn Catalog) {
    test_catalog_register_dump_returns_the_record(catalog).await;
    test_catalog_register_dump_is_idempotent(catalog).await;
    test_catalog_register_and_enqueue_queues_once(catalog).await;
    test_catalog_jobs_carry_the_upload_trace_context(catalog).await;
    test_catalog_claim_job_reports_a_take_over(catalog).await;
    test_catalog_queue_stats_counts_the_backlog(catalog).await;
    test_catalog_register_dump_rejects_invalid_input(catalog).await;
    test_catalog_unknown_dump_is_not_found(catalog).await;
    test_catalog_list_dumps_orders_by_process_and_time(catalog).await;
    test_catalog_list_dumps_applies_every_filter(catalog).await;
    test_catalog_set_status_tracks_attempts_and_reasons(catalog).await;
    test_catalog_mark_ready_records_ingest_results(catalog).await;
    test_catalog_list_processes_counts_dumps(catalog).await;
    test_catalog_delete_dump_removes_it(catalog).await;
    test_catalog_delete_refuses_a_dump_under_a_live_lease(catalog).await;
    test_catalog_delete_takes_a_dump_whose_lease_expired(catalog).await;
    test_catalog_begin_delete_withdraws_the_dump(catalog).await;
    test_catalog_list_dumps_taken_before_finds_old_dumps(catalog).await;
    test_catalog_object_key_shared_finds_other_dumps(catalog).await;
    test_catalog_concurrent_registration_creates_once(catalog).await;
    test_catalog_claim_job_takes_queued_dumps_oldest_first(catalog).await;
    test_catalog_concurrent_claimers_get_disjoint_jobs(catalog).await;
    test_catalog_renew_lease_only_by_the_holder(catalog).await;
    test_catalog_expired_lease_is_claimed_by_another_worker(catalog).await;
    test_catalog_fail_job_retries_until_max_attempts(catalog).await;
    test_catalog_release_job_keeps_the_attempt(catalog).await;
    test_catalog_complete_job_marks_the_dump_ready(catalog).await;
    test_catalog_ownership_is_queued_after_ingest_with_an_object_key(catalog).await;
    test_catalog_ownership_claim_renew_and_complete(catalog).await;
    test_catalog_ownership_fail_retries_until_max_attempts(catalog).await;
    test_catalog_ownership_release_gives_back_the_attempt(catalog).await;
    test_catalog_ownership_expired_lease_is_claimed_by_another_worker(catalog).await;
    test_catalog_ownership_only_the_holder_ends_the_pass(catalog).await;
    test_catalog_reingest_clears_the_ownership_state(catalog).await;
    test_catalog_delete_refuses_a_dump_under_a_live_ownership_lease(catalog).await;
    test_catalog_claim_ownership_job_honours_the_tenant(catalog).await;
    test_catalog_queue_stats_counts_ownership_jobs(catalog).await;
}
