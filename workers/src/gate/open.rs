//! Opening a gate: the conditional claim that lets one caller through per
//! token, and the answer that caller sends to the waiting Task.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureError;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError;

use super::{DEPENDENCY_FAILED, DepFailure, GateKey, GateState};
use crate::error::{AwsError, Retryable, StoreError};
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

/// Opens the gate if it is ready and nobody else has: the winner sends the
/// token back. Returns whether this call opened it.
pub async fn open_if_ready(
    ddb: &aws_sdk_dynamodb::Client,
    sfn: &aws_sdk_sfn::Client,
    table: &str,
    key: &GateKey,
) -> Result<bool, Retryable> {
    let Some(opening) = claim(ddb, table, key).await? else {
        return Ok(false);
    };
    if let Err(err) = send(sfn, key, &opening).await {
        // Give the claim back so that the retried message can open the gate.
        release(ddb, table, key, &opening.token).await?;
        return Err(err.into());
    }
    tracing::info!(gate = %key.describe(), failed = opening.failed.is_some(), "gate opened");
    Ok(true)
}

/// The conditional claim of [`open_if_ready`], without the send: `Some` for
/// exactly one caller per token, once the gate is ready.
pub async fn claim(ddb: &aws_sdk_dynamodb::Client, table: &str, key: &GateKey) -> Result<Option<Opening>, StoreError> {
    let claimed = ddb
        .update_item()
        .table_name(table)
        .key("PK", AttributeValue::S(job_pk(&key.job_id)))
        .key("SK", AttributeValue::S(key.sk()))
        .update_expression("SET opened = :true, opened_at = :now")
        .condition_expression(
            "attribute_not_exists(opened) AND attribute_exists(#token) AND (remaining = :zero OR attribute_exists(failed))",
        )
        .expression_attribute_names("#token", "token")
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
        .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
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

async fn send(sfn: &aws_sdk_sfn::Client, key: &GateKey, opening: &Opening) -> Result<(), AwsError> {
    // `Err((gone, error))`: `gone` when the waiting Task no longer takes answers.
    let sent = match &opening.failed {
        None => {
            let output = opening.state.output();
            let missing: Vec<&String> = (opening.state.wanted.iter())
                .filter(|id| !opening.state.values.contains_key(*id))
                .collect();
            if !missing.is_empty() {
                tracing::warn!(gate = %key.describe(), ?missing, "opening without the values of some dependencies");
            }
            sfn.send_task_success()
                .task_token(&opening.token)
                .output(output.to_string())
                .send()
                .await
                .map(|_| ())
                .map_err(|err| {
                    let gone = matches!(
                        err.as_service_error(),
                        Some(
                            SendTaskSuccessError::TaskTimedOut(_)
                                | SendTaskSuccessError::InvalidToken(_)
                                | SendTaskSuccessError::TaskDoesNotExist(_)
                        )
                    );
                    (gone, AwsError::new("SendTaskSuccess", err))
                })
        }
        Some(failure) => sfn
            .send_task_failure()
            .task_token(&opening.token)
            .error(DEPENDENCY_FAILED)
            .cause(&failure.cause)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| {
                let gone = matches!(
                    err.as_service_error(),
                    Some(
                        SendTaskFailureError::TaskTimedOut(_)
                            | SendTaskFailureError::InvalidToken(_)
                            | SendTaskFailureError::TaskDoesNotExist(_)
                    )
                );
                (gone, AwsError::new("SendTaskFailure", err))
            }),
    };
    match sent {
        Ok(()) => Ok(()),
        Err((true, _)) => {
            tracing::warn!(gate = %key.describe(), "the waiting task is gone: nothing to open");
            Ok(())
        }
        Err((false, err)) => Err(err),
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
