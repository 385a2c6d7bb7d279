//! Parse + aggregate benchmark: heapfleet and heapy side by side on the same real dump.
//!
//! `cargo bench -p heapfleet-tests --bench parse [-- DUMP]` generates a ~600 MB dump with Ruby
//! (allocation tracing on) unless a path is given, then prints MB/s, objects/s and peak RSS for:
//!
//! * `heapfleet`: parse + aggregate (per-site and per-generation totals, duplicated strings,
//!   class names) on one core;
//! * `heapfleet+index`: the same plus encoding the object index that diffs read, which is what
//!   an ingest does;
//!
//! each in a child process (this same binary re-run with `--child`) so its peak RSS is its own;
//! * heapy (`heapy read DUMP`, Debian's ruby-heapy), once; skipped with `--no-heapy`.
//!
//! Output is a table for people and, with `--json`, one JSON object for scripts.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use heapfleet_analysis::DumpAggregator;
use heapfleet_dump::{ParseOptions, parse_reader};
use serde::{Deserialize, Serialize};

/// One measured run.
#[derive(Debug, Serialize, Deserialize)]
struct Measurement {
    tool: String,
    bytes: u64,
    objects: u64,
    seconds: f64,
    peak_rss_bytes: u64,
}

impl Measurement {
    fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds
    }

    fn objects_per_second(&self) -> f64 {
        self.objects as f64 / self.seconds
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    if let Some(position) = args.iter().position(|arg| arg == "--child") {
        let path = args
            .get(position + 1)
            .context("--child needs a dump path")?;
        let with_index = args.iter().any(|arg| arg == "--with-index");
        let measurement = measure_heapfleet_in_process(Path::new(path), with_index)?;
        println!("{}", serde_json::to_string(&measurement)?);
        return Ok(());
    }
    let json = args.iter().any(|arg| arg == "--json");
    let run_heapy = !args.iter().any(|arg| arg == "--no-heapy");
    let dump = match args.iter().find(|arg| !arg.starts_with("--")) {
        Some(path) => PathBuf::from(path),
        None => generated_large_dump()?,
    };
    let size = std::fs::metadata(&dump)
        .with_context(|| format!("failed to stat {}", dump.display()))?
        .len();
    eprintln!("dump: {} ({:.0} MB)", dump.display(), size as f64 / 1e6);

    // Best of three each: the first run also warms the page cache for everyone after it.
    let mut measurements = Vec::new();
    for with_index in [false, true] {
        let mut best: Option<Measurement> = None;
        for _ in 0..3 {
            let run = measure_heapfleet_in_child(&dump, with_index)?;
            if best.as_ref().is_none_or(|best| run.seconds < best.seconds) {
                best = Some(run);
            }
        }
        measurements.push(best.context("no heapfleet run")?);
    }
    if run_heapy {
        measurements.push(measure_heapy(&dump, measurements[0].objects)?);
    }

    if json {
        println!("{}", serde_json::to_string_pretty(&measurements)?);
    } else {
        println!(
            "{:<16} {:>10} {:>12} {:>14} {:>10} {:>14}",
            "tool", "MB", "seconds", "MB/s", "Mobj/s", "peak RSS MB"
        );
        for measurement in &measurements {
            println!(
                "{:<16} {:>10.0} {:>12.2} {:>14.0} {:>10.2} {:>14.1}",
                measurement.tool,
                measurement.bytes as f64 / 1e6,
                measurement.seconds,
                measurement.megabytes_per_second(),
                measurement.objects_per_second() / 1e6,
                measurement.peak_rss_bytes as f64 / 1e6,
            );
        }
    }
    Ok(())
}

/// Generates (once) the large realistic dump with Ruby.
fn generated_large_dump() -> anyhow::Result<PathBuf> {
    let dir = heapfleet_tests::generated_dir().join("large");
    eprintln!(
        "using (or generating once, with Ruby) a ~600 MB dump in {}",
        dir.display()
    );
    heapfleet_tests::generated_dump("large", &dir, &["--target-mb", "600"])
}

/// Parses and aggregates on this thread; peak RSS is this process's high-water mark.
fn measure_heapfleet_in_process(dump: &Path, with_index: bool) -> anyhow::Result<Measurement> {
    let file =
        std::fs::File::open(dump).with_context(|| format!("failed to open {}", dump.display()))?;
    let start = Instant::now();
    let mut index_bytes = 0u64;
    let aggregates = if with_index {
        let mut aggregator =
            DumpAggregator::new(|chunk: Vec<u8>| index_bytes += chunk.len() as u64);
        let stats = parse_reader(file, &ParseOptions::default(), &mut aggregator)?;
        aggregator.finish(stats)
    } else {
        let mut aggregator = DumpAggregator::without_index();
        let stats = parse_reader(file, &ParseOptions::default(), &mut aggregator)?;
        aggregator.finish(stats)
    };
    let seconds = start.elapsed().as_secs_f64();
    std::hint::black_box((&aggregates, index_bytes));
    Ok(Measurement {
        tool: if with_index {
            "heapfleet+index"
        } else {
            "heapfleet"
        }
        .to_owned(),
        bytes: aggregates.parse.bytes,
        objects: aggregates.parse.objects,
        seconds,
        peak_rss_bytes: heapfleet_tests::peak_rss_of(std::process::id()).unwrap_or(0),
    })
}

fn measure_heapfleet_in_child(dump: &Path, with_index: bool) -> anyhow::Result<Measurement> {
    let output = Command::new(std::env::current_exe()?)
        .arg("--child")
        .arg(dump)
        .args(with_index.then_some("--with-index"))
        .output()
        .context("failed to re-run the bench binary")?;
    if !output.status.success() {
        bail!(
            "heapfleet child run failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("child printed no measurement")
}

/// Runs `heapy read DUMP`, sampling its peak RSS from /proc while it runs.
fn measure_heapy(dump: &Path, objects: u64) -> anyhow::Result<Measurement> {
    let bytes = std::fs::metadata(dump)?.len();
    let start = Instant::now();
    let (status, peak_rss_bytes) =
        heapfleet_tests::run_sampling_peak_rss(Command::new("heapy").arg("read").arg(dump))
            .context("heapy (install Debian's ruby-heapy, see .ci/run)")?;
    if !status.success() {
        bail!("heapy failed with {status}");
    }
    Ok(Measurement {
        tool: "heapy".to_owned(),
        bytes,
        objects,
        seconds: start.elapsed().as_secs_f64(),
        peak_rss_bytes,
    })
}
