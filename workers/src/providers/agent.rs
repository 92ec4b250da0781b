//! AgentCore Runtime agents: `InvokeAgentRuntime` through the SDK, or the
//! runtime HTTP contract spoken directly to an agent process when
//! `GARDEN_RUNTIME_URL_<NAME>` is set (`POST /invocations`, `GET /ping`).
//!
//! Sessions: the session id is stable per job and runtime (`per-job`), or per
//! step (`per-step`), so an agent keeps its memory across the steps of a job.
//! Answers are JSON or Server-Sent Events (`data: <json>` lines). Of a stream,
//! the output is the last event when it is an object or array (streaming
//! agents send deltas, then the complete answer), the joined text when every
//! event is a string, else all events as an array. A final event carrying
//! `error` is the agent reporting a failure: `Garden.AgentError`.

use std::collections::HashSet;

use aws_sdk_bedrockagentcore::operation::invoke_agent_runtime::InvokeAgentRuntimeError;
use garden_workflows::wire::{AgentAction, Runtime, SessionScope, errors};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::classify_sdk_error;
use super::tool::env_name;
use crate::config::Context;
use crate::error::StepError;

/// The session header of the runtime HTTP contract.
pub const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";

/// Agent processes seen healthy (direct mode pings each once).
#[derive(Default)]
pub struct Runtimes {
    healthy: Mutex<HashSet<String>>,
}

/// `GARDEN_RUNTIME_URL_<NAME>`, when set.
pub fn runtime_url(runtime: &Runtime) -> Option<String> {
    std::env::var(format!("GARDEN_RUNTIME_URL_{}", env_name(&runtime.name)))
        .ok()
        .filter(|url| !url.is_empty())
        .map(|url| url.trim_end_matches('/').to_owned())
}

/// A session id of 33-256 characters, the same for every call of one scope.
pub fn session_id(job_id: &str, runtime: &str, scope: SessionScope, step: &str, item: Option<u64>) -> String {
    let base = match (scope, item) {
        (SessionScope::PerJob, _) => format!("garden-{job_id}-{runtime}"),
        (SessionScope::PerStep, None) => format!("garden-{job_id}-{runtime}-{step}"),
        (SessionScope::PerStep, Some(index)) => format!("garden-{job_id}-{runtime}-{step}-{index}"),
    };
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let digest = hex::encode(Sha256::digest(base.as_bytes()));
    if clean.len() < 33 {
        format!("{clean}-{}", &digest[..32])
    } else if clean.len() > 256 {
        format!("{}-{}", &clean[..200], &digest[..32])
    } else {
        clean
    }
}

/// Invokes the agent once with a rendered payload.
pub async fn invoke(ctx: &Context, action: &AgentAction, payload: &Value, session: &str) -> Result<Value, StepError> {
    let body = serde_json::to_vec(payload).unwrap_or_default();
    match runtime_url(&action.runtime) {
        Some(url) => invoke_direct(ctx, &action.runtime, &url, body, session).await,
        None => invoke_sdk(ctx, &action.runtime, body, session).await,
    }
}

async fn invoke_sdk(ctx: &Context, runtime: &Runtime, body: Vec<u8>, session: &str) -> Result<Value, StepError> {
    let result = ctx
        .clients
        .agentcore
        .invoke_agent_runtime()
        .agent_runtime_arn(&runtime.arn)
        .set_qualifier(runtime.qualifier.clone())
        .runtime_session_id(session)
        .content_type("application/json")
        .accept("application/json, text/event-stream")
        .payload(aws_smithy_types::Blob::new(body))
        .send()
        .await;
    let output = match result {
        Ok(output) => output,
        Err(err) => {
            if let Some(InvokeAgentRuntimeError::RuntimeClientError(e)) = err.as_service_error() {
                return Err(StepError::terminal(
                    errors::AGENT_ERROR,
                    format!(
                        "agent `{}` failed: {}",
                        runtime.name,
                        e.message().unwrap_or("no message")
                    ),
                ));
            }
            let base = classify_sdk_error("AgentCore Runtime", &err);
            return Err(match err.as_service_error() {
                Some(
                    InvokeAgentRuntimeError::ThrottlingException(_)
                    | InvokeAgentRuntimeError::ServiceQuotaExceededException(_),
                ) => StepError::throttled(base.message),
                Some(
                    InvokeAgentRuntimeError::InternalServerException(_)
                    | InvokeAgentRuntimeError::RetryableConflictException(_),
                ) => StepError::unavailable(base.message),
                Some(
                    InvokeAgentRuntimeError::ValidationException(_)
                    | InvokeAgentRuntimeError::AccessDeniedException(_)
                    | InvokeAgentRuntimeError::ResourceNotFoundException(_),
                ) => StepError::rejected(base.message),
                _ => base,
            });
        }
    };
    let bytes = output
        .response
        .collect()
        .await
        .map_err(|e| StepError::unavailable(format!("agent `{}` answer was cut off: {e}", runtime.name)))?
        .into_bytes();
    parse_answer(&runtime.name, &output.content_type, &bytes)
}

