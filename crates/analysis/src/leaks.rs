//! The leak report: which allocation sites keep a rising floor of retained objects, in which
//! processes and on which hosts, and how fast.
//!
//! # What counts as a leak
//!
//! A process's heap holds four kinds of things at a site (see DESIGN.md): statics (allocated
//! once, then flat), slow dynamics (a cache that grows, then plateaus), fast dynamics (churn:
//! objects that come and go between dumps, in any amount) and leaks (objects that are kept
//! forever, so the number of survivors keeps rising). Only the last is a suspect.
//!
//! # The retained floor
//!
//! Counting a site's live objects per dump mixes survivors with churn. The floor separates
//! them. Every object carries its allocation generation (the GC count when it was allocated),
//! and a dump's *watermark* is the newest generation in it, the GC count at dump time. Objects
//! of an older generation existed when the dump was taken; objects of the watermark's own
//! generation may have been allocated just after it, before the next GC, so they are left out.
//! For dump `k` of a process and a site, the floor `F_k` is the smallest number, over every
//! later dump `j > k`, of that site's objects in dump `j` whose generation is below dump `k`'s
//! watermark: objects that existed at dump `k` and were still there in every later dump (as
//! counts, a lower bound). `F_k` is defined for every dump but the last.
//!
//! - a leak adds survivors in every interval: `F` rises at every step, to the end;
//! - a cache that plateaus adds survivors while it fills, then none: `F` rises, then stays flat;
//! - churn leaves no survivors (old objects die): `F` stays near zero however the live count
//!   jumps; a cache that replaces its entries likewise;
//! - statics are all at or below the first watermark: `F` is flat from the start.
//!
//! Dumps without generations (allocation tracing off) fall back to the smallest live count
//! from dump `k` on, a weaker floor that noisy churn can lift at the end; such sites need more
//! dumps to show persistence.
//!
//! # The score
//!
//! For a process and a site with `n` floor points (`n - 1` increments), all from dumps of
//! that process in time order:
//!
//! - `growth` = `(F_last - F_first) / (n - 1)`, objects per dump;
//! - `persistence` = the share of increments that are positive;
//! - `late` = the mean increment over the later half divided by the mean over all, capped at 1
//!   (a cache that filled early scores near 0, a steady leak near 1).
//!
//! The site grows in that process when `growth >= 1`, `persistence >= 0.5` and `late >= 0.3`,
//! and then scores `persistence * late * (log2(1 + growth) + 0.25 * log2(1 + bytes growth /
//! 1 KiB))`: logarithmic, so a fast leak ranks first but a slow one still ranks above anything
//! that does not grow (which scores 0).
//!
//! Across processes, a site's score is the median score of the processes where it grows, times
//! `sqrt(processes growing)` (more independent evidence), times `0.5 + 0.5 * share of the
//! processes having the site where it grows` (a leak on one host still ranks, a fluke in one
//! process of many does not rank high).

use std::collections::BTreeSet;

use foldhash::fast::RandomState;
use hashbrown::HashMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::SiteGenerationStats;
use crate::site::SiteKey;

/// One dump of a process, with its site rows.
#[derive(Debug, Clone)]
pub struct DumpSites {
    /// The dump's id.
    pub dump_id: String,
    /// When it was taken (Unix seconds).
    pub taken_at_unix: i64,
    /// The jobs counter at dump time, when known.
    pub jobs: Option<u64>,
    /// Its (site, generation) rows.
    pub sites: Vec<SiteGenerationStats>,
}

/// A process: where it ran, and its dumps in time order.
#[derive(Debug, Clone)]
pub struct ProcessDumps {
    /// The host.
    pub host: String,
    /// The pid.
    pub pid: u32,
    /// The process instance (start time or instance id; may be empty).
    pub instance: String,
    /// Its dumps, oldest first.
    pub dumps: Vec<DumpSites>,
}

/// Thresholds of the analysis (see the module docs); the defaults are what the product uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakOptions {
    /// Fewest dumps a process needs to be judged (three give two floor points).
    pub min_dumps: usize,
    /// Smallest floor growth, in objects per dump, that counts.
    pub min_growth_per_dump: f64,
    /// Smallest share of positive floor increments.
    pub min_persistence: f64,
    /// Smallest ratio of the later half's growth to the whole's.
    pub min_late_ratio: f64,
    /// Most growing processes listed as evidence per suspect (best first).
    pub max_evidence: usize,
}

impl Default for LeakOptions {
    fn default() -> LeakOptions {
        LeakOptions {
            min_dumps: 3,
            min_growth_per_dump: 1.0,
            min_persistence: 0.5,
            min_late_ratio: 0.3,
            max_evidence: 20,
        }
    }
}

