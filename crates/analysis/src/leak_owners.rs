//! The leak report's memory side: what each suspect retains and who holds it, from the
//! dumps' ownership results, then the ranking by memory and the grouping of suspects that
//! one owner holds into one leak.
//!
//! The site rows say which allocation site grows; the ownership results of the same dumps say
//! how many bytes that growth keeps alive and which object keeps it. Owners are matched across
//! dumps and processes by what they look like from outside: their own site (file, line, type,
//! class) where allocations were traced, their path from the GC root (the classes and modules
//! on the way) otherwise, never by address, which means nothing across processes.

use std::collections::{BTreeMap, BTreeSet};

use crate::leaks::{HeldBy, LeakReport, LeakSuspect, median};
use crate::ownership::{OwnerSite, RetainedSite};

/// One growing process's ownership rows for a suspect's site.
#[derive(Debug, Clone)]
pub struct ProcessOwnership {
    /// The process's host.
    pub host: String,
    /// Per dump of the process, oldest first: the site's stored row, `None` where the dump has
    /// no ownership results (or no object of the site).
    pub series: Vec<Option<RetainedSite>>,
}

/// How the report is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeakRank {
    /// By [`memory_score`]: the score weighted by the memory a leak adds per dump (retained
    /// bytes where known, else the objects' own): what takes a process down first.
    #[default]
    Memory,
    /// By the score of the module `leaks` (object counts, bytes on a logarithmic scale).
    Objects,
}

/// The identity of an owner across dumps and processes.
type OwnerKey = (Option<OwnerSite>, String, Vec<String>);

/// What one process says about one owner: (objects at its last dump, bytes then, growth of
/// the objects per dump).
type OwnerInProcess = (u64, u64, f64);

/// Sets `suspect`'s retained bytes, their growth and its owners from its growing processes'
/// ownership rows. Processes without any row leave the suspect as it was.
pub fn apply_ownership(suspect: &mut LeakSuspect, processes: &[ProcessOwnership]) {
    let mut last_bytes = Vec::new();
    let mut bytes_growth = Vec::new();
    let mut owners: BTreeMap<OwnerKey, Vec<(String, OwnerInProcess)>> = BTreeMap::new();
    for process in processes {
        let present: Vec<(usize, &RetainedSite)> = process
            .series
            .iter()
            .enumerate()
            .filter_map(|(index, row)| row.as_ref().map(|row| (index, row)))
            .collect();
        let Some(&(last_index, last_row)) = present.last() else {
            continue;
        };
        last_bytes.push(last_row.retained.retained_bytes as f64);
        let (first_index, first_row) = present[0];
        if last_index > first_index {
            let steps = (last_index - first_index) as f64;
            bytes_growth.push(
                (last_row.retained.retained_bytes as f64
                    - first_row.retained.retained_bytes as f64)
                    / steps,
            );
        }
        // Each owner's holdings in this process: at the last dump with results, and how they
        // grew since the first (0 where a dump with results does not list the owner).
        let mut seen: BTreeMap<OwnerKey, (u64, u64, u64, usize)> = BTreeMap::new();
        for owner in &last_row.owners {
            seen.insert(key_of(owner), (owner.objects, owner.bytes, 0, first_index));
        }
        for owner in &first_row.owners {
            if let Some(entry) = seen.get_mut(&key_of(owner)) {
                entry.2 = owner.objects;
            }
        }
        for (key, (objects, bytes, first_objects, first_at)) in seen {
            let growth = if last_index > first_at {
                (objects as f64 - first_objects as f64) / (last_index - first_at) as f64
            } else {
                0.0
            };
            owners
                .entry(key)
                .or_default()
                .push((process.host.clone(), (objects, bytes, growth)));
        }
    }
    if !last_bytes.is_empty() {
        suspect.retained_bytes = Some(median(last_bytes) as u64);
    }
    if !bytes_growth.is_empty() {
        suspect.retained_bytes_per_dump = Some(median(bytes_growth));
    }
    let mut held_by: Vec<HeldBy> = owners
        .into_iter()
        .map(|((owner, root, path), entries)| {
            let growing_count = entries
                .iter()
                .filter(|(_, (_, _, growth))| *growth >= 1.0)
                .count();
            let hosts: BTreeSet<String> = entries.iter().map(|(host, _)| host.clone()).collect();
            HeldBy {
                owner,
                root,
                path,
                objects: median(entries.iter().map(|(_, held)| held.0 as f64).collect()) as u64,
                bytes: median(entries.iter().map(|(_, held)| held.1 as f64).collect()) as u64,
                objects_per_dump: median(entries.iter().map(|(_, held)| held.2).collect()),
                growing: growing_count * 2 > entries.len(),
                processes: entries.len(),
                hosts: hosts.into_iter().collect(),
            }
        })
        .collect();
    held_by.sort_by(|left, right| {
        right
            .growing
            .cmp(&left.growing)
            .then(right.bytes.cmp(&left.bytes))
            .then(right.processes.cmp(&left.processes))
            .then_with(|| left.path.cmp(&right.path))
    });
    held_by.truncate(5);
    suspect.held_by = held_by;
}

