//! Emit: a [`Plan`] in, Amazon States Language out.
//!
//! The shape of what is emitted (the runtime contract):
//!
//! - Every step that runs on a worker is a Task on
//!   `arn:aws:states:::sqs:sendMessage.waitForTaskToken`; its message body is a
//!   [`crate::wire::TaskMessage`] with the step's resolved [`crate::wire::StepSpec`].
//!   What the worker answers is reduced by `ResultSelector` to the values the
//!   state machine reads (`exports`) and stored at `$.v.<step id>`; steps
//!   without exports leave the state untouched (`ResultPath: null`). The state
//!   stays small whatever the outputs' size: outputs live in DynamoDB.
//! - A Parallel state's `ResultSelector` rebuilds `{job, v}` from its branches,
//!   taking each exported value from the branch that produced it.
//! - `when` is a Choice state before the step; when false, a Pass state skips
//!   it (recording `{}` under `$.v.<step id>` so later paths stay valid) and
//!   its dependents still run.
//! - `for_each` is an inline Map over an index array the producing step
//!   exports (`ExportShape::Indices`); the items stay in DynamoDB, and each
//!   iteration passes its index as `item`.
//! - `for_each` with `wide: true` is one Control task (`Action::FanOut`): the
//!   worker sends a task message per item and answers when all have finished.
//! - A join gate (see [`crate::plan::Gate`]) is a Control task `Join <step>`
//!   before the step (`Action::Gate`), caught by the step's own `on_error`;
//!   each step a gate waits for is followed by `Finished <step>`, a plain
//!   `sqs:sendMessage` (no token, no wait) that tells the workers to count it.
//! - `on_error: continue` catches into `$.v.<step id>` and goes on;
//!   `fallback` catches and runs the fallback step in its place.
//! - Failures: in the main flow each state catches into a `Failed <step>` Pass
//!   that names the step; inside Parallel branches and Map iterations, the
//!   failing step's name travels in the error cause (JSON) to the enclosing
//!   state's catcher. Either way the job item is updated (`FAILED`, or
//!   `TIMED_OUT` for `States.Timeout`/`States.HeartbeatTimeout`) with the
//!   error, cause and failed step, and the execution ends in a Fail state.
//! - Success: a Control task renders the job's output (`Action::Output`), then
//!   `dynamodb:updateItem` marks the job `SUCCEEDED`.
//!
//! No task state has a Step Functions `Retry`: workers retry transient
//! provider errors themselves, with backoff and jitter, while heartbeating the
//! task; a state-machine retry would also resend the message with the same
//! token, which emulators such as LocalStack replay as the same failure.
//!
//! Cost: linear in the size of the plan and the step specs.

use serde_json::{Map, Value, json};

mod choice;
mod join;
mod tail;

use choice::test_rule;
use tail::{add_rethrow, failed_in_branch, failed_in_main};

use crate::plan::{Gate, Node, Plan};
use crate::target::Target;
use crate::wire::{Action, StepSpec};
use crate::workflow::{OnError, Step, StepBody, Workflow};

/// What a Parallel branch or Map iteration fails with when one of its steps
/// failed; the cause holds the original error and the step.
pub const STEP_FAILED_ERROR: &str = "Garden.StepFailed";
/// What the execution fails with when the job timed out (the job item keeps
/// the original `States.Timeout` or `States.HeartbeatTimeout`).
pub const TIMED_OUT_ERROR: &str = "Garden.TimedOut";
/// What the execution fails with for other `States.*` errors, which a Fail
/// state may not raise itself.
pub const STEP_FUNCTIONS_ERROR: &str = "Garden.StepFunctionsError";
/// The TaskMessage `step` of the final output task (step names start with a letter).
pub const OUTPUT_STEP: &str = "_output";
pub(crate) const READ_FAILURE: &str = "Read failure";
const FAILURE_STATUS: &str = "Failure status";
const RENDER_OUTPUT: &str = "Render output";
const SUCCEEDED: &str = "Record success";

