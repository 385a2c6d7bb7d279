//! `heapfleet leaks`: the sites whose retained objects keep rising, ranked.

use heapfleet_analysis::{LeakRank, LeakSuspect};
use heapfleet_query::Queries;
use serde_json::{Value, json};

use crate::cli::{LeakRankArg, LeaksArgs};
use crate::commands::scope::scope_query;
use crate::output::{Format, TableBuilder, bytes, count, print_json, print_line, time};

pub(crate) async fn run(
    queries: &dyn Queries,
    args: LeaksArgs,
    format: Format,
) -> anyhow::Result<()> {
    let rank = match args.rank {
        LeakRankArg::Memory => LeakRank::Memory,
        LeakRankArg::Objects => LeakRank::Objects,
    };
    let report = queries
        .leak_report(&scope_query(&args.scope), args.top, rank)
        .await?;
    match format {
        Format::Json => print_json(&json!({
            "suspects": report.suspects.iter().map(suspect_json).collect::<Vec<_>>(),
            "processes_analysed": report.processes_analysed,
            "dumps_analysed": report.dumps_analysed,
        })),
        Format::Table => {
            if args.wide {
                print_wide(&report.suspects)?;
            } else {
                print_narrow(&report.suspects)?;
            }
            print_line(&format!(
                "{} processes and {} dumps analysed; ranked by {}; `--format json` has each \
                 suspect's evidence and owners",
                count(report.processes_analysed as u64),
                count(report.dumps_analysed as u64),
                match rank {
                    LeakRank::Memory => "memory added per dump",
                    LeakRank::Objects => "object growth (--rank objects)",
                }
            ))
        }
    }
}

const EMPTY_NOTE: &str = "no site keeps growing (a process needs at least 3 ingested dumps)";

/// `String`, or the type when the class is unknown; a growing owner is a container.
fn what(suspect: &LeakSuspect) -> String {
    let name = suspect
        .site
        .class_name
        .clone()
        .unwrap_or_else(|| suspect.site.object_type.to_string());
    if suspect.owner.is_some() {
        format!("{name} (container)")
    } else {
        name
    }
}

/// Where a suspect is: its site, or for a growing owner known only by its path, that path.
fn location(suspect: &LeakSuspect) -> String {
    match &suspect.owner {
        Some(owner) if suspect.site.file.is_none() => owner.path.join(" › "),
        _ => suspect.site.location(),
    }
}

/// For a growing owner what it gains per dump; else the main owner: the first growing one,
/// else the first.
fn main_owner(suspect: &LeakSuspect) -> String {
    if let Some(owner) = &suspect.owner {
        let held: Vec<String> = owner
            .holds
            .iter()
            .filter(|held| held.objects_per_dump > 0.0)
            .take(3)
            .map(|held| {
                let name = held
                    .site
                    .class_name
                    .clone()
                    .unwrap_or_else(|| held.site.object_type.to_string());
                format!("+{:.0} {name}", held.objects_per_dump)
            })
            .collect();
        return format!("holds {} a dump", held.join(", "));
    }
    let Some(held) = suspect
        .held_by
        .iter()
        .find(|held| held.growing)
        .or_else(|| suspect.held_by.first())
    else {
        return String::new();
    };
    let owner = match &held.owner {
        None => format!("root {}", held.root),
        Some(site) => {
            let name = site
                .class_name
                .clone()
                .unwrap_or_else(|| site.object_type.to_string());
            match (&site.file, site.line) {
                (Some(file), Some(line)) => format!("{name} {file}:{line}"),
                _ => format!("{name} via {}", held.path.join(" › ")),
            }
        }
    };
    if held.growing {
        owner
    } else {
        format!("{owner} (not growing)")
    }
}

/// The bytes a suspect adds per dump, retained where known.
fn bytes_per_dump(suspect: &LeakSuspect) -> String {
    bytes(heapfleet_analysis::bytes_growth(suspect) as u64)
}

fn print_narrow(suspects: &[LeakSuspect]) -> anyhow::Result<()> {
    let mut table = TableBuilder::new(
        &[
            "leak",
            "site",
            "what",
            "growing in",
            "hosts",
            "bytes/dump",
            "held by",
        ],
        &[true, false, false, false, false, true, false],
    );
    for suspect in suspects {
        table.row(vec![
            suspect.leak.to_string(),
            location(suspect),
            what(suspect),
            format!("{}/{}", suspect.processes_growing, suspect.processes_total),
            suspect.hosts_growing.join(", "),
            bytes_per_dump(suspect),
            main_owner(suspect),
        ]);
    }
    table.print(EMPTY_NOTE)
}

fn print_wide(suspects: &[LeakSuspect]) -> anyhow::Result<()> {
    let mut table = TableBuilder::new(
        &[
            "leak",
            "score",
            "site",
            "type",
            "class",
            "growing in",
            "hosts",
            "objects/dump",
            "bytes/dump",
            "retained",
            "objects/hour",
            "per 1k jobs",
            "since",
            "held by",
        ],
        &[
            true, true, false, false, false, false, false, true, true, true, true, true, false,
            false,
        ],
    );
    for suspect in suspects {
        table.row(vec![
            suspect.leak.to_string(),
            format!("{:.2}", suspect.score),
            location(suspect),
            suspect.site.object_type.to_string(),
            suspect.site.class_name.clone().unwrap_or_default(),
            format!(
                "{}/{} processes",
                suspect.processes_growing, suspect.processes_total
            ),
            format!(
                "{} of {}",
                suspect.hosts_growing.join(", "),
                suspect.hosts_total
            ),
            format!("{:.1}", suspect.growth_per_dump),
            bytes_per_dump(suspect),
            suspect.retained_bytes.map_or_else(String::new, bytes),
            suspect
                .growth_per_hour
                .map_or_else(String::new, |rate| format!("{rate:.1}")),
            suspect
                .growth_per_1000_jobs
                .map_or_else(String::new, |rate| format!("{rate:.1}")),
            suspect
                .since
                .as_ref()
                .map_or_else(String::new, |since| time(since.taken_at_unix)),
            main_owner(suspect),
        ]);
    }
    table.print(EMPTY_NOTE)
}

/// A suspect as JSON, its site flattened into `file`, `line`, `type` and `class`.
fn suspect_json(suspect: &LeakSuspect) -> Value {
    json!({
        "file": suspect.site.file,
        "line": suspect.site.line,
        "type": suspect.site.object_type,
        "class": suspect.site.class_name,
        "score": suspect.score,
        "confidence": suspect.confidence,
        "processes_growing": suspect.processes_growing,
        "processes_total": suspect.processes_total,
        "hosts_growing": suspect.hosts_growing,
        "hosts_total": suspect.hosts_total,
        "growth_per_dump": suspect.growth_per_dump,
        "bytes_per_dump": suspect.bytes_per_dump,
        "growth_per_hour": suspect.growth_per_hour,
        "bytes_per_hour": suspect.bytes_per_hour,
        "growth_per_1000_jobs": suspect.growth_per_1000_jobs,
        "since": suspect.since,
        "retained_bytes": suspect.retained_bytes,
        "retained_bytes_per_dump": suspect.retained_bytes_per_dump,
        "held_by": suspect.held_by,
        "owner": suspect.owner,
        "leak": suspect.leak,
        "evidence": suspect.evidence,
    })
}
