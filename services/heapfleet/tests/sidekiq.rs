//! The whole path with the real thing: Redis (Debian's redis-server) and two Sidekiq worker
//! processes (Debian's ruby-sidekiq) running the middleware users copy
//! (deploy/ruby/heapfleet_sidekiq.rb) and an app whose job leaks; `heapfleet agent` uploads the
//! dumps to `heapfleet serve`, which ingests them; `heapfleet leaks` must name the leaking line
//! and both processes, and not the job that only churns. Loopback only, bounded to 2 minutes.
//!
//! Skips when redis-server or sidekiq is missing, unless HEAPFLEET_REQUIRE_SERVICES=1 (CI),
//! where that fails.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use heapfleet_tests::tool_available;
use serde_json::Value;

const HEAPFLEET: &str = env!("CARGO_BIN_EXE_heapfleet");
/// Worker processes, each with its own queue so each gets exactly its share of the jobs.
const WORKERS: usize = 2;
/// Jobs per worker, and jobs between two dumps: 5 dumps per process.
const JOBS_PER_WORKER: usize = 100;
const DUMP_EVERY: usize = 20;
/// Seconds each job sleeps: a batch of 20 jobs on 2 threads lasts 1.2 s, so two dumps of a
/// process never fall in the same second (their file names carry whole seconds).
const JOB_PAUSE_SECONDS: &str = "0.12";

/// A child process killed (and reaped) when dropped, whatever the test's outcome.
struct Killed {
    child: Child,
    log: PathBuf,
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Killed {
    fn spawn(command: &mut Command, log: PathBuf) -> Killed {
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        Killed { child, log }
    }

    /// Fails the test with the child's log if it has exited.
    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "{what} exited with {status}: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/sidekiq")
        .join(relative)
        .canonicalize()
        .unwrap()
}

/// The 1-based line of app.rb that carries `marker`.
fn line_of(marker: &str) -> u64 {
    let source = std::fs::read_to_string(fixture("app.rb")).unwrap();
    let index = source
        .lines()
        .position(|line| line.contains(marker))
        .unwrap_or_else(|| panic!("app.rb has no line marked {marker:?}"));
    index as u64 + 1
}

