//! Embedded SQLite plumbing shared by the embedded backends (the catalog and the aggregate
//! store): opening a durable database file, applying checked-in migrations, telling transient
//! errors from the rest, and running blocking calls off the async runtime.
//!
//! The backends stay independent of each other; both depend on this foundation. It knows nothing
//! of their schemas or error types.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

/// How long a call waits for a lock held by another connection (another process on the same
/// file) before it fails with a transient error.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One schema step: `sql` takes the database from `version - 1` to `version`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The schema version after this step, counted from 1.
    pub version: i64,
    /// The statements of the step.
    pub sql: &'static str,
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory for the file could not be created.
    #[error("failed to create directory {path}")]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A SQLite call failed while opening, configuring or migrating.
    #[error("failed to {action}")]
    Sqlite {
        /// What was being done, e.g. `apply migration 2`.
        action: String,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer build; it is refused rather than guessed at.
    #[error("schema version {current} is newer than this build supports ({latest})")]
    NewerSchema {
        /// The file's schema version.
        current: i64,
        /// The newest version this build knows.
        latest: i64,
    },
}

impl OpenError {
    /// Returns whether trying again later may succeed (a lock, a full disk, an I/O failure).
    pub fn is_transient(&self) -> bool {
        match self {
            OpenError::CreateDirectory { .. } => true,
            OpenError::Sqlite { source, .. } => is_transient(source),
            OpenError::NewerSchema { .. } => false,
        }
    }
}

/// Returns whether a SQLite error is transient: busy or locked by another connection, disk full,
/// cannot open, an I/O failure or out of memory.
pub fn is_transient(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::OutOfMemory
        )
    )
}

/// Opens (creating it and its directory if needed) a database file in WAL mode with
/// `synchronous=FULL`, and applies the pending `migrations`, which must be numbered from 1.
pub fn open_durable(path: &Path, migrations: &[Migration]) -> Result<Connection, OpenError> {
    if let Some(directory) = path.parent() {
        std::fs::create_dir_all(directory).map_err(|source| OpenError::CreateDirectory {
            path: directory.to_path_buf(),
            source,
        })?;
    }
    let sqlite = |action: &str| {
        let action = action.to_owned();
        move |source| OpenError::Sqlite { action, source }
    };
    let mut connection = Connection::open(path).map_err(sqlite("open the database file"))?;
    configure(&connection).map_err(sqlite("configure the database"))?;
    migrate(&mut connection, migrations)?;
    Ok(connection)
}

/// Sets the pragmas every connection needs before its first statement.
fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers in other processes (a CLI inspecting the file) run beside the writer;
    // synchronous=FULL syncs the WAL at every commit, so nothing is acknowledged before it is on
    // disk.
    let journal_mode: String =
        connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode is {journal_mode}, expected wal"
        )));
    }
    connection.pragma_update(None, "synchronous", "FULL")?;
    // Fleet-wide reads (the leak report) walk every dump's rows: a 64 MiB page cache and a
    // memory-mapped file save a read() copy per page.
    connection.pragma_update(None, "cache_size", -65_536)?;
    connection.pragma_update(None, "mmap_size", 1_i64 << 30)?;
    Ok(())
}

/// Applies the pending migrations in one immediate transaction, so two processes opening the
/// same file at once cannot both apply a step.
fn migrate(connection: &mut Connection, migrations: &[Migration]) -> Result<(), OpenError> {
    let sqlite = |action: String| move |source| OpenError::Sqlite { action, source };
    let latest = migrations.last().map_or(0, |migration| migration.version);
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite("lock the database for migration".to_owned()))?;
    let current: i64 = transaction
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sqlite("read the schema version".to_owned()))?;
    if current > latest {
        return Err(OpenError::NewerSchema { current, latest });
    }
    for migration in migrations
        .iter()
        .filter(|migration| migration.version > current)
    {
        transaction
            .execute_batch(migration.sql)
            .map_err(sqlite(format!("apply migration {}", migration.version)))?;
        transaction
            .pragma_update(None, "user_version", migration.version)
            .map_err(sqlite("record the schema version".to_owned()))?;
    }
    transaction
        .commit()
        .map_err(sqlite("commit migrations".to_owned()))
}

/// One connection behind a mutex, driven from tokio's blocking pool so SQLite's blocking I/O
/// never stalls the async runtime. Calls are serialised, which single-node mode needs.
#[derive(Debug, Clone)]
pub struct BlockingConnection {
    connection: Arc<Mutex<Connection>>,
}

impl BlockingConnection {
    /// Wraps an open connection.
    pub fn new(connection: Connection) -> Self {
        BlockingConnection {
            connection: Arc::new(Mutex::new(connection)),
        }
    }

    /// Runs `operation` on the connection in the blocking pool. Fails only if it panicked.
    pub async fn run<T, F>(&self, operation: F) -> Result<T, tokio::task::JoinError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> T + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held leaves nothing half-done in the database (the
            // transaction rolls back on drop), so a poisoned lock is still safe to use.
            let mut guard = connection
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            operation(&mut guard)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATIONS: &[Migration] = &[
        Migration {
            version: 1,
            sql: "CREATE TABLE a (x INTEGER);",
        },
        Migration {
            version: 2,
            sql: "CREATE TABLE b (y INTEGER);",
        },
    ];

    fn user_version(connection: &Connection) -> i64 {
        connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn test_open_durable_configures_and_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/db.sqlite");
        let connection = open_durable(&path, &MIGRATIONS[..1]).unwrap();
        assert_eq!(user_version(&connection), 1);
        let mode: String = connection
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let synchronous: i64 = connection
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 2, "FULL");
        drop(connection);

        // Reopening applies only the new step; the table of step 1 is not created twice.
        let connection = open_durable(&path, MIGRATIONS).unwrap();
        assert_eq!(user_version(&connection), 2);
    }

    #[test]
    fn test_open_durable_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        drop(open_durable(&path, MIGRATIONS).unwrap());
        let error = open_durable(&path, &MIGRATIONS[..1]).unwrap_err();
        assert!(
            matches!(
                error,
                OpenError::NewerSchema {
                    current: 2,
                    latest: 1
                }
            ),
            "{error}"
        );
        assert!(!error.is_transient());
    }

    #[tokio::test]
    async fn test_blocking_connection_runs_calls_in_order() {
        let connection = BlockingConnection::new(Connection::open_in_memory().unwrap());
        connection
            .run(|connection| connection.execute_batch("CREATE TABLE t (v INTEGER)"))
            .await
            .unwrap()
            .unwrap();
        for value in 0..3 {
            connection
                .run(move |connection| connection.execute("INSERT INTO t VALUES (?1)", [value]))
                .await
                .unwrap()
                .unwrap();
        }
        let sum: i64 = connection
            .run(|connection| connection.query_row("SELECT sum(v) FROM t", [], |row| row.get(0)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sum, 3);
    }
}
