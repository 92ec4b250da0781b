//! Job items: one per job, written by the dispatcher, finished by the state
//! machine, read by `garden status` and `garden jobs`.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde_json::Value;

use super::attr::{Item, get_json, get_s, n, s, split_chunks};
use super::{CHUNK_BYTES, JOB_SK, canonical_time, chunk_sk, expires_at, job_pk, now_rfc3339};
use crate::error::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Rejected,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "RUNNING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
            JobStatus::TimedOut => "TIMED_OUT",
            JobStatus::Rejected => "REJECTED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::TimedOut,
            Self::Rejected,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// A job item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobItem {
    pub job_id: String,
    pub workflow: String,
    pub status: JobStatus,
    pub input: Value,
    pub created_at: String,
    pub updated_at: String,
    pub execution_arn: Option<String>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub failed_step: Option<String>,
    /// Why the job was rejected.
    pub reason: Option<String>,
    /// Whether the workflow was known when the job arrived (rejected jobs of
    /// unknown workflows are listed under `_rejected`).
    #[serde(skip)]
    pub known_workflow: bool,
}

impl JobItem {
    pub fn new(job_id: &str, workflow: &str, status: JobStatus, input: Value) -> Self {
        let now = now_rfc3339();
        JobItem {
            job_id: job_id.to_owned(),
            workflow: workflow.to_owned(),
            status,
            input,
            created_at: now.clone(),
            updated_at: now,
            execution_arn: None,
            output: None,
            error: None,
            cause: None,
            failed_step: None,
            reason: None,
            known_workflow: true,
        }
    }

    fn to_item(&self) -> Item {
        let gsi_workflow = if self.known_workflow {
            self.workflow.as_str()
        } else {
            "_rejected"
        };
        let mut item = Item::from([
            ("PK".to_owned(), s(job_pk(&self.job_id))),
            ("SK".to_owned(), s(JOB_SK)),
            ("job_id".to_owned(), s(&self.job_id)),
            ("workflow".to_owned(), s(&self.workflow)),
            ("status".to_owned(), s(self.status.as_str())),
            ("input".to_owned(), s(self.input.to_string())),
            ("created_at".to_owned(), s(&self.created_at)),
            ("updated_at".to_owned(), s(&self.updated_at)),
            ("GSI1PK".to_owned(), s(format!("WF#{gsi_workflow}"))),
            ("GSI1SK".to_owned(), s(format!("{}#{}", self.created_at, self.job_id))),
            ("expires_at".to_owned(), n(expires_at())),
        ]);
        let optional = [
            ("execution_arn", &self.execution_arn),
            ("error", &self.error),
            ("cause", &self.cause),
            ("failed_step", &self.failed_step),
            ("reason", &self.reason),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                item.insert(key.to_owned(), s(value));
            }
        }
        item
    }

    pub(crate) fn from_item(item: &Item) -> Result<Self, StoreError> {
        let key = get_s(item, "PK").unwrap_or_default();
        let field = |name: &str| {
            get_s(item, name).ok_or_else(|| StoreError::Data {
                key: key.clone(),
                message: format!("no `{name}` attribute"),
            })
        };
        let status_text = field("status")?;
        Ok(JobItem {
            job_id: field("job_id")?,
            workflow: field("workflow")?,
            status: JobStatus::parse(&status_text).ok_or_else(|| StoreError::Data {
                key: key.clone(),
                message: format!("unknown status `{status_text}`"),
            })?,
            input: get_json(item, "input").unwrap_or(Value::Null),
            created_at: get_s(item, "created_at").map(canonical_time).unwrap_or_default(),
            updated_at: get_s(item, "updated_at").map(canonical_time).unwrap_or_default(),
            execution_arn: get_s(item, "execution_arn"),
            output: get_json(item, "output"),
            error: get_s(item, "error"),
            cause: get_s(item, "cause"),
            failed_step: get_s(item, "failed_step"),
            reason: get_s(item, "reason"),
            known_workflow: get_s(item, "GSI1PK").as_deref() != Some("WF#_rejected"),
        })
    }
}

