//! The diff on a real series with slot reuse, against the truth Ruby recorded by object_id while
//! writing the dumps (tests/fixtures/dumps/series/series-truth.json): the leak's retained count is
//! exact and the bounded cache retains nothing, where heapy's address-only diff gets both wrong.

use heapfleet_analysis::{DiffResult, diff};
use heapfleet_tests::{aggregate_file, files_with_suffix, fixture, heapy_oracle, tool_available};
use serde_json::Value;

fn truth() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("dumps/series/series-truth.json")).unwrap())
        .unwrap()
}

fn retained_at(result: &DiffResult, site: &Value) -> u64 {
    let file = site["file"].as_str().unwrap();
    let line = site["line"].as_u64().unwrap();
    let object_type = site["type"].as_str().unwrap();
    result
        .rows
        .iter()
        .filter(|row| {
            row.site
                .file
                .as_deref()
                .is_some_and(|path| path.ends_with(file))
                && row.site.line == Some(line as u32)
                && row.site.object_type.as_str() == object_type
        })
        .map(|row| row.totals.count)
        .sum()
}

#[test]
fn test_diff_equals_identity_truth_on_series_with_slot_reuse() {
    let dumps = files_with_suffix(&fixture("dumps/series"), ".dump.gz").unwrap();
    assert_eq!(dumps.len(), 3);
    let indexes: Vec<_> = dumps
        .iter()
        .map(|path| aggregate_file(path).unwrap().index)
        .collect();
    let result = diff(&indexes).unwrap();
    let truth = truth();
    assert_eq!(
        retained_at(&result, &truth["leak"]),
        truth["leak"]["retained_after_first"].as_u64().unwrap()
    );
    assert_eq!(
        retained_at(&result, &truth["cache"]),
        truth["cache"]["retained_after_first"].as_u64().unwrap()
    );

    // The series really has slot reuse, and heapy's address-only diff gets it wrong.
    let reuse = truth["observed_in_dumps"]["slot_reuse"][0]["addresses_reused_by_other_object"]
        .as_u64()
        .unwrap();
    assert!(reuse > 100, "fixture must exercise slot reuse, got {reuse}");
    if tool_available("ruby") {
        let paths: Vec<&str> = dumps.iter().map(|path| path.to_str().unwrap()).collect();
        let heapy = heapy_oracle(&["diff", paths[0], paths[1], paths[2]]).unwrap();
        let heapy_at = |site: &Value| -> u64 {
            heapy
                .as_array()
                .unwrap()
                .iter()
                .filter(|row| {
                    row["file"]
                        .as_str()
                        .is_some_and(|file| file.ends_with(site["file"].as_str().unwrap()))
                        && row["line"] == site["line"]
                        && row["type"] == site["type"]
                })
                .map(|row| row["count"].as_u64().unwrap())
                .sum()
        };
        assert_ne!(
            heapy_at(&truth["cache"]),
            0,
            "heapy blames the bounded cache"
        );
        assert_ne!(
            heapy_at(&truth["leak"]),
            truth["leak"]["retained_after_first"].as_u64().unwrap(),
            "heapy miscounts the leak"
        );
    }
}

#[test]
fn test_diff_of_a_dump_with_itself_retains_nothing() {
    let dumps = files_with_suffix(&fixture("dumps/series"), ".dump.gz").unwrap();
    let index = aggregate_file(&dumps[0]).unwrap().index;
    let result = diff(&[index.clone(), index]).unwrap();
    assert_eq!(result.total.count, 0);
}
