//! [`PostgresCatalog`]: the catalog of the distributed stack, in PostgreSQL, through
//! tokio-postgres and a deadpool connection pool.
//!
//! Schema: the numbered `.sql` files under `migrations/postgres/` are applied at connect, all in
//! one transaction that first takes a transaction-scoped advisory lock, so services starting at
//! once against a new database take turns and each step runs exactly once. The table
//! `catalog_schema_migrations` records the applied versions; a database migrated by a newer
//! build is refused rather than guessed at.
//!
//! Consistency: every call is one statement, except registration, which inserts (doing nothing
//! when the id exists) and reads the row back in one READ COMMITTED transaction. A registration
//! racing another for the same id waits for the other's commit, then returns its row.
//!
//! Job queue: a claim (of an ingest job or of an ownership pass, each with its own partial
//! index) is one `UPDATE` of the row its subquery picks with `FOR UPDATE SKIP LOCKED`, so concurrent claimers each lock a different row and never wait for one another; a
//! row another claimer changed meanwhile is re-checked and passed over. Lease times are the
//! server's clock (`now()`), so workers with skewed clocks agree on expiry. The lease holder's
//! calls are one guarded `UPDATE` each; when it matches nothing, a read tells `NotFound` from
//! `Conflict`.
//!
//! Errors: lost connections, I/O failures, timeouts, serialization failures, deadlocks and a
//! server shutting down are `Unavailable` (retryable); data the server rejects is `Invalid`;
//! anything else is `Internal`. The driver's error stays the source; messages never carry SQL,
//! host names or credentials.
//!
//! Connections are plain TCP or Unix sockets: TLS is not supported yet, so a connection string
//! with `sslmode=require` fails to connect.
//!
//! This module must not depend on any other backend.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::config::Host;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{NoTls, Row};

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

/// One schema step: `sql` takes the database from `version - 1` to `version`.
struct PostgresMigration {
    version: i64,
    sql: &'static str,
}

/// Every schema step, in order. Append only: a released step never changes.
const MIGRATIONS: &[PostgresMigration] = &[
    PostgresMigration {
        version: 1,
        sql: include_str!("../migrations/postgres/0001_create_dumps.sql"),
    },
    PostgresMigration {
        version: 2,
        sql: include_str!("../migrations/postgres/0002_add_job_leases.sql"),
    },
    PostgresMigration {
        version: 3,
        sql: include_str!("../migrations/postgres/0003_add_object_key.sql"),
    },
    PostgresMigration {
        version: 4,
        sql: include_str!("../migrations/postgres/0004_add_trace_context.sql"),
    },
    PostgresMigration {
        version: 5,
        sql: include_str!("../migrations/postgres/0005_add_ownership_job.sql"),
    },
];

/// The advisory lock that serialises migrations ("heapflee" in ASCII). Any other user of
/// advisory locks in the same database must avoid this key.
const MIGRATION_LOCK_KEY: i64 = 0x6865_6170_666c_6565;

/// How long a starting service waits for another one's migration before it gives up with
/// `Unavailable`.
const MIGRATION_LOCK_TIMEOUT: &str = "60s";

/// Connections the pool opens at most. Catalog calls are short, so a few connections serve
/// many concurrent requests.
const POOL_MAX_SIZE: usize = 16;

/// How long opening one connection may take, unless the connection string sets
/// `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call waits for a pooled connection to come free before it fails with
/// `Unavailable`.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Names the sessions in `pg_stat_activity` unless the connection string names them.
const APPLICATION_NAME: &str = "heapfleet";

const CREATE_SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS catalog_schema_migrations ( \
     version BIGINT NOT NULL PRIMARY KEY, \
     applied_at TIMESTAMPTZ NOT NULL DEFAULT now())";
const SELECT_SCHEMA_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0)::BIGINT FROM catalog_schema_migrations";
const INSERT_SCHEMA_VERSION: &str = "INSERT INTO catalog_schema_migrations (version) VALUES ($1)";

/// The columns [`stored_dump`] reads, in order. Labels come back as JSON text, as the embedded
/// catalog stores them, so both backends check rows with the same code.
const DUMP_COLUMNS: &str = "dump_id, tenant, host, pid, instance, taken_at_unix, jobs, role, \
     labels::TEXT, file_name, size_bytes, content_sha256, gc_count, rss_bytes, status, \
     failure_reason, attempts, objects, bad_lines, registered_at_unix, object_key, \
     ownership_state, ownership_reason, ownership_attempts";

/// How many columns [`DUMP_COLUMNS`] names: a `RETURNING` clause's next column has this index.
const DUMP_COLUMN_COUNT: usize = 24;

const INSERT_DUMP: &str = "INSERT INTO dumps (dump_id, tenant, host, pid, instance, taken_at_unix, \
     jobs, role, labels, file_name, size_bytes, content_sha256, gc_count, rss_bytes, status, \
     object_key, trace_context) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
     ON CONFLICT (dump_id) DO NOTHING";
/// Queues a dump that was registered earlier and never queued (`register_and_enqueue` of a
/// dump first registered with `register_dump`). The upload that queues the dump is the one its
/// job links to (`$2`, the trace context, when it has one).
const UPDATE_QUEUE_UPLOADED: &str = "UPDATE dumps SET status = 'queued', \
     trace_context = COALESCE($2, trace_context) WHERE dump_id = $1 AND status = 'uploaded'";
/// The `SET` list that drops a dump's ownership pass and any lease on it: part of every change
/// that takes a dump out of `ready`.
macro_rules! drop_ownership {
    () => {
        "ownership_state = NULL, ownership_reason = NULL, ownership_attempts = 0, \
         ownership_lease_worker = NULL, ownership_lease_expires_at_unix_ms = NULL"
    };
}

/// The `SET` list that queues a fresh ownership pass for a dump with a file in object storage
/// (any earlier pass dropped) and none for a dump without: part of every successful ingest.
macro_rules! queue_ownership {
    () => {
        "ownership_state = CASE WHEN object_key IS NULL THEN NULL ELSE 'queued' END, \
         ownership_reason = NULL, ownership_attempts = 0, ownership_lease_worker = NULL, \
         ownership_lease_expires_at_unix_ms = NULL"
    };
}

/// `set_status` to `ready`: a dump set ready keeps its ownership pass (it has none unless it
/// was ready already).
const UPDATE_STATUS_READY: &str = "UPDATE dumps \
     SET status = $2, failure_reason = $3, attempts = attempts + $4, lease_worker = NULL, \
     lease_expires_at_unix_ms = NULL WHERE dump_id = $1";
