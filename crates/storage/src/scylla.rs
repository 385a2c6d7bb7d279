//! [`ScyllaStore`]: the aggregate store of the distributed stack on ScyllaDB, speaking CQL (and
//! so tested against Apache Cassandra 5, with one schema valid on both).
//!
//! Schema (`scylla/schema.cql`): every table is partitioned by dump, and the object index by
//! (dump, chunk), so partitions are bounded by what one dump holds and every read is one
//! partition query per dump. A dump's site rows are stored packed (`site_pack.rs`), a few blobs
//! per dump, so the leak report reads a process's dumps in one query of a handful of cells;
//! `site_totals` (one CQL row per site row) is only read, for dumps stored by schema version 1.
//! Site keys use the shared column encoding of `columns.rs`.
//!
//! Writes are idempotent: keys are deterministic, rows are overwritten, no counters. A re-put
//! of a dump's aggregates first deletes the dump's rows and then writes the new ones; the
//! session's monotonic client-side timestamps order those writes. The `dump_aggregates` row is
//! removed first and written last, so while aggregates are rewritten a reader sees `NotFound`,
//! never a mix (the catalog's `ready` status keeps readers away from dumps being ingested).
//! Packed site blocks follow the same rule on their own: block 0 carries the block count and is
//! written after every other block, so a reader that finds block 0 finds them all.
//! Statements are prepared once at connect.
//!
//! Ownership results (`ownership_pack.rs`) are stored apart from the aggregates: a summary row
//! (`dump_ownership`) and one row per site (`ownership_sites`, clustered by a hash of the site so
//! that a read of a few sites across many dumps is one multi-partition request of those rows
//! only). A rewrite deletes the summary row, then the dump's site rows, writes the new site rows
//! in bounded single-partition batches, and writes the summary row last. The summary names its
//! write (`write_id`, part of every site row's key too, so two writers racing on one dump never
//! overwrite each other's rows): a reader keeps only the site rows of the write the summary
//! names and checks that the summary did not change while it read, so it never mixes two
//! writes.
//!
//! Only this module (in the whole workspace) speaks CQL.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ::scylla::client::session::Session;
use ::scylla::client::session_builder::SessionBuilder;
use ::scylla::errors::{
    DbError, ExecutionError, NextPageError, NextRowError, PagerExecutionError, PrepareError,
    RequestAttemptError,
};
use ::scylla::frame::types::Consistency;
use ::scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use ::scylla::statement::batch::{Batch, BatchType};
use ::scylla::statement::prepared::PreparedStatement;
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use heapfleet_analysis::{
    DumpAggregates, DumpOwnership, IndexedDump, SiteGenerationStats, SiteKey, Totals,
};

use crate::columns::{
    NO_GENERATION, SiteColumns, StoredSite, decode_json, encode_json, from_column_integer,
};
use crate::error::{Result, StorageError};
use crate::ownership_pack::{self, AskedSites, OwnershipDecoder};
use crate::site_pack;
use crate::store::{
    AggregateStore, DumpSiteOwnership, DumpSiteStats, aggregates_not_found, check_dump_id,
    decode_index_chunk, index_not_found, missing_chunk_error, ownership_not_found, sort_site_rows,
    sorted_site_rows,
};

/// The schema version this build writes and reads.
/// Version 2 added `site_blocks`; version 1 keyspaces are read as they are.
/// Version 3 added `dump_ownership` and `ownership_sites`.
const SCHEMA_VERSION: i32 = 3;
/// The schema, statements separated by lines holding only `;`.
const SCHEMA: &str = include_str!("scylla/schema.cql");
/// Rows per unlogged batch: every batch holds rows of one partition only.
const ROWS_PER_BATCH: usize = 200;
/// Requests a dump's write or read keeps in flight at once.
const CONCURRENT_REQUESTS: usize = 8;

/// Dumps whose site blocks one bulk read asks for (`WHERE dump_id IN ...`): a process's dumps
/// usually fit in one request, and the coordinator reads the partitions in parallel.
const DUMPS_PER_BULK_READ: usize = 16;

/// Bytes of ownership site rows per unlogged batch (a single larger row goes alone). Rows are
/// up to a few KiB each, so counting rows alone would let a batch of [`ROWS_PER_BATCH`] grow to a
/// megabyte or more; bounded bytes keep each request well inside the server's mutation size
/// limit and write timeout.
const OWNERSHIP_BYTES_PER_BATCH: usize = 256 * 1024;

/// Site hashes one ownership read asks for (`site_hash IN ...`), below ScyllaDB's default limit
/// of 100 clustering-key restrictions per query.
const SITES_PER_OWNERSHIP_READ: usize = 64;

/// Times a `site_ownership` read starts over when a dump's ownership results were rewritten
/// while it read, before it gives up with `Conflict`.
const OWNERSHIP_READ_ATTEMPTS: usize = 3;

/// Consistency level of every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScyllaConsistency {
    /// One replica.
    One,
    /// A majority of all replicas.
    Quorum,
    /// A majority of the replicas in the local datacenter.
    LocalQuorum,
    /// Every replica.
    All,
}