/// One dump of a site's evidence series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidencePoint {
    /// The dump.
    pub dump_id: String,
    /// When it was taken.
    pub taken_at_unix: i64,
    /// The jobs counter then.
    pub jobs: Option<u64>,
    /// Live objects of the site in the dump.
    pub count: u64,
    /// Their bytes.
    pub memsize: u64,
    /// The retained floor at this dump (`None` for the last dump).
    pub retained_floor: Option<u64>,
}

/// How one site behaves in one process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteTrend {
    /// The site.
    pub site: SiteKey,
    /// Whether the site's floor keeps rising in this process.
    pub growing: bool,
    /// The process-level score (0 when not growing).
    pub score: f64,
    /// Floor growth in objects per dump.
    pub growth_per_dump: f64,
    /// Floor growth in bytes per dump.
    pub bytes_per_dump: f64,
    /// Floor growth in objects per hour, when the dumps span time.
    pub growth_per_hour: Option<f64>,
    /// Floor growth in bytes per hour.
    pub bytes_per_hour: Option<f64>,
    /// Floor growth per 1,000 jobs, when the dumps carry a jobs counter.
    pub growth_per_1000_jobs: Option<f64>,
    /// Share of positive floor increments.
    pub persistence: f64,
    /// Later-half growth over whole growth (capped at 1).
    pub late_ratio: f64,
    /// Index of the dump after which the floor first rose.
    pub since: Option<usize>,
    /// Whether the floor used generations (else live counts).
    pub by_generation: bool,
    /// Live objects of the site in the process's last dump.
    pub last_count: u64,
    /// The series, one point per dump, where the site grows (empty otherwise).
    pub series: Vec<EvidencePoint>,
}

/// A process's part in a suspect's evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEvidence {
    /// The host.
    pub host: String,
    /// The pid.
    pub pid: u32,
    /// The instance.
    pub instance: String,
    /// Whether the site grows there.
    pub growing: bool,
    /// The process-level score.
    pub score: f64,
    /// Floor growth per dump there.
    pub growth_per_dump: f64,
    /// The series.
    pub series: Vec<EvidencePoint>,
}

/// Where a suspect's growth was first seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinceDump {
    /// The dump after which the floor first rose.
    pub dump_id: String,
    /// When it was taken.
    pub taken_at_unix: i64,
    /// Its process's host.
    pub host: String,
    /// Its process's pid.
    pub pid: u32,
}

/// A site whose retained floor keeps rising in at least one process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeakSuspect {
    /// The site.
    pub site: SiteKey,
    /// The fleet-level score: higher is more certainly a leak (see the module docs).
    pub score: f64,
    /// How sure the growth is, whatever its size: the score without its growth term (the
    /// median of persistence x lateness over the growing processes, times `sqrt(processes
    /// growing)`, times `0.5 + 0.5 * share of the processes growing`).
    #[serde(default)]
    pub confidence: f64,
    /// Processes where the site grows.
    pub processes_growing: usize,
    /// Processes (with enough dumps) that have the site at all.
    pub processes_total: usize,
    /// Hosts of the growing processes, sorted.
    pub hosts_growing: Vec<String>,
    /// Hosts of every process that has the site.
    pub hosts_total: usize,
    /// Median floor growth per dump over the growing processes, in objects.
    pub growth_per_dump: f64,
    /// Median floor growth per dump over the growing processes, in bytes.
    pub bytes_per_dump: f64,
    /// Median growth per hour, in objects.
    pub growth_per_hour: Option<f64>,
    /// Median growth per hour, in bytes.
    pub bytes_per_hour: Option<f64>,
    /// Median growth per 1,000 jobs, in objects.
    pub growth_per_1000_jobs: Option<f64>,
    /// The earliest dump after which a growing process's floor rose.
    pub since: Option<SinceDump>,
    /// Retained bytes of the site at each growing process's last dump (median), where the
    /// ownership pass ran.
    #[serde(default)]
    pub retained_bytes: Option<u64>,
    /// Growth of those retained bytes per dump (median over the growing processes).
    #[serde(default)]
    pub retained_bytes_per_dump: Option<f64>,
    /// Who holds the site's objects, clustered across the growing processes: growing owners
    /// first, then the most bytes.
    #[serde(default)]
    pub held_by: Vec<HeldBy>,
    /// Suspects whose main owner is the same object are one leak: they share this number
    /// (1 for the first leak of the report). 0 before the report is grouped.
    #[serde(default)]
    pub leak: usize,
    /// Set when the suspect is a growing owner rather than an allocation site: a container
    /// whose holdings keep rising across its process's dumps (see
    /// [`crate::leak_owners::growing_owners`]). `site` is then the container's own site (only
    /// its type and class without allocation tracing), and the growth and bytes are what it
    /// holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<GrowingOwner>,
    /// The growing processes' series, best first, at most `max_evidence`. For a growing owner,
    /// each point counts the objects it holds (`count`) and its retained bytes (`memsize`).
    pub evidence: Vec<ProcessEvidence>,
}

