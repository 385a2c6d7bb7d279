//! [`SqliteStore`]: the embedded, durable aggregate store of single-node mode, one SQLite file.
//!
//! Durability: WAL mode with `synchronous=FULL`, so a call that returned `Ok` survives a crash
//! or power loss. Schema: the numbered `.sql` files under `migrations/sqlite/` are applied in
//! order at open, each bumping `PRAGMA user_version`, all in one transaction; a file written by a
//! newer build is refused. The schema file explains the tables and how site keys are encoded.
//!
//! Atomicity: every write runs in one immediate transaction, so `put_dump_aggregates` and
//! `put_dump_ownership` replace a dump's rows all at once and a reader (each read runs in one
//! transaction too) never sees half of a put. Ownership results are stored as the blobs of
//! `ownership_pack.rs`, a site's row found through an index on (dump, site hash).
//!
//! Concurrency: one connection behind a mutex, driven from `spawn_blocking` so SQLite's blocking
//! I/O and index decoding never stall the async runtime.
//!
//! This module must not depend on any other backend.

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use heapfleet_analysis::{
    DumpAggregates, DumpOwnership, IndexedDump, SiteGenerationStats, SiteKey, Totals,
};
use heapfleet_sqlite::{BlockingConnection, Migration};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::columns::{
    NO_GENERATION, SiteColumns, StoredSite, decode_json, encode_json, from_column_integer,
    to_column_integer,
};
use crate::error::{Result, StorageError};
use crate::ownership_pack::{self, AskedSites, EncodedOwnership, OwnershipDecoder};
use crate::store::{
    AggregateStore, DumpSiteOwnership, DumpSiteStats, SiteSeriesPoint, aggregates_not_found,
    check_dump_id, decode_index_chunk, first_missing_chunk, index_not_found, missing_chunk_error,
    ownership_not_found, sort_site_rows, sorted_site_rows, with_sites,
};

/// The store's file name inside the directory given to [`SqliteStore::open`].
pub const STORE_FILE_NAME: &str = "store.sqlite";

/// Every schema step, in order. Append only: a released step never changes.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/sqlite/0001_create_aggregates.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/sqlite/0002_create_ownership.sql"),
    },
];

/// The embedded aggregate store: a SQLite file in WAL mode with `synchronous=FULL`.
pub struct SqliteStore {
    path: PathBuf,
    connection: BlockingConnection,
    /// Extra connections for the bulk reads of fleet queries: WAL lets them read beside the
    /// writer, and each is driven from its own blocking thread, so reads of several dumps run
    /// at once.
    readers: Vec<BlockingConnection>,
    next_reader: std::sync::atomic::AtomicUsize,
}

/// Connections [`SqliteStore`] keeps for bulk reads.
const BULK_READERS: usize = 2;

