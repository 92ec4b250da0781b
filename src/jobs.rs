//! The job verbs: submit, status, jobs, approve.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct SubmitArgs {}
#[derive(clap::Args)]
pub struct StatusArgs {}
#[derive(clap::Args)]
pub struct JobsArgs {}
#[derive(clap::Args)]
pub struct ApproveArgs {}

pub async fn submit(_args: SubmitArgs) -> miette::Result<ExitCode> {
    Err(miette::miette!("not built yet"))
}
pub async fn status(_args: StatusArgs) -> miette::Result<ExitCode> {
    Err(miette::miette!("not built yet"))
}
pub async fn list(_args: JobsArgs) -> miette::Result<ExitCode> {
    Err(miette::miette!("not built yet"))
}
pub async fn approve(_args: ApproveArgs) -> miette::Result<ExitCode> {
    Err(miette::miette!("not built yet"))
}
