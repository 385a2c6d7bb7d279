//! `heapfleet dominators`: one dump's dominator tree with retained sizes.

use heapfleet_query::Queries;
use heapfleet_query::model::{DominatorsQuery, DumpDominators};

use crate::cli::DominatorsArgs;
use crate::commands::dump_file;
use crate::output::{Format, TableBuilder, bytes, count, print_json, print_line};

pub(crate) async fn run(
    queries: &dyn Queries,
    args: DominatorsArgs,
    format: Format,
) -> anyhow::Result<()> {
    let query = DominatorsQuery {
        from_address: args.from,
        depth: args.depth.max(1),
        top: args.top.max(1),
    };
    let answer = match &args.file {
        Some(path) => {
            let (dump, file) = dump_file::open_checked(queries, &args.dump, path).await?;
            let expected_objects = dump.objects;
            let (reachable_objects, reachable_bytes, nodes) =
                tokio::task::spawn_blocking(move || {
                    heapfleet_query::dominators_in(file, query, expected_objects)
                })
                .await??;
            DumpDominators {
                dump,
                reachable_objects,
                reachable_bytes,
                nodes,
            }
        }
        None => queries.dominators(&args.dump, query).await?,
    };
    match format {
        Format::Json => print_json(&answer),
        Format::Table => print_tree(&answer),
    }
}

fn print_tree(answer: &DumpDominators) -> anyhow::Result<()> {
    print_line(&format!(
        "dump {}: {} objects reachable from the GC roots ({})",
        answer.dump.id,
        count(answer.reachable_objects),
        bytes(answer.reachable_bytes),
    ))?;
    let mut table = TableBuilder::new(
        &["retained", "ret. objects", "shallow", "object"],
        &[true, true, true, false],
    );
    for node in &answer.nodes {
        // The class where the dump names one; the type alone otherwise.
        let what = node
            .class_name
            .as_ref()
            .map_or_else(String::new, |class| format!(" {class}"));
        let site = match (&node.file, node.line) {
            (Some(file), Some(line)) => format!("  {file}:{line}"),
            (Some(file), None) => format!("  {file}"),
            _ => String::new(),
        };
        let root = if node.depth == 0 {
            format!("  (root: {})", node.root)
        } else {
            String::new()
        };
        table.row(vec![
            bytes(node.retained_bytes),
            count(node.retained_objects),
            bytes(node.shallow_bytes),
            format!(
                "{}{}0x{:x} {}{what}{site}{root}",
                "  ".repeat(node.depth as usize),
                if node.depth == 0 { "" } else { "└ " },
                node.address,
                node.object_type,
            ),
        ]);
    }
    table.print("no objects reachable from the GC roots")
}