/// A container whose holdings keep rising: where it sits and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrowingOwner {
    /// The GC root category that reaches it.
    pub root: String,
    /// Its signature from the root (see [`crate::SiteOwner::path`]).
    pub path: Vec<String>,
    /// The sites of what it holds, the fastest growing first.
    pub holds: Vec<HeldSite>,
}

/// Some of a site's objects that a growing owner holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldSite {
    /// The site.
    pub site: SiteKey,
    /// The objects held at the last dump (median over the owner's growing processes).
    pub objects: u64,
    /// Their growth per dump (median over the owner's growing processes).
    pub objects_per_dump: f64,
}

/// One owner of a suspect's objects, clustered across processes: the same owner site (or,
/// without allocation tracing, the same path from its root) in several processes is one entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldBy {
    /// The owner; `None` when GC roots hold the objects directly.
    pub owner: Option<crate::ownership::OwnerSite>,
    /// The GC root category that reaches it.
    pub root: String,
    /// Its signature from the root (see [`crate::SiteOwner::path`]).
    pub path: Vec<String>,
    /// The suspect's objects it holds at the last dump (median over its processes).
    pub objects: u64,
    /// Their retained bytes (median over its processes).
    pub bytes: u64,
    /// Growth of the objects it holds per dump (median over its processes).
    pub objects_per_dump: f64,
    /// Whether its holdings grow in most of its processes.
    pub growing: bool,
    /// Growing processes of the suspect where it holds the suspect's objects.
    pub processes: usize,
    /// Their hosts, sorted.
    pub hosts: Vec<String>,
}

/// The answer of [`leak_report`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeakReport {
    /// Suspects, best score first.
    pub suspects: Vec<LeakSuspect>,
    /// Processes with enough dumps to be judged.
    pub processes_analysed: usize,
    /// Dumps read.
    pub dumps_analysed: usize,
}

/// One of a site's rows in a process: (dump index, generation, count, memsize).
type SiteRow = (usize, Option<u32>, u64, u64);

/// Returns how every site behaves in `process`, in no particular order; empty when the process has
/// fewer than `options.min_dumps` dumps.
pub fn analyse_process(process: &ProcessDumps, options: &LeakOptions) -> Vec<SiteTrend> {
    let dumps = &process.dumps;
    if dumps.len() < options.min_dumps.max(3) {
        return Vec::new();
    }
    let watermarks: Vec<Option<u32>> = dumps
        .iter()
        .map(|dump| dump.sites.iter().filter_map(|row| row.generation).max())
        .collect();
    let by_generation = watermarks.iter().all(Option::is_some);
    // Site -> its rows in every dump, one list per site.
    // Hashed, not ordered: a process holds hundreds of sites whose keys share long path
    // prefixes, and the fleet report reads thousands of processes.
    let mut per_site: HashMap<&SiteKey, Vec<SiteRow>, RandomState> =
        HashMap::with_capacity_and_hasher(
            dumps.last().map_or(0, |dump| dump.sites.len()),
            RandomState::default(),
        );
    for (index, dump) in dumps.iter().enumerate() {
        for row in &dump.sites {
            per_site.entry(&row.site).or_default().push((
                index,
                row.generation,
                row.totals.count,
                row.totals.memsize,
            ));
        }
    }
    per_site
        .into_iter()
        .map(|(site, rows)| site_trend(site, &rows, &watermarks, by_generation, dumps, options))
        .collect()
}

