//! `heapfleet diff`: identity-aware diff of dumps of one process.

use anyhow::bail;
use heapfleet_analysis::{DiffResult, diff};
use heapfleet_catalog::DumpRecord;
use serde_json::json;

use crate::cli::DiffArgs;
use crate::local::Local;
use crate::output::{Format, TableBuilder, bytes, count, print_json, print_line, time};

pub(crate) async fn run(local: &Local, args: DiffArgs, format: Format) -> anyhow::Result<()> {
    let mut dumps = Vec::with_capacity(args.dumps.len());
    for reference in &args.dumps {
        dumps.push(local.resolve(reference).await?);
    }
    let result = diff_dumps(local, &mut dumps).await?;
    print(&dumps, &result, args.top, format)
}

/// Orders `dumps` by time, checks they are distinct dumps of one process, and diffs them.
pub(crate) async fn diff_dumps(
    local: &Local,
    dumps: &mut [DumpRecord],
) -> anyhow::Result<DiffResult> {
    dumps.sort_by(|left, right| {
        (left.taken_at_unix, &left.id).cmp(&(right.taken_at_unix, &right.id))
    });
    if let Some(pair) = dumps.windows(2).find(|pair| pair[0].id == pair[1].id) {
        bail!("dump {} is given twice", pair[0].id);
    }
    if let Some(other) = dumps.iter().find(|dump| dump.process != dumps[0].process) {
        bail!(
            "dumps {} and {} come from different processes ({} pid {} vs {} pid {}); a diff compares dumps of one process",
            dumps[0].id,
            other.id,
            dumps[0].process.host,
            dumps[0].process.pid,
            other.process.host,
            other.process.pid
        );
    }
    let mut indexes = Vec::with_capacity(dumps.len());
    for dump in dumps.iter() {
        indexes.push(local.store.load_index(dump.id.as_str()).await?);
    }
    Ok(diff(&indexes)?)
}

/// Prints a diff result.
pub(crate) fn print(
    dumps: &[DumpRecord],
    result: &DiffResult,
    top: usize,
    format: Format,
) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(&json!({
            "dumps": dumps.iter().map(|dump| &dump.id).collect::<Vec<_>>(),
            "rows": result.rows.iter().take(top).collect::<Vec<_>>(),
            "total": result.total,
        })),
        Format::Table => {
            let first = &dumps[0];
            let last = &dumps[dumps.len() - 1];
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
            for row in result.rows.iter().take(top) {
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
                count(result.total.count),
                bytes(result.total.memsize),
                result.rows.len().min(top),
                result.rows.len()
            ))
        }
    }
}
