//! `heapfleet import`: find dump files, read what their names say, ingest each once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use heapfleet_catalog::{NewDump, ProcessKey};
use heapfleet_dump::{ParseOptions, parse_dump_file_name};
use heapfleet_ingest::{error_chain, import_file};
use heapfleet_ingester::{Ingester, WorkerSettings};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::ImportArgs;
use crate::local::{LOCAL_TENANT, Local};
use crate::output::{Format, TableBuilder, bytes, count, print_json, print_line};

/// A file to import and the host it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) path: PathBuf,
    pub(crate) host: String,
}

/// What happened to one file.
#[derive(Debug, Serialize)]
pub(crate) struct FileResult {
    pub(crate) path: String,
    pub(crate) host: String,
    pub(crate) dump_id: Option<String>,
    /// `imported`, `already_imported` or `failed`.
    pub(crate) outcome: &'static str,
    pub(crate) objects: u64,
    pub(crate) bad_lines: u64,
    pub(crate) bytes: u64,
    pub(crate) error: Option<String>,
}

/// Totals over a whole import.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ImportSummary {
    pub(crate) dumps_imported: u64,
    pub(crate) dumps_already_imported: u64,
    pub(crate) dumps_failed: u64,
    pub(crate) objects: u64,
    pub(crate) bad_lines: u64,
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) megabytes_per_second: f64,
    /// Ownership passes (dominators, retained sizes, owners) run after the ingests.
    pub(crate) ownership_passes: u64,
    /// Seconds they took.
    pub(crate) ownership_seconds: f64,
}