/// The trend of one site from its rows in each dump.
fn site_trend(
    site: &SiteKey,
    rows: &[SiteRow],
    watermarks: &[Option<u32>],
    by_generation: bool,
    dumps: &[DumpSites],
    options: &LeakOptions,
) -> SiteTrend {
    let dump_count = dumps.len();
    let mut live = vec![(0u64, 0u64); dump_count];
    for &(index, _, count, memsize) in rows {
        live[index].0 += count;
        live[index].1 += memsize;
    }
    // The site uses generations only if its objects carry them.
    let site_has_generations = rows.iter().any(|row| row.1.is_some());
    let use_generations = by_generation && site_has_generations;
    let mut older = vec![(0u64, 0u64); dump_count];
    let mut floors: Vec<(u64, u64)> = Vec::with_capacity(dump_count - 1);
    for (k, watermark) in watermarks.iter().enumerate().take(dump_count - 1) {
        let floor = if use_generations {
            let watermark = watermark.unwrap_or(0);
            older.fill((0, 0));
            for &(index, generation, count, memsize) in rows {
                if index > k && generation.is_some_and(|generation| generation < watermark) {
                    older[index].0 += count;
                    older[index].1 += memsize;
                }
            }
            suffix_floor(&older, k + 1)
        } else {
            suffix_floor(&live, k)
        };
        floors.push(floor);
    }
    let shape = FloorShape::of(&floors);
    let FloorShape {
        growth,
        bytes_growth,
        persistence,
        late_ratio,
    } = shape;
    let first = floors[0];
    let last = floors[floors.len() - 1];
    let increments: Vec<f64> = floors
        .windows(2)
        .map(|pair| pair[1].0 as f64 - pair[0].0 as f64)
        .collect();
    let growing = shape.grows(use_generations, options);
    let score = if growing {
        persistence
            * late_ratio
            * ((1.0 + growth).log2() + 0.25 * (1.0 + bytes_growth.max(0.0) / 1024.0).log2())
    } else {
        0.0
    };
    // The floor covers dumps 0 ..= n-2: rates over that span.
    let span_first = &dumps[0];
    let span_last = &dumps[dump_count - 2];
    let hours = (span_last.taken_at_unix - span_first.taken_at_unix) as f64 / 3600.0;
    let total_growth = last.0 as f64 - first.0 as f64;
    let total_bytes = last.1 as f64 - first.1 as f64;
    let growth_per_hour = (hours > 0.0).then(|| total_growth / hours);
    let bytes_per_hour = (hours > 0.0).then(|| total_bytes / hours);
    let growth_per_1000_jobs = match (span_first.jobs, span_last.jobs) {
        (Some(start), Some(end)) if end > start => {
            Some(total_growth / (end - start) as f64 * 1000.0)
        }
        _ => None,
    };
    let since = increments.iter().position(|&step| step > 0.0);
    // Evidence is kept only where the site grows: a fleet has far more sites than suspects.
    let series = dumps
        .iter()
        .enumerate()
        .filter(|_| growing)
        .map(|(index, dump)| EvidencePoint {
            dump_id: dump.dump_id.clone(),
            taken_at_unix: dump.taken_at_unix,
            jobs: dump.jobs,
            count: live[index].0,
            memsize: live[index].1,
            retained_floor: floors.get(index).map(|floor| floor.0),
        })
        .collect();
    SiteTrend {
        site: site.clone(),
        last_count: live[dump_count - 1].0,
        growing,
        score,
        growth_per_dump: growth,
        bytes_per_dump: bytes_growth,
        growth_per_hour,
        bytes_per_hour,
        growth_per_1000_jobs,
        persistence,
        late_ratio,
        since,
        by_generation: use_generations,
        series,
    }
}

/// The smallest (count, bytes) of `values` from index `from` on: over live counts, the floor
/// at dump `from` without generations.
pub(crate) fn suffix_floor(values: &[(u64, u64)], from: usize) -> (u64, u64) {
    values[from..]
        .iter()
        .fold((u64::MAX, u64::MAX), |(count, memsize), &(c, m)| {
            (count.min(c), memsize.min(m))
        })
}

/// How a series of floors moves (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FloorShape {
    /// Objects per step, first floor to last.
    pub(crate) growth: f64,
    /// Bytes per step.
    pub(crate) bytes_growth: f64,
    /// Share of positive increments.
    pub(crate) persistence: f64,
    /// Later-half growth over the whole's, capped at 1.
    pub(crate) late_ratio: f64,
}

impl FloorShape {
    /// The shape of `floors` (objects, bytes), at least one.
    pub(crate) fn of(floors: &[(u64, u64)]) -> FloorShape {
        let increments: Vec<f64> = floors
            .windows(2)
            .map(|pair| pair[1].0 as f64 - pair[0].0 as f64)
            .collect();
        let steps = increments.len().max(1) as f64;
        let first = floors[0];
        let last = floors[floors.len() - 1];
        let growth = (last.0 as f64 - first.0 as f64) / steps;
        let persistence = increments.iter().filter(|&&step| step > 0.0).count() as f64 / steps;
        let late_ratio = if growth > 0.0 {
            let later = &increments[increments.len() / 2..];
            let later_mean = later.iter().sum::<f64>() / later.len().max(1) as f64;
            (later_mean / growth).clamp(0.0, 1.0)
        } else {
            0.0
        };
        FloorShape {
            growth,
            bytes_growth: (last.1 as f64 - first.1 as f64) / steps,
            persistence,
            late_ratio,
        }
    }

    /// Whether floors of this shape keep rising. Floors without generations need more dumps
    /// to tell a leak from noise at the tail.
    pub(crate) fn grows(&self, by_generation: bool, options: &LeakOptions) -> bool {
        let min_persistence = if by_generation {
            options.min_persistence
        } else {
            options.min_persistence.max(0.75)
        };
        self.growth >= options.min_growth_per_dump
            && self.persistence >= min_persistence
            && self.late_ratio >= options.min_late_ratio
    }
}

/// The median of `values` (0 for none).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn median_of_some(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let known: Vec<f64> = values.flatten().collect();
    (!known.is_empty()).then(|| median(known))
}

