//! Bedrock models through Converse.
//!
//! A model step sends its system text and prompt; with Gateway tools the model
//! may call them in a bounded loop (each `toolUse` becomes an MCP `tools/call`
//! and its result goes back as a `toolResult`). Structured output is asked the
//! Bedrock way: one tool whose input schema is the step's output schema, chosen
//! by `toolChoice`; the answer is that tool call's input, checked against the
//! schema, with one repair round that feeds the problems back to the model.
//! Each Converse call is retried on its own, so a throttle late in a tool loop
//! does not repeat the tools already called.

use std::collections::HashMap;

use aws_sdk_bedrockruntime::error::SdkError;
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::types::{
    AnyToolChoice, ContentBlock, ConversationRole, InferenceConfiguration, Message, SpecificToolChoice,
    SystemContentBlock, Tool, ToolChoice, ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock,
    ToolResultStatus, ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::{Document, Number};
use garden_workflows::wire::{Gateway, ModelAction, RetryPolicy, errors};
use serde_json::Value;
use tokio::time::Instant;

use super::{Failure, Outcome, classify_sdk_error, tool};
use crate::config::Context;
use crate::error::StepError;
use crate::retry::with_retry;
use crate::schema;

/// The tool a model answers through when the step has an output schema.
pub const OUTPUT_TOOL: &str = "garden_output";

/// Runs a model step with its templates already rendered.
pub async fn run(
    ctx: &Context,
    action: &ModelAction,
    system: Option<&str>,
    prompt: &str,
    policy: &RetryPolicy,
    deadline: Option<Instant>,
) -> Result<Outcome, Failure> {
    let listed = with_retry(policy, deadline, |_| tool_config(ctx, action)).await;
    let (config, tools) = listed.result.map_err(|error| Failure {
        error,
        attempts: listed.attempts,
    })?;
    let mut conversation = Conversation {
        ctx,
        action,
        system,
        outcome: Outcome::new(Value::Null, 0),
        tools,
    };
    let mut messages = vec![message(
        ConversationRole::User,
        vec![ContentBlock::Text(prompt.to_owned())],
    )];
    let mut rounds = 0;
    let mut repaired = false;
    loop {
        let retried = with_retry(policy, deadline, |_| conversation.converse(&messages, config.as_ref())).await;
        conversation.outcome.attempts += retried.attempts;
        let fail = |error: StepError, outcome: &Outcome| Failure {
            error,
            attempts: outcome.attempts,
        };
        let response = retried.result.map_err(|e| fail(e, &conversation.outcome))?;
        let reply = conversation
            .account(response)
            .map_err(|e| fail(e, &conversation.outcome))?;
        let uses: Vec<ToolUseBlock> = reply
            .content()
            .iter()
            .filter_map(|b| b.as_tool_use().ok().cloned())
            .collect();

        let answer = match (&action.output_schema, uses.iter().find(|u| u.name() == OUTPUT_TOOL)) {
            (Some(_), Some(call)) => Some(document_to_json(call.input())),
            (Some(_), None) if uses.is_empty() => Some(parse_text_answer(&reply_text(&reply))),
            (None, _) if uses.is_empty() => {
                conversation.outcome.output = Value::String(reply_text(&reply));
                return Ok(conversation.outcome);
            }
            _ => None,
        };
        let mut problems = None;
        if let (Some(schema), Some(answer)) = (&action.output_schema, answer) {
            match schema::check(schema, &answer) {
                Ok(()) => {
                    conversation.outcome.output = answer;
                    return Ok(conversation.outcome);
                }
                Err(found) if repaired => {
                    let error = StepError::terminal(
                        errors::INVALID_OUTPUT,
                        format!("the answer does not match the output schema: {}", found.join("; ")),
                    );
                    return Err(fail(error, &conversation.outcome));
                }
                Err(found) => {
                    repaired = true;
                    problems = Some(found.join("; "));
                }
            }
        } else {
            rounds += 1;
            if rounds > action.max_tool_rounds {
                let error = StepError::terminal(
                    errors::TOOL_LOOP_EXCEEDED,
                    format!("the model asked for more than {} tool rounds", action.max_tool_rounds),
                );
                return Err(fail(error, &conversation.outcome));
            }
        }

        messages.push(reply.clone());
        let mut results = Vec::new();
        for call in &uses {
            let block = if call.name() == OUTPUT_TOOL {
                let text = problems.clone().unwrap_or_else(|| "answer accepted".into());
                tool_result(call, ToolResultContentBlock::Text(repair_text(&text)), true)
            } else {
                conversation
                    .call_tool(call)
                    .await
                    .map_err(|e| fail(e, &conversation.outcome))?
            };
            results.push(ContentBlock::ToolResult(block));
        }
        if results.is_empty() {
            let text = repair_text(problems.as_deref().unwrap_or("no answer was given"));
            results.push(ContentBlock::Text(text));
        }
        messages.push(message(ConversationRole::User, results));
    }
}

struct Conversation<'a> {
    ctx: &'a Context,
    action: &'a ModelAction,
    system: Option<&'a str>,
    outcome: Outcome,
    /// Bedrock tool name to the gateway and MCP tool it stands for.
    tools: ToolMap,
}

