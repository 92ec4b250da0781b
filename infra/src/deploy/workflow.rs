//! Deploying one workflow: its state machine and role, its entry in the
//! workflow registry (what the dispatcher reads), and its schedules.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState};
use serde_json::{Value, json};

use super::{Change, CoreOutputs, Deployer, Report, is_code};
use crate::error::{InfraError, Result};
use crate::spec::{ScheduleRoute, schedule_name, scheduler_role_name, state_machine_role_name};

/// A compiled workflow, ready to deploy.
#[derive(Debug, Clone)]
pub struct WorkflowDeployment {
    pub name: String,
    /// The state machine definition (ASL JSON).
    pub asl: String,
    /// The state machine role's policy document.
    pub policy: Value,
    pub input_schema: Value,
    /// A stable hash of the definition, stored in the registry.
    pub hash: String,
    pub schedules: Vec<ScheduleDeployment>,
}

#[derive(Debug, Clone)]
pub struct ScheduleDeployment {
    pub name: String,
    /// `cron(...)`, `rate(...)` or `at(...)`.
    pub expression: String,
    pub timezone: Option<String>,
    pub input: Value,
}

impl Deployer {
    /// Deploys one workflow against the core resources.
    pub async fn deploy_workflow(&self, core: &CoreOutputs, workflow: &WorkflowDeployment) -> Result<Report> {
        let mut report = Report::default();
        let prefix = &core.spec.prefix;
        let role_name = state_machine_role_name(prefix, &workflow.name);
        let role_arn = self
            .ensure_role(&role_name, "states.amazonaws.com", &workflow.policy, &mut report)
            .await?;
        let target = core.target();
        let machine_name = target.state_machine_name(&workflow.name);
        let machine_arn = target.state_machine_arn(&workflow.name);
        self.ensure_state_machine(&machine_name, &machine_arn, &role_arn, &workflow.asl, &mut report)
            .await?;
        self.ensure_registry_item(core, workflow, &machine_arn, &mut report)
            .await?;
        self.ensure_schedules(core, workflow, &mut report).await?;
        Ok(report)
    }

