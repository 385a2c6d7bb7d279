//! Who holds a leak, on generated fleets of real dumps where every job builds its payloads in
//! one shared helper and only the container that keeps them tells the leaks apart
//! (tests/fixtures/ruby/make_owner_fleet.rb and owner_fleet_app.rb): 3 hosts x 2 processes x
//! 5 dumps. Leaks: a constant Array in ReportJob (everywhere), one in AuditJob (host-b only),
//! a few large strings in BlobJob, many small ones in TagJob. Decoys: a bounded cache of the
//! same helper's payloads, churn, a boot-time table. The fleet is written twice: with
//! allocation tracing, and without (no file, line or generation), as production runs.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use heapfleet_tests::{generated_dir, generated_owner_fleet, tool_available};
use serde_json::Value;

use common::json;

/// A fleet imported into a data directory, and its truth.
struct Fleet {
    data_dir: PathBuf,
    truth: Value,
}

impl Fleet {
    fn leaks(&self, rank: &str) -> Vec<Value> {
        let report = json(&self.data_dir, &["leaks", "--top", "40", "--rank", rank]);
        report["suspects"].as_array().unwrap().clone()
    }

    fn app(&self) -> &str {
        self.truth["app"].as_str().unwrap()
    }

    fn line(&self, name: &str) -> u64 {
        self.truth["sites"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("owner-fleet-truth.json has no site {name}"))
    }

    fn hosts(&self, leak: &str) -> Vec<String> {
        serde_json::from_value(self.truth["leaks"][leak]["hosts"].clone()).unwrap()
    }

    fn containers(&self, kind: &str) -> Vec<String> {
        self.truth[kind]
            .as_object()
            .unwrap()
            .values()
            .map(|entry| entry["container"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Generates the fleet (once) and imports it into a fresh data directory beside it, once per
/// test process. `None`: ruby is missing and the tests skip (a failure with
/// `HEAPFLEET_REQUIRE_SERVICES=1`).
fn fleet(traced: bool) -> Option<&'static Fleet> {
    static TRACED: OnceLock<Option<Fleet>> = OnceLock::new();
    static UNTRACED: OnceLock<Option<Fleet>> = OnceLock::new();
    let cell = if traced { &TRACED } else { &UNTRACED };
    cell.get_or_init(|| {
        if !tool_available("ruby") {
            return None;
        }
        let name = if traced {
            "owner-fleet"
        } else {
            "owner-fleet-untraced"
        };
        let dir = generated_owner_fleet(&generated_dir().join(name), traced).unwrap();
        let truth: Value =
            serde_json::from_slice(&std::fs::read(dir.join("owner-fleet-truth.json")).unwrap())
                .unwrap();
        let data_dir = generated_dir().join(format!("{name}-data"));
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir).unwrap();
        }
        let imported = json(
            &data_dir,
            &["import", "--hosts-from-subdirs", dir.to_str().unwrap()],
        );
        let dumps = truth["processes"].as_array().unwrap().len() as u64
            * truth["dumps_per_process"].as_u64().unwrap();
        assert_eq!(imported["summary"]["dumps_imported"], dumps);
        assert_eq!(imported["summary"]["ownership_passes"], dumps);
        Some(Fleet { data_dir, truth })
    })
    .as_ref()
}

/// The path of a growing-owner suspect, joined (`vm › ReportJob › Array`), or "".
fn owner_path(suspect: &Value) -> String {
    suspect["owner"]["path"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|step| step.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" › ")
        })
        .unwrap_or_default()
}

/// Whether a path names `container` as one of its steps.
fn names(path: &str, container: &str) -> bool {
    path.split(" › ").any(|step| step == container)
}

/// The growing-owner suspect whose path names `container`.
fn owner_suspect<'a>(suspects: &'a [Value], container: &str) -> &'a Value {
    suspects
        .iter()
        .find(|suspect| names(&owner_path(suspect), container))
        .unwrap_or_else(|| panic!("no growing owner names {container}:\n{}", listing(suspects)))
}

