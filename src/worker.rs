//! `garden worker`: the dispatcher and the step workers as local polling loops.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct WorkerArgs {}

pub async fn run(_args: WorkerArgs) -> miette::Result<ExitCode> {
    Err(miette::miette!("not built yet"))
}
