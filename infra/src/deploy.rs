//! The deployer: makes an account match a [`CoreSpec`] and a set of workflows.
//!
//! Each `ensure_*` reads the resource, then creates it, updates it in place or
//! leaves it alone, and records which in the [`Report`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use garden_workflows::target::Target;
use garden_workflows::wire::TaskKind;
use serde_json::{Value, json};

use crate::error::{InfraError, Result};
use crate::spec::{CoreSpec, QueueSpec, dead_letter_alarm_name};

mod destroy;
mod workflow;

pub use workflow::{ScheduleDeployment, WorkflowDeployment};

/// The name of the table's index that lists jobs by workflow and time.
pub const BY_WORKFLOW_INDEX: &str = "by-workflow";
/// The attribute DynamoDB's TTL reads.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// AWS clients for every service a deployment touches, from one configuration.
#[derive(Clone)]
pub struct Deployer {
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) dynamodb: aws_sdk_dynamodb::Client,
    pub(crate) sfn: aws_sdk_sfn::Client,
    pub(crate) iam: aws_sdk_iam::Client,
    pub(crate) events: aws_sdk_eventbridge::Client,
    pub(crate) scheduler: aws_sdk_scheduler::Client,
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
    pub(crate) region: String,
}

/// What deploying the core resources produced: the names and addresses
/// workflows are compiled against.
#[derive(Debug, Clone)]
pub struct CoreOutputs {
    pub spec: CoreSpec,
    pub account: String,
    pub region: String,
    /// Queue name to URL, dead-letter queues included.
    pub queue_urls: BTreeMap<String, String>,
    pub jobs_queue_arn: String,
}

impl CoreOutputs {
    /// The compile target for workflows in this deployment.
    pub fn target(&self) -> Target {
        let mut target = Target::aws(&self.region, &self.account, &self.spec.prefix);
        for queue in &self.spec.queues {
            if let (Some(kind), Some(url)) = (queue.kind, self.queue_urls.get(&queue.name)) {
                target.queue_urls.insert(kind, url.clone());
            }
        }
        target
    }

    pub fn jobs_queue_url(&self) -> &str {
        &self.queue_urls[&self.spec.jobs_queue().name]
    }

    pub fn task_queue_url(&self, kind: TaskKind) -> Option<&str> {
        let queue = self.spec.queues.iter().find(|q| q.kind == Some(kind))?;
        self.queue_urls.get(&queue.name).map(String::as_str)
    }
}

/// What happened to one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
    Deleted,
    /// Left out on purpose, with the reason.
    Skipped(String),
}

/// Every resource a deploy or destroy touched, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub entries: Vec<(String, String, Change)>,
}

impl Report {
    /// Records what happened to a resource. A resource met again (a role
    /// that several workflows share) stays one entry, which says what changed
    /// if anything did.
    pub(crate) fn record(&mut self, kind: &str, name: impl Into<String>, change: Change) {
        let name = name.into();
        match self.entries.iter_mut().find(|(k, n, _)| k == kind && *n == name) {
            Some(entry) if entry.2 == Change::Unchanged => entry.2 = change,
            Some(_) => {}
            None => self.entries.push((kind.to_owned(), name, change)),
        }
    }

    pub fn extend(&mut self, other: Report) {
        for (kind, name, change) in other.entries {
            self.record(&kind, name, change);
        }
    }

    /// True when nothing was created, updated or deleted.
    pub fn is_unchanged(&self) -> bool {
        self.entries
            .iter()
            .all(|(_, _, change)| matches!(change, Change::Unchanged | Change::Skipped(_)))
    }

    pub fn count(&self, wanted: &Change) -> usize {
        self.entries.iter().filter(|(_, _, change)| change == wanted).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (kind, name, change) in &self.entries {
            let change = match change {
                Change::Created => "created".to_owned(),
                Change::Updated => "updated".to_owned(),
                Change::Unchanged => "unchanged".to_owned(),
                Change::Deleted => "deleted".to_owned(),
                Change::Skipped(why) => format!("skipped: {why}"),
            };
            writeln!(f, "  {kind:<14} {name:<44} {change}")?;
        }
        Ok(())
    }
}