/// Bedrock tool name to the gateway and MCP tool it stands for.
type ToolMap = HashMap<String, (Gateway, String)>;

impl Conversation<'_> {
    async fn converse(
        &self,
        messages: &[Message],
        tools: Option<&ToolConfiguration>,
    ) -> Result<ConverseOutput, StepError> {
        let inference = InferenceConfiguration::builder()
            .set_max_tokens(self.action.max_tokens.map(|n| n as i32))
            .set_temperature(self.action.temperature)
            .set_top_p(self.action.top_p)
            .build();
        self.ctx
            .clients
            .bedrock
            .converse()
            .model_id(&self.action.model_id)
            .set_system(self.system.map(|s| vec![SystemContentBlock::Text(s.to_owned())]))
            .set_messages(Some(messages.to_vec()))
            .inference_config(inference)
            .set_tool_config(tools.cloned())
            .send()
            .await
            .map_err(|e| classify(&e))
    }

    /// Adds a response's token usage and returns the assistant message.
    fn account(&mut self, response: ConverseOutput) -> Result<Message, StepError> {
        if let Some(usage) = response.usage() {
            self.outcome.input_tokens += usage.input_tokens().max(0) as u64;
            self.outcome.output_tokens += usage.output_tokens().max(0) as u64;
        }
        let stop = response.stop_reason().clone();
        match response.output.and_then(|o| o.as_message().ok().cloned()) {
            Some(reply) => Ok(reply),
            None => Err(StepError::unavailable(format!(
                "Bedrock answered without a message (stop reason {stop:?})"
            ))),
        }
    }

    async fn call_tool(&self, call: &ToolUseBlock) -> Result<ToolResultBlock, StepError> {
        let Some((gateway, name)) = self.tools.get(call.name()) else {
            let text = format!("there is no tool named `{}`", call.name());
            return Ok(tool_result(call, ToolResultContentBlock::Text(text), true));
        };
        let arguments = document_to_json(call.input());
        match self.ctx.gateways.call_raw(gateway, name, &arguments).await {
            Ok(result) => {
                let failed = result.is_error == Some(true);
                let content = match tool::result_value(&result) {
                    Value::String(text) => ToolResultContentBlock::Text(text),
                    value @ Value::Object(_) => ToolResultContentBlock::Json(json_to_document(&value)),
                    other => ToolResultContentBlock::Text(other.to_string()),
                };
                Ok(tool_result(call, content, failed))
            }
            // A tool that refuses the call is the model's problem to fix;
            // a gateway that is down fails the step.
            Err(error) if !error.transient => Ok(tool_result(call, ToolResultContentBlock::Text(error.message), true)),
            Err(error) => Err(error),
        }
    }
}

/// Names a Converse error by its modeled type first, then by code and status.
fn classify(err: &SdkError<ConverseError>) -> StepError {
    let base = classify_sdk_error("Bedrock", err);
    match err.as_service_error() {
        Some(ConverseError::ThrottlingException(_)) => StepError::throttled(base.message),
        Some(
            ConverseError::ServiceUnavailableException(_)
            | ConverseError::InternalServerException(_)
            | ConverseError::ModelNotReadyException(_)
            | ConverseError::ModelTimeoutException(_),
        ) => StepError::unavailable(base.message),
        Some(
            ConverseError::ValidationException(_)
            | ConverseError::AccessDeniedException(_)
            | ConverseError::ResourceNotFoundException(_)
            | ConverseError::ModelErrorException(_),
        ) => StepError::rejected(base.message),
        _ => base,
    }
}

