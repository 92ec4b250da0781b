//! What travels between the parts of Execution Garden at run time.
//!
//! The compiler writes these shapes into the state machine it emits, and the
//! dispatcher and the workers read them. Keeping them in one module is what lets
//! the two sides change together: a field renamed here breaks both at compile
//! time instead of one at run time.
//!
//! - [`JobMessage`]: the body of a message on the jobs queue.
//! - [`ExecutionInput`]: what the dispatcher starts an execution with.
//! - [`TaskMessage`]: the body Step Functions puts on a step kind's queue
//!   (`sqs:sendMessage.waitForTaskToken`), with the task token.
//! - [`TaskResult`]: what a worker answers with `SendTaskSuccess`.
//! - [`StepSpec`]: a resolved step, as the worker runs it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A message on the jobs queue: one job of one workflow.
///
/// The same message delivered twice makes one job: the job id is taken from
/// `job_id`, else derived from `idempotency_key`, else from the SQS message id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMessage {
    pub workflow: String,
    #[serde(default)]
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// The input of every execution. Small by design: the job's input and the
/// steps' outputs live in DynamoDB, and the state carries only references and
/// the few values that Choice rules read (`v`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionInput {
    pub job: JobRef,
    /// Values exported by finished steps for Choice rules, keyed by state-safe
    /// step name, then by export name.
    #[serde(default)]
    pub v: BTreeMap<String, BTreeMap<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRef {
    pub id: String,
    pub workflow: String,
}

/// The step kinds that run on a worker, one SQS queue each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Model,
    Tool,
    Agent,
    Approval,
    /// Bookkeeping done by the workers for the state machine, such as
    /// rendering the job's output.
    Control,
}

impl TaskKind {
    pub const ALL: [TaskKind; 5] = [
        TaskKind::Model,
        TaskKind::Tool,
        TaskKind::Agent,
        TaskKind::Approval,
        TaskKind::Control,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Model => "model",
            TaskKind::Tool => "tool",
            TaskKind::Agent => "agent",
            TaskKind::Approval => "approval",
            TaskKind::Control => "control",
        }
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of a task message, as the state machine sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMessage {
    /// The Step Functions task token (`$$.Task.Token`). Empty for messages no
    /// Task waits on: [`Action::Finished`] notices and the items of a
    /// [`Action::FanOut`], which answer through a gate instead.
    #[serde(default)]
    pub token: String,
    pub job_id: String,
    pub workflow: String,
    pub step: String,
    /// `$$.State.RetryCount`: how many times Step Functions retried this state.
    #[serde(default)]
    pub attempt: u32,
    /// The position in the `for_each` list, for one item of a fan-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u64>,
    pub spec: StepSpec,
    /// Values of this step's output that the state machine needs back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<Export>,
    /// Set on one item of a wide fan-out ([`Action::FanOut`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan: Option<FanItem>,
    /// The `for_each` steps this step may read: their output is the list of
    /// their items' outputs, `[]` when they had no items (and so no records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<String>,
}

/// What the worker of one wide fan-out item needs beyond the step: how many
/// items there are and how many may run at once. Item `i` is sent when item
/// `i - concurrency` has finished, so at most `concurrency` run at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanItem {
    pub total: u64,
    pub concurrency: u64,
    /// The queue the items go to (the step kind's queue).
    pub queue_url: String,
}

/// A value the worker must return in [`TaskResult::exports`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    /// The key in [`TaskResult::exports`]; a state-safe identifier.
    pub name: String,
    /// A path into the step's output, such as `confidence` or `sections`
    /// (empty for the whole output).
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub shape: ExportShape,
    /// For [`ExportShape::Indices`]: the most items the Map states of this
    /// workflow can run within one execution's history ([`errors::TOO_MANY_ITEMS`]
    /// beyond it, before the execution runs out of history part way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportShape {
    /// The value itself (numbers, booleans, short strings for Choice rules).
    #[default]
    Value,
    /// `[0, 1, ..., n-1]` for an array of length n: what a Map state iterates
    /// over, so that the items themselves stay in DynamoDB.
    Indices,
}

/// What a worker answers with `SendTaskSuccess`. Small by design.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u64>,
    /// The export name to its value; a missing path exports `null`.
    #[serde(default)]
    pub exports: BTreeMap<String, Value>,
}

