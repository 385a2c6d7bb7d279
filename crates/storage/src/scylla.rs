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
//! Only this module (in the whole workspace) speaks CQL.

use std::fmt;
use std::sync::Arc;

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
use heapfleet_analysis::{DumpAggregates, IndexedDump, SiteGenerationStats, SiteKey, Totals};

use crate::columns::{
    NO_GENERATION, SiteColumns, StoredSite, decode_json, encode_json, from_column_integer,
};
use crate::error::{Result, StorageError};
use crate::site_pack;
use crate::store::{
    AggregateStore, DumpSiteStats, aggregates_not_found, check_dump_id, decode_index_chunk,
    index_not_found, missing_chunk_error, sort_site_rows, sorted_site_rows,
};

/// The schema version this build writes and reads.
/// Version 2 added `site_blocks`; version 1 keyspaces are read as they are.
const SCHEMA_VERSION: i32 = 2;
/// The schema, statements separated by lines holding only `;`.
const SCHEMA: &str = include_str!("scylla/schema.cql");
/// Rows per unlogged batch: every batch holds rows of one partition only.
const ROWS_PER_BATCH: usize = 200;
/// Requests a dump's write or read keeps in flight at once.
const CONCURRENT_REQUESTS: usize = 8;

/// Dumps whose site blocks one bulk read asks for (`WHERE dump_id IN ...`): a process's dumps
/// usually fit in one request, and the coordinator reads the partitions in parallel.
const DUMPS_PER_BULK_READ: usize = 16;

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
        let batches: Vec<(Batch, &[V])> = rows
            .chunks(ROWS_PER_BATCH)
            .map(|chunk| {
                let mut batch = Batch::new(BatchType::Unlogged);
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

    async fn delete_dump(&self, dump: &str) -> Result<()> {
        check_dump_id(dump)?;
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
        assert_eq!(statements, 6);
    }
}
