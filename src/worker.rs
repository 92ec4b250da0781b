//! `garden worker`: the dispatcher and the step workers as local polling loops.
//!
//! The same handlers as the Lambda functions, fed by long polls. Endpoints come
//! from the usual AWS variables (`AWS_ENDPOINT_URL`, ...), so one command runs
//! against LocalStack or AWS alike.

use std::process::ExitCode;
use std::time::Duration;

use garden_workers::{QueueKind, Settings, local};
use miette::IntoDiagnostic;

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// Resource name prefix (queues `<prefix>-jobs`, `<prefix>-model`, ..., table `<prefix>`).
    #[arg(long, env = "GARDEN_PREFIX", default_value = "garden")]
    prefix: String,
    /// DynamoDB table, when it is not named after the prefix.
    #[arg(long, env = "GARDEN_TABLE")]
    table: Option<String>,
    /// Consume only these queues: jobs, model, tool, agent, approval, control.
    #[arg(long, value_delimiter = ',', value_parser = parse_kind)]
    only: Vec<QueueKind>,
    /// Job messages handled at once.
    #[arg(long, env = "GARDEN_CONCURRENCY_JOBS", default_value_t = 4)]
    jobs: usize,
    /// Model steps run at once (Bedrock quotas).
    #[arg(long, env = "GARDEN_CONCURRENCY_MODEL", default_value_t = 4)]
    model: usize,
    /// Tool steps run at once.
    #[arg(long, env = "GARDEN_CONCURRENCY_TOOL", default_value_t = 8)]
    tool: usize,
    /// Agent steps run at once.
    #[arg(long, env = "GARDEN_CONCURRENCY_AGENT", default_value_t = 4)]
    agent: usize,
    /// Approval steps parked at once.
    #[arg(long, env = "GARDEN_CONCURRENCY_APPROVAL", default_value_t = 2)]
    approval: usize,
    /// Control steps (job output) run at once.
    #[arg(long, env = "GARDEN_CONCURRENCY_CONTROL", default_value_t = 4)]
    control: usize,
    /// Seconds a received message stays invisible; renewed while a step runs.
    /// A worker that dies leaves its messages to come back after this long, so
    /// keep it below the shortest `heartbeat` of the workflows.
    #[arg(long, env = "GARDEN_VISIBILITY_TIMEOUT", default_value_t = 20)]
    visibility_timeout: i32,
    /// Seconds to finish in-flight messages on Ctrl-C before releasing them.
    #[arg(long, env = "GARDEN_SHUTDOWN_GRACE", default_value_t = 30)]
    grace: u64,
}

fn parse_kind(text: &str) -> Result<QueueKind, String> {
    text.parse().map_err(|e: garden_workers::WorkerError| e.to_string())
}

pub async fn run(args: WorkerArgs) -> miette::Result<ExitCode> {
    let mut settings = Settings {
        table: args
            .table
            .unwrap_or_else(|| garden_workflows::target::table_name(&args.prefix)),
        prefix: args.prefix,
        only: args.only,
        visibility_timeout_secs: args.visibility_timeout.clamp(10, 43_200),
        grace: Duration::from_secs(args.grace),
        ..Settings::default()
    };
    let counts = [
        (QueueKind::Jobs, args.jobs),
        (QueueKind::Task(garden_workflows::wire::TaskKind::Model), args.model),
        (QueueKind::Task(garden_workflows::wire::TaskKind::Tool), args.tool),
        (QueueKind::Task(garden_workflows::wire::TaskKind::Agent), args.agent),
        (
            QueueKind::Task(garden_workflows::wire::TaskKind::Approval),
            args.approval,
        ),
        (QueueKind::Task(garden_workflows::wire::TaskKind::Control), args.control),
    ];
    for (kind, count) in counts {
        settings.concurrency.insert(kind, count.max(1));
    }
    let queues: Vec<String> = settings.queues().iter().map(|k| k.to_string()).collect();
    tracing::info!(
        prefix = %settings.prefix,
        table = %settings.table,
        queues = %queues.join(","),
        "garden worker starting"
    );
    local::run(settings, shutdown_signal()).await.into_diagnostic()?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down: finishing in-flight messages");
}

#[cfg(test)]
mod tests {
    /// Workers fail a task on the delivery before SQS would move it to the
    /// dead-letter queue, so they must count to the queues' own limit.
    #[test]
    fn workers_count_deliveries_to_the_deployed_limit() {
        let spec = garden_infra::spec::CoreSpec::new("garden", garden_infra::spec::ScheduleRoute::Scheduler);
        for queue in spec.queues.iter().filter(|q| q.kind.is_some()) {
            assert_eq!(
                queue.max_receive_count,
                garden_workers::config::DEFAULT_MAX_RECEIVES,
                "{}",
                queue.name
            );
        }
    }
}
