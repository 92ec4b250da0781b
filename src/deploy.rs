//! `garden deploy` and `garden destroy`.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct DeployArgs {}
#[derive(clap::Args)]
pub struct DestroyArgs {}

pub async fn deploy(_args: DeployArgs) -> miette::Result<ExitCode> {
    Err(miette::miette!("not built yet"))
}
pub async fn destroy(_args: DestroyArgs) -> miette::Result<ExitCode> {
    Err(miette::miette!("not built yet"))
}
