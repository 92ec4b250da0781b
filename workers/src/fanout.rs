//! Wide fan-out: a `for_each` step with `wide: true` runs as one SQS task
//! message per item instead of a Map state, at most `concurrency` at a time,
//! and answers its single Task when every item has finished.
//!
//! [`start`] handles the fan-out Task (it carries the token): it renders the
//! step's `for_each` like an item does ([`Scope::load`]), records the fan-out
//! ([`record`]) and sends items `0..concurrency`. Each item message
//! ([`TaskMessage::fan`]) runs through the ordinary step path; instead of
//! answering a token of its own, a finished item calls [`complete`]: it sends
//! its successor, item `i + concurrency` (fixed per item, so no more than
//! `concurrency` items are ever in flight), then counts itself on its shard
//! of [`SHARD`] items ([`record`]). The write that fills a shard counts it
//! into the fan-out, and the one that brings the fan-out to zero claims it
//! and sends `SendTaskSuccess` with `{"step", "exports": {}}`. An item that fails for good claims the fan-out
//! and fails the Task with its error name and cause ([`fail`]), as a Map fails
//! when one item fails; its successor is not sent, and the items still in
//! flight send theirs only to have them dropped by [`admit`].
//!
//! Redeliveries: the successor is sent before the item is counted, so an item
//! found counted has sent it, and one not counted sends it (again, at worst).
//! Two copies of an item that ran at the same time (SQS delivers at least
//! once) would each send a successor and double the rest of the chain: the
//! first to finish claims the handing on, and a copy that loses the claim
//! leaves the item to it; the winner's message comes back if it dies.
//! Counting, closing a shard and claiming are conditional writes that a
//! repeated delivery redoes without effect, picking up wherever a crash
//! stopped. A claim is made once per attempt; after it, any delivery of the
//! claiming item (or any item, for a success) sends the stored answer again,
//! which Step Functions ignores once the Task is closed. A newer attempt of
//! the fan-out Task (a Retry) re-arms the record and counts into new shards;
//! items of older attempts are dropped. Item outputs stay on their step
//! records, so `steps.<step>.output` is the array of item outputs as for a Map.

pub mod record;
#[cfg(test)]
mod tests;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use garden_workflows::wire::{FanItem, FanOutAction, TaskMessage, TaskResult, errors};
use serde_json::Value;

use crate::config::Context;
use crate::error::{AwsError, Retryable, StepError};
use crate::render::{Fault, Scope};
use crate::step::{send_failure, send_success};

use record::{FanState, Outcome, SHARD};

/// The most message bytes one `SendMessageBatch` carries.
const BATCH_BYTES: usize = 256 * 1024;

/// The fan-out Task arrived: find the items, record the fan-out and send the
/// first window of items (again, on a redelivery).
pub async fn start(ctx: &Context, message: &TaskMessage, fan: &FanOutAction) -> Result<(), Retryable> {
    let total = match count_items(ctx, message, fan).await {
        Ok(total) => total,
        Err(Fault::Retry(err)) => return Err(err),
        Err(Fault::Step(error)) => return refuse(ctx, message, &error).await,
        Err(Fault::Failed(failure)) => return refuse(ctx, message, &failure.error).await,
    };
    let concurrency = fan.concurrency.max(1);
    let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
    let Some(state) = record::register(ddb, table, message, total, concurrency).await? else {
        tracing::info!("a newer attempt of this fan-out is running: dropping the stale task");
        return Ok(());
    };
    if state.opened {
        tracing::info!("fan-out already answered: answering again");
        return answer(ctx, &message.step, &state).await;
    }
    if total == 0 {
        tracing::info!("no items: the fan-out succeeds at once");
        return claim_success(ctx, message).await;
    }
    let item = FanItem {
        total,
        concurrency,
        queue_url: fan.queue_url.clone(),
    };
    let first: Vec<u64> = (0..total.min(concurrency)).collect();
    // Ten messages per call, fewer when ten large ones would pass the
    // batch's size limit (the messages differ only in their index).
    let size = item_message(message, &fan.item, &item, total - 1).len().max(1);
    for batch in first.chunks((BATCH_BYTES / size).clamp(1, 10)) {
        send_batch(ctx, message, fan, &item, batch).await?;
    }
    tracing::info!(total, concurrency, "fan-out started");
    Ok(())
}

