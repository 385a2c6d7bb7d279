//! The [`AggregateStore`] trait and the plain types its reads return, plus the checks and
//! conversions every backend shares.
//!
//! The trait is shaped by the product's reads: one dump's views (its aggregates), a diff (object
//! indexes), a site's timeline across one process's dumps ([`AggregateStore::site_series`]) and
//! the fleet-wide leak report ([`AggregateStore::site_totals_for_dumps`]), and a dump's ownership
//! results, whole or a few sites across many dumps ([`AggregateStore::site_ownership`], the
//! owners of the leak report's suspects). Everything is keyed by dump, so a partitioned backend
//! keeps each dump in partitions of its own and every read is one partition query per dump.

use std::collections::HashSet;
use std::fmt::Debug;

use async_trait::async_trait;
use heapfleet_analysis::{
    DumpAggregates, DumpOwnership, IndexEntry, IndexedDump, RetainedSite, SiteGenerationStats,
    SiteKey, Totals, decode_chunk,
};

use crate::error::{Result, StorageError};

/// One dump's per-(site, generation) totals, as the bulk read returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpSiteStats {
    /// The dump.
    pub dump: String,
    /// Its site rows, sorted by site then generation.
    pub sites: Vec<SiteGenerationStats>,
}

/// One point of a site's timeline: the site's totals in one dump, all generations summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSeriesPoint {
    /// The dump.
    pub dump: String,
    /// The site's totals in that dump (zero when the dump has no object from the site).
    pub totals: Totals,
}

/// Some sites' ownership results in one dump, as [`AggregateStore::site_ownership`] returns
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpSiteOwnership {
    /// The dump.
    pub dump: String,
    /// The stored rows (sizes and owners) of the asked sites the dump has, in the order asked;
    /// empty when the dump has no ownership results.
    pub sites: Vec<RetainedSite>,
}

