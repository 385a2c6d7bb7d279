//! `heapfleet diff`: identity-aware diff of dumps of one process.

use heapfleet_query::Queries;
use heapfleet_query::model::DumpDiff;
use serde_json::json;

use crate::cli::DiffArgs;
use crate::output::{Format, TableBuilder, bytes, count, print_json, print_line, time};

pub(crate) async fn run(
    queries: &dyn Queries,
    args: DiffArgs,
    format: Format,
) -> anyhow::Result<()> {
    let diff = queries.diff(&args.dumps, args.top).await?;
    print(&diff, format)
}

/// Prints a diff.
pub(crate) fn print(diff: &DumpDiff, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(&json!({
            "dumps": diff.dumps.iter().map(|dump| &dump.id).collect::<Vec<_>>(),
            "rows": diff.rows,
            "total": diff.total,
            "row_count": diff.row_count,
        })),
        Format::Table => {
            let (Some(first), Some(last)) = (diff.dumps.first(), diff.dumps.last()) else {
                return print_line("no dumps");
            };
            print_line(&format!(
                "retained: allocated after {} ({}) and still alive in every later dump up to {} ({})",
                first.id,
                time(first.taken_at_unix),
                last.id,
                time(last.taken_at_unix)
            ))?;
            let mut table = TableBuilder::new(
                &["type", "site", "class", "objects", "memsize", "bytesize"],
                &[false, false, false, true, true, true],
            );
            for row in &diff.rows {
                table.row(vec![
                    row.site.object_type.to_string(),
                    row.site.location(),
                    row.site.class_name.clone().unwrap_or_default(),
                    count(row.totals.count),
                    bytes(row.totals.memsize),
                    bytes(row.totals.bytesize),
                ]);
            }
            table.print("nothing retained")?;
            print_line(&format!(
                "total retained: {} objects, {} ({} of {} sites shown)",
                count(diff.total.count),
                bytes(diff.total.memsize),
                diff.rows.len(),
                diff.row_count
            ))
        }
    }
}
