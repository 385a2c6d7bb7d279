//! [`SqliteCatalog`]: the embedded, durable catalog of single-node mode, one SQLite file.
//!
//! Durability: the database runs in WAL mode with `synchronous=FULL`, so a call that returned
//! `Ok` survives a crash or power loss. Schema: the numbered `.sql` files under
//! `migrations/sqlite/` are applied in order at open, each bumping `PRAGMA user_version`, all in
//! one transaction; a file written by a newer build is refused rather than guessed at.
//!
//! Concurrency: one connection behind a mutex, driven from `spawn_blocking` so SQLite's
//! blocking I/O never stalls the async runtime. Calls are therefore serialised, which is what a
//! single-node catalog needs; the distributed stack uses PostgreSQL instead. A job claim reads
//! and updates inside an IMMEDIATE transaction, which takes the file's write lock first, so
//! claimers in other processes sharing the file cannot pick the same dump either. Leases run on
//! the system clock.
//!
//! This module must not depend on any other backend.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use heapfleet_sqlite::{BlockingConnection, Migration};
use rusqlite::types::Value;
use rusqlite::{
    Connection, OptionalExtension, ToSql, TransactionBehavior, params, params_from_iter,
};

use crate::catalog::{Catalog, DELETION_REASON};
use crate::convert::{
    StoredDump, check_max_attempts, check_reason, check_retention_listing, check_tenant,
    check_worker, delete_refused, dump_not_found, from_sql_integer, lease_lost, lease_millis,
    ownership_lease_lost, ownership_outcome_parts, to_sql_integer,
};
use crate::error::{CatalogError, Result};
use crate::model::{
    DumpFilter, DumpId, DumpRecord, DumpStatus, DumpStatusKind, Job, NewDump, OwnershipOutcome,
    OwnershipState, ProcessKey, ProcessSummary, QueueStats,
};

/// The catalog's file name inside the directory given to [`SqliteCatalog::open`].
pub const CATALOG_FILE_NAME: &str = "catalog.sqlite";

/// Every schema step, in order. Append only: a released step never changes.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/sqlite/0001_create_dumps.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/sqlite/0002_add_job_leases.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/sqlite/0003_add_object_key.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/sqlite/0004_add_trace_context.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/sqlite/0005_add_ownership_job.sql"),
    },
];

/// The embedded catalog: a SQLite file in WAL mode with `synchronous=FULL`.
pub struct SqliteCatalog {
    path: PathBuf,
    connection: BlockingConnection,
}

impl fmt::Debug for SqliteCatalog {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SqliteCatalog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog in `directory`, which is created too, and brings
    /// its schema up to date.
    pub async fn open(directory: impl AsRef<Path>) -> Result<SqliteCatalog> {
        let directory = directory.as_ref().to_path_buf();
        let path = directory.join(CATALOG_FILE_NAME);
        let open_path = path.clone();
        let connection = tokio::task::spawn_blocking(move || {
            heapfleet_sqlite::open_durable(&open_path, MIGRATIONS)
        })
        .await
        .map_err(|join_error| CatalogError::Internal {
            message: "opening the catalog panicked".to_owned(),
            source: Some(join_error.into()),
        })?
        .map_err(|open_error| open_failed(&path, open_error))?;
        Ok(SqliteCatalog {
            path,
            connection: BlockingConnection::new(connection),
        })
    }

    /// Returns the database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `operation` on the connection in the blocking pool.
    async fn with_connection<T, F>(&self, operation: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        self.connection
            .run(operation)
            .await
            .map_err(|join_error| CatalogError::Internal {
                message: "catalog operation panicked".to_owned(),
                source: Some(join_error.into()),
            })?
    }
}

/// Files a failure to open the database under the variant the caller can act on.
fn open_failed(path: &Path, error: heapfleet_sqlite::OpenError) -> CatalogError {
    let message = format!("failed to open the catalog at {}", path.display());
    match error {
        heapfleet_sqlite::OpenError::NewerSchema { .. } => {
            CatalogError::Invalid(format!("{message}: {error}"))
        }
        error if error.is_transient() => CatalogError::Unavailable {
            message,
            source: error.into(),
        },
        error => CatalogError::Internal {
            message,
            source: Some(error.into()),
        },
    }
}

