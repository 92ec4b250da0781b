//! `garden`: check, compile, deploy and run agent workflows on AWS Step Functions.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod deploy;
mod failure;
mod jobs;
mod offline;
mod worker;

#[derive(Parser)]
#[command(name = "garden", version, about, propagate_version = true)]
struct Cli {
    /// More logging: -v for debug, -vv for trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check definitions and report every problem with its position.
    Validate(offline::ValidateArgs),
    /// Compile a definition to a state machine, its IAM policy and its resources.
    Compile(offline::CompileArgs),
    /// Print a definition's dependency graph as Mermaid or Graphviz DOT.
    Graph(offline::GraphArgs),
    /// Print the JSON Schema of workflow definitions.
    Schema(offline::SchemaArgs),
    /// Deploy the core resources and workflows to AWS or LocalStack.
    Deploy(deploy::DeployArgs),
    /// Remove what `garden deploy` made.
    Destroy(deploy::DestroyArgs),
    /// Run the dispatcher and the step workers as long-polling loops.
    Worker(worker::WorkerArgs),
    /// Send a job to the jobs queue.
    Submit(jobs::SubmitArgs),
    /// Show a job: its steps, attempts, tokens, errors and output.
    Status(jobs::StatusArgs),
    /// List recent jobs, newest first.
    Jobs(jobs::JobsArgs),
    /// Answer an approval step.
    Approve(jobs::ApproveArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // Ids and commands in hints must stay whole to be copied: no wrapping.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .wrap_lines(false)
                .break_words(false)
                .build(),
        )
    }));
    let result = match cli.command {
        Command::Validate(args) => offline::validate(args),
        Command::Compile(args) => offline::compile(args),
        Command::Graph(args) => offline::graph(args),
        Command::Schema(args) => offline::schema(args),
        Command::Deploy(args) => runtime().block_on(deploy::deploy(args)),
        Command::Destroy(args) => runtime().block_on(deploy::destroy(args)),
        Command::Worker(args) => runtime().block_on(worker::run(args)),
        Command::Submit(args) => runtime().block_on(jobs::submit(args)),
        Command::Status(args) => runtime().block_on(jobs::status(args)),
        Command::Jobs(args) => runtime().block_on(jobs::list(args)),
        Command::Approve(args) => runtime().block_on(jobs::approve(args)),
    };
    match result {
        Ok(code) => code,
        Err(report) => {
            // A closed stderr (`garden ... 2>&1 | head`) is no reason to panic.
            let _ = writeln!(std::io::stderr(), "{report:?}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,garden=info,garden_workers=info,garden_infra=info",
        1 => "info,garden=debug,garden_workers=debug,garden_infra=debug",
        _ => "debug,garden=trace,garden_workers=trace,garden_infra=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
