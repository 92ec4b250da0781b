//! The tool provider against a real MCP server: `@modelcontextprotocol/server-everything`
//! over Streamable HTTP on 127.0.0.1:4640 (install it with
//! `npm ci --prefix workers/tests/mcp`).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::Client as Bedrock;
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, Message, StopReason, ToolUseBlock};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use garden_workers::providers::model::{self, json_to_document};
use garden_workers::providers::tool::{Gateways, Signing};
use garden_workers::{Clients, Context, Settings};
use garden_workflows::wire::{Gateway, GatewayAuth, GatewayTool, ModelAction, RetryPolicy, errors};
use serde_json::{Value, json};

const PORT: u16 = 4640;

/// The server process, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server() -> Server {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp");
    let entry = dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        entry.exists(),
        "the MCP test server is not installed: run `npm ci --prefix workers/tests/mcp` (missing {})",
        entry.display()
    );
    let child = Command::new("node")
        .arg("--require")
        .arg(dir.join("loopback.cjs"))
        .arg(&entry)
        .arg("streamableHttp")
        .env("PORT", PORT.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts: install Node.js 20 or newer");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", PORT)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the MCP test server did not listen on {PORT} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn gateway() -> Gateway {
    Gateway {
        name: "everything".into(),
        url: format!("http://127.0.0.1:{PORT}/mcp"),
        auth: GatewayAuth::None,
    }
}

