//! One module per command; [`run`] dispatches.

mod demo;
mod diff;
mod dumps;
mod import;
mod show;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::local::Local;

/// Runs the command `cli` names against the data directory.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let local = Local::open(&cli.data_dir).await?;
    match cli.command {
        Command::Import(args) => import::run(&local, args, cli.format).await,
        Command::Dumps(args) => dumps::run(&local, args, cli.format)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Show(args) => show::run(&local, args, cli.format)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Diff(args) => diff::run(&local, args, cli.format)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => demo::run(&local, args, cli.format).await,
    }
}
