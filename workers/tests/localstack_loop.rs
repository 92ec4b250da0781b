//! The local loop end to end against LocalStack: a job message goes through
//! the dispatcher, a Step Functions execution, a tool step (MCP test server)
//! and the output step, to a finished job item.
//!
//! Needs LocalStack on 127.0.0.1:4566 (`localstack/up.sh`) and the MCP test
//! server's packages (`npm ci --prefix workers/tests/mcp`), both of which
//! `tests/run.sh` provides.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use garden_workers::{Clients, Context, QueueKind, Settings, local, store};
use serde_json::{Value, json};

use common::{create_table, sdk_config};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mcp_server() -> Option<Process> {
    if TcpStream::connect(("127.0.0.1", 4640)).is_ok() {
        return None;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp");
    let entry = dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(entry.exists(), "run `npm ci --prefix workers/tests/mcp` first");
    let child = Command::new("node")
        .arg("--require")
        .arg(dir.join("loopback.cjs"))
        .arg(entry)
        .arg("streamableHttp")
        .env("PORT", "4640")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts");
    for _ in 0..300 {
        if TcpStream::connect(("127.0.0.1", 4640)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Process(child))
}

async fn clients() -> Clients {
    Clients::from_sdk_config(&sdk_config(4566).await)
}

fn task_state(queue_url: &str, step: &str, spec: Value, next: Option<&str>) -> Value {
    let mut state = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {
            "QueueUrl": queue_url,
            "MessageBody": {
                "token.$": "$$.Task.Token",
                "job_id.$": "$.job.id",
                "workflow": "brief",
                "step": step,
                "spec": spec,
                "exports": [{"name": "said", "path": "", "shape": "value"}],
            },
        },
        "ResultPath": format!("$.v.{step}"),
        "TimeoutSeconds": 60,
    });
    match next {
        Some(next) => state["Next"] = json!(next),
        None => state["End"] = json!(true),
    }
    state
}

#[tokio::test]
async fn a_job_runs_through_the_local_loop() {
    assert!(
        TcpStream::connect(("127.0.0.1", 4566)).is_ok(),
        "LocalStack is not running on 127.0.0.1:4566: start it with localstack/up.sh"
    );
    let _mcp = mcp_server();
    let clients = clients().await;
    let prefix = format!("gwt{}", fastrand::u32(10_000..99_999));
    create_table(&clients.ddb, &prefix).await;
    let mut urls = std::collections::HashMap::new();
    for kind in QueueKind::ALL {
        let name = kind.queue_name(&prefix);
        let url = clients
            .sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        urls.insert(kind.as_str(), url);
    }

    let tool = json!({
        "kind": "tool",
        "gateway": {"name": "everything", "url": "http://127.0.0.1:4640/mcp"},
        "name": "echo",
        "arguments": {"message": "{{ input.topic }}"},
        "retry": {"attempts": 2, "backoff_ms": 100, "max_delay_ms": 200},
    });
    let output = json!({"kind": "output", "output": {"said": "{{ steps.echo.output }}", "job": "{{ job.id }}"}});
    let definition = json!({
        "StartAt": "echo",
        "States": {
            "echo": task_state(&urls["tool"], "echo", tool, Some("output")),
            "output": task_state(&urls["control"], "output", output, None),
        },
    });
    let machine = clients
        .sfn
        .create_state_machine()
        .name(format!("{prefix}-brief"))
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::000000000000:role/garden-test")
        .send()
        .await
        .expect("the state machine is created")
        .state_machine_arn;
    clients
        .ddb
        .put_item()
        .table_name(&prefix)
        .item(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S("WORKFLOW#brief".into()),
        )
        .item("SK", aws_sdk_dynamodb::types::AttributeValue::S("WORKFLOW".into()))
        .item(
            "state_machine_arn",
            aws_sdk_dynamodb::types::AttributeValue::S(machine.clone()),
        )
        .item(
            "input_schema",
            aws_sdk_dynamodb::types::AttributeValue::S(r#"{"type":"object","required":["topic"]}"#.into()),
        )
        .send()
        .await
        .unwrap();

    let settings = Settings {
        prefix: prefix.clone(),
        table: prefix.clone(),
        wait_time_secs: 1,
        grace: Duration::from_secs(5),
        ..Settings::default()
    };
    let ctx = Arc::new(Context::new(settings, clients.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(local::run_with(ctx.clone(), async move {
        let _ = stopped.await;
    }));

    let message = json!({"workflow": "brief", "input": {"topic": "markets"}, "idempotency_key": "once"});
    for _ in 0..2 {
        clients
            .sqs
            .send_message()
            .queue_url(&urls["jobs"])
            .message_body(message.to_string())
            .send()
            .await
            .unwrap();
    }
    clients
        .sqs
        .send_message()
        .queue_url(&urls["jobs"])
        .message_body(json!({"workflow": "brief", "input": {}}).to_string())
        .send()
        .await
        .unwrap();
    let job_id = garden_workers::dispatcher::derive_job_id("brief", "once");

    let mut job = None;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let found = store::get_job(&clients.ddb, &prefix, &job_id).await.unwrap();
        if found.as_ref().is_some_and(|j| j.output.is_some()) {
            job = found;
            break;
        }
    }
    let job = job.expect("the job got its output within 30 s");
    assert_eq!(job.output, Some(json!({"said": "Echo: markets", "job": job_id})));
    let steps = store::list_steps(&clients.ddb, &prefix, &job_id).await.unwrap();
    let echo = steps.iter().find(|s| s.step == "echo").expect("the echo step item");
    assert_eq!(echo.status, store::StepStatus::Succeeded);
    assert_eq!(echo.attempts, 1);
    assert_eq!(echo.output, Some(json!("Echo: markets")));

    let executions = clients
        .sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await
        .unwrap();
    assert_eq!(
        executions.executions().len(),
        1,
        "two deliveries of one job make one execution"
    );
    let rejected = store::list_jobs_by_workflow(&clients.ddb, &prefix, "brief", 10)
        .await
        .unwrap();
    let reasons: Vec<_> = rejected.iter().filter_map(|j| j.reason.clone()).collect();
    assert!(reasons.iter().any(|r| r.contains("topic")), "{reasons:?}");

    let _ = stop.send(());
    worker.await.unwrap().unwrap();

    for url in urls.values() {
        let _ = clients.sqs.delete_queue().queue_url(url).send().await;
    }
    let _ = clients
        .sfn
        .delete_state_machine()
        .state_machine_arn(&machine)
        .send()
        .await;
    let _ = clients.ddb.delete_table().table_name(&prefix).send().await;
}
