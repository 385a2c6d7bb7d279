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

/// Prints dumps one per row. Ids are shortened to the shortest prefix (at least `d-` and 8
/// digits) that tells the listed dumps apart, as every command accepts; `--format json` has
/// them whole, and the jobs counter and bad lines.
pub(crate) fn print_table(dumps: &[DumpRecord]) -> anyhow::Result<()> {
    let ids: Vec<String> = dumps.iter().map(|dump| dump.id.to_string()).collect();
    let id_length = unique_prefix_length(&ids, 10);
    let mut table = TableBuilder::new(
        &["id", "host", "pid", "taken at", "objects", "size", "status"],
        &[false, false, true, false, true, true, false],
    )
    .keep_whole(0);
    for (dump, id) in dumps.iter().zip(&ids) {
        // Reasons are printed whole below the table: a cell may be cut to fit.
        let status = dump.status.kind().as_str().to_owned();
        table.row(vec![
            id.chars().take(id_length).collect(),
            dump.process.host.clone(),
            dump.process.pid.to_string(),
            time(dump.taken_at_unix),
            count(dump.objects),
            bytes(dump.size_bytes),
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

/// The shortest length, at least `minimum`, at which the prefixes of `ids` are all different.
fn unique_prefix_length(ids: &[String], minimum: usize) -> usize {
    let longest = ids.iter().map(String::len).max().unwrap_or(0);
    (minimum..longest)
        .find(|&length| {
            let prefixes: std::collections::BTreeSet<&str> =
                ids.iter().map(|id| &id[..length.min(id.len())]).collect();
            prefixes.len() == ids.len()
        })
        .unwrap_or(longest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ids_are_cut_to_a_prefix_that_still_tells_them_apart() {
        let ids = [
            "d-1a2b3c4d5e6f7a8b".to_owned(),
            "d-1a2b3c4d9e6f7a8b".to_owned(),
            "d-ffff0000aaaa1111".to_owned(),
        ];
        assert_eq!(unique_prefix_length(&ids, 10), 11);
        assert_eq!(unique_prefix_length(&ids[2..], 10), 10);
        assert_eq!(unique_prefix_length(&[], 10), 0);
    }
}
