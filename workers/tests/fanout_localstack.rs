//! Wide fan-out against LocalStack: a real Step Functions Task waits on the
//! fan-out while the test delivers the start and item messages to the step
//! worker itself, one at a time, with the failures a queue brings: the start
//! delivered twice, an item delivered again after it finished, an item whose
//! first delivery stored its output and died before sending its successor,
//! and the last item delivered again after the Task was answered.
//!
//! Needs LocalStack on 127.0.0.1:4566 and the MCP tool stand-in on
//! 127.0.0.1:4620 (`bash localstack/up.sh` starts both). Each test makes its
//! own table, queues and state machine and deletes them at the end.

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use futures::FutureExt;
use garden_workers::config::QueueKind;
use garden_workers::local::{Queue, to_record};
use garden_workers::{Clients, Context, Settings, step, store};
use garden_workflows::wire::{TaskKind, TaskMessage};
use serde_json::{Value, json};

use common::{create_table, sdk_config};

/// One test's resources.
struct Stack {
    clients: Clients,
    ctx: Context,
    table: String,
    control: Queue,
    items: Queue,
    machine: String,
    execution: String,
    job: String,
}

impl Stack {
    /// A table, the two queues, and a state machine whose only state is the
    /// fan-out Task over `items` (stored as the output of step `items`).
    async fn new(items: Vec<Value>, concurrency: u64) -> Stack {
        assert!(
            TcpStream::connect(("127.0.0.1", 4566)).is_ok(),
            "LocalStack is not running on 127.0.0.1:4566: start it with `bash localstack/up.sh`"
        );
        assert!(
            TcpStream::connect(("127.0.0.1", 4620)).is_ok(),
            "the MCP tool stand-in is not running on 127.0.0.1:4620: start it with `bash localstack/up.sh`"
        );
        let clients = clients().await;
        let table = format!("garden-fanout-test-{}", fastrand::u32(..));
        create_table(&clients.ddb, &table).await;
        let control = queue(&clients, &format!("{table}-control"), TaskKind::Control).await;
        let item_queue = queue(&clients, &format!("{table}-tool"), TaskKind::Tool).await;
        let item = json!({
            "kind": "tool",
            "gateway": {"name": "standin-tools", "url": "http://127.0.0.1:4620/mcp"},
            "name": "pause",
            "arguments": {"ms": "{{ item }}", "lane": format!("{table}-lane"), "tag": "{{ item }}"},
            "for_each": "{{ steps.items.output.items }}",
            "retry": {"attempts": 1, "backoff_ms": 10, "max_delay_ms": 10},
        });
        let definition = json!({
            "StartAt": "each",
            "States": {"each": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": control.url,
                    "MessageBody": {
                        "token.$": "$$.Task.Token", "job_id.$": "$.job.id", "workflow": "fan", "step": "each",
                        "attempt.$": "$$.State.RetryCount",
                        "spec": {"kind": "fan_out", "item": item, "concurrency": concurrency, "queue_url": item_queue.url},
                    },
                },
                "ResultPath": "$.each",
                "TimeoutSeconds": 300,
                "End": true,
            }},
        });
        let machine = clients
            .sfn
            .create_state_machine()
            .name(&table)
            .definition(definition.to_string())
            .role_arn("arn:aws:iam::000000000000:role/garden-test")
            .send()
            .await
            .expect("the state machine is created")
            .state_machine_arn;
        let job = format!("job-{}", fastrand::u32(..));
        let output = json!({"items": items});
        store::finish_step(
            &clients.ddb,
            &table,
            &job,
            "items",
            None,
            &output,
            Default::default(),
            "{}",
        )
        .await
        .expect("the items step is stored");
        let execution = clients
            .sfn
            .start_execution()
            .state_machine_arn(&machine)
            .name(&job)
            .input(json!({"job": {"id": job, "workflow": "fan"}, "v": {}}).to_string())
            .send()
            .await
            .expect("the execution starts")
            .execution_arn;
        let settings = Settings {
            table: table.clone(),
            ..Settings::default()
        };
        let ctx = Context::new(settings, clients.clone());
        Stack {
            clients,
            ctx,
            table,
            control,
            items: item_queue,
            machine,
            execution,
            job,
        }
    }

    /// Up to ten messages of a queue, waiting a little for them.
    async fn receive(&self, queue: &Queue) -> Vec<aws_sdk_sqs::types::Message> {
        self.clients
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default()
    }

    /// Delivers a message to the step worker (as often as `times`), then deletes it.
    async fn deliver(&self, queue: &Queue, message: aws_sdk_sqs::types::Message, times: usize) {
        let receipt = message.receipt_handle.clone().unwrap_or_default();
        let record = to_record(queue, message);
        for _ in 0..times {
            step::process(&self.ctx, &record).await.expect("the message is handled");
        }
        self.clients
            .sqs
            .delete_message()
            .queue_url(&queue.url)
            .receipt_handle(receipt)
            .send()
            .await
            .expect("delete");
    }

    /// Delivers the fan-out Task's message `times` times.
    async fn start(&self, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(message) = self.receive(&self.control).await.into_iter().next() {
                return self.deliver(&self.control, message, times).await;
            }
            assert!(Instant::now() < deadline, "the fan-out Task sent no message");
        }
    }

    async fn status(&self) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        self.clients
            .sfn
            .describe_execution()
            .execution_arn(&self.execution)
            .send()
            .await
            .expect("describe execution")
    }

    async fn wait_done(&self) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        for _ in 0..100 {
            let status = self.status().await;
            if status.status != ExecutionStatus::Running {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the execution is still running");
    }

    async fn fan_record(&self) -> std::collections::HashMap<String, AttributeValue> {
        self.clients
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(format!("JOB#{}", self.job)))
            .key("SK", AttributeValue::S("FANOUT#each".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get the fan-out")
            .item
            .expect("the fan-out is recorded")
    }

    async fn item_steps(&self) -> Vec<store::StepItem> {
        store::list_steps(&self.clients.ddb, &self.table, &self.job)
            .await
            .expect("list steps")
            .into_iter()
            .filter(|s| s.step == "each")
            .collect()
    }

    async fn queue_is_empty(&self, queue: &Queue) -> bool {
        self.receive(queue).await.is_empty()
    }

    fn cleanup(&self) -> Cleanup {
        Cleanup {
            clients: self.clients.clone(),
            table: self.table.clone(),
            queues: vec![self.control.url.clone(), self.items.url.clone()],
            machine: self.machine.clone(),
        }
    }
}

/// What a test deletes at the end, passed or not.
struct Cleanup {
    clients: Clients,
    table: String,
    queues: Vec<String>,
    machine: String,
}

impl Cleanup {
    async fn delete(&self) {
        for url in &self.queues {
            let _ = self.clients.sqs.delete_queue().queue_url(url).send().await;
        }
        let _ = self
            .clients
            .sfn
            .delete_state_machine()
            .state_machine_arn(&self.machine)
            .send()
            .await;
        let _ = self.clients.ddb.delete_table().table_name(&self.table).send().await;
    }
}

fn n(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().unwrap(),
        other => panic!("{name} is {other:?}"),
    }
}

