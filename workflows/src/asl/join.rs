//! The states of join gates and wide fan-outs: `Join <step>` before a gated
//! step, `Finished <step>` after each step a gate waits for, and the single
//! Control task of a `wide` `for_each`.

use serde_json::{Map, Value, json};

use super::{Emitter, Scope, set_next};
use crate::definition::WaitDef;
use crate::plan::Gate;
use crate::wire::{Action, FanOutAction, FinishedAction, GateAction, GateWait, StepSpec, TaskKind};
use crate::workflow::{ForEach, Step, StepBody};

/// The longest a gate or fan-out waits (Step Functions' own limit is a year).
const LONGEST_WAIT_SECS: u64 = 365 * 24 * 3600;

impl Emitter<'_> {
    /// `Join <step>`: waits for the gate, then goes on to `after` (the step's
    /// check or the step itself). A failure the gate reports is the step's
    /// own: its `on_error` decides, continuing at `next`.
    pub(super) fn gate(&mut self, s: usize, gate: &Gate, after: String, next: Option<String>, scope: &mut Scope) {
        let step = &self.wf.steps[s];
        let names = |list: &[usize]| -> Vec<String> { list.iter().map(|&d| self.wf.steps[d].name.clone()).collect() };
        let values: Vec<String> = gate
            .values
            .iter()
            .filter(|&&d| !self.wf.steps[d].exports.is_empty())
            .map(|&d| self.wf.steps[d].id.clone())
            .collect();
        let spec = self.control_spec(Action::Gate(GateAction {
            deps: names(&gate.deps),
            values: values.clone(),
        }));
        let mut state = json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl": self.target.queue_url(TaskKind::Control),
                "MessageBody": self.message(&step.name, &spec, &[], false),
            },
            "TimeoutSeconds": self.longest_wait(),
        });
        let name = format!("Join {}", step.name);
        if values.is_empty() {
            state["ResultPath"] = Value::Null;
            state["Next"] = after.into();
        } else {
            // The gate returns `{"v": {<id>: ...}}`: the values this branch lacks.
            let merge = format!("Merge into {}", step.name);
            state["ResultPath"] = "$.joined".into();
            state["Next"] = merge.clone().into();
            let pass = json!({
                "Type": "Pass",
                "Comment": "add the values the gate returned to $.v",
                "Parameters": {"job.$": "$.job", "v.$": "States.JsonMerge($.v, $.joined.v, false)"},
                "Next": after,
            });
            scope.add(merge, pass);
        }
        let mut failure = Scope {
            states: Map::new(),
            rethrow: scope.rethrow.clone(),
        };
        self.catch(step, &mut state, next, &mut failure);
        scope.add(name, state);
        for (name, extra) in failure.states {
            if !scope.states.contains_key(&name) {
                scope.add(name, extra);
            }
        }
    }

    /// `Finished <step>` after step `s`, continuing at `next`.
    pub(super) fn notice(&self, s: usize, next: Option<String>, scope: &mut Scope) {
        let step = &self.wf.steps[s];
        let gates: Vec<GateWait> = self.notices[s]
            .iter()
            .map(|g| GateWait {
                step: self.wf.steps[*g].name.clone(),
                deps: self.gates[g]
                    .deps
                    .iter()
                    .map(|&d| self.wf.steps[d].name.clone())
                    .collect(),
            })
            .collect();
        let returns_values =
            !step.exports.is_empty() && self.notices[s].iter().any(|g| self.gates[g].values.contains(&s));
        let spec = self.control_spec(Action::Finished(FinishedAction { gates, values: None }));
        let mut spec = serde_json::to_value(&spec).unwrap_or_default();
        if returns_values {
            spec["values"] = json!({ format!("{}.$", step.id): format!("$.v.{}", step.id) });
        }
        let name = format!("Finished {}", step.name);
        let mut state = json!({
            "Type": "Task",
            "Comment": "tell the gates waiting on this step that it finished; does not wait",
            "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {
                "QueueUrl": self.target.queue_url(TaskKind::Control),
                "MessageBody": {
                    "job_id.$": "$.job.id",
                    "workflow": self.wf.name,
                    "step": step.name,
                    "spec": spec,
                },
            },
            "ResultPath": null,
            // A plain send carries no token, so a retry resends nothing stale.
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 4, "BackoffRate": 2.0}],
        });
        set_next(&mut state, next);
        scope.add(name, state);
    }

    /// The Control task of a `wide` `for_each`: the worker sends one task
    /// message per item and answers when every item has finished.
    pub(super) fn fan_out(&self, step: &Step, fe: &ForEach, action: &Action) -> Value {
        let item = StepSpec {
            action: action.clone(),
            for_each: Some(fe.template.clone()),
            retry: step.retry.clone(),
            timeout_secs: Some(step.timeout_secs),
            heartbeat_secs: step.heartbeat_secs,
        };
        let spec = self.control_spec(Action::FanOut(FanOutAction {
            item: Box::new(item),
            concurrency: fe.max_concurrency.unwrap_or(1),
            queue_url: self.target.queue_url(action.kind()).to_owned(),
        }));
        json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl": self.target.queue_url(TaskKind::Control),
                "MessageBody": self.message(&step.name, &spec, &[], false),
            },
            // The item count is known only at run time: items in flight are
            // bounded by their own timeouts; a lost item is in a DLQ, alarmed.
            "TimeoutSeconds": LONGEST_WAIT_SECS,
            "ResultPath": null,
        })
    }

    fn control_spec(&self, action: Action) -> StepSpec {
        StepSpec {
            action,
            for_each: None,
            retry: Default::default(),
            timeout_secs: None,
            heartbeat_secs: None,
        }
    }

    /// What a gate may wait: every step's longest run in turn, as no wait can
    /// be longer than all the steps run one after another. A `for_each` (its
    /// item count is known only at run time) or a `Wait` until a date has no
    /// bound but the longest an execution may wait.
    fn longest_wait(&self) -> u64 {
        let mut all: u64 = 0;
        for step in &self.wf.steps {
            let longest = match (&step.for_each, &step.body) {
                (Some(_), _) | (None, StepBody::Wait(WaitDef::Until(_))) => return LONGEST_WAIT_SECS,
                (None, StepBody::Wait(WaitDef::Seconds(secs))) => *secs,
                (None, _) => step.timeout_secs,
            };
            all = all.saturating_add(longest);
        }
        all.clamp(1, LONGEST_WAIT_SECS)
    }
}
