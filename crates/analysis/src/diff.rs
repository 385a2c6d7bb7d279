//! Identity-aware diff of N >= 2 dumps of one process: the objects present in every later dump
//! and absent from the first, grouped by type and site.
//!
//! heapy matches objects by address alone, which slot reuse makes wrong: after GC a freed slot
//! holds a new object at the same address, so a replaced cache entry looks "retained" and a leaked
//! object that landed in a slot used at the first dump looks old. Here two entries are the same
//! object only when everything the dump says about them agrees:
//!
//! * `object_id`, when both carry one (Ruby's ids are never reused), decides on its own;
//! * otherwise address, site (type, file, line, class) and generation must all be equal.
//!
//! Generations also survive compaction, which moves objects to new addresses: an object alive in
//! a later dump whose generation is *older* than the newest generation of the first dump was
//! allocated before the first dump and is alive after it, so it was alive at the first dump even
//! if no slot there matches (it moved). Between later dumps a moved object is matched by its
//! (site, generation) among the entries no exact match claimed.

use std::collections::BTreeMap;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::aggregate::Totals;
use crate::index::IndexEntry;
use crate::site::SiteKey;

/// One dump's object index with the site table its entries refer to.
#[derive(Debug, Clone, Default)]
pub struct IndexedDump {
    /// The site table ([`IndexEntry::site`] indexes it).
    pub sites: Vec<SiteKey>,
    /// Every heap object of the dump.
    pub entries: Vec<IndexEntry>,
}

/// Retained objects of one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffRow {
    /// The site.
    pub site: SiteKey,
    /// Totals of the retained objects, as the last dump shows them.
    #[serde(flatten)]
    pub totals: Totals,
}

/// The diff's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffResult {
    /// Retained objects per site, most bytes first.
    pub rows: Vec<DiffRow>,
    /// Totals over every row.
    pub total: Totals,
}

/// Why a diff could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// Fewer than two dumps.
    #[error("a diff needs at least two dumps, got {0}")]
    TooFewDumps(usize),
    /// An entry refers to a site its table lacks.
    #[error("object index of dump {dump} refers to site {site}, which its site table lacks")]
    DanglingSite {
        /// Position of the dump in the input.
        dump: usize,
        /// The missing site id.
        site: u32,
    },
}

/// An entry's identity within one dump, sites mapped to diff-wide ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SlotIdentity {
    address: u64,
    site: u32,
    generation: Option<u32>,
}

/// A dump's entries, indexed for matching.
struct MatchIndex {
    by_object_id: HashMap<u64, usize, FixedState>,
    by_slot: HashMap<SlotIdentity, usize, FixedState>,
    newest_generation: Option<u32>,
}

impl MatchIndex {
    fn new(entries: &[IndexEntry], global_sites: &[u32]) -> Self {
        let mut by_object_id = HashMap::with_hasher(FixedState::default());
        let mut by_slot = HashMap::with_capacity_and_hasher(entries.len(), FixedState::default());
        let mut newest_generation = None;
        for (position, entry) in entries.iter().enumerate() {
            if let Some(object_id) = entry.object_id {
                by_object_id.insert(object_id, position);
            }
            by_slot.insert(slot_identity(entry, global_sites), position);
            newest_generation = newest_generation.max(entry.generation);
        }
        MatchIndex {
            by_object_id,
            by_slot,
            newest_generation,
        }
    }

    /// Returns the position of the entry that is the same object as `entry`, whose site is
    /// `global_site` in the diff-wide table, if any.
    fn find(&self, entry: &IndexEntry, global_site: u32, entries: &[IndexEntry]) -> Option<usize> {
        if let Some(object_id) = entry.object_id
            && let Some(&position) = self.by_object_id.get(&object_id)
        {
            return Some(position);
        }
        let identity = SlotIdentity {
            address: entry.address,
            site: global_site,
            generation: entry.generation,
        };
        let position = *self.by_slot.get(&identity)?;
        // Same slot, site and generation, but both carry different object ids: two objects.
        match (entry.object_id, entries[position].object_id) {
            (Some(left), Some(right)) if left != right => None,
            _ => Some(position),
        }
    }
}

