//! The step worker: one task message in, one answer to Step Functions out.
//!
//! For each message: read the [`TaskMessage`]; if the step already succeeded
//! (a duplicate delivery), answer again with the stored result and call no
//! provider; otherwise mark the step RUNNING, render its templates, run the
//! provider with retries while heartbeating, store the output and usage, and
//! send `SendTaskSuccess` with the exports, or `SendTaskFailure` with a stable
//! error name. Approval steps park their token on the step item instead.
//! An item of a wide fan-out ([`TaskMessage::fan`]) has no token: it answers
//! through its fan-out ([`crate::fanout`]) instead.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureError;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError;
use garden_workflows::template::{Path, Segment};
use garden_workflows::wire::{Action, Export, ExportShape, TaskMessage, TaskResult, errors};
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::Context;
use crate::error::{AwsError, Retryable, StepError};
use crate::keepalive::{self, Kept, Receipt};
use crate::providers::{Failure, Outcome, agent, model};
use crate::render::{Fault, Scope};
use crate::retry::with_retry;
use crate::store::{self, StepStatus, StepUsage};

/// Handles a batch of task messages; failed ones are reported for SQS to
/// deliver again, but on their last delivery before the dead-letter queue
/// they fail their step ([`give_up`]).
pub async fn handle(ctx: &Context, event: SqsEvent) -> SqsBatchResponse {
    crate::batch::each_record(&event, "task message", |record| async move {
        match process(ctx, record).await {
            Err(err) if crate::batch::receive_count(record) >= ctx.settings.max_receives => {
                give_up(ctx, record, err).await
            }
            done => done,
        }
    })
    .await
}

/// A task that failed on its last delivery would go to the dead-letter queue
/// and leave its Task waiting for its timeout (a wide fan-out, for a year):
/// instead its step fails with [`errors::WORKER_FAILED`] and the last error,
/// for the step's `on_error`. A notice without a token or item has nothing to
/// fail and goes to the dead-letter queue.
async fn give_up(ctx: &Context, record: &SqsMessage, err: Retryable) -> Result<(), Retryable> {
    let Ok(message) = serde_json::from_str::<TaskMessage>(record.body.as_deref().unwrap_or_default()) else {
        return Err(err);
    };
    if message.token.is_empty() && message.fan.is_none() {
        return Err(err);
    }
    let deliveries = crate::batch::receive_count(record);
    tracing::error!(error = %err, deliveries, step = %message.step, "task failed on its last delivery: failing its step");
    let error = StepError::terminal(
        errors::WORKER_FAILED,
        format!("the workers could not finish this task in {deliveries} deliveries; the last error: {err}"),
    );
    let cause = error.cause(&message.step);
    let step_kind = matches!(
        message.spec.action,
        Action::Model(_) | Action::Tool(_) | Action::Agent(_) | Action::Approval(_)
    );
    // A step records its failure (an item, through its fan-out); control
    // tasks keep no record of their own, and if the store is what fails, the
    // Task still hears.
    if step_kind && fail(ctx, &message, error, 0, 0).await.is_ok() {
        return Ok(());
    }
    if message.token.is_empty() {
        return Err(err);
    }
    send_failure(ctx, &message.token, errors::WORKER_FAILED, &cause).await
}

/// Handles one task message. `Ok` means the message is finished and can be
/// deleted; `Err` means it should come back.
pub async fn process(ctx: &Context, record: &SqsMessage) -> Result<(), Retryable> {
    let body = record.body.as_deref().unwrap_or_default();
    let message: TaskMessage = match serde_json::from_str(body) {
        Ok(message) => message,
        Err(err) => return bad_task(ctx, body, &err.to_string()).await,
    };
    let span = tracing::info_span!(
        "step",
        job = %message.job_id,
        step = %message.step,
        attempt = message.attempt,
        item = message.item,
        kind = %message.spec.action.kind(),
    );
    run(ctx, record, &message).instrument(span).await
}

