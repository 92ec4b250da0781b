//! Lambda entry points: the dispatcher and the step worker as functions fed
//! by SQS event source mappings (with `ReportBatchItemFailures`).
//!
//! Logs are JSON, one line per event, at the level of `AWS_LAMBDA_LOG_LEVEL`
//! (or `RUST_LOG`), so CloudWatch Logs Insights can filter on the span fields
//! (job, step, attempt).

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::config::{Context, Settings};
use crate::error::WorkerError;
use crate::{dispatcher, step};

/// Which handler a function runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Dispatcher,
    Worker,
}

/// JSON logs for Lambda.
pub fn init_logging() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
        .to_lowercase();
    let filter = tracing_subscriber::EnvFilter::try_new(&level).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .init();
}

/// Runs a function until the Lambda runtime stops it.
pub async fn run(function: Function) -> Result<(), WorkerError> {
    init_logging();
    let mut settings = Settings::from_env()?;
    settings.visibility_at_start = true;
    let ctx = Arc::new(Context::from_env(settings).await);
    let handler = service_fn(move |event: LambdaEvent<SqsEvent>| {
        let ctx = ctx.clone();
        async move {
            let response: SqsBatchResponse = match function {
                Function::Dispatcher => dispatcher::handle(&ctx, event.payload).await,
                Function::Worker => step::handle(&ctx, event.payload).await,
            };
            Ok::<_, lambda_runtime::Error>(response)
        }
    });
    lambda_runtime::run(handler)
        .await
        .map_err(|e| WorkerError::Lambda(e.to_string()))
}