/// `set_status` to any other state, which drops the ownership pass.
const UPDATE_STATUS_NOT_READY: &str = concat!(
    "UPDATE dumps \
     SET status = $2, failure_reason = $3, attempts = attempts + $4, lease_worker = NULL, \
     lease_expires_at_unix_ms = NULL, ",
    drop_ownership!(),
    " WHERE dump_id = $1"
);
const UPDATE_READY: &str = concat!(
    "UPDATE dumps \
     SET status = $2, failure_reason = NULL, objects = $3, bad_lines = $4, lease_worker = NULL, \
     lease_expires_at_unix_ms = NULL, ",
    queue_ownership!(),
    " WHERE dump_id = $1"
);
const SELECT_DUMP_EXISTS: &str = "SELECT 1 FROM dumps WHERE dump_id = $1";

/// The server's clock in Unix milliseconds, the lease clock.
macro_rules! now_ms {
    () => {
        "floor(extract(epoch FROM now()) * 1000)::BIGINT"
    };
}

/// The condition a job's lease holder passes: `$1` is the dump id, `$2` the worker.
macro_rules! held_by_worker {
    () => {
        "dump_id = $1 AND status = 'ingesting' AND lease_worker = $2"
    };
}

/// The condition an ownership pass's lease holder passes: `$1` is the dump id, `$2` the
/// worker.
macro_rules! ownership_held_by_worker {
    () => {
        "dump_id = $1 AND status = 'ready' AND ownership_state = 'running' \
         AND ownership_lease_worker = $2"
    };
}

const UPDATE_ENQUEUE: &str = concat!(
    "UPDATE dumps SET status = 'queued', failure_reason = NULL, \
     attempts = CASE WHEN status = 'failed' THEN 0 ELSE attempts END, \
     lease_worker = NULL, lease_expires_at_unix_ms = NULL, ",
    drop_ownership!(),
    " WHERE dump_id = $1 AND status IN ('uploaded', 'failed')"
);
/// The claim, up to its `RETURNING`, which the caller appends with [`DUMP_COLUMNS`]. The
/// candidate's `status IN (...)` is the partial index's predicate, so the planner walks that
/// index in registration order and stops at the first row it can lock. The candidate also
/// keeps the row's status before the claim (`previous_status`, which `RETURNING` can name
/// while it sees only new values of `dumps`): `ingesting` means a take-over after an expired
/// lease. Its columns are renamed so that the unqualified `dumps` columns stay unambiguous.
const UPDATE_CLAIM: &str = concat!(
    "WITH candidate AS (SELECT dump_id AS claimed_id, status AS previous_status FROM dumps \
     WHERE status IN ('queued', 'ingesting') \
     AND (status = 'queued' OR lease_expires_at_unix_ms <= ",
    now_ms!(),
    ") AND ($3::TEXT IS NULL OR tenant = $3) \
     ORDER BY registration_seq LIMIT 1 FOR UPDATE SKIP LOCKED) \
     UPDATE dumps SET status = 'ingesting', failure_reason = NULL, attempts = attempts + 1, \
     lease_worker = $1, lease_expires_at_unix_ms = ",
    now_ms!(),
    " + $2, ",
    drop_ownership!(),
    " FROM candidate WHERE dump_id = candidate.claimed_id"
);
/// The ownership pass's claim, up to its `RETURNING`, shaped like [`UPDATE_CLAIM`]: the
/// candidate's `ownership_state IN (...)` is the ownership-queue index's predicate, and
/// `previous_state` `running` means a take-over after an expired lease.
const UPDATE_CLAIM_OWNERSHIP: &str = concat!(
    "WITH candidate AS (SELECT dump_id AS claimed_id, ownership_state AS previous_state \
     FROM dumps WHERE ownership_state IN ('queued', 'running') AND status = 'ready' \
     AND (ownership_state = 'queued' OR ownership_lease_expires_at_unix_ms <= ",
    now_ms!(),
    ") AND ($3::TEXT IS NULL OR tenant = $3) \
     ORDER BY registration_seq LIMIT 1 FOR UPDATE SKIP LOCKED) \
     UPDATE dumps SET ownership_state = 'running', ownership_reason = NULL, \
     ownership_attempts = ownership_attempts + 1, ownership_lease_worker = $1, \
     ownership_lease_expires_at_unix_ms = ",
    now_ms!(),
    " + $2 FROM candidate WHERE dump_id = candidate.claimed_id"
);
/// The job queue's backlogs, ingest and ownership; each subquery's state condition is one
/// partial index's predicate, so only queued and leased rows are read.
const SELECT_QUEUE_STATS: &str = "SELECT ingest.queued, ingest.ingesting, ingest.oldest, \
     ownership.queued, ownership.running FROM \
     (SELECT COUNT(*) FILTER (WHERE status = 'queued') AS queued, \
     COUNT(*) FILTER (WHERE status = 'ingesting') AS ingesting, \
     MIN(registered_at_unix) FILTER (WHERE status = 'queued') AS oldest \
     FROM dumps WHERE status IN ('queued', 'ingesting') \
     AND ($1::TEXT IS NULL OR tenant = $1)) AS ingest \
     CROSS JOIN \
     (SELECT COUNT(*) FILTER (WHERE ownership_state = 'queued') AS queued, \
     COUNT(*) FILTER (WHERE ownership_state = 'running') AS running \
     FROM dumps WHERE ownership_state IN ('queued', 'running') \
     AND ($1::TEXT IS NULL OR tenant = $1)) AS ownership";
