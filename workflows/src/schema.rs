//! The JSON Schema of workflow definitions, generated from Rust types that
//! mirror the YAML (`garden schema`, committed as `definitions/schema.json`).
//!
//! The compiler itself reads definitions with [`crate::parse`], which keeps
//! positions for error reports; these types exist for the schema (editor
//! completion and checking), and a test reads every example definition with
//! them so that the two stay in step.

#![allow(dead_code)]

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// The JSON Schema of definitions, as pretty JSON with a final newline.
pub fn definition_schema() -> String {
    let schema = schemars::schema_for!(WorkflowDefinition);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// An Execution Garden workflow definition.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Execution Garden workflow")]
pub struct WorkflowDefinition {
    /// The workflow's name: letters, digits, `-` and `_`, starting with a letter.
    #[schemars(regex(pattern = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"))]
    pub name: String,
    pub description: Option<String>,
    /// The JSON Schema every job input must satisfy.
    pub input: Option<Value>,
    pub defaults: Option<Defaults>,
    pub resources: Option<Resources>,
    /// The steps, by name. A step waits for the steps it names in `needs` and
    /// for every step whose output its templates read.
    pub steps: BTreeMap<String, Step>,
    /// The job's output: a template rendered when every step has finished.
    pub output: Option<Value>,
    pub schedules: Option<Vec<Schedule>>,
}

/// A duration such as `30s`, `10m`, `1h30m` or `500ms`, or whole seconds.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Duration {
    Text(#[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h|d))+$"))] String),
    Seconds(u64),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// A model alias from `resources.models`, or a Bedrock model id.
    pub model: Option<String>,
    /// How long a step may take, all attempts included.
    pub timeout: Option<Duration>,
    /// How often a worker must report that a step is still alive.
    pub heartbeat: Option<Duration>,
    pub retry: Option<Retry>,
}

/// Retries the worker makes for transient provider errors.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, the first included.
    #[schemars(range(min = 1))]
    pub attempts: Option<u32>,
    pub backoff: Option<Duration>,
    pub max_delay: Option<Duration>,
}

/// Models, gateways and agent runtimes, named once. `resources.yaml` beside the
/// definition has the same shape at its top level.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Model aliases to Bedrock model ids, with their prices when known.
    pub models: Option<BTreeMap<String, Model>>,
    pub gateways: Option<BTreeMap<String, Gateway>>,
    pub runtimes: Option<BTreeMap<String, Runtime>>,
}

/// A Bedrock model id, or the id with the model's prices, from which the
/// workers record what each call cost.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Model {
    Id(String),
    Priced(PricedModel),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PricedModel {
    /// The Bedrock model id (or inference profile).
    pub id: String,
    pub price_per_million_tokens: Option<TokenPrices>,
}

/// US dollars per million tokens, as the model's price list gives them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenPrices {
    #[schemars(range(min = 0))]
    pub input: f64,
    #[schemars(range(min = 0))]
    pub output: f64,
}

/// An AgentCore Gateway (MCP over Streamable HTTP).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    pub url: String,
    pub auth: Option<GatewayAuth>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum GatewayAuth {
    None,
    Sigv4,
    /// OAuth 2.0 client credentials; the secret comes from the environment.
    Oauth {
        token_url: String,
        client_id: String,
        client_secret_env: String,
        scope: Option<String>,
    },
}

/// An AgentCore Runtime.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    pub arn: String,
    pub qualifier: Option<String>,
}

/// One step: exactly one of `model`, `tool`, `agent`, `approval`, `wait` and
/// `workflow`, with optional modifiers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1))]
pub struct Step {
    pub description: Option<String>,
    pub model: Option<ModelStep>,
    pub tool: Option<ToolStep>,
    pub agent: Option<AgentStep>,
    pub approval: Option<ApprovalStep>,
    pub wait: Option<WaitStep>,
    pub workflow: Option<WorkflowStep>,
    /// Steps this one waits for, besides those its templates read.
    pub needs: Option<Needs>,
    /// A condition on earlier steps' outputs, such as
    /// `{{ steps.draft.output.confidence < 0.7 }}`; when false the step is skipped.
    pub when: Option<String>,
    /// A template naming an array a step produced; the step runs once per item.
    pub for_each: Option<String>,
    /// Run each item as its own task message through SQS rather than in a
    /// Map state: for thousands of items. Items and results stay in DynamoDB.
    pub wide: Option<bool>,
    /// How many items run at once (1 to 40; with `wide`, 1 to 10000).
    #[schemars(range(min = 1, max = 10000))]
    pub max_concurrency: Option<u64>,
    pub timeout: Option<Duration>,
    pub heartbeat: Option<Duration>,
    pub retry: Option<Retry>,
    pub on_error: Option<OnError>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Needs {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OnError {
    /// `fail` (the default) ends the job; `continue` goes on without this step.
    Simple(OnErrorWord),
    /// Run another step in place of this one.
    Fallback { fallback: String },
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnErrorWord {
    Fail,
    Continue,
}

/// A Bedrock Converse call.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelStep {
    pub model: Option<String>,
    pub system: Option<String>,
    pub prompt: String,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// Gateway tools the model may call, as `gateway.tool_name`.
    pub tools: Option<Vec<String>>,
    /// The answer must be JSON valid against this schema.
    pub output_schema: Option<Value>,
    pub max_tool_rounds: Option<u32>,
}

/// One MCP `tools/call`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolStep {
    pub gateway: String,
    pub name: String,
    pub arguments: Option<Value>,
}

/// An AgentCore Runtime invocation.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentStep {
    pub runtime: String,
    pub session: Option<SessionScope>,
    pub payload: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SessionScope {
    PerJob,
    PerStep,
}

/// A person answers through `garden approve`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalStep {
    pub notify: Option<String>,
    pub message: Option<String>,
}

/// A Step Functions Wait state: `seconds`, or `until` a timestamp.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    pub seconds: Option<u64>,
    pub until: Option<String>,
}

/// Another workflow, run as a child execution.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowStep {
    pub name: String,
    pub input: Option<Value>,
}

/// Submits a job on a schedule (EventBridge Scheduler): one of `cron`, `rate`, `at`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub name: String,
    pub description: Option<String>,
    /// Six fields: minutes hours day-of-month month day-of-week year.
    pub cron: Option<String>,
    /// Such as `5 minutes` or `1 day`.
    pub rate: Option<String>,
    /// A local date and time, such as `2026-12-24T09:00:00`.
    pub at: Option<String>,
    /// An IANA time zone, such as `Europe/London`.
    pub timezone: Option<String>,
    /// The job input.
    pub input: Option<Value>,
}