/// Writes a new job item; `false` when the job already exists (a duplicate).
pub async fn put_job_if_absent(ddb: &aws_sdk_dynamodb::Client, table: &str, job: &JobItem) -> Result<bool, StoreError> {
    let result = ddb
        .put_item()
        .table_name(table)
        .set_item(Some(job.to_item()))
        .condition_expression("attribute_not_exists(PK)")
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(PutItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(err) => Err(StoreError::aws("PutItem", err)),
    }
}

/// Reads a job item (strongly consistent); `output` chunks are joined.
pub async fn get_job(ddb: &aws_sdk_dynamodb::Client, table: &str, job_id: &str) -> Result<Option<JobItem>, StoreError> {
    let out = ddb
        .get_item()
        .table_name(table)
        .key("PK", s(job_pk(job_id)))
        .key("SK", s(JOB_SK))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::aws("GetItem", e))?;
    let Some(item) = out.item else {
        return Ok(None);
    };
    let mut job = JobItem::from_item(&item)?;
    if let Some(count) = super::attr::get_n::<usize>(&item, "output_chunks") {
        job.output = Some(super::steps::read_chunks(ddb, table, job_id, "output", count).await?);
    }
    Ok(Some(job))
}

pub async fn set_execution_arn(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    execution_arn: &str,
) -> Result<(), StoreError> {
    ddb.update_item()
        .table_name(table)
        .key("PK", s(job_pk(job_id)))
        .key("SK", s(JOB_SK))
        .update_expression("SET execution_arn = :arn, updated_at = :now")
        .expression_attribute_values(":arn", s(execution_arn))
        .expression_attribute_values(":now", s(now_rfc3339()))
        .send()
        .await
        .map_err(|e| StoreError::aws("UpdateItem", e))?;
    Ok(())
}

/// Stores the job's rendered output (in chunk items when it is large).
pub async fn set_job_output(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    output: &Value,
) -> Result<(), StoreError> {
    let text = output.to_string();
    let mut update = ddb
        .update_item()
        .table_name(table)
        .key("PK", s(job_pk(job_id)))
        .key("SK", s(JOB_SK))
        .expression_attribute_values(":now", s(now_rfc3339()));
    if text.len() <= CHUNK_BYTES {
        update = update
            .update_expression("SET #output = :output, updated_at = :now REMOVE output_chunks")
            .expression_attribute_names("#output", "output")
            .expression_attribute_values(":output", s(text));
    } else {
        let chunks = split_chunks(&text, CHUNK_BYTES);
        write_chunks(ddb, table, job_id, "output", &chunks).await?;
        update = update
            .update_expression("SET output_chunks = :count, updated_at = :now REMOVE #output")
            .expression_attribute_names("#output", "output")
            .expression_attribute_values(":count", n(chunks.len()));
    }
    update.send().await.map_err(|e| StoreError::aws("UpdateItem", e))?;
    Ok(())
}

pub(crate) async fn write_chunks(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    suffix: &str,
    chunks: &[&str],
) -> Result<(), StoreError> {
    for (i, chunk) in chunks.iter().enumerate() {
        ddb.put_item()
            .table_name(table)
            .item("PK", s(job_pk(job_id)))
            .item("SK", s(chunk_sk(suffix, i)))
            .item("data", s(*chunk))
            .item("expires_at", n(expires_at()))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem", e))?;
    }
    Ok(())
}

/// Jobs of one workflow, newest first (`_rejected` lists rejected messages
/// whose workflow was unknown).
pub async fn list_jobs_by_workflow(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    workflow: &str,
    limit: i32,
) -> Result<Vec<JobItem>, StoreError> {
    let out = ddb
        .query()
        .table_name(table)
        .index_name("by-workflow")
        .key_condition_expression("GSI1PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("WF#{workflow}")))
        .scan_index_forward(false)
        .limit(limit)
        .send()
        .await
        .map_err(|e| StoreError::aws("Query", e))?;
    out.items().iter().map(JobItem::from_item).collect()
}
