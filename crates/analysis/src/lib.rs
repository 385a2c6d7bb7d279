//! Per-dump analysis with no I/O: aggregation in one streaming pass, the views people read
//! (totals by generation, roll-ups, the generation drill-down), the compact object index, and the
//! identity-aware diff, and the leak report across processes.
//!
//! The input is the parser's records ([`DumpAggregator`] is a [`heapfleet_dump::Visitor`]); the
//! output is plain data that the storage backends persist and the query side reads back.

#![warn(missing_docs)]

mod aggregate;
mod diff;
pub mod dominators;
mod heap_graph;
mod index;
mod leak_owners;
mod leaks;
mod ownership;
mod paths;
mod site;
pub mod varint;
mod views;

pub use aggregate::{
    DumpAggregates, DumpAggregator, DuplicatedString, MAX_DUPLICATED_STRINGS, SiteGenerationStats,
    Totals,
};
pub use diff::{DiffError, DiffResult, DiffRow, IndexedDump, diff};
pub use heap_graph::{HeapGraph, HeapGraphBuilder, HeapGraphError};
pub use index::{CHUNK_TARGET_BYTES, IndexEncoder, IndexEntry, IndexError, decode_chunk};
pub use leak_owners::{
    LeakRank, OwnerRowsAtDump, ProcessOwnerRows, ProcessOwnership, apply_ownership, bytes_growth,
    group_by_owner, growing_owners, memory_score, rank_suspects,
};
pub use leaks::{
    DumpSites, EvidencePoint, GroupDifference, GroupSummary, GrowingOwner, HeldBy, HeldSite,
    LeakAccumulator, LeakOptions, LeakReport, LeakSuspect, ProcessDumps, ProcessEvidence,
    SinceDump, SiteTrend, analyse_process, compare, compare_groups, leak_report,
};
pub use ownership::{
    DominatorNode, DumpOwnership, OwnerSite, OwnershipAnalysis, OwnershipOptions, Retained,
    RetainedGroup, RetainedSite, SiteOwner, owner_threshold,
};
pub use paths::{
    GraphBuilder, ObjectGraph, PathCluster, PathStep, PathTarget, RetainerPath, RetainerPaths,
    SignatureStep, retainer_paths,
};
pub use site::{SiteKey, UNKNOWN_SITE, gem_from_path, path_matches};
pub use views::{
    GenerationDetail, GenerationFilter, GenerationTotals, GroupBy, NO_CLASS, NO_GEM,
    NO_GENERATION_LABEL, RankBy, RollupRow, generation_detail, generation_totals, rollup,
};