/// Where per-dump aggregates, object indexes and ownership results live.
///
/// Dumps are named by the catalog's dump id as a plain string (`&str`): this crate does not
/// depend on the catalog, and the id is opaque here. An empty id is `Invalid`.
///
/// Writes are idempotent per dump: ingesting a dump twice leaves the same stored result as
/// ingesting it once. The object index arrives while the dump streams, chunk by chunk; it is
/// readable only once [`AggregateStore::finish_index`] has seen every chunk and the aggregates
/// (which carry the index's site table) are stored. Every implementation passes the conformance
/// suite in `testsuite` (feature `testsuite`).
#[async_trait]
pub trait AggregateStore: Debug + Send + Sync + 'static {
    /// Stores `aggregates` as the dump's, replacing whatever the dump had (never adding to it).
    /// A reader never sees a mix of old and new: the embedded stores switch atomically (old or
    /// new), a partitioned store may answer `NotFound` while it rewrites (the catalog keeps
    /// readers away from dumps being ingested anyway). The object index is left alone. Fails
    /// with `Invalid` if a (site, generation) pair repeats.
    async fn put_dump_aggregates(&self, dump: &str, aggregates: &DumpAggregates) -> Result<()>;

    /// Returns the dump's aggregates (not its object index), sites sorted by site then
    /// generation; `NotFound` if none are stored.
    async fn get_dump_aggregates(&self, dump: &str) -> Result<DumpAggregates>;

    /// Returns only the dump's site rows, sorted by site then generation; `NotFound` if the dump
    /// has no aggregates. The cheap per-dump read that the derived reads build on.
    async fn get_site_stats(&self, dump: &str) -> Result<Vec<SiteGenerationStats>>;

    /// Returns the site rows of each of `dumps`, in the order given: the bulk read behind the
    /// fleet-wide leak report. `NotFound` if any dump has no aggregates.
    ///
    /// The default reads one dump at a time with [`AggregateStore::get_site_stats`]; a remote
    /// backend may override it to run the per-dump reads concurrently.
    async fn site_totals_for_dumps(&self, dumps: &[&str]) -> Result<Vec<DumpSiteStats>> {
        let mut all_stats = Vec::with_capacity(dumps.len());
        for dump in dumps {
            let sites = self.get_site_stats(dump).await?;
            all_stats.push(DumpSiteStats {
                dump: (*dump).to_owned(),
                sites,
            });
        }
        Ok(all_stats)
    }

    /// Returns `site`'s totals in each of `dumps`, generations summed, in the order given: a
    /// site's timeline across a process's dumps. A dump without objects from the site gives zero
    /// totals; a dump without aggregates is `NotFound`.
    ///
    /// The default reads each dump's site rows; backends override it with a read of the one site.
    async fn site_series(&self, dumps: &[&str], site: &SiteKey) -> Result<Vec<SiteSeriesPoint>> {
        let mut series = Vec::with_capacity(dumps.len());
        for dump in dumps {
            let sites = self.get_site_stats(dump).await?;
            series.push(SiteSeriesPoint {
                dump: (*dump).to_owned(),
                totals: sum_site(&sites, site),
            });
        }
        Ok(series)
    }

    /// Stores chunk `chunk_number` (counted from 0) of the dump's encoded object index, replacing
    /// a chunk with that number. The index becomes unreadable until the next
    /// [`AggregateStore::finish_index`], so a re-ingest never shows a mix of old and new chunks.
    async fn put_index_chunk(&self, dump: &str, chunk_number: u32, bytes: Vec<u8>) -> Result<()>;

    /// Marks the dump's object index complete with chunks `0..chunk_count`, dropping any chunk
    /// numbered `chunk_count` or above (left by an earlier, longer ingest). `Invalid` if one of
    /// the chunks is missing.
    async fn finish_index(&self, dump: &str, chunk_count: u32) -> Result<()>;

    /// Decodes the dump's object index, chunks in order, with the site table stored by
    /// [`AggregateStore::put_dump_aggregates`]. `NotFound` until the index is finished and the
    /// aggregates are stored.
    async fn load_index(&self, dump: &str) -> Result<IndexedDump>;

    /// Stores `ownership` as the dump's ownership results (what the ownership pass computes:
    /// retained sizes and owners per site, sizes per class and type, the top of the dominator
    /// tree), replacing whatever ownership results the dump had (never merging with them). The
    /// same rules as [`AggregateStore::put_dump_aggregates`]: a reader never sees a mix of old
    /// and new; the embedded stores switch atomically, a partitioned store may answer
    /// `NotFound` (and [`AggregateStore::site_ownership`] no sites) while it rewrites. Independent
    /// of the aggregates and the object index, which are left alone: a dump may have aggregates
    /// and no ownership results yet. Fails with `Invalid` if a site repeats in `ownership.sites`.
    async fn put_dump_ownership(&self, dump: &str, ownership: &DumpOwnership) -> Result<()>;

    /// Returns the dump's ownership results, equal to what was put (sites in the order given);
    /// `NotFound` if none are stored.
    async fn get_dump_ownership(&self, dump: &str) -> Result<DumpOwnership>;

    /// Returns, for each of `dumps` in the order given, the stored ownership rows of those of
    /// `sites` the dump has, in the order of `sites` (a site asked twice is given once): the read
    /// the fleet leak report makes for its suspects across many dumps. A dump without ownership
    /// results gives an entry with no sites, not an error; a site the dump lacks is absent.
    ///
    /// Backends read only the asked sites' rows, never every site of every dump. A partitioned
    /// store that finds a dump's results rewritten while it read reads again, and fails with
    /// `Conflict` if they keep changing.
    async fn site_ownership(
        &self,
        dumps: &[&str],
        sites: &[SiteKey],
    ) -> Result<Vec<DumpSiteOwnership>>;

    /// Removes everything stored for the dump: aggregates, site rows, object index and
    /// ownership results.
    /// Deleting a dump that has nothing stored succeeds, so a retried delete is harmless.
    async fn delete_dump(&self, dump: &str) -> Result<()>;
}

/// Fails with `Invalid` for an empty dump id.
pub(crate) fn check_dump_id(dump: &str) -> Result<()> {
    if dump.is_empty() {
        return Err(StorageError::Invalid(
            "dump id must not be empty".to_owned(),
        ));
    }
    Ok(())
}

/// Returns the site rows sorted by site then generation, the order every read returns;
/// `Invalid` if a (site, generation) pair repeats, since a keyed store would silently keep only
/// one of them.
pub(crate) fn sorted_site_rows(
    dump: &str,
    sites: &[SiteGenerationStats],
) -> Result<Vec<SiteGenerationStats>> {
    let mut sorted = sites.to_vec();
    sort_site_rows(&mut sorted);
    if let Some(pair) = sorted
        .windows(2)
        .find(|pair| pair[0].site == pair[1].site && pair[0].generation == pair[1].generation)
    {
        return Err(StorageError::Invalid(format!(
            "aggregates of dump {dump} list site {} generation {:?} twice",
            pair[0].site, pair[0].generation
        )));
    }
    Ok(sorted)
}

/// Returns `aggregates` with `sites` in place of its own site rows, without copying those.
pub(crate) fn with_sites(
    aggregates: &DumpAggregates,
    sites: Vec<SiteGenerationStats>,
) -> DumpAggregates {
    DumpAggregates {
        sites,
        duplicated_strings: aggregates.duplicated_strings.clone(),
        index_sites: aggregates.index_sites.clone(),
        roots: aggregates.roots.clone(),
        shapes: aggregates.shapes,
        parse: aggregates.parse.clone(),
    }
}