#[tokio::test]
async fn tool_calls_against_server_everything() {
    let _server = start_server();
    let gateways = Gateways::new(reqwest::Client::new());
    let gateway = gateway();

    let tools = gateways.list_tools(&gateway).await.expect("tools/list answers");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"echo") && names.contains(&"get-sum"), "{names:?}");

    let echoed = gateways
        .call(&gateway, "echo", &json!({"message": "hello garden"}))
        .await
        .unwrap();
    assert_eq!(echoed, Value::String("Echo: hello garden".into()));

    let sum = gateways
        .call(&gateway, "get-sum", &json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    let text = match &sum {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    assert!(text.contains("42"), "{sum}");

    let unknown = gateways.call(&gateway, "no-such-tool", &json!({})).await.unwrap_err();
    assert_eq!(unknown.name, errors::TOOL_ERROR);
    assert!(!unknown.transient);
    assert!(unknown.message.contains("no-such-tool"), "{}", unknown.message);

    let invalid = gateways
        .call(&gateway, "get-sum", &json!({"a": "two"}))
        .await
        .unwrap_err();
    assert_eq!(invalid.name, errors::TOOL_ERROR);
    assert!(!invalid.transient);

    let not_object = gateways.call(&gateway, "echo", &json!([1, 2])).await.unwrap_err();
    assert_eq!(not_object.name, errors::PROVIDER_REJECTED);

    // The session is reused: one more call still works.
    let again = gateways
        .call(&gateway, "echo", &json!({"message": "again"}))
        .await
        .unwrap();
    assert_eq!(again, Value::String("Echo: again".into()));

    a_sigv4_gateway_is_called_with_signed_requests().await;
    a_model_uses_gateway_tools().await;
    a_model_that_never_stops_calling_tools_is_cut_off().await;
}

fn context(bedrock: &Rule) -> Context {
    let once = aws_config::retry::RetryConfig::standard().with_max_attempts(1);
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let mut clients = Clients::from_sdk_config(&sdk);
    clients.bedrock = mock_client!(aws_sdk_bedrockruntime, RuleMode::Sequential, [bedrock], |c| c
        .retry_config(once.clone()));
    Context::new(Settings::default(), clients)
}

fn tool_call(name: &str, input: Value) -> ConverseOutput {
    let call = ToolUseBlock::builder()
        .tool_use_id(format!("call-{}", fastrand::u32(..)))
        .name(name)
        .input(json_to_document(&input))
        .build()
        .unwrap();
    reply(ContentBlock::ToolUse(call), StopReason::ToolUse)
}

fn reply(block: ContentBlock, stop: StopReason) -> ConverseOutput {
    let message = Message::builder()
        .role(ConversationRole::Assistant)
        .content(block)
        .build()
        .unwrap();
    ConverseOutput::builder()
        .output(aws_sdk_bedrockruntime::types::ConverseOutput::Message(message))
        .stop_reason(stop)
        .build()
        .unwrap()
}

fn model_action(max_tool_rounds: u32) -> ModelAction {
    ModelAction {
        model_id: "anthropic.claude-3-5-haiku-20241022-v1:0".into(),
        system: None,
        prompt: "Add 2 and 3.".into(),
        max_tokens: Some(200),
        temperature: None,
        top_p: None,
        tools: vec![GatewayTool {
            gateway: gateway(),
            name: "get-sum".into(),
        }],
        max_tool_rounds,
        output_schema: None,
        price: None,
    }
}

/// The model calls `get-sum` through the gateway and answers with its result.
async fn a_model_uses_gateway_tools() {
    let converse = mock!(Bedrock::converse)
        .sequence()
        .output(|| tool_call("get-sum", json!({"a": 2, "b": 3})))
        .output(|| reply(ContentBlock::Text("The sum is 5.".into()), StopReason::EndTurn))
        .build();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let saw = seen.clone();
    let converse_seen = mock!(Bedrock::converse)
        .match_requests(move |r| {
            if let Some(ContentBlock::ToolResult(result)) = r.messages().last().and_then(|m| m.content().first()) {
                *saw.lock().unwrap() = format!("{:?}", result.content());
            }
            false
        })
        .then_output(|| reply(ContentBlock::Text("unused".into()), StopReason::EndTurn));
    let ctx = context_with(&[&converse_seen, &converse]);
    let outcome = model::run(
        &ctx,
        &model_action(4),
        None,
        "Add 2 and 3.",
        &RetryPolicy::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(outcome.output, json!("The sum is 5."));
    assert_eq!(converse.num_calls(), 2);
    assert!(
        seen.lock().unwrap().contains('5'),
        "the tool's result went back: {}",
        seen.lock().unwrap()
    );
}

fn context_with(rules: &[&Rule]) -> Context {
    let once = aws_config::retry::RetryConfig::standard().with_max_attempts(1);
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let mut clients = Clients::from_sdk_config(&sdk);
    clients.bedrock = mock_client!(aws_sdk_bedrockruntime, RuleMode::MatchAny, rules.iter().copied(), |c| c
        .retry_config(once.clone()));
    Context::new(Settings::default(), clients)
}

/// A model that keeps asking for tools is stopped after `max_tool_rounds`.
async fn a_model_that_never_stops_calling_tools_is_cut_off() {
    let converse = mock!(Bedrock::converse)
        .sequence()
        .output(|| tool_call("get-sum", json!({"a": 1, "b": 1})))
        .repeatedly()
        .build();
    let ctx = context(&converse);
    let failure = model::run(&ctx, &model_action(2), None, "Loop.", &RetryPolicy::default(), None)
        .await
        .unwrap_err();
    assert_eq!(failure.error.name, errors::TOOL_LOOP_EXCEEDED);
    assert_eq!(
        converse.num_calls(),
        3,
        "two rounds allowed, the third request is refused"
    );
}

#[tokio::test]
async fn an_unreachable_gateway_is_transient() {
    let gateways = Gateways::new(reqwest::Client::new());
    let down = Gateway {
        name: "down".into(),
        url: "http://127.0.0.1:9/mcp".into(),
        auth: GatewayAuth::None,
    };
    let err = gateways
        .call(&down, "echo", &json!({"message": "x"}))
        .await
        .unwrap_err();
    assert_eq!(err.name, errors::PROVIDER_UNAVAILABLE);
    assert!(err.transient);
}

#[tokio::test]
async fn a_sigv4_gateway_needs_credentials() {
    let gateways = Gateways::new(reqwest::Client::new());
    let signed = Gateway {
        name: "signed".into(),
        url: "http://127.0.0.1:9/mcp".into(),
        auth: GatewayAuth::Sigv4,
    };
    let err = gateways.call(&signed, "echo", &json!({})).await.unwrap_err();
    assert_eq!(err.name, errors::PROVIDER_REJECTED);
    assert!(
        err.message.contains("sigv4") && err.message.contains("credentials"),
        "{}",
        err.message
    );
}

/// SigV4-signed MCP requests go through rmcp like any other (the test server
/// ignores the signature; `providers::sigv4` tests the signature itself).
async fn a_sigv4_gateway_is_called_with_signed_requests() {
    let credentials = aws_credential_types::provider::SharedCredentialsProvider::new(
        aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"),
    );
    let signing = Signing {
        credentials,
        region: "us-east-1".into(),
    };
    let gateways = Gateways::new(reqwest::Client::new()).with_signing(Some(signing));
    let signed = Gateway {
        auth: GatewayAuth::Sigv4,
        ..gateway()
    };
    let echoed = gateways
        .call(&signed, "echo", &json!({"message": "signed"}))
        .await
        .unwrap();
    assert_eq!(echoed, Value::String("Echo: signed".into()));
}
