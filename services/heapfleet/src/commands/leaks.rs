//! `heapfleet leaks`: the sites whose retained objects keep rising, ranked.

use heapfleet_analysis::{LeakRank, LeakSuspect};
use heapfleet_query::Queries;
use serde_json::{Value, json};

use crate::cli::{LeakRankArg, LeaksArgs};
use crate::commands::scope::scope_query;
use crate::output::{Format, SiteNames, TableBuilder, bytes, count, print_json, print_line, time};

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
            let names = site_names(&report.suspects);
            if !names.root().is_empty() && !report.suspects.is_empty() {
                print_line(&format!("app files under {}", names.root()))?;
            }
            if args.wide {
                print_wide(&report.suspects, &names)?;
            } else {
                print_narrow(&report.suspects, &names)?;
            }
            print_line(&format!(
                "{} processes, {} dumps; ranked by {}; --wide and --format json say more",
                count(report.processes_analysed as u64),
                count(report.dumps_analysed as u64),
                match rank {
                    LeakRank::Memory => "memory added per dump",
                    LeakRank::Objects => "object growth",
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

/// Short names for every file the table shows: the suspects' sites and their owners'.
fn site_names(suspects: &[LeakSuspect]) -> SiteNames {
    SiteNames::new(suspects.iter().flat_map(|suspect| {
        let owners = suspect
            .held_by
            .iter()
            .filter_map(|held| held.owner.as_ref()?.file.as_deref());
        suspect.site.file.as_deref().into_iter().chain(owners)
    }))
}

/// `file:line` with the file's short name.
fn short_location(names: &SiteNames, file: &str, line: Option<u32>) -> String {
    match line {
        Some(line) => format!("{}:{line}", names.file(file)),
        None => names.file(file),
    }
}

/// Where a suspect is: its site, or for a growing owner known only by its path, that path.
fn location(suspect: &LeakSuspect, names: &SiteNames) -> String {
    match (&suspect.owner, &suspect.site.file) {
        (Some(owner), None) => owner.path.join(" › "),
        (_, Some(file)) => short_location(names, file, suspect.site.line),
        (None, None) => suspect.site.location(),
    }
}

/// For a growing owner what it gains per dump; else the main owner: the first growing one,
/// else the first.
fn main_owner(suspect: &LeakSuspect, names: &SiteNames) -> String {
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
                (Some(file), Some(line)) => {
                    format!("{name} {}", short_location(names, file, Some(line)))
                }
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

/// The hosts a suspect grows on: their names, or the first and how many more when there are
/// over two (`--wide` and JSON list them all).
fn hosts(hosts: &[String]) -> String {
    match hosts {
        [first, _, _, ..] => format!("{first} +{}", hosts.len() - 1),
        _ => hosts.join(", "),
    }
}

/// The bytes a suspect adds per dump, retained where known.
fn bytes_per_dump(suspect: &LeakSuspect) -> String {
    bytes(heapfleet_analysis::bytes_growth(suspect) as u64)
}

fn print_narrow(suspects: &[LeakSuspect], names: &SiteNames) -> anyhow::Result<()> {
    let mut table = TableBuilder::new(
        &[
            "leak",
            "site",
            "what",
            "growing",
            "hosts",
            "bytes/dump",
            "held by",
        ],
        &[true, false, false, true, false, true, false],
    )
    .keep_whole(1);
    for suspect in suspects {
        table.row(vec![
            suspect.leak.to_string(),
            location(suspect, names),
            what(suspect),
            format!("{}/{}", suspect.processes_growing, suspect.processes_total),
            hosts(&suspect.hosts_growing),
            bytes_per_dump(suspect),
            main_owner(suspect, names),
        ]);
    }
    table.print(EMPTY_NOTE)
}

fn print_wide(suspects: &[LeakSuspect], names: &SiteNames) -> anyhow::Result<()> {
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
    )
    .keep_whole(2);
    for suspect in suspects {
        table.row(vec![
            suspect.leak.to_string(),
            format!("{:.2}", suspect.score),
            location(suspect, names),
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
            main_owner(suspect, names),
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
