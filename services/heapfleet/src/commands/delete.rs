//! `heapfleet delete`: delete dumps everywhere (aggregates and object index, file, catalog row),
//! from the data directory or, with --server, through a gateway's `DeleteDump`.
//!
//! Both ways run `heapfleet_ingest::DumpDeleter`, so a delete cut short is finished by running
//! the command again. Each dump is reported on its own; the exit status is 1 if any was not
//! deleted.

use heapfleet_service::tls::ClientOptions;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use heapfleet_catalog::DumpId;
use heapfleet_gateway::client;
use heapfleet_ingest::DumpDeleter;
use heapfleet_objects::S3Options;
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_query::StoreQueries;
use heapfleet_service::backends::Objects;
use serde::Serialize;

use crate::cli::DeleteArgs;
use crate::local::{LOCAL_TENANT, Local};
use crate::output::{Format, TableBuilder, print_json, time};

/// What happened to one dump named on the command line.
#[derive(Debug, Serialize)]
struct DeleteResult {
    /// The id or prefix as given.
    reference: String,
    dump_id: Option<String>,
    host: Option<String>,
    pid: Option<u32>,
    taken_at_unix: Option<i64>,
    /// `deleted`, `not_found`, `being_ingested` or `failed`.
    outcome: &'static str,
    /// What became of the dump's file (see `heapfleet_ingest::ObjectOutcome`).
    object: Option<String>,
    error: Option<String>,
}

impl DeleteResult {
    fn new(reference: &str) -> DeleteResult {
        DeleteResult {
            reference: reference.to_owned(),
            dump_id: None,
            host: None,
            pid: None,
            taken_at_unix: None,
            outcome: "failed",
            object: None,
            error: None,
        }
    }
}

/// Totals over the whole command.
#[derive(Debug, Default, Serialize)]
struct DeleteSummary {
    deleted: u64,
    not_deleted: u64,
}

