//! The leak report and the group comparison of the `heapfleet` binary on a generated fleet of
//! real dumps (tests/fixtures/ruby/make_fleet.rb): 2 releases x 3 hosts x 2 processes x 8 dumps,
//! with four planted leaks (everywhere, on host-b only, a slow one, and one new in release v2)
//! and five decoys (statics, a cache that plateaus, a cache that replaces its entries, churn and
//! noisy churn). The truth (kind, file and line of every behaviour) is fleet-truth.json, written
//! by the generator.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use heapfleet_tests::{generated_dir, generated_fleet, tool_available};
use serde_json::Value;

use common::json;

/// The fleet imported into a data directory, and its truth.
struct Fleet {
    data_dir: PathBuf,
    truth: Value,
}

impl Fleet {
    /// The truth about one planted behaviour (`leak_everywhere`, `churn`, ...).
    fn behaviour(&self, name: &str) -> &Value {
        let behaviour = &self.truth["behaviours"][name];
        assert!(behaviour.is_object(), "fleet-truth.json has no {name}");
        behaviour
    }

    /// The names of the behaviours of one kind (`leak` or `decoy`).
    fn names(&self, kind: &str) -> Vec<String> {
        self.truth["behaviours"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, behaviour)| behaviour["kind"] == kind)
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn processes(&self) -> usize {
        self.truth["processes"].as_array().unwrap().len()
    }
}

/// Generates the fleet (once: make_fleet.rb leaves a `.complete` marker) and imports both
/// releases, once per test process, into a fresh data directory beside it (git-ignored; cleared
/// at the next run rather than left behind in the temporary directory). `None`: ruby is missing
/// and the tests skip (a failure with `HEAPFLEET_REQUIRE_SERVICES=1`).
fn fleet() -> Option<&'static Fleet> {
    static FLEET: OnceLock<Option<Fleet>> = OnceLock::new();
    FLEET
        .get_or_init(|| {
            if !tool_available("ruby") {
                return None;
            }
            let dir = generated_fleet(&generated_dir().join("fleet")).unwrap();
            let truth: Value =
                serde_json::from_slice(&std::fs::read(dir.join("fleet-truth.json")).unwrap())
                    .unwrap();
            let data_dir = generated_dir().join("fleet-data");
            if data_dir.exists() {
                std::fs::remove_dir_all(&data_dir).unwrap();
            }
            for (release, label) in [("v1", "version=1"), ("v2", "version=2")] {
                let releases = dir.join(release);
                let imported = json(
                    &data_dir,
                    &[
                        "import",
                        "--hosts-from-subdirs",
                        releases.to_str().unwrap(),
                        "--label",
                        label,
                    ],
                );
                assert_eq!(imported["summary"]["dumps_imported"], 48, "{release}");
                assert_eq!(imported["summary"]["dumps_failed"], 0, "{release}");
            }
            Some(Fleet { data_dir, truth })
        })
        .as_ref()
}

/// Whether a row of `leaks` or `compare` is about the behaviour's site (file and line; any
/// object type allocated there).
fn at_site(row: &Value, behaviour: &Value) -> bool {
    row["file"] == behaviour["file"] && row["line"] == behaviour["line"]
}

/// The positions (0: best) of the suspects at the behaviour's site.
fn positions(suspects: &[Value], behaviour: &Value) -> Vec<usize> {
    suspects
        .iter()
        .enumerate()
        .filter(|(_, suspect)| at_site(suspect, behaviour))
        .map(|(position, _)| position)
        .collect()
}

/// The suspects at the behaviour's site.
fn suspects_at<'a>(suspects: &'a [Value], behaviour: &Value) -> Vec<&'a Value> {
    suspects
        .iter()
        .filter(|suspect| at_site(suspect, behaviour))
        .collect()
}

