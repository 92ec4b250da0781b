//! The dispatcher: job messages in, executions out.
//!
//! For each message on the jobs queue: read the [`JobMessage`], work out the
//! job id, check the workflow and the input against the registry, write the
//! job item (conditionally: a duplicate makes no second job) and start the
//! execution named after the job (a second start of the same name is not a
//! second execution). A message that can never succeed is recorded as a
//! REJECTED job item with the reason and leaves the queue; a failure that may
//! pass (DynamoDB or Step Functions trouble) goes back to SQS.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use garden_workflows::wire::{ExecutionInput, JobMessage, JobRef};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::config::Context;
use crate::error::{AwsError, Retryable};
use crate::schema;
use crate::store::{self, JobItem, JobStatus};

/// The largest message body SQS carries; anything larger is not ours.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What became of one job message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatched {
    Started {
        job_id: String,
        execution_arn: String,
    },
    /// The job already existed and has its execution.
    Duplicate {
        job_id: String,
    },
    Rejected {
        job_id: String,
        reason: String,
    },
}

/// Handles a batch of job messages; transient failures are reported for SQS
/// to deliver again.
pub async fn handle(ctx: &Context, event: SqsEvent) -> SqsBatchResponse {
    crate::batch::each_record(&event, "job message", |record| process(ctx, record)).await
}

/// What a JSON value is, in words, for a rejection reason.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The job id of a message: `job_id`, else `k-` and 32 hex digits of
/// sha256(`<workflow>\n<idempotency_key>`), else `m-<SQS message id>`.
pub fn job_id(message: &JobMessage, message_id: &str) -> String {
    if let Some(id) = &message.job_id {
        return id.clone();
    }
    match &message.idempotency_key {
        Some(key) => derive_job_id(&message.workflow, key),
        None => format!("m-{message_id}"),
    }
}

/// The job id for an idempotency key.
pub fn derive_job_id(workflow: &str, idempotency_key: &str) -> String {
    let digest = Sha256::digest(format!("{workflow}\n{idempotency_key}").as_bytes());
    format!("k-{}", &hex::encode(digest)[..32])
}

/// Job ids name executions: 1-80 characters of `[A-Za-z0-9_-]`.
fn check_job_id(id: &str) -> Result<(), String> {
    let valid =
        !id.is_empty() && id.len() <= 80 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "job_id `{id}` is not usable: use 1-80 characters of letters, digits, `-` and `_`"
        ))
    }
}

/// Handles one job message.
pub async fn process(ctx: &Context, record: &SqsMessage) -> Result<Dispatched, Retryable> {
    let message_id = record
        .message_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let body = record.body.as_deref().unwrap_or_default();
    let span = tracing::info_span!("dispatch", message = %message_id, job = tracing::field::Empty);
    dispatch(ctx, &message_id, body).instrument(span).await
}

