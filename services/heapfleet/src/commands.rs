//! One module per command; [`run`] dispatches.
//!
//! The read commands (dumps, show, diff) work through `heapfleet_query::Queries`: computed here
//! from the data directory, or asked of a server with --server. Import and demo write the data
//! directory; upload sends to a server; delete works on either; serve runs one.

mod agent;
mod compare;
mod delete;
mod demo;
mod diff;
mod dominators;
mod dump_file;
mod dumps;
mod import;
mod leaks;
mod paths;
mod retained;
mod scope;
mod serve;
mod show;
mod timeline;
mod token;
mod upload;

use std::process::ExitCode;

use anyhow::bail;
use heapfleet_query::{Queries, RemoteQueries, StoreQueries};
use heapfleet_service::tls::ClientOptions;

use crate::cli::{Cli, Command};
use crate::local::{LOCAL_TENANT, Local};

/// Runs the command `cli` names.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let format = cli.format;
    let client = ClientOptions {
        token: cli.token.clone(),
        tls_ca: cli.tls_ca.clone(),
    };
    match cli.command {
        Command::Import(args) => {
            refuse_server(cli.server.as_deref(), "import", "upload")?;
            import::run(&Local::open(&cli.data_dir).await?, args, format).await
        }
        Command::Demo(args) => {
            refuse_server(cli.server.as_deref(), "demo", "upload")?;
            demo::run(&Local::open(&cli.data_dir).await?, args, format).await
        }
        Command::Serve(args) => {
            refuse_server(cli.server.as_deref(), "serve", "serve")?;
            serve::run(&cli.data_dir, args).await
        }
        Command::Upload(args) => {
            let Some(server) = cli.server.as_deref() else {
                bail!(
                    "upload needs a server: pass --server URL (or set HEAPFLEET_SERVER); \
                     to add dumps to the local data directory use `heapfleet import`"
                );
            };
            upload::run(server, &client, args, format).await
        }
        Command::Delete(args) => {
            delete::run(cli.server.as_deref(), &client, &cli.data_dir, args, format).await
        }
        Command::Agent(args) => {
            let Some(server) = cli.server.as_deref() else {
                bail!(
                    "agent needs a server: pass --server URL (or set HEAPFLEET_SERVER), the \
                     gateway or `heapfleet serve` the dumps go to"
                );
            };
            agent::run(server, &client, args, format).await
        }
        Command::Token(args) => token::run(&args, format),
        Command::Dumps(args) => {
            let queries = open_queries(cli.server.as_deref(), &client, &cli.data_dir).await?;
            dumps::run(queries.as_ref(), args, format).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Show(args) => {
            let queries = open_queries(cli.server.as_deref(), &client, &cli.data_dir).await?;
            show::run(queries.as_ref(), args, format).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Leaks(args) => {
            let queries = open_queries(cli.server.as_deref(), &client, &cli.data_dir).await?;
            leaks::run(queries.as_ref(), args, format).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare(args) => {
            let queries = open_queries(cli.server.as_deref(), &client, &cli.data_dir).await?;
            compare::run(queries.as_ref(), args, format).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Timeline(args) => {
            let queries = open_queries(cli.server.as_deref(), &client, &cli.data_dir).await?;
            timeline::run(queries.as_ref(), args, format).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Paths(args) => {
            let queries = open_queries(cli.server.as_deref(), &client, &cli.data_dir).await?;
            paths::run(queries.as_ref(), args, format).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Retained(args) => {
            let queries = open_queries(cli.server.as_deref(), &client, &cli.data_dir).await?;
            retained::run(queries.as_ref(), args, format).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dominators(args) => {
            let queries = open_queries(cli.server.as_deref(), &client, &cli.data_dir).await?;
            dominators::run(queries.as_ref(), args, format).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff(args) => {
            let queries = open_queries(cli.server.as_deref(), &client, &cli.data_dir).await?;
            diff::run(queries.as_ref(), args, format).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The queries of the read commands: a server's with --server, else the data directory's.
async fn open_queries(
    server: Option<&str>,
    client: &ClientOptions,
    data_dir: &std::path::Path,
) -> anyhow::Result<Box<dyn Queries>> {
    Ok(match server {
        Some(url) => Box::new(RemoteQueries::connect_with(url, client).await?),
        None => {
            let local = Local::open(data_dir).await?;
            let objects = local.objects()?;
            Box::new(
                StoreQueries::new(LOCAL_TENANT, local.catalog, local.store).with_objects(objects),
            )
        }
    })
}

/// Fails for a command that works on the data directory only when --server is given.
fn refuse_server(server: Option<&str>, command: &str, instead: &str) -> anyhow::Result<()> {
    if let Some(url) = server {
        bail!(
            "`heapfleet {command}` works on the local data directory, not on a server ({url}); \
             use `heapfleet {instead}` there, or drop --server"
        );
    }
    Ok(())
}