impl Deployer {
    pub fn new(config: &SdkConfig) -> Self {
        Deployer {
            sqs: aws_sdk_sqs::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sfn: aws_sdk_sfn::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
            scheduler: aws_sdk_scheduler::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            region: config
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".into()),
        }
    }

    /// Deploys the queues, the table and the alarms.
    pub async fn deploy_core(&self, spec: &CoreSpec) -> Result<(CoreOutputs, Report)> {
        let mut report = Report::default();
        let mut queue_urls = BTreeMap::new();
        let mut jobs_queue_arn = String::new();
        for queue in &spec.queues {
            let (dlq_url, dlq_arn) = self
                .ensure_queue(&queue.dead_letter, dlq_attributes(), &mut report)
                .await?;
            queue_urls.insert(queue.dead_letter.clone(), dlq_url);
            let (url, arn) = self
                .ensure_queue(&queue.name, queue_attributes(queue, &dlq_arn), &mut report)
                .await?;
            if queue.kind.is_none() {
                jobs_queue_arn = arn;
            }
            queue_urls.insert(queue.name.clone(), url);
            self.ensure_dead_letter_alarm(queue, &mut report).await?;
        }
        self.ensure_table(&spec.table, &mut report).await?;
        let account = account_of(&jobs_queue_arn).ok_or_else(|| {
            InfraError::State(format!("cannot read the account from the queue ARN `{jobs_queue_arn}`"))
        })?;
        let outputs = CoreOutputs {
            spec: spec.clone(),
            account,
            region: self.region.clone(),
            queue_urls,
            jobs_queue_arn,
        };
        Ok((outputs, report))
    }