pub(crate) async fn run(
    server: Option<&str>,
    client_options: &ClientOptions,
    data_dir: &Path,
    args: DeleteArgs,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let results = match server {
        Some(url) => delete_remote(url, client_options, &args.dumps).await?,
        None => delete_local(data_dir, &args.dumps).await?,
    };
    let mut summary = DeleteSummary::default();
    for result in &results {
        if result.outcome == "deleted" {
            summary.deleted += 1;
        } else {
            summary.not_deleted += 1;
        }
    }
    match format {
        Format::Json => {
            print_json(&serde_json::json!({ "dumps": results, "summary": summary }))?;
        }
        Format::Table => print_table(&results)?,
    }
    Ok(if summary.not_deleted > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Deletes from the data directory's catalog, store and dump files (`objects/`, where
/// `heapfleet serve` keeps uploads).
async fn delete_local(data_dir: &Path, references: &[String]) -> anyhow::Result<Vec<DeleteResult>> {
    let local = Local::open(data_dir).await?;
    let objects_dir = data_dir.join("objects");
    let objects_url = objects_dir
        .to_str()
        .context("the data directory's path is not valid UTF-8")?;
    let objects = Objects::open(objects_url, &S3Options::default())?;
    let deleter = DumpDeleter::new(
        local.catalog.clone(),
        local.store.clone(),
        objects.store,
        objects.prefix,
    );
    let queries = StoreQueries::new(LOCAL_TENANT, local.catalog, local.store);
    let mut results = Vec::with_capacity(references.len());
    for reference in references {
        let mut result = DeleteResult::new(reference);
        let resolved = match queries.resolve(reference).await {
            Ok(dump) => dump,
            Err(error) => {
                result.outcome = if matches!(error, heapfleet_query::QueryError::NotFound(_)) {
                    "not_found"
                } else {
                    "failed"
                };
                result.error = Some(error.to_string());
                results.push(result);
                continue;
            }
        };
        result.dump_id = Some(resolved.id.to_string());
        result.host = Some(resolved.process.host.clone());
        result.pid = Some(resolved.process.pid);
        result.taken_at_unix = Some(resolved.taken_at_unix);
        match deleter.delete(LOCAL_TENANT, &resolved.id).await {
            Ok(deleted) => {
                result.outcome = "deleted";
                result.object = Some(deleted.object.as_str().to_owned());
            }
            Err(error) => {
                result.outcome = if error.is_not_found() {
                    "not_found"
                } else if error.is_being_ingested() {
                    "being_ingested"
                } else {
                    "failed"
                };
                result.error = Some(heapfleet_ingest::error_chain(&error));
            }
        }
        results.push(result);
    }
    Ok(results)
}

/// Deletes through a gateway (or `heapfleet serve`).
async fn delete_remote(
    url: &str,
    client_options: &ClientOptions,
    references: &[String],
) -> anyhow::Result<Vec<DeleteResult>> {
    let mut ingest = client::connect_with(url, client_options).await?;
    let mut results = Vec::with_capacity(references.len());
    for reference in references {
        let mut result = DeleteResult::new(reference);
        let id = match resolve_remote(&mut ingest, reference).await {
            Ok(id) => id,
            Err(status) => {
                result.outcome = outcome_of(status.code());
                result.error = Some(status_text(&status));
                results.push(result);
                continue;
            }
        };
        result.dump_id = Some(id.to_string());
        let response = ingest
            .delete_dump(pb::DeleteDumpRequest {
                dump_id: id.to_string(),
            })
            .await;
        match response {
            Ok(response) => {
                let response = response.into_inner();
                let dump = response.dump.unwrap_or_default();
                result.outcome = "deleted";
                result.host = Some(dump.host);
                result.pid = Some(dump.pid);
                result.taken_at_unix = Some(dump.taken_at_unix);
                result.object = Some(response.object);
            }
            Err(status) => {
                result.outcome = outcome_of(status.code());
                result.error = Some(status_text(&status));
            }
        }
        results.push(result);
    }
    Ok(results)
}

/// Returns the dump id `reference` names: itself when it is a whole id (`d-` optional), else
/// the one dump of the gateway's tenant whose id starts with it.
async fn resolve_remote(
    ingest: &mut client::IngestClient,
    reference: &str,
) -> Result<DumpId, tonic::Status> {
    let wanted = if reference.starts_with("d-") {
        reference.to_owned()
    } else {
        format!("d-{reference}")
    };
    if let Ok(id) = wanted.parse() {
        return Ok(id);
    }
    let dumps = ingest
        .list_dumps(pb::ListDumpsRequest::default())
        .await?
        .into_inner()
        .dumps;
    let mut matches = dumps
        .into_iter()
        .filter(|dump| dump.dump_id.starts_with(&wanted));
    match (matches.next(), matches.next()) {
        (Some(dump), None) => dump.dump_id.parse().map_err(|_| {
            tonic::Status::internal(format!(
                "the server listed a malformed id {:?}",
                dump.dump_id
            ))
        }),
        (None, _) => Err(tonic::Status::not_found(format!(
            "no dump matches {reference:?} (see `heapfleet dumps`)"
        ))),
        (Some(_), Some(_)) => Err(tonic::Status::invalid_argument(format!(
            "{reference:?} matches several dumps; give more of the id"
        ))),
    }
}

fn outcome_of(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::NotFound => "not_found",
        tonic::Code::FailedPrecondition => "being_ingested",
        _ => "failed",
    }
}

/// A refused call as people read it; a server without the ingest API (a query service) is
/// pointed out.
fn status_text(status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::Unimplemented => "this server does not delete dumps (a query service?): \
             point --server at the gateway or at `heapfleet serve`"
            .to_owned(),
        code => format!("{}: {}", client::code_name(code), status.message()),
    }
}

fn print_table(results: &[DeleteResult]) -> anyhow::Result<()> {
    let mut table = TableBuilder::new(
        &["dump", "host", "pid", "taken at", "outcome", "file"],
        &[false, false, true, false, false, false],
    );
    for result in results {
        let outcome = match &result.error {
            Some(error) => format!("{}: {error}", result.outcome),
            None => result.outcome.to_owned(),
        };
        table.row(vec![
            result
                .dump_id
                .clone()
                .unwrap_or_else(|| result.reference.clone()),
            result.host.clone().unwrap_or_default(),
            result.pid.map(|pid| pid.to_string()).unwrap_or_default(),
            result.taken_at_unix.map(time).unwrap_or_default(),
            outcome,
            result.object.clone().unwrap_or_default(),
        ]);
    }
    table.print("no dumps named")
}
