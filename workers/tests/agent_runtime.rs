//! The agent provider against a real agent process speaking the AgentCore
//! Runtime HTTP contract: `localstack/agent/agent.py` (a `bedrock-agentcore`
//! app; install its venv with `localstack/agent/install.sh`).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use garden_workers::providers::agent;
use garden_workers::{Clients, Context, Settings};
use garden_workflows::wire::{Runtime, SessionScope, errors};
use serde_json::{Value, json};

const PORT: u16 = 4631;

struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent() -> AgentProcess {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("localstack/.venv-agent/bin/python");
    let script = root.join("localstack/agent/agent.py");
    assert!(
        python.exists() && script.exists(),
        "the agent process is not installed: run `localstack/agent/install.sh` (needs {} and {})",
        python.display(),
        script.display()
    );
    let child = Command::new(python)
        .arg(script)
        .arg("--port")
        .arg(PORT.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the agent process starts");
    let process = AgentProcess(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", PORT)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the agent did not listen on {PORT} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    process
}

fn context() -> Context {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    Context::new(Settings::default(), Clients::from_sdk_config(&sdk))
}

#[tokio::test]
async fn agent_steps_against_the_runtime_contract() {
    let _agent = start_agent();
    let ctx = context();
    let url = format!("http://127.0.0.1:{PORT}");
    let runtime = Runtime {
        name: "writer".into(),
        arn: "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/writer".into(),
        qualifier: None,
    };
    agent::ping(&ctx.http, "writer", &url)
        .await
        .expect("the agent is healthy");

    // One session per job and runtime: the agent counts the turns.
    let session = agent::session_id("k-agent-test", "writer", SessionScope::PerJob, "draft", None);
    let payload = json!({"topic": "markets", "notes": ["rates", "risks"]});
    let first = agent::invoke_at(&ctx, &runtime, &url, &payload, &session)
        .await
        .unwrap();
    assert_eq!(first["draft"], "Draft on markets: (1) rates (2) risks");
    assert_eq!(first["session_turn"], 1);
    assert_eq!(first["session_id"], Value::String(session.clone()));
    let confidence = first["confidence"].as_f64().unwrap();
    assert!((0.55..=0.95).contains(&confidence));
    let second = agent::invoke_at(&ctx, &runtime, &url, &payload, &session)
        .await
        .unwrap();
    assert_eq!(second["session_turn"], 2, "the session persists across steps of a job");
    let other = agent::session_id("k-agent-test", "writer", SessionScope::PerStep, "review", None);
    let fresh = agent::invoke_at(&ctx, &runtime, &url, &payload, &other).await.unwrap();
    assert_eq!(fresh["session_turn"], 1);

    // Streaming: deltas, then the complete answer.
    let streamed = agent::invoke_at(
        &ctx,
        &runtime,
        &url,
        &json!({"topic": "markets", "stream": true}),
        &session,
    )
    .await
    .unwrap();
    assert_eq!(streamed["draft"], "Draft on markets:");

    // Failures: an exception, streamed or not, is the agent's error.
    let failed = agent::invoke_at(&ctx, &runtime, &url, &json!({"fail": "no sources"}), &session)
        .await
        .unwrap_err();
    assert_eq!(failed.name, errors::AGENT_ERROR);
    assert!(!failed.transient);
    assert!(failed.message.contains("no sources"), "{}", failed.message);
    let failed = agent::invoke_at(
        &ctx,
        &runtime,
        &url,
        &json!({"topic": "one two three four five six", "stream": true, "fail": "midway"}),
        &session,
    )
    .await
    .unwrap_err();
    assert_eq!(failed.name, errors::AGENT_ERROR);
    assert!(failed.message.contains("midway"), "{}", failed.message);
}

#[tokio::test]
async fn an_agent_that_is_not_running_is_transient() {
    let ctx = context();
    let runtime = Runtime {
        name: "absent".into(),
        arn: "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/absent".into(),
        qualifier: None,
    };
    let err = agent::invoke_at(&ctx, &runtime, "http://127.0.0.1:9", &json!({}), &"s".repeat(40))
        .await
        .unwrap_err();
    assert_eq!(err.name, errors::PROVIDER_UNAVAILABLE);
    assert!(err.transient);
}