fn index_of(message: &aws_sdk_sqs::types::Message) -> u64 {
    let body: TaskMessage = serde_json::from_str(message.body().unwrap()).expect("an item message");
    assert!(body.token.is_empty() && body.fan.is_some(), "{body:?}");
    body.item.expect("an item index")
}

async fn with_stack<F, Fut>(items: Vec<Value>, concurrency: u64, body: F)
where
    F: FnOnce(Stack) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let stack = Stack::new(items, concurrency).await;
    let cleanup = stack.cleanup();
    let outcome = std::panic::AssertUnwindSafe(body(stack)).catch_unwind().await;
    cleanup.delete().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn a_fan_out_survives_repeated_and_interrupted_deliveries() {
    const N: u64 = 23;
    const C: u64 = 4;
    // `ms` is the item itself: 5 ms each.
    with_stack(vec![json!(5); N as usize], C, |stack| async move {
        // Item 9's first delivery stored its output and died before sending item 13.
        let seeded = json!({"paused_ms": 5, "in_flight": 1, "tag": 5, "seeded": true});
        let result = json!({"step": "each", "item": 9, "exports": {}}).to_string();
        store::finish_step(
            &stack.clients.ddb,
            &stack.table,
            &stack.job,
            "each",
            Some(9),
            &seeded,
            Default::default(),
            &result,
        )
        .await
        .unwrap();

        stack.start(2).await;
        let mut received = BTreeMap::<u64, usize>::new();
        let mut last_body = None;
        let mut finished_at = BTreeMap::<u64, Option<String>>::new();
        let mut idle = 0;
        while idle < 3 {
            let messages = stack.receive(&stack.items).await;
            if messages.is_empty() {
                idle += 1;
                continue;
            }
            idle = 0;
            for message in messages {
                let index = index_of(&message);
                *received.entry(index).or_default() += 1;
                if index == N - 1 {
                    last_body = message.body.clone();
                }
                // Item 5 is delivered again right after it finished.
                let times = if index == 5 && received[&index] == 1 { 2 } else { 1 };
                stack.deliver(&stack.items, message, times).await;
                let record = store::get_step(&stack.clients.ddb, &stack.table, &stack.job, "each", Some(index))
                    .await
                    .unwrap()
                    .expect("the item has a step record");
                assert_eq!(record.status, store::StepStatus::Succeeded);
                let first = finished_at.entry(index).or_insert_with(|| record.finished_at.clone());
                assert_eq!(*first, record.finished_at, "item {index} ran twice");
            }
        }

        let done = stack.wait_done().await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        let output: Value = serde_json::from_str(done.output().unwrap()).unwrap();
        assert_eq!(output["each"], json!({"step": "each", "exports": {}}));

        assert_eq!(received.keys().copied().collect::<Vec<_>>(), (0..N).collect::<Vec<_>>());
        let total: usize = received.values().sum();
        assert_eq!(
            total as u64,
            N + C,
            "every item once, the first window twice (the start came twice), no other successor again: {received:?}"
        );
        let fan = stack.fan_record().await;
        assert_eq!((n(&fan, "total"), n(&fan, "remaining")), (N as i64, 0));
        assert_eq!(fan.get("outcome"), Some(&AttributeValue::S("SUCCEEDED".into())));

        let steps = stack.item_steps().await;
        assert_eq!(steps.len() as u64, N, "one step record per item");
        let outputs = store::step_output(&stack.clients.ddb, &stack.table, &stack.job, "each")
            .await
            .unwrap()
            .expect("the step has an output");
        let outputs = outputs.as_array().unwrap();
        assert_eq!(outputs.len() as u64, N);
        assert_eq!(outputs[9]["seeded"], true, "item 9 was not run again");
        for (i, output) in outputs.iter().enumerate().filter(|(i, _)| *i != 9) {
            assert_eq!(output["paused_ms"], 5, "item {i}: {output}");
        }

        // The last item again, after the Task was answered: answered again,
        // which Step Functions refuses, and the message goes.
        let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
        record.body = last_body;
        step::process(&stack.ctx, &record)
            .await
            .expect("a late duplicate is dropped");
        assert!(stack.queue_is_empty(&stack.items).await, "no item left behind");
    })
    .await;
}