fn key_of(owner: &crate::ownership::SiteOwner) -> OwnerKey {
    (owner.owner.clone(), owner.root.clone(), owner.path.clone())
}

/// The bytes a suspect adds per dump: retained where known, else its objects' own.
pub fn bytes_growth(suspect: &LeakSuspect) -> f64 {
    suspect
        .retained_bytes_per_dump
        .filter(|growth| *growth > 0.0)
        .unwrap_or(suspect.bytes_per_dump)
        .max(0.0)
}

/// The memory ranking's key: the score (how sure the growth is, across how many processes)
/// times `log2(1 + bytes added per dump / 1 KiB)`, at least 1. Bytes weigh logarithmically, like
/// every size in the score, so a leak of a few large strings outranks one of many small ones,
/// while a leak seen in many processes keeps its lead over a rise in one process by chance.
pub fn memory_score(suspect: &LeakSuspect) -> f64 {
    suspect.score * (1.0 + bytes_growth(suspect) / 1024.0).log2().max(1.0)
}

/// Orders the suspects by `rank`, best first; ties keep the site order.
pub fn rank_suspects(suspects: &mut [LeakSuspect], rank: LeakRank) {
    match rank {
        LeakRank::Objects => suspects.sort_by(|left, right| {
            right
                .score
                .total_cmp(&left.score)
                .then_with(|| left.site.cmp(&right.site))
        }),
        LeakRank::Memory => suspects.sort_by(|left, right| {
            memory_score(right)
                .total_cmp(&memory_score(left))
                .then_with(|| right.score.total_cmp(&left.score))
                .then_with(|| left.site.cmp(&right.site))
        }),
    }
}

/// Numbers the leaks of a ranked report: suspects whose first growing owner with an
/// allocation site is the same (same owner site, root and path) are one leak, listed together
/// after the best ranked of them; any other suspect is a leak of its own.
pub fn group_by_owner(report: &mut LeakReport) {
    let suspects = std::mem::take(&mut report.suspects);
    let mut groups: Vec<(Option<OwnerKey>, Vec<LeakSuspect>)> = Vec::new();
    for suspect in suspects {
        let key = suspect
            .held_by
            .iter()
            // An owner known only by its path may be several lookalike containers (one Array
            // per global, say): only an owner with an allocation site groups suspects.
            .find(|held| {
                held.growing
                    && held
                        .owner
                        .as_ref()
                        .is_some_and(|owner| owner.file.is_some())
            })
            .map(|held| (held.owner.clone(), held.root.clone(), held.path.clone()));
        match groups
            .iter_mut()
            .find(|(group_key, _)| key.is_some() && *group_key == key)
        {
            Some((_, members)) => members.push(suspect),
            None => groups.push((key, vec![suspect])),
        }
    }
    for (number, (_, members)) in groups.into_iter().enumerate() {
        for mut suspect in members {
            suspect.leak = number + 1;
            report.suspects.push(suspect);
        }
    }
}

#[cfg(test)]
mod tests {
    use heapfleet_dump::ObjectType;

    use super::*;
    use crate::SiteKey;
    use crate::ownership::{Retained, SiteOwner};

    fn site(line: u32, object_type: ObjectType) -> SiteKey {
        SiteKey {
            file: Some("/app/lib/helper.rb".to_owned()),
            line: Some(line),
            object_type,
            class_name: None,
        }
    }

    fn owner(line: u32, objects: u64, bytes: u64) -> SiteOwner {
        SiteOwner {
            owner: Some(OwnerSite {
                file: Some("/app/jobs/job.rb".to_owned()),
                line: Some(line),
                object_type: ObjectType::Array,
                class_name: Some("Array".to_owned()),
            }),
            address: Some(0x1000 + u64::from(line)),
            owner_objects: 1,
            root: "vm".to_owned(),
            path: vec!["vm".to_owned(), "Workload".to_owned(), "Array".to_owned()],
            objects,
            bytes,
        }
    }

    fn row(line: u32, retained_bytes: u64, owners: Vec<SiteOwner>) -> RetainedSite {
        RetainedSite {
            site: site(line, ObjectType::String),
            retained: Retained {
                objects: 0,
                shallow_bytes: 0,
                retained_objects: 0,
                retained_bytes,
            },
            owners,
        }
    }

