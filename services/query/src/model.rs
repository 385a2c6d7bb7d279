//! What the queries answer, in domain types: the same values whether they were computed in
//! this process (the embedded data directory) or came over gRPC from a query service.

use heapfleet_analysis::{
    DiffRow, GenerationDetail, GenerationFilter, GenerationTotals, GroupBy, RankBy, RollupRow,
    Totals,
};
use heapfleet_catalog::DumpRecord;
use serde::{Deserialize, Serialize};

/// What the parser saw in a dump.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParseSummary {
    /// Decompressed bytes parsed.
    pub bytes: u64,
    /// Lines seen, bad ones included.
    pub lines: u64,
    /// Heap objects.
    pub objects: u64,
    /// ROOT lines.
    pub roots: u64,
    /// SHAPE lines.
    pub shapes: u64,
    /// Bad lines, repaired or skipped.
    pub bad_lines: u64,
    /// Bad lines repaired and used.
    pub repaired_lines: u64,
    /// Bad lines skipped.
    pub skipped_lines: u64,
    /// Whether the dump stopped early.
    pub truncated: bool,
    /// The first bad lines.
    pub bad_line_samples: Vec<BadLineSample>,
}

/// One bad line: where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadLineSample {
    /// 1-based line number in the decompressed dump.
    pub line_number: u64,
    /// Why it is bad, for people.
    pub reason: String,
}

impl std::fmt::Display for BadLineSample {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "line {}: {}", self.line_number, self.reason)
    }
}

impl From<&heapfleet_dump::ParseStats> for ParseSummary {
    fn from(stats: &heapfleet_dump::ParseStats) -> ParseSummary {
        ParseSummary {
            bytes: stats.bytes,
            lines: stats.lines,
            objects: stats.objects,
            roots: stats.roots,
            shapes: stats.shapes,
            bad_lines: stats.bad_lines,
            repaired_lines: stats.repaired_lines,
            skipped_lines: stats.skipped_lines,
            truncated: stats.truncated,
            bad_line_samples: stats
                .bad_line_samples
                .iter()
                .map(|bad| BadLineSample {
                    line_number: bad.line_number,
                    reason: bad.reason.to_string(),
                })
                .collect(),
        }
    }
}

/// One dump's overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpSummary {
    /// The dump.
    pub dump: DumpRecord,
    /// Totals per generation, ascending, the no-generation bucket last.
    pub generations: Vec<GenerationTotals>,
    /// Totals over every object.
    pub total: Totals,
    /// SHAPE records (not heap objects).
    pub shapes: Totals,
    /// GC-root categories and their references.
    pub roots: Vec<(String, u64)>,
    /// What the parser saw.
    pub parse: ParseSummary,
}

/// A roll-up of one dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpRollup {
    /// The dump.
    pub dump: DumpRecord,
    /// Ranked groups.
    pub rows: Vec<RollupRow>,
}

/// The drill-down of one dump's generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpGenerationDetail {
    /// The dump.
    pub dump: DumpRecord,
    /// The detail.
    pub detail: GenerationDetail,
}

/// A diff of dumps of one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpDiff {
    /// The dumps, in time order.
    pub dumps: Vec<DumpRecord>,
    /// Retained objects per site, most bytes first, cut to the requested top.
    pub rows: Vec<DiffRow>,
    /// Totals over every row (also those cut).
    pub total: Totals,
    /// Rows before the cut.
    pub row_count: usize,
}

/// How to roll a dump up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupQuery {
    /// The grouping.
    pub by: GroupBy,
    /// Which generations.
    pub generations: GenerationFilter,
    /// The ranking.
    pub rank: RankBy,
    /// How many groups.
    pub top: usize,
}

/// Which dumps a listing returns (the tenant is the reader's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpQuery {
    /// Only this host.
    pub host: Option<String>,
    /// Only this pid.
    pub pid: Option<u32>,
    /// Only this role.
    pub role: Option<String>,
    /// Only dumps with all these labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Only dumps taken at or after (Unix seconds).
    pub taken_after: Option<i64>,
    /// Only dumps taken before (Unix seconds).
    pub taken_before: Option<i64>,
    /// Only dumps in this state.
    pub status: Option<heapfleet_catalog::DumpStatusKind>,
}