const UPDATE_RENEW: &str = concat!(
    "UPDATE dumps SET lease_expires_at_unix_ms = ",
    now_ms!(),
    " + $3 WHERE ",
    held_by_worker!(),
    " RETURNING lease_expires_at_unix_ms"
);
const UPDATE_COMPLETE: &str = concat!(
    "UPDATE dumps SET status = 'ready', failure_reason = NULL, objects = $3, bad_lines = $4, \
     lease_worker = NULL, lease_expires_at_unix_ms = NULL, ",
    queue_ownership!(),
    " WHERE ",
    held_by_worker!()
);
/// Every expression reads the row as it was before the update, so the attempt count decides
/// both the state and whether the reason is kept.
const UPDATE_FAIL: &str = concat!(
    "UPDATE dumps SET status = CASE WHEN attempts < $3 THEN 'queued' ELSE 'failed' END, \
     failure_reason = CASE WHEN attempts < $3 THEN NULL ELSE $4::TEXT END, \
     lease_worker = NULL, lease_expires_at_unix_ms = NULL WHERE ",
    held_by_worker!(),
    " RETURNING status, failure_reason"
);
const UPDATE_RELEASE: &str = concat!(
    "UPDATE dumps SET status = 'queued', attempts = GREATEST(attempts - 1, 0), \
     lease_worker = NULL, lease_expires_at_unix_ms = NULL WHERE ",
    held_by_worker!()
);
const UPDATE_RENEW_OWNERSHIP: &str = concat!(
    "UPDATE dumps SET ownership_lease_expires_at_unix_ms = ",
    now_ms!(),
    " + $3 WHERE ",
    ownership_held_by_worker!(),
    " RETURNING ownership_lease_expires_at_unix_ms"
);
const UPDATE_COMPLETE_OWNERSHIP: &str = concat!(
    "UPDATE dumps SET ownership_state = $3, ownership_reason = $4, \
     ownership_lease_worker = NULL, ownership_lease_expires_at_unix_ms = NULL WHERE ",
    ownership_held_by_worker!()
);
/// As [`UPDATE_FAIL`]: every expression reads the row as it was before the update.
const UPDATE_FAIL_OWNERSHIP: &str = concat!(
    "UPDATE dumps SET \
     ownership_state = CASE WHEN ownership_attempts < $3 THEN 'queued' ELSE 'failed' END, \
     ownership_reason = CASE WHEN ownership_attempts < $3 THEN NULL ELSE $4::TEXT END, \
     ownership_lease_worker = NULL, ownership_lease_expires_at_unix_ms = NULL WHERE ",
    ownership_held_by_worker!(),
    " RETURNING ownership_state, ownership_reason"
);
const UPDATE_RELEASE_OWNERSHIP: &str = concat!(
    "UPDATE dumps SET ownership_state = 'queued', \
     ownership_attempts = GREATEST(ownership_attempts - 1, 0), \
     ownership_lease_worker = NULL, ownership_lease_expires_at_unix_ms = NULL WHERE ",
    ownership_held_by_worker!()
);
const SELECT_PROCESSES: &str = "SELECT host, pid, instance, COUNT(*), MIN(taken_at_unix), \
     MAX(taken_at_unix) FROM dumps WHERE tenant = $1 \
     GROUP BY host, pid, instance ORDER BY host, pid, instance";

/// The condition a dump passes unless a worker holds a live lease on it (on its ingest or on
/// its ownership pass), which a delete must not pull the dump from under. A lease that expires
/// exactly now has expired, as it has for a claim. Every term is checked for NULL, so the
/// condition is never NULL itself.
macro_rules! not_under_live_lease {
    () => {
        concat!(
            "NOT ((status = 'ingesting' AND lease_expires_at_unix_ms IS NOT NULL \
             AND lease_expires_at_unix_ms > ",
            now_ms!(),
            ") OR (ownership_state IS NOT NULL AND ownership_state = 'running' \
             AND ownership_lease_expires_at_unix_ms IS NOT NULL \
             AND ownership_lease_expires_at_unix_ms > ",
            now_ms!(),
            "))"
        )
    };
}

const DELETE_DUMP: &str = concat!(
    "DELETE FROM dumps WHERE dump_id = $1 AND ",
    not_under_live_lease!()
);
/// `begin_delete`'s `SET` and `WHERE`; the caller appends `RETURNING` with [`DUMP_COLUMNS`].
const UPDATE_BEGIN_DELETE: &str = concat!(
    "UPDATE dumps SET status = 'failed', failure_reason = $2, lease_worker = NULL, \
     lease_expires_at_unix_ms = NULL, ",
    drop_ownership!(),
    " WHERE dump_id = $1 AND ",
    not_under_live_lease!()
);
/// The workers a refused delete names: the ingest's, and the ownership pass's while it runs.
const SELECT_LEASE_WORKERS: &str = "SELECT lease_worker, \
     CASE WHEN ownership_state = 'running' THEN ownership_lease_worker END \
     FROM dumps WHERE dump_id = $1";
const SELECT_OBJECT_KEY_SHARED: &str =
    "SELECT 1 FROM dumps WHERE object_key = $1 AND dump_id <> $2 LIMIT 1";

/// The catalog in PostgreSQL: a pool of connections to one database whose schema
/// [`PostgresCatalog::connect`] brought up to date.
pub struct PostgresCatalog {
    pool: Pool,
    /// `user@host:port/database`, for `Debug`: never the password.
    database: String,
}

impl fmt::Debug for PostgresCatalog {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PostgresCatalog")
            .field("database", &self.database)
            .field("pool_max_size", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}

impl PostgresCatalog {
    /// Connects to the database named by `url_or_config`, either a URL
    /// (`postgresql://user:password@host:5432/database`) or libpq's key-value form
    /// (`host=127.0.0.1 port=5432 user=heapfleet dbname=heapfleet`), and brings its schema up
    /// to date.
    ///
    /// Fails with `Invalid` for a malformed string (the message does not repeat it: it may hold
    /// a password) or a schema newer than this build, `Unavailable` when the server cannot be
    /// reached.
    pub async fn connect(url_or_config: &str) -> Result<PostgresCatalog> {
        let config: tokio_postgres::Config = url_or_config.parse().map_err(|_| {
            CatalogError::Invalid("the catalog's PostgreSQL connection string is malformed".into())
        })?;
        PostgresCatalog::connect_with_config(config).await
    }

