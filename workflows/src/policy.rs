//! Emit: the IAM policy of a workflow's state machine role, and the list of
//! resources deploying it needs. Exact resources, no wildcard on a data action.
//! Cost: linear in the number of steps.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::target::Target;
use crate::wire::TaskKind;
use crate::workflow::{StepBody, Workflow};

/// The queues the state machine sends task messages to (the control queue always: it renders the output).
pub fn task_kinds(wf: &Workflow) -> BTreeSet<TaskKind> {
    let mut kinds: BTreeSet<TaskKind> = wf.steps.iter().filter_map(|s| s.task_kind()).collect();
    kinds.insert(TaskKind::Control);
    kinds
}

/// Workflows started as children, by name.
pub fn child_workflows(wf: &Workflow) -> BTreeSet<String> {
    wf.steps
        .iter()
        .filter_map(|s| match &s.body {
            StepBody::Workflow { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

pub fn policy(wf: &Workflow, target: &Target) -> Value {
    let queues: Vec<String> = task_kinds(wf).into_iter().map(|k| target.queue_arn(k)).collect();
    let children = child_workflows(wf);
    // Child workflows get their job item written before they start.
    let table_actions = if children.is_empty() {
        json!(["dynamodb:UpdateItem"])
    } else {
        json!(["dynamodb:PutItem", "dynamodb:UpdateItem"])
    };
    let mut statements = vec![
        json!({"Sid": "SendTaskMessages", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": queues}),
        json!({"Sid": "RecordJobStatus", "Effect": "Allow", "Action": table_actions, "Resource": [target.table_arn()]}),
    ];
    if !children.is_empty() {
        let machines: Vec<String> = children.iter().map(|c| target.state_machine_arn(c)).collect();
        // Execution names are job ids, known only at run time: scoped to each child machine.
        let executions: Vec<String> = children
            .iter()
            .map(|c| {
                format!(
                    "arn:{}:states:{}:{}:execution:{}:*",
                    target.partition,
                    target.region,
                    target.account,
                    target.state_machine_name(c)
                )
            })
            .collect();
        let rule = format!(
            "arn:{}:events:{}:{}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
            target.partition, target.region, target.account
        );
        statements.push(json!({"Sid": "StartChildWorkflows", "Effect": "Allow", "Action": ["states:StartExecution"], "Resource": machines}));
        statements.push(json!({
            "Sid": "FollowChildWorkflows",
            "Effect": "Allow",
            "Action": ["states:DescribeExecution", "states:StopExecution"],
            "Resource": executions,
        }));
        statements.push(json!({
            "Sid": "ChildCompletionEvents",
            "Effect": "Allow",
            "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            "Resource": [rule],
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// What deploying the workflow needs: its state machine, queues by kind, table, schedules.
pub fn resources(wf: &Workflow, target: &Target) -> Value {
    let queues: serde_json::Map<String, Value> = task_kinds(wf)
        .into_iter()
        .map(|k| {
            let name = crate::target::task_queue_name(&target.prefix, k);
            (
                k.to_string(),
                json!({"name": name, "url": target.queue_url(k), "arn": target.queue_arn(k)}),
            )
        })
        .collect();
    json!({
        "workflow": wf.name,
        "state_machine": {"name": target.state_machine_name(&wf.name), "arn": target.state_machine_arn(&wf.name), "type": "STANDARD"},
        "queues": queues,
        "jobs_queue": crate::target::jobs_queue_name(&target.prefix),
        "table": {"name": target.table_name(), "arn": target.table_arn()},
        "schedules": wf.schedules,
        "child_workflows": child_workflows(wf),
    })
}
