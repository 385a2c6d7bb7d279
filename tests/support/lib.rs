//! Helpers shared by the integration tests and benchmarks: where fixtures live, generating real
//! dumps with Ruby, and running heapy as an independent oracle.
//!
//! Nothing here is a fake: dumps come from a real Ruby, and heapy's answers from heapy's code.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Returns the workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits one level below the workspace root")
        .to_path_buf()
}

/// Returns `tests/fixtures/<relative>`.
pub fn fixture(relative: &str) -> PathBuf {
    workspace_root().join("tests/fixtures").join(relative)
}

/// Returns the directory for dumps generated at test or bench time (git-ignored).
pub fn generated_dir() -> PathBuf {
    fixture("generated")
}

/// Returns the dump that `ruby tests/fixtures/ruby/make_dumps.rb SCENARIO OUT_DIR ARGS...`
/// writes, generating it only if no earlier run completed (a `.complete` marker says so).
pub fn generated_dump(
    scenario: &str,
    out_dir: &Path,
    extra_args: &[&str],
) -> anyhow::Result<PathBuf> {
    let marker = out_dir.join(".complete");
    if !marker.exists() {
        // A run cut short leaves a partial dump behind: start clean.
        if out_dir.exists() {
            std::fs::remove_dir_all(out_dir)
                .with_context(|| format!("failed to clear {}", out_dir.display()))?;
        }
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("failed to create {}", out_dir.display()))?;
        let status = Command::new("ruby")
            .arg(fixture("ruby/make_dumps.rb"))
            .arg(scenario)
            .arg(out_dir)
            .args(extra_args)
            .status()
            .context("failed to run ruby (install Debian's `ruby`, see scripts/test.sh)")?;
        if !status.success() {
            bail!("make_dumps.rb {scenario} failed with {status}");
        }
        std::fs::write(&marker, b"")
            .with_context(|| format!("failed to write {}", marker.display()))?;
    }
    files_with_suffix(out_dir, ".dump")?
        .into_iter()
        .next()
        .with_context(|| {
            format!(
                "make_dumps.rb {scenario} wrote no .dump file in {}",
                out_dir.display()
            )
        })
}

/// Returns `out_dir` holding the fleet that `ruby tests/fixtures/ruby/make_fleet.rb OUT_DIR`
/// writes (`<release>/<host>/heap-<pid>-<ts>-<jobs>.dump` and `fleet-truth.json`), generating
/// it only if no earlier run completed (the script writes a `.complete` marker last).
pub fn generated_fleet(out_dir: &Path) -> anyhow::Result<PathBuf> {
    generated_by_script("make_fleet.rb", out_dir, &[])
}

/// Returns `out_dir` holding the fleet that `ruby tests/fixtures/ruby/make_owner_fleet.rb
/// OUT_DIR [--untraced]` writes (`<host>/heap-<pid>-<ts>-<jobs>.dump` and
/// `owner-fleet-truth.json`), generating it only if no earlier run completed.
pub fn generated_owner_fleet(out_dir: &Path, traced: bool) -> anyhow::Result<PathBuf> {
    let args: &[&str] = if traced { &[] } else { &["--untraced"] };
    generated_by_script("make_owner_fleet.rb", out_dir, args)
}

/// Runs `ruby tests/fixtures/ruby/SCRIPT OUT_DIR ARGS...` unless an earlier run completed (the
/// script writes a `.complete` marker last); returns `out_dir`.
fn generated_by_script(script: &str, out_dir: &Path, args: &[&str]) -> anyhow::Result<PathBuf> {
    if !out_dir.join(".complete").exists() {
        // A run cut short leaves a partial fleet behind: start clean.
        if out_dir.exists() {
            std::fs::remove_dir_all(out_dir)
                .with_context(|| format!("failed to clear {}", out_dir.display()))?;
        }
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("failed to create {}", out_dir.display()))?;
        let status = Command::new("ruby")
            .arg(fixture("ruby").join(script))
            .arg(out_dir)
            .args(args)
            .status()
            .context("failed to run ruby (install Debian's `ruby`, see scripts/test.sh)")?;
        if !status.success() || !out_dir.join(".complete").exists() {
            bail!("{script} {} failed with {status}", out_dir.display());
        }
    }
    Ok(out_dir.to_path_buf())
}