async fn run(ctx: &Context, record: &SqsMessage, message: &TaskMessage) -> Result<(), Retryable> {
    let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
    let (job, step, item) = (message.job_id.as_str(), message.step.as_str(), message.item);
    match &message.spec.action {
        Action::Gate(gate) => return crate::join::wait(ctx, message, gate).await,
        Action::Finished(finished) => return crate::join::finished(ctx, message, finished).await,
        Action::FanOut(fan) => return crate::fanout::start(ctx, message, fan).await,
        _ => {}
    }
    let fan = match (&message.fan, item) {
        (Some(fan), Some(index)) => {
            if !crate::fanout::admit(ctx, message, index).await? {
                return Ok(());
            }
            Some((fan, index))
        }
        (Some(_), None) => {
            tracing::error!("fan-out item message without an item index: dropping it");
            return Ok(());
        }
        (None, _) => None,
    };

    let existing = store::get_step(ddb, table, job, step, item).await?;
    if let Some(existing) = &existing
        && existing.status == StepStatus::Succeeded
        && let Some(result) = &existing.result
    {
        if let Some((fan, index)) = fan {
            tracing::info!("item already succeeded: completing it through its fan-out again");
            return crate::fanout::complete(ctx, message, fan, index, false).await;
        }
        tracing::info!("step already succeeded: answering again with its stored result");
        return send_success(ctx, &message.token, result).await;
    }

    if let Action::Approval(approval) = &message.spec.action {
        if let Some(existing) = &existing
            && matches!(existing.status, StepStatus::Succeeded | StepStatus::Failed)
        {
            tracing::info!("approval already answered: dropping the repeated message");
            return Ok(());
        }
        let request = json!({
            "message": approval.message,
            "notify": approval.notify,
            "exports": message.exports,
            "item": item,
        });
        store::wait_for_approval(ddb, table, job, step, item, &message.token, &request).await?;
        tracing::info!(notify = ?approval.notify, "waiting for approval: answer with `garden approve`");
        return Ok(());
    }

    store::mark_step_running(ddb, table, job, step, item).await?;
    let started = Instant::now();
    let receipt = receipt(ctx, record).await;
    let every = keepalive::interval(
        message.spec.heartbeat_secs,
        ctx.settings.heartbeat_secs,
        ctx.settings.visibility_timeout_secs,
    );
    let work = execute(ctx, message);
    let outcome = match keepalive::keep_alive(ctx, &message.token, receipt.as_ref(), every, work).await {
        Kept::Done(outcome) => outcome,
        Kept::Gone => {
            // Step Functions gave up on the task (heartbeat or step timeout):
            // record it so the step does not look like it is still running.
            let cause = StepError::unavailable("Step Functions no longer waits for this task").cause(step);
            let usage = StepUsage {
                duration_ms: started.elapsed().as_millis() as u64,
                ..StepUsage::default()
            };
            store::fail_step(ddb, table, job, step, item, "States.Timeout", &cause, usage).await?;
            return Ok(());
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;

    match outcome {
        Ok(outcome) => {
            let result = match answer(message, &outcome.output, fan.is_none()) {
                Ok(result) => result,
                Err(error) => return fail(ctx, message, error, outcome.attempts, duration_ms).await,
            };
            let usage = StepUsage {
                attempts: outcome.attempts,
                duration_ms,
                input_tokens: outcome.input_tokens,
                output_tokens: outcome.output_tokens,
                cost_usd: match &message.spec.action {
                    Action::Model(model) => model.price.map(|p| p.cost(outcome.input_tokens, outcome.output_tokens)),
                    _ => None,
                },
            };
            store::finish_step(ddb, table, job, step, item, &outcome.output, usage, &result).await?;
            tracing::info!(
                attempts = outcome.attempts,
                duration_ms,
                input_tokens = outcome.input_tokens,
                output_tokens = outcome.output_tokens,
                cost_usd = usage.cost_usd,
                "step succeeded"
            );
            match fan {
                Some((fan, index)) => crate::fanout::complete(ctx, message, fan, index, true).await,
                None => send_success(ctx, &message.token, &result).await,
            }
        }
        Err(Fault::Step(error)) => fail(ctx, message, error, 0, duration_ms).await,
        Err(Fault::Failed(failure)) => {
            let attempts = failure.attempts;
            fail(ctx, message, attempted(failure), attempts, duration_ms).await
        }
        Err(Fault::Retry(err)) => Err(err),
    }
}

/// Renders the step's templates and runs its provider.
async fn execute(ctx: &Context, message: &TaskMessage) -> Result<Outcome, Fault> {
    let deadline = message
        .spec
        .timeout_secs
        .map(|secs| Instant::now() + Duration::from_secs(secs));
    let policy = &message.spec.retry;
    let failed = Fault::Failed;
    match &message.spec.action {
        Action::Model(action) => {
            let system = action.system.clone().map(Value::String);
            let prompt = Value::String(action.prompt.clone());
            let templates: Vec<&Value> = system.iter().chain([&prompt]).collect();
            let scope = Scope::load(ctx, message, &templates).await?;
            let system = action.system.as_deref().map(|s| scope.render_text(s)).transpose()?;
            let prompt = scope.render_text(&action.prompt)?;
            model::run(ctx, action, system.as_deref(), &prompt, policy, deadline)
                .await
                .map_err(failed)
        }
        Action::Tool(action) => {
            let scope = Scope::load(ctx, message, &[&action.arguments]).await?;
            let arguments = scope.render(&action.arguments)?;
            let retried = with_retry(policy, deadline, |_| {
                ctx.gateways.call(&action.gateway, &action.name, &arguments)
            })
            .await;
            finish(retried.result, retried.attempts)
        }
        Action::Agent(action) => {
            let scope = Scope::load(ctx, message, &[&action.payload]).await?;
            let payload = scope.render(&action.payload)?;
            let session = agent::session_id(
                &message.job_id,
                &action.runtime.name,
                action.session,
                &message.step,
                message.item,
            );
            let retried = with_retry(policy, deadline, |_| agent::invoke(ctx, action, &payload, &session)).await;
            finish(retried.result, retried.attempts)
        }
        Action::Output { output } => {
            let scope = Scope::load(ctx, message, &[output]).await?;
            let rendered = scope.render(output)?;
            store::set_job_output(&ctx.clients.ddb, &ctx.settings.table, &message.job_id, &rendered).await?;
            Ok(Outcome::new(rendered, 1))
        }
        Action::Approval(_) => Err(StepError::rejected("approval steps are not run by a provider").into()),
        Action::Gate(_) | Action::Finished(_) | Action::FanOut(_) => {
            Err(StepError::rejected("gates and fan-outs are not run by a provider").into())
        }
    }
}

fn finish(result: Result<Value, StepError>, attempts: u32) -> Result<Outcome, Fault> {
    match result {
        Ok(output) => Ok(Outcome::new(output, attempts)),
        Err(error) => Err(Fault::Failed(Failure { error, attempts })),
    }
}

/// Carries the attempt count inside the message, for the step item.
fn attempted(failure: Failure) -> StepError {
    let mut error = failure.error;
    if failure.attempts > 1 {
        error.message = format!("{} (after {} attempts)", error.message, failure.attempts);
    }
    error
}

async fn fail(
    ctx: &Context,
    message: &TaskMessage,
    error: StepError,
    attempts: u32,
    duration_ms: u64,
) -> Result<(), Retryable> {
    let cause = error.cause(&message.step);
    let usage = StepUsage {
        attempts,
        duration_ms,
        ..StepUsage::default()
    };
    let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
    store::fail_step(
        ddb,
        table,
        &message.job_id,
        &message.step,
        message.item,
        error.name,
        &cause,
        usage,
    )
    .await?;
    tracing::warn!(error = error.name, message = %error.message, "step failed");
    match (&message.fan, message.item) {
        (Some(_), Some(index)) => {
            let cause = json!({"step": message.step, "item": index, "message": error.message}).to_string();
            crate::fanout::fail(ctx, message, index, error.name, &cause).await
        }
        _ => send_failure(ctx, &message.token, error.name, &cause).await,
    }
}

/// The values the state machine asked for, taken from the step's output.
pub fn exports(wanted: &[Export], output: &Value) -> std::collections::BTreeMap<String, Value> {
    wanted
        .iter()
        .map(|export| {
            let found = Path::lookup(&path_segments(&export.path), output).cloned();
            let value = match (export.shape, found) {
                (ExportShape::Value, found) => found.unwrap_or(Value::Null),
                (ExportShape::Indices, Some(Value::Array(items))) => Value::from((0..items.len()).collect::<Vec<_>>()),
                (ExportShape::Indices, _) => Value::Array(Vec::new()),
            };
            (export.name.clone(), value)
        })
        .collect()
}

/// The most a `SendTaskSuccess` output may hold (256 KiB).
const MAX_ANSWER_BYTES: usize = 262_144;

/// What the step answers Step Functions with. When the answer goes to a
/// state machine (`checked`), an item list longer than its Map can run in one
/// execution, or an answer over the payload limit, fails the step with a
/// cause that says what to change, rather than failing the execution later.
fn answer(message: &TaskMessage, output: &Value, checked: bool) -> Result<String, StepError> {
    let exports = exports(&message.exports, output);
    if checked {
        for export in &message.exports {
            let (Some(max), Some(Value::Array(items))) = (export.max_items, exports.get(&export.name)) else {
                continue;
            };
            if items.len() as u64 > max {
                let what = if export.path.is_empty() {
                    "its output".to_owned()
                } else {
                    format!("`{}`", export.path)
                };
                return Err(StepError::terminal(
                    errors::TOO_MANY_ITEMS,
                    format!(
                        "{what} has {} items, and a Map state of this workflow runs about {max} in one execution's \
                         history: mark the `for_each` step over it `wide: true`, which has no such limit",
                        items.len()
                    ),
                ));
            }
        }
    }
    let result = TaskResult {
        step: message.step.clone(),
        item: message.item,
        exports,
    };
    let text = serde_json::to_string(&result).unwrap_or_default();
    if checked && text.len() > MAX_ANSWER_BYTES {
        let largest = (result.exports.iter())
            .map(|(name, value)| (value.to_string().len(), name))
            .max()
            .map(|(bytes, name)| format!("`{name}` {bytes} bytes"))
            .unwrap_or_default();
        return Err(StepError::terminal(
            errors::ANSWER_TOO_LARGE,
            format!(
                "the values the state machine reads from this step are {} bytes, more than the {MAX_ANSWER_BYTES} \
                 Step Functions accepts (largest: {largest}): have `when` conditions read a small field of the \
                 output rather than a large one",
                text.len()
            ),
        ));
    }
    Ok(text)
}

/// `a.b[2].c` as path segments (empty for the whole output).
fn path_segments(path: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            if open > 0 {
                segments.push(Segment::Key(rest[..open].to_owned()));
            }
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                if let Ok(index) = rest[1..close].parse() {
                    segments.push(Segment::Index(index));
                }
                rest = &rest[close + 1..];
            }
        } else {
            segments.push(Segment::Key(rest.to_owned()));
        }
    }
    segments
}

