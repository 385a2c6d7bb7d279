//! heapfleet against heapy (Debian's ruby-heapy) on the same real dumps: per-generation counts
//! and per-site counts within a generation must be equal wherever heapy is right. Where heapy is
//! wrong (the memory of objects without a generation, ROOT lines counted as objects), the test
//! pins heapfleet's answer to an independent count made with serde_json.

use std::collections::BTreeMap;
use std::path::PathBuf;

use heapfleet_analysis::{
    GenerationFilter, GroupBy, RankBy, UNKNOWN_SITE, generation_totals, rollup,
};
use heapfleet_tests::{
    aggregate_file, count_with_serde_json, files_with_suffix, fixture, heapy_oracle, tool_available,
};

fn fixture_dumps() -> Vec<PathBuf> {
    let mut dumps = files_with_suffix(&fixture("dumps/small"), ".dump").unwrap();
    dumps.extend(files_with_suffix(&fixture("dumps/series"), ".dump.gz").unwrap());
    assert!(dumps.len() >= 4, "fixtures missing: {dumps:?}");
    dumps
}

#[test]
fn test_generation_counts_equal_heapy_where_heapy_is_right() {
    if !tool_available("ruby") {
        return;
    }
    for dump in fixture_dumps() {
        let ours = aggregate_file(&dump).unwrap().aggregates;
        let (generations, _) = generation_totals(&ours.sites);
        let heapy = heapy_oracle(&["generations", dump.to_str().unwrap()]).unwrap();
        let heapy: BTreeMap<String, u64> = serde_json::from_value(heapy).unwrap();

        let mut expected_none = ours.parse.roots; // heapy counts ROOT lines as objects...
        for bucket in &generations {
            match bucket.generation {
                // ...and merges generation 0 into the bucket of objects without a generation.
                None | Some(0) => expected_none += bucket.totals.count,
                Some(generation) => assert_eq!(
                    heapy.get(&generation.to_string()).copied(),
                    Some(bucket.totals.count),
                    "{}: generation {generation}",
                    dump.display()
                ),
            }
        }
        assert_eq!(
            heapy.get("none").copied().unwrap_or(0),
            expected_none,
            "{}: none bucket",
            dump.display()
        );
        let heapy_generations = heapy.keys().filter(|key| *key != "none").count();
        let our_generations = generations
            .iter()
            .filter(|bucket| bucket.generation.is_some_and(|g| g > 0))
            .count();
        assert_eq!(
            heapy_generations,
            our_generations,
            "{}: same generations",
            dump.display()
        );
    }
}

#[test]
fn test_site_counts_within_each_generation_equal_heapy() {
    if !tool_available("ruby") {
        return;
    }
    for dump in fixture_dumps() {
        let ours = aggregate_file(&dump).unwrap().aggregates;
        let (generations, _) = generation_totals(&ours.sites);
        let tracked: Vec<u32> = generations
            .iter()
            .filter_map(|bucket| bucket.generation)
            .filter(|&g| g > 0)
            .collect();
        assert!(
            !tracked.is_empty(),
            "{}: fixture has traced allocations",
            dump.display()
        );
        // Every generation would be slow (one Ruby run each); the newest, the oldest and one
        // in the middle cover boot-time, steady-state and just-allocated objects.
        let picks = [
            tracked[0],
            tracked[tracked.len() / 2],
            tracked[tracked.len() - 1],
        ];
        for generation in picks {
            let heapy =
                heapy_oracle(&["sites", dump.to_str().unwrap(), &generation.to_string()]).unwrap();
            let heapy: BTreeMap<String, (u64, u64)> = heapy
                .as_array()
                .unwrap()
                .iter()
                .map(|row| {
                    let site = format!("{}:{}", row["file"].as_str().unwrap(), row["line"]);
                    (
                        site,
                        (
                            row["count"].as_u64().unwrap(),
                            row["memsize"].as_u64().unwrap(),
                        ),
                    )
                })
                .collect();
            let ours: BTreeMap<String, (u64, u64)> = rollup(
                &ours.sites,
                GroupBy::Site,
                GenerationFilter::Only(generation),
                RankBy::Count,
                usize::MAX,
            )
            .into_iter()
            .filter(|row| row.key != UNKNOWN_SITE)
            .map(|row| (row.key, (row.totals.count, row.totals.memsize)))
            .collect();
            assert!(
                !ours.is_empty(),
                "{}: generation {generation} has sites",
                dump.display()
            );
            assert_eq!(ours, heapy, "{}: generation {generation}", dump.display());
        }
    }
}

#[test]
fn test_totals_include_untracked_memory_that_heapy_drops() {
    if !tool_available("ruby") {
        return;
    }
    let dump = &fixture_dumps()[0];
    let ours = aggregate_file(dump).unwrap().aggregates;
    let (generations, total) = generation_totals(&ours.sites);
    let (truth, roots) = count_with_serde_json(dump);
    assert_eq!(ours.parse.roots, roots);
    assert_eq!(
        total.count,
        truth.values().map(|bucket| bucket.0).sum::<u64>()
    );
    assert_eq!(
        total.memsize,
        truth.values().map(|bucket| bucket.1).sum::<u64>()
    );
    let untracked = generations
        .iter()
        .find(|bucket| bucket.generation.is_none())
        .expect("boot objects have no generation");
    assert_eq!(
        (untracked.totals.count, untracked.totals.memsize),
        truth[&None]
    );

    // heapy's total memory leaves that bucket out; ours does not.
    let heapy = heapy_oracle(&["generations", dump.to_str().unwrap(), "--mem"]).unwrap();
    let heapy_total = heapy["total"]["memsize"].as_u64().unwrap();
    let left_out = heapy["memsize_left_out"].as_u64().unwrap();
    assert!(left_out > 0, "the fixture must show heapy's bug");
    assert_eq!(heapy_total + left_out, total.memsize);
}
