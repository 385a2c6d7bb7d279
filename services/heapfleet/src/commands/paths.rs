//! `heapfleet paths`: the reference chains that keep objects alive.

use anyhow::Context;
use heapfleet_analysis::{PathTarget, RetainerPaths};
use heapfleet_query::Queries;
use serde_json::json;

use crate::cli::PathsArgs;
use crate::commands::dump_file;
use crate::commands::scope::parse_site;
use crate::output::{Format, print_json, print_line};

pub(crate) async fn run(
    queries: &dyn Queries,
    args: PathsArgs,
    format: Format,
) -> anyhow::Result<()> {
    let target = parse_target(&args.target)?;
    let (dump, paths) = match &args.file {
        Some(path) => {
            // A local file: check it is the dump's content, then parse it here.
            let (dump, file) = dump_file::open_checked(queries, &args.dump, path).await?;
            let max = args.max;
            let paths =
                tokio::task::spawn_blocking(move || heapfleet_query::paths_in(file, &target, max))
                    .await??;
            (dump, paths)
        }
        None => {
            let answer = queries
                .retainer_paths(&args.dump, &target, args.max)
                .await?;
            (answer.dump, answer.paths)
        }
    };
    match format {
        Format::Json => print_json(&json!({
            "dump": dump,
            "targets": paths.targets,
            "reachable": paths.reachable,
            "paths": paths.paths,
        })),
        Format::Table => print_paths(&args.target, &paths),
    }
}

/// `FILE:LINE` or `0xADDRESS`.
fn parse_target(text: &str) -> anyhow::Result<PathTarget> {
    if let Some(hex) = text.strip_prefix("0x") {
        let address = u64::from_str_radix(hex, 16)
            .with_context(|| format!("{text:?} is not a hex address"))?;
        return Ok(PathTarget::Address(address));
    }
    let (file, line) = parse_site(text)?;
    Ok(PathTarget::Site { file, line })
}

fn print_paths(target: &str, paths: &RetainerPaths) -> anyhow::Result<()> {
    print_line(&format!(
        "{} objects match {target}; {} reachable from a GC root",
        paths.targets, paths.reachable
    ))?;
    for (number, path) in paths.paths.iter().enumerate() {
        print_line(&format!("\npath {} (root: {})", number + 1, path.root))?;
        for (depth, step) in path.steps.iter().enumerate() {
            let site = match (&step.file, step.line) {
                (Some(file), Some(line)) => format!("  {file}:{line}"),
                (Some(file), None) => format!("  {file}"),
                _ => String::new(),
            };
            let class = step
                .class_name
                .as_ref()
                .map_or_else(String::new, |class| format!(" ({class})"));
            print_line(&format!(
                "  {}{}0x{:x} {}{class}{site}",
                "  ".repeat(depth),
                if depth == 0 { "" } else { "└ " },
                step.address,
                step.object_type,
            ))?;
        }
    }
    if paths.paths.is_empty() && paths.targets > 0 {
        print_line("no path: the matching objects are garbage the next GC frees")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_target_reads_sites_and_addresses() {
        assert_eq!(parse_target("0x7f1a").unwrap(), PathTarget::Address(0x7f1a));
        assert_eq!(
            parse_target("app/jobs/x.rb:12").unwrap(),
            PathTarget::Site {
                file: "app/jobs/x.rb".to_owned(),
                line: 12
            }
        );
        assert!(parse_target("0xzz").is_err());
        assert!(parse_target("nothing").is_err());
    }
}
