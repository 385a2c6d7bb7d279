//! The `heapfleet` binary end to end on real dumps: import, list, show, diff, with tables and
//! JSON, and its errors. Each command is a new process, so every step also checks that what the
//! previous one stored survived a restart.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use common::{Server, heapfleet, json};

fn fixtures(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(relative)
}

fn series() -> String {
    fixtures("dumps/series").to_str().unwrap().to_owned()
}

#[test]
fn test_import_is_idempotent_and_durable() {
    let data = tempfile::tempdir().unwrap();
    let first = json(
        data.path(),
        &[
            "import",
            &series(),
            "--host",
            "worker-1",
            "--label",
            "version=1.2",
        ],
    );
    assert_eq!(first["summary"]["dumps_imported"], 3);
    assert!(first["summary"]["objects"].as_u64().unwrap() > 10_000);

    let again = json(
        data.path(),
        &[
            "import",
            &series(),
            "--host",
            "worker-1",
            "--label",
            "version=1.2",
        ],
    );
    assert_eq!(again["summary"]["dumps_imported"], 0);
    assert_eq!(again["summary"]["dumps_already_imported"], 3);

    let dumps = json(data.path(), &["dumps"]);
    let dumps = dumps["dumps"].as_array().unwrap();
    assert_eq!(dumps.len(), 3);
    for dump in dumps {
        assert_eq!(dump["status"]["state"], "ready", "{dump}");
        assert_eq!(dump["process"]["host"], "worker-1");
        assert_eq!(dump["process"]["pid"], 10536);
        assert_eq!(dump["labels"]["version"], "1.2");
        assert!(dump["objects"].as_u64().unwrap() > 0);
    }
    let jobs: Vec<u64> = dumps
        .iter()
        .map(|dump| dump["jobs"].as_u64().unwrap())
        .collect();
    assert_eq!(jobs, vec![100, 200, 300]);

    let table = heapfleet(data.path(), &["dumps"]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains("worker-1") && text.contains("ready"),
        "{text}"
    );
}

#[test]
fn test_diff_reports_the_leak_and_not_the_cache() {
    let data = tempfile::tempdir().unwrap();
    let imported = json(data.path(), &["import", &series()]);
    let ids: Vec<String> = imported["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["dump_id"].as_str().unwrap().to_owned())
        .collect();
    let truth: Value =
        serde_json::from_slice(&std::fs::read(fixtures("dumps/series/series-truth.json")).unwrap())
            .unwrap();
    let at = |result: &Value, site: &Value| -> u64 {
        result["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| {
                row["site"]["file"]
                    .as_str()
                    .is_some_and(|file| file.ends_with(site["file"].as_str().unwrap()))
                    && row["site"]["line"] == site["line"]
                    && row["site"]["object_type"] == site["type"]
            })
            .map(|row| row["count"].as_u64().unwrap())
            .sum()
    };
    // Ids in any order, and as unique prefixes without the `d-`: the diff sorts by time.
    let prefixes: Vec<&str> = ids.iter().rev().map(|id| &id[2..10]).collect();
    let mut args = vec!["diff", "--top", "1000"];
    args.extend(prefixes.iter().copied());
    let result = json(data.path(), &args);
    assert_eq!(
        at(&result, &truth["leak"]),
        truth["leak"]["retained_after_first"].as_u64().unwrap()
    );
    assert_eq!(at(&result, &truth["cache"]), 0);

    let table = heapfleet(data.path(), &["diff", &ids[0], &ids[1], &ids[2]]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains(&format!(":{}", truth["leak"]["line"])),
        "{text}"
    );
}