/// Whether an item message should run: `false` (and the message goes) when
/// its fan-out is gone, belongs to a newer attempt, or was answered. A
/// delivery that finds the fan-out answered by itself (or by success) sends
/// the stored answer again, in case the first send never happened.
pub async fn admit(ctx: &Context, message: &TaskMessage, index: u64) -> Result<bool, Retryable> {
    let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
    let Some(state) = record::read(ddb, table, &message.job_id, &message.step).await? else {
        tracing::warn!("fan-out item without a fan-out record: dropping it");
        return Ok(false);
    };
    if state.token_attempt != Some(message.attempt) {
        tracing::info!(
            current = state.token_attempt,
            "item of another attempt of the fan-out: dropping it"
        );
        return Ok(false);
    }
    match state.outcome {
        None => Ok(true),
        Some(Outcome::Succeeded) => answer(ctx, &message.step, &state).await.map(|()| false),
        Some(Outcome::Failed) if state.failed_item == Some(index) => {
            answer(ctx, &message.step, &state).await.map(|()| false)
        }
        Some(Outcome::Failed) => {
            tracing::info!(
                failed_item = state.failed_item,
                "fan-out already failed: dropping the item"
            );
            Ok(false)
        }
    }
}

/// An item succeeded (its output is stored): send its successor, count it,
/// and answer the fan-out if it was the last. `fresh` is false when the item
/// had already succeeded before this delivery (a repeated message).
pub async fn complete(
    ctx: &Context,
    message: &TaskMessage,
    fan: &FanItem,
    index: u64,
    fresh: bool,
) -> Result<(), Retryable> {
    let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
    if !fresh
        && let Some(shard) = record::read_shard(ddb, table, message, index).await?
        && shard.done.contains(&index)
    {
        tracing::info!("item already counted: checking its fan-out is settled");
        return settle(ctx, message, fan, index, shard.remaining).await;
    }
    let next = index + fan.concurrency.max(1);
    if next < fan.total {
        if fresh && !record::claim_handing_on(ddb, table, message, index).await? {
            tracing::info!("another copy of this item finished first and goes on with the fan-out");
            return Ok(());
        }
        send_one(ctx, message, fan, next).await?;
    }
    let remaining = record::count(ddb, table, message, fan.total, index).await?;
    settle(ctx, message, fan, index, remaining).await
}

/// An item failed for good (its failure is stored): the fan-out fails with
/// the item's error, once.
pub async fn fail(ctx: &Context, message: &TaskMessage, index: u64, error: &str, cause: &str) -> Result<(), Retryable> {
    let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
    match record::claim_failure(ddb, table, message, index, error, cause).await? {
        Some(state) => answer(ctx, &message.step, &state).await,
        None => {
            tracing::info!("fan-out already answered: the item's failure is only recorded");
            Ok(())
        }
    }
}

/// After counting: close the item's shard when it is full, and claim the
/// fan-out when every shard is closed.
async fn settle(
    ctx: &Context,
    message: &TaskMessage,
    fan: &FanItem,
    index: u64,
    shard_remaining: i64,
) -> Result<(), Retryable> {
    if shard_remaining > 0 {
        return Ok(());
    }
    let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
    let Some(state) = record::close_shard(ddb, table, message, fan.total, index / SHARD).await? else {
        tracing::info!("item of another attempt of the fan-out: not counted there");
        return Ok(());
    };
    if state.remaining > 0 || state.opened {
        return Ok(());
    }
    claim_success(ctx, message).await
}

async fn claim_success(ctx: &Context, message: &TaskMessage) -> Result<(), Retryable> {
    let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
    match record::claim_success(ddb, table, message).await? {
        Some(state) => answer(ctx, &message.step, &state).await,
        None => Ok(()),
    }
}