/// Ranks the sites of `processes` by how surely they leak, best first, at most `top`.
pub fn leak_report(processes: &[ProcessDumps], options: &LeakOptions, top: usize) -> LeakReport {
    let mut accumulator = LeakAccumulator::new(*options);
    for process in processes {
        accumulator.add_process(process);
    }
    accumulator.finish(top)
}

/// Where a process ran, as evidence names it.
#[derive(Debug, Clone)]
struct ProcessRef {
    host: String,
    pid: u32,
    instance: String,
}

/// What the report keeps of one site across processes: counts for every process that has it,
/// the whole trend only where it grows.
#[derive(Debug, Default)]
struct SiteAccumulator {
    processes_total: usize,
    hosts_total: BTreeSet<String>,
    growing: Vec<(ProcessRef, SiteTrend)>,
}

/// Builds a [`LeakReport`] one process at a time, so memory holds the fleet's sites and the
/// growing processes' series, never every dump's rows at once.
#[derive(Debug)]
pub struct LeakAccumulator {
    options: LeakOptions,
    sites: HashMap<SiteKey, SiteAccumulator, RandomState>,
    processes_analysed: usize,
    dumps_analysed: usize,
}

impl LeakAccumulator {
    /// An empty report.
    pub fn new(options: LeakOptions) -> LeakAccumulator {
        LeakAccumulator {
            options,
            sites: HashMap::default(),
            processes_analysed: 0,
            dumps_analysed: 0,
        }
    }

    /// Adds one process's dumps (oldest first).
    pub fn add_process(&mut self, process: &ProcessDumps) {
        self.dumps_analysed += process.dumps.len();
        let trends = analyse_process(process, &self.options);
        if trends.is_empty() {
            return;
        }
        self.processes_analysed += 1;
        for trend in trends {
            // A site key is cloned once per fleet, not once per process.
            if !self.sites.contains_key(&trend.site) {
                self.sites
                    .insert(trend.site.clone(), SiteAccumulator::default());
            }
            let Some(entry) = self.sites.get_mut(&trend.site) else {
                continue;
            };
            entry.processes_total += 1;
            if !entry.hosts_total.contains(&process.host) {
                entry.hosts_total.insert(process.host.clone());
            }
            if trend.growing {
                let process_ref = ProcessRef {
                    host: process.host.clone(),
                    pid: process.pid,
                    instance: process.instance.clone(),
                };
                entry.growing.push((process_ref, trend));
            }
        }
    }

    /// The report: suspects ranked best first, at most `top`.
    pub fn finish(self, top: usize) -> LeakReport {
        let max_evidence = self.options.max_evidence;
        let mut suspects: Vec<LeakSuspect> = self
            .sites
            .into_iter()
            .filter(|(_, site)| !site.growing.is_empty())
            .map(|(key, site)| suspect(key, site, max_evidence))
            .collect();
        suspects.sort_by(|left, right| {
            right
                .score
                .total_cmp(&left.score)
                .then_with(|| left.site.cmp(&right.site))
        });
        suspects.truncate(top);
        let mut report = LeakReport {
            suspects,
            processes_analysed: self.processes_analysed,
            dumps_analysed: self.dumps_analysed,
        };
        crate::leak_owners::group_by_owner(&mut report);
        report
    }
}

/// A site that grows in at least one process, scored across the fleet.
fn suspect(key: SiteKey, mut site: SiteAccumulator, max_evidence: usize) -> LeakSuspect {
    let growing = &site.growing;
    let processes_growing = growing.len();
    let share = processes_growing as f64 / site.processes_total.max(1) as f64;
    let breadth = (processes_growing as f64).sqrt() * (0.5 + 0.5 * share);
    let score = median(growing.iter().map(|(_, trend)| trend.score).collect()) * breadth;
    let confidence = median(
        growing
            .iter()
            .map(|(_, trend)| trend.persistence * trend.late_ratio)
            .collect(),
    ) * breadth;
    let hosts_growing: BTreeSet<&str> = growing
        .iter()
        .map(|(process, _)| process.host.as_str())
        .collect();
    let since = growing
        .iter()
        .filter_map(|(process, trend)| {
            let point = &trend.series[trend.since?];
            Some(SinceDump {
                dump_id: point.dump_id.clone(),
                taken_at_unix: point.taken_at_unix,
                host: process.host.clone(),
                pid: process.pid,
            })
        })
        .min_by(|left, right| {
            (left.taken_at_unix, &left.dump_id).cmp(&(right.taken_at_unix, &right.dump_id))
        });
    let head = LeakSuspect {
        site: key,
        score,
        confidence,
        retained_bytes: None,
        retained_bytes_per_dump: None,
        held_by: Vec::new(),
        leak: 0,
        owner: None,
        processes_growing,
        processes_total: site.processes_total,
        hosts_growing: hosts_growing.into_iter().map(str::to_owned).collect(),
        hosts_total: site.hosts_total.len(),
        growth_per_dump: median(growing.iter().map(|(_, t)| t.growth_per_dump).collect()),
        bytes_per_dump: median(growing.iter().map(|(_, t)| t.bytes_per_dump).collect()),
        growth_per_hour: median_of_some(growing.iter().map(|(_, t)| t.growth_per_hour)),
        bytes_per_hour: median_of_some(growing.iter().map(|(_, t)| t.bytes_per_hour)),
        growth_per_1000_jobs: median_of_some(growing.iter().map(|(_, t)| t.growth_per_1000_jobs)),
        since,
        evidence: Vec::new(),
    };
    site.growing
        .sort_by(|left, right| right.1.score.total_cmp(&left.1.score));
    let evidence = site
        .growing
        .into_iter()
        .take(max_evidence)
        .map(|(process, trend)| ProcessEvidence {
            host: process.host,
            pid: process.pid,
            instance: process.instance,
            growing: trend.growing,
            score: trend.score,
            growth_per_dump: trend.growth_per_dump,
            series: trend.series,
        })
        .collect();
    LeakSuspect { evidence, ..head }
}