#[test]
fn test_show_totals_rollups_and_generation_detail() {
    let data = tempfile::tempdir().unwrap();
    let imported = json(
        data.path(),
        &["import", fixtures("dumps/small").to_str().unwrap()],
    );
    let id = imported["files"][0]["dump_id"].as_str().unwrap().to_owned();
    let objects = imported["files"][0]["objects"].as_u64().unwrap();

    let summary = json(data.path(), &["show", &id]);
    assert_eq!(summary["total"]["count"].as_u64().unwrap(), objects);
    let generations = summary["generations"].as_array().unwrap();
    assert!(
        generations
            .iter()
            .any(|bucket| bucket["generation"].is_null())
    );
    let newest = generations
        .iter()
        .filter_map(|bucket| bucket["generation"].as_u64())
        .max()
        .unwrap();

    let by_type = json(
        data.path(),
        &["show", &id, "--by", "type", "--rank", "count", "--top", "3"],
    );
    let rows = by_type["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0]["count"].as_u64() >= rows[1]["count"].as_u64());

    let detail = json(
        data.path(),
        &["show", &id, "--generation", &newest.to_string()],
    );
    assert!(detail["detail"]["totals"]["count"].as_u64().unwrap() > 0);
    assert!(
        !detail["detail"]["by_memsize"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let all = json(
        data.path(),
        &["show", &id, "--generation", "none", "--by", "class"],
    );
    assert!(!all["rows"].as_array().unwrap().is_empty());

    let duplicates = json(data.path(), &["show", &id, "--by", "site", "--top", "5"]);
    assert_eq!(duplicates["rows"].as_array().unwrap().len(), 5);
}

#[test]
fn test_paths_cluster_every_reachable_object_by_signature() {
    let data = tempfile::tempdir().unwrap();
    let imported = json(data.path(), &["import", &series()]);
    let truth: Value =
        serde_json::from_slice(&std::fs::read(fixtures("dumps/series/series-truth.json")).unwrap())
            .unwrap();
    // The last dump holds the most leaked strings; the truth says how many objects its leak
    // site holds, of each type.
    let last = truth["dumps"].as_array().unwrap().len() - 1;
    let last_file = truth["dumps"][last]["file"].as_str().unwrap();
    let id = imported["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["path"].as_str().unwrap().ends_with(last_file))
        .unwrap()["dump_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let leak = &truth["leak"];
    let site = format!("{}:{}", leak["file"].as_str().unwrap(), leak["line"]);
    let site_objects: u64 = truth["observed_in_dumps"]["leak_site_objects"][last]
        .as_object()
        .unwrap()
        .values()
        .map(|count| count.as_u64().unwrap())
        .sum();

    let paths = json(data.path(), &["paths", &id, &site, "--max", "1000"]);
    assert_eq!(paths["targets"].as_u64().unwrap(), site_objects, "{paths}");
    let clusters = paths["clusters"].as_array().unwrap();
    assert_eq!(
        clusters.len() as u64,
        paths["signatures"].as_u64().unwrap(),
        "{paths}"
    );
    let counts: Vec<u64> = clusters
        .iter()
        .map(|cluster| cluster["count"].as_u64().unwrap())
        .collect();
    assert_eq!(
        counts.iter().sum::<u64>(),
        paths["reachable"].as_u64().unwrap(),
        "{paths}"
    );
    assert!(counts.is_sorted_by(|a, b| a >= b), "{counts:?}");
    // Every leaked string hangs off the one global array: one cluster holds them all.
    let live = leak["live_per_dump"][last].as_u64().unwrap();
    assert_eq!(counts[0], live, "{paths}");
    for cluster in clusters {
        let signature = cluster["signature"].as_array().unwrap();
        let steps = cluster["example"]["steps"].as_array().unwrap();
        assert_eq!(signature.len(), steps.len(), "{cluster}");
        assert_eq!(cluster["example"]["root"], cluster["root"], "{cluster}");
        assert_eq!(
            steps.last().unwrap()["line"].as_u64(),
            leak["line"].as_u64(),
            "{cluster}"
        );
    }

    // A class or module along a path is named by its own name, in the example and the
    // signature alike.
    let named: Vec<(usize, String)> = clusters
        .iter()
        .enumerate()
        .flat_map(|(number, cluster)| {
            let signature = cluster["signature"].as_array().unwrap();
            cluster["example"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .zip(signature)
                .filter(|(step, _)| {
                    matches!(step["object_type"].as_str(), Some("CLASS" | "MODULE"))
                })
                .map(move |(step, signed)| {
                    let name = step["name"].as_str().unwrap().to_owned();
                    assert_eq!(signed["label"].as_str(), Some(name.as_str()), "{step}");
                    (number, name)
                })
        })
        .collect();
    assert!(!named.is_empty(), "no class or module on any path: {paths}");

    // The table: one block per cluster, its count over its signature, `root › step › ...`.
    let table = heapfleet(data.path(), &["paths", &id, &site, "--max", "1000"]);
    assert!(table.status.success());
    let text = String::from_utf8(table.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for cluster in clusters {
        let mut parts = vec![cluster["root"].as_str().unwrap().to_owned()];
        for step in cluster["signature"].as_array().unwrap() {
            let label = step["label"].as_str().unwrap();
            parts.push(match (step["file"].as_str(), step["line"].as_u64()) {
                (Some(file), Some(line)) => format!("{label} ({file}:{line})"),
                (Some(file), None) => format!("{label} ({file})"),
                _ => label.to_owned(),
            });
        }
        let signature_line = format!("  {}", parts.join(" › "));
        let count = cluster["count"].as_u64().unwrap();
        let noun = if count == 1 { "object" } else { "objects" };
        let count_line = format!("{count} {noun} (");
        assert!(
            lines
                .windows(2)
                .any(|pair| pair[0].starts_with(&count_line) && pair[1] == signature_line),
            "no block {count_line:?} / {signature_line:?}: {text}"
        );
    }
    let (number, name) = &named[0];
    assert!(
        lines
            .iter()
            .any(|line| line.contains(" › ") && line.contains(&format!(" {name}"))),
        "{name} not in any signature: {text}"
    );
    assert!(!text.contains("0x"), "addresses only on request: {text}");
    let with_addresses = heapfleet(
        data.path(),
        &["paths", &id, &site, "--max", "1000", "--addresses"],
    );
    let text = String::from_utf8(with_addresses.stdout).unwrap();
    for step in clusters[*number]["example"]["steps"].as_array().unwrap() {
        let address = format!("0x{:x} ", step["address"].as_u64().unwrap());
        assert!(text.contains(&address), "{address}: {text}");
    }
}

#[test]
fn test_bad_inputs_end_ready_or_failed_with_a_reason() {
    let data = tempfile::tempdir().unwrap();
    let bad = fixtures("dumps/bad");
    let path = |name: &str| bad.join(name).to_str().unwrap().to_owned();
    let output = heapfleet(
        data.path(),
        &[
            "--format",
            "json",
            "import",
            "--taken-at",
            "1700000000",
            &path("invalid-lines.dump"),
            &path("binary.dump"),
            &path("empty.dump"),
        ],
    );
    assert!(
        !output.status.success(),
        "a failed file makes the import exit non-zero"
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    let files = result["files"].as_array().unwrap();
    let by_name = |name: &str| {
        files
            .iter()
            .find(|file| file["path"].as_str().unwrap().ends_with(name))
            .unwrap()
            .clone()
    };
    let invalid = by_name("invalid-lines.dump");
    assert_eq!(invalid["outcome"], "imported");
    assert_eq!(invalid["bad_lines"], 7);
    let binary = by_name("binary.dump");
    assert_eq!(binary["outcome"], "failed");
    assert!(
        binary["error"]
            .as_str()
            .unwrap()
            .contains("no heap objects"),
        "{binary}"
    );
    assert!(
        by_name("empty.dump")["error"]
            .as_str()
            .unwrap()
            .contains("no heap objects")
    );

    // The failures are in the catalog with their reasons, and the good dump is intact.
    let dumps = json(data.path(), &["dumps"]);
    assert_eq!(dumps["dumps"].as_array().unwrap().len(), 3);
}

#[test]
fn test_errors_are_clear() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let misnamed = dir.path().join("dump.json");
    std::fs::copy(fixtures("dumps/bad/truncated.dump"), &misnamed).unwrap();
    let output = heapfleet(data.path(), &["import", misnamed.to_str().unwrap()]);
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("no timestamp"), "{text}");

    let output = heapfleet(data.path(), &["show", "d-0000"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no dump matches"));

    let output = heapfleet(
        data.path(),
        &["import", "/nonexistent/heap-1700000000.dump"],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));
}

/// Runs `heapfleet ARGS` with no data directory: for commands that talk to a server.
fn heapfleet_at(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heapfleet"))
        .args(args)
        .env_remove("HEAPFLEET_SERVER")
        .env_remove("HEAPFLEET_DATA_DIR")
        .output()
        .expect("heapfleet runs")
}

/// Runs `heapfleet --server URL --format json ARGS`, which must succeed and print JSON.
fn server_json(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--server", url, "--format", "json"];
    all.extend_from_slice(args);
    let output = heapfleet_at(&all);
    assert!(
        output.status.success(),
        "{all:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{all:?} printed no JSON ({error})"))
}

/// The dump ids of an upload's or an import's `files`, in their order.
fn dump_ids(result: &Value) -> Vec<String> {
    result["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["dump_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn test_serve_upload_and_remote_reads_match_local_import() {
    let root = tempfile::tempdir().unwrap();
    let served_dir = root.path().join("served");
    let server = Server::start(&served_dir, &[]);
    let url = server.url.clone();

    let uploaded = server_json(&url, &["upload", "--host", "web-1", "--wait", &series()]);
    let files = uploaded["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{uploaded}");
    for file in files {
        assert_eq!(file["outcome"], "uploaded", "{file}");
        assert_eq!(file["state"], "ready", "{file}");
        assert_eq!(file["host"], "web-1", "{file}");
        assert!(file["objects"].as_u64().unwrap() > 0, "{file}");
    }
    assert_eq!(uploaded["summary"]["uploaded"], 3);
    assert_eq!(uploaded["summary"]["failed"], 0);
    let mut ids = dump_ids(&uploaded);

    let listed = server_json(&url, &["dumps"]);
    let dumps = listed["dumps"].as_array().unwrap();
    assert_eq!(dumps.len(), 3, "{listed}");
    for dump in dumps {
        assert_eq!(dump["status"]["state"], "ready", "{dump}");
        assert_eq!(dump["process"]["host"], "web-1", "{dump}");
        assert_eq!(dump["process"]["pid"], 10536, "{dump}");
    }

    // The same files imported locally, as the same host: the same content from the same
    // process is the same dump, with the same id and the same results.
    let local = tempfile::tempdir().unwrap();
    let imported = json(local.path(), &["import", "--host", "web-1", &series()]);
    let mut local_ids = dump_ids(&imported);
    ids.sort();
    local_ids.sort();
    assert_eq!(ids, local_ids);
    let mut listed_ids: Vec<String> = dumps
        .iter()
        .map(|dump| dump["id"].as_str().unwrap().to_owned())
        .collect();
    listed_ids.sort();
    assert_eq!(listed_ids, ids);

    let mut diff_args = vec!["diff"];
    diff_args.extend(ids.iter().map(String::as_str));
    let remote_diff = server_json(&url, &diff_args);
    let local_diff = json(local.path(), &diff_args);
    assert!(
        !remote_diff["rows"].as_array().unwrap().is_empty(),
        "{remote_diff}"
    );
    assert_eq!(remote_diff["rows"], local_diff["rows"]);
    assert_eq!(remote_diff["total"], local_diff["total"]);
    assert!(!remote_diff["total"].is_null(), "{remote_diff}");

    for id in &ids {
        let mut remote_show = server_json(&url, &["show", id]);
        let mut local_show = json(local.path(), &["show", id]);
        assert_eq!(remote_show["dump"]["id"], id.as_str());
        // Only the time each catalog registered the dump may differ, how far its ownership
        // pass got (the server runs it in the background, import before it returns) and what
        // the API does not carry (where the import kept its copy, the pass's attempts).
        for show in [&mut remote_show, &mut local_show] {
            let dump = show["dump"].as_object_mut().unwrap();
            assert!(dump.remove("registered_at_unix").is_some(), "{dump:?}");
            for field in ["ownership", "ownership_attempts", "object_key"] {
                dump.remove(field);
            }
        }
        assert_eq!(remote_show, local_show, "show {id}");
    }

    // The fleet queries answer alike, and the server re-reads an uploaded dump for its paths.
    // Ranked by objects, and without what the ownership passes add, which the server may
    // still be computing.
    let strip = |mut leaks: serde_json::Value| {
        for suspect in leaks["suspects"].as_array_mut().unwrap() {
            let suspect = suspect.as_object_mut().unwrap();
            for field in [
                "retained_bytes",
                "retained_bytes_per_dump",
                "held_by",
                "leak",
            ] {
                suspect.remove(field);
            }
        }
        leaks
    };
    let remote_leaks = strip(server_json(&url, &["leaks", "--rank", "objects"]));
    let local_leaks = strip(json(local.path(), &["leaks", "--rank", "objects"]));
    assert_eq!(remote_leaks, local_leaks);
    let first_suspect = &remote_leaks["suspects"][0];
    assert!(
        first_suspect["file"]
            .as_str()
            .unwrap()
            .ends_with("make_dumps.rb"),
        "{first_suspect}"
    );
    let leak_site = format!("make_dumps.rb:{}", first_suspect["line"]);
    assert_eq!(
        server_json(&url, &["timeline", &leak_site]),
        json(local.path(), &["timeline", &leak_site])
    );
    let newest = dumps.last().unwrap();
    let newest_id = newest["id"].as_str().unwrap();
    // The paths reach the planted leak's strings, at the site Ruby recorded for them.
    let truth: Value =
        serde_json::from_slice(&std::fs::read(fixtures("dumps/series/series-truth.json")).unwrap())
            .unwrap();
    let planted_site = format!("make_dumps.rb:{}", truth["leak"]["line"]);
    let remote_paths = server_json(&url, &["paths", newest_id, &planted_site, "--max", "3"]);
    let clusters = remote_paths["clusters"].as_array().unwrap();
    assert!(
        !clusters.is_empty() && clusters.len() <= 3,
        "{remote_paths}"
    );
    assert!(
        remote_paths["reachable"].as_u64().unwrap() >= 100,
        "{remote_paths}"
    );
    let newest_file = std::fs::read_dir(fixtures("dumps/series"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.to_string_lossy()
                .contains(&newest["taken_at_unix"].to_string())
        })
        .unwrap();
    let local_paths = json(
        local.path(),
        &[
            "paths",
            newest_id,
            &planted_site,
            "--max",
            "3",
            "--file",
            newest_file.to_str().unwrap(),
        ],
    );
    for field in ["targets", "reachable", "signatures", "clusters"] {
        assert_eq!(remote_paths[field], local_paths[field], "{field}");
    }

    let again = server_json(&url, &["upload", "--host", "web-1", &series()]);
    let files = again["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{again}");
    for file in files {
        assert_eq!(file["outcome"], "already_uploaded", "{file}");
    }
    assert_eq!(again["summary"]["uploaded"], 0);
    assert_eq!(again["summary"]["already_uploaded"], 3);
    let mut again_ids = dump_ids(&again);
    again_ids.sort();
    assert_eq!(again_ids, ids);
    assert_eq!(
        server_json(&url, &["dumps"])["dumps"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    drop(server);
}

#[test]
fn test_server_errors_are_clear() {
    let output = heapfleet_at(&["upload", &series()]);
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("--server"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    let url = "http://127.0.0.1:1";
    let output = heapfleet_at(&["--server", url, "dumps"]);
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.starts_with("error: "), "{text}");
    assert!(text.contains(url), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn test_logs_are_plain_text_off_a_terminal_and_json_on_request() {
    let data = tempfile::tempdir().unwrap();
    let text = heapfleet(
        data.path(),
        &["-v", "import", &series(), "--host", "logs-1"],
    );
    assert!(text.status.success());
    let text_log = String::from_utf8_lossy(&text.stderr);
    assert!(!text_log.trim().is_empty(), "-v logged nothing");
    assert!(
        !text_log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal: {text_log:?}"
    );

    let json = heapfleet(
        data.path(),
        &[
            "-v",
            "--log-format",
            "json",
            "import",
            &series(),
            "--host",
            "logs-2",
        ],
    );
    assert!(json.status.success());
    let json_log = String::from_utf8_lossy(&json.stderr);
    let lines: Vec<&str> = json_log.lines().filter(|line| !line.is_empty()).collect();
    assert!(!lines.is_empty(), "-v logged nothing");
    for line in lines {
        let record: Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("not a JSON log line ({error}): {line}"));
        assert!(record["level"].is_string(), "{line}");
        assert!(record["fields"].is_object(), "{line}");
    }

    // A format it does not know is a usage error naming the choices.
    let wrong = heapfleet(data.path(), &["--log-format", "logfmt", "dumps"]);
    assert!(!wrong.status.success());
    let message = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        message.contains("text") && message.contains("json"),
        "{message}"
    );
}

/// The times in `text` (`YYYY-MM-DDTHH:MM:SSZ`) that are not whole: a date not followed by its
/// time.
fn cut_times(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let shape = "dddd-dd-ddTdd:dd:ddZ".as_bytes();
    let mut cut = Vec::new();
    for start in 0..bytes.len() {
        let date_matches = |length: usize| {
            bytes.len() >= start + length
                && (0..length).all(|offset| match shape[offset] {
                    b'd' => bytes[start + offset].is_ascii_digit(),
                    expected => bytes[start + offset] == expected,
                })
        };
        if date_matches(11) && !date_matches(shape.len()) {
            let end = (start + shape.len()).min(bytes.len());
            cut.push(String::from_utf8_lossy(&bytes[start..end]).into_owned());
        }
    }
    cut
}

/// Runs `heapfleet` with its table output in a terminal `columns` wide (`COLUMNS`).
fn table_at(data_dir: &Path, columns: u16, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_heapfleet"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("COLUMNS", columns.to_string())
        .output()
        .expect("heapfleet runs");
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn test_tables_fit_80_100_and_120_columns_without_splitting_values() {
    let data = tempfile::tempdir().unwrap();
    let imported = json(data.path(), &["import", &series(), "--host", "worker-1"]);
    let ids: Vec<String> = imported["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["dump_id"].as_str().unwrap().to_owned())
        .collect();
    let truth: Value =
        serde_json::from_slice(&std::fs::read(fixtures("dumps/series/series-truth.json")).unwrap())
            .unwrap();
    let leak_line = format!(":{}", truth["leak"]["line"]);
    let leak_site = format!(
        "{}{leak_line}",
        truth["leak"]["file"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
    );
    let last = ids.last().unwrap().as_str();
    let commands: Vec<Vec<&str>> = vec![
        vec!["dumps"],
        vec!["show", last],
        vec!["show", last, "--by", "site"],
        vec!["show", last, "--by", "gem"],
        vec!["diff", &ids[0], &ids[1], &ids[2]],
        vec!["leaks"],
        vec!["retained", last, "--top", "5"],
        vec!["dominators", last, "--depth", "3"],
        vec!["timeline", &leak_site],
    ];
    for columns in [80u16, 100, 120] {
        for command in &commands {
            let text = table_at(data.path(), columns, command);
            for line in text.lines() {
                // Table lines only: the notes under a table are prose a terminal wraps.
                if !line.starts_with(['│', '┌', '└', '╞']) {
                    continue;
                }
                assert!(
                    line.chars().count() <= usize::from(columns),
                    "{command:?} at {columns} columns: a line of {} characters:\n{text}",
                    line.chars().count()
                );
            }
            assert!(
                cut_times(&text).is_empty(),
                "{command:?} at {columns}: times cut {:?}:\n{text}",
                cut_times(&text)
            );
        }
        // The leak's site keeps its line: in the diff and in the leak report.
        for command in [&commands[4], &commands[5]] {
            let text = table_at(data.path(), columns, command);
            assert!(
                text.lines().any(|line| line.contains(&leak_site)),
                "{command:?} at {columns} columns lost {leak_site}:\n{text}"
            );
        }
    }
}