/// Sends the answer stored on a claimed fan-out to its token.
async fn answer(ctx: &Context, step: &str, state: &FanState) -> Result<(), Retryable> {
    let token = state.token.as_deref().unwrap_or_default();
    match state.outcome {
        Some(Outcome::Succeeded) => {
            let result = TaskResult {
                step: step.to_owned(),
                item: None,
                exports: Default::default(),
            };
            tracing::info!(total = state.total, "fan-out succeeded");
            send_success(ctx, token, &serde_json::to_string(&result).unwrap_or_default()).await
        }
        Some(Outcome::Failed) => {
            let error = state.failed_error.as_deref().unwrap_or(errors::PROVIDER_REJECTED);
            tracing::warn!(error, failed_item = state.failed_item, "fan-out failed");
            send_failure(ctx, token, error, state.failed_cause.as_deref().unwrap_or_default()).await
        }
        None => Ok(()),
    }
}

/// How many items the step's `for_each` names, rendered as an item renders
/// it. `null` (a skipped source step) has none.
async fn count_items(ctx: &Context, message: &TaskMessage, fan: &FanOutAction) -> Result<u64, Fault> {
    let template = fan
        .item
        .for_each
        .clone()
        .ok_or_else(|| StepError::terminal(errors::BAD_TASK, "a fan-out step needs a `for_each` list"))?;
    let probe = TaskMessage {
        token: String::new(),
        item: None,
        spec: (*fan.item).clone(),
        exports: Vec::new(),
        fan: None,
        ..message.clone()
    };
    let scope = Scope::load(ctx, &probe, &[]).await?;
    match scope.render(&Value::String(template.clone()))? {
        Value::Array(items) => Ok(items.len() as u64),
        Value::Null => Ok(0),
        other => Err(StepError::bad_reference(format!(
            "`for_each: {template}` must give a list, not {}",
            kind_of(&other)
        ))
        .into()),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Object(_) => "an object",
        Value::Null | Value::Array(_) => "nothing",
    }
}

/// The fan-out cannot start: fail its Task with the step error.
async fn refuse(ctx: &Context, message: &TaskMessage, error: &StepError) -> Result<(), Retryable> {
    tracing::warn!(error = error.name, message = %error.message, "fan-out cannot start");
    send_failure(ctx, &message.token, error.name, &error.cause(&message.step)).await
}

/// The task message of one item.
fn item_message(message: &TaskMessage, spec: &garden_workflows::wire::StepSpec, fan: &FanItem, index: u64) -> String {
    let item = TaskMessage {
        token: String::new(),
        job_id: message.job_id.clone(),
        workflow: message.workflow.clone(),
        step: message.step.clone(),
        attempt: message.attempt,
        item: Some(index),
        spec: spec.clone(),
        exports: Vec::new(),
        fan: Some(fan.clone()),
        lists: message.lists.clone(),
    };
    serde_json::to_string(&item).unwrap_or_default()
}

async fn send_batch(
    ctx: &Context,
    message: &TaskMessage,
    fan: &FanOutAction,
    item: &FanItem,
    indices: &[u64],
) -> Result<(), Retryable> {
    let entries = indices
        .iter()
        .map(|&index| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("item-{index}"))
                .message_body(item_message(message, &fan.item, item, index))
                .build()
                .map_err(|e| AwsError::new("SendMessageBatch", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = ctx
        .clients
        .sqs
        .send_message_batch()
        .queue_url(&fan.queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| AwsError::new("SendMessageBatch", e))?;
    if let Some(failed) = out.failed().first() {
        return Err(AwsError {
            op: "SendMessageBatch",
            message: format!(
                "{} of {} item messages were not sent ({}: {}); the fan-out task will send them again",
                out.failed().len(),
                indices.len(),
                failed.code(),
                failed.message().unwrap_or_default()
            ),
        }
        .into());
    }
    Ok(())
}

async fn send_one(ctx: &Context, message: &TaskMessage, fan: &FanItem, index: u64) -> Result<(), Retryable> {
    ctx.clients
        .sqs
        .send_message()
        .queue_url(&fan.queue_url)
        .message_body(item_message(message, &message.spec, fan, index))
        .send()
        .await
        .map_err(|e| AwsError::new("SendMessage", e))?;
    tracing::debug!(next = index, "successor sent");
    Ok(())
}