    /// A role with one trusted service and one inline policy.
    pub(crate) async fn ensure_role(
        &self,
        name: &str,
        service: &str,
        policy: &Value,
        report: &mut Report,
    ) -> Result<String> {
        let trust = json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
        });
        let arn = match self.iam.get_role().role_name(name).send().await {
            Ok(out) => {
                report.record("role", name, Change::Unchanged);
                out.role.map(|r| r.arn).unwrap_or_default()
            }
            Err(err) if is_code(&err, &["NoSuchEntity"]) => {
                let out = self
                    .iam
                    .create_role()
                    .role_name(name)
                    .assume_role_policy_document(trust.to_string())
                    .description("Execution Garden")
                    .send()
                    .await
                    .map_err(|e| InfraError::aws("create role", name, e))?;
                report.record("role", name, Change::Created);
                out.role.map(|r| r.arn).unwrap_or_default()
            }
            Err(err) => return Err(InfraError::aws("read role", name, err)),
        };
        let policy_name = "garden";
        let current = match self
            .iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .send()
            .await
        {
            Ok(out) => parse_policy(&out.policy_document),
            Err(err) if is_code(&err, &["NoSuchEntity"]) => None,
            Err(err) => return Err(InfraError::aws("read role policy", name, err)),
        };
        let change = match current {
            Some(current) if current == *policy => Change::Unchanged,
            Some(_) => Change::Updated,
            None => Change::Created,
        };
        if change != Change::Unchanged {
            self.iam
                .put_role_policy()
                .role_name(name)
                .policy_name(policy_name)
                .policy_document(policy.to_string())
                .send()
                .await
                .map_err(|e| InfraError::aws("write role policy", name, e))?;
        }
        report.record("role policy", format!("{name}/{policy_name}"), change);
        Ok(arn)
    }

    async fn ensure_state_machine(
        &self,
        name: &str,
        arn: &str,
        role_arn: &str,
        asl: &str,
        report: &mut Report,
    ) -> Result<()> {
        match self.sfn.describe_state_machine().state_machine_arn(arn).send().await {
            Ok(current) => {
                let same_definition =
                    serde_json::from_str::<Value>(&current.definition).ok() == serde_json::from_str::<Value>(asl).ok();
                if same_definition && current.role_arn == role_arn {
                    report.record("state machine", name, Change::Unchanged);
                    return Ok(());
                }
                self.sfn
                    .update_state_machine()
                    .state_machine_arn(arn)
                    .definition(asl)
                    .role_arn(role_arn)
                    .send()
                    .await
                    .map_err(|e| InfraError::aws("update state machine", name, e))?;
                report.record("state machine", name, Change::Updated);
            }
            Err(err) if is_code(&err, &["StateMachineDoesNotExist"]) => {
                self.sfn
                    .create_state_machine()
                    .name(name)
                    .definition(asl)
                    .role_arn(role_arn)
                    .r#type(aws_sdk_sfn::types::StateMachineType::Standard)
                    .send()
                    .await
                    .map_err(|e| InfraError::aws("create state machine", name, e))?;
                report.record("state machine", name, Change::Created);
            }
            Err(err) => return Err(InfraError::aws("read state machine", name, err)),
        }
        Ok(())
    }

    async fn ensure_registry_item(
        &self,
        core: &CoreOutputs,
        workflow: &WorkflowDeployment,
        machine_arn: &str,
        report: &mut Report,
    ) -> Result<()> {
        let key = HashMap::from([
            (
                "PK".to_owned(),
                AttributeValue::S(format!("WORKFLOW#{}", workflow.name)),
            ),
            ("SK".to_owned(), AttributeValue::S("WORKFLOW".to_owned())),
        ]);
        let resource = format!("{}/WORKFLOW#{}", core.spec.table, workflow.name);
        let current = self
            .dynamodb
            .get_item()
            .table_name(&core.spec.table)
            .set_key(Some(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| InfraError::aws("read workflow registry", &resource, e))?
            .item;
        let text = |item: &HashMap<String, AttributeValue>, name: &str| {
            item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
        };
        if let Some(item) = &current
            && text(item, "definition_hash") == workflow.hash
            && text(item, "state_machine_arn") == machine_arn
        {
            report.record("registry item", resource, Change::Unchanged);
            return Ok(());
        }
        let mut item = key;
        item.insert("workflow".into(), AttributeValue::S(workflow.name.clone()));
        item.insert("state_machine_arn".into(), AttributeValue::S(machine_arn.to_owned()));
        item.insert(
            "input_schema".into(),
            AttributeValue::S(workflow.input_schema.to_string()),
        );
        item.insert("definition_hash".into(), AttributeValue::S(workflow.hash.clone()));
        item.insert("deployed_at".into(), AttributeValue::S(chrono_now()));
        self.dynamodb
            .put_item()
            .table_name(&core.spec.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| InfraError::aws("write workflow registry", &resource, e))?;
        let change = if current.is_some() {
            Change::Updated
        } else {
            Change::Created
        };
        report.record("registry item", resource, change);
        Ok(())
    }

    async fn ensure_schedules(
        &self,
        core: &CoreOutputs,
        workflow: &WorkflowDeployment,
        report: &mut Report,
    ) -> Result<()> {
        let prefix = &core.spec.prefix;
        let wanted: Vec<String> = workflow
            .schedules
            .iter()
            .map(|s| schedule_name(prefix, &workflow.name, &s.name))
            .collect();
        if !workflow.schedules.is_empty() {
            let policy = json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": core.jobs_queue_arn}]
            });
            let role_arn = self
                .ensure_role(&scheduler_role_name(prefix), "scheduler.amazonaws.com", &policy, report)
                .await?;
            for (schedule, name) in workflow.schedules.iter().zip(&wanted) {
                self.ensure_schedule(core, workflow, schedule, name, &role_arn, report)
                    .await?;
                if core.spec.schedules == ScheduleRoute::SchedulerAndRules {
                    self.ensure_rule(core, workflow, schedule, name, report).await?;
                }
            }
        }
        self.remove_stale_schedules(core, workflow, &wanted, report).await
    }

    async fn ensure_schedule(
        &self,
        core: &CoreOutputs,
        workflow: &WorkflowDeployment,
        schedule: &ScheduleDeployment,
        name: &str,
        role_arn: &str,
        report: &mut Report,
    ) -> Result<()> {
        // Scheduler fills `<aws.scheduler.scheduled-time>` in, so a schedule
        // that fires twice for the same time still makes one job.
        let input = schedule_message(workflow, schedule, "<aws.scheduler.scheduled-time>");
        let target = aws_sdk_scheduler::types::Target::builder()
            .arn(&core.jobs_queue_arn)
            .role_arn(role_arn)
            .input(input.to_string())
            .build()
            .map_err(|e| InfraError::State(format!("schedule `{name}` target: {e}")))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| InfraError::State(format!("schedule `{name}` window: {e}")))?;
        let current = match self.scheduler.get_schedule().name(name).send().await {
            Ok(out) => Some(out),
            Err(err) if is_code(&err, &["ResourceNotFoundException"]) => None,
            Err(err) => return Err(InfraError::aws("read schedule", name, err)),
        };
        if let Some(current) = &current {
            let same = current.schedule_expression.as_deref() == Some(schedule.expression.as_str())
                && current.schedule_expression_timezone.as_deref().unwrap_or("UTC")
                    == schedule.timezone.as_deref().unwrap_or("UTC")
                && current.target.as_ref().map(|t| (t.arn.as_str(), t.input.as_deref()))
                    == Some((core.jobs_queue_arn.as_str(), Some(input.to_string().as_str())));
            if same {
                report.record("schedule", name, Change::Unchanged);
                return Ok(());
            }
            self.scheduler
                .update_schedule()
                .name(name)
                .schedule_expression(&schedule.expression)
                .set_schedule_expression_timezone(schedule.timezone.clone())
                .target(target)
                .flexible_time_window(window)
                .state(ScheduleState::Enabled)
                .send()
                .await
                .map_err(|e| InfraError::aws("update schedule", name, e))?;
            report.record("schedule", name, Change::Updated);
        } else {
            self.scheduler
                .create_schedule()
                .name(name)
                .schedule_expression(&schedule.expression)
                .set_schedule_expression_timezone(schedule.timezone.clone())
                .target(target)
                .flexible_time_window(window)
                .state(ScheduleState::Enabled)
                .send()
                .await
                .map_err(|e| InfraError::aws("create schedule", name, e))?;
            report.record("schedule", name, Change::Created);
        }
        Ok(())
    }

    /// An EventBridge rule that delivers the same job message as the schedule.
    /// Rules evaluate cron in UTC and have no one-off `at()`, so a schedule
    /// with a timezone other than UTC, or an `at()`, gets no rule.
    async fn ensure_rule(
        &self,
        core: &CoreOutputs,
        workflow: &WorkflowDeployment,
        schedule: &ScheduleDeployment,
        name: &str,
        report: &mut Report,
    ) -> Result<()> {
        let utc = schedule
            .timezone
            .as_deref()
            .is_none_or(|tz| tz == "UTC" || tz == "Etc/UTC");
        if schedule.expression.starts_with("at(") || !utc {
            let why = "EventBridge rules run in UTC with no one-off at(); the Scheduler schedule covers it on AWS";
            report.record("rule", name, Change::Skipped(why.into()));
            return Ok(());
        }
        let template = schedule_message(workflow, schedule, "<time>").to_string();
        let current = match self.events.describe_rule().name(name).send().await {
            Ok(out) => Some(out.schedule_expression),
            Err(err) if is_code(&err, &["ResourceNotFoundException"]) => None,
            Err(err) => return Err(InfraError::aws("read rule", name, err)),
        };
        let current_template = if current.is_some() {
            self.events
                .list_targets_by_rule()
                .rule(name)
                .send()
                .await
                .map_err(|e| InfraError::aws("read rule targets", name, e))?
                .targets
                .unwrap_or_default()
                .into_iter()
                .find_map(|t| t.input_transformer.map(|i| i.input_template))
        } else {
            None
        };
        let change = match (&current, &current_template) {
            (Some(Some(expr)), Some(t)) if *expr == schedule.expression && *t == template => Change::Unchanged,
            (Some(_), _) => Change::Updated,
            (None, _) => Change::Created,
        };
        if change != Change::Unchanged {
            self.events
                .put_rule()
                .name(name)
                .schedule_expression(&schedule.expression)
                .state(aws_sdk_eventbridge::types::RuleState::Enabled)
                .description(format!(
                    "delivers {} jobs for schedule {}",
                    workflow.name, schedule.name
                ))
                .send()
                .await
                .map_err(|e| InfraError::aws("write rule", name, e))?;
            let transformer = aws_sdk_eventbridge::types::InputTransformer::builder()
                .input_paths_map("time", "$.time")
                .input_template(template)
                .build()
                .map_err(|e| InfraError::State(format!("rule `{name}` input: {e}")))?;
            let target = aws_sdk_eventbridge::types::Target::builder()
                .id("jobs")
                .arn(&core.jobs_queue_arn)
                .input_transformer(transformer)
                .build()
                .map_err(|e| InfraError::State(format!("rule `{name}` target: {e}")))?;
            self.events
                .put_targets()
                .rule(name)
                .targets(target)
                .send()
                .await
                .map_err(|e| InfraError::aws("write rule target", name, e))?;
        }
        report.record("rule", name, change);
        Ok(())
    }

    async fn remove_stale_schedules(
        &self,
        core: &CoreOutputs,
        workflow: &WorkflowDeployment,
        wanted: &[String],
        report: &mut Report,
    ) -> Result<()> {
        let prefix = schedule_name(&core.spec.prefix, &workflow.name, "");
        for name in self.schedule_names(&prefix).await? {
            if !wanted.contains(&name) {
                self.delete_schedule(&name, report).await?;
            }
        }
        for name in self.rule_names(&prefix).await? {
            if !wanted.contains(&name) {
                self.delete_rule(&name, report).await?;
            }
        }
        Ok(())
    }
}