    /// Like [`PostgresCatalog::connect`], for a configuration built in code (for example with a
    /// password read from a secret file).
    pub async fn connect_with_config(
        mut config: tokio_postgres::Config,
    ) -> Result<PostgresCatalog> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name(APPLICATION_NAME);
        }
        let database = describe_database(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A connection that died unnoticed fails its next call with `Unavailable`,
                // which callers retry; a test query before every call would cost a round trip.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_MAX_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|build_error| CatalogError::Internal {
                message: "failed to build the catalog's connection pool".to_owned(),
                source: Some(build_error.into()),
            })?;
        let catalog = PostgresCatalog { pool, database };
        catalog.migrate().await?;
        Ok(catalog)
    }

    /// Returns the schema version of the database: the number of migrations applied.
    pub async fn schema_version(&self) -> Result<i64> {
        let client = self.client().await?;
        let row = client
            .query_one(SELECT_SCHEMA_VERSION, &[])
            .await
            .map_err(postgres_error("failed to read the catalog schema version"))?;
        row.try_get(0)
            .map_err(postgres_error("failed to read the catalog schema version"))
    }

    /// Returns the newest schema version this build knows.
    pub fn latest_schema_version() -> i64 {
        MIGRATIONS.last().map_or(0, |migration| migration.version)
    }

    /// Applies the migrations the database lacks, refusing one migrated by a newer build.
    async fn migrate(&self) -> Result<()> {
        let failed = "failed to migrate the catalog schema";
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error(failed))?;
        // Services starting together against a new database would otherwise all find version 0
        // and race to create the same tables. The lock makes them take turns: the first applies
        // every step, the others then find nothing left to do. It is scoped to the transaction,
        // so commit, rollback or a dropped connection releases it. `SET LOCAL` bounds the wait
        // behind a stuck starter and ends with the transaction too.
        transaction
            .batch_execute(&format!(
                "SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'; \
                 SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY}); \
                 {CREATE_SCHEMA_TABLE}"
            ))
            .await
            .map_err(postgres_error(failed))?;
        let current: i64 = transaction
            .query_one(SELECT_SCHEMA_VERSION, &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(postgres_error(failed))?;
        let latest = PostgresCatalog::latest_schema_version();
        if current > latest {
            return Err(CatalogError::Invalid(format!(
                "the catalog database has schema version {current}, newer than this build \
                 supports ({latest})"
            )));
        }
        for migration in MIGRATIONS
            .iter()
            .filter(|migration| migration.version > current)
        {
            let failed_step = || format!("failed to apply catalog migration {}", migration.version);
            transaction
                .batch_execute(migration.sql)
                .await
                .map_err(postgres_error(failed_step()))?;
            transaction
                .execute(INSERT_SCHEMA_VERSION, &[&migration.version])
                .await
                .map_err(postgres_error(failed_step()))?;
        }
        transaction.commit().await.map_err(postgres_error(failed))
    }

    /// Takes a connection from the pool, opening one if none is idle.
    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(|pool_error| {
            let message = "failed to get a connection to the catalog database".to_owned();
            match pool_error {
                PoolError::Backend(error) => classify(message, error),
                PoolError::Timeout(_) => CatalogError::Unavailable {
                    message,
                    source: pool_error.into(),
                },
                other => CatalogError::Internal {
                    message,
                    source: Some(other.into()),
                },
            }
        })
    }
}

impl PostgresCatalog {
    /// Returns the error for an update of `worker`'s job of `kind` that matched no row:
    /// `NotFound` when the dump does not exist, else `Conflict` (the worker lost its lease).
    async fn lease_error(
        &self,
        client: &Object,
        kind: JobKind,
        id: &DumpId,
        worker: &str,
    ) -> CatalogError {
        let exists = client
            .query_opt(SELECT_DUMP_EXISTS, &[&id.as_str()])
            .await
            .map_err(postgres_error(format!("failed to read dump {id}")));
        match exists {
            Ok(Some(_)) => kind.lease_lost(id, worker),
            Ok(None) => dump_not_found(id),
            Err(error) => error,
        }
    }

    /// Returns the error for a delete guarded by `not_under_live_lease!` that matched no row:
    /// `NotFound` when the dump does not exist, else `Conflict` naming the lease holder.
    async fn delete_refusal(&self, client: &Object, id: &DumpId) -> CatalogError {
        let holders = client
            .query_opt(SELECT_LEASE_WORKERS, &[&id.as_str()])
            .await
            .and_then(|row_opt| {
                row_opt
                    .map(|row| {
                        Ok((
                            row.try_get::<_, Option<String>>(0)?,
                            row.try_get::<_, Option<String>>(1)?,
                        ))
                    })
                    .transpose()
            })
            .map_err(postgres_error(format!("failed to read dump {id}")));
        match holders {
            Ok(Some((ingest_worker_opt, ownership_worker_opt))) => delete_refused(
                id,
                ingest_worker_opt.as_deref(),
                ownership_worker_opt.as_deref(),
            ),
            Ok(None) => dump_not_found(id),
            Err(error) => error,
        }
    }

    /// Runs `update` (guarded by `held_by_worker!` or `ownership_held_by_worker!` as `kind`
    /// says, so `$1` is the dump id and `$2` the worker) and fails with
    /// [`PostgresCatalog::lease_error`] when it matched no row.
    async fn update_held_job(
        &self,
        kind: JobKind,
        id: &DumpId,
        worker: &str,
        update: &str,
        extra: &[&(dyn ToSql + Sync)],
        failed: &str,
    ) -> Result<()> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(update)
            .await
            .map_err(postgres_error(failed))?;
        let id_text = id.as_str();
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![&id_text, &worker];
        values.extend_from_slice(extra);
        let updated = client
            .execute(&statement, &values)
            .await
            .map_err(postgres_error(failed))?;
        if updated == 0 {
            return Err(self.lease_error(&client, kind, id, worker).await);
        }
        Ok(())
    }
}

/// Which of a dump's two jobs a lease holder's call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    /// The ingest job, held under `held_by_worker!`.
    Ingest,
    /// The ownership pass, held under `ownership_held_by_worker!`.
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

/// Describes the database for `Debug` and logs: user, hosts, ports and database name, never
/// the password or other options.
fn describe_database(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        ports.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// Returns a mapper that files a driver error under the variant the caller can act on.
/// Runs a cached statement that changes rows; returns how many it changed.
async fn execute_cached<C: GenericClient>(
    client: &C,
    sql: &str,
    parameters: &[&(dyn ToSql + Sync)],
    failed: &str,
) -> Result<u64> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(postgres_error(failed))?;
    client
        .execute(&statement, parameters)
        .await
        .map_err(postgres_error(failed))
}

/// Runs a cached query that returns at most one row.
async fn query_opt_cached<C: GenericClient>(
    client: &C,
    sql: &str,
    parameters: &[&(dyn ToSql + Sync)],
    failed: &str,
) -> Result<Option<Row>> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(postgres_error(failed))?;
    client
        .query_opt(&statement, parameters)
        .await
        .map_err(postgres_error(failed))
}

/// Runs a cached query and returns its rows.
async fn query_cached<C: GenericClient>(
    client: &C,
    sql: &str,
    parameters: &[&(dyn ToSql + Sync)],
    failed: &str,
) -> Result<Vec<Row>> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(postgres_error(failed))?;
    client
        .query(&statement, parameters)
        .await
        .map_err(postgres_error(failed))
}

