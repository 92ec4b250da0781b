//! The offline verbs: validate, compile, graph, schema. No AWS call is made.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ValidateArgs {}
#[derive(clap::Args)]
pub struct CompileArgs {}
#[derive(clap::Args)]
pub struct GraphArgs {}
#[derive(clap::Args)]
pub struct SchemaArgs {}

pub fn validate(_args: ValidateArgs) -> miette::Result<ExitCode> {
    Err(miette::miette!("not built yet"))
}
pub fn compile(_args: CompileArgs) -> miette::Result<ExitCode> {
    Err(miette::miette!("not built yet"))
}
pub fn graph(_args: GraphArgs) -> miette::Result<ExitCode> {
    Err(miette::miette!("not built yet"))
}
pub fn schema(_args: SchemaArgs) -> miette::Result<ExitCode> {
    Err(miette::miette!("not built yet"))
}
