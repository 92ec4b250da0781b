//! InvokeAgentRuntime: forwards the payload and the session header to the agent process's
//! `POST /invocations`, and streams its answer back (JSON or `text/event-stream`, with the agent's
//! content type), as AgentCore Runtime does for a deployed agent.
//!
//! An agent failure (an error status, or no agent listening) becomes a 424 `RuntimeClientError`,
//! which the SDK does not retry: a bare 500 would make the SDK run the agent three times.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::Shared;
use crate::error::ApiError;

const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";
/// Headers passed from the caller to the agent, besides the session header.
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "content-type",
    "accept",
    "x-amzn-bedrock-agentcore-runtime-user-id",
    "x-amzn-trace-id",
    "traceparent",
    "tracestate",
    "baggage",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
];
/// Headers passed from the agent's answer back to the caller.
const FORWARDED_RESPONSE_HEADERS: &[&str] = &["content-type", "mcp-session-id", "mcp-protocol-version"];

/// `POST /runtimes/{agentRuntimeArn}/invocations[?qualifier=...]`.
pub(super) async fn invoke(
    State(shared): State<Arc<Shared>>,
    Path(runtime_arn): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session_id = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let qualifier = query.get("qualifier").map(String::as_str).unwrap_or("DEFAULT");
    let span = tracing::info_span!("invocation", runtime = %runtime_arn, qualifier, session = ?session_id);

    {
        let mut stats = shared.stats();
        let invocations = &mut stats.invocations;
        invocations.calls += 1;
        *invocations.per_runtime.entry(runtime_arn.clone()).or_default() += 1;
        if let Some(session) = &session_id {
            *invocations.per_session.entry(session.clone()).or_default() += 1;
        }
    }

    let result = match check(&runtime_arn, session_id.as_deref()) {
        Ok(session_id) => {
            forward(&shared, session_id, &headers, body)
                .instrument(span.clone())
                .await
        }
        Err(error) => Err(error),
    };
    let mut stats = shared.stats();
    match result {
        Ok(response) => {
            stats.invocations.succeeded += 1;
            response
        }
        Err(error) => {
            stats.invocations.failed += 1;
            span.in_scope(|| tracing::warn!(%error, "invocation failed"));
            error.into_response()
        }
    }
}

/// The checks AgentCore makes before it reaches the agent.
fn check<'a>(runtime_arn: &str, session_id: Option<&'a str>) -> Result<&'a str, ApiError> {
    if runtime_arn.trim().is_empty() {
        return Err(ApiError::Validation("agentRuntimeArn must not be empty".to_owned()));
    }
    let Some(session_id) = session_id else {
        return Err(ApiError::Validation(format!("the {SESSION_HEADER} header is missing")));
    };
    if !(33..=256).contains(&session_id.len()) {
        return Err(ApiError::Validation(format!(
            "runtimeSessionId must be 33 to 256 characters long, got {} ({session_id:?})",
            session_id.len()
        )));
    }
    Ok(session_id)
}

async fn forward(shared: &Shared, session_id: &str, headers: &HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let url = format!("{}/invocations", shared.agent_url);
    let mut request = shared.http.post(&url).header(SESSION_HEADER, session_id).body(body);
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(value) = headers.get(*name) {
            request = request.header(*name, value.clone());
        }
    }

    let answer = request.send().await.map_err(|error| {
        ApiError::RuntimeClient(format!(
            "the agent process at {url} cannot be reached ({error}); start it, or point --agent-url at it"
        ))
    })?;
    let status = answer.status();
    if !status.is_success() {
        let text = answer.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(1000).collect();
        return Err(ApiError::RuntimeClient(format!(
            "Received error ({}) from runtime. Agent answer: {excerpt}",
            status.as_u16()
        )));
    }

    tracing::info!(status = status.as_u16(), content_type = ?answer.headers().get("content-type"), "agent answered");
    let mut response = Response::builder().status(StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::OK));
    for name in FORWARDED_RESPONSE_HEADERS {
        if let Some(value) = answer.headers().get(*name) {
            response = response.header(*name, value.as_bytes());
        }
    }
    response = response.header(
        SESSION_HEADER,
        HeaderValue::from_str(session_id).unwrap_or(HeaderValue::from_static("")),
    );
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .map_err(|error| ApiError::RuntimeClient(format!("cannot relay the agent's answer: {error}")))
}