    async fn ensure_queue(
        &self,
        name: &str,
        wanted: HashMap<QueueAttributeName, String>,
        report: &mut Report,
    ) -> Result<(String, String)> {
        let existing = self.sqs.get_queue_url().queue_name(name).send().await;
        let url = match existing {
            Ok(out) => out.queue_url.unwrap_or_default(),
            Err(err) if is_code(&err, &["AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"]) => {
                let created = self
                    .sqs
                    .create_queue()
                    .queue_name(name)
                    .set_attributes(Some(wanted.clone()))
                    .send()
                    .await
                    .map_err(|e| InfraError::aws("create queue", name, e))?;
                let url = created.queue_url.unwrap_or_default();
                report.record("queue", name, Change::Created);
                let arn = self.queue_arn(&url, name).await?;
                return Ok((url, arn));
            }
            Err(err) => return Err(InfraError::aws("read queue", name, err)),
        };
        let current = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| InfraError::aws("read queue attributes", name, e))?
            .attributes
            .unwrap_or_default();
        let differs: HashMap<_, _> = wanted
            .into_iter()
            .filter(|(key, value)| !same_attribute(key, current.get(key), value))
            .collect();
        if differs.is_empty() {
            report.record("queue", name, Change::Unchanged);
        } else {
            self.sqs
                .set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(differs))
                .send()
                .await
                .map_err(|e| InfraError::aws("update queue", name, e))?;
            report.record("queue", name, Change::Updated);
        }
        let arn = match current.get(&QueueAttributeName::QueueArn) {
            Some(arn) => arn.clone(),
            None => self.queue_arn(&url, name).await?,
        };
        Ok((url, arn))
    }

    async fn queue_arn(&self, url: &str, name: &str) -> Result<String> {
        self.sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| InfraError::aws("read queue ARN", name, e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| InfraError::State(format!("queue `{name}` has no ARN")))
    }

    async fn ensure_table(&self, name: &str, report: &mut Report) -> Result<()> {
        match self.dynamodb.describe_table().table_name(name).send().await {
            Ok(out) => {
                let table = out
                    .table
                    .unwrap_or_else(|| aws_sdk_dynamodb::types::TableDescription::builder().build());
                let has_index = table
                    .global_secondary_indexes()
                    .iter()
                    .any(|index| index.index_name() == Some(BY_WORKFLOW_INDEX));
                let keys: Vec<_> = table
                    .key_schema()
                    .iter()
                    .map(|k| k.attribute_name().to_owned())
                    .collect();
                if keys != ["PK", "SK"] || !has_index {
                    return Err(InfraError::State(format!(
                        "table `{name}` exists with another shape (keys {keys:?}, index `{BY_WORKFLOW_INDEX}` \
                         present: {has_index}): destroy it or pick another --prefix"
                    )));
                }
                report.record("table", name, Change::Unchanged);
            }
            Err(err) if is_code(&err, &["ResourceNotFoundException"]) => {
                self.create_table(name).await?;
                report.record("table", name, Change::Created);
            }
            Err(err) => return Err(InfraError::aws("read table", name, err)),
        }
        self.ensure_ttl(name, report).await
    }

    async fn create_table(&self, name: &str) -> Result<()> {
        let key = |attr: &str, key_type| {
            KeySchemaElement::builder()
                .attribute_name(attr)
                .key_type(key_type)
                .build()
                .expect("key schema has its fields")
        };
        let attr = |attr: &str| {
            AttributeDefinition::builder()
                .attribute_name(attr)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition has its fields")
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(BY_WORKFLOW_INDEX)
            .key_schema(key("GSI1PK", KeyType::Hash))
            .key_schema(key("GSI1SK", KeyType::Range))
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .expect("index has its fields");
        self.dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("PK", KeyType::Hash))
            .key_schema(key("SK", KeyType::Range))
            .attribute_definitions(attr("PK"))
            .attribute_definitions(attr("SK"))
            .attribute_definitions(attr("GSI1PK"))
            .attribute_definitions(attr("GSI1SK"))
            .global_secondary_indexes(index)
            .send()
            .await
            .map_err(|e| InfraError::aws("create table", name, e))?;
        for _ in 0..120 {
            let status = self
                .dynamodb
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| InfraError::aws("read table", name, e))?
                .table
                .and_then(|t| t.table_status);
            if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Err(InfraError::State(format!(
            "table `{name}` did not become active within a minute"
        )))
    }

    async fn ensure_ttl(&self, table: &str, report: &mut Report) -> Result<()> {
        let current = self
            .dynamodb
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| InfraError::aws("read time to live", table, e))?
            .time_to_live_description;
        let enabled = current.as_ref().is_some_and(|d| {
            d.attribute_name() == Some(TTL_ATTRIBUTE)
                && matches!(
                    d.time_to_live_status(),
                    Some(
                        aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled
                            | aws_sdk_dynamodb::types::TimeToLiveStatus::Enabling
                    )
                )
        });
        if enabled {
            report.record("table ttl", format!("{table}.{TTL_ATTRIBUTE}"), Change::Unchanged);
            return Ok(());
        }
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .expect("ttl specification has its fields");
        self.dynamodb
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| InfraError::aws("enable time to live", table, e))?;
        report.record("table ttl", format!("{table}.{TTL_ATTRIBUTE}"), Change::Created);
        Ok(())
    }

    /// An alarm that fires as soon as a message lands in a dead-letter queue:
    /// in this system a dead-lettered message is always a bug or an outage.
    async fn ensure_dead_letter_alarm(&self, queue: &QueueSpec, report: &mut Report) -> Result<()> {
        let name = dead_letter_alarm_name(&queue.name);
        let existing = self
            .cloudwatch
            .describe_alarms()
            .alarm_names(&name)
            .send()
            .await
            .map_err(|e| InfraError::aws("read alarm", &name, e))?;
        if !existing.metric_alarms().is_empty() {
            report.record("alarm", name, Change::Unchanged);
            return Ok(());
        }
        let dimension = aws_sdk_cloudwatch::types::Dimension::builder()
            .name("QueueName")
            .value(&queue.dead_letter)
            .build();
        self.cloudwatch
            .put_metric_alarm()
            .alarm_name(&name)
            .alarm_description(format!(
                "messages of {} were dead-lettered: inspect {}",
                queue.name, queue.dead_letter
            ))
            .namespace("AWS/SQS")
            .metric_name("ApproximateNumberOfMessagesVisible")
            .dimensions(dimension)
            .statistic(aws_sdk_cloudwatch::types::Statistic::Maximum)
            .period(60)
            .evaluation_periods(1)
            .threshold(0.0)
            .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
            .treat_missing_data("notBreaching")
            .send()
            .await
            .map_err(|e| InfraError::aws("create alarm", &name, e))?;
        report.record("alarm", name, Change::Created);
        Ok(())
    }
}