impl ScyllaConsistency {
    fn to_driver(self) -> Consistency {
        match self {
            ScyllaConsistency::One => Consistency::One,
            ScyllaConsistency::Quorum => Consistency::Quorum,
            ScyllaConsistency::LocalQuorum => Consistency::LocalQuorum,
            ScyllaConsistency::All => Consistency::All,
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// Keyspace, created if missing: lowercase letters, digits and `_`, starting with a letter.
    pub keyspace: String,
    /// Replicas per datacenter (`NetworkTopologyStrategy`), used when creating the keyspace.
    pub replication_factor: u32,
    /// Consistency level of every request.
    pub consistency: ScyllaConsistency,
}

impl ScyllaConfig {
    /// Returns a config for one local node (tests, a laptop): replication 1, consistency ONE.
    pub fn single_node(node: impl Into<String>, keyspace: impl Into<String>) -> ScyllaConfig {
        ScyllaConfig {
            nodes: vec![node.into()],
            keyspace: keyspace.into(),
            replication_factor: 1,
            consistency: ScyllaConsistency::One,
        }
    }
}

/// The prepared statements, one per request shape.
struct Statements {
    insert_aggregates: PreparedStatement,
    delete_aggregates: PreparedStatement,
    select_aggregates: PreparedStatement,
    delete_sites: PreparedStatement,
    select_sites: PreparedStatement,
    insert_site_block: PreparedStatement,
    delete_site_blocks: PreparedStatement,
    select_site_blocks: PreparedStatement,
    select_site_blocks_of_dumps: PreparedStatement,
    insert_index_site: PreparedStatement,
    delete_index_sites: PreparedStatement,
    select_index_sites: PreparedStatement,
    insert_chunk: PreparedStatement,
    select_chunk: PreparedStatement,
    probe_chunk: PreparedStatement,
    delete_chunk: PreparedStatement,
    insert_index_state: PreparedStatement,
    delete_index_state: PreparedStatement,
    select_index_state: PreparedStatement,
    insert_ownership: PreparedStatement,
    delete_ownership: PreparedStatement,
    select_ownership: PreparedStatement,
    select_ownership_writes: PreparedStatement,
    insert_ownership_site: PreparedStatement,
    delete_ownership_sites: PreparedStatement,
    select_ownership_sites: PreparedStatement,
    select_ownership_sites_of_dumps: PreparedStatement,
}

/// The aggregate store on ScyllaDB (or Cassandra).
pub struct ScyllaStore {
    session: Arc<Session>,
    keyspace: String,
    statements: Arc<Statements>,
}

impl fmt::Debug for ScyllaStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ScyllaStore")
            .field("keyspace", &self.keyspace)
            .finish_non_exhaustive()
    }
}

/// The columns of a `dump_aggregates` row: duplicated strings, roots, shapes, parse statistics.
type AggregatesRow = (String, String, String, String);

/// The columns of a site row, as the driver returns them.
type SiteRow = (String, i64, String, String, i64, i64, i64, i64, i64, i64);

/// The columns of a site block: dump, block number, block count (block 0 only), packed rows.
type SiteBlockRow = (String, i32, Option<i32>, Vec<u8>);

/// The columns of a `dump_ownership` row: write id, site count, summary blob.
type OwnershipRow = (i64, i32, Vec<u8>);

/// The columns of an `ownership_sites` row of a whole-dump read: position, write id, blob.
type OwnershipSiteRow = (i32, i64, Vec<u8>);

/// The columns of an `ownership_sites` row of a multi-dump read: dump, write id, blob.
type DumpOwnershipSiteRow = (String, i64, Vec<u8>);

impl ScyllaStore {
    /// Connects, creates the keyspace and tables if missing (refusing a schema newer than this
    /// build), and prepares every statement.
    pub async fn connect(config: &ScyllaConfig) -> Result<ScyllaStore> {
        check_keyspace_name(&config.keyspace)?;
        let session = SessionBuilder::new()
            .known_nodes(&config.nodes)
            .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
            .build()
            .await
            .map_err(|error| StorageError::Unavailable {
                message: format!(
                    "failed to connect to the CQL cluster at {}",
                    config.nodes.join(", ")
                ),
                source: error.into(),
            })?;
        let keyspace = &config.keyspace;
        let replication = config.replication_factor;
        run_ddl(
            &session,
            &format!(
                "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
                 {{'class': 'NetworkTopologyStrategy', 'replication_factor': {replication}}}"
            ),
        )
        .await?;
        session
            .use_keyspace(keyspace, false)
            .await
            .map_err(|error| StorageError::Unavailable {
                message: format!("failed to use keyspace {keyspace}"),
                source: error.into(),
            })?;
        migrate(&session).await?;
        let statements = prepare_statements(&session, config.consistency.to_driver()).await?;
        Ok(ScyllaStore {
            session: Arc::new(session),
            keyspace: keyspace.clone(),
            statements: Arc::new(statements),
        })
    }

    /// Returns whether the dump has aggregates.
    async fn has_aggregates(&self, dump: &str) -> Result<bool> {
        let row: Option<AggregatesRow> = self
            .first_row(&self.statements.select_aggregates, (dump,), "look up", dump)
            .await?;
        Ok(row.is_some())
    }

    /// Runs a single-row read and returns its row, if any. `action` names what failed.
    async fn first_row<R>(
        &self,
        statement: &PreparedStatement,
        values: impl ::scylla::serialize::row::SerializeRow,
        action: &str,
        dump: &str,
    ) -> Result<Option<R>>
    where
        R: for<'frame, 'metadata> ::scylla::deserialize::row::DeserializeRow<'frame, 'metadata>,
    {
        let result = self
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(cql_error(format!("failed to {action} dump {dump}")))?;
        let rows = result
            .into_rows_result()
            .map_err(internal(format!("failed to {action} dump {dump}")))?;
        rows.maybe_first_row().map_err(internal(format!(
            "unexpected columns while trying to {action} dump {dump}"
        )))
    }

    /// Reads the dump's site rows (paged), sorted by site then generation.
    async fn read_site_rows(&self, dump: &str) -> Result<Vec<SiteGenerationStats>> {
        let pager = self
            .session
            .execute_iter(self.statements.select_sites.clone(), (dump,))
            .await
            .map_err(cql_error(format!(
                "failed to read the sites of dump {dump}"
            )))?;
        let stored: Vec<SiteRow> = pager
            .rows_stream::<SiteRow>()
            .map_err(internal(format!("unexpected site columns of dump {dump}")))?
            .try_collect()
            .await
            .map_err(cql_error(format!(
                "failed to read the sites of dump {dump}"
            )))?;
        let mut sites = stored
            .into_iter()
            .map(|row| site_row(dump, row))
            .collect::<Result<Vec<_>>>()?;
        sort_site_rows(&mut sites);
        Ok(sites)
    }

    /// Writes a dump's packed site blocks: every block but the first, then block 0 with the
    /// block count, so a reader that sees block 0 sees a complete set.
    async fn write_site_blocks(
        &self,
        dump: &str,
        mut blocks: Vec<Vec<u8>>,
        block_count: i32,
    ) -> Result<()> {
        let later_blocks = blocks.split_off(1);
        let mut writes = futures::stream::iter(later_blocks.into_iter().zip(1..).map(
            |(block, number): (Vec<u8>, i32)| {
                self.execute(
                    &self.statements.insert_site_block,
                    (dump, number, None::<i32>, block),
                    "store the sites of",
                    dump,
                )
            },
        ))
        .buffer_unordered(CONCURRENT_REQUESTS);
        while writes.try_next().await?.is_some() {}
        let first = blocks.pop().expect("a dump has at least one site block");
        self.execute(
            &self.statements.insert_site_block,
            (dump, 0_i32, Some(block_count), first),
            "store the sites of",
            dump,
        )
        .await
    }