fn slot_identity(entry: &IndexEntry, global_sites: &[u32]) -> SlotIdentity {
    SlotIdentity {
        address: entry.address,
        site: global_sites[entry.site as usize],
        generation: entry.generation,
    }
}

/// Returns the objects present in every dump after the first and absent from the first.
pub fn diff(dumps: &[IndexedDump]) -> Result<DiffResult, DiffError> {
    if dumps.len() < 2 {
        return Err(DiffError::TooFewDumps(dumps.len()));
    }
    // Map each dump's site ids onto one diff-wide table, so sites compare by value.
    let mut site_ids: HashMap<&SiteKey, u32, FixedState> =
        HashMap::with_hasher(FixedState::default());
    let mut site_keys: Vec<&SiteKey> = Vec::new();
    let global_sites: Vec<Vec<u32>> = dumps
        .iter()
        .map(|dump| {
            dump.sites
                .iter()
                .map(|site| {
                    *site_ids.entry(site).or_insert_with(|| {
                        site_keys.push(site);
                        (site_keys.len() - 1) as u32
                    })
                })
                .collect()
        })
        .collect();
    for (dump_position, dump) in dumps.iter().enumerate() {
        if let Some(entry) = dump
            .entries
            .iter()
            .find(|entry| entry.site as usize >= dump.sites.len())
        {
            return Err(DiffError::DanglingSite {
                dump: dump_position,
                site: entry.site,
            });
        }
    }

    // Candidates: entries of the second dump that were not alive at the first.
    let first = MatchIndex::new(&dumps[0].entries, &global_sites[0]);
    let allocated_before_first =
        |entry: &IndexEntry| match (entry.generation, first.newest_generation) {
            (Some(generation), Some(newest)) => generation < newest,
            _ => false,
        };
    // Each candidate: (site id, the entry as the latest dump shows it).
    let mut candidates: Vec<(u32, IndexEntry)> = dumps[1]
        .entries
        .iter()
        .filter(|entry| {
            first
                .find(
                    entry,
                    global_sites[1][entry.site as usize],
                    &dumps[0].entries,
                )
                .is_none()
                && !allocated_before_first(entry)
        })
        .map(|entry| (global_sites[1][entry.site as usize], *entry))
        .collect();

    // Keep the candidates that every later dump still holds.
    for (dump_position, dump) in dumps.iter().enumerate().skip(2) {
        let later = MatchIndex::new(&dump.entries, &global_sites[dump_position]);
        let mut claimed = vec![false; dump.entries.len()];
        let mut unmatched = Vec::new();
        let mut survivors = Vec::with_capacity(candidates.len());
        for (site, entry) in candidates {
            match later.find(&entry, site, &dump.entries) {
                Some(position) if !claimed[position] => {
                    claimed[position] = true;
                    survivors.push((site, dump.entries[position]));
                }
                _ => unmatched.push((site, entry)),
            }
        }
        // Objects moved by compaction: match by (site, generation) among unclaimed entries.
        let mut moved: HashMap<(u32, u32), Vec<usize>, FixedState> =
            HashMap::with_hasher(FixedState::default());
        for (position, entry) in dump.entries.iter().enumerate() {
            if let (false, Some(generation)) = (claimed[position], entry.generation) {
                moved
                    .entry((global_sites[dump_position][entry.site as usize], generation))
                    .or_default()
                    .push(position);
            }
        }
        for (site, entry) in unmatched {
            let Some(generation) = entry.generation else {
                continue;
            };
            if let Some(position) = moved.get_mut(&(site, generation)).and_then(Vec::pop) {
                survivors.push((site, dump.entries[position]));
            }
        }
        candidates = survivors;
    }

    let mut per_site: BTreeMap<u32, Totals> = BTreeMap::new();
    for (site, entry) in &candidates {
        let totals = per_site.entry(*site).or_default();
        totals.count += 1;
        totals.memsize += entry.memsize;
        totals.bytesize += entry.bytesize;
    }
    let mut total = Totals::default();
    let mut rows: Vec<DiffRow> = per_site
        .into_iter()
        .map(|(site, totals)| {
            total.add(&totals);
            DiffRow {
                site: site_keys[site as usize].clone(),
                totals,
            }
        })
        .collect();
    rows.sort_by(|left, right| {
        (right.totals.memsize, right.totals.count)
            .cmp(&(left.totals.memsize, left.totals.count))
            .then_with(|| left.site.cmp(&right.site))
    });
    Ok(DiffResult { rows, total })
}

