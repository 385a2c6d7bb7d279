//! `heapfleet upload`: send dump files to a heapfleet server, optionally waiting until they are
//! ingested.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use heapfleet_dump::parse_dump_file_name;
use heapfleet_gateway::client;
use heapfleet_proto::ingest::v1 as pb;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::UploadArgs;
use crate::commands::import::{Candidate, find_candidates};
use crate::output::{Format, TableBuilder, bytes, count, print_json, print_line};

/// What happened to one file.
#[derive(Debug, Serialize)]
struct UploadResult {
    path: String,
    host: String,
    dump_id: Option<String>,
    /// `uploaded`, `already_uploaded` or `failed`.
    outcome: &'static str,
    /// The dump's state after the upload (and after waiting, with --wait).
    state: Option<String>,
    objects: u64,
    bad_lines: u64,
    bytes: u64,
    error: Option<String>,
}

/// Totals over the whole upload.
#[derive(Debug, Default, Serialize)]
struct UploadSummary {
    uploaded: u64,
    already_uploaded: u64,
    failed: u64,
    bytes: u64,
    seconds: f64,
    megabytes_per_second: f64,
}

pub(crate) async fn run(
    server: &str,
    client_options: &heapfleet_service::tls::ClientOptions,
    args: UploadArgs,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let default_host = match &args.host {
        Some(host) => host.clone(),
        None => gethostname::gethostname().to_string_lossy().into_owned(),
    };
    let candidates = find_candidates(&args.paths, &default_host, args.hosts_from_subdirs)?;
    if candidates.is_empty() {
        bail!("no dump files found (directories are searched for *.dump and *.dump.gz)");
    }
    let mut ingest = client::connect_with(server, client_options).await?;
    let total_bytes: u64 = candidates
        .iter()
        .filter_map(|candidate| std::fs::metadata(&candidate.path).ok())
        .map(|metadata| metadata.len())
        .sum();
    let progress = if format == Format::Table {
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
    let labels: BTreeMap<String, String> = args.labels.iter().cloned().collect();
    let started = Instant::now();
    let mut results = Vec::with_capacity(candidates.len());
    let mut summary = UploadSummary::default();
    for candidate in &candidates {
        let size = std::fs::metadata(&candidate.path).map_or(0, |metadata| metadata.len());
        progress.set_message(candidate.path.display().to_string());
        let position_before = progress.position();
        let mut result = UploadResult {
            path: candidate.path.display().to_string(),
            host: candidate.host.clone(),
            dump_id: None,
            outcome: "failed",
            state: None,
            objects: 0,
            bad_lines: 0,
            bytes: size,
            error: None,
        };
        let sent = match metadata_for(candidate, &args, &labels) {
            Err(error) => Err(error),
            Ok(metadata) => {
                let bar = progress.clone();
                let on_send: client::SendProgress = Arc::new(move |sent| bar.inc(sent));
                client::upload_file(&mut ingest, &candidate.path, metadata, Some(on_send)).await
            }
        };
        progress.set_position(position_before + size);
        match sent {
            Ok(response) => {
                let dump = response.dump.unwrap_or_default();
                result.dump_id = Some(dump.dump_id.clone());
                result.state = Some(state_name(&dump));
                result.outcome = if response.created {
                    summary.uploaded += 1;
                    summary.bytes += size;
                    "uploaded"
                } else {
                    summary.already_uploaded += 1;
                    "already_uploaded"
                };
            }
            Err(error) => {
                summary.failed += 1;
                result.error = Some(format!("{error:#}"));
            }
        }
        results.push(result);
    }
    progress.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.megabytes_per_second = summary.bytes as f64 / 1e6 / summary.seconds.max(1e-9);

    let mut failed_ingest = false;
    if args.wait {
        let deadline = Instant::now() + Duration::from_secs(args.wait_timeout);
        for result in &mut results {
            let Some(id) = result.dump_id.clone() else {
                continue;
            };
            let dump = wait_for(&mut ingest, &id, deadline).await?;
            result.state = Some(state_name(&dump));
            result.objects = dump.objects;
            result.bad_lines = dump.bad_lines;
            if dump.state == pb::DumpState::Failed as i32 {
                failed_ingest = true;
            }
        }
    }
    match format {
        Format::Json => print_json(&serde_json::json!({ "files": results, "summary": summary }))?,
        Format::Table => print_results(&results, &summary, args.wait)?,
    }
    Ok(if summary.failed > 0 || failed_ingest {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// What the upload says about a file: from its name and the flags.
fn metadata_for(
    candidate: &Candidate,
    args: &UploadArgs,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<pb::DumpMetadata> {
    let file_name = candidate
        .path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (pid, taken_at_unix, jobs) = match (parse_dump_file_name(&file_name), args.taken_at) {
        (Ok(parsed), _) => (parsed.pid.unwrap_or(0), parsed.taken_at_unix, parsed.jobs),
        (Err(_), Some(taken_at)) => (0, taken_at, None),
        (Err(error), None) => {
            return Err(anyhow::Error::new(error).context("pass --taken-at to upload it anyway"));
        }
    };
    Ok(pb::DumpMetadata {
        host: candidate.host.clone(),
        pid,
        instance: args.instance.clone(),
        role: args.role.clone().unwrap_or_default(),
        labels: labels.clone().into_iter().collect(),
        taken_at_unix,
        jobs,
        file_name,
        ..pb::DumpMetadata::default()
    })
}

/// Polls a dump until it is ready (and its ownership pass, when it has one, has ended) or
/// failed, or the deadline passes: then every answer about it, retained sizes and owners
/// included, is there, and it can be deleted.
async fn wait_for(
    ingest: &mut client::IngestClient,
    id: &str,
    deadline: Instant,
) -> anyhow::Result<pb::Dump> {
    loop {
        let dump = ingest
            .get_dump(pb::GetDumpRequest {
                dump_id: id.to_owned(),
            })
            .await
            .map_err(|status| anyhow::anyhow!("{}", status.message()))
            .with_context(|| format!("cannot read the state of dump {id}"))?
            .into_inner();
        let ownership_pending = matches!(dump.ownership_state.as_str(), "queued" | "running");
        let done = (dump.state == pb::DumpState::Ready as i32 && !ownership_pending)
            || dump.state == pb::DumpState::Failed as i32;
        if done {
            return Ok(dump);
        }
        if Instant::now() >= deadline {
            bail!(
                "dump {id} is still {} after the --wait-timeout",
                state_name(&dump)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn state_name(dump: &pb::Dump) -> String {
    match pb::DumpState::try_from(dump.state) {
        Ok(pb::DumpState::Failed) => format!("failed: {}", dump.failure_reason),
        Ok(state) => state
            .as_str_name()
            .trim_start_matches("DUMP_STATE_")
            .to_ascii_lowercase(),
        Err(_) => format!("unknown ({})", dump.state),
    }
}

fn print_results(
    results: &[UploadResult],
    summary: &UploadSummary,
    waited: bool,
) -> anyhow::Result<()> {
    let mut table = TableBuilder::new(
        &[
            "file",
            "host",
            "dump",
            "outcome",
            "state",
            "objects",
            "bad lines",
        ],
        &[false, false, false, false, false, true, true],
    );
    for result in results {
        // Reasons are printed whole below the table: a cell may be cut to fit.
        let outcome = match &result.error {
            Some(_) => "failed (see below)".to_owned(),
            None => result.outcome.replace('_', " "),
        };
        table.row(vec![
            result.path.clone(),
            result.host.clone(),
            result.dump_id.clone().unwrap_or_default(),
            outcome,
            result
                .state
                .as_deref()
                .map(|state| state.split(':').next().unwrap_or(state).to_owned())
                .unwrap_or_default(),
            if waited {
                count(result.objects)
            } else {
                String::new()
            },
            if waited {
                count(result.bad_lines)
            } else {
                String::new()
            },
        ]);
    }
    table.print("no files")?;
    for result in results {
        if let Some(reason) = result.error.as_deref().or_else(|| {
            result
                .state
                .as_deref()
                .and_then(|state| state.strip_prefix("failed: "))
        }) {
            print_line(&format!("failed: {}: {reason}", result.path))?;
        }
    }
    print_line(&format!(
        "{} uploaded, {} already uploaded, {} failed: {} in {:.2} s ({:.0} MB/s)",
        summary.uploaded,
        summary.already_uploaded,
        summary.failed,
        bytes(summary.bytes),
        summary.seconds,
        summary.megabytes_per_second,
    ))
}
