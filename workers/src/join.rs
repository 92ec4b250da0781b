//! Join gates at run time: the gate Task and the notices of finished steps.
//!
//! A step that depends on steps in other Parallel branches is preceded by a
//! `Join <step>` Task whose message carries [`Action::Gate`]: [`wait`] registers
//! its token on the gate item and opens the gate if every dependency already
//! finished. Each dependency is followed by a `Finished <dep>` notice (no
//! token) carrying [`Action::Finished`]: [`finished`] counts the dependency in
//! every gate that waits on it, keeps its exported values there when a gate
//! returns them, and opens the gates it completes. The gate item decides who
//! sends the token back, so either message may arrive first, twice, or at the
//! same time as the other ([`crate::gate`]).
//!
//! [`Action::Gate`]: garden_workflows::wire::Action::Gate
//! [`Action::Finished`]: garden_workflows::wire::Action::Finished

use garden_workflows::wire::{FinishedAction, GateAction, TaskMessage};
use serde_json::{Map, Value};

use crate::config::Context;
use crate::error::{Retryable, StoreError};
use crate::gate::{self, DepOutcome, GateKey};

/// The gate Task arrived: register its token, then open the gate if it is
/// ready. A repeated delivery registers the same token again and opens
/// nothing twice.
pub async fn wait(ctx: &Context, message: &TaskMessage, gate: &GateAction) -> Result<(), Retryable> {
    let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
    if message.token.is_empty() {
        tracing::error!("gate message without a task token: nothing waits on it, dropping it");
        return Ok(());
    }
    let key = GateKey::new(&message.job_id, &message.step, None);
    let registered = gate::register_wanting(
        ddb,
        table,
        &key,
        &gate.deps,
        &gate.values,
        &message.token,
        message.attempt,
    )
    .await;
    let state = match registered {
        Ok(state) => state,
        Err(err) => return permanent_or_retry(err, "gate registration"),
    };
    tracing::info!(
        remaining = state.remaining,
        done = ?state.done,
        ready = state.ready(),
        "gate registered"
    );
    if state.ready() {
        gate::open_if_ready(ddb, &ctx.clients.sfn, table, &key).await?;
    }
    Ok(())
}

/// A step finished: count it in every gate waiting on it, with its values,
/// and open the gates that are ready. Each gate is tried even when another
/// failed; a failure that can pass makes the whole notice come back, and the
/// gates already counted then take the repeat as a duplicate.
pub async fn finished(ctx: &Context, message: &TaskMessage, finished: &FinishedAction) -> Result<(), Retryable> {
    let values = match &finished.values {
        Some(Value::Object(values)) => values.clone(),
        Some(Value::Null) | None => Map::new(),
        Some(other) => {
            tracing::error!(values = %other, "finished notice with values that are not an object: ignoring them");
            Map::new()
        }
    };
    let mut first_error = None;
    for wait in &finished.gates {
        let key = GateKey::new(&message.job_id, &wait.step, None);
        if let Err(err) = count(ctx, &key, &wait.deps, &message.step, &values).await {
            tracing::warn!(gate = %wait.step, error = %err, "gate not updated: the notice will come back");
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One gate of a notice: count the dependency and open the gate if ready.
async fn count(
    ctx: &Context,
    key: &GateKey,
    deps: &[String],
    dep: &str,
    values: &Map<String, Value>,
) -> Result<(), Retryable> {
    let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
    let state = match gate::finish_with_values(ddb, table, key, deps, dep, &DepOutcome::Ok, values).await {
        Ok(state) => state,
        Err(err) => return permanent_or_retry(err, "finished notice"),
    };
    tracing::info!(gate = %key.step, remaining = state.remaining, ready = state.ready(), "dependency counted");
    if state.ready() {
        gate::open_if_ready(ddb, &ctx.clients.sfn, table, key).await?;
    }
    Ok(())
}

/// A malformed gate (both sides disagree on the dependencies, or the notice
/// names a step the gate does not wait on) cannot get better by delivering
/// the message again: it is logged and dropped, and the waiting Task's
/// timeout ends the job. DynamoDB failures come back.
fn permanent_or_retry(err: StoreError, what: &str) -> Result<(), Retryable> {
    match err {
        StoreError::Data { key, message } => {
            tracing::error!(gate = %key, %message, "{what} dropped: the compiled definition and the gate disagree");
            Ok(())
        }
        err => Err(err.into()),
    }
}

#[cfg(test)]
mod tests;