async fn receipt(ctx: &Context, record: &SqsMessage) -> Option<Receipt> {
    let receipt_handle = record.receipt_handle.clone()?;
    let queue_url = ctx.queue_url(record.event_source_arn.as_deref()?).await?;
    Some(Receipt {
        queue_url,
        receipt_handle,
    })
}

/// A message that is not a task message: fail the task if a token can be
/// found, so the execution does not wait for nothing; else drop it.
async fn bad_task(ctx: &Context, body: &str, problem: &str) -> Result<(), Retryable> {
    let token = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_owned));
    match token {
        Some(token) => {
            tracing::error!(problem, "unreadable task message: failing its task");
            let step = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v.get("step").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            let cause = json!({"step": step, "message": format!("the task message could not be read: {problem}")});
            send_failure(ctx, &token, errors::BAD_TASK, &cause.to_string()).await
        }
        None => {
            tracing::error!(
                problem,
                body_len = body.len(),
                "unreadable task message without a token: dropping it"
            );
            Ok(())
        }
    }
}

pub(crate) async fn send_success(ctx: &Context, token: &str, result: &str) -> Result<(), Retryable> {
    answer_success(&ctx.clients.sfn, token, result).await
}

pub(crate) async fn send_failure(ctx: &Context, token: &str, error: &str, cause: &str) -> Result<(), Retryable> {
    answer_failure(&ctx.clients.sfn, token, error, cause).await
}