/// Two groups' per-site differences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupComparison {
    /// Processes judged in group A.
    pub a_processes: usize,
    /// Processes judged in group B.
    pub b_processes: usize,
    /// Differences, most changed first.
    pub rows: Vec<heapfleet_analysis::GroupDifference>,
}

/// One dump of a site's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// The dump.
    pub dump_id: String,
    /// When it was taken.
    pub taken_at_unix: i64,
    /// The jobs counter then.
    pub jobs: Option<u64>,
    /// Live objects of the site.
    pub count: u64,
    /// Their bytes.
    pub memsize: u64,
}

/// A site's timeline in one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTimeline {
    /// The host.
    pub host: String,
    /// The pid.
    pub pid: u32,
    /// The instance.
    pub instance: String,
    /// One point per dump, oldest first.
    pub points: Vec<TimelinePoint>,
}

/// A site's timeline across the selected processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteTimeline {
    /// The file as asked (matched as a trailing part of each site's path).
    pub file: String,
    /// The line.
    pub line: u32,
    /// One timeline per process that has dumps in scope.
    pub processes: Vec<ProcessTimeline>,
}

/// Retainer paths in one dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpRetainerPaths {
    /// The dump.
    pub dump: DumpRecord,
    /// The answer.
    #[serde(flatten)]
    pub paths: heapfleet_analysis::RetainerPaths,
}

/// What a retained-size listing groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetainedBy {
    /// Allocation site, with owners.
    Site,
    /// Class name.
    Class,
    /// Object type.
    Type,
}

/// One row of a retained-size listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainedRow {
    /// The site's location, the class name or the type name.
    pub key: String,
    /// The site, for rows by site.
    pub site: Option<heapfleet_analysis::SiteKey>,
    /// The sizes.
    #[serde(flatten)]
    pub retained: heapfleet_analysis::Retained,
    /// The site's largest owners, for rows by site.
    pub owners: Vec<heapfleet_analysis::SiteOwner>,
}

/// A dump's retained sizes, from its ownership pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpRetained {
    /// The dump.
    pub dump: DumpRecord,
    /// Heap objects in the dump.
    pub objects: u64,
    /// Objects a GC root reaches.
    pub reachable_objects: u64,
    /// Their bytes.
    pub reachable_bytes: u64,
    /// What the rows group by.
    pub by: RetainedBy,
    /// Most retained bytes first.
    pub rows: Vec<RetainedRow>,
}

impl DumpRetained {
    /// The listing of `dump`'s ownership results by `by`, `top` rows.
    pub fn from_ownership(
        dump: DumpRecord,
        ownership: heapfleet_analysis::DumpOwnership,
        by: RetainedBy,
        top: usize,
    ) -> DumpRetained {
        let rows: Vec<RetainedRow> = match by {
            RetainedBy::Site => ownership
                .sites
                .into_iter()
                .take(top)
                .map(|row| RetainedRow {
                    key: row.site.location(),
                    site: Some(row.site),
                    retained: row.retained,
                    owners: row.owners,
                })
                .collect(),
            RetainedBy::Class | RetainedBy::Type => {
                let groups = if by == RetainedBy::Class {
                    ownership.classes
                } else {
                    ownership.types
                };
                groups
                    .into_iter()
                    .take(top)
                    .map(|group| RetainedRow {
                        key: group.key,
                        site: None,
                        retained: group.retained,
                        owners: Vec::new(),
                    })
                    .collect()
            }
        };
        DumpRetained {
            dump,
            objects: ownership.objects,
            reachable_objects: ownership.reachable_objects,
            reachable_bytes: ownership.reachable_bytes,
            by,
            rows,
        }
    }
}

/// A dump's dominator tree, or part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpDominators {
    /// The dump.
    pub dump: DumpRecord,
    /// Objects a GC root reaches.
    pub reachable_objects: u64,
    /// Their bytes.
    pub reachable_bytes: u64,
    /// Depth first, the largest child first.
    pub nodes: Vec<heapfleet_analysis::DominatorNode>,
}

/// Which part of a dominator tree to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DominatorsQuery {
    /// The object to start from; `None`: the roots.
    pub from_address: Option<u64>,
    /// Levels listed.
    pub depth: u32,
    /// Children listed per node, the largest first.
    pub top: usize,
}