/// Returns a mapper that files a SQLite error under the variant the caller can act on.
fn sqlite_error(message: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> CatalogError {
    move |error| {
        let message = message.into();
        let transient = heapfleet_sqlite::is_transient(&error);
        if transient {
            CatalogError::Unavailable {
                message,
                source: error.into(),
            }
        } else {
            CatalogError::Internal {
                message,
                source: Some(error.into()),
            }
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| {
            i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The system clock in Unix milliseconds: the embedded catalog's lease clock.
fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| {
            i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The condition a job's lease holder passes: `?1` is the dump id, `?2` the worker.
const HELD_BY_WORKER: &str = "dump_id = ?1 AND status = 'ingesting' AND lease_worker = ?2";

/// The condition an ownership pass's lease holder passes: `?1` is the dump id, `?2` the worker.
const OWNERSHIP_HELD_BY_WORKER: &str = "dump_id = ?1 AND status = 'ready' \
     AND ownership_state = 'running' AND ownership_lease_worker = ?2";

/// The condition a dump passes unless a worker holds a live lease on it (on its ingest or on
/// its ownership pass), which a delete must not pull the dump from under: `?2` is the lease
/// clock's now (Unix milliseconds). A lease that expires exactly now has expired, as it has for
/// a claim. Every term is checked for NULL, so the condition is never NULL itself.
const NOT_UNDER_LIVE_LEASE: &str = "NOT ((status = 'ingesting' \
     AND lease_expires_at_unix_ms IS NOT NULL AND lease_expires_at_unix_ms > ?2) \
     OR (ownership_state IS NOT NULL AND ownership_state = 'running' \
     AND ownership_lease_expires_at_unix_ms IS NOT NULL \
     AND ownership_lease_expires_at_unix_ms > ?2))";

/// The `SET` list that drops a dump's ownership pass and any lease on it: part of every change
/// that takes a dump out of `ready`.
const DROP_OWNERSHIP: &str = "ownership_state = NULL, ownership_reason = NULL, \
     ownership_attempts = 0, ownership_lease_worker = NULL, \
     ownership_lease_expires_at_unix_ms = NULL";

/// The `SET` list that queues a fresh ownership pass for a dump with a file in object storage
/// (any earlier pass dropped) and none for a dump without: part of every successful ingest.
const QUEUE_OWNERSHIP: &str = "ownership_state = CASE WHEN object_key IS NULL THEN NULL \
     ELSE 'queued' END, ownership_reason = NULL, ownership_attempts = 0, \
     ownership_lease_worker = NULL, ownership_lease_expires_at_unix_ms = NULL";

/// The columns `StoredDump::from_row` reads, in order.
const DUMP_COLUMNS: &str = "dump_id, tenant, host, pid, instance, taken_at_unix, jobs, role, labels, \
     file_name, size_bytes, content_sha256, gc_count, rss_bytes, status, failure_reason, attempts, \
     objects, bad_lines, registered_at_unix, object_key, ownership_state, ownership_reason, \
     ownership_attempts";

impl StoredDump {
    /// Reads a row selected with [`DUMP_COLUMNS`].
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredDump> {
        Ok(StoredDump {
            dump_id: row.get(0)?,
            tenant: row.get(1)?,
            host: row.get(2)?,
            pid: row.get(3)?,
            instance: row.get(4)?,
            taken_at_unix: row.get(5)?,
            jobs: row.get(6)?,
            role: row.get(7)?,
            labels: row.get(8)?,
            file_name: row.get(9)?,
            size_bytes: row.get(10)?,
            content_sha256: row.get(11)?,
            gc_count: row.get(12)?,
            rss_bytes: row.get(13)?,
            status: row.get(14)?,
            failure_reason: row.get(15)?,
            attempts: row.get(16)?,
            objects: row.get(17)?,
            bad_lines: row.get(18)?,
            registered_at_unix: row.get(19)?,
            object_key: row.get(20)?,
            ownership_state: row.get(21)?,
            ownership_reason: row.get(22)?,
            ownership_attempts: row.get(23)?,
        })
    }
}

fn select_dump(connection: &Connection, id: &DumpId) -> Result<Option<DumpRecord>> {
    let stored = connection
        .query_row(
            &format!("SELECT {DUMP_COLUMNS} FROM dumps WHERE dump_id = ?1"),
            params![id.as_str()],
            StoredDump::from_row,
        )
        .optional()
        .map_err(sqlite_error(format!("failed to read dump {id}")))?;
    stored.map(StoredDump::into_record).transpose()
}

/// Which of a dump's two jobs a lease holder's call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    /// The ingest job, held under [`HELD_BY_WORKER`].
    Ingest,
    /// The ownership pass, held under [`OWNERSHIP_HELD_BY_WORKER`].
    Ownership,
}

impl JobKind {
    /// Returns the error for a job of this kind that `worker` does not hold.
    fn lease_lost(self, id: &DumpId, worker: &str) -> CatalogError {
        match self {
            JobKind::Ingest => lease_lost(id, worker),
            JobKind::Ownership => ownership_lease_lost(id, worker),
        }
    }
}

/// Returns the error for an update of `worker`'s job of `kind` that matched no row: `NotFound`
/// when the dump does not exist, else `Conflict` (the worker lost its lease).
fn lease_error(
    connection: &Connection,
    kind: JobKind,
    id: &DumpId,
    worker: &str,
) -> Result<CatalogError> {
    let exists = connection
        .query_row(
            "SELECT 1 FROM dumps WHERE dump_id = ?1",
            params![id.as_str()],
            |_| Ok(()),
        )
        .optional()
        .map_err(sqlite_error(format!("failed to read dump {id}")))?
        .is_some();
    Ok(if exists {
        kind.lease_lost(id, worker)
    } else {
        dump_not_found(id)
    })
}

/// Returns the error for a delete guarded by [`NOT_UNDER_LIVE_LEASE`] that matched no row:
/// `NotFound` when the dump does not exist, else `Conflict` naming the lease holder.
fn delete_refusal(connection: &Connection, id: &DumpId) -> Result<CatalogError> {
    let holders: Option<(Option<String>, Option<String>)> = connection
        .query_row(
            "SELECT lease_worker, \
             CASE WHEN ownership_state = 'running' THEN ownership_lease_worker END \
             FROM dumps WHERE dump_id = ?1",
            params![id.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(sqlite_error(format!("failed to read dump {id}")))?;
    Ok(match holders {
        Some((ingest_worker_opt, ownership_worker_opt)) => delete_refused(
            id,
            ingest_worker_opt.as_deref(),
            ownership_worker_opt.as_deref(),
        ),
        None => dump_not_found(id),
    })
}

/// Runs `update`, guarded by [`HELD_BY_WORKER`] or [`OWNERSHIP_HELD_BY_WORKER`] as `kind`
/// says (so `?1` is the dump id and `?2` the worker), and fails with [`lease_error`] when it
/// matched no row.
fn update_held_job(
    connection: &Connection,
    kind: JobKind,
    id: &DumpId,
    worker: &str,
    update: &str,
    extra: &[&dyn ToSql],
    failed: &str,
) -> Result<()> {
    let id_text = id.as_str();
    let mut values: Vec<&dyn ToSql> = vec![&id_text, &worker];
    values.extend_from_slice(extra);
    let updated = connection
        .execute(update, values.as_slice())
        .map_err(sqlite_error(failed))?;
    if updated == 0 {
        return Err(lease_error(connection, kind, id, worker)?);
    }
    Ok(())
}

impl SqliteCatalog {
    /// Registers a dump (see [`Catalog::register_dump`]); with `queue`, a new dump starts
    /// queued and an existing one still `uploaded` is queued, in the same transaction, keeping
    /// `trace_context_opt` for its job.
    async fn register(
        &self,
        new_dump: NewDump,
        queue: bool,
        trace_context_opt: Option<&str>,
    ) -> Result<(DumpRecord, bool)> {
        new_dump.validate()?;
        NewDump::validate_trace_context(trace_context_opt)?;
        let trace_context_opt = trace_context_opt.map(str::to_owned);
        let id = new_dump.dump_id();
        let jobs = new_dump
            .jobs
            .map(|jobs| to_sql_integer(jobs, "jobs"))
            .transpose()?;
        let size_bytes = to_sql_integer(new_dump.size_bytes, "size")?;
        let gc_count = new_dump
            .gc_count
            .map(|gc_count| to_sql_integer(gc_count, "gc count"))
            .transpose()?;
        let rss_bytes = new_dump
            .rss_bytes
            .map(|rss_bytes| to_sql_integer(rss_bytes, "rss"))
            .transpose()?;
        let labels = serde_json::to_string(&new_dump.labels).map_err(|json_error| {
            CatalogError::Internal {
                message: format!("failed to encode the labels of dump {id}"),
                source: Some(json_error.into()),
            }
        })?;
        let registered_at_unix = unix_now();
        let initial_status = if queue {
            DumpStatusKind::Queued
        } else {
            DumpStatusKind::Uploaded
        };
        self.with_connection(move |connection| {
            // Immediate: the insert and the read-back see the same state even with another
            // process writing the file.
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error(format!("failed to begin registering dump {id}")))?;
            let inserted = transaction
                .execute(
                    "INSERT INTO dumps (dump_id, tenant, host, pid, instance, taken_at_unix, jobs, role, \
                     labels, file_name, size_bytes, content_sha256, gc_count, rss_bytes, status, \
                     registered_at_unix, object_key, trace_context) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
                     ON CONFLICT (dump_id) DO NOTHING",
                    params![
                        id.as_str(),
                        new_dump.process.tenant,
                        new_dump.process.host,
                        new_dump.process.pid,
                        new_dump.process.instance,
                        new_dump.taken_at_unix,
                        jobs,
                        new_dump.role,
                        labels,
                        new_dump.file_name,
                        size_bytes,
                        new_dump.content_sha256,
                        gc_count,
                        rss_bytes,
                        initial_status.as_str(),
                        registered_at_unix,
                        new_dump.object_key,
                        trace_context_opt,
                    ],
                )
                .map_err(sqlite_error(format!("failed to register dump {id}")))?;
            if queue && inserted == 0 {
                transaction
                    .execute(
                        // The upload that queues the dump is the one its job links to.
                        "UPDATE dumps SET status = 'queued', trace_context = COALESCE(?2, trace_context) \
                         WHERE dump_id = ?1 AND status = 'uploaded'",
                        params![id.as_str(), trace_context_opt],
                    )
                    .map_err(sqlite_error(format!("failed to enqueue dump {id}")))?;
            }
            let record = select_dump(&transaction, &id)?.ok_or_else(|| {
                CatalogError::internal_message(format!("dump {id} vanished while it was registered"))
            })?;
            transaction.commit().map_err(sqlite_error(format!("failed to commit dump {id}")))?;
            Ok((record, inserted == 1))
        })
        .await
    }
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn register_dump(&self, new_dump: NewDump) -> Result<(DumpRecord, bool)> {
        self.register(new_dump, false, None).await
    }

    async fn register_and_enqueue_traced(
        &self,
        new_dump: NewDump,
        trace_context_opt: Option<&str>,
    ) -> Result<(DumpRecord, bool)> {
        self.register(new_dump, true, trace_context_opt).await
    }

    async fn get_dump(&self, id: &DumpId) -> Result<DumpRecord> {
        let id = id.clone();
        self.with_connection(move |connection| {
            select_dump(connection, &id)?.ok_or_else(|| dump_not_found(&id))
        })
        .await
    }

    async fn list_dumps(&self, filter: &DumpFilter) -> Result<Vec<DumpRecord>> {
        check_tenant(&filter.tenant)?;
        let mut sql = format!("SELECT {DUMP_COLUMNS} FROM dumps WHERE tenant = ?");
        let mut values = vec![Value::Text(filter.tenant.clone())];
        let mut conditions: Vec<&str> = Vec::new();
        if let Some(host) = &filter.host {
            conditions.push("host = ?");
            values.push(Value::Text(host.clone()));
        }
        if let Some(pid) = filter.pid {
            conditions.push("pid = ?");
            values.push(Value::Integer(i64::from(pid)));
        }
        if let Some(instance) = &filter.instance {
            conditions.push("instance = ?");
            values.push(Value::Text(instance.clone()));
        }
        if let Some(role) = &filter.role {
            conditions.push("role = ?");
            values.push(Value::Text(role.clone()));
        }
        if let Some(taken_after) = filter.taken_after {
            conditions.push("taken_at_unix >= ?");
            values.push(Value::Integer(taken_after));
        }
        if let Some(taken_before) = filter.taken_before {
            conditions.push("taken_at_unix < ?");
            values.push(Value::Integer(taken_before));
        }
        if let Some(status) = filter.status {
            conditions.push("status = ?");
            values.push(Value::Text(status.as_str().to_owned()));
        }
        for (key, value) in &filter.labels {
            // json_each yields one row per top-level key, so keys with dots or quotes need no
            // path escaping.
            conditions.push(
                "EXISTS (SELECT 1 FROM json_each(dumps.labels) AS label \
                 WHERE label.key = ? AND label.type = 'text' AND label.value = ?)",
            );
            values.push(Value::Text(key.clone()));
            values.push(Value::Text(value.clone()));
        }
        for condition in conditions {
            sql.push_str(" AND ");
            sql.push_str(condition);
        }
        sql.push_str(" ORDER BY host, pid, instance, taken_at_unix, dump_id");
        self.with_connection(move |connection| {
            let mut statement = connection
                .prepare(&sql)
                .map_err(sqlite_error("failed to prepare the dump listing"))?;
            let stored: Vec<StoredDump> = statement
                .query_map(params_from_iter(values), StoredDump::from_row)
                .and_then(Iterator::collect)
                .map_err(sqlite_error("failed to list dumps"))?;
            stored.into_iter().map(StoredDump::into_record).collect()
        })
        .await
    }

    async fn set_status(&self, id: &DumpId, status: DumpStatus) -> Result<()> {
        let id = id.clone();
        self.with_connection(move |connection| {
            let attempt = i64::from(status == DumpStatus::Ingesting);
            // A dump set ready keeps its ownership pass (it has none unless it was ready);
            // any other state drops it.
            let ownership = if status.kind() == DumpStatusKind::Ready {
                String::new()
            } else {
                format!(", {DROP_OWNERSHIP}")
            };
            let updated = connection
                .execute(
                    &format!(
                        "UPDATE dumps SET status = ?2, failure_reason = ?3, \
                         attempts = attempts + ?4, lease_worker = NULL, \
                         lease_expires_at_unix_ms = NULL{ownership} WHERE dump_id = ?1"
                    ),
                    params![
                        id.as_str(),
                        status.kind().as_str(),
                        status.failure_reason(),
                        attempt
                    ],
                )
                .map_err(sqlite_error(format!(
                    "failed to set the status of dump {id}"
                )))?;
            if updated == 0 {
                return Err(dump_not_found(&id));
            }
            Ok(())
        })
        .await
    }

    async fn mark_ready(&self, id: &DumpId, objects: u64, bad_lines: u64) -> Result<()> {
        let id = id.clone();
        let objects = to_sql_integer(objects, "objects")?;
        let bad_lines = to_sql_integer(bad_lines, "bad lines")?;
        self.with_connection(move |connection| {
            let updated = connection
                .execute(
                    &format!(
                        "UPDATE dumps SET status = ?2, failure_reason = NULL, objects = ?3, \
                         bad_lines = ?4, lease_worker = NULL, lease_expires_at_unix_ms = NULL, \
                         {QUEUE_OWNERSHIP} WHERE dump_id = ?1"
                    ),
                    params![
                        id.as_str(),
                        DumpStatusKind::Ready.as_str(),
                        objects,
                        bad_lines
                    ],
                )
                .map_err(sqlite_error(format!("failed to mark dump {id} ready")))?;
            if updated == 0 {
                return Err(dump_not_found(&id));
            }
            Ok(())
        })
        .await
    }

    async fn enqueue(&self, id: &DumpId) -> Result<bool> {
        let id = id.clone();
        self.with_connection(move |connection| {
            let updated = connection
                .execute(
                    &format!(
                        "UPDATE dumps SET status = 'queued', failure_reason = NULL, \
                         attempts = CASE WHEN status = 'failed' THEN 0 ELSE attempts END, \
                         lease_worker = NULL, lease_expires_at_unix_ms = NULL, {DROP_OWNERSHIP} \
                         WHERE dump_id = ?1 AND status IN ('uploaded', 'failed')"
                    ),
                    params![id.as_str()],
                )
                .map_err(sqlite_error(format!("failed to enqueue dump {id}")))?;
            if updated == 0 && select_dump(connection, &id)?.is_none() {
                return Err(dump_not_found(&id));
            }
            Ok(updated == 1)
        })
        .await
    }

    async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        tenant_opt: Option<&str>,
    ) -> Result<Option<Job>> {
        check_worker(worker)?;
        let lease_ms = lease_millis(lease)?;
        let worker = worker.to_owned();
        let tenant_opt = tenant_opt.map(str::to_owned);
        self.with_connection(move |connection| {
            let failed = "failed to claim an ingest job";
            // Immediate: the write lock is taken before the read, so another process sharing
            // the file cannot pick the same dump between this select and the update.
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error(failed))?;
            let now_ms = unix_now_ms();
            let lease_expires_at_unix_ms = now_ms.saturating_add(lease_ms);
            let candidate: Option<(String, String, Option<String>)> = transaction
                .query_row(
                    "SELECT dump_id, status, trace_context FROM dumps \
                     WHERE status IN ('queued', 'ingesting') \
                     AND (status = 'queued' OR lease_expires_at_unix_ms <= ?1) \
                     AND (?2 IS NULL OR tenant = ?2) \
                     ORDER BY registered_at_unix, rowid LIMIT 1",
                    params![now_ms, tenant_opt],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()
                .map_err(sqlite_error(failed))?;
            let Some((candidate, previous_status, trace_context)) = candidate else {
                return Ok(None);
            };
            transaction
                .execute(
                    &format!(
                        "UPDATE dumps SET status = 'ingesting', failure_reason = NULL, \
                         attempts = attempts + 1, lease_worker = ?2, \
                         lease_expires_at_unix_ms = ?3, {DROP_OWNERSHIP} WHERE dump_id = ?1"
                    ),
                    params![candidate, worker, lease_expires_at_unix_ms],
                )
                .map_err(sqlite_error(failed))?;
            let id: DumpId = candidate.parse().map_err(|_| {
                CatalogError::internal_message(format!("stored dump id {candidate:?} is malformed"))
            })?;
            let dump = select_dump(&transaction, &id)?.ok_or_else(|| {
                CatalogError::internal_message(format!("dump {id} vanished while it was claimed"))
            })?;
            transaction.commit().map_err(sqlite_error(failed))?;
            Ok(Some(Job {
                attempt: dump.attempts,
                dump,
                worker,
                lease_expires_at_unix_ms,
                // Only a lapsed lease makes an ingesting dump claimable.
                after_expired_lease: previous_status == DumpStatusKind::Ingesting.as_str(),
                trace_context,
            }))
        })
        .await
    }

    async fn queue_stats(&self, tenant_opt: Option<&str>) -> Result<QueueStats> {
        let tenant_opt = tenant_opt.map(str::to_owned);
        self.with_connection(move |connection| {
            // Each subquery's state condition is one job-queue index's, so only the two
            // backlogs are read.
            let (queued, ingesting, oldest, ownership_queued, ownership_running): (
                i64,
                i64,
                Option<i64>,
                i64,
                i64,
            ) = connection
                .query_row(
                    "SELECT ingest.queued, ingest.ingesting, ingest.oldest, \
                     ownership.queued, ownership.running FROM \
                     (SELECT COALESCE(SUM(status = 'queued'), 0) AS queued, \
                     COALESCE(SUM(status = 'ingesting'), 0) AS ingesting, \
                     MIN(CASE WHEN status = 'queued' THEN registered_at_unix END) AS oldest \
                     FROM dumps WHERE status IN ('queued', 'ingesting') \
                     AND (?1 IS NULL OR tenant = ?1)) AS ingest, \
                     (SELECT COALESCE(SUM(ownership_state = 'queued'), 0) AS queued, \
                     COALESCE(SUM(ownership_state = 'running'), 0) AS running \
                     FROM dumps WHERE ownership_state IN ('queued', 'running') \
                     AND (?1 IS NULL OR tenant = ?1)) AS ownership",
                    params![tenant_opt],
                    |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                        ))
                    },
                )
                .map_err(sqlite_error("failed to read the job queue's backlog"))?;
            Ok(QueueStats {
                queued: from_sql_integer(queued, "queued jobs")?,
                ingesting: from_sql_integer(ingesting, "ingesting jobs")?,
                oldest_queued_registered_at_unix: oldest,
                ownership_queued: from_sql_integer(ownership_queued, "queued ownership passes")?,
                ownership_running: from_sql_integer(ownership_running, "running ownership passes")?,
            })
        })
        .await
    }

    async fn renew_lease(&self, id: &DumpId, worker: &str, lease: Duration) -> Result<i64> {
        check_worker(worker)?;
        let lease_ms = lease_millis(lease)?;
        let id = id.clone();
        let worker = worker.to_owned();
        self.with_connection(move |connection| {
            let lease_expires_at_unix_ms = unix_now_ms().saturating_add(lease_ms);
            update_held_job(
                connection,
                JobKind::Ingest,
                &id,
                &worker,
                &format!("UPDATE dumps SET lease_expires_at_unix_ms = ?3 WHERE {HELD_BY_WORKER}"),
                &[&lease_expires_at_unix_ms],
                &format!("failed to renew the lease on dump {id}"),
            )?;
            Ok(lease_expires_at_unix_ms)
        })
        .await
    }

    async fn complete_job(
        &self,
        id: &DumpId,
        worker: &str,
        objects: u64,
        bad_lines: u64,
    ) -> Result<()> {
        check_worker(worker)?;
        let objects = to_sql_integer(objects, "objects")?;
        let bad_lines = to_sql_integer(bad_lines, "bad lines")?;
        let id = id.clone();
        let worker = worker.to_owned();
        self.with_connection(move |connection| {
            update_held_job(
                connection,
                JobKind::Ingest,
                &id,
                &worker,
                &format!(
                    "UPDATE dumps SET status = 'ready', failure_reason = NULL, objects = ?3, \
                     bad_lines = ?4, lease_worker = NULL, lease_expires_at_unix_ms = NULL, \
                     {QUEUE_OWNERSHIP} WHERE {HELD_BY_WORKER}"
                ),
                &[&objects, &bad_lines],
                &format!("failed to complete the job of dump {id}"),
            )
        })
        .await
    }

    async fn fail_job(
        &self,
        id: &DumpId,
        worker: &str,
        reason: &str,
        max_attempts: u32,
    ) -> Result<DumpStatus> {
        check_worker(worker)?;
        check_reason(reason)?;
        check_max_attempts(max_attempts)?;
        let id = id.clone();
        let worker = worker.to_owned();
        let reason = reason.to_owned();
        self.with_connection(move |connection| {
            // Every expression reads the row as it was before the update, so the attempt
            // count decides both the state and whether the reason is kept.
            let stored: Option<(String, Option<String>)> = connection
                .query_row(
                    &format!(
                        "UPDATE dumps SET \
                         status = CASE WHEN attempts < ?3 THEN 'queued' ELSE 'failed' END, \
                         failure_reason = CASE WHEN attempts < ?3 THEN NULL ELSE ?4 END, \
                         lease_worker = NULL, lease_expires_at_unix_ms = NULL \
                         WHERE {HELD_BY_WORKER} RETURNING status, failure_reason"
                    ),
                    params![id.as_str(), worker, max_attempts, reason],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(sqlite_error(format!("failed to fail the job of dump {id}")))?;
            let Some((status, reason_opt)) = stored else {
                return Err(lease_error(connection, JobKind::Ingest, &id, &worker)?);
            };
            let kind: DumpStatusKind = status.parse().map_err(|_| {
                CatalogError::internal_message(format!(
                    "dump {id} has unknown stored status {status:?}"
                ))
            })?;
            Ok(DumpStatus::from_parts(kind, reason_opt))
        })
        .await
    }

    async fn release_job(&self, id: &DumpId, worker: &str) -> Result<()> {
        check_worker(worker)?;
        let id = id.clone();
        let worker = worker.to_owned();
        self.with_connection(move |connection| {
            update_held_job(
                connection,
                JobKind::Ingest,
                &id,
                &worker,
                &format!(
                    "UPDATE dumps SET status = 'queued', attempts = MAX(attempts - 1, 0), \
                     lease_worker = NULL, lease_expires_at_unix_ms = NULL WHERE {HELD_BY_WORKER}"
                ),
                &[],
                &format!("failed to release the job of dump {id}"),
            )
        })
        .await
    }

    async fn claim_ownership_job(
        &self,
        worker: &str,
        lease: Duration,
        tenant_opt: Option<&str>,
    ) -> Result<Option<Job>> {
        check_worker(worker)?;
        let lease_ms = lease_millis(lease)?;
        let worker = worker.to_owned();
        let tenant_opt = tenant_opt.map(str::to_owned);
        self.with_connection(move |connection| {
            let failed = "failed to claim an ownership pass";
            // Immediate, as for an ingest claim: no other process picks the same pass between
            // this select and the update.
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error(failed))?;
            let now_ms = unix_now_ms();
            let lease_expires_at_unix_ms = now_ms.saturating_add(lease_ms);
            // The first condition is the ownership-queue index's.
            let candidate: Option<(String, String, Option<String>)> = transaction
                .query_row(
                    "SELECT dump_id, ownership_state, trace_context FROM dumps \
                     WHERE ownership_state IN ('queued', 'running') AND status = 'ready' \
                     AND (ownership_state = 'queued' OR ownership_lease_expires_at_unix_ms <= ?1) \
                     AND (?2 IS NULL OR tenant = ?2) \
                     ORDER BY registered_at_unix, rowid LIMIT 1",
                    params![now_ms, tenant_opt],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()
                .map_err(sqlite_error(failed))?;
            let Some((candidate, previous_state, trace_context)) = candidate else {
                return Ok(None);
            };
            transaction
                .execute(
                    "UPDATE dumps SET ownership_state = 'running', ownership_reason = NULL, \
                     ownership_attempts = ownership_attempts + 1, ownership_lease_worker = ?2, \
                     ownership_lease_expires_at_unix_ms = ?3 WHERE dump_id = ?1",
                    params![candidate, worker, lease_expires_at_unix_ms],
                )
                .map_err(sqlite_error(failed))?;
            let id: DumpId = candidate.parse().map_err(|_| {
                CatalogError::internal_message(format!("stored dump id {candidate:?} is malformed"))
            })?;
            let dump = select_dump(&transaction, &id)?.ok_or_else(|| {
                CatalogError::internal_message(format!("dump {id} vanished while it was claimed"))
            })?;
            transaction.commit().map_err(sqlite_error(failed))?;
            Ok(Some(Job {
                attempt: dump.ownership_attempts,
                dump,
                worker,
                lease_expires_at_unix_ms,
                // Only a lapsed lease makes a running pass claimable.
                after_expired_lease: previous_state == OwnershipState::Running.as_str(),
                trace_context,
            }))
        })
        .await
    }

    async fn renew_ownership_lease(
        &self,
        id: &DumpId,
        worker: &str,
        lease: Duration,
    ) -> Result<i64> {
        check_worker(worker)?;
        let lease_ms = lease_millis(lease)?;
        let id = id.clone();
        let worker = worker.to_owned();
        self.with_connection(move |connection| {
            let lease_expires_at_unix_ms = unix_now_ms().saturating_add(lease_ms);
            update_held_job(
                connection,
                JobKind::Ownership,
                &id,
                &worker,
                &format!(
                    "UPDATE dumps SET ownership_lease_expires_at_unix_ms = ?3 \
                     WHERE {OWNERSHIP_HELD_BY_WORKER}"
                ),
                &[&lease_expires_at_unix_ms],
                &format!("failed to renew the lease on the ownership pass of dump {id}"),
            )?;
            Ok(lease_expires_at_unix_ms)
        })
        .await
    }

    async fn complete_ownership_job(
        &self,
        id: &DumpId,
        worker: &str,
        outcome: OwnershipOutcome,
    ) -> Result<()> {
        check_worker(worker)?;
        let (state, reason_opt) = ownership_outcome_parts(&outcome)?;
        let reason_opt = reason_opt.map(str::to_owned);
        let id = id.clone();
        let worker = worker.to_owned();
        self.with_connection(move |connection| {
            update_held_job(
                connection,
                JobKind::Ownership,
                &id,
                &worker,
                &format!(
                    "UPDATE dumps SET ownership_state = ?3, ownership_reason = ?4, \
                     ownership_lease_worker = NULL, ownership_lease_expires_at_unix_ms = NULL \
                     WHERE {OWNERSHIP_HELD_BY_WORKER}"
                ),
                &[&state, &reason_opt],
                &format!("failed to complete the ownership pass of dump {id}"),
            )
        })
        .await
    }

    async fn fail_ownership_job(
        &self,
        id: &DumpId,
        worker: &str,
        reason: &str,
        max_attempts: u32,
    ) -> Result<OwnershipState> {
        check_worker(worker)?;
        check_reason(reason)?;
        check_max_attempts(max_attempts)?;
        let id = id.clone();
        let worker = worker.to_owned();
        let reason = reason.to_owned();
        self.with_connection(move |connection| {
            // Every expression reads the row as it was before the update, so the attempt
            // count decides both the state and whether the reason is kept.
            let stored: Option<(String, Option<String>)> = connection
                .query_row(
                    &format!(
                        "UPDATE dumps SET \
                         ownership_state = CASE WHEN ownership_attempts < ?3 \
                         THEN 'queued' ELSE 'failed' END, \
                         ownership_reason = CASE WHEN ownership_attempts < ?3 \
                         THEN NULL ELSE ?4 END, \
                         ownership_lease_worker = NULL, ownership_lease_expires_at_unix_ms = NULL \
                         WHERE {OWNERSHIP_HELD_BY_WORKER} \
                         RETURNING ownership_state, ownership_reason"
                    ),
                    params![id.as_str(), worker, max_attempts, reason],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(sqlite_error(format!(
                    "failed to fail the ownership pass of dump {id}"
                )))?;
            let Some((state, reason_opt)) = stored else {
                return Err(lease_error(connection, JobKind::Ownership, &id, &worker)?);
            };
            OwnershipState::from_parts(&state, reason_opt).map_err(|_| {
                CatalogError::internal_message(format!(
                    "dump {id} has unknown stored ownership state {state:?}"
                ))
            })
        })
        .await
    }

    async fn release_ownership_job(&self, id: &DumpId, worker: &str) -> Result<()> {
        check_worker(worker)?;
        let id = id.clone();
        let worker = worker.to_owned();
        self.with_connection(move |connection| {
            update_held_job(
                connection,
                JobKind::Ownership,
                &id,
                &worker,
                &format!(
                    "UPDATE dumps SET ownership_state = 'queued', \
                     ownership_attempts = MAX(ownership_attempts - 1, 0), \
                     ownership_lease_worker = NULL, ownership_lease_expires_at_unix_ms = NULL \
                     WHERE {OWNERSHIP_HELD_BY_WORKER}"
                ),
                &[],
                &format!("failed to release the ownership pass of dump {id}"),
            )
        })
        .await
    }

    async fn list_processes(&self, tenant: &str) -> Result<Vec<ProcessSummary>> {
        check_tenant(tenant)?;
        let tenant = tenant.to_owned();
        self.with_connection(move |connection| {
            let mut statement = connection
                .prepare(
                    "SELECT host, pid, instance, COUNT(*), MIN(taken_at_unix), MAX(taken_at_unix) \
                     FROM dumps WHERE tenant = ?1 \
                     GROUP BY host, pid, instance ORDER BY host, pid, instance",
                )
                .map_err(sqlite_error("failed to prepare the process listing"))?;
            let rows: Vec<(String, i64, String, i64, i64, i64)> = statement
                .query_map(params![tenant], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                    ))
                })
                .and_then(Iterator::collect)
                .map_err(sqlite_error(format!(
                    "failed to list the processes of tenant {tenant}"
                )))?;
            rows.into_iter()
                .map(
                    |(host, pid, instance, dump_count, first_taken_at_unix, last_taken_at_unix)| {
                        Ok(ProcessSummary {
                            process: ProcessKey {
                                tenant: tenant.clone(),
                                host,
                                pid: from_sql_integer(pid, "pid")?,
                                instance,
                            },
                            dump_count: from_sql_integer(dump_count, "dump count")?,
                            first_taken_at_unix,
                            last_taken_at_unix,
                        })
                    },
                )
                .collect()
        })
        .await
    }

    async fn delete_dump(&self, id: &DumpId) -> Result<()> {
        let id = id.clone();
        self.with_connection(move |connection| {
            let deleted = connection
                .execute(
                    &format!("DELETE FROM dumps WHERE dump_id = ?1 AND {NOT_UNDER_LIVE_LEASE}"),
                    params![id.as_str(), unix_now_ms()],
                )
                .map_err(sqlite_error(format!("failed to delete dump {id}")))?;
            if deleted == 0 {
                return Err(delete_refusal(connection, &id)?);
            }
            Ok(())
        })
        .await
    }

    async fn begin_delete(&self, id: &DumpId) -> Result<DumpRecord> {
        let id = id.clone();
        self.with_connection(move |connection| {
            let stored = connection
                .query_row(
                    &format!(
                        "UPDATE dumps SET status = 'failed', failure_reason = ?3, \
                         lease_worker = NULL, lease_expires_at_unix_ms = NULL, {DROP_OWNERSHIP} \
                         WHERE dump_id = ?1 AND {NOT_UNDER_LIVE_LEASE} RETURNING {DUMP_COLUMNS}"
                    ),
                    params![id.as_str(), unix_now_ms(), DELETION_REASON],
                    StoredDump::from_row,
                )
                .optional()
                .map_err(sqlite_error(format!("failed to begin deleting dump {id}")))?;
            match stored {
                Some(stored) => stored.into_record(),
                None => Err(delete_refusal(connection, &id)?),
            }
        })
        .await
    }

    async fn list_dumps_taken_before(
        &self,
        tenant_opt: Option<&str>,
        taken_before_unix: i64,
        limit: usize,
    ) -> Result<Vec<DumpRecord>> {
        let limit = check_retention_listing(tenant_opt, limit)?;
        let tenant_opt = tenant_opt.map(str::to_owned);
        self.with_connection(move |connection| {
            let failed = "failed to list the dumps taken before a cutoff";
            let mut statement = connection
                .prepare(&format!(
                    "SELECT {DUMP_COLUMNS} FROM dumps \
                     WHERE taken_at_unix < ?1 AND (?2 IS NULL OR tenant = ?2) \
                     ORDER BY taken_at_unix, dump_id LIMIT ?3"
                ))
                .map_err(sqlite_error(failed))?;
            let stored: Vec<StoredDump> = statement
                .query_map(
                    params![taken_before_unix, tenant_opt, limit],
                    StoredDump::from_row,
                )
                .and_then(Iterator::collect)
                .map_err(sqlite_error(failed))?;
            stored.into_iter().map(StoredDump::into_record).collect()
        })
        .await
    }

    async fn object_key_shared(&self, id: &DumpId, object_key: &str) -> Result<bool> {
        let id = id.clone();
        let object_key = object_key.to_owned();
        self.with_connection(move |connection| {
            let shared = connection
                .query_row(
                    "SELECT 1 FROM dumps WHERE object_key = ?1 AND dump_id <> ?2 LIMIT 1",
                    params![object_key, id.as_str()],
                    |_| Ok(()),
                )
                .optional()
                .map_err(sqlite_error(format!(
                    "failed to look for other dumps with the object key of dump {id}"
                )))?;
            Ok(shared.is_some())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn test_sqlite_catalog_passes_the_conformance_suite() {
        let directory = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(directory.path()).await.unwrap();
        crate::testsuite::run_catalog_test_suite(&catalog).await;
    }

    #[tokio::test]
    async fn test_sqlite_catalog_claims_jobs_across_tenants() {
        let directory = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(directory.path()).await.unwrap();
        crate::testsuite::check_claim_job_spans_tenants(&catalog).await;
    }

    #[tokio::test]
    async fn test_sqlite_catalog_lists_old_dumps_across_tenants() {
        let directory = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(directory.path()).await.unwrap();
        crate::testsuite::check_list_dumps_taken_before_spans_tenants(&catalog).await;
    }

    #[tokio::test]
    async fn test_sqlite_catalog_keeps_dumps_across_reopen() {
        let directory = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(directory.path()).await.unwrap();
        let reopen = || SqliteCatalog::open(directory.path());
        crate::testsuite::check_dumps_survive_reopen(catalog, reopen).await;
    }

    #[tokio::test]
    async fn test_sqlite_catalog_uses_wal_and_full_sync() {
        let directory = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(directory.path()).await.unwrap();
        let (journal_mode, synchronous, user_version) = catalog
            .with_connection(|connection| {
                let read = |pragma: &str| -> rusqlite::Result<String> {
                    connection.query_row(&format!("PRAGMA {pragma}"), [], |row| {
                        row.get::<_, Value>(0).map(|value| match value {
                            Value::Integer(number) => number.to_string(),
                            Value::Text(text) => text,
                            other => format!("{other:?}"),
                        })
                    })
                };
                Ok((
                    read("journal_mode").unwrap(),
                    read("synchronous").unwrap(),
                    read("user_version").unwrap(),
                ))
            })
            .await
            .unwrap();
        assert_eq!(journal_mode, "wal");
        // 2 is FULL.
        assert_eq!(synchronous, "2");
        assert_eq!(user_version, MIGRATIONS.len().to_string());
        assert_eq!(catalog.path(), directory.path().join(CATALOG_FILE_NAME));
    }

    #[tokio::test]
    async fn test_sqlite_catalog_refuses_a_newer_schema() {
        let directory = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(directory.path()).await.unwrap();
        catalog
            .with_connection(|connection| {
                connection.pragma_update(None, "user_version", 99).unwrap();
                Ok(())
            })
            .await
            .unwrap();
        drop(catalog);
        let reopened = SqliteCatalog::open(directory.path()).await;
        assert!(
            matches!(reopened, Err(CatalogError::Invalid(_))),
            "{reopened:?}"
        );
    }

    #[tokio::test]
    async fn test_sqlite_catalog_upgrades_a_file_holding_dumps() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(CATALOG_FILE_NAME);
        // Schema version 1 as an older build left it, with a queued dump in it.
        let old_connection = heapfleet_sqlite::open_durable(&path, &MIGRATIONS[..1]).unwrap();
        let tenant = "acme";
        let new_dump = crate::testsuite::sample_dump(tenant, "web-1", 1, "", 100);
        let id = new_dump.dump_id();
        old_connection
            .execute(
                "INSERT INTO dumps (dump_id, tenant, host, pid, instance, taken_at_unix, \
                 file_name, size_bytes, content_sha256, status, registered_at_unix) \
                 VALUES (?1, ?2, 'web-1', 1, '', 100, 'heap.dump', 10, ?3, 'queued', 1)",
                params![id.as_str(), tenant, new_dump.content_sha256],
            )
            .unwrap();
        drop(old_connection);

        let catalog = SqliteCatalog::open(directory.path()).await.unwrap();
        let job = catalog
            .claim_job("worker-a", Duration::from_secs(60), Some(tenant))
            .await
            .unwrap()
            .expect("the dump queued before the upgrade is claimable");
        assert_eq!((job.dump.id.clone(), job.attempt), (id.clone(), 1));
        catalog.complete_job(&id, "worker-a", 5, 0).await.unwrap();
        assert_eq!(
            catalog.get_dump(&id).await.unwrap().status,
            DumpStatus::Ready
        );
    }

    #[test]
    fn test_migrations_are_numbered_from_one_without_gaps() {
        for (position, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, position as i64 + 1);
        }
    }
}