/// One site's difference between two groups of processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupDifference {
    /// The site.
    pub site: SiteKey,
    /// Mean floor growth per dump over group A's processes (0 where the site is absent).
    pub a_growth_per_dump: f64,
    /// The same over group B.
    pub b_growth_per_dump: f64,
    /// Mean live count in each process's last dump, group A.
    pub a_count: f64,
    /// The same, group B.
    pub b_count: f64,
    /// B's growth minus A's.
    pub delta_growth_per_dump: f64,
    /// B's count minus A's.
    pub delta_count: f64,
}

/// One group's per-site growth and size, built one process at a time (see [`compare`]).
#[derive(Debug)]
pub struct GroupSummary {
    options: LeakOptions,
    sums: HashMap<SiteKey, (f64, f64)>,
    processes: usize,
}

impl GroupSummary {
    /// An empty group.
    pub fn new(options: LeakOptions) -> GroupSummary {
        GroupSummary {
            options,
            sums: HashMap::new(),
            processes: 0,
        }
    }

    /// Adds one process's dumps (oldest first); a process with too few dumps is skipped.
    pub fn add_process(&mut self, process: &ProcessDumps) {
        let trends = analyse_process(process, &self.options);
        if trends.is_empty() {
            return;
        }
        self.processes += 1;
        for trend in trends {
            let last_count = trend.last_count as f64;
            let entry = self.sums.entry(trend.site).or_default();
            entry.0 += trend.growth_per_dump.max(0.0);
            entry.1 += last_count;
        }
    }

    /// Processes judged.
    pub fn processes(&self) -> usize {
        self.processes
    }

    /// Per site: mean growth per dump and mean last count over the group's processes.
    fn means(&self) -> HashMap<&SiteKey, (f64, f64)> {
        let processes = self.processes.max(1) as f64;
        self.sums
            .iter()
            .map(|(site, (growth, count))| (site, (growth / processes, count / processes)))
            .collect()
    }
}

/// Per-site differences between two groups, ranked by how much B's growth differs from A's,
/// then by how much B's count does; at most `top`.
pub fn compare(a: &GroupSummary, b: &GroupSummary, top: usize) -> Vec<GroupDifference> {
    let means_a = a.means();
    let means_b = b.means();
    let sites: BTreeSet<&SiteKey> = means_a.keys().chain(means_b.keys()).copied().collect();
    let mut rows: Vec<GroupDifference> = sites
        .into_iter()
        .map(|site| {
            let (a_growth, a_count) = means_a.get(site).copied().unwrap_or_default();
            let (b_growth, b_count) = means_b.get(site).copied().unwrap_or_default();
            GroupDifference {
                site: site.clone(),
                a_growth_per_dump: a_growth,
                b_growth_per_dump: b_growth,
                a_count,
                b_count,
                delta_growth_per_dump: b_growth - a_growth,
                delta_count: b_count - a_count,
            }
        })
        .collect();
    rows.sort_by(|left, right| {
        right
            .delta_growth_per_dump
            .abs()
            .total_cmp(&left.delta_growth_per_dump.abs())
            .then(right.delta_count.abs().total_cmp(&left.delta_count.abs()))
            .then_with(|| left.site.cmp(&right.site))
    });
    rows.truncate(top);
    rows
}

/// [`compare`] over two slices of processes.
pub fn compare_groups(
    a: &[ProcessDumps],
    b: &[ProcessDumps],
    options: &LeakOptions,
    top: usize,
) -> Vec<GroupDifference> {
    let mut group_a = GroupSummary::new(*options);
    let mut group_b = GroupSummary::new(*options);
    a.iter().for_each(|process| group_a.add_process(process));
    b.iter().for_each(|process| group_b.add_process(process));
    compare(&group_a, &group_b, top)
}

