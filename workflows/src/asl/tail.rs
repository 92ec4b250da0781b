//! The states after the steps: the job's output, its terminal status, and
//! the handling of failures (which step failed, why, and whether it timed out).

use serde_json::{Map, Value, json};

use super::{
    Emitter, FAILURE_STATUS, OUTPUT_STEP, READ_FAILURE, RENDER_OUTPUT, STEP_FAILED_ERROR, STEP_FUNCTIONS_ERROR,
    SUCCEEDED, Scope, TIMED_OUT_ERROR,
};
use crate::wire::{Action, StepSpec, TaskKind};

const END_JOB: &str = "End job";

impl Emitter<'_> {
    /// The states after the steps: the output, the job's terminal status, and failure handling.
    pub(super) fn tail(&self, main: &mut Scope) {
        let output = StepSpec {
            action: Action::Output {
                output: self.wf.output.clone(),
            },
            for_each: None,
            retry: Default::default(),
            timeout_secs: Some(300),
            heartbeat_secs: None,
        };
        let failed = format!("Failed {OUTPUT_STEP}");
        main.add(
            RENDER_OUTPUT,
            json!({
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": self.target.queue_url(TaskKind::Control),
                    "MessageBody": self.message(OUTPUT_STEP, &output, &[], false),
                },
                "TimeoutSeconds": 300,
                "ResultPath": null,
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": failed}],
                "Next": SUCCEEDED,
            }),
        );
        main.add(
            SUCCEEDED,
            self.update_job(
                "SET #status = :status, #updated_at = :now",
                json!({":status": {"S": "SUCCEEDED"}, ":now": {"S.$": "$$.State.EnteredTime"}}),
                "Done",
            ),
        );
        main.add("Done", json!({"Type": "Succeed"}));
        main.add(failed, failed_in_main(OUTPUT_STEP));
        if self.reads_group_failures {
            main.add(
                READ_FAILURE,
                json!({
                    "Type": "Choice",
                    "Comment": "a failure inside a Parallel or Map carries the failed step in its cause",
                    "Choices": [{
                        "And": [
                            {"Variable": "$.failure.Cause", "IsPresent": true},
                            {"Variable": "$.failure.Cause", "IsString": true},
                            {"Variable": "$.failure.Cause", "StringMatches": "{*\"failed_step\":*}"},
                        ],
                        "Next": "Read step failure",
                    }],
                    "Default": FAILURE_STATUS,
                }),
            );
            main.add(
                "Read step failure",
                json!({
                    "Type": "Pass",
                    "Parameters": {"job.$": "$.job", "failure.$": "States.StringToJson($.failure.Cause)"},
                    "Next": FAILURE_STATUS,
                }),
            );
        }
        main.add(
            FAILURE_STATUS,
            json!({
                "Type": "Choice",
                "Choices": [{
                    "Or": [
                        {"Variable": "$.failure.Error", "StringEquals": "States.Timeout"},
                        {"Variable": "$.failure.Error", "StringEquals": "States.HeartbeatTimeout"},
                    ],
                    "Next": "Mark timed out",
                }],
                "Default": "Mark failed",
            }),
        );
        let mark = |status: &str| json!({"Type": "Pass", "Result": status, "ResultPath": "$.failure.status", "Next": "Has cause"});
        main.add("Mark timed out", mark("TIMED_OUT"));
        main.add("Mark failed", mark("FAILED"));
        // A failure may come without a cause; DynamoDB wants a string.
        main.add(
            "Has cause",
            json!({
                "Type": "Choice",
                "Choices": [{
                    "And": [
                        {"Variable": "$.failure.Cause", "IsPresent": true},
                        {"Variable": "$.failure.Cause", "IsString": true},
                    ],
                    "Next": "Knows failed step",
                }],
                "Default": "No cause",
            }),
        );
        main.add(
            "No cause",
            json!({"Type": "Pass", "Result": "", "ResultPath": "$.failure.Cause", "Next": "Knows failed step"}),
        );
        main.add(
            "Knows failed step",
            json!({
                "Type": "Choice",
                "Choices": [{"Variable": "$.failure.failed_step", "IsPresent": true, "Next": "Record failed step"}],
                "Default": "Record failure",
            }),
        );
        let values = json!({
            ":status": {"S.$": "$.failure.status"},
            ":error": {"S.$": "$.failure.Error"},
            ":cause": {"S.$": "$.failure.Cause"},
            ":now": {"S.$": "$$.State.EnteredTime"},
        });
        let mut with_step = values.clone();
        with_step[":step"] = json!({"S.$": "$.failure.failed_step"});
        main.add(
            "Record failed step",
            self.update_job(
                "SET #status = :status, #error = :error, #cause = :cause, #failed_step = :step, #updated_at = :now",
                with_step,
                END_JOB,
            ),
        );
        main.add(
            "Record failure",
            self.update_job(
                "SET #status = :status, #error = :error, #cause = :cause, #updated_at = :now",
                values,
                END_JOB,
            ),
        );
        // A Fail state may not raise an error named `States.*`: those get a name of our own.
        main.add(
            END_JOB,
            json!({
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.failure.status", "StringEquals": "TIMED_OUT", "Next": "Job timed out"},
                    {"Variable": "$.failure.Error", "StringMatches": "States.*", "Next": "Job failed in Step Functions"},
                ],
                "Default": "Job failed",
            }),
        );
        main.add(
            "Job timed out",
            json!({"Type": "Fail", "Error": TIMED_OUT_ERROR, "CausePath": "$.failure.Cause"}),
        );
        main.add(
            "Job failed in Step Functions",
            json!({
                "Type": "Fail",
                "Error": STEP_FUNCTIONS_ERROR,
                "CausePath": "States.Format('{}: {}', $.failure.Error, $.failure.Cause)",
            }),
        );
        main.add(
            "Job failed",
            json!({"Type": "Fail", "ErrorPath": "$.failure.Error", "CausePath": "$.failure.Cause"}),
        );
    }

    fn update_job(&self, expression: &str, values: Value, next: &str) -> Value {
        let names: Map<String, Value> = expression
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '#'))
            .filter_map(|w| w.strip_prefix('#'))
            .map(|w| (format!("#{w}"), Value::String(w.to_owned())))
            .collect();
        json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:updateItem",
            "Parameters": {
                "TableName": self.target.table_name(),
                "Key": {"PK": {"S.$": "States.Format('JOB#{}', $.job.id)"}, "SK": {"S": "JOB"}},
                "UpdateExpression": expression,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            },
            "ResultPath": null,
            "Next": next,
        })
    }
}

/// Names the failed step beside the caught error (`{Error, Cause}` at
/// `$.failure`); reads nothing, so it cannot fail itself.
fn name_failed_step(step: &str, next: &str) -> Value {
    json!({"Type": "Pass", "Result": step, "ResultPath": "$.failure.failed_step", "Next": next})
}

/// In the main flow: name the failed step and go to the failure handling.
pub(super) fn failed_in_main(step: &str) -> Value {
    name_failed_step(step, FAILURE_STATUS)
}

/// Inside a branch: name the failed step, then rethrow with it in the cause.
pub(super) fn failed_in_branch(step: &str, rethrow: &str) -> Value {
    name_failed_step(step, rethrow)
}

/// Fails the branch; the cause is the JSON of the caught error with the
/// failed step, `{Error, Cause, failed_step}`, which the main flow reads
/// back. The error name is our own: a Fail state may not raise `States.*`
/// names such as `States.Timeout`.
pub(super) fn add_rethrow(scope: &mut Scope, name: &str) {
    if !scope.states.contains_key(name) {
        scope.add(
            name,
            json!({"Type": "Fail", "Error": STEP_FAILED_ERROR, "CausePath": "States.JsonToString($.failure)"}),
        );
    }
}
