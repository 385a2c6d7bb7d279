//! `heapfleet agent` against a real `heapfleet serve`: each complete dump uploaded once, nothing
//! twice across restarts, retries while the server is down, refused files moved aside, files
//! disposed of after the acknowledgement, the disk bound, and the metadata sidecar.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Server, free_address};

const HEAPFLEET: &str = env!("CARGO_BIN_EXE_heapfleet");

fn series_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dumps/series")
}

/// Copies the shipped series (one process, three gzip dumps) into `dir`, oldest first.
fn copy_series(dir: &Path) -> Vec<PathBuf> {
    let mut copied = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(series_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().ends_with(".dump.gz"))
        .collect();
    names.sort();
    for name in names {
        let target = dir.join(&name);
        std::fs::copy(series_dir().join(&name), &target).unwrap();
        copied.push(target);
    }
    assert_eq!(copied.len(), 3);
    copied
}

/// A small plain dump whose content depends on `seed` (so each is a distinct dump).
fn synthetic_dump(seed: u32, lines: u32) -> String {
    (0..lines)
        .map(|line| {
            format!(
                "{{\"address\":\"0x7f{seed:04x}{line:06x}\", \"type\":\"STRING\", \"bytesize\":3, \
                 \"value\":\"abc\", \"memsize\":40, \"flags\":{{\"wb_protected\":true}}}}\n"
            )
        })
        .collect()
}