fn dlq_attributes() -> HashMap<QueueAttributeName, String> {
    HashMap::from([(QueueAttributeName::MessageRetentionPeriod, (14 * 24 * 3600).to_string())])
}

fn queue_attributes(queue: &QueueSpec, dlq_arn: &str) -> HashMap<QueueAttributeName, String> {
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.max_receive_count});
    HashMap::from([
        (
            QueueAttributeName::VisibilityTimeout,
            queue.visibility_timeout_secs.to_string(),
        ),
        (
            QueueAttributeName::MessageRetentionPeriod,
            queue.retention_secs.to_string(),
        ),
        (QueueAttributeName::RedrivePolicy, redrive.to_string()),
    ])
}

/// Compares a queue attribute as SQS means it: the redrive policy as JSON,
/// whatever its spacing and whether the count is a number or a string.
fn same_attribute(key: &QueueAttributeName, current: Option<&String>, wanted: &str) -> bool {
    let Some(current) = current else { return false };
    if *key != QueueAttributeName::RedrivePolicy {
        return current == wanted;
    }
    let normalise = |text: &str| -> Option<(String, String)> {
        let value: Value = serde_json::from_str(text).ok()?;
        let count = match &value["maxReceiveCount"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Some((value["deadLetterTargetArn"].as_str()?.to_owned(), count))
    };
    normalise(current).is_some() && normalise(current) == normalise(wanted)
}

/// The account id in an ARN (`arn:aws:sqs:us-east-1:123456789012:name`).
pub fn account_of(arn: &str) -> Option<String> {
    let account = arn.split(':').nth(4)?;
    (!account.is_empty()).then(|| account.to_owned())
}

/// True when an SDK error carries one of the given service error codes.
pub(crate) fn is_code<E, R>(err: &aws_sdk_sqs::error::SdkError<E, R>, codes: &[&str]) -> bool
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| codes.contains(&code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_met_twice_is_one_entry_saying_what_changed() {
        let mut report = Report::default();
        report.record("role policy", "garden-scheduler/garden", Change::Unchanged);
        report.record("role policy", "garden-scheduler/garden", Change::Created);
        let mut later = Report::default();
        later.record("role policy", "garden-scheduler/garden", Change::Unchanged);
        later.record("queue", "garden-jobs", Change::Unchanged);
        report.extend(later);
        assert_eq!(report.entries.len(), 2, "{report}");
        assert_eq!(report.count(&Change::Created), 1);
        assert!(!report.is_unchanged());
    }

    #[test]
    fn a_redrive_policy_matches_whatever_its_spelling() {
        let key = QueueAttributeName::RedrivePolicy;
        let wanted = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:q-dlq","maxReceiveCount":5}"#;
        let current = r#"{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:q-dlq", "maxReceiveCount": "5"}"#.to_owned();
        assert!(same_attribute(&key, Some(&current), wanted));
        let other = current.replace("\"5\"", "\"6\"");
        assert!(!same_attribute(&key, Some(&other), wanted));
        assert!(!same_attribute(&key, None, wanted));
    }

    #[test]
    fn the_account_is_read_from_an_arn() {
        assert_eq!(
            account_of("arn:aws:sqs:us-east-1:000000000000:garden-jobs").as_deref(),
            Some("000000000000")
        );
        assert_eq!(account_of("not an arn"), None);
    }
}
