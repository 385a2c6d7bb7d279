//! `heapfleet paths`: the reference chains that keep objects alive, clustered by signature.

use anyhow::Context;
use heapfleet_analysis::{PathCluster, PathStep, PathTarget, RetainerPaths};
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
            "signatures": paths.signatures,
            "clusters": paths.clusters,
        })),
        Format::Table => print_paths(&args.target, &paths, args.addresses),
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

fn print_paths(target: &str, paths: &RetainerPaths, addresses: bool) -> anyhow::Result<()> {
    print_line(&format!(
        "{} match {target}; {} reachable from a GC root, along {}",
        counted(paths.targets, "object"),
        paths.reachable,
        counted(paths.signatures, "distinct path"),
    ))?;
    for cluster in &paths.clusters {
        print_line(&format!(
            "\n{} ({})",
            counted(cluster.count, "object"),
            share(cluster.count, paths.reachable)
        ))?;
        print_line(&format!("  {}", signature_text(cluster)))?;
        if addresses {
            print_line("  example:")?;
            for (depth, step) in cluster.example.steps.iter().enumerate() {
                print_line(&format!(
                    "    {}{}{}",
                    "  ".repeat(depth),
                    if depth == 0 { "" } else { "└ " },
                    step_text(step)
                ))?;
            }
        }
    }
    let shown: u64 = paths.clusters.iter().map(|cluster| cluster.count).sum();
    let hidden = paths.signatures.saturating_sub(paths.clusters.len() as u64);
    if hidden > 0 {
        print_line(&format!(
            "\n{} not shown ({}); --max shows more",
            counted(hidden, "smaller cluster"),
            counted(paths.reachable.saturating_sub(shown), "object")
        ))?;
    }
    if paths.reachable == 0 && paths.targets > 0 {
        print_line("no path: the matching objects are garbage the next GC frees")?;
    }
    Ok(())
}

/// `1 object`, `2 objects`.
fn counted(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// `count` as a percentage of `reachable`.
fn share(count: u64, reachable: u64) -> String {
    if reachable == 0 {
        return "-".to_owned();
    }
    format!(
        "{:.1}% of reachable",
        count as f64 * 100.0 / reachable as f64
    )
}

/// `root › label › label (file:line) › ...`.
fn signature_text(cluster: &PathCluster) -> String {
    let mut parts = vec![cluster.root.clone()];
    parts.extend(
        cluster
            .signature
            .iter()
            .map(|step| match (&step.file, step.line) {
                (Some(file), Some(line)) => format!("{} ({file}:{line})", step.label),
                (Some(file), None) => format!("{} ({file})", step.label),
                _ => step.label.clone(),
            }),
    );
    parts.join(" › ")
}

/// `0xADDRESS TYPE Name (Class)  file:line`.
fn step_text(step: &PathStep) -> String {
    let name = step
        .name
        .as_ref()
        .map_or_else(String::new, |name| format!(" {name}"));
    let class = step
        .class_name
        .as_ref()
        .map_or_else(String::new, |class| format!(" ({class})"));
    let site = match (&step.file, step.line) {
        (Some(file), Some(line)) => format!("  {file}:{line}"),
        (Some(file), None) => format!("  {file}"),
        _ => String::new(),
    };
    format!(
        "0x{:x} {}{name}{class}{site}",
        step.address, step.object_type
    )
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

    #[test]
    fn test_signature_text_names_steps_and_traced_sites() {
        use heapfleet_analysis::{RetainerPath, SignatureStep};

        let step = |label: &str, site: Option<(&str, u32)>| SignatureStep {
            label: label.to_owned(),
            file: site.map(|(file, _)| file.to_owned()),
            line: site.map(|(_, line)| line),
        };
        let cluster = PathCluster {
            root: "vm".to_owned(),
            signature: vec![
                step("Workload", None),
                step("Array", Some(("app.rb", 9))),
                step("String", Some(("app.rb", 12))),
            ],
            count: 3,
            example: RetainerPath {
                root: "vm".to_owned(),
                steps: Vec::new(),
            },
        };
        assert_eq!(
            signature_text(&cluster),
            "vm › Workload › Array (app.rb:9) › String (app.rb:12)"
        );
        assert_eq!(share(1, 8), "12.5% of reachable");
        assert_eq!(counted(1, "object"), "1 object");
        assert_eq!(counted(0, "smaller cluster"), "0 smaller clusters");
    }
}