/// The tools offered to the model: the step's Gateway tools (listed from
/// their gateways) and, with an output schema, the answer tool.
async fn tool_config(ctx: &Context, action: &ModelAction) -> Result<(Option<ToolConfiguration>, ToolMap), StepError> {
    let mut tools = ToolMap::new();
    let mut specs = Vec::new();
    for wanted in &action.tools {
        let listed = ctx.gateways.list_tools(&wanted.gateway).await?;
        let found = listed.iter().find(|t| t.name == wanted.name).ok_or_else(|| {
            StepError::rejected(format!(
                "gateway `{}` has no tool `{}`: check the step's tools",
                wanted.gateway.name, wanted.name
            ))
        })?;
        let name = bedrock_tool_name(&wanted.name);
        let schema = Value::Object((*found.input_schema).clone());
        specs.push(spec(
            &name,
            found.description.as_deref().unwrap_or(&wanted.name),
            &schema,
        )?);
        tools.insert(name, (wanted.gateway.clone(), wanted.name.clone()));
    }
    let choice = match &action.output_schema {
        Some(schema) => {
            specs.push(spec(
                OUTPUT_TOOL,
                "Give the final answer, matching this schema exactly.",
                schema,
            )?);
            if action.tools.is_empty() {
                let specific = SpecificToolChoice::builder()
                    .name(OUTPUT_TOOL)
                    .build()
                    .map_err(build_error)?;
                Some(ToolChoice::Tool(specific))
            } else {
                Some(ToolChoice::Any(AnyToolChoice::builder().build()))
            }
        }
        None => None,
    };
    if specs.is_empty() {
        return Ok((None, tools));
    }
    let config = ToolConfiguration::builder()
        .set_tools(Some(specs))
        .set_tool_choice(choice)
        .build()
        .map_err(build_error)?;
    Ok((Some(config), tools))
}

fn message(role: ConversationRole, content: Vec<ContentBlock>) -> Message {
    Message::builder()
        .role(role)
        .set_content(Some(content))
        .build()
        .expect("role and content are set")
}

fn spec(name: &str, description: &str, schema: &Value) -> Result<Tool, StepError> {
    let spec = ToolSpecification::builder()
        .name(name)
        .description(description)
        .input_schema(ToolInputSchema::Json(json_to_document(schema)))
        .build()
        .map_err(build_error)?;
    Ok(Tool::ToolSpec(spec))
}

fn tool_result(call: &ToolUseBlock, content: ToolResultContentBlock, failed: bool) -> ToolResultBlock {
    ToolResultBlock::builder()
        .tool_use_id(call.tool_use_id())
        .content(content)
        .set_status(failed.then_some(ToolResultStatus::Error))
        .build()
        .expect("tool use id and content are set")
}

fn build_error(err: aws_smithy_types::error::operation::BuildError) -> StepError {
    StepError::rejected(format!("the Converse request could not be built: {err}"))
}

fn repair_text(problems: &str) -> String {
    format!(
        "The answer does not match the required schema: {problems}. Call `{OUTPUT_TOOL}` again with a corrected answer."
    )
}

fn reply_text(reply: &Message) -> String {
    reply
        .content()
        .iter()
        .filter_map(|b| b.as_text().ok().map(String::as_str))
        .collect::<Vec<_>>()
        .join("")
}

/// A text answer where JSON was wanted: the JSON inside, fences removed.
fn parse_text_answer(text: &str) -> Value {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(inner.trim()).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Bedrock tool names are `[a-zA-Z0-9_-]{1,64}`.
fn bedrock_tool_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

pub fn json_to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or_default())
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(json_to_document).collect()),
        Value::Object(map) => Document::Object(map.iter().map(|(k, v)| (k.clone(), json_to_document(v))).collect()),
    }
}

pub fn document_to_json(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(document_to_json).collect()),
        Document::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), document_to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn documents_and_json_convert_both_ways() {
        let value = json!({"a": [1, -2, 2.5, "x", null, true], "b": {"c": {}}});
        assert_eq!(document_to_json(&json_to_document(&value)), value);
    }

    #[test]
    fn fenced_json_answers_are_read() {
        assert_eq!(parse_text_answer("```json\n{\"a\": 1}\n```"), json!({"a": 1}));
        assert_eq!(parse_text_answer("plain"), json!("plain"));
        assert_eq!(bedrock_tool_name("get-sum.v2"), "get-sum_v2");
    }
}