fn postgres_error(
    message: impl Into<String>,
) -> impl FnOnce(tokio_postgres::Error) -> CatalogError {
    move |error| classify(message.into(), error)
}

/// What a caller can do about a driver error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorClass {
    /// Retry later.
    Transient,
    /// The request's data was rejected.
    BadInput,
    /// A unique constraint other than the ones the code resolves itself.
    Conflict,
    /// Anything else: a bug, corrupt data, a misconfiguration.
    Other,
}

/// Classifies a server error by its SQLSTATE
/// (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
fn class_of_sqlstate(code: &str) -> ErrorClass {
    match code {
        // Another transaction holds the row (unique violation): not retryable as is.
        "23505" => ErrorClass::Conflict,
        // Query canceled (statement timeout), lock not available (lock timeout), the server
        // shutting down or starting up, a read-only standby after a failover.
        "57014" | "55P03" | "57P01" | "57P02" | "57P03" | "25006" => ErrorClass::Transient,
        _ => match code.get(..2) {
            // Connection exception; transaction rollback (serialization failure, deadlock);
            // insufficient resources (disk full, out of memory, too many connections); system
            // error (I/O).
            Some("08" | "40" | "53" | "58") => ErrorClass::Transient,
            // Data exception (a value out of range, a character the encoding cannot hold) and
            // the schema's other integrity checks.
            Some("22" | "23") => ErrorClass::BadInput,
            _ => ErrorClass::Other,
        },
    }
}

/// Classifies a driver error: by SQLSTATE when the server sent one, otherwise a closed
/// connection or a failed socket is transient and anything else is not.
fn class_of_error(error: &tokio_postgres::Error) -> ErrorClass {
    if let Some(code) = error.code() {
        return class_of_sqlstate(code.code());
    }
    if error.is_closed() {
        return ErrorClass::Transient;
    }
    let mut source_opt = std::error::Error::source(error);
    while let Some(source) = source_opt {
        if let Some(io_error) = source.downcast_ref::<std::io::Error>() {
            // The driver reports malformed protocol data as InvalidInput/InvalidData I/O
            // errors; retrying does not fix those.
            return match io_error.kind() {
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                    ErrorClass::Other
                }
                _ => ErrorClass::Transient,
            };
        }
        source_opt = source.source();
    }
    ErrorClass::Other
}

fn classify(message: String, error: tokio_postgres::Error) -> CatalogError {
    match class_of_error(&error) {
        ErrorClass::Transient => CatalogError::Unavailable {
            message,
            source: error.into(),
        },
        // The server's own message says which value it rejected; it is safe to show because it
        // names no SQL, but the source keeps the rest.
        ErrorClass::BadInput => CatalogError::Invalid(match error.as_db_error() {
            Some(db_error) => format!("{message}: {}", db_error.message()),
            None => message,
        }),
        ErrorClass::Conflict => CatalogError::Conflict(message),
        ErrorClass::Other => CatalogError::Internal {
            message,
            source: Some(error.into()),
        },
    }
}

/// Reads a row selected with [`DUMP_COLUMNS`].
fn stored_dump(row: &Row) -> std::result::Result<StoredDump, tokio_postgres::Error> {
    Ok(StoredDump {
        dump_id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        host: row.try_get(2)?,
        pid: row.try_get(3)?,
        instance: row.try_get(4)?,
        taken_at_unix: row.try_get(5)?,
        jobs: row.try_get(6)?,
        role: row.try_get(7)?,
        labels: row.try_get(8)?,
        file_name: row.try_get(9)?,
        size_bytes: row.try_get(10)?,
        content_sha256: row.try_get(11)?,
        gc_count: row.try_get(12)?,
        rss_bytes: row.try_get(13)?,
        status: row.try_get(14)?,
        failure_reason: row.try_get(15)?,
        attempts: i64::from(row.try_get::<_, i32>(16)?),
        objects: row.try_get(17)?,
        bad_lines: row.try_get(18)?,
        registered_at_unix: row.try_get(19)?,
        object_key: row.try_get(20)?,
        ownership_state: row.try_get(21)?,
        ownership_reason: row.try_get(22)?,
        ownership_attempts: i64::from(row.try_get::<_, i32>(23)?),
    })
}

/// Checks a row into a record.
fn dump_record(row: &Row) -> Result<DumpRecord> {
    stored_dump(row)
        .map_err(postgres_error("failed to read a dump row"))?
        .into_record()
}

/// One query parameter of a statement built at run time.
type Parameter = Box<dyn ToSql + Send + Sync>;

/// Builds the `list_dumps` query for `filter`: only the conditions it sets, so the planner sees
/// plain equalities and ranges it can match to the indexes. At most 2^8 shapes exist, which
/// bounds each connection's statement cache.
fn list_dumps_query(filter: &DumpFilter) -> (String, Vec<Parameter>) {
    let mut sql = format!("SELECT {DUMP_COLUMNS} FROM dumps WHERE tenant = $1");
    let mut parameters: Vec<Parameter> = vec![Box::new(filter.tenant.clone())];
    let mut condition = |column_and_operator: &str, parameter: Parameter| {
        parameters.push(parameter);
        sql.push_str(&format!(" AND {column_and_operator} ${}", parameters.len()));
    };
    if let Some(host) = &filter.host {
        condition("host =", Box::new(host.clone()));
    }
    if let Some(pid) = filter.pid {
        condition("pid =", Box::new(i64::from(pid)));
    }
    if let Some(instance) = &filter.instance {
        condition("instance =", Box::new(instance.clone()));
    }
    if let Some(role) = &filter.role {
        condition("role =", Box::new(role.clone()));
    }
    if let Some(taken_after) = filter.taken_after {
        condition("taken_at_unix >=", Box::new(taken_after));
    }
    if let Some(taken_before) = filter.taken_before {
        condition("taken_at_unix <", Box::new(taken_before));
    }
    if let Some(status) = filter.status {
        condition("status =", Box::new(status.as_str()));
    }
    if !filter.labels.is_empty() {
        // Containment of a JSON object of strings in another: every filter key is present with
        // exactly the filter's value, which is what DumpFilter::matches asks.
        condition("labels @>", Box::new(Json(filter.labels.clone())));
    }
    sql.push_str(" ORDER BY host, pid, instance, taken_at_unix, dump_id");
    (sql, parameters)
}