/// A step, resolved: defaults applied and resources looked up. Strings and
/// JSON values may hold `{{ ... }}` templates that the worker renders (see
/// [`crate::template`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSpec {
    #[serde(flatten)]
    pub action: Action,
    /// The `for_each` template of a fan-out step (such as
    /// `{{ steps.outline.output.sections }}`): the worker renders it to find the
    /// element at [`TaskMessage::item`], which templates read as `item`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Seconds the whole step may take, all attempts included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Seconds between heartbeats the state machine expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Model(ModelAction),
    Tool(ToolAction),
    Agent(AgentAction),
    Approval(ApprovalAction),
    /// Render the workflow's `output` template and store it on the job item.
    Output {
        output: Value,
    },
    /// A join gate: the Task waits until every step in `deps` has finished.
    Gate(GateAction),
    /// A notice, sent without a task token, that a step finished: the worker
    /// counts it in each gate that waits on it and opens the gates it completes.
    Finished(FinishedAction),
    /// A wide `for_each`: one task message per item through SQS, completions
    /// counted in DynamoDB; the Task waits on one gate for all of them.
    FanOut(FanOutAction),
}

/// The dependencies a gated step waits for beyond what its place in the
/// state machine already guarantees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateAction {
    /// Step names.
    pub deps: Vec<String>,
    /// The state ids of the dependencies whose exported values the gate must
    /// return, as `{"v": {<id>: {...}}}`, because the step reads them in a
    /// `when` or `for_each` and they were exported in another branch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// The gates waiting on the step named in the [`TaskMessage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedAction {
    pub gates: Vec<GateWait>,
    /// The step's exported values, `{<id>: {...}}`, when a gate returns them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Value>,
}

/// One gate, as a finished dependency sees it: the waiting step and all that
/// it waits for (either side may create the gate item, so both carry the list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateWait {
    pub step: String,
    pub deps: Vec<String>,
}

/// A `for_each` run as one SQS task message per item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanOutAction {
    /// What each item runs; its `for_each` names the items.
    pub item: Box<StepSpec>,
    /// The most items in flight at once (`max_concurrency`).
    pub concurrency: u64,
    /// The queue of the item's kind.
    pub queue_url: String,
}

impl Action {
    pub fn kind(&self) -> TaskKind {
        match self {
            Action::Model(_) => TaskKind::Model,
            Action::Tool(_) => TaskKind::Tool,
            Action::Agent(_) => TaskKind::Agent,
            Action::Approval(_) => TaskKind::Approval,
            Action::Output { .. } | Action::Gate(_) | Action::Finished(_) | Action::FanOut(_) => TaskKind::Control,
        }
    }
}

/// A Bedrock Converse call, optionally with Gateway tools in a bounded loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelAction {
    pub model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Gateway tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<GatewayTool>,
    /// The most tool-use rounds before the step fails.
    #[serde(default = "default_tool_rounds")]
    pub max_tool_rounds: u32,
    /// When set, the answer must be JSON valid against this schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// The model's token prices, when `resources` gives them: the worker
    /// records what each call cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<TokenPrice>,
}

/// A model's prices, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenPrice {
    pub input: f64,
    pub output: f64,
}

impl TokenPrice {
    /// US dollars for this many tokens.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input + output_tokens as f64 * self.output) / 1_000_000.0
    }
}

fn default_tool_rounds() -> u32 {
    8
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayTool {
    pub gateway: Gateway,
    pub name: String,
}

/// One MCP `tools/call` on an AgentCore Gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolAction {
    pub gateway: Gateway,
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

/// An AgentCore Gateway (an MCP server over Streamable HTTP).
///
/// The worker uses `url` unless `GARDEN_GATEWAY_URL_<NAME>` is set (the name
/// upper-cased, `-` as `_`), the way `AWS_ENDPOINT_URL_<SERVICE>` overrides an
/// AWS endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gateway {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub auth: GatewayAuth,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayAuth {
    #[default]
    None,
    /// OAuth 2.0 client credentials; the secret is read from the environment
    /// variable named by `client_secret_env`, never from the definition.
    Oauth {
        token_url: String,
        client_id: String,
        client_secret_env: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
    /// AWS Signature Version 4 with the worker's credentials.
    Sigv4,
}

/// An AgentCore Runtime invocation.
///
/// Through the AgentCore SDK to `arn`, unless `GARDEN_RUNTIME_URL_<NAME>` is
/// set, in which case the worker speaks the runtime HTTP contract
/// (`POST /invocations`, `GET /ping`) to that agent process directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentAction {
    pub runtime: Runtime,
    #[serde(default)]
    pub session: SessionScope,
    #[serde(default)]
    pub payload: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    pub name: String,
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
}