/// The server's dumps, as `heapfleet --server URL --format json dumps` lists them.
fn served_dumps(server: &Server) -> Vec<Value> {
    let output = Command::new(HEAPFLEET)
        .args(["--server", &server.url, "--format", "json", "dumps"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "dumps failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    listed["dumps"].as_array().unwrap().clone()
}

/// `heapfleet --server URL --format json agent ARGS...` as a command, with a clean environment.
fn agent_command(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(HEAPFLEET);
    command
        .args(["--server", url, "--format", "json", "agent"])
        .args(["--host", "agent-test"])
        .args(args)
        .env_remove("HEAPFLEET_SERVER")
        .env_remove("HEAPFLEET_LABELS")
        .env_remove("HEAPFLEET_ROLE")
        .env_remove("HEAPFLEET_HOST")
        .env("RUST_LOG", "heapfleet=info");
    if !args.contains(&"--poll-interval-ms") {
        command.args(["--poll-interval-ms", "100"]);
    }
    command
}

/// Waits for a child with a deadline (killing it when the deadline passes) and returns its
/// output; stdout and stderr must have been piped.
fn wait_output(mut child: Child, seconds: u64) -> Output {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the agent did not finish within {seconds} s: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Runs `agent --once` to completion and returns its JSON report.
fn agent_once(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--once"];
    all.extend_from_slice(args);
    let child = agent_command(url, &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_output(child, 60);
    assert!(
        output.status.success(),
        "agent {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "agent printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Polls `condition` every 50 ms until it holds, failing after `seconds`.
fn wait_until(seconds: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {seconds} s: {what}"
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

fn file_names(dumps: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = dumps
        .iter()
        .map(|dump| dump["file_name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn test_agent_uploads_complete_files_once_and_waits_for_the_rest() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("served"), &[]);
    let watch = root.path().join("dumps");
    std::fs::create_dir_all(&watch).unwrap();
    let complete = watch.join("heap-7001-1795773583-20.dump");
    std::fs::write(&complete, synthetic_dump(1, 50)).unwrap();
    // A dump still being written under a temporary name, and one written in place.
    let temporary = watch.join("heap-7001-1795773643-40.dump.tmp");
    std::fs::write(&temporary, synthetic_dump(2, 50)).unwrap();
    let growing = watch.join("heap-7001-1795773703-60.dump");
    std::fs::write(&growing, synthetic_dump(3, 1)).unwrap();

    // Polls 500 ms apart: the growing file changes ten times between two of them.
    let mut agent = agent_command(
        &server.url,
        &[
            "--watch",
            path_str(&watch),
            "--delete",
            "--poll-interval-ms",
            "500",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Grow the in-place file every 50 ms (faster than the 100 ms poll) for 2 s.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&growing)
        .unwrap();
    let growth_ends = Instant::now() + Duration::from_secs(2);
    let mut line = 1;
    while Instant::now() < growth_ends {
        use std::io::Write;
        file.write_all(
            synthetic_dump(3, line + 1)
                .lines()
                .last()
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        file.write_all(b"\n").unwrap();
        file.sync_all().unwrap();
        line += 1;
        std::thread::park_timeout(Duration::from_millis(50));
    }
    drop(file);
    assert!(
        !complete.exists(),
        "the complete dump was not uploaded and deleted within 2 s"
    );
    assert!(temporary.exists(), "a temporary file was touched");
    assert!(growing.exists(), "a dump still growing was uploaded");
    assert_eq!(
        file_names(&served_dumps(&server)),
        vec!["heap-7001-1795773583-20.dump"]
    );
    let final_size = std::fs::metadata(&growing).unwrap().len();

    // Renamed to its final name: now it is complete, as is the file that stopped growing.
    let renamed = watch.join("heap-7001-1795773643-40.dump");
    std::fs::rename(&temporary, &renamed).unwrap();
    wait_until(20, "the renamed and the settled dumps are uploaded", || {
        !renamed.exists() && !growing.exists()
    });
    let dumps = served_dumps(&server);
    assert_eq!(
        file_names(&dumps),
        vec![
            "heap-7001-1795773583-20.dump",
            "heap-7001-1795773643-40.dump",
            "heap-7001-1795773703-60.dump",
        ]
    );
    let settled = dumps
        .iter()
        .find(|dump| dump["file_name"] == "heap-7001-1795773703-60.dump")
        .unwrap();
    assert_eq!(settled["size_bytes"], final_size, "{settled}");
    assert_eq!(settled["process"]["pid"], 7001);
    assert_eq!(settled["jobs"], 60);
    assert_eq!(settled["process"]["host"], "agent-test");

    // SIGTERM: the agent stops on its own, cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = agent.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() >= deadline {
            let _ = agent.kill();
            panic!("the agent did not stop within 10 s of SIGTERM");
        }
        std::thread::park_timeout(Duration::from_millis(50));
    };
    let output = agent.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(exit.success(), "agent exited with {exit}: {logs}");
    let upload_lines = logs
        .lines()
        .filter(|line| line.contains(" uploaded "))
        .count();
    assert_eq!(upload_lines, 3, "{logs}");
}

#[test]
fn test_agent_restart_with_its_state_file_uploads_nothing_twice() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("served"), &[]);
    let watch = root.path().join("dumps");
    std::fs::create_dir_all(&watch).unwrap();
    let files = copy_series(&watch);
    let state = root.path().join("agent-state.json");
    let args = [
        "--watch",
        path_str(&watch),
        "--keep",
        "--state-file",
        path_str(&state),
    ];

    let first = agent_once(&server.url, &args);
    assert_eq!(first["summary"]["uploaded"], 3, "{first}");
    assert!(state.exists());
    let recorded: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(recorded["uploaded"].as_object().unwrap().len(), 3);

    // A restart with the same state file sends nothing: not even to be told it is known.
    let second = agent_once(&server.url, &args);
    assert_eq!(second["summary"]["uploaded"], 0, "{second}");
    assert_eq!(second["summary"]["already_uploaded"], 0, "{second}");
    assert!(files.iter().all(|file| file.exists()), "--keep keeps files");
    assert_eq!(served_dumps(&server).len(), 3);

    // Without the state file, the server's de-duplication still stores each dump once.
    let lost_state = root.path().join("lost-state.json");
    let third = agent_once(
        &server.url,
        &[
            "--watch",
            path_str(&watch),
            "--keep",
            "--state-file",
            path_str(&lost_state),
        ],
    );
    assert_eq!(third["summary"]["uploaded"], 0, "{third}");
    assert_eq!(third["summary"]["already_uploaded"], 3, "{third}");
    assert_eq!(served_dumps(&server).len(), 3);
}

#[test]
fn test_agent_retries_until_the_server_is_up() {
    let root = tempfile::tempdir().unwrap();
    let watch = root.path().join("dumps");
    std::fs::create_dir_all(&watch).unwrap();
    copy_series(&watch);
    let address = free_address();
    let url = format!("http://{address}");
    let agent = agent_command(
        &url,
        &[
            "--once",
            "--watch",
            path_str(&watch),
            "--max-backoff-ms",
            "800",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Nobody listens for 2 s: the agent keeps trying and keeps the files.
    let down_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < down_until {
        std::thread::park_timeout(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_dir(&watch)
            .unwrap()
            .filter(|entry| entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".dump.gz"))
            .count(),
        3
    );
    let server = Server::start_at(&root.path().join("served"), &address, &[]);
    let output = wait_output(agent, 30);
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{logs}");
    assert!(logs.contains("server unavailable; will retry"), "{logs}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["summary"]["uploaded"], 3, "{report}");
    assert_eq!(served_dumps(&server).len(), 3);
}

#[test]
fn test_agent_moves_refused_files_aside_and_uploads_the_rest() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("served"), &[]);
    let watch = root.path().join("dumps");
    std::fs::create_dir_all(&watch).unwrap();
    copy_series(&watch);
    // The server refuses an empty file; a name without a time cannot even be described.
    std::fs::write(watch.join("heap-9-1795773583-1.dump"), b"").unwrap();
    std::fs::write(watch.join("garbage.dump"), b"\x00\x01 not a dump").unwrap();

    let report = agent_once(&server.url, &["--watch", path_str(&watch)]);
    assert_eq!(report["summary"]["uploaded"], 3, "{report}");
    assert_eq!(report["summary"]["rejected"], 2, "{report}");
    let rejected = watch.join("rejected");
    for name in ["heap-9-1795773583-1.dump", "garbage.dump"] {
        assert!(rejected.join(name).exists(), "{name} not moved aside");
        assert!(!watch.join(name).exists(), "{name} left in place");
    }
    let empty_reason =
        std::fs::read_to_string(rejected.join("heap-9-1795773583-1.dump.reason")).unwrap();
    assert!(empty_reason.contains("InvalidArgument"), "{empty_reason}");
    let garbage_reason = std::fs::read_to_string(rejected.join("garbage.dump.reason")).unwrap();
    assert!(!garbage_reason.trim().is_empty());
    assert_eq!(served_dumps(&server).len(), 3);

    // Refused files are not tried again.
    let again = agent_once(&server.url, &["--watch", path_str(&watch)]);
    assert_eq!(again["summary"]["rejected"], 0, "{again}");
    assert!(rejected.join("garbage.dump").exists());
}

#[test]
fn test_agent_deletes_or_moves_acknowledged_files() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("served"), &[]);
    let watch = root.path().join("dumps");
    std::fs::create_dir_all(&watch).unwrap();
    let files = copy_series(&watch);
    std::fs::write(
        watch.join("heap-10536-1795773583-100.dump.gz.json"),
        br#"{"gc_count": 3}"#,
    )
    .unwrap();

    let deleted = agent_once(&server.url, &["--watch", path_str(&watch), "--delete"]);
    assert_eq!(deleted["summary"]["uploaded"], 3, "{deleted}");
    assert!(
        files.iter().all(|file| !file.exists()),
        "--delete left files"
    );
    assert!(
        !watch
            .join("heap-10536-1795773583-100.dump.gz.json")
            .exists()
    );

    let other_watch = root.path().join("more");
    std::fs::create_dir_all(&other_watch).unwrap();
    let name = "heap-7002-1795773583-20.dump";
    std::fs::write(other_watch.join(name), synthetic_dump(7, 20)).unwrap();
    std::fs::write(
        other_watch.join(format!("{name}.json")),
        br#"{"gc_count": 4}"#,
    )
    .unwrap();
    let done = root.path().join("done");
    let moved = agent_once(
        &server.url,
        &[
            "--watch",
            path_str(&other_watch),
            "--done-dir",
            path_str(&done),
        ],
    );
    assert_eq!(moved["summary"]["uploaded"], 1, "{moved}");
    assert!(!other_watch.join(name).exists());
    assert!(done.join(name).exists());
    assert!(done.join(format!("{name}.json")).exists());
    assert_eq!(served_dumps(&server).len(), 4);
}

#[test]
fn test_agent_drops_the_oldest_pending_dumps_beyond_the_disk_bound() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("served"), &[]);
    let watch = root.path().join("dumps");
    std::fs::create_dir_all(&watch).unwrap();
    let files = copy_series(&watch);
    // Oldest by modification time: the first of the series.
    let base = std::time::SystemTime::now() - Duration::from_secs(600);
    for (index, file) in files.iter().enumerate() {
        let handle = std::fs::File::options().write(true).open(file).unwrap();
        handle
            .set_modified(base + Duration::from_secs(60 * index as u64))
            .unwrap();
    }
    let sizes: u64 = files
        .iter()
        .skip(1)
        .map(|file| std::fs::metadata(file).unwrap().len())
        .sum();
    let report = agent_once(
        &server.url,
        &[
            "--watch",
            path_str(&watch),
            "--max-disk-bytes",
            &sizes.to_string(),
        ],
    );
    assert_eq!(report["summary"]["dropped"], 1, "{report}");
    assert_eq!(report["summary"]["uploaded"], 2, "{report}");
    let dropped: Vec<&Value> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|file| file["outcome"] == "dropped")
        .collect();
    assert!(
        dropped[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("heap-10536-1795773583-100.dump.gz")
    );
    assert_eq!(
        file_names(&served_dumps(&server)),
        vec![
            "heap-10536-1795773643-200.dump.gz",
            "heap-10536-1795773703-300.dump.gz"
        ]
    );
}

#[test]
fn test_agent_sends_the_sidecar_and_labels() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("served"), &[]);
    let watch = root.path().join("dumps");
    std::fs::create_dir_all(&watch).unwrap();
    let name = "heap-4242-1795773583-20.dump";
    std::fs::write(watch.join(name), synthetic_dump(42, 30)).unwrap();
    std::fs::write(
        watch.join(format!("{name}.json")),
        br#"{"gc_count": 17, "rss_bytes": 123456789, "instance": "4242-1795770000",
            "heap_live_slots": 45000, "ruby_version": "3.1.2", "sidekiq_version": "6.4.1",
            "app_version": "1.4.2"}"#,
    )
    .unwrap();
    let child = agent_command(
        &server.url,
        &[
            "--once",
            "--watch",
            path_str(&watch),
            "--label",
            "deploy=blue",
        ],
    )
    .env("HEAPFLEET_ROLE", "sidekiq")
    .env("HEAPFLEET_LABELS", "region=eu,app_version=from-env")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let output = wait_output(child, 60);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let dumps = served_dumps(&server);
    assert_eq!(dumps.len(), 1);
    let dump = &dumps[0];
    assert_eq!(dump["gc_count"], 17, "{dump}");
    assert_eq!(dump["rss_bytes"], 123_456_789, "{dump}");
    assert_eq!(dump["process"]["instance"], "4242-1795770000", "{dump}");
    assert_eq!(dump["process"]["pid"], 4242, "{dump}");
    assert_eq!(dump["role"], "sidekiq", "{dump}");
    let labels = &dump["labels"];
    assert_eq!(labels["region"], "eu", "{dump}");
    assert_eq!(
        labels["app_version"], "1.4.2",
        "the sidecar wins over env: {dump}"
    );
    assert_eq!(labels["deploy"], "blue", "{dump}");
    assert_eq!(labels["heap_live_slots"], "45000", "{dump}");
    assert_eq!(labels["ruby_version"], "3.1.2", "{dump}");
    assert_eq!(labels["sidekiq_version"], "6.4.1", "{dump}");
    assert!(labels.get("gc_count").is_none(), "{dump}");
}

/// A query service (the query API and no ingest API) in this process, on embedded backends in
/// a temporary directory; it stops when dropped.
struct QueryService {
    url: String,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn start_query_service() -> QueryService {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(async move {
        let catalog = heapfleet_service::backends::open_catalog(&data)
            .await
            .unwrap();
        let store = heapfleet_service::backends::open_store(&data)
            .await
            .unwrap();
        let queries = heapfleet_query::StoreQueries::new("default", catalog, store);
        let mut parts =
            heapfleet_service::server::server_parts(&[heapfleet_query::QUERY_SERVICE_NAME])
                .await
                .unwrap();
        parts
            .routes
            .add_service(heapfleet_query::QueryServer::new(queries).into_server());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let routes = parts.routes.routes();
        tokio::spawn(async move {
            heapfleet_service::server::serve(
                listener,
                routes,
                &Default::default(),
                std::future::pending(),
            )
            .await
            .unwrap();
        });
        url
    });
    QueryService {
        url,
        _runtime: runtime,
        _dir: dir,
    }
}

#[test]
fn test_agent_pointed_at_a_query_service_stops_and_keeps_every_dump() {
    let query = start_query_service();
    let watch = tempfile::tempdir().unwrap();
    let dumps = copy_series(watch.path());
    let child = agent_command(&query.url, &["--once", "--watch", path_str(watch.path())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_output(child, 60);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the agent went on: {stderr}");
    assert!(
        stderr.contains("does not take uploads"),
        "the agent did not say it is the wrong server: {stderr}"
    );
    // Not refused, not retried: every dump stays where it was, for the right server.
    for dump in &dumps {
        assert!(dump.exists(), "{} was moved or deleted", dump.display());
    }
    assert!(!watch.path().join("rejected").exists(), "{stderr}");
}
