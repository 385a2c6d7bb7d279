//! [`MemoryStore`]: an [`AggregateStore`] in a `HashMap` behind a mutex, for unit tests of the
//! crates above this one. It keeps nothing across restarts; never use it where data must last.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use heapfleet_analysis::{
    DumpAggregates, DumpOwnership, IndexedDump, SiteGenerationStats, SiteKey,
};

use crate::error::Result;
use crate::ownership_pack::{AskedSites, check_distinct_sites};
use crate::store::{
    AggregateStore, DumpSiteOwnership, aggregates_not_found, check_dump_id, decode_index_chunk,
    first_missing_chunk, index_not_found, missing_chunk_error, ownership_not_found,
    sorted_site_rows, with_sites,
};

/// An in-memory [`AggregateStore`].
#[derive(Default)]
pub struct MemoryStore {
    dumps: Mutex<HashMap<String, MemoryDump>>,
}

/// Everything stored for one dump.
#[derive(Default)]
struct MemoryDump {
    /// Sites already sorted, as every read returns them.
    aggregates_opt: Option<DumpAggregates>,
    chunks: BTreeMap<u32, Vec<u8>>,
    /// `Some(count)` once the index is finished.
    finished_chunk_count_opt: Option<u32>,
    ownership_opt: Option<DumpOwnership>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The contents can be megabytes of index chunks; show their size only.
        formatter
            .debug_struct("MemoryStore")
            .field("dumps", &self.lock().len())
            .finish()
    }
}

impl MemoryStore {
    /// Returns an empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, MemoryDump>> {
        // Every update below is a single assignment or insert, so a panic elsewhere while the
        // lock was held cannot have left a dump half-written.
        self.dumps.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AggregateStore for MemoryStore {
    async fn put_dump_aggregates(&self, dump: &str, aggregates: &DumpAggregates) -> Result<()> {
        check_dump_id(dump)?;
        let stored = with_sites(aggregates, sorted_site_rows(dump, &aggregates.sites)?);
        self.lock()
            .entry(dump.to_owned())
            .or_default()
            .aggregates_opt = Some(stored);
        Ok(())
    }

    async fn get_dump_aggregates(&self, dump: &str) -> Result<DumpAggregates> {
        check_dump_id(dump)?;
        self.lock()
            .get(dump)
            .and_then(|stored| stored.aggregates_opt.clone())
            .ok_or_else(|| aggregates_not_found(dump))
    }

    async fn get_site_stats(&self, dump: &str) -> Result<Vec<SiteGenerationStats>> {
        check_dump_id(dump)?;
        self.lock()
            .get(dump)
            .and_then(|stored| stored.aggregates_opt.as_ref())
            .map(|aggregates| aggregates.sites.clone())
            .ok_or_else(|| aggregates_not_found(dump))
    }

    async fn put_index_chunk(&self, dump: &str, chunk_number: u32, bytes: Vec<u8>) -> Result<()> {
        check_dump_id(dump)?;
        let mut dumps = self.lock();
        let stored = dumps.entry(dump.to_owned()).or_default();
        stored.chunks.insert(chunk_number, bytes);
        stored.finished_chunk_count_opt = None;
        Ok(())
    }

    async fn finish_index(&self, dump: &str, chunk_count: u32) -> Result<()> {
        check_dump_id(dump)?;
        let mut dumps = self.lock();
        let stored = dumps.entry(dump.to_owned()).or_default();
        if let Some(missing) = first_missing_chunk(chunk_count, stored.chunks.keys().copied()) {
            return Err(missing_chunk_error(dump, missing, chunk_count));
        }
        stored
            .chunks
            .retain(|&chunk_number, _| chunk_number < chunk_count);
        stored.finished_chunk_count_opt = Some(chunk_count);
        Ok(())
    }

    async fn load_index(&self, dump: &str) -> Result<IndexedDump> {
        check_dump_id(dump)?;
        let dumps = self.lock();
        let stored = dumps.get(dump).ok_or_else(|| index_not_found(dump))?;
        if stored.finished_chunk_count_opt.is_none() {
            return Err(index_not_found(dump));
        }
        let aggregates = stored
            .aggregates_opt
            .as_ref()
            .ok_or_else(|| aggregates_not_found(dump))?;
        let mut entries = Vec::new();
        for (&chunk_number, chunk) in &stored.chunks {
            decode_index_chunk(dump, chunk_number, chunk, &mut entries)?;
        }
        Ok(IndexedDump {
            sites: aggregates.index_sites.clone(),
            entries,
        })
    }

    async fn put_dump_ownership(&self, dump: &str, ownership: &DumpOwnership) -> Result<()> {
        check_dump_id(dump)?;
        check_distinct_sites(dump, ownership)?;
        let stored = ownership.clone();
        self.lock()
            .entry(dump.to_owned())
            .or_default()
            .ownership_opt = Some(stored);
        Ok(())
    }

    async fn get_dump_ownership(&self, dump: &str) -> Result<DumpOwnership> {
        check_dump_id(dump)?;
        self.lock()
            .get(dump)
            .and_then(|stored| stored.ownership_opt.clone())
            .ok_or_else(|| ownership_not_found(dump))
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
        let stored = self.lock();
        Ok(dumps
            .iter()
            .map(|dump| {
                let rows = stored
                    .get(*dump)
                    .and_then(|stored| stored.ownership_opt.as_ref())
                    .map(|ownership| asked.pick_from(&ownership.sites))
                    .unwrap_or_default();
                DumpSiteOwnership {
                    dump: (*dump).to_owned(),
                    sites: rows,
                }
            })
            .collect())
    }

    async fn delete_dump(&self, dump: &str) -> Result<()> {
        check_dump_id(dump)?;
        self.lock().remove(dump);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn test_memory_store_passes_the_conformance_suite() {
        crate::testsuite::run_aggregate_store_test_suite(&MemoryStore::new()).await;
    }

    #[test]
    fn test_memory_store_debug_shows_size_not_contents() {
        let store = MemoryStore::new();
        store.lock().insert("d-1".to_owned(), MemoryDump::default());
        assert_eq!(format!("{store:?}"), "MemoryStore { dumps: 1 }");
    }
}