    /// Reads the packed site blocks of `dumps` (at most [`DUMPS_PER_BULK_READ`]) in one request.
    async fn read_site_blocks(&self, dumps: &[&str]) -> Result<Vec<SiteBlockRow>> {
        let action = || match dumps {
            [dump] => format!("failed to read the sites of dump {dump}"),
            _ => format!("failed to read the sites of dumps {}", dumps.join(", ")),
        };
        let result = match dumps {
            [dump] => {
                self.session
                    .execute_unpaged(&self.statements.select_site_blocks, (*dump,))
                    .await
            }
            _ => {
                self.session
                    .execute_unpaged(&self.statements.select_site_blocks_of_dumps, (dumps,))
                    .await
            }
        }
        .map_err(cql_error(action()))?;
        let rows = result.into_rows_result().map_err(internal(action()))?;
        rows.rows::<SiteBlockRow>()
            .map_err(internal(action()))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(internal(action()))
    }

    /// Reads the site rows of a dump stored before site rows were packed (schema version 1),
    /// one CQL row per site row; `NotFound` if the dump has no aggregates at all.
    async fn read_unpacked_sites(&self, dump: &str) -> Result<Vec<SiteGenerationStats>> {
        if !self.has_aggregates(dump).await? {
            return Err(aggregates_not_found(dump));
        }
        self.read_site_rows(dump).await
    }

    /// Returns whether chunk `chunk_number` of the dump's index is stored.
    async fn has_chunk(&self, dump: &str, chunk_number: i32) -> Result<bool> {
        let row: Option<(i32,)> = self
            .first_row(
                &self.statements.probe_chunk,
                (dump, chunk_number),
                "look up an index chunk of",
                dump,
            )
            .await?;
        Ok(row.is_some())
    }

    /// Deletes the dump's index chunks from `first` on, up to the first one that is not there
    /// (chunks are always written as a run from 0).
    async fn delete_chunks_from(&self, dump: &str, first: i32) -> Result<()> {
        let mut chunk_number = first;
        while self.has_chunk(dump, chunk_number).await? {
            self.execute(
                &self.statements.delete_chunk,
                (dump, chunk_number),
                "delete an index chunk of",
                dump,
            )
            .await?;
            chunk_number += 1;
        }
        Ok(())
    }

    /// Returns the finished index's chunk count, `None` when unfinished or absent.
    async fn index_chunk_count(&self, dump: &str) -> Result<Option<i32>> {
        let row: Option<(Option<i32>,)> = self
            .first_row(
                &self.statements.select_index_state,
                (dump,),
                "look up the index of",
                dump,
            )
            .await?;
        Ok(row.and_then(|(count,)| count))
    }

    async fn execute(
        &self,
        statement: &PreparedStatement,
        values: impl ::scylla::serialize::row::SerializeRow,
        action: &str,
        dump: &str,
    ) -> Result<()> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(cql_error(format!("failed to {action} dump {dump}")))?;
        Ok(())
    }

    /// Writes rows of one partition in unlogged batches, several batches in flight.
    async fn write_rows<V>(
        &self,
        statement: &PreparedStatement,
        rows: &[V],
        dump: &str,
    ) -> Result<()>
    where
        V: ::scylla::serialize::row::SerializeRow + Sync,
    {
        self.write_batches(statement, rows.chunks(ROWS_PER_BATCH).collect(), dump)
            .await
    }

    /// Writes each group of rows (all of one partition) as one unlogged batch, several batches
    /// in flight.
    async fn write_batches<V>(
        &self,
        statement: &PreparedStatement,
        groups: Vec<&[V]>,
        dump: &str,
    ) -> Result<()>
    where
        V: ::scylla::serialize::row::SerializeRow + Sync,
    {
        let batches: Vec<(Batch, &[V])> = groups
            .into_iter()
            .map(|chunk| {
                let mut batch = Batch::new(BatchType::Unlogged);
                if let Some(consistency) = statement.get_consistency() {
                    batch.set_consistency(consistency);
                }
                for _ in chunk {
                    batch.append_statement(statement.clone());
                }
                (batch, chunk)
            })
            .collect();
        for group in batches.chunks(CONCURRENT_REQUESTS) {
            futures::future::try_join_all(
                group
                    .iter()
                    .map(|(batch, chunk)| self.session.batch(batch, *chunk)),
            )
            .await
            .map_err(cql_error(format!(
                "failed to write the rows of dump {dump}"
            )))?;
        }
        Ok(())
    }

    /// Returns the write id of each of `dumps` (at most [`DUMPS_PER_BULK_READ`]) that has
    /// ownership results.
    async fn ownership_writes(&self, dumps: &[&str]) -> Result<HashMap<String, i64>> {
        let action = || {
            format!(
                "failed to look up the ownership results of dumps {}",
                dumps.join(", ")
            )
        };
        let result = self
            .session
            .execute_unpaged(&self.statements.select_ownership_writes, (dumps,))
            .await
            .map_err(cql_error(action()))?;
        let rows = result.into_rows_result().map_err(internal(action()))?;
        rows.rows::<(String, i64)>()
            .map_err(internal(action()))?
            .collect::<std::result::Result<HashMap<_, _>, _>>()
            .map_err(internal(action()))
    }

    /// Reads the ownership rows of the asked sites of `dumps` (at most
    /// [`DUMPS_PER_BULK_READ`]), starting over if a dump's results are rewritten meanwhile.
    async fn read_site_ownership_group(
        &self,
        dumps: &[&str],
        asked: &AskedSites,
    ) -> Result<Vec<DumpSiteOwnership>> {
        for _ in 0..OWNERSHIP_READ_ATTEMPTS {
            let before = self.ownership_writes(dumps).await?;
            let stored: Vec<&str> = dumps
                .iter()
                .copied()
                .filter(|dump| before.contains_key(*dump))
                .collect();
            let mut rows: Vec<DumpOwnershipSiteRow> = Vec::new();
            if !stored.is_empty() {
                // A few requests in sequence: the leak report asks for tens of sites.
                for hashes in asked.hashes().chunks(SITES_PER_OWNERSHIP_READ) {
                    rows.extend(self.read_ownership_sites_of_dumps(&stored, hashes).await?);
                }
            }
            // A rewrite deletes the summary before it touches a site row and writes it after the
            // last one: if no summary changed, the rows read belong to the summaries read.
            let after = if stored.is_empty() {
                before.clone()
            } else {
                self.ownership_writes(&stored).await?
            };
            let unchanged = stored
                .iter()
                .all(|dump| before.get(*dump) == after.get(*dump));
            if !unchanged {
                continue;
            }
            let mut decoder = OwnershipDecoder::new();
            return dumps
                .iter()
                .map(|dump| {
                    let own_rows = match before.get(*dump) {
                        Some(&write_id) => rows
                            .iter()
                            .filter(|row| row.0 == *dump && row.1 == write_id)
                            .map(|row| decoder.site(dump, &row.2))
                            .collect::<Result<Vec<_>>>()?,
                        None => Vec::new(),
                    };
                    Ok(DumpSiteOwnership {
                        dump: (*dump).to_owned(),
                        sites: asked.pick(own_rows),
                    })
                })
                .collect();
        }
        Err(StorageError::Conflict(format!(
            "the ownership results of dumps {} kept changing while they were read",
            dumps.join(", ")
        )))
    }

    /// Reads the `ownership_sites` rows of `dumps` with one of `hashes`, paged.
    async fn read_ownership_sites_of_dumps(
        &self,
        dumps: &[&str],
        hashes: &[i64],
    ) -> Result<Vec<DumpOwnershipSiteRow>> {
        let action = || {
            format!(
                "failed to read the site ownership of dumps {}",
                dumps.join(", ")
            )
        };
        let pager = self
            .session
            .execute_iter(
                self.statements.select_ownership_sites_of_dumps.clone(),
                (dumps, hashes),
            )
            .await
            .map_err(cql_error(action()))?;
        pager
            .rows_stream::<DumpOwnershipSiteRow>()
            .map_err(internal(action()))?
            .try_collect()
            .await
            .map_err(cql_error(action()))
    }

    /// Reads every `ownership_sites` row of the dump, paged.
    async fn read_all_ownership_sites(&self, dump: &str) -> Result<Vec<OwnershipSiteRow>> {
        let action = || format!("failed to read the site ownership of dump {dump}");
        let pager = self
            .session
            .execute_iter(self.statements.select_ownership_sites.clone(), (dump,))
            .await
            .map_err(cql_error(action()))?;
        pager
            .rows_stream::<OwnershipSiteRow>()
            .map_err(internal(action()))?
            .try_collect()
            .await
            .map_err(cql_error(action()))
    }
}

