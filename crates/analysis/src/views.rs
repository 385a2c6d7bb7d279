//! Per-dump views computed from stored (site, generation) rows: totals by generation, roll-ups
//! by site, file, gem, class, type or generation, and the generation drill-down.
//!
//! Objects without a generation (allocated before tracing started, or with tracing off) form
//! their own bucket and count in every total: heapy leaves their memory out of its total.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::{DuplicatedString, SiteGenerationStats, Totals};
use crate::site::UNKNOWN_SITE;

/// The totals of one generation bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationTotals {
    /// The generation, `None` for objects without one.
    pub generation: Option<u32>,
    /// Totals of the bucket.
    #[serde(flatten)]
    pub totals: Totals,
}

/// Returns one row per generation bucket (the `None` bucket last) and the grand total.
pub fn generation_totals(rows: &[SiteGenerationStats]) -> (Vec<GenerationTotals>, Totals) {
    let mut buckets: BTreeMap<(bool, u32), Totals> = BTreeMap::new();
    let mut grand_total = Totals::default();
    for row in rows {
        let key = (row.generation.is_none(), row.generation.unwrap_or(0));
        buckets.entry(key).or_default().add(&row.totals);
        grand_total.add(&row.totals);
    }
    let generations = buckets
        .into_iter()
        .map(|((is_none, generation), totals)| GenerationTotals {
            generation: (!is_none).then_some(generation),
            totals,
        })
        .collect();
    (generations, grand_total)
}

/// What to group rows by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// `file:line`.
    Site,
    /// Object type and `file:line`.
    TypeSite,
    /// File.
    File,
    /// Gem, from the file's path (`(app or stdlib)` when the path is in no gem).
    Gem,
    /// Class name.
    Class,
    /// Object type.
    Type,
    /// Allocation generation.
    Generation,
}

/// What to rank rows by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// Bytes held.
    Memsize,
    /// Object count.
    Count,
    /// Outgoing references.
    References,
}

/// One group's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupRow {
    /// The group's label (a site, file, gem, class, type or generation).
    pub key: String,
    /// Totals of the group.
    #[serde(flatten)]
    pub totals: Totals,
}

/// Label of objects whose file is in no gem.
pub const NO_GEM: &str = "(app or stdlib)";
/// Label of objects whose class is unknown.
pub const NO_CLASS: &str = "(unknown class)";
/// Label of objects without a generation.
pub const NO_GENERATION_LABEL: &str = "(none)";

fn group_key(row: &SiteGenerationStats, group_by: GroupBy) -> String {
    let site = &row.site;
    match group_by {
        GroupBy::Site => site.location(),
        GroupBy::TypeSite => format!("{} {}", site.object_type, site.location()),
        GroupBy::File => site.file.clone().unwrap_or_else(|| UNKNOWN_SITE.to_owned()),
        GroupBy::Gem => site.gem().unwrap_or(NO_GEM).to_owned(),
        GroupBy::Class => site
            .class_name
            .clone()
            .unwrap_or_else(|| NO_CLASS.to_owned()),
        GroupBy::Type => site.object_type.to_string(),
        GroupBy::Generation => row.generation.map_or_else(
            || NO_GENERATION_LABEL.to_owned(),
            |generation| generation.to_string(),
        ),
    }
}

/// Which generation buckets a view covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationFilter {
    /// Every object.
    All,
    /// Objects allocated in this generation.
    Only(u32),
    /// Objects without a generation.
    Untracked,
}

impl GenerationFilter {
    /// Returns whether a row's generation passes.
    pub fn matches(self, generation: Option<u32>) -> bool {
        match self {
            GenerationFilter::All => true,
            GenerationFilter::Only(wanted) => generation == Some(wanted),
            GenerationFilter::Untracked => generation.is_none(),
        }
    }
}

/// Groups rows, ranks the groups (ties broken by label) and keeps the top `top` of them.
pub fn rollup(
    rows: &[SiteGenerationStats],
    group_by: GroupBy,
    filter: GenerationFilter,
    rank_by: RankBy,
    top: usize,
) -> Vec<RollupRow> {
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    for row in rows.iter().filter(|row| filter.matches(row.generation)) {
        groups
            .entry(group_key(row, group_by))
            .or_default()
            .add(&row.totals);
    }
    let mut ranked: Vec<RollupRow> = groups
        .into_iter()
        .map(|(key, totals)| RollupRow { key, totals })
        .collect();
    let rank = |totals: &Totals| match rank_by {
        RankBy::Memsize => (totals.memsize, totals.count),
        RankBy::Count => (totals.count, totals.memsize),
        RankBy::References => (totals.references, totals.count),
    };
    // Stable sort on an already label-ordered list keeps ties in label order.
    ranked.sort_by_key(|row| std::cmp::Reverse(rank(&row.totals)));
    ranked.truncate(top);
    ranked
}

