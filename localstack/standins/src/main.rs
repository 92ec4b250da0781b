//! `garden-standins`: serves the local stand-ins for Bedrock Converse, AgentCore Runtime and the
//! Gateway tools. Logs go to stderr; `RUST_LOG` sets the filter (default `info`).

use clap::{Parser, Subcommand};
use garden_standins::{ConverseConfig, ConverseStandin, ToolsStandin, bind_loopback, shutdown_signal};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "garden-standins",
    version,
    about = "Local stand-ins for Bedrock Converse, AgentCore Runtime and MCP tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bedrock Converse and AgentCore Runtime (InvokeAgentRuntime) on 127.0.0.1
    Converse {
        #[arg(long, default_value_t = 4610)]
        port: u16,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// The MCP tool server (finance, research, support) at http://127.0.0.1:PORT/mcp
    Tools {
        #[arg(long, default_value_t = 4620)]
        port: u16,
    },
    /// Both servers in one process
    All {
        #[arg(long, default_value_t = 4610)]
        converse_port: u16,
        #[arg(long, default_value_t = 4620)]
        tools_port: u16,
        #[command(flatten)]
        model: ModelArgs,
    },
}

#[derive(Debug, clap::Args)]
struct ModelArgs {
    /// Base URL of the agent process that InvokeAgentRuntime calls are forwarded to
    #[arg(long, default_value = "http://127.0.0.1:4630", env = "GARDEN_STANDIN_AGENT_URL")]
    agent_url: String,
    /// Share of Converse calls answered with ThrottlingException, 0 to 1
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    throttle_rate: f64,
    /// Seed of the throttling draws, so that the same calls are throttled on every run
    #[arg(long)]
    seed: Option<u64>,
}

impl From<ModelArgs> for ConverseConfig {
    fn from(args: ModelArgs) -> Self {
        Self {
            agent_url: args.agent_url,
            throttle_rate: args.throttle_rate,
            seed: args.seed,
        }
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("give a share between 0 and 1".to_owned())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();

    // One signal listener; each server waits on its own receiver.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    match cli.command {
        Command::Converse { port, model } => {
            let listener = bind_loopback(port).await?;
            ConverseStandin::new(model.into())?.serve(listener, stopped()).await?;
        }
        Command::Tools { port } => {
            let listener = bind_loopback(port).await?;
            ToolsStandin::serve(listener, stopped()).await?;
        }
        Command::All {
            converse_port,
            tools_port,
            model,
        } => {
            let converse_listener = bind_loopback(converse_port).await?;
            let tools_listener = bind_loopback(tools_port).await?;
            let converse = ConverseStandin::new(model.into())?.serve(converse_listener, stopped());
            let tools = ToolsStandin::serve(tools_listener, stopped());
            tokio::try_join!(converse, tools)?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}