/// Emits the state machine definition.
pub fn emit(wf: &Workflow, plan: &Plan, target: &Target) -> Value {
    let tree = number(&plan.root, &mut 0);
    let mut notices = vec![Vec::new(); wf.steps.len()];
    for (&g, gate) in &plan.gates {
        gate.deps.iter().for_each(|&d| notices[d].push(g));
    }
    let mut em = Emitter {
        wf,
        target,
        reads_group_failures: false,
        readers: readers(wf),
        emitted: vec![false; wf.steps.len()],
        gates: &plan.gates,
        notices,
    };
    let mut main = Scope::main();
    let start = match &tree {
        Tree::Seq(items) if items.is_empty() => RENDER_OUTPUT.to_owned(),
        tree => em.entry(tree),
    };
    em.node(&tree, Some(RENDER_OUTPUT.to_owned()), &mut main, &mut Vec::new());
    em.tail(&mut main);
    let mut asl = Map::new();
    let comment = match &wf.description {
        Some(d) => format!("{}: {}", wf.name, d.trim()),
        None => format!("Execution Garden workflow {}", wf.name),
    };
    asl.insert("Comment".into(), Value::String(comment));
    asl.insert("StartAt".into(), Value::String(start));
    asl.insert("States".into(), Value::Object(main.states));
    Value::Object(asl)
}

/// The plan with Parallel states numbered in emit order and sequences flattened.
#[derive(Debug)]
pub(crate) enum Tree {
    Step(usize),
    Seq(Vec<Tree>),
    Par(usize, Vec<Tree>),
}

pub(crate) fn number(node: &Node, next: &mut usize) -> Tree {
    match node {
        Node::Step(s) => Tree::Step(*s),
        Node::Seq(items) => {
            let mut flat = Vec::new();
            for item in items {
                match number(item, next) {
                    Tree::Seq(inner) => flat.extend(inner),
                    other => flat.push(other),
                }
            }
            if flat.len() == 1 {
                flat.pop().unwrap_or(Tree::Seq(Vec::new()))
            } else {
                Tree::Seq(flat)
            }
        }
        Node::Par(items) => {
            *next += 1;
            let id = *next;
            Tree::Par(id, items.iter().map(|n| number(n, next)).collect())
        }
    }
}

struct Scope {
    states: Map<String, Value>,
    /// The Fail state that rethrows failures out of a branch; `None` in the main flow.
    rethrow: Option<String>,
}

impl Scope {
    fn main() -> Self {
        Scope {
            states: Map::new(),
            rethrow: None,
        }
    }

    fn branch(name: String) -> Self {
        Scope {
            states: Map::new(),
            rethrow: Some(name),
        }
    }

    fn add(&mut self, name: impl Into<String>, state: Value) {
        self.states.insert(name.into(), state);
    }
}

struct Emitter<'w> {
    wf: &'w Workflow,
    target: &'w Target,
    /// Whether a Parallel or Map of the main flow catches into [`READ_FAILURE`]
    /// (Step Functions refuses states nothing leads to).
    reads_group_failures: bool,
    /// For each step, the steps whose `when` or `for_each` read its exports.
    readers: Vec<Vec<usize>>,
    /// Steps emitted so far: a reader not yet emitted runs later.
    emitted: Vec<bool>,
    gates: &'w std::collections::BTreeMap<usize, Gate>,
    /// For each step, the gated steps that wait for it.
    notices: Vec<Vec<usize>>,
}

/// Who reads each step's exports.
fn readers(wf: &Workflow) -> Vec<Vec<usize>> {
    let mut readers = vec![Vec::new(); wf.steps.len()];
    for (r, step) in wf.steps.iter().enumerate() {
        for s in step.reads() {
            if !readers[s].contains(&r) {
                readers[s].push(r);
            }
        }
    }
    readers
}

