//! `heapfleet demo`: imports the example series shipped with heapfleet and shows its diff.
//!
//! The series is one Ruby process dumping three times while a job leaks strings at one line and
//! a bounded cache replaces its entries at another. The diff names the leak and, because it
//! matches objects by identity rather than address, does not blame the cache.

use std::process::ExitCode;

use anyhow::{Context, bail};
use heapfleet_query::{Queries, StoreQueries};

use crate::cli::{DemoArgs, ImportArgs};
use crate::commands::{diff, dumps, import};
use crate::local::{LOCAL_TENANT, Local};
use crate::output::{Format, print_json, print_line};

/// The host the example dumps are filed under.
const DEMO_HOST: &str = "demo-host";

/// Reads the truth Ruby recorded while writing the example series, if it is there.
fn read_truth(dumps: &std::path::Path) -> Option<serde_json::Value> {
    let text = std::fs::read(dumps.join("series-truth.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

pub(crate) async fn run(local: &Local, args: DemoArgs, format: Format) -> anyhow::Result<ExitCode> {
    if !args.dumps.is_dir() {
        bail!(
            "example dumps not found at {} (run from the repository root, or pass --dumps DIR)",
            args.dumps.display()
        );
    }
    let import_args = ImportArgs {
        paths: vec![args.dumps.clone()],
        host: Some(DEMO_HOST.to_owned()),
        hosts_from_subdirs: false,
        labels: vec![("source".to_owned(), "demo".to_owned())],
        role: Some("sidekiq".to_owned()),
        instance: String::new(),
        taken_at: None,
        strict: false,
        no_keep: false,
    };
    let candidates = import::find_candidates(&import_args.paths, DEMO_HOST, false)?;
    let (results, summary) =
        import::import_all(local, &import_args, candidates, format == Format::Table).await?;
    if let Some(failed) = results.iter().find(|result| result.error.is_some()) {
        bail!(
            "failed to import {}: {}",
            failed.path,
            failed.error.clone().unwrap_or_default()
        );
    }
    let mut ids = Vec::new();
    for result in &results {
        let id = result.dump_id.clone().context("imported dump has an id")?;
        ids.push(id);
    }
    let queries = StoreQueries::new(LOCAL_TENANT, local.catalog.clone(), local.store.clone());
    let diff_result = queries.diff(&ids, 0).await?;
    let series = diff_result.dumps.clone();
    match format {
        Format::Json => print_json(&serde_json::json!({
            "import": summary,
            "dumps": series,
            "diff": { "rows": diff_result.rows, "total": diff_result.total },
        }))?,
        Format::Table => {
            print_line(&format!(
                "imported {} example dumps of one Ruby process into the data directory\n",
                series.len()
            ))?;
            dumps::print_table(&series)?;
            print_line("")?;
            let mut shown = diff_result.clone();
            shown.rows.truncate(10);
            diff::print(&shown, Format::Table)?;
            print_line("")?;
            if let Some(truth) = read_truth(&args.dumps) {
                for (role, what) in [
                    ("leak", "planted leak"),
                    ("cache", "bounded cache (entries replaced, slots reused)"),
                ] {
                    let (file, line) = (
                        truth[role]["file"].as_str().unwrap_or_default(),
                        truth[role]["line"].as_u64(),
                    );
                    let retained: u64 = diff_result
                        .rows
                        .iter()
                        .filter(|row| {
                            row.site
                                .file
                                .as_deref()
                                .is_some_and(|path| path.ends_with(file))
                                && row.site.line.map(u64::from) == line
                        })
                        .map(|row| row.totals.count)
                        .sum();
                    print_line(&format!(
                        "{what} at {file}:{}: {retained} retained (Ruby recorded {} by object_id)",
                        line.unwrap_or_default(),
                        truth[role]["retained_after_first"]
                    ))?;
                }
                print_line(
                    "An address-only diff (heapy's) blames the cache for objects that merely reuse freed slots\n\
                     and misses leaked objects that landed in slots used at the first dump.",
                )?;
            }
            print_line(
                "Next: `heapfleet leaks` (the sites that keep growing), `heapfleet show <dump> --by site`,\n\
                 `heapfleet show <dump> --generation <n>`, `heapfleet diff <dump> <dump> ...`, `heapfleet --help`.",
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
