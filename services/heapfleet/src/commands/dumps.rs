//! `heapfleet dumps`: the catalog as a table.

use heapfleet_catalog::DumpRecord;
use heapfleet_query::Queries;
use heapfleet_query::model::DumpQuery;

use crate::cli::DumpsArgs;
use crate::output::{Format, TableBuilder, bytes, count, print_json, print_line, time};

pub(crate) async fn run(
    queries: &dyn Queries,
    args: DumpsArgs,
    format: Format,
) -> anyhow::Result<()> {
    let query = DumpQuery {
        host: args.host,
        pid: args.pid,
        role: args.role,
        labels: args.labels.into_iter().collect(),
        ..DumpQuery::default()
    };
    let dumps = queries.list_dumps(&query).await?;
    match format {
        Format::Json => print_json(&serde_json::json!({ "dumps": dumps })),
        Format::Table => print_table(&dumps),
    }
}

/// Prints dumps one per row.
pub(crate) fn print_table(dumps: &[DumpRecord]) -> anyhow::Result<()> {
    let mut table = TableBuilder::new(
        &[
            "id",
            "host",
            "pid",
            "taken at",
            "jobs",
            "objects",
            "size",
            "bad lines",
            "status",
        ],
        &[false, false, true, false, true, true, true, true, false],
    );
    for dump in dumps {
        // Reasons are printed whole below the table: a cell may be cut to fit.
        let status = dump.status.kind().as_str().to_owned();
        table.row(vec![
            dump.id.to_string(),
            dump.process.host.clone(),
            dump.process.pid.to_string(),
            time(dump.taken_at_unix),
            dump.jobs.map_or_else(String::new, count),
            count(dump.objects),
            bytes(dump.size_bytes),
            count(dump.bad_lines),
            status,
        ]);
    }
    table.print("no dumps yet: import some with `heapfleet import PATH`")?;
    for dump in dumps {
        if let Some(reason) = dump.status.failure_reason() {
            print_line(&format!("{} failed: {reason}", dump.id))?;
        }
    }
    Ok(())
}