/// Runs `ruby scripts/heapy-oracle.rb ARGS...` and parses its JSON answer.
pub fn heapy_oracle(args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let output = Command::new("ruby")
        .arg(workspace_root().join("scripts/heapy-oracle.rb"))
        .args(args)
        .output()
        .context("failed to run ruby for the heapy oracle")?;
    if !output.status.success() {
        bail!(
            "heapy oracle {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("heapy oracle printed invalid JSON")
}

/// Returns the first file in `dir` (sorted by name) whose name ends with `suffix`.
pub fn files_with_suffix(dir: &Path, suffix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("failed to list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    Ok(files)
}

/// Returns whether tests must fail rather than skip when a tool or server is missing:
/// `HEAPFLEET_REQUIRE_SERVICES=1`, always set in CI.
pub fn services_required() -> bool {
    std::env::var("HEAPFLEET_REQUIRE_SERVICES").is_ok_and(|value| value == "1")
}

/// Returns whether `program` can run. When it cannot, a test skips with a note, unless
/// `HEAPFLEET_REQUIRE_SERVICES=1` (always set in CI), where a missing tool is a failure.
pub fn tool_available(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(
            !services_required(),
            "{program} is required (HEAPFLEET_REQUIRE_SERVICES=1) but cannot run; see scripts/test.sh"
        );
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "skipping: {program} is not installed (set HEAPFLEET_REQUIRE_SERVICES=1 to fail instead)"
            );
        }
    }
    found
}

/// Returns the address of a test server from the environment variable `variable`, which
/// scripts/test.sh sets after starting the server. When it is unset or empty a test skips with a
/// note, unless `HEAPFLEET_REQUIRE_SERVICES=1` (always set in CI), where that is a failure.
pub fn service_url(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                !services_required(),
                "{variable} is required (HEAPFLEET_REQUIRE_SERVICES=1) but not set; \
                 scripts/test.sh starts the server and sets it"
            );
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "skipping: {variable} is not set; scripts/test.sh starts the server and sets \
                     it (set HEAPFLEET_REQUIRE_SERVICES=1 to fail instead)"
                );
            }
            None
        }
    }
}

/// A dump parsed and aggregated in process, with its decoded object index.
pub struct AggregatedDump {
    /// The aggregates.
    pub aggregates: heapfleet_analysis::DumpAggregates,
    /// The object index, ready for [`heapfleet_analysis::diff`].
    pub index: heapfleet_analysis::IndexedDump,
}

/// Parses and aggregates a dump file (plain or gzip) with default options.
pub fn aggregate_file(path: &Path) -> anyhow::Result<AggregatedDump> {
    aggregate_file_with(path, &heapfleet_dump::ParseOptions::default())
}

/// Parses and aggregates a dump file with the given options.
pub fn aggregate_file_with(
    path: &Path,
    options: &heapfleet_dump::ParseOptions,
) -> anyhow::Result<AggregatedDump> {
    let file =
        std::fs::File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let mut chunks = Vec::new();
    let mut aggregator = heapfleet_analysis::DumpAggregator::new(|chunk| chunks.push(chunk));
    let parse = heapfleet_dump::parse_reader(file, options, &mut aggregator)?;
    let aggregates = aggregator.finish(parse);
    let mut entries = Vec::new();
    for chunk in &chunks {
        heapfleet_analysis::decode_chunk(chunk, &mut entries)?;
    }
    let index = heapfleet_analysis::IndexedDump {
        sites: aggregates.index_sites.clone(),
        entries,
    };
    Ok(AggregatedDump { aggregates, index })
}

/// Object count and memsize per generation (`None`: no generation), and the number of ROOT
/// lines, counted with serde_json: an independent truth for dumps whose lines are valid JSON.
pub fn count_with_serde_json(
    path: &Path,
) -> (std::collections::BTreeMap<Option<u64>, (u64, u64)>, u64) {
    use std::io::BufRead;

    let file = std::fs::File::open(path).expect("dump opens");
    let reader: Box<dyn std::io::Read> = if path.to_string_lossy().ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut per_generation = std::collections::BTreeMap::<Option<u64>, (u64, u64)>::new();
    let mut roots = 0;
    for line in std::io::BufReader::new(reader).split(b'\n') {
        let line = line.expect("dump reads");
        let value: serde_json::Value =
            serde_json::from_slice(&line).expect("every line is valid JSON");
        match value["type"].as_str() {
            Some("ROOT") => roots += 1,
            Some("SHAPE") => {}
            _ => {
                let bucket = per_generation
                    .entry(value["generation"].as_u64())
                    .or_default();
                bucket.0 += 1;
                bucket.1 += value["memsize"].as_u64().unwrap_or(0);
            }
        }
    }
    (per_generation, roots)
}

/// Returns a process's peak resident set size (VmHWM) from /proc.
pub fn peak_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// Runs `command` to its end with its output discarded, sampling its peak RSS from /proc
/// every 20 ms (benchmarks of other tools). Returns its exit status and that peak.
pub fn run_sampling_peak_rss(
    command: &mut Command,
) -> anyhow::Result<(std::process::ExitStatus, u64)> {
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("failed to start {:?}", command.get_program()))?;
    let mut peak_rss_bytes = 0;
    loop {
        if let Some(rss) = peak_rss_of(child.id()) {
            peak_rss_bytes = peak_rss_bytes.max(rss);
        }
        if let Some(status) = child.try_wait()? {
            return Ok((status, peak_rss_bytes));
        }
        // Polling a child process: a short blocking wait is the point here.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