impl Emitter<'_> {
    fn entry(&self, tree: &Tree) -> String {
        match tree {
            Tree::Step(s) => {
                let step = &self.wf.steps[*s];
                if self.gates.contains_key(s) {
                    format!("Join {}", step.name)
                } else if step.when.is_some() {
                    format!("Check {}", step.name)
                } else {
                    self.state_entry(step)
                }
            }
            Tree::Seq(items) => items.first().map(|t| self.entry(t)).unwrap_or_default(),
            Tree::Par(id, _) => format!("Parallel {id}"),
        }
    }

    /// The first state of a step itself (after any `when` check).
    fn state_entry(&self, step: &Step) -> String {
        match step.body {
            StepBody::Workflow { .. } => format!("Create job {}", step.name),
            _ => step.name.clone(),
        }
    }

    /// Emits `tree` into `scope`, continuing at `next` (`None`: the scope ends).
    /// `present` lists the exported steps whose `$.v` entry exists; it grows.
    fn node(&mut self, tree: &Tree, next: Option<String>, scope: &mut Scope, present: &mut Vec<usize>) {
        match tree {
            Tree::Step(s) => {
                if let Some(gate) = self.gates.get(s) {
                    present.extend(gate.values.iter().filter(|v| !self.wf.steps[**v].exports.is_empty()));
                }
                self.step(*s, next, scope);
                if !self.wf.steps[*s].exports.is_empty() {
                    present.push(*s);
                }
            }
            Tree::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let after = items.get(i + 1).map(|t| self.entry(t)).or_else(|| next.clone());
                    self.node(item, after, scope, present);
                }
            }
            Tree::Par(id, branches) => self.parallel(*id, branches, next, scope, present),
        }
    }

    fn parallel(
        &mut self,
        id: usize,
        branches: &[Tree],
        next: Option<String>,
        scope: &mut Scope,
        present: &mut Vec<usize>,
    ) {
        let mut asl_branches = Vec::new();
        let mut produced: Vec<(usize, usize)> = Vec::new();
        for (b, branch) in branches.iter().enumerate() {
            let mut inner = Scope::branch(format!("Parallel {id} branch {} failed", b + 1));
            let mut seen = present.clone();
            self.node(branch, None, &mut inner, &mut seen);
            produced.extend(seen.iter().filter(|s| !present.contains(s)).map(|&s| (s, b)));
            asl_branches.push(json!({"StartAt": self.entry(branch), "States": inner.states}));
        }
        let mut v = Map::new();
        let mut all: Vec<(usize, usize)> = present
            .iter()
            .map(|&s| (s, 0))
            .chain(produced.iter().copied())
            .collect();
        all.sort();
        // Only values a later step still reads are carried on: the state stays small.
        all.retain(|(s, _)| self.readers[*s].iter().any(|&r| !self.emitted[r]));
        for (s, b) in &all {
            let sid = &self.wf.steps[*s].id;
            v.insert(format!("{sid}.$"), Value::String(format!("$[{b}].v.{sid}")));
        }
        *present = all.iter().map(|(s, _)| *s).collect();
        let mut state = json!({
            "Type": "Parallel",
            "Branches": asl_branches,
            "ResultSelector": {"job.$": "$[0].job", "v": v},
        });
        if scope.rethrow.is_none() {
            self.reads_group_failures = true;
            state["Catch"] = json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": READ_FAILURE}]);
        }
        set_next(&mut state, next);
        scope.add(format!("Parallel {id}"), state);
    }

    fn step(&mut self, s: usize, next: Option<String>, scope: &mut Scope) {
        self.emitted[s] = true;
        let step = &self.wf.steps[s];
        // Every way out of the step (done, skipped, caught, replaced by its
        // fallback) passes the notice to the gates waiting on it.
        let (next, after_notice) = match self.notices[s].is_empty() {
            true => (next, None),
            false => (Some(format!("Finished {}", step.name)), Some(next)),
        };
        if let Some(gate) = self.gates.get(&s) {
            let after = match step.when {
                Some(_) => format!("Check {}", step.name),
                None => self.state_entry(step),
            };
            self.gate(s, gate, after, next.clone(), scope);
        }
        if let Some(when) = &step.when {
            let mut rule = test_rule(self.wf, &when.test);
            rule["Next"] = Value::String(self.state_entry(step));
            let skip = format!("Skip {}", step.name);
            let check = json!({"Type": "Choice", "Comment": when.text, "Choices": [rule], "Default": skip});
            scope.add(format!("Check {}", step.name), check);
            let mut pass = json!({"Type": "Pass", "Comment": format!("`when` is false: {} does not run", step.name)});
            if !step.exports.is_empty() {
                pass["Result"] = json!({});
                pass["ResultPath"] = Value::String(format!("$.v.{}", step.id));
            }
            set_next(&mut pass, next.clone());
            scope.add(skip, pass);
        }
        let mut state = match (&step.for_each, &step.body) {
            (Some(fe), StepBody::Task(action)) if fe.wide => self.fan_out(step, fe, action),
            (Some(_), _) => self.map(step),
            (None, StepBody::Task(action)) => self.task(step, action, false),
            (None, StepBody::Wait(wait)) => wait_state(wait),
            (None, StepBody::Workflow { name, .. }) => self.child(step, name),
        };
        if let (StepBody::Workflow { name, input }, None) = (&step.body, &step.for_each) {
            let mut create = self.create_child_job(step, name, input);
            let mut after = Scope {
                states: Map::new(),
                rethrow: scope.rethrow.clone(),
            };
            self.catch(step, &mut create, Some(step.name.clone()), &mut after);
            scope.add(format!("Create job {}", step.name), create);
            for (name, extra) in after.states {
                if !scope.states.contains_key(&name) {
                    scope.add(name, extra);
                }
            }
        }
        let catchable = !matches!(step.body, StepBody::Wait(_)) || step.for_each.is_some();
        // Failure states go after the step, so the definition reads top to bottom.
        let mut after = Scope {
            states: Map::new(),
            rethrow: scope.rethrow.clone(),
        };
        if catchable {
            self.catch(step, &mut state, next.clone(), &mut after);
        }
        set_next(&mut state, next.clone());
        scope.add(step.name.clone(), state);
        for (name, extra) in after.states {
            if !scope.states.contains_key(&name) {
                scope.add(name, extra);
            }
        }
        if let OnError::Fallback(f) = step.on_error {
            self.step(f, next, scope);
        }
        if let Some(after) = after_notice {
            self.notice(s, after, scope);
        }
    }

    fn catch(&mut self, step: &Step, state: &mut Value, next: Option<String>, scope: &mut Scope) {
        let record = format!("$.v.{}", step.id);
        let catcher = match step.on_error {
            OnError::Continue => {
                let target = next.unwrap_or_else(|| {
                    let name = format!("Continue after {}", step.name);
                    scope.add(name.clone(), json!({"Type": "Pass", "End": true}));
                    name
                });
                json!({"ErrorEquals": ["States.ALL"], "ResultPath": record, "Next": target})
            }
            OnError::Fallback(f) => {
                json!({"ErrorEquals": ["States.ALL"], "ResultPath": record, "Next": self.wf.steps[f].name})
            }
            OnError::Fail => {
                let failed = format!("Failed {}", step.name);
                let is_group = step.for_each.is_some();
                match (&scope.rethrow, is_group) {
                    // A Map's iterations already name the failed step in the cause.
                    (None, true) => {
                        self.reads_group_failures = true;
                        json!({"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": READ_FAILURE})
                    }
                    (Some(_), true) => return,
                    (None, false) => {
                        scope.add(failed.clone(), failed_in_main(&step.name));
                        json!({"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": failed})
                    }
                    (Some(rethrow), false) => {
                        let rethrow = rethrow.clone();
                        scope.add(failed.clone(), failed_in_branch(&step.name, &rethrow));
                        add_rethrow(scope, &rethrow);
                        json!({"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": failed})
                    }
                }
            }
        };
        state["Catch"] = json!([catcher]);
    }

    fn message(&self, step_name: &str, spec: &StepSpec, exports: &[crate::wire::Export], item: bool) -> Value {
        let mut body = Map::new();
        body.insert("token.$".into(), "$$.Task.Token".into());
        body.insert("job_id.$".into(), "$.job.id".into());
        body.insert("workflow".into(), self.wf.name.clone().into());
        body.insert("step".into(), step_name.into());
        body.insert("attempt.$".into(), "$$.State.RetryCount".into());
        if item {
            body.insert("item.$".into(), "$.item".into());
        }
        body.insert("spec".into(), serde_json::to_value(spec).unwrap_or_default());
        if !exports.is_empty() {
            body.insert("exports".into(), serde_json::to_value(exports).unwrap_or_default());
        }
        let lists = self.lists_read_by(step_name);
        if !lists.is_empty() {
            body.insert("lists".into(), lists.into());
        }
        Value::Object(body)
    }

    /// The `for_each` steps that a step's templates may read (any, for the
    /// job's output): a reference is a dependency, so they are among its deps.
    fn lists_read_by(&self, step_name: &str) -> Vec<String> {
        let is_list = |s: usize| self.wf.steps[s].for_each.is_some();
        let name = |s: usize| self.wf.steps[s].name.clone();
        if step_name == OUTPUT_STEP {
            return (0..self.wf.steps.len()).filter(|&s| is_list(s)).map(name).collect();
        }
        let Some(step) = self.wf.steps.iter().find(|s| s.name == step_name) else {
            return Vec::new();
        };
        let mut lists: Vec<String> = step
            .deps
            .iter()
            .map(|&(d, _)| d)
            .filter(|&d| is_list(d))
            .map(name)
            .collect();
        lists.sort();
        lists.dedup();
        lists
    }

    fn task(&self, step: &Step, action: &Action, item: bool) -> Value {
        let spec = StepSpec {
            action: action.clone(),
            for_each: step.for_each.as_ref().map(|f| f.template.clone()),
            retry: step.retry.clone(),
            timeout_secs: Some(step.timeout_secs),
            heartbeat_secs: step.heartbeat_secs,
        };
        let exports = if item { &[][..] } else { &step.exports[..] };
        let mut state = json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl": self.target.queue_url(action.kind()),
                "MessageBody": self.message(&step.name, &spec, exports, item),
            },
            "TimeoutSeconds": step.timeout_secs,
        });
        if let Some(hb) = step.heartbeat_secs {
            state["HeartbeatSeconds"] = hb.into();
        }
        if item {
            // An iteration returns its index; the items' outputs stay in DynamoDB.
            state["ResultPath"] = Value::Null;
            state["OutputPath"] = "$.item".into();
        } else if exports.is_empty() {
            state["ResultPath"] = Value::Null;
        } else {
            let selector: Map<String, Value> = exports
                .iter()
                .map(|e| (format!("{}.$", e.name), Value::String(format!("$.exports.{}", e.name))))
                .collect();
            state["ResultSelector"] = Value::Object(selector);
            state["ResultPath"] = Value::String(format!("$.v.{}", step.id));
        }
        state
    }

    fn map(&self, step: &Step) -> Value {
        let Some(fe) = &step.for_each else {
            return Value::Null;
        };
        let source = &self.wf.steps[fe.source];
        let item_state = format!("{} item", step.name);
        let rethrow = format!("{} item failed", step.name);
        let mut inner = Scope::branch(rethrow.clone());
        let mut task = match &step.body {
            StepBody::Task(action) => self.task(step, action, true),
            StepBody::Workflow { name, .. } => {
                let mut t = self.child(step, name);
                t["OutputPath"] = "$.item".into();
                t
            }
            StepBody::Wait(wait) => wait_state(wait),
        };
        if !matches!(step.body, StepBody::Wait(_)) {
            let failed = format!("Failed {}", item_state);
            inner.add(failed.clone(), failed_in_branch(&step.name, &rethrow));
            add_rethrow(&mut inner, &rethrow);
            task["Catch"] = json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": failed}]);
        }
        task["End"] = true.into();
        let mut states = Map::new();
        states.insert(item_state.clone(), task);
        states.extend(inner.states);
        let mut state = json!({
            "Type": "Map",
            "ItemsPath": format!("$.v.{}.{}", source.id, fe.export),
            "ItemSelector": {"job.$": "$.job", "item.$": "$$.Map.Item.Value"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": item_state,
                "States": states,
            },
        });
        if let Some(mc) = fe.max_concurrency {
            state["MaxConcurrency"] = mc.into();
        }
        if step.exports.is_empty() {
            state["ResultPath"] = Value::Null;
        } else {
            let selector: Map<String, Value> = step
                .exports
                .iter()
                .map(|e| (format!("{}.$", e.name), Value::String("$".into())))
                .collect();
            state["ResultSelector"] = Value::Object(selector);
            state["ResultPath"] = Value::String(format!("$.v.{}", step.id));
        }
        state
    }

    /// The child's job item, so that its workers find its input and `garden status` shows it.
    fn create_child_job(&self, step: &Step, workflow: &str, input: &Value) -> Value {
        let id = |pattern: &str| format!("States.Format('{pattern}', $.job.id)");
        json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:putItem",
            "Parameters": {
                "TableName": self.target.table_name(),
                "Item": {
                    "PK": {"S.$": id(&format!("JOB#{{}}-{}", step.id))},
                    "SK": {"S": "JOB"},
                    "job_id": {"S.$": id(&format!("{{}}-{}", step.id))},
                    "workflow": {"S": workflow},
                    "status": {"S": "RUNNING"},
                    "input": {"S": input.to_string()},
                    "parent_job_id": {"S.$": "$.job.id"},
                    "created_at": {"S.$": "$$.State.EnteredTime"},
                    "updated_at": {"S.$": "$$.State.EnteredTime"},
                    "GSI1PK": {"S": format!("WF#{workflow}")},
                    "GSI1SK": {"S.$": format!("States.Format('{{}}#{{}}-{}', $$.State.EnteredTime, $.job.id)", step.id)},
                },
            },
            "ResultPath": null,
            "Next": step.name,
        })
    }

    fn child(&self, step: &Step, workflow: &str) -> Value {
        let child_id = format!("States.Format('{{}}-{}', $.job.id)", step.id);
        json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {
                "StateMachineArn": self.target.state_machine_arn(workflow),
                "Name.$": child_id,
                "Input": {
                    "job": {"id.$": child_id, "workflow": workflow},
                    "v": {},
                    "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
                },
            },
            "TimeoutSeconds": step.timeout_secs,
            "ResultPath": null,
        })
    }
}

fn set_next(state: &mut Value, next: Option<String>) {
    match next {
        Some(next) => state["Next"] = Value::String(next),
        None => state["End"] = Value::Bool(true),
    }
}

fn wait_state(wait: &crate::definition::WaitDef) -> Value {
    match wait {
        crate::definition::WaitDef::Seconds(s) => json!({"Type": "Wait", "Seconds": s}),
        crate::definition::WaitDef::Until(t) => json!({"Type": "Wait", "Timestamp": t}),
    }
}