fn wait_for_port(port: u16, deadline: Instant, process: &mut Killed, what: &str) {
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        process.assert_running(what);
        assert!(
            Instant::now() < deadline,
            "{what} does not accept connections on port {port}"
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

fn server_json(url: &str, args: &[&str]) -> Value {
    let output = Command::new(HEAPFLEET)
        .args(["--server", url, "--format", "json"])
        .args(args)
        .env_remove("HEAPFLEET_SERVER")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn test_sidekiq_workers_leak_is_found_through_the_agent() {
    if !tool_available("redis-server") || !tool_available("sidekiq") || !tool_available("ruby") {
        return;
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();

    // Redis: a throwaway instance on a free loopback port, persisting nothing.
    let redis_port = free_port();
    let mut redis = Killed::spawn(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(root.path()),
        logs.join("redis.log"),
    );
    wait_for_port(redis_port, deadline, &mut redis, "redis-server");
    let redis_url = format!("redis://127.0.0.1:{redis_port}/0");

    // The heapfleet server.
    let server_port = free_port();
    let server_url = format!("http://127.0.0.1:{server_port}");
    let mut server = Killed::spawn(
        Command::new(HEAPFLEET)
            .arg("--data-dir")
            .arg(root.path().join("served"))
            .args(["serve", "--listen", &format!("127.0.0.1:{server_port}")])
            .env_remove("HEAPFLEET_SERVER"),
        logs.join("serve.log"),
    );
    wait_for_port(server_port, deadline, &mut server, "heapfleet serve");

    // The jobs, queued before the workers start: each worker's queue holds its whole share.
    let queues: Vec<String> = (0..WORKERS).map(|index| format!("worker{index}")).collect();
    for queue in &queues {
        let output = Command::new("ruby")
            .arg(fixture("enqueue.rb"))
            .arg(queue)
            .arg(JOBS_PER_WORKER.to_string())
            .arg(JOB_PAUSE_SECONDS)
            .env("REDIS_URL", &redis_url)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "enqueue.rb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // The agent, running in the background as on a real host.
    let dumps_dir = root.path().join("dumps");
    std::fs::create_dir_all(&dumps_dir).unwrap();
    let mut agent = Killed::spawn(
        Command::new(HEAPFLEET)
            .args(["--server", &server_url, "-v", "agent", "--watch"])
            .arg(&dumps_dir)
            .args(["--role", "sidekiq", "--label", "app=fixture"])
            .args(["--poll-interval-ms", "200", "--delete"])
            .env_remove("HEAPFLEET_LABELS")
            .env_remove("HEAPFLEET_ROLE"),
        logs.join("agent.log"),
    );

    // Two Sidekiq processes, sharing the dump directory.
    let mut workers: Vec<Killed> = queues
        .iter()
        .map(|queue| {
            Killed::spawn(
                Command::new("sidekiq")
                    .arg("-r")
                    .arg(fixture("app.rb"))
                    .args(["-q", queue, "-c", "2"])
                    .current_dir(root.path())
                    .env("REDIS_URL", &redis_url)
                    .env("HEAPFLEET_DUMP_DIR", &dumps_dir)
                    .env("HEAPFLEET_DUMP_EVERY", DUMP_EVERY.to_string())
                    .env("HEAPFLEET_APP_VERSION", "fixture-1"),
                logs.join(format!("sidekiq-{queue}.log")),
            )
        })
        .collect();

    // Wait until every dump is uploaded and ingested.
    let expected_dumps = WORKERS * JOBS_PER_WORKER / DUMP_EVERY;
    let dumps = loop {
        let listed = server_json(&server_url, &["dumps"]);
        let dumps = listed["dumps"].as_array().unwrap().clone();
        let finished = dumps
            .iter()
            .filter(|dump| matches!(dump["status"]["state"].as_str(), Some("ready" | "failed")))
            .count();
        if dumps.len() >= expected_dumps && finished == dumps.len() {
            break dumps;
        }
        for (index, worker) in workers.iter_mut().enumerate() {
            worker.assert_running(&format!("sidekiq worker {index}"));
        }
        agent.assert_running("heapfleet agent");
        server.assert_running("heapfleet serve");
        assert!(
            Instant::now() < deadline,
            "{} of {expected_dumps} dumps ingested after 120 s ({} listed); agent log: {}",
            finished,
            dumps.len(),
            std::fs::read_to_string(&agent.log).unwrap_or_default()
        );
        std::thread::park_timeout(Duration::from_millis(250));
    };
    let uploaded_after = started.elapsed();
    assert_eq!(dumps.len(), expected_dumps);

    // Each dump: ready, from one of the workers, with the sidecar's metadata and the labels.
    let mut dumps_per_pid: BTreeMap<u64, usize> = BTreeMap::new();
    for dump in &dumps {
        assert_eq!(dump["status"]["state"], "ready", "{dump}");
        assert_eq!(dump["role"], "sidekiq", "{dump}");
        assert_eq!(dump["labels"]["app"], "fixture", "{dump}");
        assert_eq!(dump["labels"]["app_version"], "fixture-1", "{dump}");
        assert!(dump["labels"]["sidekiq_version"].is_string(), "{dump}");
        assert!(dump["labels"]["ruby_version"].is_string(), "{dump}");
        assert!(dump["gc_count"].as_u64().unwrap() > 0, "{dump}");
        assert!(dump["rss_bytes"].as_u64().unwrap() > 1 << 20, "{dump}");
        assert!(
            !dump["process"]["instance"].as_str().unwrap().is_empty(),
            "{dump}"
        );
        *dumps_per_pid
            .entry(dump["process"]["pid"].as_u64().unwrap())
            .or_default() += 1;
    }
    let judged = dumps_per_pid.values().filter(|count| **count >= 3).count();
    assert_eq!(judged, WORKERS, "dumps per pid: {dumps_per_pid:?}");
    let worker_pids: Vec<u64> = workers
        .iter()
        .map(|worker| u64::from(worker.child.id()))
        .collect();
    for pid in dumps_per_pid.keys() {
        assert!(worker_pids.contains(pid), "pid {pid} is no worker's");
    }
    // The agent deleted what the server acknowledged.
    let left: Vec<_> = std::fs::read_dir(&dumps_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().ends_with(".dump"))
        .collect();
    assert!(left.is_empty(), "left in the dump directory: {left:?}");

    // The leak report: the leaking line first, growing in every worker; the churn absent.
    let report = server_json(&server_url, &["leaks"]);
    let suspects = report["suspects"].as_array().unwrap();
    let leak_line = line_of("heapfleet-test: leak");
    let churn_line = line_of("heapfleet-test: churn");
    let top = suspects
        .first()
        .unwrap_or_else(|| panic!("no suspect: {report}"));
    assert!(
        top["file"]
            .as_str()
            .unwrap()
            .ends_with("tests/fixtures/sidekiq/app.rb"),
        "{top}"
    );
    assert_eq!(top["line"], leak_line, "{top}");
    assert_eq!(top["type"], "STRING", "{top}");
    assert_eq!(top["processes_growing"], WORKERS as u64, "{top}");
    let mut evidence_pids: Vec<u64> = top["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|evidence| evidence["growing"] == true)
        .map(|evidence| evidence["pid"].as_u64().unwrap())
        .collect();
    evidence_pids.sort_unstable();
    let mut expected_pids = worker_pids.clone();
    expected_pids.sort_unstable();
    assert_eq!(evidence_pids, expected_pids, "{top}");
    assert!(
        !suspects.iter().any(|suspect| suspect["file"]
            .as_str()
            .is_some_and(|file| file.ends_with("sidekiq/app.rb"))
            && suspect["line"] == churn_line),
        "the churning job is a suspect: {report}"
    );
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "sidekiq end to end: {expected_dumps} dumps uploaded and ingested after {:.1} s, \
             report after {:.1} s",
            uploaded_after.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn test_rack_middleware_dumps_every_n_requests() {
    // Rack comes with Debian's ruby-sidekiq (a dependency of Sidekiq's web UI).
    if !tool_available("ruby") || !tool_available("sidekiq") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let output = Command::new("ruby")
        .arg(fixture("rack_app.rb"))
        .arg("5")
        .env("HEAPFLEET_DUMP_DIR", root.path())
        .env("HEAPFLEET_DUMP_EVERY", "2")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "rack_app.rb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // Requests 2 and 4 dumped, each with its sidecar; no temporary file left behind.
    assert_eq!(names.len(), 4, "{names:?}");
    let dumps: Vec<&String> = names
        .iter()
        .filter(|name| name.ends_with(".dump"))
        .collect();
    assert_eq!(dumps.len(), 2, "{names:?}");
    for (dump, jobs) in dumps.iter().zip([2, 4]) {
        let parsed = heapfleet_dump::parse_dump_file_name(dump).unwrap();
        assert_eq!(parsed.jobs, Some(jobs), "{dump}");
        let sidecar: Value = serde_json::from_slice(
            &std::fs::read(root.path().join(format!("{dump}.json"))).unwrap(),
        )
        .unwrap();
        assert!(sidecar["gc_count"].as_u64().unwrap() > 0, "{sidecar}");
        assert!(sidecar["instance"].is_string(), "{sidecar}");
        let first_line = std::fs::read_to_string(root.path().join(dump))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_owned();
        assert!(first_line.starts_with('{'), "{dump} is no heap dump");
    }
}
