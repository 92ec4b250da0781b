//! Removing what `garden deploy` made, found by name prefix so that resources
//! of workflows deleted from `definitions/` go too.

use super::{Change, Deployer, Report, is_code};
use crate::error::{InfraError, Result};
use crate::spec::{CoreSpec, dead_letter_alarm_name, scheduler_role_name, state_machine_role_name};

impl Deployer {
    /// Deletes every resource of the deployment named by `spec.prefix`.
    pub async fn destroy(&self, spec: &CoreSpec) -> Result<Report> {
        let mut report = Report::default();
        let prefix = format!("{}-", spec.prefix);
        for name in self.schedule_names(&prefix).await? {
            self.delete_schedule(&name, &mut report).await?;
        }
        for name in self.rule_names(&prefix).await? {
            self.delete_rule(&name, &mut report).await?;
        }
        for (name, arn) in self.state_machines(&prefix).await? {
            self.sfn
                .delete_state_machine()
                .state_machine_arn(&arn)
                .send()
                .await
                .map_err(|e| InfraError::aws("delete state machine", &name, e))?;
            report.record("state machine", &name, Change::Deleted);
            let workflow = name.trim_start_matches(&prefix);
            self.delete_role(&state_machine_role_name(&spec.prefix, workflow), &mut report)
                .await?;
        }
        self.delete_role(&scheduler_role_name(&spec.prefix), &mut report)
            .await?;
        match self.dynamodb.delete_table().table_name(&spec.table).send().await {
            Ok(_) => report.record("table", &spec.table, Change::Deleted),
            Err(err) if is_code(&err, &["ResourceNotFoundException"]) => {}
            Err(err) => return Err(InfraError::aws("delete table", &spec.table, err)),
        }
        for queue in &spec.queues {
            for name in [&queue.name, &queue.dead_letter] {
                self.delete_queue(name, &mut report).await?;
            }
            let alarm = dead_letter_alarm_name(&queue.name);
            let found = self
                .cloudwatch
                .describe_alarms()
                .alarm_names(&alarm)
                .send()
                .await
                .map_err(|e| InfraError::aws("read alarm", &alarm, e))?;
            if !found.metric_alarms().is_empty() {
                self.cloudwatch
                    .delete_alarms()
                    .alarm_names(&alarm)
                    .send()
                    .await
                    .map_err(|e| InfraError::aws("delete alarm", &alarm, e))?;
                report.record("alarm", alarm, Change::Deleted);
            }
        }
        Ok(report)
    }

    async fn delete_queue(&self, name: &str, report: &mut Report) -> Result<()> {
        let url = match self.sqs.get_queue_url().queue_name(name).send().await {
            Ok(out) => out.queue_url.unwrap_or_default(),
            Err(err) if is_code(&err, &["AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"]) => {
                return Ok(());
            }
            Err(err) => return Err(InfraError::aws("read queue", name, err)),
        };
        self.sqs
            .delete_queue()
            .queue_url(url)
            .send()
            .await
            .map_err(|e| InfraError::aws("delete queue", name, e))?;
        report.record("queue", name, Change::Deleted);
        Ok(())
    }

    async fn delete_role(&self, name: &str, report: &mut Report) -> Result<()> {
        let policies = match self.iam.list_role_policies().role_name(name).send().await {
            Ok(out) => out.policy_names,
            Err(err) if is_code(&err, &["NoSuchEntity"]) => return Ok(()),
            Err(err) => return Err(InfraError::aws("read role policies", name, err)),
        };
        for policy in policies {
            self.iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(&policy)
                .send()
                .await
                .map_err(|e| InfraError::aws("delete role policy", name, e))?;
        }
        self.iam
            .delete_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| InfraError::aws("delete role", name, e))?;
        report.record("role", name, Change::Deleted);
        Ok(())
    }

    pub(crate) async fn delete_schedule(&self, name: &str, report: &mut Report) -> Result<()> {
        match self.scheduler.delete_schedule().name(name).send().await {
            Ok(_) => report.record("schedule", name, Change::Deleted),
            Err(err) if is_code(&err, &["ResourceNotFoundException"]) => {}
            Err(err) => return Err(InfraError::aws("delete schedule", name, err)),
        }
        Ok(())
    }

    pub(crate) async fn delete_rule(&self, name: &str, report: &mut Report) -> Result<()> {
        self.events
            .remove_targets()
            .rule(name)
            .ids("jobs")
            .send()
            .await
            .map_err(|e| InfraError::aws("delete rule target", name, e))?;
        self.events
            .delete_rule()
            .name(name)
            .send()
            .await
            .map_err(|e| InfraError::aws("delete rule", name, e))?;
        report.record("rule", name, Change::Deleted);
        Ok(())
    }

    pub(crate) async fn schedule_names(&self, prefix: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut pages = self
            .scheduler
            .list_schedules()
            .name_prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| InfraError::aws("list schedules", prefix, e))?;
            names.extend(page.schedules.into_iter().filter_map(|s| s.name));
        }
        Ok(names)
    }

    pub(crate) async fn rule_names(&self, prefix: &str) -> Result<Vec<String>> {
        let out = self
            .events
            .list_rules()
            .name_prefix(prefix)
            .send()
            .await
            .map_err(|e| InfraError::aws("list rules", prefix, e))?;
        Ok(out
            .rules
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.name)
            .collect())
    }

    async fn state_machines(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        let mut pages = self.sfn.list_state_machines().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| InfraError::aws("list state machines", prefix, e))?;
            found.extend(
                page.state_machines
                    .into_iter()
                    .filter(|m| m.name.starts_with(prefix))
                    .map(|m| (m.name, m.state_machine_arn)),
            );
        }
        Ok(found)
    }
}