/// Invokes an agent process at `url` over the runtime HTTP contract (what
/// `GARDEN_RUNTIME_URL_<NAME>` selects).
pub async fn invoke_at(
    ctx: &Context,
    runtime: &Runtime,
    url: &str,
    payload: &Value,
    session: &str,
) -> Result<Value, StepError> {
    let body = serde_json::to_vec(payload).unwrap_or_default();
    invoke_direct(ctx, runtime, url.trim_end_matches('/'), body, session).await
}

async fn invoke_direct(
    ctx: &Context,
    runtime: &Runtime,
    url: &str,
    body: Vec<u8>,
    session: &str,
) -> Result<Value, StepError> {
    if !ctx.runtimes.healthy.lock().await.contains(url) {
        ping(&ctx.http, &runtime.name, url).await?;
        ctx.runtimes.healthy.lock().await.insert(url.to_owned());
    }
    let response = ctx
        .http
        .post(format!("{url}/invocations"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header(SESSION_HEADER, session)
        .body(body)
        .send()
        .await
        .map_err(|e| StepError::unavailable(format!("agent `{}` at {url} could not be reached: {e}", runtime.name)))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| StepError::unavailable(format!("agent `{}` answer was cut off: {e}", runtime.name)))?;
    if status.is_success() {
        return parse_answer(&runtime.name, &content_type, &bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("error").or_else(|| v.get("message")).cloned())
        .map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))
        .unwrap_or_else(|| text.into_owned());
    let text = format!("agent `{}` answered {status}: {message}", runtime.name);
    Err(match status.as_u16() {
        429 => StepError::throttled(text),
        500 | 424 => StepError::terminal(errors::AGENT_ERROR, text),
        502..=504 => StepError::unavailable(text),
        _ => StepError::rejected(text),
    })
}

/// `GET /ping`: the agent process is up and healthy.
pub async fn ping(http: &reqwest::Client, name: &str, url: &str) -> Result<(), StepError> {
    let response = http
        .get(format!("{url}/ping"))
        .send()
        .await
        .map_err(|e| StepError::unavailable(format!("agent `{name}` at {url} does not answer /ping: {e}")))?;
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    match answer.get("status").and_then(Value::as_str) {
        Some("Healthy" | "HealthyBusy") => Ok(()),
        _ => Err(StepError::unavailable(format!(
            "agent `{name}` at {url} is not healthy: {answer}"
        ))),
    }
}

/// Reads an agent's answer: SSE events (joined), or JSON, or text.
pub fn parse_answer(runtime: &str, content_type: &str, body: &[u8]) -> Result<Value, StepError> {
    let text = String::from_utf8_lossy(body);
    let is_sse = content_type.starts_with("text/event-stream") || text.trim_start().starts_with("data:");
    if !is_sse {
        return Ok(serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned())));
    }
    let events: Vec<Value> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| {
            let data = data.trim();
            serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned()))
        })
        .collect();
    if let Some(last) = events.last()
        && let Some(failure) = last.get("error").filter(|e| !e.is_null())
    {
        let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
        let mut message = text(failure);
        if let Some(kind) = last.get("error_type") {
            message = format!("{}: {message}", text(kind));
        }
        if let Some(detail) = last.get("message") {
            message = format!("{message} ({})", text(detail));
        }
        return Err(StepError::terminal(
            errors::AGENT_ERROR,
            format!("agent `{runtime}` failed: {message}"),
        ));
    }
    Ok(if events.iter().all(Value::is_string) && !events.is_empty() {
        Value::String(events.iter().filter_map(Value::as_str).collect::<String>())
    } else {
        match events.last() {
            Some(last @ (Value::Object(_) | Value::Array(_))) => last.clone(),
            Some(_) => Value::Array(events),
            None => Value::Null,
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn session_ids_are_stable_and_sized_for_the_service() {
        let a = session_id("k-1", "writer", SessionScope::PerJob, "draft", None);
        let b = session_id("k-1", "writer", SessionScope::PerJob, "review", None);
        assert_eq!(a, b, "one session per job and runtime");
        assert!((33..=256).contains(&a.len()), "{a}");
        let step = session_id("k-1", "writer", SessionScope::PerStep, "draft", None);
        assert_ne!(a, step);
        let long = session_id(&"x".repeat(300), "writer", SessionScope::PerJob, "s", None);
        assert!((33..=256).contains(&long.len()));
    }

    #[test]
    fn sse_answers_are_joined_and_errors_are_named() {
        let body = b"data: \"Hello\"\n\ndata: \" world\"\n\n";
        assert_eq!(
            parse_answer("w", "text/event-stream", body).unwrap(),
            json!("Hello world")
        );
        let body = b"data: {\"a\": 1}\n\n";
        assert_eq!(parse_answer("w", "text/event-stream", body).unwrap(), json!({"a": 1}));
        let body = b"data: \"partial\"\n\ndata: {\"error\": \"boom\", \"error_type\": \"ValueError\", \"message\": \"bad input\"}\n\n";
        let err = parse_answer("w", "text/event-stream", body).unwrap_err();
        assert_eq!(err.name, errors::AGENT_ERROR);
        assert!(err.message.contains("bad input"), "{}", err.message);
        assert_eq!(
            parse_answer("w", "application/json", b"{\"x\":2}").unwrap(),
            json!({"x": 2})
        );
    }
}