#[cfg(test)]
mod tests {
    use heapfleet_dump::ObjectType;

    use super::*;
    use crate::aggregate::Totals;

    fn site(line: u32) -> SiteKey {
        SiteKey {
            file: Some("app/jobs/work.rb".to_owned()),
            line: Some(line),
            object_type: ObjectType::String,
            class_name: Some("String".to_owned()),
        }
    }

    /// Builds a process whose dump `k` (taken every 10 minutes, GC watermark 10k + 9) holds,
    /// for each `(site line, rows)`, the given (generation, count) rows.
    /// A site line and its (generation, count) rows in one dump.
    type TestSite = (u32, Vec<(u32, u64)>);

    fn process(host: &str, pid: u32, dumps: Vec<Vec<TestSite>>) -> ProcessDumps {
        ProcessDumps {
            host: host.to_owned(),
            pid,
            instance: String::new(),
            dumps: dumps
                .into_iter()
                .enumerate()
                .map(|(k, sites)| {
                    let mut rows: Vec<SiteGenerationStats> = sites
                        .into_iter()
                        .flat_map(|(line, generations)| {
                            generations.into_iter().map(move |(generation, count)| {
                                SiteGenerationStats {
                                    site: site(line),
                                    generation: Some(generation),
                                    totals: Totals {
                                        count,
                                        memsize: count * 40,
                                        bytesize: 0,
                                        references: 0,
                                    },
                                }
                            })
                        })
                        .collect();
                    // The watermark of dump k.
                    rows.push(SiteGenerationStats {
                        site: site(1),
                        generation: Some(k as u32 * 10 + 9),
                        totals: Totals {
                            count: 1,
                            memsize: 40,
                            bytesize: 0,
                            references: 0,
                        },
                    });
                    DumpSites {
                        dump_id: format!("d-{pid}-{k}"),
                        taken_at_unix: 1_800_000_000 + k as i64 * 600,
                        jobs: Some(k as u64 * 100),
                        sites: rows,
                    }
                })
                .collect(),
        }
    }

    /// Dump k of a leak at `line`: 10 survivors from each interval so far (generation 10i+5).
    fn leak_rows(line: u32, k: usize, per_interval: u64) -> TestSite {
        (
            line,
            (0..=k).map(|i| (i as u32 * 10 + 5, per_interval)).collect(),
        )
    }

    /// Dump k of churn at `line`: `amount` objects, all from the newest interval.
    fn churn_rows(line: u32, k: usize, amount: u64) -> TestSite {
        (line, vec![(k as u32 * 10 + 5, amount)])
    }

    /// Dump k of a cache that fills over 3 intervals, then stops.
    fn plateau_rows(line: u32, k: usize) -> TestSite {
        (
            line,
            (0..=k.min(2)).map(|i| (i as u32 * 10 + 5, 50)).collect(),
        )
    }

    fn fleet_process(host: &str, pid: u32, noise: &[u64]) -> ProcessDumps {
        process(
            host,
            pid,
            (0..8)
                .map(|k| {
                    vec![
                        leak_rows(10, k, 10),
                        churn_rows(20, k, noise[k % noise.len()]),
                        plateau_rows(30, k),
                        (40, vec![(1, 5_000)]),
                    ]
                })
                .collect(),
        )
    }

    #[test]
    fn test_analyse_process_tells_a_leak_from_churn_plateau_and_statics() {
        let trends = analyse_process(
            &fleet_process("a", 1, &[900, 10, 600, 0, 300]),
            &LeakOptions::default(),
        );
        let by_line: HashMap<u32, &SiteTrend> = trends
            .iter()
            .map(|trend| (trend.site.line.unwrap(), trend))
            .collect();
        let leak = by_line[&10];
        assert!(leak.growing, "{leak:?}");
        assert!(
            (leak.growth_per_dump - 10.0).abs() < 1e-9,
            "{}",
            leak.growth_per_dump
        );
        assert_eq!(leak.growth_per_1000_jobs, Some(100.0));
        assert!((leak.growth_per_hour.unwrap() - 60.0).abs() < 1e-9);
        assert_eq!(leak.since, Some(0));
        for decoy in [20, 30, 40] {
            assert!(
                !by_line[&decoy].growing,
                "line {decoy}: {:?}",
                by_line[&decoy]
            );
            assert_eq!(by_line[&decoy].score, 0.0);
        }
        assert_eq!(
            leak.series
                .iter()
                .map(|point| point.retained_floor)
                .collect::<Vec<_>>(),
            vec![
                Some(10),
                Some(20),
                Some(30),
                Some(40),
                Some(50),
                Some(60),
                Some(70),
                None
            ]
        );
    }