/// How long one agent session lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionScope {
    /// One session for all agent steps of a job that name this runtime.
    #[default]
    PerJob,
    /// A new session for each step.
    PerStep,
}

/// A person answers through `garden approve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Retries a worker makes itself for transient provider failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub backoff_ms: u64,
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            backoff_ms: 2_000,
            max_delay_ms: 60_000,
        }
    }
}

/// Stable error names a worker sends with `SendTaskFailure`, for Retry and
/// Catch to match. The name says whether trying again can help.
pub mod errors {
    /// The provider kept throttling past the step's retry policy.
    pub const THROTTLED: &str = "Garden.Throttled";
    /// The provider kept failing with transient errors (5xx, timeouts).
    pub const PROVIDER_UNAVAILABLE: &str = "Garden.ProviderUnavailable";
    /// The provider refused the request; retrying the same request cannot help.
    pub const PROVIDER_REJECTED: &str = "Garden.ProviderRejected";
    /// The model's answer did not match the step's output schema, even after
    /// one repair attempt.
    pub const INVALID_OUTPUT: &str = "Garden.InvalidOutput";
    /// The MCP tool answered with `isError`.
    pub const TOOL_ERROR: &str = "Garden.ToolError";
    /// The agent process reported a failure.
    pub const AGENT_ERROR: &str = "Garden.AgentError";
    /// A template referenced something that does not exist at run time.
    pub const BAD_REFERENCE: &str = "Garden.BadReference";
    /// The model asked for more tool rounds than the step allows.
    pub const TOOL_LOOP_EXCEEDED: &str = "Garden.ToolLoopExceeded";
    /// A person rejected an approval step.
    pub const REJECTED: &str = "Garden.Rejected";
    /// The task message could not be read.
    pub const BAD_TASK: &str = "Garden.BadTask";
    /// A `for_each` over more items than a Map state of the workflow can run
    /// within one execution; the step that iterates needs `wide: true`.
    pub const TOO_MANY_ITEMS: &str = "Garden.TooManyItems";
    /// The values a step hands to the state machine are over the Step
    /// Functions payload limit.
    pub const ANSWER_TOO_LARGE: &str = "Garden.AnswerTooLarge";
    /// The workers kept failing on the task's message (DynamoDB, Step
    /// Functions or SQS errors) until its last delivery.
    pub const WORKER_FAILED: &str = "Garden.WorkerFailed";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_message_reads_back_what_was_written() {
        let message = TaskMessage {
            token: "t".into(),
            job_id: "j".into(),
            workflow: "w".into(),
            step: "s".into(),
            attempt: 0,
            item: Some(2),
            spec: StepSpec {
                action: Action::Tool(ToolAction {
                    gateway: Gateway {
                        name: "finance".into(),
                        url: "http://127.0.0.1:4620/mcp".into(),
                        auth: GatewayAuth::None,
                    },
                    name: "calculate_npv".into(),
                    arguments: serde_json::json!({"rate": "{{ input.rate }}"}),
                }),
                for_each: None,
                retry: RetryPolicy::default(),
                timeout_secs: Some(60),
                heartbeat_secs: None,
            },
            exports: vec![Export {
                name: "npv".into(),
                path: "npv".into(),
                shape: ExportShape::Value,
                max_items: None,
            }],
            fan: None,
            lists: Vec::new(),
        };
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["spec"]["kind"], "tool");
        assert_eq!(json["spec"]["gateway"]["auth"]["type"], "none");
        let back: TaskMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, message);
    }

    #[test]
    fn a_job_message_with_an_unknown_field_is_refused() {
        let err = serde_json::from_str::<JobMessage>(r#"{"workflow":"w","inptu":{}}"#).unwrap_err();
        assert!(err.to_string().contains("inptu"), "{err}");
    }
}