/// The generation drill-down: what one generation (or every object) is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationDetail {
    /// Totals of the covered objects.
    pub totals: Totals,
    /// Top sites by bytes held.
    pub by_memsize: Vec<RollupRow>,
    /// Top sites by object count.
    pub by_count: Vec<RollupRow>,
    /// Top type + site pairs by object count.
    pub by_type_site: Vec<RollupRow>,
    /// Top sites by outgoing references.
    pub reference_heavy: Vec<RollupRow>,
    /// Most wasteful duplicated strings.
    pub duplicated_strings: Vec<DuplicatedString>,
}

/// Returns the drill-down for the generations `filter` selects, `top` rows per list.
pub fn generation_detail(
    rows: &[SiteGenerationStats],
    duplicated_strings: &[DuplicatedString],
    filter: GenerationFilter,
    top: usize,
) -> GenerationDetail {
    let mut totals = Totals::default();
    for row in rows.iter().filter(|row| filter.matches(row.generation)) {
        totals.add(&row.totals);
    }
    let mut reference_heavy = rollup(rows, GroupBy::Site, filter, RankBy::References, top);
    reference_heavy.retain(|row| row.totals.references > 0);
    GenerationDetail {
        totals,
        by_memsize: rollup(rows, GroupBy::Site, filter, RankBy::Memsize, top),
        by_count: rollup(rows, GroupBy::Site, filter, RankBy::Count, top),
        by_type_site: rollup(rows, GroupBy::TypeSite, filter, RankBy::Count, top),
        reference_heavy,
        duplicated_strings: duplicated_strings
            .iter()
            .filter(|duplicate| filter.matches(duplicate.generation))
            .take(top)
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use heapfleet_dump::ObjectType;

    use super::*;
    use crate::site::SiteKey;

    fn row(
        file: &str,
        line: u32,
        object_type: ObjectType,
        generation: Option<u32>,
        count: u64,
        memsize: u64,
    ) -> SiteGenerationStats {
        SiteGenerationStats {
            site: SiteKey {
                file: Some(file.to_owned()),
                line: Some(line),
                object_type,
                class_name: None,
            },
            generation,
            totals: Totals {
                count,
                memsize,
                bytesize: 0,
                references: count,
            },
        }
    }

    fn rows() -> Vec<SiteGenerationStats> {
        vec![
            row(
                "/gems/rack-2.2.8/lib/rack.rb",
                1,
                ObjectType::String,
                Some(3),
                10,
                400,
            ),
            row(
                "/gems/rack-2.2.8/lib/rack.rb",
                1,
                ObjectType::String,
                Some(4),
                5,
                200,
            ),
            row("/app/a.rb", 2, ObjectType::Hash, Some(4), 1, 1000),
            row("/app/a.rb", 9, ObjectType::Array, None, 7, 280),
        ]
    }

    #[test]
    fn test_generation_totals_include_untracked_objects() {
        let (generations, total) = generation_totals(&rows());
        let labels: Vec<Option<u32>> = generations.iter().map(|bucket| bucket.generation).collect();
        assert_eq!(labels, vec![Some(3), Some(4), None]);
        assert_eq!(generations[2].totals.memsize, 280);
        assert_eq!(total.count, 23);
        assert_eq!(total.memsize, 1880);
    }

    #[test]
    fn test_rollup_groups_ranks_and_filters() {
        let by_gem = rollup(
            &rows(),
            GroupBy::Gem,
            GenerationFilter::All,
            RankBy::Count,
            10,
        );
        assert_eq!(by_gem[0].key, "rack");
        assert_eq!(by_gem[0].totals.count, 15);
        assert_eq!(by_gem[1].key, NO_GEM);

        let generation_four = rollup(
            &rows(),
            GroupBy::Site,
            GenerationFilter::Only(4),
            RankBy::Memsize,
            1,
        );
        assert_eq!(generation_four.len(), 1);
        assert_eq!(generation_four[0].key, "/app/a.rb:2");

        let untracked = rollup(
            &rows(),
            GroupBy::Type,
            GenerationFilter::Untracked,
            RankBy::Count,
            10,
        );
        assert_eq!(
            untracked,
            vec![RollupRow {
                key: "ARRAY".to_owned(),
                totals: rows()[3].totals
            }]
        );
    }

    #[test]
    fn test_generation_detail_lists_each_view() {
        let detail = generation_detail(&rows(), &[], GenerationFilter::Only(4), 10);
        assert_eq!(detail.totals.count, 6);
        assert_eq!(detail.by_count[0].key, "/gems/rack-2.2.8/lib/rack.rb:1");
        assert_eq!(detail.by_memsize[0].key, "/app/a.rb:2");
        assert_eq!(
            detail.by_type_site[0].key,
            "STRING /gems/rack-2.2.8/lib/rack.rb:1"
        );
        assert_eq!(detail.reference_heavy.len(), 2);
    }
}