fn listing(suspects: &[Value]) -> String {
    suspects
        .iter()
        .map(|suspect| {
            format!(
                "leak {} {}:{} {} owner=[{}] growing={}/{} hosts={} held_by={}",
                suspect["leak"],
                suspect["file"].as_str().unwrap_or("?"),
                suspect["line"],
                suspect["type"],
                owner_path(suspect),
                suspect["processes_growing"],
                suspect["processes_total"],
                suspect["hosts_growing"],
                suspect["held_by"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|held| held["path"].to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn strings(value: &Value) -> Vec<String> {
    serde_json::from_value(value.clone()).unwrap()
}

/// The first leak number among the suspects that `matches`.
fn first_leak(suspects: &[Value], matches: impl Fn(&Value) -> bool) -> u64 {
    suspects
        .iter()
        .filter(|suspect| matches(suspect))
        .map(|suspect| suspect["leak"].as_u64().unwrap())
        .min()
        .unwrap_or_else(|| panic!("no such suspect:\n{}", listing(suspects)))
}

#[test]
fn test_traced_fleet_names_the_constant_that_keeps_the_helpers_objects_not_the_cache() {
    let Some(fleet) = fleet(true) else {
        return;
    };
    let suspects = fleet.leaks("memory");
    let app = fleet.app();
    let helper_lines: Vec<u64> = fleet.truth["helper_lines"]
        .as_object()
        .unwrap()
        .values()
        .map(|line| line.as_u64().unwrap())
        .collect();
    let helper: Vec<&Value> = suspects
        .iter()
        .filter(|suspect| {
            suspect["file"] == app
                && suspect["owner"].is_null()
                && helper_lines.contains(&suspect["line"].as_u64().unwrap_or(0))
        })
        .collect();
    // The helper's Hash, Array and String rows.
    let types: std::collections::BTreeSet<&str> = helper
        .iter()
        .map(|suspect| suspect["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["ARRAY", "HASH", "STRING"].into(),
        "{}",
        listing(&suspects)
    );
    let report_line = fleet.line("report_container");
    let container = owner_suspect(&suspects, "ReportJob");
    assert_eq!(container["file"], app);
    assert_eq!(container["line"], report_line);
    assert_eq!(container["processes_growing"], 6);
    assert_eq!(strings(&container["hosts_growing"]), fleet.hosts("report"));
    for suspect in &helper {
        // One leak, with its container; its first owner is the constant, not the cache.
        assert_eq!(suspect["leak"], container["leak"], "{}", listing(&suspects));
        let held = &suspect["held_by"][0];
        assert_eq!(held["growing"], true, "{suspect}");
        assert_eq!(held["owner"]["file"], app, "{suspect}");
        assert_eq!(held["owner"]["line"], report_line, "{suspect}");
        assert!(
            names(&strings(&held["path"]).join(" › "), "ReportJob"),
            "{held}"
        );
        assert!(suspect["retained_bytes"].as_u64().unwrap() > 0);
    }
    // The cache of the same helper's payloads plateaus: never a suspect, never a growing owner.
    let cache_line = fleet.line("cache_container");
    for suspect in &suspects {
        assert!(
            !(suspect["line"] == cache_line && suspect["file"] == app),
            "{}",
            listing(&suspects)
        );
        for held in suspect["held_by"].as_array().unwrap() {
            if held["owner"]["line"] == cache_line {
                assert_eq!(held["growing"], false, "{held}");
            }
        }
    }
    // The host-b leak is attributed to host-b only.
    let audit = owner_suspect(&suspects, "AuditJob");
    assert_eq!(audit["line"], fleet.line("audit_container"));
    assert_eq!(strings(&audit["hosts_growing"]), fleet.hosts("audit"));
}

#[test]
fn test_a_few_large_strings_outrank_many_small_ones_by_memory_not_by_objects() {
    let Some(fleet) = fleet(true) else {
        return;
    };
    let app = fleet.app().to_owned();
    let at = |line: u64| {
        let app = app.clone();
        move |suspect: &Value| suspect["file"] == app.as_str() && suspect["line"] == line
    };
    let (blob, tag) = (fleet.line("blob"), fleet.line("tag"));
    let by_memory = fleet.leaks("memory");
    assert!(
        first_leak(&by_memory, at(blob)) < first_leak(&by_memory, at(tag)),
        "{}",
        listing(&by_memory)
    );
    let by_objects = fleet.leaks("objects");
    assert!(
        first_leak(&by_objects, at(tag)) < first_leak(&by_objects, at(blob)),
        "{}",
        listing(&by_objects)
    );
}

#[test]
fn test_untraced_fleet_finds_the_growing_containers_by_path_with_exact_hosts() {
    let Some(fleet) = fleet(false) else {
        return;
    };
    let suspects = fleet.leaks("memory");
    assert!(
        suspects.iter().all(|suspect| suspect["file"].is_null()),
        "an untraced fleet has no allocation sites"
    );
    let report = owner_suspect(&suspects, "ReportJob");
    assert_eq!(report["type"], "ARRAY");
    assert_eq!(report["processes_growing"], 6, "{}", listing(&suspects));
    assert_eq!(report["processes_total"], 6);
    assert_eq!(strings(&report["hosts_growing"]), fleet.hosts("report"));
    let payloads = fleet.truth["leaks"]["report"]["payloads_per_dump"].clone();
    let hashes = report["owner"]["holds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|held| held["site"]["object_type"] == "HASH")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(hashes["objects_per_dump"].as_f64(), payloads.as_f64());

    let audit = owner_suspect(&suspects, "AuditJob");
    assert_eq!(strings(&audit["hosts_growing"]), fleet.hosts("audit"));
    assert_eq!(audit["processes_growing"], 2);

    // The untraced Hash rows name the ReportJob container as their first growing owner.
    let hash_rows = suspects
        .iter()
        .find(|suspect| suspect["type"] == "HASH" && suspect["owner"].is_null())
        .unwrap_or_else(|| panic!("{}", listing(&suspects)));
    let first_growing = hash_rows["held_by"]
        .as_array()
        .unwrap()
        .iter()
        .find(|held| held["growing"] == true)
        .unwrap_or_else(|| panic!("{hash_rows}"));
    assert!(
        names(&strings(&first_growing["path"]).join(" › "), "ReportJob"),
        "{first_growing}"
    );
}

#[test]
fn test_untraced_fleet_ranks_no_decoy_above_a_planted_leak() {
    let Some(fleet) = fleet(false) else {
        return;
    };
    let planted = fleet.containers("leaks");
    let decoys = fleet.containers("decoys");
    let suspects = fleet.leaks("memory");
    // Every growing owner is a planted container; none is a decoy's.
    for suspect in suspects
        .iter()
        .filter(|suspect| !suspect["owner"].is_null())
    {
        let path = owner_path(suspect);
        assert!(
            planted.iter().any(|container| names(&path, container)),
            "a growing owner that is no planted leak: {path}\n{}",
            listing(&suspects)
        );
        assert!(!decoys.iter().any(|container| names(&path, container)));
    }
    // Each leak up to the last planted one has a planted container in it.
    let last = planted
        .iter()
        .map(|container| {
            owner_suspect(&suspects, container)["leak"]
                .as_u64()
                .unwrap()
        })
        .max()
        .unwrap();
    for leak in 1..=last {
        assert!(
            suspects.iter().any(|suspect| suspect["leak"] == leak
                && planted
                    .iter()
                    .any(|container| names(&owner_path(suspect), container))),
            "leak {leak} has no planted container:\n{}",
            listing(&suspects)
        );
    }
    // A few large strings outrank many small ones here too.
    assert!(
        owner_suspect(&suspects, "BlobJob")["leak"].as_u64()
            < owner_suspect(&suspects, "TagJob")["leak"].as_u64(),
        "{}",
        listing(&suspects)
    );
}