async fn dispatch(ctx: &Context, message_id: &str, body: &str) -> Result<Dispatched, Retryable> {
    let fallback_id = format!("m-{message_id}");
    if body.len() > MAX_BODY_BYTES {
        let reason = format!("the message body is {} bytes, more than {MAX_BODY_BYTES}", body.len());
        return reject(ctx, &fallback_id, "", Value::Null, false, reason).await;
    }
    let raw: Value = match serde_json::from_str(body) {
        Ok(raw) => raw,
        Err(err) => {
            let reason = format!("the message body is not JSON ({err}): send a JSON job message");
            return reject(ctx, &fallback_id, "", Value::Null, false, reason).await;
        }
    };
    if !raw.is_object() {
        let reason = format!(
            r#"a job message is a JSON object such as {{"workflow": "NAME", "input": {{...}}}}, not {}"#,
            json_kind(&raw)
        );
        return reject(ctx, &fallback_id, "", Value::Null, false, reason).await;
    }
    let workflow_hint = raw
        .get("workflow")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let message: JobMessage = match serde_json::from_value(raw.clone()) {
        Ok(message) => message,
        Err(err) => {
            let reason = format!("the message is not a job message: {err}");
            let input = raw.get("input").cloned().unwrap_or(Value::Null);
            return reject(ctx, &fallback_id, &workflow_hint, input, false, reason).await;
        }
    };
    let job_id = job_id(&message, message_id);
    tracing::Span::current().record("job", job_id.as_str());
    if let Err(reason) = check_job_id(&job_id) {
        return reject(ctx, &fallback_id, &message.workflow, message.input, false, reason).await;
    }

    let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
    let Some(workflow) = ctx.registry.get(ddb, table, &message.workflow).await? else {
        let reason = format!(
            "workflow `{}` is not deployed: deploy it with `garden deploy`",
            message.workflow
        );
        return reject(ctx, &job_id, &message.workflow, message.input, false, reason).await;
    };
    if let Some(input_schema) = &workflow.input_schema
        && let Err(problems) = schema::check(input_schema, &message.input)
    {
        let reason = if raw.get("input").is_none() {
            format!(
                "the message has no `input`, which workflow `{}` needs: {}",
                message.workflow,
                problems.join("; ")
            )
        } else {
            format!(
                "the input does not match the input schema of `{}`: {}",
                message.workflow,
                problems.join("; ")
            )
        };
        return reject(ctx, &job_id, &message.workflow, message.input, true, reason).await;
    }
    let mut input = message.input;
    if let Some(input_schema) = &workflow.input_schema {
        schema::apply_defaults(input_schema, &mut input);
    }

    let job = JobItem::new(&job_id, &message.workflow, JobStatus::Running, input);
    if !store::put_job_if_absent(ddb, table, &job).await? {
        // A duplicate. Start again only if the first delivery stopped
        // between writing the job and recording its execution.
        match store::get_job(ddb, table, &job_id).await? {
            Some(existing) if existing.workflow != message.workflow => {
                let reason = format!(
                    "job id `{job_id}` already belongs to a job of workflow `{}`: give this job another id",
                    existing.workflow
                );
                return reject(ctx, &fallback_id, &message.workflow, job.input, true, reason).await;
            }
            // The same id with another input is not a redelivery: it would
            // vanish as a duplicate, so it is recorded as refused instead.
            Some(existing) if existing.input != job.input => {
                let reason = format!(
                    "job id `{job_id}` already belongs to a job with another input: give this job another id \
                     (a repeated message with the same input is taken as a duplicate)"
                );
                return reject(ctx, &fallback_id, &message.workflow, job.input, true, reason).await;
            }
            Some(existing) if existing.status == JobStatus::Running && existing.execution_arn.is_none() => {
                tracing::info!("job exists without an execution: starting it");
            }
            Some(_) => {
                tracing::info!("duplicate job message: the job already exists");
                return Ok(Dispatched::Duplicate { job_id });
            }
            None => {
                return Err(AwsError {
                    op: "PutItem",
                    message: format!("job {job_id} neither could be written nor read"),
                }
                .into());
            }
        }
    }

    let input = ExecutionInput {
        job: JobRef {
            id: job_id.clone(),
            workflow: message.workflow.clone(),
        },
        v: Default::default(),
    };
    let result = ctx
        .clients
        .sfn
        .start_execution()
        .state_machine_arn(&workflow.state_machine_arn)
        .name(&job_id)
        .input(serde_json::to_string(&input).unwrap_or_default())
        .send()
        .await;
    let execution_arn = match result {
        Ok(out) => out.execution_arn,
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(StartExecutionError::ExecutionAlreadyExists(_))
            ) =>
        {
            tracing::info!("the execution already exists");
            execution_arn(&workflow.state_machine_arn, &job_id)
        }
        Err(err) => return Err(AwsError::new("StartExecution", err).into()),
    };
    store::set_execution_arn(ddb, table, &job_id, &execution_arn).await?;
    tracing::info!(execution = %execution_arn, "job started");
    Ok(Dispatched::Started { job_id, execution_arn })
}

/// The ARN of a state machine's execution with a given name.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    )
}

async fn reject(
    ctx: &Context,
    job_id: &str,
    workflow: &str,
    input: Value,
    known_workflow: bool,
    reason: String,
) -> Result<Dispatched, Retryable> {
    let mut job = JobItem::new(job_id, workflow, JobStatus::Rejected, input);
    job.known_workflow = known_workflow;
    job.reason = Some(reason.clone());
    if !store::put_job_if_absent(&ctx.clients.ddb, &ctx.settings.table, &job).await? {
        tracing::info!("rejected message seen before");
    }
    tracing::warn!(job = job_id, reason = %reason, "job message rejected");
    Ok(Dispatched::Rejected {
        job_id: job_id.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_come_from_the_message() {
        let mut message = JobMessage {
            workflow: "brief".into(),
            input: Value::Null,
            job_id: None,
            idempotency_key: None,
        };
        assert_eq!(job_id(&message, "abc"), "m-abc");
        message.idempotency_key = Some("nightly-2026-12-03".into());
        let derived = job_id(&message, "abc");
        assert!(derived.starts_with("k-") && derived.len() == 34, "{derived}");
        assert_eq!(derived, derive_job_id("brief", "nightly-2026-12-03"));
        assert_ne!(derived, derive_job_id("other", "nightly-2026-12-03"));
        message.job_id = Some("mine".into());
        assert_eq!(job_id(&message, "abc"), "mine");
        assert!(check_job_id("a b").is_err());
        assert!(check_job_id(&"x".repeat(81)).is_err());
    }

    #[test]
    fn execution_arns_follow_the_state_machine() {
        assert_eq!(
            execution_arn("arn:aws:states:us-east-1:000000000000:stateMachine:garden-brief", "k-1"),
            "arn:aws:states:us-east-1:000000000000:execution:garden-brief:k-1"
        );
    }
}
