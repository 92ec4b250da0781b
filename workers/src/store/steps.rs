//! Step items: one per step of a job (one per item of a `for_each` step),
//! written by the step workers.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde_json::Value;

use super::attr::{Item, get_json, get_n, get_s, n, s, split_chunks};
use super::jobs::write_chunks;
use super::{CHUNK_BYTES, chunk_sk, expires_at, job_pk, now_rfc3339, step_sk, step_suffix};
use crate::error::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    Running,
    Succeeded,
    Failed,
    WaitingApproval,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "RUNNING",
            StepStatus::Succeeded => "SUCCEEDED",
            StepStatus::Failed => "FAILED",
            StepStatus::WaitingApproval => "WAITING_APPROVAL",
            StepStatus::Skipped => "SKIPPED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::WaitingApproval,
            Self::Skipped,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// A step item, with its output joined from chunks when it was split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepItem {
    pub step: String,
    pub item: Option<u64>,
    pub status: StepStatus,
    /// Provider calls of the run that finished the step.
    pub attempts: u32,
    /// Deliveries that started the step: more than one when a worker died
    /// or lost its message mid-step and another took it over.
    pub runs: u32,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// US dollars for the model tokens, at the prices the definition gave.
    pub cost_usd: Option<f64>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub output: Option<Value>,
    /// The `TaskResult` JSON sent with `SendTaskSuccess`.
    pub result: Option<String>,
    #[serde(skip)]
    pub task_token: Option<String>,
}

/// What a finished step cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepUsage {
    pub attempts: u32,
    pub duration_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// US dollars for the tokens, when the model's prices are known.
    pub cost_usd: Option<f64>,
}

impl StepItem {
    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let sk = get_s(item, "SK").unwrap_or_default();
        let (step, index) = parse_step_sk(&sk).ok_or_else(|| StoreError::Data {
            key: sk.clone(),
            message: "not a step sort key".into(),
        })?;
        let status_text = get_s(item, "status").unwrap_or_default();
        Ok(StepItem {
            step,
            item: index,
            status: StepStatus::parse(&status_text).ok_or_else(|| StoreError::Data {
                key: sk.clone(),
                message: format!("unknown status `{status_text}`"),
            })?,
            attempts: get_n(item, "attempts").unwrap_or(0),
            runs: get_n(item, "runs").unwrap_or(0),
            started_at: get_s(item, "started_at"),
            finished_at: get_s(item, "finished_at"),
            duration_ms: get_n(item, "duration_ms"),
            input_tokens: get_n(item, "input_tokens"),
            output_tokens: get_n(item, "output_tokens"),
            cost_usd: get_n(item, "cost_usd"),
            error: get_s(item, "error"),
            cause: get_s(item, "cause"),
            output: get_json(item, "output"),
            result: get_s(item, "result"),
            task_token: get_s(item, "task_token"),
        })
    }
}

fn parse_step_sk(sk: &str) -> Option<(String, Option<u64>)> {
    let rest = sk.strip_prefix("STEP#")?;
    match rest.split_once('#') {
        Some((step, index)) => Some((step.to_owned(), Some(index.parse().ok()?))),
        None => Some((rest.to_owned(), None)),
    }
}

async fn load(ddb: &aws_sdk_dynamodb::Client, table: &str, job_id: &str, item: &Item) -> Result<StepItem, StoreError> {
    let mut step = StepItem::from_item(item)?;
    if let Some(count) = get_n::<usize>(item, "output_chunks") {
        let suffix = step_suffix(&step.step, step.item);
        step.output = Some(read_chunks(ddb, table, job_id, &suffix, count).await?);
    }
    Ok(step)
}

