//! A definition as written, before anything is looked up: the output of
//! [`crate::parse`]. Every field keeps where it came from, so that the later
//! passes can point at it.

use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::Value;

use crate::error::{SourceFile, Span};
use crate::wire::{Gateway, RetryPolicy, Runtime, SessionScope, TokenPrice};
use crate::yaml::Node;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

#[derive(Debug, Clone)]
pub struct Definition {
    pub file: Arc<SourceFile>,
    pub name: Spanned<String>,
    pub description: Option<String>,
    pub input: Option<Value>,
    /// The `input` schema as written, for pointing at its properties.
    pub input_node: Option<Node>,
    pub defaults: Defaults,
    pub resources: Resources,
    pub steps: Vec<StepDef>,
    /// Steps that could not be read; references to them are not reported again.
    pub broken_steps: Vec<String>,
    /// The `steps` key, for problems about the workflow as a whole.
    pub steps_span: Span,
    pub output: Option<Node>,
    pub schedules: Vec<ScheduleDef>,
}

#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub model: Option<Spanned<String>>,
    pub timeout_secs: Option<u64>,
    pub heartbeat_secs: Option<u64>,
    pub retry: Option<RetryPolicy>,
}

/// A named model: its Bedrock id and, when known, its token prices.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub id: String,
    pub price: Option<TokenPrice>,
}

/// Named models, gateways and agent runtimes.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub models: IndexMap<String, Spanned<Model>>,
    pub gateways: IndexMap<String, Spanned<Gateway>>,
    pub runtimes: IndexMap<String, Spanned<Runtime>>,
}

impl Resources {
    /// Adds what `shared` names and `self` does not: the definition's own win.
    pub fn merge_shared(&mut self, shared: &Resources) {
        for (k, v) in &shared.models {
            self.models.entry(k.clone()).or_insert_with(|| unspanned(v));
        }
        for (k, v) in &shared.gateways {
            self.gateways.entry(k.clone()).or_insert_with(|| unspanned(v));
        }
        for (k, v) in &shared.runtimes {
            self.runtimes.entry(k.clone()).or_insert_with(|| unspanned(v));
        }
    }
}

/// Shared resources come from another file: their spans mean nothing here.
fn unspanned<T: Clone>(v: &Spanned<T>) -> Spanned<T> {
    Spanned::new(v.value.clone(), Span::default())
}

#[derive(Debug, Clone)]
pub struct StepDef {
    pub name: Spanned<String>,
    /// The whole step mapping.
    pub span: Span,
    pub kind: StepKindDef,
    pub kind_span: Span,
    pub needs: Vec<Spanned<String>>,
    pub when: Option<Node>,
    pub for_each: Option<Node>,
    /// `wide: true`: run the items as SQS task messages, not a Map state.
    pub wide: Option<Spanned<bool>>,
    pub max_concurrency: Option<Spanned<u64>>,
    pub timeout_secs: Option<Spanned<u64>>,
    pub heartbeat_secs: Option<Spanned<u64>>,
    pub retry: Option<RetryPolicy>,
    pub on_error: OnErrorDef,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OnErrorDef {
    Fail,
    Continue,
    Fallback(Spanned<String>),
}

#[derive(Debug, Clone)]
pub enum StepKindDef {
    Model(ModelDef),
    Tool {
        gateway: Spanned<String>,
        name: String,
        arguments: Option<Node>,
    },
    Agent {
        runtime: Spanned<String>,
        session: SessionScope,
        payload: Option<Node>,
    },
    Approval {
        notify: Option<String>,
        message: Option<Node>,
    },
    Wait(WaitDef),
    Workflow {
        name: Spanned<String>,
        input: Option<Node>,
    },
}

impl StepKindDef {
    pub fn keyword(&self) -> &'static str {
        match self {
            StepKindDef::Model(_) => "model",
            StepKindDef::Tool { .. } => "tool",
            StepKindDef::Agent { .. } => "agent",
            StepKindDef::Approval { .. } => "approval",
            StepKindDef::Wait(_) => "wait",
            StepKindDef::Workflow { .. } => "workflow",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModelDef {
    pub model: Option<Spanned<String>>,
    pub system: Option<Node>,
    pub prompt: Node,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub tools: Vec<Spanned<String>>,
    pub output_schema: Option<Value>,
    pub max_tool_rounds: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitDef {
    Seconds(u64),
    /// An ISO 8601 timestamp.
    Until(String),
}

#[derive(Debug, Clone)]
pub struct ScheduleDef {
    pub name: Spanned<String>,
    pub span: Span,
    /// `cron(...)`, `rate(...)` or `at(...)`, as EventBridge Scheduler reads it.
    pub expression: Spanned<String>,
    pub timezone: Option<String>,
    pub input: Value,
}
