//! `heapfleet delete` and `heapfleet serve --retention-max-age` end to end, on real dumps: each
//! command is the built binary in a new process, on a data directory of its own.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::Server;

/// How long a test waits for the server before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

fn fixtures(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(relative)
}

/// Runs `heapfleet ARGS` with nothing from the environment choosing a server or directory.
fn heapfleet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heapfleet"))
        .args(args)
        .env_remove("HEAPFLEET_SERVER")
        .env_remove("HEAPFLEET_DATA_DIR")
        .env_remove("HEAPFLEET_RETENTION_MAX_AGE")
        .env_remove("HEAPFLEET_RETENTION_INTERVAL")
        .output()
        .expect("heapfleet runs")
}

/// Runs `heapfleet --format json ARGS` and returns whether it succeeded and its JSON.
fn json(args: &[&str]) -> (bool, Value) {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let output = heapfleet(&all);
    let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{all:?} printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), value)
}

/// Like [`json`], for a command that must succeed.
fn json_ok(args: &[&str]) -> Value {
    let (success, value) = json(args);
    assert!(success, "{args:?} failed: {value}");
    value
}

fn ids(listing: &Value) -> Vec<String> {
    listing["dumps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|dump| dump["id"].as_str().unwrap().to_owned())
        .collect()
}

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[test]
fn test_delete_removes_imported_dumps_from_the_data_directory() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let data = data.to_str().unwrap();
    let series = fixtures("dumps/series");
    let imported = json_ok(&[
        "--data-dir",
        data,
        "import",
        "--host",
        "web-1",
        series.to_str().unwrap(),
    ]);
    let imported: Vec<String> = imported["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["dump_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(imported.len(), 3);
    // Import keeps a copy of each file in the data directory, under the dump's id.
    let kept_copies = |id: &str| -> usize {
        walkdir::WalkDir::new(root.path().join("data/objects"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(id))
            .count()
    };
    assert_eq!(kept_copies(&imported[0]), 1);

    let deleted = json_ok(&["--data-dir", data, "delete", &imported[0]]);
    let result = &deleted["dumps"][0];
    assert_eq!(result["dump_id"], imported[0].as_str());
    assert_eq!(result["outcome"], "deleted");
    assert_eq!(
        result["object"], "deleted",
        "the copy the import kept goes with the dump"
    );
    assert_eq!(kept_copies(&imported[0]), 0);
    assert_eq!(kept_copies(&imported[1]), 1);
    assert_eq!(result["host"], "web-1");
    assert_eq!(deleted["summary"]["deleted"], 1);

    let listed = json_ok(&["--data-dir", data, "dumps"]);
    assert_eq!(ids(&listed), imported[1..].to_vec());
    // The dumps left are whole: show and diff still answer.
    let shown = json_ok(&["--data-dir", data, "show", &imported[1]]);
    assert_eq!(shown["dump"]["id"], imported[1].as_str());
    json_ok(&["--data-dir", data, "diff", &imported[1], &imported[2]]);

    // Deleting it again finds nothing: exit status 1, each dump reported.
    let (success, again) = json(&["--data-dir", data, "delete", &imported[0], "d-00"]);
    assert!(!success);
    assert_eq!(again["dumps"][0]["outcome"], "not_found");
    assert_eq!(again["dumps"][1]["outcome"], "not_found");
    assert_eq!(again["summary"]["not_deleted"], 2);

    // A unique prefix without `d-` names a dump, as for show.
    let prefix = &imported[1][2..10];
    let by_prefix = json_ok(&["--data-dir", data, "delete", prefix]);
    assert_eq!(by_prefix["dumps"][0]["dump_id"], imported[1].as_str());
    let listed = json_ok(&["--data-dir", data, "dumps"]);
    assert_eq!(ids(&listed), imported[2..].to_vec());

    let table = heapfleet(&["--data-dir", data, "delete", &imported[2]]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(&imported[2]) && text.contains("deleted"),
        "{text}"
    );

    let help = heapfleet(&["delete", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("Delete dumps everywhere") && help.contains("being_ingested"),
        "{help}"
    );
}

/// Copies the series' dump `index` into `directory`, named as taken at `taken_at_unix`.
fn series_dump_taken_at(directory: &Path, index: usize, taken_at_unix: i64) -> String {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(fixtures("dumps/series"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".dump.gz"))
        .collect();
    sources.sort();
    let target = directory.join(format!("heap-10536-{taken_at_unix}-{index}.dump.gz"));
    std::fs::copy(&sources[index], &target).unwrap();
    target.to_str().unwrap().to_owned()
}

/// Returns every file under `directory`, recursively.
fn files_under(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(directory) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn file_of(objects: &Path, id: &str) -> Option<PathBuf> {
    files_under(objects)
        .into_iter()
        .find(|path| path.to_string_lossy().contains(id))
}

#[test]
fn test_serve_deletes_on_request_and_by_age() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("served");
    let objects = data.join("objects");
    let uploads = root.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    let now = unix_now();
    let young = series_dump_taken_at(&uploads, 0, now - 86_400);
    let requested = series_dump_taken_at(&uploads, 1, now - 2 * 86_400);
    let old = series_dump_taken_at(&uploads, 2, now - 40 * 86_400);
    let server = Server::start(
        &data,
        &["--retention-max-age", "30d", "--retention-interval", "1s"],
    );
    let url = server.url.as_str();

    let uploaded = json_ok(&[
        "--server", url, "upload", "--host", "web-1", "--wait", &young, &requested,
    ]);
    let young_id = uploaded["files"][0]["dump_id"].as_str().unwrap().to_owned();
    let requested_id = uploaded["files"][1]["dump_id"].as_str().unwrap().to_owned();
    // Without --wait: a sweep may take the old dump before its ingest is done.
    let uploaded_old = json_ok(&["--server", url, "upload", "--host", "web-1", &old]);
    let old_id = uploaded_old["files"][0]["dump_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A sweep deletes the dump taken 40 days ago, file and all.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let listed = ids(&json_ok(&["--server", url, "dumps"]));
        if !listed.contains(&old_id) {
            assert_eq!(listed.len(), 2, "{listed:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old dump is still listed\n{}",
            server.log()
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
    assert_eq!(file_of(&objects, &old_id), None);
    assert!(
        server.log().contains("retention deleted a dump"),
        "{}",
        server.log()
    );

    // A delete on request through the server.
    let deleted = json_ok(&["--server", url, "delete", &requested_id]);
    assert_eq!(deleted["dumps"][0]["outcome"], "deleted");
    assert_eq!(deleted["dumps"][0]["object"], "deleted");
    assert_eq!(deleted["dumps"][0]["host"], "web-1");
    assert_eq!(file_of(&objects, &requested_id), None);
    let (success, again) = json(&["--server", url, "delete", &requested_id]);
    assert!(!success);
    assert_eq!(again["dumps"][0]["outcome"], "not_found");

    // The young dump outlives both, whole and queryable.
    assert_eq!(
        ids(&json_ok(&["--server", url, "dumps"])),
        vec![young_id.clone()]
    );
    assert!(file_of(&objects, &young_id).is_some());
    let shown = json_ok(&["--server", url, "show", &young_id]);
    assert_eq!(shown["dump"]["status"]["state"], "ready");
}