    fn suspect(line: u32, object_type: ObjectType, bytes_per_dump: f64) -> LeakSuspect {
        LeakSuspect {
            site: site(line, object_type),
            score: 1.0,
            processes_growing: 1,
            processes_total: 1,
            hosts_growing: vec!["a".to_owned()],
            hosts_total: 1,
            growth_per_dump: 1.0,
            bytes_per_dump,
            growth_per_hour: None,
            bytes_per_hour: None,
            growth_per_1000_jobs: None,
            since: None,
            retained_bytes: None,
            retained_bytes_per_dump: None,
            held_by: Vec::new(),
            leak: 0,
            evidence: Vec::new(),
        }
    }

    #[test]
    fn test_apply_ownership_clusters_owners_and_puts_growing_ones_first() {
        let mut leak = suspect(6, ObjectType::String, 40.0);
        let process = |host: &str| ProcessOwnership {
            host: host.to_owned(),
            series: vec![
                Some(row(6, 1_000, vec![owner(9, 50, 500), owner(3, 10, 100)])),
                None,
                Some(row(6, 5_000, vec![owner(9, 50, 500), owner(3, 90, 4_500)])),
            ],
        };
        apply_ownership(&mut leak, &[process("a"), process("b")]);
        assert_eq!(leak.retained_bytes, Some(5_000));
        assert_eq!(leak.retained_bytes_per_dump, Some(2_000.0));
        assert_eq!(leak.held_by.len(), 2);
        let first = &leak.held_by[0];
        assert_eq!(
            first.owner.as_ref().unwrap().line,
            Some(3),
            "the growing owner first"
        );
        assert!(first.growing);
        assert_eq!(
            (first.objects, first.bytes, first.processes),
            (90, 4_500, 2)
        );
        assert_eq!(first.objects_per_dump, 40.0);
        assert_eq!(first.hosts, vec!["a", "b"]);
        assert!(!leak.held_by[1].growing, "the cache holds as much as ever");
    }

    #[test]
    fn test_rank_by_memory_puts_big_leaks_first_and_objects_keeps_the_score() {
        // Scores as the module `leaks` gives them: 600 small strings a dump against 25 large.
        let mut small = suspect(1, ObjectType::String, 40_000.0);
        small.score = 10.5;
        let mut large = suspect(2, ObjectType::String, 1_000.0);
        large.retained_bytes_per_dump = Some(3_800_000.0);
        large.score = 7.7;
        let mut suspects = vec![small.clone(), large.clone()];
        rank_suspects(&mut suspects, LeakRank::Memory);
        assert_eq!(suspects[0].site.line, Some(2));
        rank_suspects(&mut suspects, LeakRank::Objects);
        assert_eq!(suspects[0].site.line, Some(1));
    }

    #[test]
    fn test_group_by_owner_lists_one_leak_together() {
        let held = |line: u32, growing: bool| HeldBy {
            owner: owner(line, 1, 1).owner,
            root: "vm".to_owned(),
            path: vec!["vm".to_owned()],
            objects: 1,
            bytes: 1,
            objects_per_dump: 1.0,
            growing,
            processes: 1,
            hosts: vec!["a".to_owned()],
        };
        let mut strings = suspect(6, ObjectType::String, 3.0);
        strings.held_by = vec![held(3, true)];
        let mut other = suspect(7, ObjectType::String, 2.0);
        other.held_by = vec![held(4, true)];
        let mut hashes = suspect(5, ObjectType::Hash, 1.0);
        hashes.held_by = vec![held(3, true)];
        let mut lonely = suspect(8, ObjectType::Hash, 0.5);
        lonely.held_by = vec![held(3, false)];
        // Two suspects held by lookalike owners known only by their path stay apart.
        let untraced = |line: u32| {
            let mut untraced = suspect(line, ObjectType::String, 0.1);
            let mut owner = held(0, true);
            if let Some(site) = owner.owner.as_mut() {
                site.file = None;
                site.line = None;
            }
            untraced.held_by = vec![owner];
            untraced
        };
        let mut report = LeakReport {
            suspects: vec![strings, other, hashes, lonely, untraced(20), untraced(21)],
            processes_analysed: 1,
            dumps_analysed: 3,
        };
        group_by_owner(&mut report);
        let order: Vec<(Option<u32>, usize)> = report
            .suspects
            .iter()
            .map(|suspect| (suspect.site.line, suspect.leak))
            .collect();
        assert_eq!(
            order,
            vec![
                (Some(6), 1),
                (Some(5), 1),
                (Some(7), 2),
                (Some(8), 3),
                (Some(20), 4),
                (Some(21), 5),
            ]
        );
    }
}