#[tokio::test]
async fn a_failed_item_fails_the_fan_out_and_stops_it() {
    // Item 3 asks `pause` for more than it allows, so the tool fails it.
    let items = vec![
        json!(5),
        json!(5),
        json!(5),
        json!(700_000),
        json!(5),
        json!(5),
        json!(5),
    ];
    with_stack(items, 2, |stack| async move {
        stack.start(1).await;
        let mut received = Vec::new();
        let mut idle = 0;
        while idle < 3 {
            let messages = stack.receive(&stack.items).await;
            if messages.is_empty() {
                idle += 1;
                continue;
            }
            idle = 0;
            for message in messages {
                received.push(index_of(&message));
                stack.deliver(&stack.items, message, 1).await;
            }
        }
        let done = stack.wait_done().await;
        assert_eq!(done.status, ExecutionStatus::Failed, "{done:?}");
        assert_eq!(done.error(), Some("Garden.ToolError"));
        let cause: Value = serde_json::from_str(done.cause().unwrap()).unwrap();
        assert_eq!(
            (cause["step"].as_str(), cause["item"].as_u64()),
            (Some("each"), Some(3)),
            "{cause}"
        );

        received.sort();
        assert!(received.contains(&3));
        assert!(
            !received.contains(&5) && !received.contains(&6),
            "item 3's successor is never sent, and none after a dropped item: {received:?}"
        );
        let fan = stack.fan_record().await;
        assert_eq!(fan.get("outcome"), Some(&AttributeValue::S("FAILED".into())));
        assert_eq!(n(&fan, "failed_item"), 3);
        let steps = stack.item_steps().await;
        let failed: Vec<_> = steps.iter().filter(|s| s.status == store::StepStatus::Failed).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(
            (failed[0].item, failed[0].error.as_deref()),
            (Some(3), Some("Garden.ToolError"))
        );
    })
    .await;
}

#[tokio::test]
async fn a_fan_out_over_no_items_succeeds_at_once() {
    with_stack(Vec::new(), 4, |stack| async move {
        stack.start(1).await;
        let done = stack.wait_done().await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        assert!(stack.queue_is_empty(&stack.items).await, "no item is sent");
    })
    .await;
}

async fn clients() -> Clients {
    Clients::from_sdk_config(&sdk_config(4566).await)
}

async fn queue(clients: &Clients, name: &str, kind: TaskKind) -> Queue {
    let url = clients
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("the queue is created")
        .queue_url
        .unwrap();
    Queue {
        kind: QueueKind::Task(kind),
        name: name.to_owned(),
        arn: format!("arn:aws:sqs:us-east-1:000000000000:{name}"),
        url,
    }
}