#[async_trait]
impl AggregateStore for ScyllaStore {
    async fn put_dump_aggregates(&self, dump: &str, aggregates: &DumpAggregates) -> Result<()> {
        check_dump_id(dump)?;
        let sites = sorted_site_rows(dump, &aggregates.sites)?;
        let duplicated_strings =
            encode_json(&aggregates.duplicated_strings, "duplicated strings", dump)?;
        let roots = encode_json(&aggregates.roots, "roots", dump)?;
        let shapes = encode_json(&aggregates.shapes, "shape totals", dump)?;
        let parse = encode_json(&aggregates.parse, "parse statistics", dump)?;
        let blocks: Vec<Vec<u8>> = if sites.is_empty() {
            // Block 0 always exists: it is what says the dump's sites are stored.
            vec![site_pack::encode_block(&[])]
        } else {
            sites
                .chunks(site_pack::ROWS_PER_BLOCK)
                .map(site_pack::encode_block)
                .collect()
        };
        let block_count = i32::try_from(blocks.len())
            .map_err(|_| StorageError::Invalid(format!("dump {dump} has too many sites")))?;
        let index_site_rows = aggregates
            .index_sites
            .iter()
            .enumerate()
            .map(|(position, site)| {
                let columns = SiteColumns::new(site);
                let position = i32::try_from(position).map_err(|_| {
                    StorageError::Invalid(format!("dump {dump} has too many index sites"))
                })?;
                Ok((
                    dump,
                    position,
                    columns.file,
                    columns.line,
                    columns.object_type,
                    columns.class_name,
                    columns.absent,
                ))
            })
            .collect::<Result<Vec<_>>>()?;

        // Readers see NotFound while the rows are rewritten, never a mix of old and new.
        self.execute(
            &self.statements.delete_aggregates,
            (dump,),
            "clear the aggregates of",
            dump,
        )
        .await?;
        self.execute(
            &self.statements.delete_sites,
            (dump,),
            "clear the sites of",
            dump,
        )
        .await?;
        self.execute(
            &self.statements.delete_site_blocks,
            (dump,),
            "clear the sites of",
            dump,
        )
        .await?;
        self.execute(
            &self.statements.delete_index_sites,
            (dump,),
            "clear the index sites of",
            dump,
        )
        .await?;
        self.write_site_blocks(dump, blocks, block_count).await?;
        self.write_rows(&self.statements.insert_index_site, &index_site_rows, dump)
            .await?;
        self.execute(
            &self.statements.insert_aggregates,
            (dump, duplicated_strings, roots, shapes, parse),
            "store the aggregates of",
            dump,
        )
        .await
    }

    async fn get_dump_aggregates(&self, dump: &str) -> Result<DumpAggregates> {
        check_dump_id(dump)?;
        let row: Option<AggregatesRow> = self
            .first_row(&self.statements.select_aggregates, (dump,), "read", dump)
            .await?;
        let Some((duplicated_strings, roots, shapes, parse)) = row else {
            return Err(aggregates_not_found(dump));
        };
        let blocks = self.read_site_blocks(&[dump]).await?;
        let sites = match unpack_sites(dump, &blocks)? {
            Some(sites) => sites,
            None => self.read_site_rows(dump).await?,
        };
        let index_sites = self.read_index_sites(dump).await?;
        Ok(DumpAggregates {
            sites,
            duplicated_strings: decode_json(&duplicated_strings, "duplicated strings", dump)?,
            index_sites,
            roots: decode_json(&roots, "roots", dump)?,
            shapes: decode_json(&shapes, "shape totals", dump)?,
            parse: decode_json(&parse, "parse statistics", dump)?,
        })
    }