/// Sorts site rows by site then generation.
pub(crate) fn sort_site_rows(sites: &mut [SiteGenerationStats]) {
    sites
        .sort_by(|left, right| (&left.site, left.generation).cmp(&(&right.site, right.generation)));
}

/// Returns `site`'s totals summed over generations.
pub(crate) fn sum_site(sites: &[SiteGenerationStats], site: &SiteKey) -> Totals {
    let mut totals = Totals::default();
    for row in sites.iter().filter(|row| row.site == *site) {
        totals.add(&row.totals);
    }
    totals
}

/// Decodes chunk `chunk_number` of the dump's object index, appending its entries to `entries`.
/// A chunk that does not decode is corrupt data: `Internal`.
pub(crate) fn decode_index_chunk(
    dump: &str,
    chunk_number: u32,
    chunk: &[u8],
    entries: &mut Vec<IndexEntry>,
) -> Result<()> {
    decode_chunk(chunk, entries).map_err(|index_error| StorageError::Internal {
        message: format!("chunk {chunk_number} of the object index of dump {dump} is corrupt"),
        source: Some(index_error.into()),
    })
}

/// Returns the first number in `0..chunk_count` that `present` lacks.
pub(crate) fn first_missing_chunk(
    chunk_count: u32,
    present: impl IntoIterator<Item = u32>,
) -> Option<u32> {
    let present: HashSet<u32> = present.into_iter().collect();
    (0..chunk_count).find(|chunk_number| !present.contains(chunk_number))
}

/// The `Invalid` error for an index finished with a chunk missing.
pub(crate) fn missing_chunk_error(dump: &str, missing: u32, chunk_count: u32) -> StorageError {
    StorageError::Invalid(format!(
        "object index of dump {dump} cannot be finished with {chunk_count} chunks: chunk {missing} is missing"
    ))
}

/// The `NotFound` error for a dump without aggregates.
pub(crate) fn aggregates_not_found(dump: &str) -> StorageError {
    StorageError::NotFound(format!("aggregates of dump {dump}"))
}

/// The `NotFound` error for a dump without ownership results.
pub(crate) fn ownership_not_found(dump: &str) -> StorageError {
    StorageError::NotFound(format!("ownership results of dump {dump}"))
}

/// The `NotFound` error for a dump whose index is absent or unfinished.
pub(crate) fn index_not_found(dump: &str) -> StorageError {
    StorageError::NotFound(format!("finished object index of dump {dump}"))
}

#[cfg(test)]
mod tests {
    use heapfleet_dump::ObjectType;

    use super::*;

    fn row(line: u32, generation: Option<u32>, count: u64) -> SiteGenerationStats {
        SiteGenerationStats {
            site: SiteKey {
                file: Some("/app/a.rb".to_owned()),
                line: Some(line),
                object_type: ObjectType::String,
                class_name: Some("String".to_owned()),
            },
            generation,
            totals: Totals {
                count,
                memsize: count * 40,
                bytesize: 0,
                references: 0,
            },
        }
    }

    #[test]
    fn test_sorted_site_rows_sorts_and_rejects_repeats() {
        let sorted = sorted_site_rows(
            "d-1",
            &[row(2, None, 1), row(1, Some(3), 1), row(1, None, 1)],
        )
        .unwrap();
        let keys: Vec<(Option<u32>, Option<u32>)> = sorted
            .iter()
            .map(|row| (row.site.line, row.generation))
            .collect();
        assert_eq!(
            keys,
            vec![(Some(1), None), (Some(1), Some(3)), (Some(2), None)]
        );
        let repeated = sorted_site_rows("d-1", &[row(1, Some(3), 1), row(1, Some(3), 2)]);
        assert!(matches!(repeated, Err(StorageError::Invalid(_))));
    }

    #[test]
    fn test_sum_site_adds_generations_of_one_site_only() {
        let rows = [row(1, None, 1), row(1, Some(3), 2), row(2, Some(3), 4)];
        assert_eq!(sum_site(&rows, &rows[0].site).count, 3);
        assert_eq!(sum_site(&rows, &rows[2].site).count, 4);
    }

    #[test]
    fn test_first_missing_chunk_finds_gaps() {
        assert_eq!(first_missing_chunk(3, [2, 0, 1]), None);
        assert_eq!(first_missing_chunk(3, [2, 0, 5]), Some(1));
        assert_eq!(first_missing_chunk(0, []), None);
    }

    #[test]
    fn test_check_dump_id_rejects_empty_ids() {
        assert!(check_dump_id("d-1").is_ok());
        assert!(matches!(check_dump_id(""), Err(StorageError::Invalid(_))));
    }
}