/// The job message a schedule sends; `time` is the placeholder the sender
/// replaces with the scheduled time, which makes the idempotency key.
fn schedule_message(workflow: &WorkflowDeployment, schedule: &ScheduleDeployment, time: &str) -> Value {
    json!({
        "workflow": workflow.name,
        "input": schedule.input,
        "idempotency_key": format!("schedule:{}:{}", schedule.name, time),
    })
}

/// IAM answers policy documents URL-encoded; LocalStack sometimes does not.
fn parse_policy(document: &str) -> Option<Value> {
    serde_json::from_str(document)
        .ok()
        .or_else(|| serde_json::from_str(&percent_decode(document)).ok())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_policy_reads_the_same_as_a_plain_one() {
        let plain = r#"{"Version":"2012-10-17","Statement":[]}"#;
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        assert_eq!(parse_policy(plain), parse_policy(encoded));
        assert!(parse_policy(plain).is_some());
    }

    #[test]
    fn a_schedule_message_is_a_job_message_with_an_idempotency_key() {
        let workflow = WorkflowDeployment {
            name: "finance-analysis".into(),
            asl: String::new(),
            policy: json!({}),
            input_schema: json!({}),
            hash: String::new(),
            schedules: vec![],
        };
        let schedule = ScheduleDeployment {
            name: "nightly".into(),
            expression: "cron(0 2 * * ? *)".into(),
            timezone: None,
            input: json!({"ticker": "ACME"}),
        };
        let message = schedule_message(&workflow, &schedule, "<time>");
        let parsed: garden_workflows::wire::JobMessage = serde_json::from_value(message).unwrap();
        assert_eq!(parsed.idempotency_key.as_deref(), Some("schedule:nightly:<time>"));
        assert_eq!(parsed.input["ticker"], "ACME");
    }
}
