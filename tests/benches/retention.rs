//! Retention benchmark: the ingest, the ownership pass and reap side by side on the same dump.
//!
//! `cargo bench -p heapfleet-tests --bench retention [-- DUMP] [--json] [--no-reap]` uses the
//! ~600 MB dump the parse bench generates (generating it once with Ruby) unless a path is given,
//! then measures on one core, best of three, each run in a child process (this binary re-run
//! with `--child`) so that its peak RSS is its own:
//!
//! * `ingest`: what the aggregate ingest computes without the ownership pass: parse, aggregate
//!   by site and generation, and encode the object index;
//! * `retention`: the ownership pass alone: parse into the compact object graph, dominators
//!   (SEMI-NCA), retained sizes, owners per site and the top of the tree; its two halves are
//!   printed too (graph = parse into the graph, analysis = the rest);
//! * `reap`: reap 0.3.3 on the same file (`cargo install reap --version 0.3.3 --locked`), once;
//!   skipped with `--no-reap` or when it is not installed.
//!
//! It prints seconds and peak RSS, and checks the pass's peak against the memory budget of
//! 40 bytes per object plus 4 per reference.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use heapfleet_analysis::{DumpAggregator, OwnershipAnalysis, OwnershipOptions};
use heapfleet_dump::{ParseOptions, parse_reader};
use heapfleet_ingest::{DEFAULT_MAX_OWNERSHIP_OBJECTS, dump_graph};
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOCATOR: heapfleet_service::Allocator = heapfleet_service::Allocator {};

/// The pass's memory budget: bytes per object and per reference at peak.
const BUDGET_PER_OBJECT: u64 = 40;
const BUDGET_PER_REFERENCE: u64 = 4;

/// One measured run.
#[derive(Debug, Serialize, Deserialize)]
struct Measurement {
    tool: String,
    seconds: f64,
    peak_rss_bytes: u64,
    /// Objects in the dump (0 where the tool does not say).
    objects: u64,
    /// References between objects (retention runs only).
    references: u64,
    /// Seconds spent parsing into the graph (retention runs only).
    graph_seconds: f64,
    /// Bytes of the graph's own arrays (retention runs only).
    graph_bytes: u64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    if let Some(position) = args.iter().position(|arg| arg == "--child") {
        let what = args.get(position + 1).context("--child needs a step")?;
        let path = args
            .get(position + 2)
            .context("--child needs a dump path")?;
        let measurement = match what.as_str() {
            "ingest" => measure_ingest(Path::new(path))?,
            "retention" => {
                let expected: u64 = match args.get(position + 3) {
                    Some(count) => count.parse().context("objects count")?,
                    None => 0,
                };
                measure_retention(Path::new(path), expected)?
            }
            other => bail!("unknown step {other:?}"),
        };
        println!("{}", serde_json::to_string(&measurement)?);
        return Ok(());
    }
    let json = args.iter().any(|arg| arg == "--json");
    let run_reap = !args.iter().any(|arg| arg == "--no-reap");
    let dump = match args.iter().find(|arg| !arg.starts_with("--")) {
        Some(path) => PathBuf::from(path),
        None => {
            let dir = heapfleet_tests::generated_dir().join("large");
            eprintln!(
                "using (or generating once, with Ruby) a ~600 MB dump in {}",
                dir.display()
            );
            heapfleet_tests::generated_dump("large", &dir, &["--target-mb", "600"])?
        }
    };
    let size = std::fs::metadata(&dump)
        .with_context(|| format!("failed to stat {}", dump.display()))?
        .len();
    eprintln!("dump: {} ({:.0} MB)", dump.display(), size as f64 / 1e6);

    // Best of three each: the first run also warms the page cache for everyone after it.
    let mut measurements = Vec::new();
    for step in ["ingest", "retention"] {
        let mut best: Option<Measurement> = None;
        // The pass is given the object count the ingest found, as an ingester is.
        let expected = measurements
            .first()
            .map_or(0, |ingest: &Measurement| ingest.objects);
        for _ in 0..3 {
            let run = measure_in_child(&dump, step, expected)?;
            if best.as_ref().is_none_or(|best| run.seconds < best.seconds) {
                best = Some(run);
            }
        }
        measurements.push(best.context("no run")?);
    }
    if run_reap {
        match measure_reap(&dump) {
            Ok(measurement) => measurements.push(measurement),
            Err(error) => eprintln!("reap skipped: {error:#}"),
        }
    }

