//! `heapfleet leaks`: the sites whose retained objects keep rising, ranked.

use heapfleet_analysis::LeakSuspect;
use heapfleet_query::Queries;
use serde_json::{Value, json};

use crate::cli::LeaksArgs;
use crate::commands::scope::scope_query;
use crate::output::{Format, TableBuilder, bytes, count, print_json, print_line, time};

pub(crate) async fn run(
    queries: &dyn Queries,
    args: LeaksArgs,
    format: Format,
) -> anyhow::Result<()> {
    let report = queries
        .leak_report(&scope_query(&args.scope), args.top)
        .await?;
    match format {
        Format::Json => print_json(&json!({
            "suspects": report.suspects.iter().map(suspect_json).collect::<Vec<_>>(),
            "processes_analysed": report.processes_analysed,
            "dumps_analysed": report.dumps_analysed,
        })),
        Format::Table => {
            let mut table = TableBuilder::new(
                &[
                    "#",
                    "score",
                    "site",
                    "type",
                    "class",
                    "growing in",
                    "hosts",
                    "objects/dump",
                    "bytes/dump",
                    "objects/hour",
                    "per 1k jobs",
                    "since",
                ],
                &[
                    true, true, false, false, false, false, false, true, true, true, true, false,
                ],
            );
            for (rank, suspect) in report.suspects.iter().enumerate() {
                table.row(vec![
                    (rank + 1).to_string(),
                    format!("{:.2}", suspect.score),
                    suspect.site.location(),
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
                    bytes(suspect.bytes_per_dump.max(0.0) as u64),
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
                ]);
            }
            table.print("no site keeps growing (a process needs at least 3 ingested dumps)")?;
            print_line(&format!(
                "{} processes and {} dumps analysed; `--format json` has each suspect's evidence",
                count(report.processes_analysed as u64),
                count(report.dumps_analysed as u64)
            ))
        }
    }
}

/// A suspect as JSON, its site flattened into `file`, `line`, `type` and `class`.
fn suspect_json(suspect: &LeakSuspect) -> Value {
    json!({
        "file": suspect.site.file,
        "line": suspect.site.line,
        "type": suspect.site.object_type,
        "class": suspect.site.class_name,
        "score": suspect.score,
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
        "evidence": suspect.evidence,
    })
}
