//! `heapfleet retained`: one dump's retained sizes by site (with owners), class or type.

use heapfleet_analysis::{OwnershipOptions, SiteOwner};
use heapfleet_query::Queries;
use heapfleet_query::model::{DumpRetained, RetainedBy};

use crate::cli::{RetainedArgs, RetainedByArg};
use crate::commands::dump_file;
use crate::output::{Format, TableBuilder, bytes, count, print_json, print_line};

pub(crate) async fn run(
    queries: &dyn Queries,
    args: RetainedArgs,
    format: Format,
) -> anyhow::Result<()> {
    let by = match args.by {
        RetainedByArg::Site => RetainedBy::Site,
        RetainedByArg::Class => RetainedBy::Class,
        RetainedByArg::Type => RetainedBy::Type,
    };
    let answer = match &args.file {
        Some(path) => {
            let (dump, file) = dump_file::open_checked(queries, &args.dump, path).await?;
            let expected_objects = dump.objects;
            let ownership = tokio::task::spawn_blocking(move || {
                heapfleet_ingest::dump_ownership(
                    file,
                    &heapfleet_dump::ParseOptions::default(),
                    heapfleet_ingest::DEFAULT_MAX_OWNERSHIP_OBJECTS,
                    expected_objects,
                    &OwnershipOptions::default(),
                )
            })
            .await??;
            DumpRetained::from_ownership(dump, ownership, by, args.top)
        }
        None => queries.retained(&args.dump, by, args.top).await?,
    };
    match format {
        Format::Json => print_json(&answer),
        Format::Table => print_table(&answer),
    }
}

/// `Array /app/jobs/job.rb:3`, or the root that holds the objects itself.
pub(crate) fn owner_label(owner: &SiteOwner) -> String {
    match &owner.owner {
        None => format!("root {}", owner.root),
        Some(site) => {
            let what = site
                .class_name
                .clone()
                .unwrap_or_else(|| site.object_type.as_str().to_owned());
            match (&site.file, site.line) {
                (Some(file), Some(line)) => format!("{what} {file}:{line}"),
                (Some(file), None) => format!("{what} {file}"),
                _ => format!("{what} via {}", owner.path.join(" › ")),
            }
        }
    }
}

fn print_table(answer: &DumpRetained) -> anyhow::Result<()> {
    print_line(&format!(
        "dump {}: {} objects, {} reachable from the GC roots ({})",
        answer.dump.id,
        count(answer.objects),
        count(answer.reachable_objects),
        bytes(answer.reachable_bytes),
    ))?;
    let key_header = match answer.by {
        RetainedBy::Site => "site",
        RetainedBy::Class => "class",
        RetainedBy::Type => "type",
    };
    let mut table = TableBuilder::new(
        &["retained", "ret. objects", "shallow", "objects", key_header],
        &[true, true, true, true, false],
    );
    for row in &answer.rows {
        let key = match &row.site {
            Some(site) => format!(
                "{} {}{}",
                site.object_type,
                row.key,
                site.class_name
                    .as_ref()
                    .map_or_else(String::new, |class| format!(" ({class})"))
            ),
            None => row.key.clone(),
        };
        table.row(vec![
            bytes(row.retained.retained_bytes),
            count(row.retained.retained_objects),
            bytes(row.retained.shallow_bytes),
            count(row.retained.objects),
            key,
        ]);
        for owner in &row.owners {
            table.row(vec![
                bytes(owner.bytes),
                String::new(),
                String::new(),
                count(owner.objects),
                format!("  held by {}", owner_label(owner)),
            ]);
        }
    }
    table.print("no objects reachable from the GC roots")
}
