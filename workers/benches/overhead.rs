//! What the workers themselves cost per step, apart from the provider and the
//! AWS calls, and the size and start-up time of the Lambda binaries.
//!
//! Overhead is measured against mocked clients that answer at once
//! (`aws-smithy-mocks`): the handler's time per message minus the time of the
//! same AWS calls made bare, on the same clients, in the same run.
//!
//! Binary figures need release builds of the Lambda functions:
//! `cargo build --release -p garden-workers --bins` (with `CARGO_TARGET_DIR`
//! honoured); they are skipped with a note when the binaries are missing.
//!
//! Run: `cargo bench -p garden-workers --bench overhead`.

#![allow(clippy::print_stdout)]

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, Message, StopReason, TokenUsage};
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput;
use aws_sdk_sfn::operation::start_execution::StartExecutionOutput;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use garden_workers::{Clients, Context, Settings, dispatcher, step};
use serde_json::json;

const STEPS: usize = 2_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rules = Rules::new();
    let ctx = rules.context();

    let step_body = json!({
        "token": "token-1", "job_id": "job-1", "workflow": "brief", "step": "outline",
        "spec": {"kind": "model", "model_id": "m", "prompt": "Sections on {{ input.topic }}",
                 "retry": {"attempts": 3, "backoff_ms": 10, "max_delay_ms": 20}},
        "exports": [{"name": "confidence", "path": "confidence"}],
    })
    .to_string();
    let job_body = json!({"workflow": "brief", "input": {"topic": "markets"}, "job_id": "job-1"}).to_string();

    println!("worker overhead per message, mocked AWS answering at once ({STEPS} messages, current-thread runtime)");
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>8}",
        "handler", "handler", "bare calls", "overhead", "ratio"
    );
    let (handler, bare) = runtime.block_on(async {
        for _ in 0..100 {
            step::handle(&ctx, event(&step_body)).await;
            bare_step(&ctx).await;
        }
        time(|| step::handle(&ctx, event(&step_body)), || bare_step(&ctx)).await
    });
    report("step (model, 1 template)", handler, bare);
    let (handler, bare) = runtime.block_on(async {
        for _ in 0..100 {
            dispatcher::handle(&ctx, event(&job_body)).await;
            bare_dispatch(&ctx).await;
        }
        time(|| dispatcher::handle(&ctx, event(&job_body)), || bare_dispatch(&ctx)).await
    });
    report("dispatcher (valid job)", handler, bare);

    println!();
    binaries();
}

/// Mean time of `handler` and of `bare`, run alternately so that load on the
/// machine weighs on both alike.
async fn time<H, HF, B, BF, T>(mut handler: H, mut bare: B) -> (Duration, Duration)
where
    H: FnMut() -> HF,
    HF: std::future::Future<Output = T>,
    B: FnMut() -> BF,
    BF: std::future::Future<Output = ()>,
{
    let (mut in_handler, mut in_bare) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..STEPS {
        let started = Instant::now();
        std::hint::black_box(handler().await);
        in_handler += started.elapsed();
        let started = Instant::now();
        bare().await;
        in_bare += started.elapsed();
    }
    (in_handler / STEPS as u32, in_bare / STEPS as u32)
}

fn report(name: &str, handler: Duration, bare: Duration) {
    let overhead = handler.saturating_sub(bare);
    let ratio = handler.as_secs_f64() / bare.as_secs_f64().max(1e-9);
    println!(
        "{name:<28} {:>10.1}µs {:>10.1}µs {:>10.1}µs {:>7.2}x",
        handler.as_secs_f64() * 1e6,
        bare.as_secs_f64() * 1e6,
        overhead.as_secs_f64() * 1e6,
        ratio
    );
}

