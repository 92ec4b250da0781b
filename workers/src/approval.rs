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
    if !claim(ddb, table, job_id, step).await? {
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

/// Marks the step as being answered, unless someone else already is: of two
/// people answering at once, exactly one goes on to send the token back.
async fn claim(ddb: &aws_sdk_dynamodb::Client, table: &str, job_id: &str, step: &str) -> Result<bool, StoreError> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let claimed = ddb
        .update_item()
        .table_name(table)
        .key("PK", AttributeValue::S(store::job_pk(job_id)))
        .key("SK", AttributeValue::S(store::step_sk(step, None)))
        .update_expression("SET answering = :now")
        .condition_expression("#status = :waiting AND attribute_not_exists(answering)")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":now", AttributeValue::S(store::now_rfc3339()))
        .expression_attribute_values(
            ":waiting",
            AttributeValue::S(store::StepStatus::WaitingApproval.as_str().to_owned()),
        )
        .send()
        .await;
    match claimed {
        Ok(_) => Ok(true),
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(err) => Err(StoreError::aws("UpdateItem", err)),
    }
}
