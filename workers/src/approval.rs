//! Answering an approval step (`garden approve`): the worker parked the task
//! token on the step item; a person's answer sends it back to Step Functions.
//!
//! Approve: `SendTaskSuccess` with the step's exports taken from the answer
//! `{"approved": true, "comment", "by"}`. Reject: `SendTaskFailure` with
//! `Garden.Rejected`, which the state machine can catch.

use garden_workflows::wire::{Export, TaskResult, errors};
use serde_json::{Value, json};

use crate::error::{AwsError, StoreError};
use crate::store;

/// A person's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve {
        comment: Option<String>,
        by: Option<String>,
    },
    Reject {
        reason: String,
        by: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error(
        "step `{step}` of job `{job_id}` is not waiting for approval: check the names with `garden status {job_id}`"
    )]
    NotWaiting { job_id: String, step: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// Sends the answer and records it on the step item. Returns the step's
/// output (`{"approved", "comment"/"reason", "by"}`).
pub async fn answer(
    ddb: &aws_sdk_dynamodb::Client,
    sfn: &aws_sdk_sfn::Client,
    table: &str,
    job_id: &str,
    step: &str,
    decision: Decision,
) -> Result<Value, ApprovalError> {
    let Some((token, request)) = store::approval_token(ddb, table, job_id, step).await? else {
        return Err(ApprovalError::NotWaiting {
            job_id: job_id.to_owned(),
            step: step.to_owned(),
        });
    };
    if !store::claim_approval(ddb, table, job_id, step).await? {
        return Err(ApprovalError::NotWaiting {
            job_id: job_id.to_owned(),
            step: step.to_owned(),
        });
    }
    let (approved, output) = match &decision {
        Decision::Approve { comment, by } => (true, json!({"approved": true, "comment": comment, "by": by})),
        Decision::Reject { reason, by } => (false, json!({"approved": false, "reason": reason, "by": by})),
    };
    if approved {
        let wanted: Vec<Export> = serde_json::from_value(request["exports"].clone()).unwrap_or_default();
        let result = TaskResult {
            step: step.to_owned(),
            item: None,
            exports: crate::step::exports(&wanted, &output),
        };
        sfn.send_task_success()
            .task_token(&token)
            .output(serde_json::to_string(&result).unwrap_or_default())
            .send()
            .await
            .map_err(|e| AwsError::new("SendTaskSuccess", e))?;
    } else {
        let reason = output["reason"].as_str().unwrap_or_default();
        sfn.send_task_failure()
            .task_token(&token)
            .error(errors::REJECTED)
            .cause(json!({"step": step, "message": reason}).to_string())
            .send()
            .await
            .map_err(|e| AwsError::new("SendTaskFailure", e))?;
    }
    store::record_approval(ddb, table, job_id, step, approved, &output).await?;
    Ok(output)
}
