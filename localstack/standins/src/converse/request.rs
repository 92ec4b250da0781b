//! A Converse request body, read and checked the way Bedrock checks it, so that a request the real
//! service would refuse with a `ValidationException` is refused here too.

use std::collections::HashMap;

use serde_json::Value;

use super::words::key_words;
use crate::error::ApiError;

/// A tool offered in `toolConfig.tools`.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: String,
    pub input_schema: Value,
}

/// `toolConfig.toolChoice`.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Auto,
    Any,
    Tool(String),
}

/// What the stand-in model needs from a request.
#[derive(Debug)]
pub struct ConverseRequest {
    pub tools: Vec<Tool>,
    pub choice: ToolChoice,
    /// Key words of the last user message that has text (else of the system prompt).
    pub words: Vec<String>,
    /// Characters of prompt, conversation and tool definitions, for the token estimate.
    pub input_chars: usize,
    pub max_tokens: Option<u64>,
    /// The last `toolResult` of the conversation: the tool's name and the result as text.
    tool_result: Option<(String, String)>,
    /// Names of the tools the conversation has called so far.
    called: Vec<String>,
}

impl ConverseRequest {
    /// Reads a request body as JSON with its object keys sorted: the SDK sends documents (tool
    /// schemas, tool inputs) from hash maps, so the same request can arrive with its keys in any
    /// order, and the answer and the request hash must not depend on that.
    pub fn canonical_json(body: &[u8]) -> Result<Value, ApiError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| invalid(format!("the request body is not valid JSON: {e}")))?;
        Ok(sorted(value))
    }

    /// Checks a request body, read by [`Self::canonical_json`].
    pub fn parse(body: &Value) -> Result<Self, ApiError> {
        let Some(body) = body.as_object() else {
            return Err(invalid("the request body must be a JSON object"));
        };

        let messages = body.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty());
        let Some(messages) = messages else {
            return Err(invalid("messages: the conversation must contain at least one message"));
        };
        let system_text = system_text(body.get("system"))?;
        let mut input_chars = system_text.len();
        let mut tool_names: HashMap<String, String> = HashMap::new();
        let mut tool_result = None;
        let mut uses_tools = false;
        let mut last_user_text = String::new();

        for (index, message) in messages.iter().enumerate() {
            let role = message.get("role").and_then(Value::as_str);
            if !matches!(role, Some("user" | "assistant")) {
                return Err(invalid(format!("messages.{index}.role must be user or assistant")));
            }
            if index == 0 && role != Some("user") {
                return Err(invalid(
                    "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
                ));
            }
            let content = message
                .get("content")
                .and_then(Value::as_array)
                .filter(|c| !c.is_empty());
            let Some(content) = content else {
                return Err(invalid(format!(
                    "The content field in the Message object at messages.{index} is empty. Add a ContentBlock object to the content field and try again."
                )));
            };
            let mut text = String::new();
            for block in content {
                if let Some(t) = block.get("text").and_then(Value::as_str) {
                    text.push_str(t);
                    text.push('\n');
                }
                if let Some(tool_use) = block.get("toolUse") {
                    uses_tools = true;
                    let id = tool_use.get("toolUseId").and_then(Value::as_str).unwrap_or_default();
                    let name = tool_use.get("name").and_then(Value::as_str).unwrap_or_default();
                    tool_names.insert(id.to_owned(), name.to_owned());
                    input_chars += tool_use.to_string().len();
                }
                if let Some(result) = block.get("toolResult") {
                    uses_tools = true;
                    let id = result.get("toolUseId").and_then(Value::as_str).unwrap_or_default();
                    let Some(name) = tool_names.get(id) else {
                        return Err(invalid(format!(
                            "messages.{index}: the toolResult's toolUseId {id:?} does not match any toolUse of an earlier assistant message"
                        )));
                    };
                    let result_text = tool_result_text(result);
                    input_chars += result_text.len();
                    tool_result = Some((name.clone(), result_text));
                }
            }
            input_chars += text.len();
            if role == Some("user") && !text.trim().is_empty() {
                last_user_text = text;
            }
        }

        let (tools, choice) = tool_config(body.get("toolConfig"), uses_tools)?;
        input_chars += body.get("toolConfig").map_or(0, |c| c.to_string().len());
        let max_tokens = match body.get("inferenceConfig").and_then(|c| c.get("maxTokens")) {
            None | Some(Value::Null) => None,
            Some(value) => match value.as_u64().filter(|m| *m >= 1) {
                Some(max) => Some(max),
                None => return Err(invalid("inferenceConfig.maxTokens must be an integer of at least 1")),
            },
        };

        let mut words = key_words(&last_user_text);
        if words.is_empty() {
            words = key_words(&system_text);
        }
        Ok(Self {
            tools,
            choice,
            words,
            input_chars,
            max_tokens,
            tool_result,
            called: tool_names.into_values().collect(),
        })
    }

    /// The tool the model calls now, if any.
    pub fn tool_to_call(&self) -> Option<&Tool> {
        match &self.choice {
            ToolChoice::Tool(name) => self.tools.iter().find(|t| &t.name == name),
            // A tool must be called: the first one not called yet, as a model works through its
            // tools before it gives the answer (with structured output, the answer tool comes last);
            // once all were called, the last one again.
            ToolChoice::Any => {
                let fresh = self.tools.iter().find(|t| !self.called.contains(&t.name));
                fresh.or(self.tools.last())
            }
            ToolChoice::Auto if self.tool_result.is_none() => self.tools.first(),
            ToolChoice::Auto => None,
        }
    }

    /// The last tool result of the conversation, as (tool name, text).
    pub fn last_tool_result(&self) -> Option<(String, String)> {
        self.tool_result.clone()
    }
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Validation(message.into())
}