    async fn get_site_stats(&self, dump: &str) -> Result<Vec<SiteGenerationStats>> {
        check_dump_id(dump)?;
        let blocks = self.read_site_blocks(&[dump]).await?;
        match unpack_sites(dump, &blocks)? {
            Some(sites) => Ok(sites),
            None => self.read_unpacked_sites(dump).await,
        }
    }

    async fn site_totals_for_dumps(&self, dumps: &[&str]) -> Result<Vec<DumpSiteStats>> {
        for dump in dumps {
            check_dump_id(dump)?;
        }
        // One multi-partition read per group of dumps, several in flight; the answer keeps the
        // given order.
        let groups = futures::future::try_join_all(
            dumps
                .chunks(DUMPS_PER_BULK_READ)
                .map(|group| self.read_site_blocks(group)),
        );
        let mut all_stats = Vec::with_capacity(dumps.len());
        for (group, blocks) in dumps.chunks(DUMPS_PER_BULK_READ).zip(groups.await?) {
            for dump in group {
                let sites = match unpack_sites(dump, &blocks)? {
                    Some(sites) => sites,
                    None => self.read_unpacked_sites(dump).await?,
                };
                all_stats.push(DumpSiteStats {
                    dump: (*dump).to_owned(),
                    sites,
                });
            }
        }
        Ok(all_stats)
    }

    async fn put_index_chunk(&self, dump: &str, chunk_number: u32, bytes: Vec<u8>) -> Result<()> {
        check_dump_id(dump)?;
        let chunk_number = chunk_index(chunk_number, dump)?;
        // Unfinished until finish_index, so a re-ingest never shows old and new chunks mixed.
        self.execute(
            &self.statements.delete_index_state,
            (dump,),
            "reopen the index of",
            dump,
        )
        .await?;
        self.execute(
            &self.statements.insert_chunk,
            (dump, chunk_number, bytes),
            "store an index chunk of",
            dump,
        )
        .await
    }

    async fn finish_index(&self, dump: &str, chunk_count: u32) -> Result<()> {
        check_dump_id(dump)?;
        let count = chunk_index(chunk_count, dump)?;
        for chunk_number in 0..count {
            if !self.has_chunk(dump, chunk_number).await? {
                return Err(missing_chunk_error(dump, chunk_number as u32, chunk_count));
            }
        }
        // Chunks beyond the count are left from an earlier, longer ingest of this dump.
        self.delete_chunks_from(dump, count).await?;
        self.execute(
            &self.statements.insert_index_state,
            (dump, count),
            "finish the index of",
            dump,
        )
        .await
    }

    async fn load_index(&self, dump: &str) -> Result<IndexedDump> {
        check_dump_id(dump)?;
        let Some(count) = self.index_chunk_count(dump).await? else {
            return Err(index_not_found(dump));
        };
        if !self.has_aggregates(dump).await? {
            return Err(index_not_found(dump));
        }
        let sites = self.read_index_sites(dump).await?;
        let mut entries = Vec::new();
        for chunk_number in 0..count {
            let row: Option<(Vec<u8>,)> = self
                .first_row(
                    &self.statements.select_chunk,
                    (dump, chunk_number),
                    "read the index of",
                    dump,
                )
                .await?;
            let (bytes,) = row.ok_or_else(|| index_not_found(dump))?;
            decode_index_chunk(dump, chunk_number as u32, &bytes, &mut entries)?;
        }
        Ok(IndexedDump { sites, entries })
    }

    async fn put_dump_ownership(&self, dump: &str, ownership: &DumpOwnership) -> Result<()> {
        check_dump_id(dump)?;
        let encoded = ownership_pack::encode_off_runtime(dump, ownership).await?;
        let write_id = next_write_id();
        let site_rows: Vec<(&str, i64, i64, i32, &[u8])> = encoded
            .sites
            .iter()
            .map(|row| {
                (
                    dump,
                    row.site_hash,
                    write_id,
                    row.position,
                    row.bytes.as_slice(),
                )
            })
            .collect();
        let groups: Vec<&[(&str, i64, i64, i32, &[u8])]> = batch_ranges(
            encoded.sites.iter().map(|row| row.bytes.len()),
            ROWS_PER_BATCH,
            OWNERSHIP_BYTES_PER_BATCH,
        )
        .into_iter()
        .map(|range| &site_rows[range])
        .collect();

        // The summary goes first and comes back last, so a reader finds either no results or
        // a summary whose site rows are all written; the session's monotonic client-side
        // timestamps put these deletes before the inserts below.
        self.execute(
            &self.statements.delete_ownership,
            (dump,),
            "clear the ownership results of",
            dump,
        )
        .await?;
        self.execute(
            &self.statements.delete_ownership_sites,
            (dump,),
            "clear the site ownership of",
            dump,
        )
        .await?;
        self.write_batches(&self.statements.insert_ownership_site, groups, dump)
            .await?;
        self.execute(
            &self.statements.insert_ownership,
            (dump, write_id, encoded.site_count, encoded.summary),
            "store the ownership results of",
            dump,
        )
        .await
    }

