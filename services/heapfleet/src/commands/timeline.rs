//! `heapfleet timeline`: one site's live objects across dumps, per process.

use anyhow::{Context, bail};
use heapfleet_query::Queries;

use crate::cli::TimelineArgs;
use crate::commands::scope::{parse_site, scope_query};
use crate::output::{Format, TableBuilder, bytes, count, print_json, print_line, time};
use crate::plot::{Series, line_chart, svg_to_png};

pub(crate) async fn run(
    queries: &dyn Queries,
    args: TimelineArgs,
    format: Format,
) -> anyhow::Result<()> {
    let (file, line) = parse_site(&args.site)?;
    let png = match &args.plot {
        None => false,
        Some(plot) => match plot.extension().and_then(|extension| extension.to_str()) {
            Some("svg") => false,
            Some("png") => true,
            _ => bail!(
                "--plot writes .svg or .png files: give a name ending in one of them (not {})",
                plot.display()
            ),
        },
    };
    let timeline = queries
        .site_timeline(&file, line, &scope_query(&args.scope))
        .await?;
    if let Some(plot) = &args.plot {
        let series: Vec<Series> = timeline
            .processes
            .iter()
            .map(|process| Series {
                label: format!("{} pid {}", process.host, process.pid),
                points: process
                    .points
                    .iter()
                    .map(|point| (point.taken_at_unix, point.count as f64))
                    .collect(),
            })
            .collect();
        let svg = line_chart(&format!("{file}:{line}"), "live objects", &series);
        let bytes = if png {
            svg_to_png(&svg)?
        } else {
            svg.into_bytes()
        };
        std::fs::write(plot, bytes).with_context(|| format!("cannot write {}", plot.display()))?;
    }
    match format {
        Format::Json => print_json(&timeline),
        Format::Table => {
            let mut table = TableBuilder::new(
                &[
                    "host", "pid", "dump", "taken at", "jobs", "objects", "memsize",
                ],
                &[false, true, false, false, true, true, true],
            );
            for process in &timeline.processes {
                for point in &process.points {
                    table.row(vec![
                        process.host.clone(),
                        process.pid.to_string(),
                        point.dump_id.clone(),
                        time(point.taken_at_unix),
                        point.jobs.map_or_else(String::new, count),
                        count(point.count),
                        bytes(point.memsize),
                    ]);
                }
            }
            table.print("no ingested dumps in scope")?;
            if let Some(plot) = &args.plot {
                print_line(&format!("chart written to {}", plot.display()))?;
            }
            Ok(())
        }
    }
}