fn system_text(system: Option<&Value>) -> Result<String, ApiError> {
    match system {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::Array(blocks)) => Ok(blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")),
        Some(_) => Err(invalid("system must be a list of system content blocks")),
    }
}

fn tool_result_text(result: &Value) -> String {
    let parts = result.get("content").and_then(Value::as_array).into_iter().flatten();
    let texts: Vec<String> = parts
        .filter_map(|part| match (part.get("text"), part.get("json")) {
            (Some(Value::String(text)), _) => Some(text.clone()),
            (_, Some(json)) => Some(json.to_string()),
            _ => None,
        })
        .collect();
    texts.join(" ")
}

fn tool_config(config: Option<&Value>, uses_tools: bool) -> Result<(Vec<Tool>, ToolChoice), ApiError> {
    let Some(config) = config.filter(|c| !c.is_null()) else {
        if uses_tools {
            return Err(invalid(
                "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
            ));
        }
        return Ok((Vec::new(), ToolChoice::Auto));
    };

    let entries = config.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty());
    let Some(entries) = entries else {
        return Err(invalid("toolConfig.tools must contain at least one tool"));
    };
    let mut tools = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let Some(spec) = entry.get("toolSpec") else { continue };
        let name = spec.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
        let Some(name) = name else {
            return Err(invalid(format!(
                "toolConfig.tools.{index}.toolSpec.name must not be empty"
            )));
        };
        let schema = spec
            .get("inputSchema")
            .and_then(|s| s.get("json"))
            .filter(|s| s.is_object());
        let Some(schema) = schema else {
            return Err(invalid(format!(
                "toolConfig.tools.{index}.toolSpec.inputSchema.json must be a JSON Schema object"
            )));
        };
        if tools.iter().any(|t: &Tool| t.name == name) {
            return Err(invalid(format!("toolConfig.tools: the tool name {name} is used twice")));
        }
        tools.push(Tool {
            name: name.to_owned(),
            input_schema: schema.clone(),
        });
    }

    let choice = match config.get("toolChoice") {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(choice) if choice.get("auto").is_some() => ToolChoice::Auto,
        Some(choice) if choice.get("any").is_some() => ToolChoice::Any,
        Some(choice) => match choice.get("tool").and_then(|t| t.get("name")).and_then(Value::as_str) {
            Some(name) if tools.iter().any(|t| t.name == name) => ToolChoice::Tool(name.to_owned()),
            Some(name) => {
                return Err(invalid(format!(
                    "toolConfig.toolChoice names the tool {name}, which is not in toolConfig.tools"
                )));
            }
            None => return Err(invalid("toolConfig.toolChoice must be one of auto, any or tool {name}")),
        },
    };
    Ok((tools, choice))
}