    let retention = &measurements[1];
    let budget =
        retention.objects * BUDGET_PER_OBJECT + retention.references * BUDGET_PER_REFERENCE;
    if json {
        let report = serde_json::json!({
            "dump_bytes": size,
            "measurements": measurements,
            "budget_bytes": budget,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{:<12} {:>10} {:>14}", "step", "seconds", "peak RSS MB");
        for measurement in &measurements {
            println!(
                "{:<12} {:>10.2} {:>14.1}",
                measurement.tool,
                measurement.seconds,
                measurement.peak_rss_bytes as f64 / 1e6,
            );
        }
        let ingest = &measurements[0];
        println!();
        println!(
            "retention: {} objects, {} references; graph {:.2} s, analysis {:.2} s",
            retention.objects,
            retention.references,
            retention.graph_seconds,
            retention.seconds - retention.graph_seconds,
        );
        println!(
            "retention / ingest: {:.2}x; ingest + retention / ingest: {:.2}x",
            retention.seconds / ingest.seconds,
            (ingest.seconds + retention.seconds) / ingest.seconds,
        );
        println!(
            "memory: graph arrays {:.1} MB, peak RSS {:.1} MB, budget {:.1} MB \
             (40 B/object + 4 B/reference): {}",
            retention.graph_bytes as f64 / 1e6,
            retention.peak_rss_bytes as f64 / 1e6,
            budget as f64 / 1e6,
            if retention.peak_rss_bytes <= budget {
                "within"
            } else {
                "OVER"
            },
        );
    }
    Ok(())
}

/// Parse, aggregate and encode the object index, as the aggregate ingest does.
fn measure_ingest(dump: &Path) -> anyhow::Result<Measurement> {
    let file = open(dump)?;
    let start = Instant::now();
    let mut index_bytes = 0u64;
    let mut aggregator = DumpAggregator::new(|chunk: Vec<u8>| index_bytes += chunk.len() as u64);
    let stats = parse_reader(file, &ParseOptions::default(), &mut aggregator)?;
    let aggregates = aggregator.finish(stats);
    let seconds = start.elapsed().as_secs_f64();
    std::hint::black_box((&aggregates, index_bytes));
    Ok(Measurement {
        tool: "ingest".to_owned(),
        seconds,
        peak_rss_bytes: heapfleet_tests::peak_rss_of(std::process::id()).unwrap_or(0),
        objects: aggregates.parse.objects,
        references: 0,
        graph_seconds: 0.0,
        graph_bytes: 0,
    })
}

/// The ownership pass: the graph, then dominators, retained sizes and the per-site summary.
fn measure_retention(dump: &Path, expected_objects: u64) -> anyhow::Result<Measurement> {
    let file = open(dump)?;
    let start = Instant::now();
    let mut graph = dump_graph(
        file,
        &ParseOptions::default(),
        DEFAULT_MAX_OWNERSHIP_OBJECTS,
        expected_objects,
    )?;
    let graph_seconds = start.elapsed().as_secs_f64();
    let graph_bytes = graph.heap_bytes() as u64;
    let summary = OwnershipAnalysis::new(&mut graph).summary(&OwnershipOptions::default());
    let seconds = start.elapsed().as_secs_f64();
    std::hint::black_box(&summary);
    Ok(Measurement {
        tool: "retention".to_owned(),
        seconds,
        peak_rss_bytes: heapfleet_tests::peak_rss_of(std::process::id()).unwrap_or(0),
        objects: graph.object_count() as u64,
        references: graph.edge_count() as u64,
        graph_seconds,
        graph_bytes,
    })
}

fn open(dump: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(dump).with_context(|| format!("failed to open {}", dump.display()))
}

fn measure_in_child(dump: &Path, step: &str, expected: u64) -> anyhow::Result<Measurement> {
    // One core, as the goals are stated: pinned with taskset where it exists.
    let exe = std::env::current_exe()?;
    let mut command = if heapfleet_tests::tool_available("taskset") {
        let mut command = Command::new("taskset");
        command.args(["-c", "0"]).arg(exe);
        command
    } else {
        Command::new(exe)
    };
    let output = command
        .arg("--child")
        .arg(step)
        .arg(dump)
        .arg(expected.to_string())
        .output()
        .context("failed to re-run the bench binary")?;
    if !output.status.success() {
        bail!(
            "{step} child run failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("child printed no measurement")
}

/// Runs reap on the dump once, pinned to one core, sampling its peak RSS.
fn measure_reap(dump: &Path) -> anyhow::Result<Measurement> {
    if !heapfleet_tests::tool_available("reap") {
        bail!("reap is not installed (cargo install reap --version 0.3.3 --locked)");
    }
    let start = Instant::now();
    let mut command = if heapfleet_tests::tool_available("taskset") {
        let mut command = Command::new("taskset");
        command.args(["-c", "0", "reap"]);
        command
    } else {
        Command::new("reap")
    };
    let (status, peak_rss_bytes) =
        heapfleet_tests::run_sampling_peak_rss(command.args(["--count", "25"]).arg(dump))?;
    if !status.success() {
        bail!("reap failed with {status}");
    }
    Ok(Measurement {
        tool: "reap".to_owned(),
        seconds: start.elapsed().as_secs_f64(),
        peak_rss_bytes,
        objects: 0,
        references: 0,
        graph_seconds: 0.0,
        graph_bytes: 0,
    })
}
