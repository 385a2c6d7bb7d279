//! The leak report's memory side: what each suspect retains and who holds it, from the
//! dumps' ownership results, then the ranking by memory and the grouping of suspects that
//! one owner holds into one leak.
//!
//! The site rows say which allocation site grows; the ownership results of the same dumps say
//! how many bytes that growth keeps alive and which object keeps it. Owners are matched across
//! dumps and processes by what they look like from outside: their own site (file, line, type,
//! class) where allocations were traced, their path from the GC root (the classes and modules
//! on the way) otherwise, never by address, which means nothing across processes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::aggregate::{SiteGenerationStats, Totals};
use crate::leaks::{
    DumpSites, FloorShape, GrowingOwner, HeldBy, HeldSite, LeakAccumulator, LeakOptions,
    LeakReport, LeakSuspect, ProcessDumps, median, suffix_floor,
};
use crate::ownership::{OwnerSite, RetainedSite};
use crate::site::SiteKey;

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
/// the objects per dump, whether they keep growing).
type OwnerInProcess = (u64, u64, f64, bool);

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
        // Each owner's holdings in this process, per dump with results (0 where such a dump
        // does not list the owner): at the last dump, how fast they grew, and whether they
        // keep growing by the rules of a site's floor without generations.
        let mut held: BTreeMap<OwnerKey, Vec<(u64, u64)>> = BTreeMap::new();
        for (position, (_, row)) in present.iter().enumerate() {
            for owner in &row.owners {
                held.entry(key_of(owner))
                    .or_insert_with(|| vec![(0, 0); present.len()])[position] =
                    (owner.objects, owner.bytes);
            }
        }
        let steps = (last_index - first_index).max(1) as f64;
        for (key, series) in held {
            let (objects, bytes) = series[series.len() - 1];
            if objects == 0 {
                // Not an owner at the last dump any more.
                continue;
            }
            let growth = (objects as f64 - series[0].0 as f64) / steps;
            let grows = series.len() >= 3 && {
                let floors: Vec<(u64, u64)> = (0..series.len() - 1)
                    .map(|k| suffix_floor(&series, k))
                    .collect();
                FloorShape::of(&floors).grows(false, &LeakOptions::default())
            };
            owners
                .entry(key)
                .or_default()
                .push((process.host.clone(), (objects, bytes, growth, grows)));
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
            let growing_count = entries.iter().filter(|(_, held)| held.3).count();
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

/// One dump's ownership rows, for [`growing_owners`].
#[derive(Debug, Clone)]
pub struct OwnerRowsAtDump {
    /// The dump's id.
    pub dump_id: String,
    /// When it was taken (Unix seconds).
    pub taken_at_unix: i64,
    /// The jobs counter at dump time, when known.
    pub jobs: Option<u64>,
    /// The stored rows of the sites read (the same sites in every dump of the process).
    pub sites: Vec<RetainedSite>,
}

/// One process's dumps with ownership results, oldest first, for [`growing_owners`].
#[derive(Debug, Clone)]
pub struct ProcessOwnerRows {
    /// The host.
    pub host: String,
    /// The pid.
    pub pid: u32,
    /// The process instance.
    pub instance: String,
    /// Its dumps with ownership results, oldest first.
    pub dumps: Vec<OwnerRowsAtDump>,
}

/// The containers whose holdings keep rising, each as a suspect of its own
/// ([`LeakSuspect::owner`]).
///
/// An owner is known across dumps and processes by its [`OwnerKey`] (its site, root and path
/// signature), so the same container is followed when the heap compacts and it moves, and in
/// every process that has it. Its series in a process counts the objects of the sites read
/// that it holds in each dump (the rows name it as their owner); the series is judged by the
/// same rules as a site's live count without generations (the module `leaks`: the floor, its
/// growth, persistence and lateness, the fleet score), so a cache that fills and plateaus, a
/// boot-time table and churn do not grow, and a leak grows in exactly the processes, and on
/// the hosts, where its container fills. Its bytes are the container's own retained bytes.
/// An ancestor of a growing container (the class that holds it, the main object) retains it
/// too but holds none of its objects as their owner, so it does not grow.
pub fn growing_owners(processes: &[ProcessOwnerRows], options: &LeakOptions) -> Vec<LeakSuspect> {
    let mut keys: Vec<OwnerKey> = Vec::new();
    let mut index_of: HashMap<OwnerKey, usize> = HashMap::new();
    // (owner, process) -> per dump with the owner: (dump index, site -> objects held).
    type Holdings = Vec<(usize, BTreeMap<SiteKey, u64>)>;
    let mut holdings: HashMap<(usize, usize), Holdings> = HashMap::new();
    let mut accumulator = LeakAccumulator::new(*options);
    for (process_index, process) in processes.iter().enumerate() {
        let mut dumps = Vec::with_capacity(process.dumps.len());
        for (dump_index, dump) in process.dumps.iter().enumerate() {
            // Owner index -> (objects held, the owner's retained bytes).
            let mut totals: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
            for row in &dump.sites {
                for owner in row.owners.iter().filter(|owner| owner.owner.is_some()) {
                    let key = key_of(owner);
                    let index = *index_of.entry(key.clone()).or_insert_with(|| {
                        keys.push(key);
                        keys.len() - 1
                    });
                    let total = totals.entry(index).or_default();
                    total.0 += owner.objects;
                    total.1 = total.1.max(owner.owner_retained_bytes);
                    let series = holdings.entry((index, process_index)).or_default();
                    if series.last().is_none_or(|(at, _)| *at != dump_index) {
                        series.push((dump_index, BTreeMap::new()));
                    }
                    if let Some((_, held)) = series.last_mut() {
                        *held.entry(row.site.clone()).or_default() += owner.objects;
                    }
                }
            }
            dumps.push(DumpSites {
                dump_id: dump.dump_id.clone(),
                taken_at_unix: dump.taken_at_unix,
                jobs: dump.jobs,
                sites: totals
                    .into_iter()
                    .map(|(index, (objects, bytes))| SiteGenerationStats {
                        site: stand_in(index, &keys[index]),
                        generation: None,
                        totals: Totals {
                            count: objects,
                            memsize: bytes,
                            ..Totals::default()
                        },
                    })
                    .collect(),
            });
        }
        accumulator.add_process(&ProcessDumps {
            host: process.host.clone(),
            pid: process.pid,
            instance: process.instance.clone(),
            dumps,
        });
    }
    let process_index: HashMap<(&str, u32, &str), usize> = processes
        .iter()
        .enumerate()
        .map(|(index, process)| {
            (
                (
                    process.host.as_str(),
                    process.pid,
                    process.instance.as_str(),
                ),
                index,
            )
        })
        .collect();
    let report = accumulator.finish(usize::MAX);
    report
        .suspects
        .into_iter()
        .filter_map(|mut suspect| {
            let index = stand_in_index(&suspect.site)?;
            let (owner, root, path) = keys[index].clone();
            let owner = owner?;
            // Per site: (objects at the last dump, growth per dump) in each growing process.
            let mut held: BTreeMap<SiteKey, Vec<(f64, f64)>> = BTreeMap::new();
            let mut last_bytes = Vec::new();
            for evidence in &suspect.evidence {
                if let Some(point) = evidence.series.last() {
                    last_bytes.push(point.memsize as f64);
                }
                let process = (
                    evidence.host.as_str(),
                    evidence.pid,
                    evidence.instance.as_str(),
                );
                let Some(series) = process_index
                    .get(&process)
                    .and_then(|&process| holdings.get(&(index, process)))
                else {
                    continue;
                };
                let Some((last_at, last)) = series.last() else {
                    continue;
                };
                for (site, &objects) in last {
                    // From the first dump where the owner held objects of this site.
                    let (first_at, before) = series
                        .iter()
                        .find_map(|(at, sites)| sites.get(site).map(|&objects| (*at, objects)))
                        .unwrap_or((*last_at, objects));
                    let steps = (last_at - first_at).max(1) as f64;
                    held.entry(site.clone())
                        .or_default()
                        .push((objects as f64, (objects as f64 - before as f64) / steps));
                }
            }
            let mut holds: Vec<HeldSite> = held
                .into_iter()
                .map(|(site, values)| HeldSite {
                    site,
                    objects: median(values.iter().map(|value| value.0).collect()) as u64,
                    objects_per_dump: median(values.iter().map(|value| value.1).collect()),
                })
                .collect();
            holds.sort_by(|left, right| {
                right
                    .objects_per_dump
                    .total_cmp(&left.objects_per_dump)
                    .then(right.objects.cmp(&left.objects))
            });
            suspect.site = SiteKey {
                file: owner.file,
                line: owner.line,
                object_type: owner.object_type,
                class_name: owner.class_name,
            };
            if !last_bytes.is_empty() {
                suspect.retained_bytes = Some(median(last_bytes) as u64);
            }
            suspect.retained_bytes_per_dump = Some(suspect.bytes_per_dump);
            suspect.leak = 0;
            suspect.owner = Some(GrowingOwner { root, path, holds });
            Some(suspect)
        })
        .collect()
}

/// The key [`growing_owners`] judges owner `index` under: the leak analysis works on site
/// keys, so each owner stands in as a site no dump has (a file name no path can be).
fn stand_in(index: usize, key: &OwnerKey) -> SiteKey {
    SiteKey {
        file: Some(format!("\0owner {index}")),
        line: None,
        object_type: key
            .0
            .as_ref()
            .map_or(heapfleet_dump::ObjectType::Object, |owner| {
                owner.object_type
            }),
        class_name: None,
    }
}

fn stand_in_index(site: &SiteKey) -> Option<usize> {
    site.file.as_deref()?.strip_prefix("\0owner ")?.parse().ok()
}

/// The owner key of a growing-owner suspect.
fn owner_suspect_key(suspect: &LeakSuspect) -> Option<OwnerKey> {
    let owner = suspect.owner.as_ref()?;
    Some((
        Some(OwnerSite {
            file: suspect.site.file.clone(),
            line: suspect.site.line,
            object_type: suspect.site.object_type,
            class_name: suspect.site.class_name.clone(),
        }),
        owner.root.clone(),
        owner.path.clone(),
    ))
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

/// The memory ranking's key: the confidence (how sure the growth is, across how many
/// processes, whatever its size) times `log2(1 + bytes added per dump / 1 KiB)`, at least 1.
/// The object count plays no part, so a leak of a few large strings outranks one of many
/// small ones; bytes weigh logarithmically, so a leak seen in many processes keeps its lead
/// over a larger rise in one process by chance.
pub fn memory_score(suspect: &LeakSuspect) -> f64 {
    suspect.confidence * (1.0 + bytes_growth(suspect) / 1024.0).log2().max(1.0)
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

/// Numbers the leaks of a ranked report: a growing owner ([`LeakSuspect::owner`]) and the
/// suspects whose first growing owner it is are one leak; so are suspects whose first growing
/// owner with an allocation site is the same (same owner site, root and path). Each leak is
/// listed together after the best ranked of its suspects, its allocation sites first (by
/// rank), then the rest; any other suspect is a leak of its own.
pub fn group_by_owner(report: &mut LeakReport) {
    let suspects = std::mem::take(&mut report.suspects);
    let growing: BTreeSet<OwnerKey> = suspects.iter().filter_map(owner_suspect_key).collect();
    let mut groups: Vec<(Option<OwnerKey>, Vec<LeakSuspect>)> = Vec::new();
    for suspect in suspects {
        let key = owner_suspect_key(&suspect).or_else(|| {
            suspect
                .held_by
                .iter()
                .filter(|held| held.growing)
                .map(|held| (held.owner.clone(), held.root.clone(), held.path.clone()))
                // An owner known only by its path may be several lookalike containers (one
                // Array per global, say): such an owner groups suspects only when it grows as
                // a whole (it is a suspect itself); an owner with an allocation site always.
                .find(|key| {
                    growing.contains(key)
                        || key.0.as_ref().is_some_and(|owner| owner.file.is_some())
                })
        });
        match groups
            .iter_mut()
            .find(|(group_key, _)| key.is_some() && *group_key == key)
        {
            Some((_, members)) => members.push(suspect),
            None => groups.push((key, vec![suspect])),
        }
    }
    for (number, (_, mut members)) in groups.into_iter().enumerate() {
        // Within a leak, the lines that allocate it come first (the report's first row stays
        // the line to look at), then the container that holds them; without allocation
        // tracing the container, known by its path, leads.
        members.sort_by_key(|suspect| !(suspect.owner.is_none() && suspect.site.file.is_some()));
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
            owner_retained_objects: objects,
            owner_retained_bytes: bytes,
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
            confidence: 1.0,
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
            owner: None,
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
                Some(row(6, 3_000, vec![owner(9, 50, 500), owner(3, 50, 2_500)])),
                Some(row(6, 5_000, vec![owner(9, 50, 500), owner(3, 90, 4_500)])),
            ],
        };
        apply_ownership(&mut leak, &[process("a"), process("b")]);
        assert_eq!(leak.retained_bytes, Some(5_000));
        assert_eq!(
            leak.retained_bytes_per_dump,
            Some(4_000.0 / 3.0),
            "over the three dumps from the first to the last"
        );
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
        assert_eq!(first.objects_per_dump, 80.0 / 3.0);
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

    /// A `held_by` entry of one object in one process on host "a".
    fn held_by((owner, root, path): OwnerKey, growing: bool) -> HeldBy {
        HeldBy {
            owner,
            root,
            path,
            objects: 1,
            bytes: 1,
            objects_per_dump: 1.0,
            growing,
            processes: 1,
            hosts: vec!["a".to_owned()],
        }
    }

    #[test]
    fn test_group_by_owner_lists_one_leak_together() {
        let held = |line: u32, growing: bool| {
            held_by(
                (
                    owner(line, 1, 1).owner,
                    "vm".to_owned(),
                    vec!["vm".to_owned()],
                ),
                growing,
            )
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

    /// An untraced owner (type and class only) at `path`, holding `objects` of a site.
    fn untraced_owner(path: &[&str], objects: u64, retained: u64) -> SiteOwner {
        SiteOwner {
            owner: Some(OwnerSite {
                file: None,
                line: None,
                object_type: ObjectType::Array,
                class_name: Some("Array".to_owned()),
            }),
            address: Some(0x9000 + objects),
            owner_objects: 1,
            root: "vm".to_owned(),
            path: path.iter().map(|step| (*step).to_owned()).collect(),
            objects,
            bytes: objects * 40,
            owner_retained_objects: objects,
            owner_retained_bytes: retained,
        }
    }

    fn untraced_site(object_type: ObjectType) -> SiteKey {
        SiteKey {
            file: None,
            line: None,
            object_type,
            class_name: None,
        }
    }

    /// A process whose dumps hold, per dump, the leak's Hashes (`leak`), a cache's Hashes that
    /// fill then plateau, and a boot-time table.
    fn owner_process(host: &str, pid: u32, leak: &[u64]) -> ProcessOwnerRows {
        let cache = [50, 100, 100, 100, 100];
        ProcessOwnerRows {
            host: host.to_owned(),
            pid,
            instance: String::new(),
            dumps: leak
                .iter()
                .enumerate()
                .map(|(index, &leaked)| OwnerRowsAtDump {
                    dump_id: format!("{host}-{pid}-{index}"),
                    taken_at_unix: 1_000 + index as i64 * 60,
                    jobs: None,
                    sites: vec![RetainedSite {
                        site: untraced_site(ObjectType::Hash),
                        retained: Retained::default(),
                        owners: vec![
                            untraced_owner(&["vm", "Workload", "Array"], leaked, leaked * 100),
                            untraced_owner(&["vm", "Cache", "Array"], cache[index], 9_000),
                            untraced_owner(&["vm", "Boot", "Array"], 70, 7_000),
                        ],
                    }],
                })
                .collect(),
        }
    }

    #[test]
    fn test_growing_owners_finds_the_filling_container_where_it_fills_only() {
        let processes = [
            owner_process("a", 1, &[100, 200, 300, 400, 500]),
            owner_process("a", 2, &[100, 220, 310, 420, 530]),
            owner_process("b", 3, &[5, 5, 5, 5, 5]),
        ];
        let suspects = growing_owners(&processes, &LeakOptions::default());
        assert_eq!(suspects.len(), 1, "{suspects:#?}");
        let leak = &suspects[0];
        let owner = leak.owner.as_ref().unwrap();
        assert_eq!(owner.path, vec!["vm", "Workload", "Array"]);
        assert_eq!(leak.hosts_growing, vec!["a"]);
        assert_eq!((leak.processes_growing, leak.processes_total), (2, 3));
        assert_eq!(leak.site.object_type, ObjectType::Array);
        assert_eq!(leak.site.file, None);
        assert_eq!(owner.holds.len(), 1);
        assert_eq!(owner.holds[0].site, untraced_site(ObjectType::Hash));
        assert_eq!(owner.holds[0].objects, 515, "median of 500 and 530");
        assert_eq!(
            owner.holds[0].objects_per_dump, 103.75,
            "median of 100 and 107.5"
        );
        assert_eq!(leak.retained_bytes, Some(51_500));
        assert!(leak.retained_bytes_per_dump.unwrap() > 9_000.0);
    }

    #[test]
    fn test_a_growing_owner_and_the_sites_it_holds_are_one_leak() {
        let processes = [
            owner_process("a", 1, &[100, 200, 300, 400, 500]),
            owner_process("a", 2, &[100, 200, 300, 400, 500]),
        ];
        let owner = growing_owners(&processes, &LeakOptions::default()).remove(0);
        let held = |path: &[&str], growing: bool| {
            let owner = untraced_owner(path, 1, 1);
            held_by((owner.owner, owner.root, owner.path), growing)
        };
        let mut hashes = suspect(0, ObjectType::Hash, 10.0);
        hashes.site = untraced_site(ObjectType::Hash);
        hashes.held_by = vec![held(&["vm", "Workload", "Array"], true)];
        let mut strings = suspect(0, ObjectType::String, 100.0);
        strings.site = untraced_site(ObjectType::String);
        // Held by a lookalike container that does not grow as a whole: a leak of its own.
        strings.held_by = vec![held(&["vm", "Other", "Array"], true)];
        let mut report = LeakReport {
            suspects: vec![strings, owner, hashes],
            processes_analysed: 2,
            dumps_analysed: 10,
        };
        group_by_owner(&mut report);
        let order: Vec<(ObjectType, bool, usize)> = report
            .suspects
            .iter()
            .map(|suspect| {
                (
                    suspect.site.object_type,
                    suspect.owner.is_some(),
                    suspect.leak,
                )
            })
            .collect();
        assert_eq!(
            order,
            vec![
                (ObjectType::String, false, 1),
                (ObjectType::Array, true, 2),
                (ObjectType::Hash, false, 2),
            ]
        );
    }

    #[test]
    fn test_a_leak_lists_its_allocating_lines_before_its_container() {
        let processes = [
            owner_process("a", 1, &[100, 200, 300, 400, 500]),
            owner_process("a", 2, &[100, 200, 300, 400, 500]),
        ];
        let owner = growing_owners(&processes, &LeakOptions::default()).remove(0);
        // A traced line whose growing owner is that container, ranked below it.
        let mut hashes = suspect(7, ObjectType::Hash, 1.0);
        hashes.held_by = vec![held_by(owner_suspect_key(&owner).unwrap(), true)];
        let mut report = LeakReport {
            suspects: vec![owner, hashes],
            processes_analysed: 2,
            dumps_analysed: 10,
        };
        group_by_owner(&mut report);
        let order: Vec<(Option<u32>, bool, usize)> = report
            .suspects
            .iter()
            .map(|suspect| (suspect.site.line, suspect.owner.is_some(), suspect.leak))
            .collect();
        assert_eq!(order, vec![(Some(7), false, 1), (None, true, 1)]);
    }
}