    async fn get_dump_ownership(&self, dump: &str) -> Result<DumpOwnership> {
        check_dump_id(dump)?;
        let Some((write_id, site_count, summary)) = self
            .first_row::<OwnershipRow>(
                &self.statements.select_ownership,
                (dump,),
                "read the ownership results of",
                dump,
            )
            .await?
        else {
            return Err(ownership_not_found(dump));
        };
        let rows: Vec<(i32, Vec<u8>)> = self
            .read_all_ownership_sites(dump)
            .await?
            .into_iter()
            .filter(|row| row.1 == write_id)
            .map(|(position, _, blob)| (position, blob))
            .collect();
        if usize::try_from(site_count) != Ok(rows.len()) {
            // Rows missing: rewritten (or deleted) since the summary was read, or damaged.
            let now = self.ownership_writes(&[dump]).await?;
            if now.get(dump) != Some(&write_id) {
                return Err(ownership_not_found(dump));
            }
        }
        let dump = dump.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut decoder = OwnershipDecoder::new();
            let ownership = decoder.summary(&dump, &summary)?;
            ownership_pack::assemble(&dump, &mut decoder, ownership, i64::from(site_count), rows)
        })
        .await
        .map_err(|join_error| StorageError::Internal {
            message: "decoding ownership results panicked".to_owned(),
            source: Some(join_error.into()),
        })?
    }

    async fn site_ownership(
        &self,
        dumps: &[&str],
        sites: &[SiteKey],
    ) -> Result<Vec<DumpSiteOwnership>> {
        for dump in dumps {
            check_dump_id(dump)?;
        }
        let asked = AskedSites::new(sites);
        if asked.is_empty() {
            return Ok(dumps
                .iter()
                .map(|dump| DumpSiteOwnership {
                    dump: (*dump).to_owned(),
                    sites: Vec::new(),
                })
                .collect());
        }
        // One multi-partition read per group of dumps and of sites, several groups in flight;
        // the answer keeps the given order.
        let reads: Vec<_> = dumps
            .chunks(DUMPS_PER_BULK_READ)
            .map(|group| self.read_site_ownership_group(group, &asked))
            .collect();
        let groups: Vec<Vec<DumpSiteOwnership>> = futures::stream::iter(reads)
            .buffered(CONCURRENT_REQUESTS)
            .try_collect()
            .await?;
        Ok(groups.into_iter().flatten().collect())
    }

    async fn delete_dump(&self, dump: &str) -> Result<()> {
        check_dump_id(dump)?;
        self.execute(
            &self.statements.delete_ownership,
            (dump,),
            "delete the ownership results of",
            dump,
        )
        .await?;
        self.execute(
            &self.statements.delete_ownership_sites,
            (dump,),
            "delete the site ownership of",
            dump,
        )
        .await?;
        self.execute(
            &self.statements.delete_aggregates,
            (dump,),
            "delete the aggregates of",
            dump,
        )
        .await?;
        self.execute(
            &self.statements.delete_index_state,
            (dump,),
            "delete the index of",
            dump,
        )
        .await?;
        self.delete_chunks_from(dump, 0).await?;
        self.execute(
            &self.statements.delete_site_blocks,
            (dump,),
            "delete the sites of",
            dump,
        )
        .await?;
        self.execute(
            &self.statements.delete_sites,
            (dump,),
            "delete the sites of",
            dump,
        )
        .await?;
        self.execute(
            &self.statements.delete_index_sites,
            (dump,),
            "delete the index sites of",
            dump,
        )
        .await
    }
}

impl ScyllaStore {
    /// Reads the index's site table, in position order.
    async fn read_index_sites(&self, dump: &str) -> Result<Vec<SiteKey>> {
        let pager = self
            .session
            .execute_iter(self.statements.select_index_sites.clone(), (dump,))
            .await
            .map_err(cql_error(format!(
                "failed to read the index sites of dump {dump}"
            )))?;
        let rows: Vec<(i32, String, i64, String, String, i64)> = pager
            .rows_stream()
            .map_err(internal(format!(
                "unexpected index site columns of dump {dump}"
            )))?
            .try_collect()
            .await
            .map_err(cql_error(format!(
                "failed to read the index sites of dump {dump}"
            )))?;
        let mut sites = Vec::with_capacity(rows.len());
        for (expected, (position, file, line, object_type, class_name, absent)) in
            rows.into_iter().enumerate()
        {
            if usize::try_from(position).ok() != Some(expected) {
                return Err(StorageError::internal_message(format!(
                    "the index site table of dump {dump} has a gap at position {expected}"
                )));
            }
            sites.push(
                StoredSite {
                    file,
                    line,
                    object_type,
                    class_name,
                    absent,
                }
                .into_site_key(dump)?,
            );
        }
        Ok(sites)
    }
}

/// Converts a stored site row back into domain terms.
fn site_row(dump: &str, row: SiteRow) -> Result<SiteGenerationStats> {
    let (
        file,
        line,
        object_type,
        class_name,
        absent,
        generation,
        count,
        memsize,
        bytesize,
        references,
    ) = row;
    Ok(SiteGenerationStats {
        site: StoredSite {
            file,
            line,
            object_type,
            class_name,
            absent,
        }
        .into_site_key(dump)?,
        generation: if generation == NO_GENERATION {
            None
        } else {
            Some(from_column_integer(generation, "generation", dump)?)
        },
        totals: Totals {
            count: from_column_integer(count, "object count", dump)?,
            memsize: from_column_integer(memsize, "memsize", dump)?,
            bytesize: from_column_integer(bytesize, "bytesize", dump)?,
            references: from_column_integer(references, "reference count", dump)?,
        },
    })
}

/// Decodes `dump`'s site rows from the blocks of a bulk read (which may hold other dumps'
/// blocks too); `None` when the dump has no block 0, that is, no packed sites.
fn unpack_sites(dump: &str, blocks: &[SiteBlockRow]) -> Result<Option<Vec<SiteGenerationStats>>> {
    let mut own: Vec<&SiteBlockRow> = blocks.iter().filter(|row| row.0 == dump).collect();
    own.sort_unstable_by_key(|row| row.1);
    let Some(block_count) = own.first().filter(|row| row.1 == 0).and_then(|row| row.2) else {
        return Ok(None);
    };
    let numbers_match = usize::try_from(block_count) == Ok(own.len())
        && own.iter().zip(0..).all(|(row, number)| row.1 == number);
    if !numbers_match {
        return Err(StorageError::internal_message(format!(
            "the sites of dump {dump} are stored as {} blocks, expected {block_count}",
            own.len()
        )));
    }
    let mut sites = Vec::new();
    for (_, number, _, bytes) in own {
        site_pack::decode_block(dump, *number, bytes, &mut sites)?;
    }
    Ok(Some(sites))
}

/// Returns an id for one write of a dump's ownership results that no other write of this
/// process uses, and, as it starts from the clock in nanoseconds, almost surely none of
/// another process either.
fn next_write_id() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| {
            i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
        });
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or_else(|last| last);
    now.max(previous.saturating_add(1))
}