impl PostgresCatalog {
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
        let initial_status = if queue {
            DumpStatusKind::Queued
        } else {
            DumpStatusKind::Uploaded
        };
        let failed = format!("failed to register dump {id}");
        let mut client = self.client().await?;
        // READ COMMITTED: the insert waits for a concurrent registration of the same id to
        // commit and then does nothing; the select that follows takes a new snapshot and sees
        // the row either way.
        let transaction = client
            .transaction()
            .await
            .map_err(postgres_error(failed.as_str()))?;
        let inserted = execute_cached(
            &transaction,
            INSERT_DUMP,
            &[
                &id.as_str(),
                &new_dump.process.tenant,
                &new_dump.process.host,
                &i64::from(new_dump.process.pid),
                &new_dump.process.instance,
                &new_dump.taken_at_unix,
                &jobs,
                &new_dump.role,
                &Json(&new_dump.labels),
                &new_dump.file_name,
                &size_bytes,
                &new_dump.content_sha256,
                &gc_count,
                &rss_bytes,
                &initial_status.as_str(),
                &new_dump.object_key,
                &trace_context_opt,
            ],
            failed.as_str(),
        )
        .await?;
        if queue && inserted == 0 {
            execute_cached(
                &transaction,
                UPDATE_QUEUE_UPLOADED,
                &[&id.as_str(), &trace_context_opt],
                failed.as_str(),
            )
            .await?;
        }
        let row = query_opt_cached(
            &transaction,
            &format!("SELECT {DUMP_COLUMNS} FROM dumps WHERE dump_id = $1"),
            &[&id.as_str()],
            failed.as_str(),
        )
        .await?
        .ok_or_else(|| {
            CatalogError::internal_message(format!("dump {id} vanished while it was registered"))
        })?;
        let record = dump_record(&row)?;
        transaction
            .commit()
            .await
            .map_err(postgres_error(format!("failed to commit dump {id}")))?;
        Ok((record, inserted == 1))
    }
}

