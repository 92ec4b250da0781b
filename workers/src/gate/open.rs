//! Opening a gate: the conditional claim that lets one caller through per
//! token, and the answer that caller sends to the waiting Task.

use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{DEPENDENCY_FAILED, DepFailure, GateKey, GateState};
use crate::error::{Retryable, StoreError};
use crate::step::{answer_failure, answer_success};
use crate::store::attr::conditional;
use crate::store::{job_pk, now_rfc3339};

/// What the winner of [`claim`] sends to the waiting Task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub token: String,
    pub failed: Option<DepFailure>,
    /// The gate as it was when claimed.
    pub state: GateState,
}

/// How often, and how far apart, a caller that lost the claim to a fresh one
/// looks for its answer before leaving its message to come back.
const HELD_LOOKS: u32 = 4;
const HELD_PAUSE: Duration = Duration::from_millis(250);

/// Opens the gate if it is ready and nobody else has: the winner sends the
/// token back. Returns whether this call opened it. A caller that finds the
/// gate claimed by another delivery that has not answered yet waits briefly
/// for that answer, then returns [`Retryable::Held`] so that its message
/// comes back, when a claim left by a crash will be stale.
pub async fn open_if_ready(
    ddb: &aws_sdk_dynamodb::Client,
    sfn: &aws_sdk_sfn::Client,
    table: &str,
    key: &GateKey,
) -> Result<bool, Retryable> {
    for look in 0..HELD_LOOKS {
        if let Some(opening) = claim(ddb, table, key).await? {
            if let Err(err) = send(sfn, key, &opening).await {
                // Give the claim back so that the retried message can open the gate.
                release(ddb, table, key, &opening.token).await?;
                return Err(err);
            }
            mark_sent(ddb, table, key, &opening.token).await;
            tracing::info!(gate = %key.describe(), failed = opening.failed.is_some(), "gate opened");
            return Ok(true);
        }
        let state = super::read(ddb, table, key).await?;
        if !state.due() {
            return Ok(false);
        }
        if look + 1 < HELD_LOOKS {
            tokio::time::sleep(HELD_PAUSE).await;
        }
    }
    Err(Retryable::Held(format!(
        "gate {} is claimed by a delivery that has not answered yet; looking again when this message comes back",
        key.describe()
    )))
}

/// The conditional claim of [`open_if_ready`], without the send: `Some` for
/// exactly one caller per token at a time, once the gate is ready; a claim
/// older than [`CLAIM_LEASE_SECS`](super::CLAIM_LEASE_SECS) can be taken over.
pub async fn claim(ddb: &aws_sdk_dynamodb::Client, table: &str, key: &GateKey) -> Result<Option<Opening>, StoreError> {
    let claimed = ddb
        .update_item()
        .table_name(table)
        .key("PK", AttributeValue::S(job_pk(&key.job_id)))
        .key("SK", AttributeValue::S(key.sk()))
        .update_expression("SET opened = :true, opened_at = :now")
        .condition_expression(
            "attribute_not_exists(sent) AND (attribute_not_exists(opened) OR opened_at < :stale) \
             AND attribute_exists(#token) AND (remaining <= :zero OR attribute_exists(failed))",
        )
        .expression_attribute_names("#token", "token")
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
        .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
        .expression_attribute_values(":stale", AttributeValue::S(super::stale_before()))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    let Some(item) = conditional(claimed)? else {
        return Ok(None);
    };
    let state = GateState::from_item(key, &item)?;
    let token = state.token.clone().ok_or_else(|| StoreError::Data {
        key: key.describe(),
        message: "claimed gate has no token".into(),
    })?;
    Ok(Some(Opening {
        token,
        failed: state.failed.clone(),
        state,
    }))
}

async fn send(sfn: &aws_sdk_sfn::Client, key: &GateKey, opening: &Opening) -> Result<(), Retryable> {
    match &opening.failed {
        None => {
            let missing: Vec<&String> = (opening.state.wanted.iter())
                .filter(|id| !opening.state.values.contains_key(*id))
                .collect();
            if !missing.is_empty() {
                tracing::warn!(gate = %key.describe(), ?missing, "opening without the values of some dependencies");
            }
            answer_success(sfn, &opening.token, &opening.state.output().to_string()).await
        }
        Some(failure) => answer_failure(sfn, &opening.token, DEPENDENCY_FAILED, &failure.cause).await,
    }
}

/// Records that the answer went out, so that later deliveries neither wait
/// for it nor send it again. Best effort: without the mark, a later delivery
/// sends the answer once more and Step Functions refuses it.
async fn mark_sent(ddb: &aws_sdk_dynamodb::Client, table: &str, key: &GateKey, token: &str) {
    let marked = ddb
        .update_item()
        .table_name(table)
        .key("PK", AttributeValue::S(job_pk(&key.job_id)))
        .key("SK", AttributeValue::S(key.sk()))
        .update_expression("SET sent = :true")
        .condition_expression("#token = :token")
        .expression_attribute_names("#token", "token")
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .expression_attribute_values(":token", AttributeValue::S(token.to_owned()))
        .send()
        .await;
    if let Err(err) = conditional(marked) {
        tracing::warn!(gate = %key.describe(), error = %err, "answer sent but not marked: a later delivery may send it again");
    }
}

/// Undoes a claim whose send failed, if the token is still the same.
async fn release(ddb: &aws_sdk_dynamodb::Client, table: &str, key: &GateKey, token: &str) -> Result<(), StoreError> {
    let released = ddb
        .update_item()
        .table_name(table)
        .key("PK", AttributeValue::S(job_pk(&key.job_id)))
        .key("SK", AttributeValue::S(key.sk()))
        .update_expression("REMOVE opened, opened_at")
        .condition_expression("opened = :true AND #token = :token")
        .expression_attribute_names("#token", "token")
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .expression_attribute_values(":token", AttributeValue::S(token.to_owned()))
        .send()
        .await;
    conditional(released).map(|_| ())
}