pub(crate) async fn run(
    local: &Local,
    args: ImportArgs,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let default_host = match &args.host {
        Some(host) => host.clone(),
        None => gethostname::gethostname().to_string_lossy().into_owned(),
    };
    let candidates = find_candidates(&args.paths, &default_host, args.hosts_from_subdirs)?;
    if candidates.is_empty() {
        bail!(
            "no dump files found in {} (directories are searched for *.dump and *.dump.gz)",
            display_paths(&args.paths)
        );
    }
    let (results, summary) = import_all(local, &args, candidates, format == Format::Table).await?;
    match format {
        Format::Json => print_json(&serde_json::json!({ "files": results, "summary": summary }))?,
        Format::Table => print_results(&results, &summary)?,
    }
    Ok(if summary.dumps_failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Imports every candidate, reporting per-file outcomes; one bad file does not stop the rest.
pub(crate) async fn import_all(
    local: &Local,
    args: &ImportArgs,
    candidates: Vec<Candidate>,
    show_progress: bool,
) -> anyhow::Result<(Vec<FileResult>, ImportSummary)> {
    let total_bytes: u64 = candidates
        .iter()
        .filter_map(|candidate| std::fs::metadata(&candidate.path).ok())
        .map(|metadata| metadata.len())
        .sum();
    let progress = if show_progress {
        ProgressBar::new(total_bytes)
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .context("invalid progress template")?,
    );
    let start = Instant::now();
    let mut results = Vec::with_capacity(candidates.len());
    let mut summary = ImportSummary::default();
    let labels: BTreeMap<String, String> = args.labels.iter().cloned().collect();
    let keep_in = (!args.no_keep).then(|| local.objects_dir());
    for candidate in candidates {
        progress.set_message(
            candidate
                .path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let file_size = std::fs::metadata(&candidate.path)
            .map(|metadata| metadata.len())
            .unwrap_or(0);
        let position_before = progress.position();
        let mut result = FileResult {
            path: candidate.path.display().to_string(),
            host: candidate.host.clone(),
            dump_id: None,
            outcome: "failed",
            objects: 0,
            bad_lines: 0,
            bytes: file_size,
            error: None,
        };
        match new_dump_for(&candidate, args, &labels) {
            Err(error) => result.error = Some(format!("{error:#}")),
            Ok(new_dump) => {
                let options = ParseOptions {
                    strict: args.strict,
                    ..ParseOptions::default()
                };
                let bar = progress.clone();
                let on_read = Arc::new(move |read: u64| bar.inc(read));
                match import_file(
                    &candidate.path,
                    new_dump,
                    local.catalog.as_ref(),
                    local.store.clone(),
                    options,
                    Some(on_read),
                    keep_in.as_deref(),
                )
                .await
                {
                    Ok(outcome) => {
                        result.dump_id = Some(outcome.dump.id.to_string());
                        result.objects = outcome.dump.objects;
                        result.bad_lines = outcome.dump.bad_lines;
                        result.outcome = if outcome.already_imported {
                            "already_imported"
                        } else {
                            "imported"
                        };
                    }
                    Err(error) => result.error = Some(error_chain(&error)),
                }
            }
        }
        // Compressed files report decompressed bytes; keep the bar in file-size units.
        progress.set_position(position_before + file_size);
        match result.outcome {
            "imported" => summary.dumps_imported += 1,
            "already_imported" => summary.dumps_already_imported += 1,
            _ => summary.dumps_failed += 1,
        }
        if result.outcome == "imported" {
            summary.objects += result.objects;
            summary.bad_lines += result.bad_lines;
            summary.bytes += result.bytes;
        }
        results.push(result);
    }
    summary.seconds = start.elapsed().as_secs_f64();
    // Each kept dump's ownership pass, queued by its ingest, runs now, in this process.
    progress.set_message("dominators and retained sizes");
    let ownership_started = Instant::now();
    let worker = Ingester::new(
        local.catalog.clone(),
        local.store.clone(),
        local.objects()?,
        WorkerSettings {
            name: format!("import-{}", std::process::id()),
            tenant: Some(LOCAL_TENANT.to_owned()),
            lease: std::time::Duration::from_secs(60),
            ..WorkerSettings::default()
        },
    );
    summary.ownership_passes = worker
        .run_queued_ownership(&tokio_util::sync::CancellationToken::new())
        .await as u64;
    summary.ownership_seconds = ownership_started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    summary.megabytes_per_second = if summary.seconds > 0.0 {
        summary.bytes as f64 / 1e6 / summary.seconds
    } else {
        0.0
    };
    Ok((results, summary))
}

/// Builds the catalog entry for a file from its name and the flags.
fn new_dump_for(
    candidate: &Candidate,
    args: &ImportArgs,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<NewDump> {
    let file_name = candidate
        .path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (pid, taken_at_unix, jobs) = match (parse_dump_file_name(&file_name), args.taken_at) {
        (Ok(parsed), _) => (parsed.pid.unwrap_or(0), parsed.taken_at_unix, parsed.jobs),
        (Err(_), Some(taken_at)) => (0, taken_at, None),
        (Err(error), None) => {
            return Err(anyhow::Error::new(error).context("pass --taken-at to import it anyway"));
        }
    };
    Ok(NewDump {
        process: ProcessKey {
            tenant: LOCAL_TENANT.to_owned(),
            host: candidate.host.clone(),
            pid,
            instance: args.instance.clone(),
        },
        taken_at_unix,
        jobs,
        role: args.role.clone(),
        labels: labels.clone(),
        file_name,
        size_bytes: 0,
        content_sha256: String::new(),
        gc_count: None,
        rss_bytes: None,
        object_key: None,
    })
}

/// Returns whether a file found while walking a directory looks like a dump. Files named on the
/// command line are imported whatever their name.
fn looks_like_dump(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.ends_with(".dump") || name.ends_with(".dump.gz")
}

/// Expands files and directories into dump files with their hosts, sorted and de-duplicated.
pub(crate) fn find_candidates(
    paths: &[PathBuf],
    default_host: &str,
    hosts_from_subdirs: bool,
) -> anyhow::Result<Vec<Candidate>> {
    let mut candidates = Vec::new();
    for path in paths {
        let metadata =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if metadata.is_file() {
            if hosts_from_subdirs {
                bail!(
                    "--hosts-from-subdirs takes directories, and {} is a file",
                    path.display()
                );
            }
            candidates.push(Candidate {
                path: path.clone(),
                host: default_host.to_owned(),
            });
            continue;
        }
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
            let entry = entry.with_context(|| format!("cannot walk {}", path.display()))?;
            if !entry.file_type().is_file() || !looks_like_dump(entry.path()) {
                continue;
            }
            let host = if hosts_from_subdirs {
                let relative = entry
                    .path()
                    .strip_prefix(path)
                    .context("walked outside the directory")?;
                let mut components = relative.components();
                match (components.next(), components.next()) {
                    (Some(host), Some(_)) => host.as_os_str().to_string_lossy().into_owned(),
                    _ => bail!(
                        "--hosts-from-subdirs: {} is not inside a host sub-directory of {}",
                        entry.path().display(),
                        path.display()
                    ),
                }
            } else {
                default_host.to_owned()
            };
            candidates.push(Candidate {
                path: entry.path().to_path_buf(),
                host,
            });
        }
    }
    candidates.sort_by(|left, right| left.path.cmp(&right.path));
    candidates.dedup();
    Ok(candidates)
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_results(results: &[FileResult], summary: &ImportSummary) -> anyhow::Result<()> {
    let mut table = TableBuilder::new(
        &["file", "host", "dump", "outcome", "objects", "bad lines"],
        &[false, false, false, false, true, true],
    );
    for result in results {
        // The reason is printed whole below the table: a cell may be cut to fit.
        let outcome = match &result.error {
            Some(_) => "failed (see below)".to_owned(),
            None => result.outcome.replace('_', " "),
        };
        table.row(vec![
            result.path.clone(),
            result.host.clone(),
            result.dump_id.clone().unwrap_or_default(),
            outcome,
            count(result.objects),
            count(result.bad_lines),
        ]);
    }
    table.print("no files")?;
    for result in results {
        if let Some(error) = &result.error {
            print_line(&format!("failed: {}: {error}", result.path))?;
        }
    }
    print_line(&format!(
        "{} imported, {} already imported, {} failed: {} objects, {} bad lines, {} in {:.2} s ({:.0} MB/s)",
        summary.dumps_imported,
        summary.dumps_already_imported,
        summary.dumps_failed,
        count(summary.objects),
        count(summary.bad_lines),
        bytes(summary.bytes),
        summary.seconds,
        summary.megabytes_per_second,
    ))?;
    if summary.ownership_passes > 0 {
        print_line(&format!(
            "retained sizes and owners computed for {} dumps in {:.2} s (`heapfleet retained DUMP`)",
            summary.ownership_passes, summary.ownership_seconds,
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }

    #[test]
    fn test_find_candidates_walks_directories_and_assigns_hosts() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("web-1/heap-1700000000.dump"));
        touch(&dir.path().join("web-2/nested/heap-1-1700000000-5.dump.gz"));
        touch(&dir.path().join("web-2/notes.txt"));
        let found = find_candidates(&[dir.path().to_path_buf()], "here", true).unwrap();
        let hosts: Vec<&str> = found
            .iter()
            .map(|candidate| candidate.host.as_str())
            .collect();
        assert_eq!(hosts, vec!["web-1", "web-2"]);
        let flat = find_candidates(&[dir.path().to_path_buf()], "here", false).unwrap();
        assert!(flat.iter().all(|candidate| candidate.host == "here"));
        assert_eq!(flat.len(), 2);
    }

    #[test]
    fn test_find_candidates_rejects_loose_files_with_hosts_from_subdirs() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("heap-1700000000.dump"));
        let error = find_candidates(&[dir.path().to_path_buf()], "here", true).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not inside a host sub-directory"),
            "{error}"
        );
        let missing = find_candidates(&[dir.path().join("missing")], "here", false).unwrap_err();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
    }
}
