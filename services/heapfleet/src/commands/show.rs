//! `heapfleet show`: one dump's totals by generation, a roll-up, or one generation's detail.

use heapfleet_analysis::{GenerationFilter, GroupBy, RankBy, RollupRow, Totals};
use heapfleet_query::Queries;
use heapfleet_query::model::RollupQuery;
use serde_json::json;

use crate::cli::{ByArg, GenerationArg, RankArg, ShowArgs};
use crate::output::{Format, TableBuilder, bytes, count, print_json, print_line, time};

pub(crate) async fn run(
    queries: &dyn Queries,
    args: ShowArgs,
    format: Format,
) -> anyhow::Result<()> {
    let summary = queries.dump_summary(&args.dump).await?;
    let dump = &summary.dump;
    // Later queries name the dump by its full id, so a prefix is resolved once.
    let id = dump.id.to_string();
    let filter = match args.generation {
        None => GenerationFilter::All,
        Some(GenerationArg::Number(generation)) => GenerationFilter::Only(generation),
        Some(GenerationArg::None) => GenerationFilter::Untracked,
    };
    let generation_json = match args.generation {
        None => json!(null),
        Some(GenerationArg::Number(generation)) => json!(generation),
        Some(GenerationArg::None) => json!("none"),
    };

    if format == Format::Table {
        print_line(&format!(
            "dump {}  host {}  pid {}  taken {}  {} objects  {}  {} bad lines",
            dump.id,
            dump.process.host,
            dump.process.pid,
            time(dump.taken_at_unix),
            count(dump.objects),
            bytes(dump.size_bytes),
            count(dump.bad_lines),
        ))?;
        for bad_line in summary.parse.bad_line_samples.iter().take(5) {
            print_line(&format!("  bad {bad_line}"))?;
        }
    }

    if let Some(by) = args.by {
        let group_by = match by {
            ByArg::Site => GroupBy::Site,
            ByArg::File => GroupBy::File,
            ByArg::Gem => GroupBy::Gem,
            ByArg::Class => GroupBy::Class,
            ByArg::Type => GroupBy::Type,
            ByArg::Generation => GroupBy::Generation,
        };
        let rank_by = match args.rank {
            RankArg::Memsize => RankBy::Memsize,
            RankArg::Count => RankBy::Count,
            RankArg::References => RankBy::References,
        };
        let query = RollupQuery {
            by: group_by,
            generations: filter,
            rank: rank_by,
            top: args.top,
        };
        let rows = queries.rollup(&id, query).await?.rows;
        return match format {
            Format::Json => print_json(
                &json!({ "dump": dump, "by": group_by, "generation": generation_json, "rows": rows }),
            ),
            Format::Table => print_rollup(group_label(by), &rows),
        };
    }

    if args.generation.is_some() {
        let detail = queries
            .generation_detail(&id, filter, args.top)
            .await?
            .detail;
        return match format {
            Format::Json => print_json(
                &json!({ "dump": dump, "generation": generation_json, "detail": detail }),
            ),
            Format::Table => {
                print_line(&format!(
                    "generation {}: {} objects, {} held",
                    generation_json
                        .as_str()
                        .map_or_else(|| generation_json.to_string(), str::to_owned),
                    count(detail.totals.count),
                    bytes(detail.totals.memsize)
                ))?;
                print_line("\ntop sites by memsize")?;
                print_rollup("site", &detail.by_memsize)?;
                print_line("\ntop sites by count")?;
                print_rollup("site", &detail.by_count)?;
                print_line("\ntop type + site by count")?;
                print_rollup("type site", &detail.by_type_site)?;
                print_line("\nreference-heavy sites")?;
                print_rollup("site", &detail.reference_heavy)?;
                print_line("\nduplicated strings")?;
                let mut table = TableBuilder::new(
                    &["value", "site", "copies", "bytes each", "held"],
                    &[false, false, true, true, true],
                );
                for duplicate in &detail.duplicated_strings {
                    table.row(vec![
                        format!("{:?}", duplicate.value),
                        duplicate.site.location(),
                        count(duplicate.count),
                        bytes(duplicate.bytesize),
                        bytes(duplicate.memsize),
                    ]);
                }
                table.print("(none)")
            }
        };
    }

    let (generations, total) = (&summary.generations, &summary.total);
    match format {
        Format::Json => print_json(&json!({
            "dump": dump,
            "generations": generations,
            "total": total,
            "shapes": summary.shapes,
            "roots": summary.roots,
            "parse": summary.parse,
        })),
        Format::Table => {
            let mut table = TableBuilder::new(
                &["generation", "objects", "memsize", "bytesize"],
                &[true, true, true, true],
            );
            for bucket in generations {
                table.row(totals_row(
                    bucket
                        .generation
                        .map_or_else(|| "(none)".to_owned(), |generation| generation.to_string()),
                    &bucket.totals,
                ));
            }
            table.row(totals_row("total".to_owned(), total));
            table.print("no objects")
        }
    }
}

fn group_label(by: ByArg) -> &'static str {
    match by {
        ByArg::Site => "site",
        ByArg::File => "file",
        ByArg::Gem => "gem",
        ByArg::Class => "class",
        ByArg::Type => "type",
        ByArg::Generation => "generation",
    }
}

fn totals_row(label: String, totals: &Totals) -> Vec<String> {
    vec![
        label,
        count(totals.count),
        bytes(totals.memsize),
        bytes(totals.bytesize),
    ]
}

fn print_rollup(label: &str, rows: &[RollupRow]) -> anyhow::Result<()> {
    let mut table = TableBuilder::new(
        &[label, "objects", "memsize", "bytesize", "references"],
        &[false, true, true, true, true],
    );
    for row in rows {
        table.row(vec![
            row.key.clone(),
            count(row.totals.count),
            bytes(row.totals.memsize),
            bytes(row.totals.bytesize),
            count(row.totals.references),
        ]);
    }
    table.print("(none)")
}