impl fmt::Debug for SqliteStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `directory`, which is created too, and brings its
    /// schema up to date.
    pub async fn open(directory: impl AsRef<Path>) -> Result<SqliteStore> {
        let directory = directory.as_ref().to_path_buf();
        let path = directory.join(STORE_FILE_NAME);
        let open_path = path.clone();
        let connections = tokio::task::spawn_blocking(move || {
            // The first open applies the migrations; the readers find them applied.
            (0..=BULK_READERS)
                .map(|_| heapfleet_sqlite::open_durable(&open_path, MIGRATIONS))
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .await
        .map_err(|join_error| StorageError::Internal {
            message: "opening the store panicked".to_owned(),
            source: Some(join_error.into()),
        })?
        .map_err(|open_error| open_failed(&path, open_error))?;
        let mut connections = connections.into_iter().map(BlockingConnection::new);
        let connection = connections.next().ok_or_else(|| StorageError::Internal {
            message: "no connection opened".to_owned(),
            source: None,
        })?;
        Ok(SqliteStore {
            path,
            connection,
            readers: connections.collect(),
            next_reader: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Returns the database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads something from each of `dumps` (which must all have aggregates), in one read
    /// transaction so a report sees one consistent state.
    async fn read_each_dump<T, F>(&self, dumps: &[&str], read: F) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(&Transaction<'_>, String) -> Result<T> + Send + 'static,
    {
        self.read_dumps_on_bulk_reader(dumps, move |transaction, dump| {
            require_aggregates(transaction, &dump)?;
            read(transaction, dump)
        })
        .await
    }

    /// Reads something from each of `dumps` in one read transaction on one of the bulk
    /// readers.
    async fn read_dumps_on_bulk_reader<T, F>(&self, dumps: &[&str], mut read: F) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: FnMut(&Transaction<'_>, String) -> Result<T> + Send + 'static,
    {
        for dump in dumps {
            check_dump_id(dump)?;
        }
        let dumps: Vec<String> = dumps.iter().map(|dump| (*dump).to_owned()).collect();
        let turn = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let reader = &self.readers[turn % self.readers.len()];
        reader
            .run(move |connection| {
                let transaction = connection
                    .transaction()
                    .map_err(sqlite_error("failed to begin a read"))?;
                dumps
                    .into_iter()
                    .map(|dump| read(&transaction, dump))
                    .collect()
            })
            .await
            .map_err(|join_error| StorageError::Internal {
                message: "store read panicked".to_owned(),
                source: Some(join_error.into()),
            })?
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
            .map_err(|join_error| StorageError::Internal {
                message: "store operation panicked".to_owned(),
                source: Some(join_error.into()),
            })?
    }
}

/// Files a failure to open the database under the variant the caller can act on.
fn open_failed(path: &Path, error: heapfleet_sqlite::OpenError) -> StorageError {
    let message = format!("failed to open the store at {}", path.display());
    match error {
        heapfleet_sqlite::OpenError::NewerSchema { .. } => {
            StorageError::Invalid(format!("{message}: {error}"))
        }
        error if error.is_transient() => StorageError::Unavailable {
            message,
            source: error.into(),
        },
        error => StorageError::Internal {
            message,
            source: Some(error.into()),
        },
    }
}

/// Returns a mapper that files a SQLite error under the variant the caller can act on.
fn sqlite_error(message: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StorageError {
    move |error| {
        let message = message.into();
        let transient = heapfleet_sqlite::is_transient(&error);
        if transient {
            StorageError::Unavailable {
                message,
                source: error.into(),
            }
        } else {
            StorageError::Internal {
                message,
                source: Some(error.into()),
            }
        }
    }
}

/// Reads the five site columns starting at `first`.
fn stored_site_from_row(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<StoredSite> {
    Ok(StoredSite {
        file: row.get(first)?,
        line: row.get(first + 1)?,
        object_type: row.get(first + 2)?,
        class_name: row.get(first + 3)?,
        absent: row.get(first + 4)?,
    })
}

/// The columns of a site key, in [`stored_site_from_row`] order.
const SITE_COLUMNS: &str = "file, line, object_type, class_name, absent";

/// Fails with `NotFound` unless the dump has aggregates.
fn require_aggregates(transaction: &Transaction<'_>, dump: &str) -> Result<()> {
    let exists = transaction
        .query_row(
            "SELECT 1 FROM dump_aggregates WHERE dump_id = ?1",
            params![dump],
            |_| Ok(()),
        )
        .optional()
        .map_err(sqlite_error(format!("failed to look up dump {dump}")))?;
    exists.ok_or_else(|| aggregates_not_found(dump))
}

/// Reads the dump's site rows, sorted by site then generation.
fn read_site_rows(transaction: &Transaction<'_>, dump: &str) -> Result<Vec<SiteGenerationStats>> {
    let mut statement = transaction
        .prepare_cached(&format!(
            "SELECT {SITE_COLUMNS}, generation, object_count, memsize, bytesize, reference_count \
             FROM site_totals WHERE dump_id = ?1"
        ))
        .map_err(sqlite_error("failed to prepare the site read"))?;
    let stored: Vec<(StoredSite, i64, [i64; 4])> = statement
        .query_map(params![dump], |row| {
            Ok((
                stored_site_from_row(row, 0)?,
                row.get(5)?,
                [row.get(6)?, row.get(7)?, row.get(8)?, row.get(9)?],
            ))
        })
        .and_then(Iterator::collect)
        .map_err(sqlite_error(format!(
            "failed to read the sites of dump {dump}"
        )))?;
    let mut sites = stored
        .into_iter()
        .map(
            |(stored_site, generation, [count, memsize, bytesize, references])| {
                Ok(SiteGenerationStats {
                    site: stored_site.into_site_key(dump)?,
                    generation: if generation == NO_GENERATION {
                        None
                    } else {
                        Some(from_column_integer(generation, "generation", dump)?)
                    },
                    totals: totals_from_sql([count, memsize, bytesize, references], dump)?,
                })
            },
        )
        .collect::<Result<Vec<_>>>()?;
    sort_site_rows(&mut sites);
    Ok(sites)
}

fn totals_from_sql([count, memsize, bytesize, references]: [i64; 4], dump: &str) -> Result<Totals> {
    Ok(Totals {
        count: from_column_integer(count, "count", dump)?,
        memsize: from_column_integer(memsize, "memsize", dump)?,
        bytesize: from_column_integer(bytesize, "bytesize", dump)?,
        references: from_column_integer(references, "references", dump)?,
    })
}

/// Reads the dump's index site table in position order.
fn read_index_sites(transaction: &Transaction<'_>, dump: &str) -> Result<Vec<SiteKey>> {
    let mut statement = transaction
        .prepare_cached(&format!(
            "SELECT site_number, {SITE_COLUMNS} FROM index_sites WHERE dump_id = ?1 ORDER BY site_number"
        ))
        .map_err(sqlite_error("failed to prepare the index site read"))?;
    let stored: Vec<(i64, StoredSite)> = statement
        .query_map(params![dump], |row| {
            Ok((row.get(0)?, stored_site_from_row(row, 1)?))
        })
        .and_then(Iterator::collect)
        .map_err(sqlite_error(format!(
            "failed to read the index sites of dump {dump}"
        )))?;
    stored
        .into_iter()
        .enumerate()
        .map(|(position, (site_number, stored_site))| {
            if usize::try_from(site_number).ok() != Some(position) {
                return Err(StorageError::internal_message(format!(
                    "the index site table of dump {dump} has a gap at position {position}"
                )));
            }
            stored_site.into_site_key(dump)
        })
        .collect()
}

/// Writes one dump's aggregates in `transaction`, replacing what it had.
fn write_aggregates(
    transaction: &Transaction<'_>,
    dump: &str,
    aggregates: &DumpAggregates,
) -> Result<()> {
    let duplicated_strings =
        encode_json(&aggregates.duplicated_strings, "duplicated strings", dump)?;
    let roots = encode_json(&aggregates.roots, "roots", dump)?;
    let shapes = encode_json(&aggregates.shapes, "shape totals", dump)?;
    let parse = encode_json(&aggregates.parse, "parse statistics", dump)?;
    let write_error = || sqlite_error(format!("failed to write the aggregates of dump {dump}"));
    transaction
        .execute("DELETE FROM site_totals WHERE dump_id = ?1", params![dump])
        .map_err(write_error())?;
    transaction
        .execute("DELETE FROM index_sites WHERE dump_id = ?1", params![dump])
        .map_err(write_error())?;
    transaction
        .execute(
            "INSERT OR REPLACE INTO dump_aggregates (dump_id, duplicated_strings, roots, shapes, parse) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![dump, duplicated_strings, roots, shapes, parse],
        )
        .map_err(write_error())?;

    let mut insert_site = transaction
        .prepare_cached(&format!(
            "INSERT INTO site_totals (dump_id, {SITE_COLUMNS}, generation, object_count, memsize, bytesize, \
             reference_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))
        .map_err(write_error())?;
    for row in &aggregates.sites {
        let columns = SiteColumns::new(&row.site);
        insert_site
            .execute(params![
                dump,
                columns.file,
                columns.line,
                columns.object_type,
                columns.class_name,
                columns.absent,
                row.generation.map_or(NO_GENERATION, i64::from),
                to_column_integer(row.totals.count, "count", dump)?,
                to_column_integer(row.totals.memsize, "memsize", dump)?,
                to_column_integer(row.totals.bytesize, "bytesize", dump)?,
                to_column_integer(row.totals.references, "references", dump)?,
            ])
            .map_err(write_error())?;
    }

    let mut insert_index_site = transaction
        .prepare_cached(&format!(
            "INSERT INTO index_sites (dump_id, site_number, {SITE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ))
        .map_err(write_error())?;
    for (site_number, site) in aggregates.index_sites.iter().enumerate() {
        let columns = SiteColumns::new(site);
        let site_number = i64::try_from(site_number)
            .map_err(|_| StorageError::Invalid(format!("dump {dump} has too many index sites")))?;
        insert_index_site
            .execute(params![
                dump,
                site_number,
                columns.file,
                columns.line,
                columns.object_type,
                columns.class_name,
                columns.absent,
            ])
            .map_err(write_error())?;
    }
    Ok(())
}

/// Sums one site's generations in one dump; zero when the dump has no such rows.
fn read_site_sum(transaction: &Transaction<'_>, dump: &str, site: &SiteKey) -> Result<Totals> {
    let columns = SiteColumns::new(site);
    let mut statement = transaction
        .prepare_cached(
            "SELECT COALESCE(SUM(object_count), 0), COALESCE(SUM(memsize), 0), COALESCE(SUM(bytesize), 0), \
             COALESCE(SUM(reference_count), 0) FROM site_totals \
             WHERE dump_id = ?1 AND file = ?2 AND line = ?3 AND object_type = ?4 AND class_name = ?5 \
             AND absent = ?6",
        )
        .map_err(sqlite_error("failed to prepare the site series read"))?;
    let sums: [i64; 4] = statement
        .query_row(
            params![
                dump,
                columns.file,
                columns.line,
                columns.object_type,
                columns.class_name,
                columns.absent
            ],
            |row| Ok([row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?]),
        )
        .map_err(sqlite_error(format!(
            "failed to read site {site} of dump {dump}"
        )))?;
    totals_from_sql(sums, dump)
}

/// Replaces the dump's ownership results with `encoded`, inside the caller's transaction.
fn write_ownership(
    transaction: &Transaction<'_>,
    dump: &str,
    encoded: &EncodedOwnership,
) -> Result<()> {
    let write_error = || {
        sqlite_error(format!(
            "failed to write the ownership results of dump {dump}"
        ))
    };
    for table in ["ownership_sites", "dump_ownership"] {
        transaction
            .execute(
                &format!("DELETE FROM {table} WHERE dump_id = ?1"),
                params![dump],
            )
            .map_err(write_error())?;
    }
    let mut insert_site = transaction
        .prepare_cached(
            "INSERT INTO ownership_sites (dump_id, position, site_hash, site) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(write_error())?;
    for row in &encoded.sites {
        insert_site
            .execute(params![dump, row.position, row.site_hash, row.bytes])
            .map_err(write_error())?;
    }
    transaction
        .execute(
            "INSERT INTO dump_ownership (dump_id, site_count, summary) VALUES (?1, ?2, ?3)",
            params![dump, encoded.site_count, encoded.summary],
        )
        .map_err(write_error())?;
    Ok(())
}

/// Reads the dump's whole ownership results; `NotFound` if none are stored.
fn read_ownership(transaction: &Transaction<'_>, dump: &str) -> Result<DumpOwnership> {
    let read_error = || {
        sqlite_error(format!(
            "failed to read the ownership results of dump {dump}"
        ))
    };
    let summary: Option<(i64, Vec<u8>)> = transaction
        .query_row(
            "SELECT site_count, summary FROM dump_ownership WHERE dump_id = ?1",
            params![dump],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(read_error())?;
    let (site_count, summary) = summary.ok_or_else(|| ownership_not_found(dump))?;
    let rows: Vec<(i32, Vec<u8>)> = transaction
        .prepare_cached(
            "SELECT position, site FROM ownership_sites WHERE dump_id = ?1 ORDER BY position",
        )
        .and_then(|mut statement| {
            statement
                .query_map(params![dump], |row| Ok((row.get(0)?, row.get(1)?)))
                .and_then(Iterator::collect)
        })
        .map_err(read_error())?;
    let mut decoder = OwnershipDecoder::new();
    let ownership = decoder.summary(dump, &summary)?;
    ownership_pack::assemble(dump, &mut decoder, ownership, site_count, rows)
}

/// Reads the rows of the asked sites the dump has, through the hash index.
fn read_site_ownership(
    transaction: &Transaction<'_>,
    dump: &str,
    asked: &AskedSites,
    decoder: &mut OwnershipDecoder,
) -> Result<DumpSiteOwnership> {
    let read_error = || sqlite_error(format!("failed to read the site ownership of dump {dump}"));
    let mut statement = transaction
        .prepare_cached("SELECT site FROM ownership_sites WHERE dump_id = ?1 AND site_hash = ?2")
        .map_err(read_error())?;
    let mut rows = Vec::new();
    for site_hash in asked.hashes() {
        let mut found = statement
            .query(params![dump, site_hash])
            .map_err(read_error())?;
        while let Some(row) = found.next().map_err(read_error())? {
            let blob = row
                .get_ref(0)
                .and_then(|value| Ok(value.as_blob()?))
                .map_err(read_error())?;
            rows.push(decoder.site(dump, blob)?);
        }
    }
    Ok(DumpSiteOwnership {
        dump: dump.to_owned(),
        sites: asked.pick(rows),
    })
}

/// Reads and decodes a finished index, streaming chunk blobs one at a time.
fn read_index(transaction: &Transaction<'_>, dump: &str) -> Result<IndexedDump> {
    let chunk_count: i64 = transaction
        .query_row(
            "SELECT chunk_count FROM index_state WHERE dump_id = ?1",
            params![dump],
            |row| row.get(0),
        )
        .optional()
        .map_err(sqlite_error(format!(
            "failed to read the index state of dump {dump}"
        )))?
        .ok_or_else(|| index_not_found(dump))?;
    require_aggregates(transaction, dump)?;
    let sites = read_index_sites(transaction, dump)?;
    let read_error = || sqlite_error(format!("failed to read the object index of dump {dump}"));
    let mut statement = transaction
        .prepare_cached(
            "SELECT chunk_number, bytes FROM index_chunks WHERE dump_id = ?1 AND chunk_number < ?2 \
             ORDER BY chunk_number",
        )
        .map_err(read_error())?;
    let mut rows = statement
        .query(params![dump, chunk_count])
        .map_err(read_error())?;
    let mut entries = Vec::new();
    let mut expected_chunk: u32 = 0;
    while let Some(row) = rows.next().map_err(read_error())? {
        let chunk_number: i64 = row.get(0).map_err(read_error())?;
        if chunk_number != i64::from(expected_chunk) {
            break;
        }
        let chunk = row
            .get_ref(1)
            .and_then(|value| Ok(value.as_blob()?))
            .map_err(read_error())?;
        decode_index_chunk(dump, expected_chunk, chunk, &mut entries)?;
        expected_chunk += 1;
    }
    if i64::from(expected_chunk) != chunk_count {
        return Err(StorageError::internal_message(format!(
            "the finished object index of dump {dump} lacks chunk {expected_chunk} of {chunk_count}"
        )));
    }
    Ok(IndexedDump { sites, entries })
}

#[async_trait]
impl AggregateStore for SqliteStore {
    async fn put_dump_aggregates(&self, dump: &str, aggregates: &DumpAggregates) -> Result<()> {
        check_dump_id(dump)?;
        // The blocking task needs owned data: the sorted copy of the sites is that copy.
        let aggregates = with_sites(aggregates, sorted_site_rows(dump, &aggregates.sites)?);
        let dump = dump.to_owned();
        self.with_connection(move |connection| {
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error(format!("failed to begin writing dump {dump}")))?;
            write_aggregates(&transaction, &dump, &aggregates)?;
            transaction.commit().map_err(sqlite_error(format!(
                "failed to commit the aggregates of dump {dump}"
            )))
        })
        .await
    }

    async fn get_dump_aggregates(&self, dump: &str) -> Result<DumpAggregates> {
        check_dump_id(dump)?;
        let dump = dump.to_owned();
        self.with_connection(move |connection| {
            let transaction = connection.transaction().map_err(sqlite_error("failed to begin a read"))?;
            let parts: Option<(String, String, String, String)> = transaction
                .query_row(
                    "SELECT duplicated_strings, roots, shapes, parse FROM dump_aggregates WHERE dump_id = ?1",
                    params![dump],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                )
                .optional()
                .map_err(sqlite_error(format!("failed to read the aggregates of dump {dump}")))?;
            let (duplicated_strings, roots, shapes, parse) = parts.ok_or_else(|| aggregates_not_found(&dump))?;
            let sites = read_site_rows(&transaction, &dump)?;
            let index_sites = read_index_sites(&transaction, &dump)?;
            Ok(DumpAggregates {
                sites,
                duplicated_strings: decode_json(&duplicated_strings, "duplicated strings", &dump)?,
                index_sites,
                roots: decode_json(&roots, "roots", &dump)?,
                shapes: decode_json(&shapes, "shape totals", &dump)?,
                parse: decode_json(&parse, "parse statistics", &dump)?,
            })
        })
        .await
    }

    async fn get_site_stats(&self, dump: &str) -> Result<Vec<SiteGenerationStats>> {
        check_dump_id(dump)?;
        let dump = dump.to_owned();
        self.with_connection(move |connection| {
            let transaction = connection
                .transaction()
                .map_err(sqlite_error("failed to begin a read"))?;
            require_aggregates(&transaction, &dump)?;
            read_site_rows(&transaction, &dump)
        })
        .await
    }

    async fn site_totals_for_dumps(&self, dumps: &[&str]) -> Result<Vec<DumpSiteStats>> {
        self.read_each_dump(dumps, |transaction, dump| {
            let sites = read_site_rows(transaction, &dump)?;
            Ok(DumpSiteStats { dump, sites })
        })
        .await
    }

    async fn site_series(&self, dumps: &[&str], site: &SiteKey) -> Result<Vec<SiteSeriesPoint>> {
        let site = site.clone();
        self.read_each_dump(dumps, move |transaction, dump| {
            let totals = read_site_sum(transaction, &dump, &site)?;
            Ok(SiteSeriesPoint { dump, totals })
        })
        .await
    }

    async fn put_index_chunk(&self, dump: &str, chunk_number: u32, bytes: Vec<u8>) -> Result<()> {
        check_dump_id(dump)?;
        let dump = dump.to_owned();
        self.with_connection(move |connection| {
            let write_error = || sqlite_error(format!("failed to write chunk {chunk_number} of dump {dump}"));
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(write_error())?;
            transaction
                .execute(
                    "INSERT OR REPLACE INTO index_chunks (dump_id, chunk_number, bytes) VALUES (?1, ?2, ?3)",
                    params![dump, chunk_number, bytes],
                )
                .map_err(write_error())?;
            // A new chunk makes the index unfinished until finish_index checks it again.
            transaction.execute("DELETE FROM index_state WHERE dump_id = ?1", params![dump]).map_err(write_error())?;
            transaction.commit().map_err(write_error())
        })
        .await
    }

    async fn finish_index(&self, dump: &str, chunk_count: u32) -> Result<()> {
        check_dump_id(dump)?;
        let dump = dump.to_owned();
        self.with_connection(move |connection| {
            let write_error = || sqlite_error(format!("failed to finish the object index of dump {dump}"));
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(write_error())?;
            let present: Vec<u32> = {
                let mut statement = transaction
                    .prepare_cached("SELECT chunk_number FROM index_chunks WHERE dump_id = ?1 AND chunk_number < ?2")
                    .map_err(write_error())?;
                statement
                    .query_map(params![dump, chunk_count], |row| row.get(0))
                    .and_then(Iterator::collect)
                    .map_err(write_error())?
            };
            if let Some(missing) = first_missing_chunk(chunk_count, present) {
                return Err(missing_chunk_error(&dump, missing, chunk_count));
            }
            transaction
                .execute(
                    "DELETE FROM index_chunks WHERE dump_id = ?1 AND chunk_number >= ?2",
                    params![dump, chunk_count],
                )
                .map_err(write_error())?;
            transaction
                .execute(
                    "INSERT OR REPLACE INTO index_state (dump_id, chunk_count) VALUES (?1, ?2)",
                    params![dump, chunk_count],
                )
                .map_err(write_error())?;
            transaction.commit().map_err(write_error())
        })
        .await
    }

    async fn load_index(&self, dump: &str) -> Result<IndexedDump> {
        check_dump_id(dump)?;
        let dump = dump.to_owned();
        self.with_connection(move |connection| {
            let transaction = connection
                .transaction()
                .map_err(sqlite_error("failed to begin a read"))?;
            read_index(&transaction, &dump)
        })
        .await
    }

    async fn put_dump_ownership(&self, dump: &str, ownership: &DumpOwnership) -> Result<()> {
        check_dump_id(dump)?;
        // Encoded before the connection is taken, so other calls wait only for the writes.
        let encoded = ownership_pack::encode_off_runtime(dump, ownership).await?;
        let dump = dump.to_owned();
        self.with_connection(move |connection| {
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error(format!(
                    "failed to begin writing the ownership results of dump {dump}"
                )))?;
            write_ownership(&transaction, &dump, &encoded)?;
            transaction.commit().map_err(sqlite_error(format!(
                "failed to commit the ownership results of dump {dump}"
            )))
        })
        .await
    }

    async fn get_dump_ownership(&self, dump: &str) -> Result<DumpOwnership> {
        check_dump_id(dump)?;
        let dump = dump.to_owned();
        self.with_connection(move |connection| {
            let transaction = connection
                .transaction()
                .map_err(sqlite_error("failed to begin a read"))?;
            read_ownership(&transaction, &dump)
        })
        .await
    }

    async fn site_ownership(
        &self,
        dumps: &[&str],
        sites: &[SiteKey],
    ) -> Result<Vec<DumpSiteOwnership>> {
        let asked = AskedSites::new(sites);
        let mut decoder = OwnershipDecoder::new();
        self.read_dumps_on_bulk_reader(dumps, move |transaction, dump| {
            read_site_ownership(transaction, &dump, &asked, &mut decoder)
        })
        .await
    }

    async fn delete_dump(&self, dump: &str) -> Result<()> {
        check_dump_id(dump)?;
        let dump = dump.to_owned();
        self.with_connection(move |connection| {
            let delete_error = || sqlite_error(format!("failed to delete dump {dump}"));
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(delete_error())?;
            for table in [
                "index_state",
                "index_chunks",
                "index_sites",
                "site_totals",
                "dump_aggregates",
                "ownership_sites",
                "dump_ownership",
            ] {
                transaction
                    .execute(
                        &format!("DELETE FROM {table} WHERE dump_id = ?1"),
                        params![dump],
                    )
                    .map_err(delete_error())?;
            }
            transaction.commit().map_err(delete_error())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use heapfleet_dump::ObjectType;

    use super::*;

    #[tokio::test]
    async fn test_sqlite_store_passes_the_conformance_suite() {
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(directory.path()).await.unwrap();
        crate::testsuite::run_aggregate_store_test_suite(&store).await;
    }

    #[tokio::test]
    async fn test_sqlite_store_keeps_aggregates_and_index_across_reopen() {
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(directory.path()).await.unwrap();
        let reopen = || SqliteStore::open(directory.path());
        crate::testsuite::check_dumps_survive_reopen(store, reopen).await;
    }

    #[tokio::test]
    async fn test_sqlite_store_uses_wal_and_full_sync() {
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(directory.path()).await.unwrap();
        let (journal_mode, synchronous, user_version) = store
            .with_connection(|connection| {
                let journal_mode: String = connection
                    .query_row("PRAGMA journal_mode", [], |row| row.get(0))
                    .unwrap();
                let synchronous: i64 = connection
                    .query_row("PRAGMA synchronous", [], |row| row.get(0))
                    .unwrap();
                let user_version: i64 = connection
                    .query_row("PRAGMA user_version", [], |row| row.get(0))
                    .unwrap();
                Ok((journal_mode, synchronous, user_version))
            })
            .await
            .unwrap();
        assert_eq!(journal_mode, "wal");
        // 2 is FULL.
        assert_eq!(synchronous, 2);
        assert_eq!(user_version, MIGRATIONS.len() as i64);
        assert_eq!(store.path(), directory.path().join(STORE_FILE_NAME));
    }

    #[tokio::test]
    async fn test_sqlite_store_refuses_a_newer_schema() {
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(directory.path()).await.unwrap();
        store
            .with_connection(|connection| {
                connection.pragma_update(None, "user_version", 99).unwrap();
                Ok(())
            })
            .await
            .unwrap();
        drop(store);
        let reopened = SqliteStore::open(directory.path()).await;
        assert!(
            matches!(reopened, Err(StorageError::Invalid(_))),
            "{reopened:?}"
        );
    }

    #[test]
    fn test_migrations_are_numbered_from_one_without_gaps() {
        for (position, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, position as i64 + 1);
        }
    }

    #[test]
    fn test_site_columns_round_trip_absent_parts() {
        let sites = [
            SiteKey {
                file: None,
                line: None,
                object_type: ObjectType::Hash,
                class_name: None,
            },
            SiteKey {
                file: Some(String::new()),
                line: Some(0),
                object_type: ObjectType::String,
                class_name: Some(String::new()),
            },
            SiteKey {
                file: Some("/app/é \"quoted\".rb".to_owned()),
                line: Some(u32::MAX),
                object_type: ObjectType::Unknown,
                class_name: Some("Foo::Bar".to_owned()),
            },
        ];
        for site in sites {
            let columns = SiteColumns::new(&site);
            let stored = StoredSite {
                file: columns.file.to_owned(),
                line: columns.line,
                object_type: columns.object_type.to_owned(),
                class_name: columns.class_name.to_owned(),
                absent: columns.absent,
            };
            assert_eq!(stored.into_site_key("d-1").unwrap(), site);
        }
    }
}
