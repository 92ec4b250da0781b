//! A workflow, resolved: defaults applied, resources looked up, templates
//! parsed, and every reference to another step turned into a dependency. The
//! output of [`crate::resolve`] and the input of planning and emitting.

use std::sync::Arc;

use serde_json::Value;

use crate::definition::WaitDef;
use crate::error::{Problem, SourceFile, Span};
use crate::schedule::Schedule;
use crate::template::CompareOp;
use crate::wire::{Action, Export, ExportShape, RetryPolicy, TaskKind};

/// A checked workflow, ready to compile.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    /// The JSON Schema of the job input.
    pub input_schema: Value,
    /// In definition order; indices into this list name steps everywhere else.
    pub steps: Vec<Step>,
    /// The `output` template, rendered by the final control task.
    pub output: Value,
    pub schedules: Vec<Schedule>,
    /// Problems worth knowing that do not stop the compile.
    pub warnings: Vec<Problem>,
    pub(crate) file: Arc<SourceFile>,
    pub(crate) steps_span: Span,
}

impl Workflow {
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// The file the workflow was read from, for error reports.
    pub fn source(&self) -> &Arc<SourceFile> {
        &self.file
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    /// The name made state-safe (`[A-Za-z0-9_]`): the key under `$.v`.
    pub id: String,
    pub span: Span,
    pub name_span: Span,
    pub body: StepBody,
    /// Steps this one waits for, sorted, each with where the dependency was written.
    pub deps: Vec<(usize, Span)>,
    pub when: Option<Condition>,
    pub for_each: Option<ForEach>,
    pub on_error: OnError,
    pub timeout_secs: u64,
    pub heartbeat_secs: Option<u64>,
    pub retry: RetryPolicy,
    /// Values of this step's output that the state machine reads, in the order requested.
    pub exports: Vec<Export>,
    /// Set when the step only runs in place of another that failed.
    pub fallback_for: Option<usize>,
}

impl Step {
    pub fn dep_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.deps.iter().map(|(d, _)| *d)
    }

    /// The steps whose exported values this one reads from the state (in its
    /// `when` or for its Map's items), each once.
    pub fn reads(&self) -> impl Iterator<Item = usize> + use<> {
        fn vars(test: &Test, out: &mut Vec<usize>) {
            match test {
                Test::Truthy(v) => out.push(v.step),
                Test::Compare(_, v, operand) => {
                    out.push(v.step);
                    if let Operand::Var(w) = operand {
                        out.push(w.step);
                    }
                }
                Test::Not(inner) => vars(inner, out),
                Test::And(items) | Test::Or(items) => items.iter().for_each(|t| vars(t, out)),
            }
        }
        let mut read = Vec::new();
        if let Some(when) = &self.when {
            vars(&when.test, &mut read);
        }
        if let Some(fe) = &self.for_each {
            read.push(fe.source);
        }
        read.sort_unstable();
        read.dedup();
        read.into_iter()
    }

    /// The queue kind, for steps that run on a worker.
    pub fn task_kind(&self) -> Option<TaskKind> {
        match &self.body {
            StepBody::Task(action) => Some(action.kind()),
            _ => None,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.body {
            StepBody::Task(action) => action.kind().as_str(),
            StepBody::Wait(_) => "wait",
            StepBody::Workflow { .. } => "workflow",
        }
    }

    /// The export of this step at `path` with `shape`, added when new; returns its name.
    pub(crate) fn request_export(&mut self, path: &str, shape: ExportShape) -> String {
        if let Some(e) = self.exports.iter().find(|e| e.path == path && e.shape == shape) {
            return e.name.clone();
        }
        let mut base: String = path
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if base.is_empty() {
            base = "output".into();
        }
        if shape == ExportShape::Indices {
            base.push_str("_indices");
        }
        let mut name = base.clone();
        let mut n = 2;
        while self.exports.iter().any(|e| e.name == name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.exports.push(Export {
            name: name.clone(),
            path: path.to_owned(),
            shape,
            max_items: None,
        });
        name
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepBody {
    /// A task message to a worker.
    Task(Action),
    /// A Step Functions Wait state.
    Wait(WaitDef),
    /// Another workflow, run as a child execution.
    Workflow { name: String, input: Value },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Fail,
    Continue,
    Fallback(usize),
}

/// `for_each`: a Map over the indices another step exports.
#[derive(Debug, Clone, PartialEq)]
pub struct ForEach {
    pub source: usize,
    /// The export of `source` that holds the indices.
    pub export: String,
    pub max_concurrency: Option<u64>,
    /// One SQS task message per item, counted in DynamoDB, instead of a Map
    /// state (for more items than a Map carries); no export is read then.
    pub wide: bool,
    /// The template as written, for the worker and for explanations.
    pub template: String,
}

/// A `when`, as a Choice rule can read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub text: String,
    pub span: Span,
    pub test: Test,
}

/// A Choice rule over exported values.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// The value is present and JSON-truthy.
    Truthy(VarRef),
    Compare(CompareOp, VarRef, Operand),
    Not(Box<Test>),
    And(Vec<Test>),
    Or(Vec<Test>),
}

/// `$.v.<step id>.<export>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef {
    pub step: usize,
    pub export: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Value),
    Var(VarRef),
}