#[async_trait]
impl Catalog for PostgresCatalog {
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
        let failed = || format!("failed to read dump {id}");
        let client = self.client().await?;
        let row = query_opt_cached(
            &client,
            &format!("SELECT {DUMP_COLUMNS} FROM dumps WHERE dump_id = $1"),
            &[&id.as_str()],
            &failed(),
        )
        .await?
        .ok_or_else(|| dump_not_found(id))?;
        dump_record(&row)
    }

    async fn list_dumps(&self, filter: &DumpFilter) -> Result<Vec<DumpRecord>> {
        check_tenant(&filter.tenant)?;
        let (sql, parameters) = list_dumps_query(filter);
        let parameter_refs: Vec<&(dyn ToSql + Sync)> = parameters
            .iter()
            .map(|parameter| parameter.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.client().await?;
        let rows = query_cached(&client, &sql, &parameter_refs, "failed to list dumps").await?;
        rows.iter().map(dump_record).collect()
    }

    async fn set_status(&self, id: &DumpId, status: DumpStatus) -> Result<()> {
        let failed = || format!("failed to set the status of dump {id}");
        let attempt = i32::from(status == DumpStatus::Ingesting);
        let update = if status.kind() == DumpStatusKind::Ready {
            UPDATE_STATUS_READY
        } else {
            UPDATE_STATUS_NOT_READY
        };
        let client = self.client().await?;
        let updated = execute_cached(
            &client,
            update,
            &[
                &id.as_str(),
                &status.kind().as_str(),
                &status.failure_reason(),
                &attempt,
            ],
            &failed(),
        )
        .await?;
        if updated == 0 {
            return Err(dump_not_found(id));
        }
        Ok(())
    }

    async fn mark_ready(&self, id: &DumpId, objects: u64, bad_lines: u64) -> Result<()> {
        let failed = || format!("failed to mark dump {id} ready");
        let objects = to_sql_integer(objects, "objects")?;
        let bad_lines = to_sql_integer(bad_lines, "bad lines")?;
        let client = self.client().await?;
        let updated = execute_cached(
            &client,
            UPDATE_READY,
            &[
                &id.as_str(),
                &DumpStatusKind::Ready.as_str(),
                &objects,
                &bad_lines,
            ],
            &failed(),
        )
        .await?;
        if updated == 0 {
            return Err(dump_not_found(id));
        }
        Ok(())
    }

    async fn enqueue(&self, id: &DumpId) -> Result<bool> {
        let failed = || format!("failed to enqueue dump {id}");
        let client = self.client().await?;
        let updated = execute_cached(&client, UPDATE_ENQUEUE, &[&id.as_str()], &failed()).await?;
        if updated == 0 {
            let exists = client
                .query_opt(SELECT_DUMP_EXISTS, &[&id.as_str()])
                .await
                .map_err(postgres_error(failed()))?;
            if exists.is_none() {
                return Err(dump_not_found(id));
            }
        }
        Ok(updated == 1)
    }

    async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        tenant_opt: Option<&str>,
    ) -> Result<Option<Job>> {
        check_worker(worker)?;
        let lease_ms = lease_millis(lease)?;
        let failed = "failed to claim an ingest job";
        let client = self.client().await?;
        let claim = client
            .prepare_cached(&format!(
                "{UPDATE_CLAIM} RETURNING {DUMP_COLUMNS}, lease_expires_at_unix_ms, \
                 candidate.previous_status, trace_context"
            ))
            .await
            .map_err(postgres_error(failed))?;
        let Some(row) = client
            .query_opt(&claim, &[&worker, &lease_ms, &tenant_opt])
            .await
            .map_err(postgres_error(failed))?
        else {
            return Ok(None);
        };
        let dump = dump_record(&row)?;
        let lease_expires_at_unix_ms: i64 = row
            .try_get(DUMP_COLUMN_COUNT)
            .map_err(postgres_error(failed))?;
        let previous_status: String = row
            .try_get(DUMP_COLUMN_COUNT + 1)
            .map_err(postgres_error(failed))?;
        let trace_context: Option<String> = row
            .try_get(DUMP_COLUMN_COUNT + 2)
            .map_err(postgres_error(failed))?;
        Ok(Some(Job {
            attempt: dump.attempts,
            dump,
            worker: worker.to_owned(),
            lease_expires_at_unix_ms,
            // Only a lapsed lease makes an ingesting dump claimable.
            after_expired_lease: previous_status == DumpStatusKind::Ingesting.as_str(),
            trace_context,
        }))
    }

    async fn queue_stats(&self, tenant_opt: Option<&str>) -> Result<QueueStats> {
        let failed = "failed to read the job queue's backlog";
        let client = self.client().await?;
        let row = client
            .query_one(
                &client
                    .prepare_cached(SELECT_QUEUE_STATS)
                    .await
                    .map_err(postgres_error(failed))?,
                &[&tenant_opt],
            )
            .await
            .map_err(postgres_error(failed))?;
        let count = |index: usize, field: &str| -> Result<u64> {
            let value: i64 = row.try_get(index).map_err(postgres_error(failed))?;
            from_sql_integer(value, field)
        };
        Ok(QueueStats {
            queued: count(0, "queued jobs")?,
            ingesting: count(1, "ingesting jobs")?,
            oldest_queued_registered_at_unix: row.try_get(2).map_err(postgres_error(failed))?,
            ownership_queued: count(3, "queued ownership passes")?,
            ownership_running: count(4, "running ownership passes")?,
        })
    }

    async fn renew_lease(&self, id: &DumpId, worker: &str, lease: Duration) -> Result<i64> {
        check_worker(worker)?;
        let lease_ms = lease_millis(lease)?;
        let failed = || format!("failed to renew the lease on dump {id}");
        let client = self.client().await?;
        let row_opt = query_opt_cached(
            &client,
            UPDATE_RENEW,
            &[&id.as_str(), &worker, &lease_ms],
            &failed(),
        )
        .await?;
        match row_opt {
            Some(row) => row.try_get(0).map_err(postgres_error(failed())),
            None => Err(self.lease_error(&client, JobKind::Ingest, id, worker).await),
        }
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
        self.update_held_job(
            JobKind::Ingest,
            id,
            worker,
            UPDATE_COMPLETE,
            &[&objects, &bad_lines],
            &format!("failed to complete the job of dump {id}"),
        )
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
        // `attempts` is an INTEGER column; no dump gets anywhere near i32::MAX attempts.
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let failed = || format!("failed to fail the job of dump {id}");
        let client = self.client().await?;
        let row_opt = query_opt_cached(
            &client,
            UPDATE_FAIL,
            &[&id.as_str(), &worker, &max_attempts, &reason],
            &failed(),
        )
        .await?;
        let Some(row) = row_opt else {
            return Err(self.lease_error(&client, JobKind::Ingest, id, worker).await);
        };
        let status: String = row.try_get(0).map_err(postgres_error(failed()))?;
        let reason_opt: Option<String> = row.try_get(1).map_err(postgres_error(failed()))?;
        let kind: DumpStatusKind = status.parse().map_err(|_| {
            CatalogError::internal_message(format!(
                "dump {id} has unknown stored status {status:?}"
            ))
        })?;
        Ok(DumpStatus::from_parts(kind, reason_opt))
    }

    async fn release_job(&self, id: &DumpId, worker: &str) -> Result<()> {
        check_worker(worker)?;
        self.update_held_job(
            JobKind::Ingest,
            id,
            worker,
            UPDATE_RELEASE,
            &[],
            &format!("failed to release the job of dump {id}"),
        )
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
        let failed = "failed to claim an ownership pass";
        let client = self.client().await?;
        let claim = client
            .prepare_cached(&format!(
                "{UPDATE_CLAIM_OWNERSHIP} RETURNING {DUMP_COLUMNS}, \
                 ownership_lease_expires_at_unix_ms, candidate.previous_state, trace_context"
            ))
            .await
            .map_err(postgres_error(failed))?;
        let Some(row) = client
            .query_opt(&claim, &[&worker, &lease_ms, &tenant_opt])
            .await
            .map_err(postgres_error(failed))?
        else {
            return Ok(None);
        };
        let dump = dump_record(&row)?;
        let lease_expires_at_unix_ms: i64 = row
            .try_get(DUMP_COLUMN_COUNT)
            .map_err(postgres_error(failed))?;
        let previous_state: String = row
            .try_get(DUMP_COLUMN_COUNT + 1)
            .map_err(postgres_error(failed))?;
        let trace_context: Option<String> = row
            .try_get(DUMP_COLUMN_COUNT + 2)
            .map_err(postgres_error(failed))?;
        Ok(Some(Job {
            attempt: dump.ownership_attempts,
            dump,
            worker: worker.to_owned(),
            lease_expires_at_unix_ms,
            // Only a lapsed lease makes a running pass claimable.
            after_expired_lease: previous_state == OwnershipState::Running.as_str(),
            trace_context,
        }))
    }

    async fn renew_ownership_lease(
        &self,
        id: &DumpId,
        worker: &str,
        lease: Duration,
    ) -> Result<i64> {
        check_worker(worker)?;
        let lease_ms = lease_millis(lease)?;
        let failed = || format!("failed to renew the lease on the ownership pass of dump {id}");
        let client = self.client().await?;
        let row_opt = query_opt_cached(
            &client,
            UPDATE_RENEW_OWNERSHIP,
            &[&id.as_str(), &worker, &lease_ms],
            &failed(),
        )
        .await?;
        match row_opt {
            Some(row) => row.try_get(0).map_err(postgres_error(failed())),
            None => Err(self
                .lease_error(&client, JobKind::Ownership, id, worker)
                .await),
        }
    }

    async fn complete_ownership_job(
        &self,
        id: &DumpId,
        worker: &str,
        outcome: OwnershipOutcome,
    ) -> Result<()> {
        check_worker(worker)?;
        let (state, reason_opt) = ownership_outcome_parts(&outcome)?;
        self.update_held_job(
            JobKind::Ownership,
            id,
            worker,
            UPDATE_COMPLETE_OWNERSHIP,
            &[&state, &reason_opt],
            &format!("failed to complete the ownership pass of dump {id}"),
        )
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
        // `ownership_attempts` is an INTEGER column, like `attempts`.
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let failed = || format!("failed to fail the ownership pass of dump {id}");
        let client = self.client().await?;
        let row_opt = query_opt_cached(
            &client,
            UPDATE_FAIL_OWNERSHIP,
            &[&id.as_str(), &worker, &max_attempts, &reason],
            &failed(),
        )
        .await?;
        let Some(row) = row_opt else {
            return Err(self
                .lease_error(&client, JobKind::Ownership, id, worker)
                .await);
        };
        let state: String = row.try_get(0).map_err(postgres_error(failed()))?;
        let reason_opt: Option<String> = row.try_get(1).map_err(postgres_error(failed()))?;
        OwnershipState::from_parts(&state, reason_opt).map_err(|_| {
            CatalogError::internal_message(format!(
                "dump {id} has unknown stored ownership state {state:?}"
            ))
        })
    }

    async fn release_ownership_job(&self, id: &DumpId, worker: &str) -> Result<()> {
        check_worker(worker)?;
        self.update_held_job(
            JobKind::Ownership,
            id,
            worker,
            UPDATE_RELEASE_OWNERSHIP,
            &[],
            &format!("failed to release the ownership pass of dump {id}"),
        )
        .await
    }

    async fn list_processes(&self, tenant: &str) -> Result<Vec<ProcessSummary>> {
        check_tenant(tenant)?;
        let failed = || format!("failed to list the processes of tenant {tenant}");
        let client = self.client().await?;
        let rows = query_cached(&client, SELECT_PROCESSES, &[&tenant], &failed()).await?;
        rows.iter()
            .map(|row| {
                let read = || -> std::result::Result<_, tokio_postgres::Error> {
                    Ok((
                        row.try_get::<_, String>(0)?,
                        row.try_get::<_, i64>(1)?,
                        row.try_get::<_, String>(2)?,
                        row.try_get::<_, i64>(3)?,
                        row.try_get::<_, i64>(4)?,
                        row.try_get::<_, i64>(5)?,
                    ))
                };
                let (host, pid, instance, dump_count, first_taken_at_unix, last_taken_at_unix) =
                    read().map_err(postgres_error(failed()))?;
                Ok(ProcessSummary {
                    process: ProcessKey {
                        tenant: tenant.to_owned(),
                        host,
                        pid: from_sql_integer(pid, "pid")?,
                        instance,
                    },
                    dump_count: from_sql_integer(dump_count, "dump count")?,
                    first_taken_at_unix,
                    last_taken_at_unix,
                })
            })
            .collect()
    }

    async fn delete_dump(&self, id: &DumpId) -> Result<()> {
        let failed = || format!("failed to delete dump {id}");
        let client = self.client().await?;
        let deleted = execute_cached(&client, DELETE_DUMP, &[&id.as_str()], &failed()).await?;
        if deleted == 0 {
            return Err(self.delete_refusal(&client, id).await);
        }
        Ok(())
    }

    async fn begin_delete(&self, id: &DumpId) -> Result<DumpRecord> {
        let failed = || format!("failed to begin deleting dump {id}");
        let client = self.client().await?;
        let row_opt = query_opt_cached(
            &client,
            &format!("{UPDATE_BEGIN_DELETE} RETURNING {DUMP_COLUMNS}"),
            &[&id.as_str(), &DELETION_REASON],
            &failed(),
        )
        .await?;
        match row_opt {
            Some(row) => dump_record(&row),
            None => Err(self.delete_refusal(&client, id).await),
        }
    }

    async fn list_dumps_taken_before(
        &self,
        tenant_opt: Option<&str>,
        taken_before_unix: i64,
        limit: usize,
    ) -> Result<Vec<DumpRecord>> {
        let limit = check_retention_listing(tenant_opt, limit)?;
        let client = self.client().await?;
        let rows = query_cached(
            &client,
            &format!(
                "SELECT {DUMP_COLUMNS} FROM dumps \
                 WHERE taken_at_unix < $1 AND ($2::TEXT IS NULL OR tenant = $2) \
                 ORDER BY taken_at_unix, dump_id LIMIT $3"
            ),
            &[&taken_before_unix, &tenant_opt, &limit],
            "failed to list the dumps taken before a cutoff",
        )
        .await?;
        rows.iter().map(dump_record).collect()
    }

    async fn object_key_shared(&self, id: &DumpId, object_key: &str) -> Result<bool> {
        let failed = || format!("failed to look for other dumps with the object key of dump {id}");
        let client = self.client().await?;
        let row_opt = query_opt_cached(
            &client,
            SELECT_OBJECT_KEY_SHARED,
            &[&object_key, &id.as_str()],
            &failed(),
        )
        .await?;
        Ok(row_opt.is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn test_migrations_are_numbered_from_one_without_gaps() {
        for (position, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, position as i64 + 1);
        }
        assert_eq!(
            PostgresCatalog::latest_schema_version(),
            MIGRATIONS.len() as i64
        );
    }

    #[test]
    fn test_dump_column_count_matches_the_column_list() {
        assert_eq!(DUMP_COLUMNS.split(',').count(), DUMP_COLUMN_COUNT);
    }

    #[test]
    fn test_class_of_sqlstate_sorts_retryable_from_bad_input() {
        for transient in [
            "08006", "08001", "40001", "40P01", "53100", "53300", "57014", "55P03", "57P01",
            "58030", "25006",
        ] {
            assert_eq!(
                class_of_sqlstate(transient),
                ErrorClass::Transient,
                "{transient}"
            );
        }
        for bad_input in ["22021", "22003", "22P05", "23514", "23502"] {
            assert_eq!(
                class_of_sqlstate(bad_input),
                ErrorClass::BadInput,
                "{bad_input}"
            );
        }
        assert_eq!(class_of_sqlstate("23505"), ErrorClass::Conflict);
        for other in ["42P01", "42601", "28P01", "3D000", "XX000", ""] {
            assert_eq!(class_of_sqlstate(other), ErrorClass::Other, "{other:?}");
        }
    }

    #[test]
    fn test_list_dumps_query_binds_only_the_set_conditions() {
        let (sql, parameters) = list_dumps_query(&DumpFilter::for_tenant("acme"));
        assert_eq!(parameters.len(), 1);
        assert!(
            sql.ends_with("WHERE tenant = $1 ORDER BY host, pid, instance, taken_at_unix, dump_id")
        );

        let filter = DumpFilter {
            host: Some("web-1".to_owned()),
            pid: Some(7),
            taken_after: Some(100),
            taken_before: Some(200),
            labels: BTreeMap::from([("version".to_owned(), "v1".to_owned())]),
            ..DumpFilter::for_tenant("acme")
        };
        let (sql, parameters) = list_dumps_query(&filter);
        assert_eq!(parameters.len(), 6);
        assert!(sql.contains(
            "WHERE tenant = $1 AND host = $2 AND pid = $3 AND taken_at_unix >= $4 \
             AND taken_at_unix < $5 AND labels @> $6 ORDER BY"
        ));
    }

    #[test]
    fn test_describe_database_omits_the_password() {
        let config: tokio_postgres::Config =
            "postgresql://heapfleet:s3cret-pw@db.internal:6543/catalog"
                .parse()
                .unwrap();
        let description = describe_database(&config);
        assert_eq!(description, "heapfleet@db.internal:6543/catalog");
        assert!(!description.contains("s3cret-pw"));
    }
}