/// `SendTaskSuccess`; a task that is gone (timed out, or answered already)
/// takes no answer, which is not a failure of this message.
pub(crate) async fn answer_success(sfn: &aws_sdk_sfn::Client, token: &str, output: &str) -> Result<(), Retryable> {
    match sfn.send_task_success().task_token(token).output(output).send().await {
        Ok(_) => Ok(()),
        Err(err) => match err.as_service_error() {
            Some(SendTaskSuccessError::TaskTimedOut(_) | SendTaskSuccessError::InvalidToken(_)) => {
                tracing::warn!("the task is gone (timed out or answered): dropping the message");
                Ok(())
            }
            Some(SendTaskSuccessError::TaskDoesNotExist(_)) => Ok(()),
            _ => Err(AwsError::new("SendTaskSuccess", err).into()),
        },
    }
}

/// `SendTaskFailure`, with the same view of a task that is gone.
pub(crate) async fn answer_failure(
    sfn: &aws_sdk_sfn::Client,
    token: &str,
    error: &str,
    cause: &str,
) -> Result<(), Retryable> {
    match sfn
        .send_task_failure()
        .task_token(token)
        .error(error)
        .cause(cause)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(err) => match err.as_service_error() {
            Some(
                SendTaskFailureError::TaskTimedOut(_)
                | SendTaskFailureError::InvalidToken(_)
                | SendTaskFailureError::TaskDoesNotExist(_),
            ) => {
                tracing::warn!("the task is gone (timed out or answered): dropping the message");
                Ok(())
            }
            _ => Err(AwsError::new("SendTaskFailure", err).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_take_values_and_indices_from_the_output() {
        let output = json!({"confidence": 0.4, "sections": ["a", "b", "c"], "deep": {"list": [{"x": 1}]}});
        let wanted = vec![
            Export {
                name: "confidence".into(),
                path: "confidence".into(),
                shape: ExportShape::Value,
                max_items: None,
            },
            Export {
                name: "sections".into(),
                path: "sections".into(),
                shape: ExportShape::Indices,
                max_items: None,
            },
            Export {
                name: "x".into(),
                path: "deep.list[0].x".into(),
                shape: ExportShape::Value,
                max_items: None,
            },
            Export {
                name: "missing".into(),
                path: "nope".into(),
                shape: ExportShape::Value,
                max_items: None,
            },
            Export {
                name: "whole".into(),
                path: String::new(),
                shape: ExportShape::Value,
                max_items: None,
            },
        ];
        let got = exports(&wanted, &output);
        assert_eq!(got["confidence"], json!(0.4));
        assert_eq!(got["sections"], json!([0, 1, 2]));
        assert_eq!(got["x"], json!(1));
        assert_eq!(got["missing"], Value::Null);
        assert_eq!(got["whole"], output);
    }

    fn message_exporting(exports: Vec<Export>) -> TaskMessage {
        let mut message: TaskMessage = serde_json::from_value(json!({
            "token": "t", "job_id": "j", "workflow": "w", "step": "plan",
            "spec": {"kind": "tool", "gateway": {"name": "g", "url": "http://127.0.0.1:1/mcp"},
                     "name": "list", "arguments": {}},
        }))
        .unwrap();
        message.exports = exports;
        message
    }

    #[test]
    fn an_item_list_longer_than_its_map_can_run_fails_the_step_with_a_fix() {
        let message = message_exporting(vec![Export {
            name: "items_indices".into(),
            path: "items".into(),
            shape: ExportShape::Indices,
            max_items: Some(3),
        }]);
        let three = json!({"items": [1, 2, 3]});
        let answered: Value = serde_json::from_str(&answer(&message, &three, true).unwrap()).unwrap();
        assert_eq!(answered["exports"]["items_indices"], json!([0, 1, 2]));

        let four = json!({"items": [1, 2, 3, 4]});
        let error = answer(&message, &four, true).unwrap_err();
        assert_eq!(error.name, errors::TOO_MANY_ITEMS);
        assert!(!error.transient);
        assert!(error.message.contains("`items` has 4 items"), "{}", error.message);
        assert!(error.message.contains("about 3"), "{}", error.message);
        assert!(error.message.contains("wide: true"), "{}", error.message);
        // An item of a wide fan-out answers no state machine: nothing to check.
        assert!(answer(&message, &four, false).is_ok());
    }

    #[test]
    fn an_answer_over_the_payload_limit_fails_the_step_naming_the_largest_value() {
        let message = message_exporting(vec![
            Export {
                name: "summary".into(),
                path: "summary".into(),
                shape: ExportShape::Value,
                max_items: None,
            },
            Export {
                name: "score".into(),
                path: "score".into(),
                shape: ExportShape::Value,
                max_items: None,
            },
        ]);
        let small = json!({"summary": "x".repeat(1_000), "score": 3});
        assert!(answer(&message, &small, true).is_ok());
        let large = json!({"summary": "x".repeat(MAX_ANSWER_BYTES), "score": 3});
        let error = answer(&message, &large, true).unwrap_err();
        assert_eq!(error.name, errors::ANSWER_TOO_LARGE);
        assert!(error.message.contains("largest: `summary`"), "{}", error.message);
    }
}