#[cfg(test)]
mod tests {
    use heapfleet_dump::ObjectType;

    use super::*;

    fn site(line: u32) -> SiteKey {
        SiteKey {
            file: Some("/app/a.rb".to_owned()),
            line: Some(line),
            object_type: ObjectType::String,
            class_name: None,
        }
    }

    fn entry(address: u64, site: u32, generation: u32) -> IndexEntry {
        IndexEntry {
            address,
            object_id: None,
            site,
            generation: Some(generation),
            memsize: 40,
            bytesize: 0,
        }
    }

    fn dump(entries: Vec<IndexEntry>) -> IndexedDump {
        IndexedDump {
            sites: vec![site(1), site(2)],
            entries,
        }
    }

    #[test]
    fn test_diff_counts_objects_new_since_first_and_kept() {
        let first = dump(vec![entry(0x10, 0, 1)]);
        let second = dump(vec![
            entry(0x10, 0, 1),
            entry(0x20, 1, 5),
            entry(0x30, 1, 5),
        ]);
        let third = dump(vec![entry(0x10, 0, 1), entry(0x20, 1, 5)]);
        let result = diff(&[first, second, third]).unwrap();
        assert_eq!(result.rows.len(), 1);
        assert_eq!(result.rows[0].site, site(2));
        assert_eq!(result.total.count, 1);
    }

    #[test]
    fn test_diff_treats_reused_slot_as_new_object() {
        // Slot 0x10 held a gen-1 object at the first dump and a gen-5 object later: that later
        // object is new (heapy would call it old and miss it).
        let first = dump(vec![entry(0x10, 1, 1)]);
        let second = dump(vec![entry(0x10, 1, 5)]);
        let third = dump(vec![entry(0x10, 1, 5)]);
        assert_eq!(diff(&[first, second, third]).unwrap().total.count, 1);
    }

    #[test]
    fn test_diff_drops_candidate_whose_slot_was_reused_before_a_later_dump() {
        // A cache entry replaced between the second and third dumps: same slot, newer generation.
        // heapy would count it retained; it is not.
        let first = dump(vec![entry(0x99, 0, 1)]);
        let second = dump(vec![entry(0x10, 1, 5)]);
        let third = dump(vec![entry(0x10, 1, 9)]);
        assert_eq!(diff(&[first, second, third]).unwrap().total.count, 0);
    }

    #[test]
    fn test_diff_follows_objects_moved_by_compaction() {
        // Allocated at generation 2, before the first dump's newest generation (3): alive at the
        // first dump even though it moved from 0x10 to 0x50.
        let first = dump(vec![entry(0x10, 0, 2), entry(0x11, 0, 3)]);
        let second = dump(vec![entry(0x50, 0, 2), entry(0x20, 1, 5)]);
        // The gen-5 object moves between the second and third dumps.
        let third = dump(vec![entry(0x50, 0, 2), entry(0x70, 1, 5)]);
        let result = diff(&[first, second, third]).unwrap();
        assert_eq!(result.total.count, 1);
        assert_eq!(result.rows[0].site, site(2));
    }

    #[test]
    fn test_diff_object_ids_decide_when_present() {
        let with_id = |address, object_id| IndexEntry {
            object_id: Some(object_id),
            ..entry(address, 0, 7)
        };
        let first = dump(vec![with_id(0x10, 1)]);
        // Same slot, site and generation but another object id: a different object.
        let second = dump(vec![with_id(0x10, 2), with_id(0x40, 1)]);
        let third = dump(vec![with_id(0x10, 2), with_id(0x80, 1)]);
        let result = diff(&[first, second, third]).unwrap();
        assert_eq!(result.total.count, 1);
    }

    #[test]
    fn test_diff_rejects_bad_input() {
        assert_eq!(
            diff(&[dump(vec![])]).unwrap_err(),
            DiffError::TooFewDumps(1)
        );
        let dangling = dump(vec![entry(0x10, 9, 1)]);
        assert_eq!(
            diff(&[dump(vec![]), dangling]).unwrap_err(),
            DiffError::DanglingSite { dump: 1, site: 9 }
        );
    }
}
