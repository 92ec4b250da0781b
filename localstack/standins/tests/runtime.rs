//! AgentCore Runtime InvokeAgentRuntime through the real `aws-sdk-bedrockagentcore` client, forwarded
//! by the stand-in to a small agent process served in the test.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_bedrockagentcore::Client;
use aws_sdk_bedrockagentcore::primitives::Blob;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::{sdk_config, serve_router, start_converse, stats};
use garden_standins::ConverseConfig;
use serde_json::{Value, json};

const ARN: &str = "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/writer-AbCdEf1234";
const SESSION: &str = "job-0123456789abcdef0123456789abcdef-draft";

/// The agent process contract: `POST /invocations` answers JSON, SSE or a 500 by the payload's mode.
async fn agent(State(calls): State<Arc<AtomicUsize>>, headers: HeaderMap, Json(payload): Json<Value>) -> Response {
    calls.fetch_add(1, Ordering::SeqCst);
    let session = headers
        .get("x-amzn-bedrock-agentcore-runtime-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    match payload["mode"].as_str() {
        Some("stream") => {
            let events: String = (1..=3)
                .map(|n| format!("data: {}\n\n", json!({ "chunk": n, "session": session })))
                .collect();
            ([("content-type", "text/event-stream")], events).into_response()
        }
        Some("fail") => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": "the agent raised ValueError" })),
        )
            .into_response(),
        _ => Json(json!({ "echo": payload, "session": session })).into_response(),
    }
}

async fn setup() -> (Client, String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let router = axum::Router::new()
        .route("/invocations", post(agent))
        .with_state(calls.clone());
    let agent_addr = serve_router(router).await;
    let standin = start_converse(ConverseConfig {
        agent_url: format!("http://{agent_addr}"),
        ..Default::default()
    })
    .await;
    let client = Client::new(&sdk_config(&standin.url, 3).await);
    (client, standin.url, calls)
}

fn invoke(
    client: &Client,
    payload: Value,
) -> aws_sdk_bedrockagentcore::operation::invoke_agent_runtime::builders::InvokeAgentRuntimeFluentBuilder {
    client
        .invoke_agent_runtime()
        .agent_runtime_arn(ARN)
        .runtime_session_id(SESSION)
        .content_type("application/json")
        .payload(Blob::new(payload.to_string()))
}

#[tokio::test]
async fn json_answers_come_back_with_the_session() {
    let (client, url, calls) = setup().await;

    let out = invoke(&client, json!({ "prompt": "draft the brief" }))
        .qualifier("DEFAULT")
        .send()
        .await
        .unwrap();
    assert_eq!(out.content_type(), "application/json");
    assert_eq!(out.runtime_session_id(), Some(SESSION));
    assert_eq!(out.status_code(), Some(200));
    let body = out.response.collect().await.unwrap().into_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({ "echo": { "prompt": "draft the brief" }, "session": SESSION })
    );

    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = stats(&url).await;
    assert_eq!(stats["invocations"]["succeeded"], 1);
    assert_eq!(stats["invocations"]["per_runtime"][ARN], 1);
    assert_eq!(stats["invocations"]["per_session"][SESSION], 1);
}

#[tokio::test]
async fn event_streams_pass_through_unchanged() {
    let (client, _url, _calls) = setup().await;

    let out = invoke(&client, json!({ "mode": "stream" }))
        .accept("text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(out.content_type(), "text/event-stream");
    let body = out.response.collect().await.unwrap().into_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.len(), 3, "{text}");
    assert_eq!(events[2], json!({ "chunk": 3, "session": SESSION }));
}

#[tokio::test]
async fn agent_failures_are_runtime_client_errors_and_run_once() {
    let (client, url, calls) = setup().await;

    let error = invoke(&client, json!({ "mode": "fail" }))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_runtime_client_error(), "{error:?}");
    let message = error.meta().message().unwrap();
    assert!(message.contains("(500)") && message.contains("ValueError"), "{message}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the SDK must not retry an agent failure"
    );
    assert_eq!(stats(&url).await["invocations"]["failed"], 1);
}

#[tokio::test]
async fn an_unreachable_agent_is_a_runtime_client_error() {
    // A port that was free a moment ago: nothing listens there.
    let listener = garden_standins::bind_loopback(0).await.unwrap();
    let agent_url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let standin = start_converse(ConverseConfig {
        agent_url,
        ..Default::default()
    })
    .await;
    let client = Client::new(&sdk_config(&standin.url, 3).await);

    let error = invoke(&client, json!({}))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_runtime_client_error(), "{error:?}");
    assert!(error.meta().message().unwrap().contains("cannot be reached"));
    assert_eq!(stats(&standin.url).await["invocations"]["calls"], 1);
}

#[tokio::test]
async fn short_session_ids_are_refused_as_aws_does() {
    let (client, _url, calls) = setup().await;

    let error = client
        .invoke_agent_runtime()
        .agent_runtime_arn(ARN)
        .runtime_session_id("too-short")
        .payload(Blob::new("{}"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_validation_exception(), "{error:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
