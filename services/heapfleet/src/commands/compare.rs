//! `heapfleet compare`: two selections of processes, site by site.

use heapfleet_query::Queries;
use serde_json::json;

use crate::cli::CompareArgs;
use crate::commands::scope::parse_selector;
use crate::output::{Format, TableBuilder, print_json, print_line};

pub(crate) async fn run(
    queries: &dyn Queries,
    args: CompareArgs,
    format: Format,
) -> anyhow::Result<()> {
    let a = parse_selector(&args.a)?;
    let b = parse_selector(&args.b)?;
    let comparison = queries.compare(&a, &b, args.top).await?;
    match format {
        Format::Json => print_json(&json!({
            "a": { "selector": args.a, "processes": comparison.a_processes },
            "b": { "selector": args.b, "processes": comparison.b_processes },
            "rows": comparison.rows.iter().map(|row| json!({
                "file": row.site.file,
                "line": row.site.line,
                "type": row.site.object_type,
                "class": row.site.class_name,
                "a_growth_per_dump": row.a_growth_per_dump,
                "b_growth_per_dump": row.b_growth_per_dump,
                "a_count": row.a_count,
                "b_count": row.b_count,
                "delta_growth_per_dump": row.delta_growth_per_dump,
                "delta_count": row.delta_count,
            })).collect::<Vec<_>>(),
        })),
        Format::Table => {
            print_line(&format!(
                "A = {} ({} processes), B = {} ({} processes); per process means, growth = retained objects per dump",
                args.a, comparison.a_processes, args.b, comparison.b_processes
            ))?;
            let mut table = TableBuilder::new(
                &[
                    "site",
                    "type",
                    "class",
                    "growth A",
                    "growth B",
                    "Δ growth",
                    "count A",
                    "count B",
                    "Δ count",
                ],
                &[false, false, false, true, true, true, true, true, true],
            );
            for row in &comparison.rows {
                table.row(vec![
                    row.site.location(),
                    row.site.object_type.to_string(),
                    row.site.class_name.clone().unwrap_or_default(),
                    format!("{:.1}", row.a_growth_per_dump),
                    format!("{:.1}", row.b_growth_per_dump),
                    format!("{:+.1}", row.delta_growth_per_dump),
                    format!("{:.0}", row.a_count),
                    format!("{:.0}", row.b_count),
                    format!("{:+.0}", row.delta_count),
                ]);
            }
            table.print("no sites (each process needs at least 3 ingested dumps)")
        }
    }
}