/// Reads one step item (strongly consistent).
pub async fn get_step(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    step: &str,
    item: Option<u64>,
) -> Result<Option<StepItem>, StoreError> {
    let out = ddb
        .get_item()
        .table_name(table)
        .key("PK", s(job_pk(job_id)))
        .key("SK", s(step_sk(step, item)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::aws("GetItem", e))?;
    match out.item {
        Some(found) => Ok(Some(load(ddb, table, job_id, &found).await?)),
        None => Ok(None),
    }
}

/// Every step item of a job whose sort key starts with `prefix`, in key order.
async fn query_steps(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    prefix: &str,
) -> Result<Vec<StepItem>, StoreError> {
    let mut steps = Vec::new();
    let mut start = None;
    loop {
        let out = ddb
            .query()
            .table_name(table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
            .expression_attribute_values(":pk", s(job_pk(job_id)))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query", e))?;
        for item in out.items() {
            steps.push(load(ddb, table, job_id, item).await?);
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok(steps);
        }
    }
}

/// All step items of a job, `for_each` items after their step, by name.
pub async fn list_steps(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
) -> Result<Vec<StepItem>, StoreError> {
    query_steps(ddb, table, job_id, "STEP#").await
}

/// A finished step's output as templates see it: the stored output, `null`
/// for a skipped step, and for a `for_each` step the array of its items'
/// outputs in index order. `None` when the step has not stored anything.
pub async fn step_output(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    step: &str,
) -> Result<Option<Value>, StoreError> {
    if let Some(found) = get_step(ddb, table, job_id, step, None).await? {
        return Ok(match found.status {
            StepStatus::Succeeded => Some(found.output.unwrap_or(Value::Null)),
            StepStatus::Skipped => Some(Value::Null),
            _ => None,
        });
    }
    let items = query_steps(ddb, table, job_id, &format!("STEP#{step}#")).await?;
    if items.is_empty() {
        return Ok(None);
    }
    let len = items
        .iter()
        .filter_map(|i| i.item)
        .max()
        .map_or(0, |max| max as usize + 1);
    let mut outputs = vec![Value::Null; len];
    for found in items {
        if let (Some(index), StepStatus::Succeeded) = (found.item, found.status) {
            outputs[index as usize] = found.output.unwrap_or(Value::Null);
        }
    }
    Ok(Some(Value::Array(outputs)))
}

pub(crate) async fn read_chunks(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    suffix: &str,
    count: usize,
) -> Result<Value, StoreError> {
    let mut text = String::new();
    for i in 0..count {
        let key = chunk_sk(suffix, i);
        let out = ddb
            .get_item()
            .table_name(table)
            .key("PK", s(job_pk(job_id)))
            .key("SK", s(&key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        let data = out.item.as_ref().and_then(|item| get_s(item, "data"));
        text.push_str(&data.ok_or_else(|| StoreError::Data {
            key: key.clone(),
            message: "output chunk is missing".into(),
        })?);
    }
    serde_json::from_str(&text).map_err(|e| StoreError::Data {
        key: chunk_sk(suffix, 0),
        message: format!("joined output is not JSON: {e}"),
    })
}

fn update(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    step: &str,
    item: Option<u64>,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    let mut builder = ddb
        .update_item()
        .table_name(table)
        .key("PK", s(job_pk(job_id)))
        .key("SK", s(step_sk(step, item)))
        .expression_attribute_names("#status", "status")
        .expression_attribute_names("#step", "step")
        .expression_attribute_values(":step", s(step))
        .expression_attribute_values(":now", s(now_rfc3339()))
        .expression_attribute_values(":expires", n(expires_at()));
    if let Some(index) = item {
        builder = builder.expression_attribute_values(":item", n(index));
    }
    builder
}

/// `SET` clauses every step write carries.
fn common_set(item: Option<u64>) -> &'static str {
    match item {
        Some(_) => "#step = :step, #item = :item, updated_at = :now, expires_at = :expires",
        None => "#step = :step, updated_at = :now, expires_at = :expires",
    }
}

fn with_item_name(
    builder: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    item: Option<u64>,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    match item {
        Some(_) => builder.expression_attribute_names("#item", "item"),
        None => builder,
    }
}

/// Marks a step RUNNING (keeping the first `started_at` across deliveries).
pub async fn mark_step_running(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    step: &str,
    item: Option<u64>,
) -> Result<(), StoreError> {
    let expression = format!(
        "SET #status = :running, started_at = if_not_exists(started_at, :now), {} ADD runs :one",
        common_set(item)
    );
    with_item_name(update(ddb, table, job_id, step, item), item)
        .update_expression(expression)
        .expression_attribute_values(":running", s(StepStatus::Running.as_str()))
        .expression_attribute_values(":one", n(1))
        .send()
        .await
        .map_err(|e| StoreError::aws("UpdateItem", e))?;
    Ok(())
}

/// Stores a step's output, usage and the result sent to Step Functions.
#[allow(clippy::too_many_arguments)]
pub async fn finish_step(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    step: &str,
    item: Option<u64>,
    output: &Value,
    usage: StepUsage,
    result: &str,
) -> Result<(), StoreError> {
    let text = output.to_string();
    let mut expression = format!(
        "SET #status = :done, finished_at = :now, duration_ms = :duration, attempts = :attempts, \
         input_tokens = :input_tokens, output_tokens = :output_tokens, #result = :result, {}",
        common_set(item)
    );
    let mut builder = with_item_name(update(ddb, table, job_id, step, item), item)
        .expression_attribute_names("#result", "result")
        .expression_attribute_names("#output", "output")
        .expression_attribute_values(":done", s(StepStatus::Succeeded.as_str()))
        .expression_attribute_values(":duration", n(usage.duration_ms))
        .expression_attribute_values(":attempts", n(usage.attempts))
        .expression_attribute_values(":input_tokens", n(usage.input_tokens))
        .expression_attribute_values(":output_tokens", n(usage.output_tokens))
        .expression_attribute_values(":result", s(result));
    if let Some(cost) = usage.cost_usd {
        // Nano-dollars are plenty, and keep float noise out of the item.
        expression.push_str(", cost_usd = :cost");
        builder = builder.expression_attribute_values(":cost", n((cost * 1e9).round() / 1e9));
    }
    if text.len() <= CHUNK_BYTES {
        expression.push_str(", #output = :output REMOVE output_chunks, #error, cause");
        builder = builder.expression_attribute_values(":output", s(text));
    } else {
        let chunks = split_chunks(&text, CHUNK_BYTES);
        write_chunks(ddb, table, job_id, &step_suffix(step, item), &chunks).await?;
        expression.push_str(", output_chunks = :chunks REMOVE #output, #error, cause");
        builder = builder.expression_attribute_values(":chunks", n(chunks.len()));
    }
    builder
        .expression_attribute_names("#error", "error")
        .update_expression(expression)
        .send()
        .await
        .map_err(|e| StoreError::aws("UpdateItem", e))?;
    Ok(())
}

/// Marks a step FAILED with the error name and cause sent to Step Functions.
#[allow(clippy::too_many_arguments)]
pub async fn fail_step(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    step: &str,
    item: Option<u64>,
    error: &str,
    cause: &str,
    usage: StepUsage,
) -> Result<(), StoreError> {
    let expression = format!(
        "SET #status = :failed, finished_at = :now, #error = :error, cause = :cause, attempts = :attempts, \
         duration_ms = :duration, {}",
        common_set(item)
    );
    with_item_name(update(ddb, table, job_id, step, item), item)
        .update_expression(expression)
        .expression_attribute_names("#error", "error")
        .expression_attribute_values(":failed", s(StepStatus::Failed.as_str()))
        .expression_attribute_values(":error", s(error))
        .expression_attribute_values(":cause", s(cause))
        .expression_attribute_values(":attempts", n(usage.attempts))
        .expression_attribute_values(":duration", n(usage.duration_ms))
        .send()
        .await
        .map_err(|e| StoreError::aws("UpdateItem", e))?;
    Ok(())
}

/// Parks an approval step: the task token waits on the item for `garden approve`,
/// with the `TaskResult` to answer with (`result`).
pub async fn wait_for_approval(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    step: &str,
    item: Option<u64>,
    token: &str,
    request: &Value,
) -> Result<(), StoreError> {
    let expression = format!(
        "SET #status = :waiting, started_at = if_not_exists(started_at, :now), task_token = :token, \
         approval = :request, {}",
        common_set(item)
    );
    with_item_name(update(ddb, table, job_id, step, item), item)
        .update_expression(expression)
        .expression_attribute_values(":waiting", s(StepStatus::WaitingApproval.as_str()))
        .expression_attribute_values(":token", s(token))
        .expression_attribute_values(":request", s(request.to_string()))
        .send()
        .await
        .map_err(|e| StoreError::aws("UpdateItem", e))?;
    Ok(())
}

/// The task token of a step waiting for approval, and what it asked
/// (`{"message", "notify", "exports"}`); `None` when the step is not waiting.
pub async fn approval_token(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    step: &str,
) -> Result<Option<(String, Value)>, StoreError> {
    let out = ddb
        .get_item()
        .table_name(table)
        .key("PK", s(job_pk(job_id)))
        .key("SK", s(step_sk(step, None)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::aws("GetItem", e))?;
    let Some(item) = out.item else {
        return Ok(None);
    };
    if get_s(&item, "status").as_deref() != Some(StepStatus::WaitingApproval.as_str()) {
        return Ok(None);
    }
    let request = get_json(&item, "approval").unwrap_or(Value::Null);
    Ok(get_s(&item, "task_token").map(|token| (token, request)))
}

/// Marks an approval step as being answered, unless someone else already is:
/// of two people answering at once, exactly one goes on to send the token
/// back. `false` when the step is not waiting or is already being answered.
pub async fn claim_approval(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    step: &str,
) -> Result<bool, StoreError> {
    let claimed = ddb
        .update_item()
        .table_name(table)
        .key("PK", s(job_pk(job_id)))
        .key("SK", s(step_sk(step, None)))
        .update_expression("SET answering = :now")
        .condition_expression("#status = :waiting AND attribute_not_exists(answering)")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":now", s(now_rfc3339()))
        .expression_attribute_values(":waiting", s(StepStatus::WaitingApproval.as_str()))
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

/// Records a person's answer on an approval step (after `SendTask*`).
pub async fn record_approval(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    step: &str,
    approved: bool,
    output: &Value,
) -> Result<(), StoreError> {
    let status = if approved {
        StepStatus::Succeeded
    } else {
        StepStatus::Failed
    };
    let expression = format!(
        "SET #status = :status, finished_at = :now, #output = :output, {} REMOVE task_token",
        common_set(None)
    );
    update(ddb, table, job_id, step, None)
        .update_expression(expression)
        .expression_attribute_names("#output", "output")
        .expression_attribute_values(":status", AttributeValue::S(status.as_str().into()))
        .expression_attribute_values(":output", s(output.to_string()))
        .send()
        .await
        .map_err(|e| StoreError::aws("UpdateItem", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_sort_keys_read_back() {
        assert_eq!(parse_step_sk("STEP#outline"), Some(("outline".into(), None)));
        assert_eq!(parse_step_sk("STEP#gather#000012"), Some(("gather".into(), Some(12))));
        assert_eq!(parse_step_sk("CHUNK#x#0001"), None);
    }
}