/// Splits rows of the given sizes into consecutive batches of at most `max_rows` rows and, but
/// for a single larger row, at most `max_bytes` bytes.
fn batch_ranges(
    sizes: impl IntoIterator<Item = usize>,
    max_rows: usize,
    max_bytes: usize,
) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    let mut end = 0;
    for size in sizes {
        if end > start && (end - start == max_rows || bytes + size > max_bytes) {
            ranges.push(start..end);
            start = end;
            bytes = 0;
        }
        bytes += size;
        end += 1;
    }
    if end > start {
        ranges.push(start..end);
    }
    ranges
}

fn chunk_index(chunk_number: u32, dump: &str) -> Result<i32> {
    i32::try_from(chunk_number).map_err(|_| {
        StorageError::Invalid(format!(
            "index chunk number {chunk_number} of dump {dump} is too large"
        ))
    })
}

/// Accepts keyspace names that are safe to splice into DDL.
fn check_keyspace_name(keyspace: &str) -> Result<()> {
    let mut characters = keyspace.chars();
    let valid = characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase())
        && characters.all(|character| {
            character.is_ascii_lowercase() || character.is_ascii_digit() || character == '_'
        })
        && keyspace.len() <= 48;
    if valid {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "keyspace {keyspace:?} must be 1 to 48 lowercase letters, digits or '_', starting with a letter"
        )))
    }
}

async fn run_ddl(session: &Session, statement: &str) -> Result<()> {
    session
        .query_unpaged(statement, &[])
        .await
        .map_err(cql_error("failed to apply the CQL schema".to_owned()))?;
    Ok(())
}

/// Creates the tables if missing, after checking the recorded schema version.
async fn migrate(session: &Session) -> Result<()> {
    run_ddl(
        session,
        "CREATE TABLE IF NOT EXISTS schema_version (component text PRIMARY KEY, version int)",
    )
    .await?;
    session
        .await_schema_agreement()
        .await
        .map_err(|error| StorageError::Unavailable {
            message: "the CQL cluster did not agree on the schema".to_owned(),
            source: error.into(),
        })?;
    let result = session
        .query_unpaged(
            "SELECT version FROM schema_version WHERE component = 'aggregates'",
            &[],
        )
        .await
        .map_err(cql_error("failed to read the schema version".to_owned()))?;
    let rows = result
        .into_rows_result()
        .map_err(internal("failed to read the schema version".to_owned()))?;
    let current: Option<(Option<i32>,)> = rows
        .maybe_first_row()
        .map_err(internal("unexpected schema version row".to_owned()))?;
    let current = current.and_then(|(version,)| version).unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(StorageError::Invalid(format!(
            "keyspace schema version {current} is newer than this build supports ({SCHEMA_VERSION})"
        )));
    }
    for statement in SCHEMA.split("\n;\n").map(str::trim).filter(|statement| {
        statement
            .lines()
            .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with("--"))
    }) {
        run_ddl(session, statement).await?;
    }
    session
        .await_schema_agreement()
        .await
        .map_err(|error| StorageError::Unavailable {
            message: "the CQL cluster did not agree on the schema".to_owned(),
            source: error.into(),
        })?;
    session
        .query_unpaged(
            "INSERT INTO schema_version (component, version) VALUES ('aggregates', ?)",
            (SCHEMA_VERSION,),
        )
        .await
        .map_err(cql_error("failed to record the schema version".to_owned()))?;
    Ok(())
}