    #[test]
    fn test_leak_report_ranks_leaks_and_attributes_hosts() {
        let mut processes = vec![
            fleet_process("host-a", 1, &[5, 500]),
            fleet_process("host-a", 2, &[700, 0, 30]),
            fleet_process("host-b", 3, &[1, 2, 3]),
        ];
        // A leak on host-b only, at line 50.
        for dump in 0..8 {
            let (line, rows) = leak_rows(50, dump, 3);
            for (generation, count) in rows {
                processes[2].dumps[dump].sites.push(SiteGenerationStats {
                    site: site(line),
                    generation: Some(generation),
                    totals: Totals {
                        count,
                        memsize: count * 40,
                        bytesize: 0,
                        references: 0,
                    },
                });
            }
        }
        let report = leak_report(&processes, &LeakOptions::default(), 10);
        assert_eq!(report.processes_analysed, 3);
        assert_eq!(report.dumps_analysed, 24);
        let lines: Vec<u32> = report
            .suspects
            .iter()
            .map(|suspect| suspect.site.line.unwrap())
            .collect();
        assert_eq!(
            lines,
            vec![10, 50],
            "only the leaks are suspects, the fleet-wide one first"
        );
        let everywhere = &report.suspects[0];
        assert_eq!(
            (everywhere.processes_growing, everywhere.processes_total),
            (3, 3)
        );
        assert_eq!(everywhere.hosts_growing, vec!["host-a", "host-b"]);
        let one_host = &report.suspects[1];
        assert_eq!(one_host.hosts_growing, vec!["host-b"]);
        assert_eq!(one_host.processes_growing, 1);
        assert_eq!(one_host.evidence[0].pid, 3);
        assert!(one_host.since.is_some());
    }

    #[test]
    fn test_compare_groups_puts_the_changed_site_first() {
        let before = vec![fleet_process("a", 1, &[5]), fleet_process("a", 2, &[9])];
        let mut after = vec![fleet_process("a", 3, &[5]), fleet_process("a", 4, &[9])];
        for process in &mut after {
            for (k, dump) in process.dumps.iter_mut().enumerate() {
                let (line, rows) = leak_rows(60, k, 7);
                for (generation, count) in rows {
                    dump.sites.push(SiteGenerationStats {
                        site: site(line),
                        generation: Some(generation),
                        totals: Totals {
                            count,
                            memsize: count * 40,
                            bytesize: 0,
                            references: 0,
                        },
                    });
                }
            }
        }
        let rows = compare_groups(&before, &after, &LeakOptions::default(), 5);
        assert_eq!(rows[0].site.line, Some(60));
        assert!((rows[0].delta_growth_per_dump - 7.0).abs() < 1e-9);
        assert!(rows[1].delta_growth_per_dump.abs() < 1e-9);
    }

    /// A process whose dumps carry no generations (allocation tracing off): dump k holds
    /// `counts[k]` objects at each site line.
    fn untraced_process(sites: &[(u32, Vec<u64>)]) -> ProcessDumps {
        let dumps = sites[0].1.len();
        ProcessDumps {
            host: "a".to_owned(),
            pid: 1,
            instance: String::new(),
            dumps: (0..dumps)
                .map(|k| DumpSites {
                    dump_id: format!("d-{k}"),
                    taken_at_unix: 1_800_000_000 + k as i64 * 600,
                    jobs: None,
                    sites: sites
                        .iter()
                        .map(|(line, counts)| SiteGenerationStats {
                            site: site(*line),
                            generation: None,
                            totals: Totals {
                                count: counts[k],
                                memsize: counts[k] * 40,
                                bytesize: 0,
                                references: 0,
                            },
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn test_without_generations_a_steady_rise_counts_and_noise_does_not() {
        let process = untraced_process(&[
            (10, vec![10, 20, 30, 40, 50, 60, 70, 80]),
            (20, vec![500, 20, 700, 0, 300, 90, 650, 900]),
            (30, vec![100, 200, 300, 300, 300, 300, 300, 300]),
        ]);
        let trends = analyse_process(&process, &LeakOptions::default());
        let by_line: HashMap<u32, &SiteTrend> = trends
            .iter()
            .map(|trend| (trend.site.line.unwrap(), trend))
            .collect();
        assert!(by_line[&10].growing, "{:?}", by_line[&10]);
        assert!(!by_line[&10].by_generation);
        assert_eq!(by_line[&10].growth_per_1000_jobs, None, "no jobs counter");
        assert!(!by_line[&20].growing, "noisy churn: {:?}", by_line[&20]);
        assert!(!by_line[&30].growing, "a plateau: {:?}", by_line[&30]);
    }

    #[test]
    fn test_too_few_dumps_are_not_judged() {
        let short = process("a", 1, (0..2).map(|k| vec![leak_rows(10, k, 10)]).collect());
        assert!(analyse_process(&short, &LeakOptions::default()).is_empty());
        let report = leak_report(&[short], &LeakOptions::default(), 10);
        assert_eq!(report.processes_analysed, 0);
        assert!(report.suspects.is_empty());
    }
}