/// A short listing of the suspects, for assertion messages.
fn summary(suspects: &[Value]) -> String {
    suspects
        .iter()
        .map(|suspect| {
            format!(
                "{}:{} {} score={} growing={}/{} hosts={}",
                suspect["file"].as_str().unwrap_or("?"),
                suspect["line"],
                suspect["type"],
                suspect["score"],
                suspect["processes_growing"],
                suspect["processes_total"],
                suspect["hosts_growing"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn suspects(result: &Value) -> Vec<Value> {
    result["suspects"].as_array().unwrap().clone()
}

#[test]
fn test_leaks_rank_every_planted_leak_above_every_decoy() {
    let Some(fleet) = fleet() else { return };
    let result = json(&fleet.data_dir, &["leaks", "--top", "50"]);
    let suspects = suspects(&result);
    let listing = summary(&suspects);
    assert_eq!(result["processes_analysed"], fleet.processes(), "{result}");
    assert_eq!(result["dumps_analysed"], 96, "{result}");

    let mut worst_leak = 0;
    for name in fleet.names("leak") {
        let found = positions(&suspects, fleet.behaviour(&name));
        assert!(
            !found.is_empty(),
            "leak {name} is not a suspect:\n{listing}"
        );
        worst_leak = worst_leak.max(found[0]);
    }
    for name in fleet.names("decoy") {
        let decoy = fleet.behaviour(&name);
        if let Some(&best) = positions(&suspects, decoy).first() {
            assert!(
                best > worst_leak,
                "decoy {name} ranks #{best}, above a leak (#{worst_leak}):\n{listing}"
            );
        }
        // Statics, a plateau, a replacing cache and churn rise in no process; noisy churn may
        // look like a rise in one process by chance, never in several.
        for suspect in suspects_at(&suspects, decoy) {
            assert!(
                suspect["processes_growing"].as_u64().unwrap() <= 1,
                "decoy {name} grows in several processes:\n{listing}"
            );
        }
    }
}

#[test]
fn test_leaks_tell_which_processes_and_hosts_grow() {
    let Some(fleet) = fleet() else { return };
    let result = json(&fleet.data_dir, &["leaks", "--top", "50"]);
    let suspects = suspects(&result);
    let listing = summary(&suspects);
    let first = |name: &str| -> Value {
        let found = suspects_at(&suspects, fleet.behaviour(name));
        assert!(
            !found.is_empty(),
            "leak {name} is not a suspect:\n{listing}"
        );
        found[0].clone()
    };
    let hosts = |suspect: &Value| -> Vec<String> {
        let mut hosts: Vec<String> = suspect["hosts_growing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|host| host.as_str().unwrap().to_owned())
            .collect();
        hosts.sort();
        hosts
    };
    let all_hosts = vec!["host-a", "host-b", "host-c"];

    let everywhere = first("leak_everywhere");
    assert_eq!(
        everywhere["processes_growing"], everywhere["processes_total"],
        "{everywhere}"
    );
    assert_eq!(
        everywhere["processes_growing"],
        fleet.processes(),
        "{everywhere}"
    );
    assert_eq!(hosts(&everywhere), all_hosts, "{everywhere}");

    let one_host = first("leak_one_host");
    assert_eq!(hosts(&one_host), vec!["host-b"], "{one_host}");
    // host-b runs 2 processes in each release.
    assert_eq!(one_host["processes_growing"], 4, "{one_host}");

    let slow = first("leak_slow");
    assert_eq!(slow["processes_growing"], fleet.processes(), "{slow}");
    assert_eq!(hosts(&slow), all_hosts, "{slow}");

    let v2 = first("leak_v2");
    assert_eq!(v2["processes_growing"], fleet.processes() / 2, "{v2}");
    assert_eq!(hosts(&v2), all_hosts, "{v2}");
}

#[test]
fn test_leaks_on_another_host_omit_the_host_b_leak() {
    let Some(fleet) = fleet() else { return };
    let result = json(
        &fleet.data_dir,
        &["leaks", "--host", "host-a", "--top", "50"],
    );
    let suspects = suspects(&result);
    let listing = summary(&suspects);
    for suspect in suspects_at(&suspects, fleet.behaviour("leak_one_host")) {
        assert_eq!(
            suspect["processes_growing"], 0,
            "the host-b leak is a suspect on host-a:\n{listing}"
        );
    }
    assert!(
        !positions(&suspects, fleet.behaviour("leak_everywhere")).is_empty(),
        "the leak on every host is not a suspect on host-a:\n{listing}"
    );
}

#[test]
fn test_compare_versions_ranks_the_v2_leak_first() {
    let Some(fleet) = fleet() else { return };
    let result = json(
        &fleet.data_dir,
        &[
            "compare",
            "--a",
            "version=1",
            "--b",
            "version=2",
            "--top",
            "10",
        ],
    );
    let rows = result["rows"].as_array().unwrap();
    assert!(!rows.is_empty(), "{result}");
    assert!(
        at_site(&rows[0], fleet.behaviour("leak_v2")),
        "the first row is not the v2 leak: {:#}",
        result["rows"]
    );
}

#[test]
fn test_leaks_in_version_1_omit_the_v2_leak() {
    let Some(fleet) = fleet() else { return };
    let result = json(&fleet.data_dir, &["leaks", "--label", "version=1"]);
    let suspects = suspects(&result);
    assert!(
        positions(&suspects, fleet.behaviour("leak_v2")).is_empty(),
        "the v2 leak is a suspect in version 1:\n{}",
        summary(&suspects)
    );
    assert!(
        !positions(&suspects, fleet.behaviour("leak_everywhere")).is_empty(),
        "the leak on every host is not a suspect in version 1:\n{}",
        summary(&suspects)
    );
}