async fn prepare_statements(session: &Session, consistency: Consistency) -> Result<Statements> {
    const SITE_COLUMNS: &str = "file, line, object_type, class_name, absent";
    const TOTALS_COLUMNS: &str = "generation, object_count, memsize, bytesize, reference_count";
    let prepare = |text: String| async move {
        let mut statement = session
            .prepare(text)
            .await
            .map_err(cql_error("failed to prepare a CQL statement".to_owned()))?;
        statement.set_consistency(consistency);
        Ok::<_, StorageError>(statement)
    };
    Ok(Statements {
        insert_aggregates: prepare(
            "INSERT INTO dump_aggregates (dump_id, duplicated_strings, roots, shapes, parse) VALUES (?, ?, ?, ?, ?)".to_owned(),
        )
        .await?,
        delete_aggregates: prepare("DELETE FROM dump_aggregates WHERE dump_id = ?".to_owned()).await?,
        select_aggregates: prepare(
            "SELECT duplicated_strings, roots, shapes, parse FROM dump_aggregates WHERE dump_id = ?".to_owned(),
        )
        .await?,
        delete_sites: prepare("DELETE FROM site_totals WHERE dump_id = ?".to_owned()).await?,
        select_sites: prepare(format!("SELECT {SITE_COLUMNS}, {TOTALS_COLUMNS} FROM site_totals WHERE dump_id = ?")).await?,
        insert_site_block: prepare(
            "INSERT INTO site_blocks (dump_id, block, block_count, rows) VALUES (?, ?, ?, ?)".to_owned(),
        )
        .await?,
        delete_site_blocks: prepare("DELETE FROM site_blocks WHERE dump_id = ?".to_owned()).await?,
        select_site_blocks: prepare(
            "SELECT dump_id, block, block_count, rows FROM site_blocks WHERE dump_id = ?".to_owned(),
        )
        .await?,
        select_site_blocks_of_dumps: prepare(
            "SELECT dump_id, block, block_count, rows FROM site_blocks WHERE dump_id IN ?".to_owned(),
        )
        .await?,
        insert_index_site: prepare(format!(
            "INSERT INTO index_sites (dump_id, position, {SITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ))
        .await?,
        delete_index_sites: prepare("DELETE FROM index_sites WHERE dump_id = ?".to_owned()).await?,
        select_index_sites: prepare(format!("SELECT position, {SITE_COLUMNS} FROM index_sites WHERE dump_id = ?")).await?,
        insert_chunk: prepare("INSERT INTO index_chunks (dump_id, chunk, bytes) VALUES (?, ?, ?)".to_owned()).await?,
        select_chunk: prepare("SELECT bytes FROM index_chunks WHERE dump_id = ? AND chunk = ?".to_owned()).await?,
        probe_chunk: prepare("SELECT chunk FROM index_chunks WHERE dump_id = ? AND chunk = ?".to_owned()).await?,
        delete_chunk: prepare("DELETE FROM index_chunks WHERE dump_id = ? AND chunk = ?".to_owned()).await?,
        insert_index_state: prepare("INSERT INTO index_state (dump_id, chunk_count) VALUES (?, ?)".to_owned()).await?,
        delete_index_state: prepare("DELETE FROM index_state WHERE dump_id = ?".to_owned()).await?,
        select_index_state: prepare("SELECT chunk_count FROM index_state WHERE dump_id = ?".to_owned()).await?,
        insert_ownership: prepare(
            "INSERT INTO dump_ownership (dump_id, write_id, site_count, summary) VALUES (?, ?, ?, ?)".to_owned(),
        )
        .await?,
        delete_ownership: prepare("DELETE FROM dump_ownership WHERE dump_id = ?".to_owned()).await?,
        select_ownership: prepare(
            "SELECT write_id, site_count, summary FROM dump_ownership WHERE dump_id = ?".to_owned(),
        )
        .await?,
        select_ownership_writes: prepare(
            "SELECT dump_id, write_id FROM dump_ownership WHERE dump_id IN ?".to_owned(),
        )
        .await?,
        insert_ownership_site: prepare(
            "INSERT INTO ownership_sites (dump_id, site_hash, write_id, position, site) VALUES (?, ?, ?, ?, ?)"
                .to_owned(),
        )
        .await?,
        delete_ownership_sites: prepare("DELETE FROM ownership_sites WHERE dump_id = ?".to_owned()).await?,
        select_ownership_sites: prepare(
            "SELECT position, write_id, site FROM ownership_sites WHERE dump_id = ?".to_owned(),
        )
        .await?,
        select_ownership_sites_of_dumps: prepare(
            "SELECT dump_id, write_id, site FROM ownership_sites WHERE dump_id IN ? AND site_hash IN ?"
                .to_owned(),
        )
        .await?,
    })
}

/// Whether a driver error is worth retrying: lost connections, timeouts and overloaded or
/// missing replicas are; a bad statement or a protocol surprise is not.
trait Transience {
    fn is_transient(&self) -> bool;
}

impl Transience for ExecutionError {
    fn is_transient(&self) -> bool {
        match self {
            ExecutionError::EmptyPlan
            | ExecutionError::ConnectionPoolError(_)
            | ExecutionError::RequestTimeout(_)
            | ExecutionError::SchemaAgreementError(_) => true,
            ExecutionError::LastAttemptError(attempt) => attempt.is_transient(),
            _ => false,
        }
    }
}

impl Transience for RequestAttemptError {
    fn is_transient(&self) -> bool {
        match self {
            RequestAttemptError::UnableToAllocStreamId
            | RequestAttemptError::BrokenConnectionError(_) => true,
            RequestAttemptError::DbError(db_error, _) => matches!(
                db_error,
                DbError::Unavailable { .. }
                    | DbError::Overloaded
                    | DbError::IsBootstrapping
                    | DbError::ReadTimeout { .. }
                    | DbError::WriteTimeout { .. }
                    | DbError::ReadFailure { .. }
                    | DbError::WriteFailure { .. }
            ),
            _ => false,
        }
    }
}

impl Transience for PrepareError {
    fn is_transient(&self) -> bool {
        matches!(
            self,
            PrepareError::ConnectionPoolError(_) | PrepareError::AllAttemptsFailed { .. }
        )
    }
}

impl Transience for NextPageError {
    fn is_transient(&self) -> bool {
        matches!(self, NextPageError::RequestFailure(_))
    }
}

impl Transience for PagerExecutionError {
    fn is_transient(&self) -> bool {
        match self {
            PagerExecutionError::PrepareError(prepare_error) => prepare_error.is_transient(),
            PagerExecutionError::NextPageError(page_error) => page_error.is_transient(),
            PagerExecutionError::UseKeyspaceError(_)
            | PagerExecutionError::SchemaAgreementError(_) => true,
            _ => false,
        }
    }
}

impl Transience for NextRowError {
    fn is_transient(&self) -> bool {
        matches!(self, NextRowError::NextPageError(page_error) if page_error.is_transient())
    }
}

/// Returns a mapper filing a driver error as `Unavailable` (retry later) when transient, else
/// as `Internal`.
fn cql_error<E>(message: String) -> impl FnOnce(E) -> StorageError
where
    E: Transience + std::error::Error + Send + Sync + 'static,
{
    move |error| {
        if error.is_transient() {
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

/// Returns a mapper filing an unexpected response shape as `Internal`.
fn internal<E: std::error::Error + Send + Sync + 'static>(
    message: String,
) -> impl FnOnce(E) -> StorageError {
    move |error| StorageError::Internal {
        message,
        source: Some(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_check_keyspace_name_accepts_only_safe_identifiers() {
        assert!(check_keyspace_name("heapfleet").is_ok());
        assert!(check_keyspace_name("hf_test_2").is_ok());
        for bad in [
            "",
            "2fast",
            "Heapfleet",
            "a-b",
            "a; DROP KEYSPACE x",
            &"a".repeat(49),
        ] {
            assert!(
                matches!(check_keyspace_name(bad), Err(StorageError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn test_batch_ranges_bound_rows_and_bytes() {
        assert_eq!(batch_ranges([10; 5], 2, 1_000), vec![0..2, 2..4, 4..5]);
        assert_eq!(batch_ranges([40, 40, 40, 10], 10, 100), vec![0..2, 2..4]);
        // A row larger than the byte bound goes alone.
        assert_eq!(batch_ranges([10, 500, 10], 10, 100), vec![0..1, 1..2, 2..3]);
        assert!(batch_ranges([], 10, 100).is_empty());
    }

    #[test]
    fn test_next_write_id_never_repeats() {
        let ids: Vec<i64> = (0..1_000).map(|_| next_write_id()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn test_schema_statements_avoid_cql_that_only_one_server_has() {
        // The statements only: the file's comments name the forbidden CQL on purpose.
        let schema: String = SCHEMA
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
            .to_ascii_uppercase();
        for feature in [
            "USING TIMEOUT",
            "BYPASS CACHE",
            "TOMBSTONE_GC",
            "CDC",
            "TABLETS",
            "CREATE INDEX",
            "CUSTOM INDEX",
        ] {
            assert!(!schema.contains(feature), "{feature}");
        }
        let statements = SCHEMA
            .split("\n;\n")
            .filter(|statement| statement.contains("CREATE TABLE"))
            .count();
        assert_eq!(statements, 8);
    }
}
