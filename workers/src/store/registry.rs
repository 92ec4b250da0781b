//! The workflow registry items written by `garden deploy`, cached briefly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::attr::{get_s, s};
use super::workflow_pk;
use crate::error::StoreError;

/// One deployed workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowEntry {
    pub name: String,
    pub state_machine_arn: String,
    /// The input schema; `None` accepts any input.
    pub input_schema: Option<Value>,
    pub definition_hash: Option<String>,
    pub deployed_at: Option<String>,
}

/// Reads a workflow's registry item.
pub async fn get_workflow(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    name: &str,
) -> Result<Option<WorkflowEntry>, StoreError> {
    let out = ddb
        .get_item()
        .table_name(table)
        .key("PK", s(workflow_pk(name)))
        .key("SK", s("WORKFLOW"))
        .send()
        .await
        .map_err(|e| StoreError::aws("GetItem", e))?;
    let Some(item) = out.item else {
        return Ok(None);
    };
    let state_machine_arn = get_s(&item, "state_machine_arn").ok_or_else(|| StoreError::Data {
        key: workflow_pk(name),
        message: "no state_machine_arn: deploy the workflow again".into(),
    })?;
    let input_schema = match get_s(&item, "input_schema") {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| StoreError::Data {
            key: workflow_pk(name),
            message: format!("input_schema is not JSON ({e}): deploy the workflow again"),
        })?),
        None => None,
    };
    Ok(Some(WorkflowEntry {
        name: name.to_owned(),
        state_machine_arn,
        input_schema,
        definition_hash: get_s(&item, "definition_hash"),
        deployed_at: get_s(&item, "deployed_at"),
    }))
}

/// The names of every deployed workflow (a scan: the registry is small, and
/// only `garden jobs` asks for all of it).
pub async fn list_workflows(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    let mut pages = ddb
        .scan()
        .table_name(table)
        .filter_expression("SK = :sk")
        .expression_attribute_values(":sk", s("WORKFLOW"))
        .projection_expression("PK")
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.map_err(|e| StoreError::aws("Scan", e))?;
        if let Some(name) = get_s(&item, "PK").and_then(|pk| pk.strip_prefix("WORKFLOW#").map(str::to_owned)) {
            names.push(name);
        }
    }
    Ok(names)
}

/// A cached lookup: when it was made, and the entry if the workflow exists.
type Cached = (Instant, Option<Arc<WorkflowEntry>>);

/// A short-lived cache of registry items (a redeploy shows up within the TTL).
/// Unknown workflows are not cached: a job sent right after its workflow's
/// first deploy must not be rejected from a stale answer.
pub struct Registry {
    ttl: Duration,
    entries: Mutex<HashMap<String, Cached>>,
}

impl Registry {
    pub fn new(ttl: Duration) -> Self {
        Registry {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub async fn get(
        &self,
        ddb: &aws_sdk_dynamodb::Client,
        table: &str,
        name: &str,
    ) -> Result<Option<Arc<WorkflowEntry>>, StoreError> {
        if let Some((at, entry)) = self.lock().get(name)
            && at.elapsed() < self.ttl
        {
            return Ok(entry.clone());
        }
        let entry = get_workflow(ddb, table, name).await?.map(Arc::new);
        if entry.is_some() {
            self.lock().insert(name.to_owned(), (Instant::now(), entry.clone()));
        }
        Ok(entry)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
