//! Where a compiled workflow will run: the account, region and resource names
//! that the emitted state machine and IAM policy point at.
//!
//! The same names are used by `garden deploy` when it creates the resources and
//! by the workers when they look them up, so they are derived here, once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::wire::TaskKind;

/// The deployment a workflow is compiled for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub partition: String,
    pub region: String,
    pub account: String,
    /// Prefix of every resource name (`garden` gives `garden-jobs`, `garden-model`, ...).
    pub prefix: String,
    /// The URL of each step kind's task queue.
    pub queue_urls: BTreeMap<TaskKind, String>,
}

impl Target {
    /// A target in AWS, with queue URLs in the form SQS gives them.
    pub fn aws(region: &str, account: &str, prefix: &str) -> Self {
        let queue_urls = TaskKind::ALL
            .into_iter()
            .map(|kind| {
                let url = format!(
                    "https://sqs.{region}.amazonaws.com/{account}/{}",
                    task_queue_name(prefix, kind)
                );
                (kind, url)
            })
            .collect();
        Target {
            partition: "aws".into(),
            region: region.into(),
            account: account.into(),
            prefix: prefix.into(),
            queue_urls,
        }
    }

    /// The LocalStack default account and region, for offline compiles.
    pub fn local() -> Self {
        Target::aws("us-east-1", "000000000000", DEFAULT_PREFIX)
    }

    pub fn table_name(&self) -> String {
        table_name(&self.prefix)
    }

    pub fn table_arn(&self) -> String {
        format!(
            "arn:{}:dynamodb:{}:{}:table/{}",
            self.partition,
            self.region,
            self.account,
            self.table_name()
        )
    }

    pub fn queue_url(&self, kind: TaskKind) -> &str {
        self.queue_urls.get(&kind).map(String::as_str).unwrap_or_default()
    }

    pub fn queue_arn(&self, kind: TaskKind) -> String {
        format!(
            "arn:{}:sqs:{}:{}:{}",
            self.partition,
            self.region,
            self.account,
            task_queue_name(&self.prefix, kind)
        )
    }

    pub fn state_machine_name(&self, workflow: &str) -> String {
        state_machine_name(&self.prefix, workflow)
    }

    pub fn state_machine_arn(&self, workflow: &str) -> String {
        format!(
            "arn:{}:states:{}:{}:stateMachine:{}",
            self.partition,
            self.region,
            self.account,
            self.state_machine_name(workflow)
        )
    }
}

pub const DEFAULT_PREFIX: &str = "garden";

pub fn table_name(prefix: &str) -> String {
    prefix.to_owned()
}

pub fn jobs_queue_name(prefix: &str) -> String {
    format!("{prefix}-jobs")
}

pub fn task_queue_name(prefix: &str, kind: TaskKind) -> String {
    format!("{prefix}-{kind}")
}

/// The dead-letter queue of a queue.
pub fn dead_letter_queue_name(queue: &str) -> String {
    format!("{queue}-dlq")
}

pub fn state_machine_name(prefix: &str, workflow: &str) -> String {
    format!("{prefix}-{workflow}")
}