/// The AWS calls a model step makes, with the same request shapes, without
/// the worker around them.
async fn bare_step(ctx: &Context) {
    let c = &ctx.clients;
    let _ = c
        .ddb
        .get_item()
        .table_name("garden")
        .key("PK", s("JOB#job-1"))
        .key("SK", s("STEP#outline"))
        .send()
        .await;
    let _ = update(
        ctx,
        "SET #status = :running, started_at = if_not_exists(started_at, :now)",
    )
    .await;
    let _ = c
        .ddb
        .get_item()
        .table_name("garden")
        .key("PK", s("JOB#job-1"))
        .key("SK", s("JOB"))
        .send()
        .await;
    let message = Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text("Sections on markets".into()))
        .build()
        .unwrap();
    let _ = c.bedrock.converse().model_id("m").messages(message).send().await;
    let _ = update(
        ctx,
        "SET #status = :done, finished_at = :now, #output = :output, #result = :result",
    )
    .await;
    let result = r#"{"step":"outline","exports":{"confidence":0.8}}"#;
    let _ = c
        .sfn
        .send_task_success()
        .task_token("token-1")
        .output(result)
        .send()
        .await;
}

/// The AWS calls a dispatched job makes (the registry read is cached).
async fn bare_dispatch(ctx: &Context) {
    let c = &ctx.clients;
    let _ = c
        .ddb
        .put_item()
        .table_name("garden")
        .item("PK", s("JOB#job-1"))
        .item("SK", s("JOB"))
        .item("status", s("RUNNING"))
        .item("input", s(r#"{"topic":"markets"}"#))
        .condition_expression("attribute_not_exists(PK)")
        .send()
        .await;
    let _ = c
        .sfn
        .start_execution()
        .state_machine_arn("arn:aws:states:us-east-1:000000000000:stateMachine:garden-brief")
        .name("job-1")
        .input(r#"{"job":{"id":"job-1","workflow":"brief"},"v":{}}"#)
        .send()
        .await;
    let _ = update(ctx, "SET execution_arn = :arn, updated_at = :now").await;
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

async fn update(ctx: &Context, expression: &str) {
    let _ = ctx
        .clients
        .ddb
        .update_item()
        .table_name("garden")
        .key("PK", s("JOB#job-1"))
        .key("SK", s("STEP#outline"))
        .update_expression(expression)
        .expression_attribute_values(":now", s("2026-12-03T00:00:00Z"))
        .send()
        .await;
}

fn event(body: &str) -> SqsEvent {
    let mut record = SqsMessage::default();
    record.message_id = Some("msg-1".into());
    record.body = Some(body.to_owned());
    let mut event = SqsEvent::default();
    event.records.push(record);
    event
}

struct Rules {
    ddb: Vec<Rule>,
    sfn: Vec<Rule>,
    bedrock: Rule,
}

impl Rules {
    fn new() -> Self {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let job = [
            ("PK", "JOB#job-1"),
            ("SK", "JOB"),
            ("job_id", "job-1"),
            ("workflow", "brief"),
            ("status", "RUNNING"),
            ("input", r#"{"topic":"markets"}"#),
        ];
        let registry = [
            ("PK", "WORKFLOW#brief"),
            ("SK", "WORKFLOW"),
            (
                "state_machine_arn",
                "arn:aws:states:us-east-1:000000000000:stateMachine:garden-brief",
            ),
            ("input_schema", r#"{"type":"object","required":["topic"]}"#),
        ];
        let item = move |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), s(v))).collect();
        let job_item: std::collections::HashMap<_, _> = item(&job);
        let registry_item: std::collections::HashMap<_, _> = item(&registry);
        let is = |r: &aws_sdk_dynamodb::operation::get_item::GetItemInput, sk: &str| matches!(r.key().and_then(|k| k.get("SK")), Some(AttributeValue::S(v)) if v == sk);
        let ddb = vec![
            mock!(aws_sdk_dynamodb::Client::get_item)
                .match_requests(move |r| is(r, "JOB"))
                .then_output(move || GetItemOutput::builder().set_item(Some(job_item.clone())).build()),
            mock!(aws_sdk_dynamodb::Client::get_item)
                .match_requests(move |r| is(r, "WORKFLOW"))
                .then_output(move || GetItemOutput::builder().set_item(Some(registry_item.clone())).build()),
            mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build()),
            mock!(aws_sdk_dynamodb::Client::query).then_output(|| QueryOutput::builder().build()),
            mock!(aws_sdk_dynamodb::Client::update_item).then_output(|| UpdateItemOutput::builder().build()),
            mock!(aws_sdk_dynamodb::Client::put_item).then_output(|| PutItemOutput::builder().build()),
        ];
        let sfn = vec![
            mock!(aws_sdk_sfn::Client::send_task_success).then_output(|| SendTaskSuccessOutput::builder().build()),
            mock!(aws_sdk_sfn::Client::start_execution).then_output(|| {
                StartExecutionOutput::builder()
                    .execution_arn("arn:aws:states:us-east-1:000000000000:execution:garden-brief:job-1")
                    .start_date(aws_smithy_types::DateTime::from_secs(0))
                    .build()
                    .unwrap()
            }),
        ];
        let bedrock = mock!(aws_sdk_bedrockruntime::Client::converse).then_output(|| {
            let message = Message::builder()
                .role(ConversationRole::Assistant)
                .content(ContentBlock::Text(r#"{"confidence": 0.8}"#.into()))
                .build()
                .unwrap();
            ConverseOutput::builder()
                .output(aws_sdk_bedrockruntime::types::ConverseOutput::Message(message))
                .stop_reason(StopReason::EndTurn)
                .usage(
                    TokenUsage::builder()
                        .input_tokens(10)
                        .output_tokens(5)
                        .total_tokens(15)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        });
        Rules { ddb, sfn, bedrock }
    }

    fn context(&self) -> Context {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let mut clients = Clients::from_sdk_config(&sdk);
        clients.ddb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, self.ddb.iter());
        clients.sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, self.sfn.iter());
        clients.bedrock = mock_client!(aws_sdk_bedrockruntime, RuleMode::MatchAny, [&self.bedrock]);
        Context::new(Settings::default(), clients)
    }
}

/// Size and start-up time (exec to the first `GET .../invocation/next` on the
/// Lambda runtime API) of the release binaries.
fn binaries() {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let release = std::env::var("GARDEN_RELEASE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| target.join("release"));
    println!("release binaries in {}", release.display());
    println!(
        "{:<20} {:>10} {:>16} {:>16}",
        "binary", "size", "start-up median", "start-up max"
    );
    for name in ["garden-dispatcher", "garden-worker"] {
        let path = release.join(name);
        let Ok(meta) = std::fs::metadata(&path) else {
            println!("{name:<20} missing: run `cargo build --release -p garden-workers --bins`");
            continue;
        };
        let mut starts: Vec<Duration> = (0..15).filter_map(|_| start_up(&path)).collect();
        starts.sort();
        let (median, max) = match (starts.get(starts.len() / 2), starts.last()) {
            (Some(median), Some(max)) => (*median, *max),
            _ => {
                println!(
                    "{name:<20} {:>8.1}MB  did not reach the runtime API",
                    meta.len() as f64 / 1e6
                );
                continue;
            }
        };
        println!(
            "{name:<20} {:>8.1}MB {:>14.1}ms {:>14.1}ms",
            meta.len() as f64 / 1e6,
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}

fn start_up(binary: &PathBuf) -> Option<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    let address = listener.local_addr().ok()?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "garden-bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    listener.set_nonblocking(true).ok()?;
    let deadline = started + Duration::from_secs(10);
    let elapsed = loop {
        if let Ok((mut stream, _)) = listener.accept() {
            let elapsed = started.elapsed();
            let mut buf = [0u8; 64];
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = stream.read(&mut buf);
            break Some(elapsed);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}
