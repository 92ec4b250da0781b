//! The step worker: providers, retries, failures, duplicates, heartbeats.

use std::time::Duration;

use aws_sdk_bedrockruntime::Client as Bedrock;
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::types::error::{ThrottlingException, ValidationException};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput as Reply, Message, StopReason, TokenUsage, ToolUseBlock,
};
use aws_sdk_dynamodb::Client as Ddb;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::Client as Sfn;
use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureOutput;
use aws_sdk_sfn::operation::send_task_heartbeat::{SendTaskHeartbeatError, SendTaskHeartbeatOutput};
use aws_sdk_sfn::operation::send_task_success::{SendTaskSuccessError, SendTaskSuccessOutput};
use aws_sdk_sfn::types::error::TaskTimedOut;
use aws_sdk_sqs::Client as Sqs;
use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityOutput;
use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlOutput;
use aws_smithy_mocks::{Rule, mock};
use garden_workflows::wire::errors;
use serde_json::{Value, json};

use super::{Item, Mocks, Seen, event, item, key_of, seen};
use crate::keepalive::{self, Kept, Receipt};
use crate::providers::model::json_to_document;
use crate::step;

/// The AWS side every step test shares, recording what the worker wrote and
/// answered.
struct Fixture {
    rules: Vec<Rule>,
    sfn_rules: Vec<Rule>,
    updates: Seen<(String, Item)>,
    successes: Seen<String>,
    failures: Seen<(String, String)>,
    heartbeats: Rule,
    visibility: Rule,
    /// The visibility timeout of each ChangeMessageVisibility.
    visibility_secs: Seen<i32>,
}

impl Fixture {
    /// `step_item`: what GetItem answers for the step's own item.
    fn new(step_item: Option<Item>) -> Self {
        let (updates, successes, failures) = (seen(), seen(), seen());
        let mut rules = Vec::new();
        rules.push(
            mock!(Ddb::get_item)
                .match_requests(|r| key_of(r.key()) == ("JOB#job-1".into(), "STEP#outline".into()))
                .then_output(move || GetItemOutput::builder().set_item(step_item.clone()).build()),
        );
        rules.push(
            mock!(Ddb::get_item)
                .match_requests(|r| key_of(r.key()) == ("JOB#job-1".into(), "STEP#earlier".into()))
                .then_output(|| {
                    GetItemOutput::builder()
                        .set_item(Some(item(&[
                            ("PK", "JOB#job-1"),
                            ("SK", "STEP#earlier"),
                            ("status", "SUCCEEDED"),
                            ("output", r#"{"sections":["intro","risks","outlook"]}"#),
                        ])))
                        .build()
                }),
        );
        rules.push(
            mock!(Ddb::get_item)
                .match_requests(|r| key_of(r.key()) == ("JOB#job-1".into(), "JOB".into()))
                .then_output(|| {
                    GetItemOutput::builder()
                        .set_item(Some(item(&[
                            ("PK", "JOB#job-1"),
                            ("SK", "JOB"),
                            ("job_id", "job-1"),
                            ("workflow", "brief"),
                            ("status", "RUNNING"),
                            ("input", r#"{"topic":"markets"}"#),
                        ])))
                        .build()
                }),
        );
        rules.push(mock!(Ddb::get_item).then_output(|| GetItemOutput::builder().build()));
        rules.push(mock!(Ddb::query).then_output(|| QueryOutput::builder().build()));
        let seen_updates = updates.clone();
        rules.push(
            mock!(Ddb::update_item)
                .match_requests(move |r| {
                    let expression = r.update_expression().unwrap_or_default().to_owned();
                    let values = r.expression_attribute_values().cloned().unwrap_or_default();
                    seen_updates.lock().unwrap().push((expression, values));
                    true
                })
                .then_output(|| UpdateItemOutput::builder().build()),
        );
        let mut sfn_rules = Vec::new();
        let seen_successes = successes.clone();
        sfn_rules.push(
            mock!(Sfn::send_task_success)
                .match_requests(move |r| {
                    seen_successes
                        .lock()
                        .unwrap()
                        .push(r.output().unwrap_or_default().to_owned());
                    true
                })
                .then_output(|| SendTaskSuccessOutput::builder().build()),
        );
        let seen_failures = failures.clone();
        sfn_rules.push(
            mock!(Sfn::send_task_failure)
                .match_requests(move |r| {
                    let pair = (
                        r.error().unwrap_or_default().to_owned(),
                        r.cause().unwrap_or_default().to_owned(),
                    );
                    seen_failures.lock().unwrap().push(pair);
                    true
                })
                .then_output(|| SendTaskFailureOutput::builder().build()),
        );
        let visibility_secs = seen();
        let seen_visibility = visibility_secs.clone();
        Fixture {
            rules,
            sfn_rules,
            updates,
            successes,
            failures,
            heartbeats: mock!(Sfn::send_task_heartbeat).then_output(|| SendTaskHeartbeatOutput::builder().build()),
            visibility: mock!(Sqs::change_message_visibility)
                .match_requests(move |r| {
                    seen_visibility.lock().unwrap().extend(r.visibility_timeout());
                    true
                })
                .then_output(|| ChangeMessageVisibilityOutput::builder().build()),
            visibility_secs,
        }
    }

    fn context(&self, bedrock: &[&Rule]) -> crate::config::Context {
        self.context_with(bedrock, &[])
    }

    fn context_with(&self, bedrock: &[&Rule], agentcore: &[&Rule]) -> crate::config::Context {
        let queue_url = Box::leak(Box::new(mock!(Sqs::get_queue_url).then_output(|| {
            GetQueueUrlOutput::builder()
                .queue_url("http://sqs.local/garden-model")
                .build()
        })));
        let mut mocks = Mocks {
            bedrock: bedrock.to_vec(),
            agentcore: agentcore.to_vec(),
            sqs: vec![&self.visibility, queue_url],
            ..Mocks::default()
        };
        mocks.ddb = self.rules.iter().collect();
        mocks.sfn = self.sfn_rules.iter().collect();
        mocks.sfn.push(&self.heartbeats);
        mocks.context()
    }

    fn update_with(&self, needle: &str) -> Option<(String, Item)> {
        self.updates
            .lock()
            .unwrap()
            .iter()
            .find(|(e, _)| e.contains(needle))
            .cloned()
    }
}

fn n(values: &Item, key: &str) -> String {
    match values.get(key) {
        Some(AttributeValue::N(n)) => n.clone(),
        other => panic!("{key} is {other:?}"),
    }
}

fn s(values: &Item, key: &str) -> String {
    match values.get(key) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("{key} is {other:?}"),
    }
}

fn model_task(prompt: &str, extra: Value) -> String {
    let mut spec = json!({
        "kind": "model",
        "model_id": "anthropic.claude-3-5-haiku-20241022-v1:0",
        "system": "You plan briefs.",
        "prompt": prompt,
        "retry": {"attempts": 3, "backoff_ms": 10, "max_delay_ms": 20},
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    json!({
        "token": "token-1",
        "job_id": "job-1",
        "workflow": "brief",
        "step": "outline",
        "attempt": 0,
        "spec": spec,
        "exports": [{"name": "sections", "path": "sections", "shape": "indices"}],
    })
    .to_string()
}

fn reply(content: Vec<ContentBlock>, stop: StopReason) -> ConverseOutput {
    ConverseOutput::builder()
        .output(Reply::Message(
            Message::builder()
                .role(ConversationRole::Assistant)
                .set_content(Some(content))
                .build()
                .unwrap(),
        ))
        .stop_reason(stop)
        .usage(
            TokenUsage::builder()
                .input_tokens(100)
                .output_tokens(20)
                .total_tokens(120)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn text_reply(text: &str) -> ConverseOutput {
    reply(vec![ContentBlock::Text(text.to_owned())], StopReason::EndTurn)
}

fn answer(input: Value) -> ConverseOutput {
    let call = ToolUseBlock::builder()
        .tool_use_id("call-1")
        .name("garden_output")
        .input(json_to_document(&input))
        .build()
        .unwrap();
    reply(vec![ContentBlock::ToolUse(call)], StopReason::ToolUse)
}

fn throttled() -> ConverseError {
    ConverseError::ThrottlingException(ThrottlingException::builder().message("Too many requests").build())
}

#[tokio::test]
async fn a_model_step_renders_runs_stores_and_answers() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse)
        .match_requests(|r| {
            let prompt = r.messages()[0].content()[0].as_text().unwrap().clone();
            prompt == "Sections on markets"
        })
        .then_output(|| text_reply("An outline."));
    let ctx = fixture.context(&[&converse]);
    let response = step::handle(&ctx, event(&model_task("Sections on {{ input.topic }}", json!({})))).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(converse.num_calls(), 1);
    let (_, finished) = fixture
        .update_with("finished_at = :now, duration_ms")
        .expect("step finished");
    assert_eq!(s(&finished, ":done"), "SUCCEEDED");
    assert_eq!(s(&finished, ":output"), r#""An outline.""#);
    assert_eq!(n(&finished, ":input_tokens"), "100");
    assert_eq!(n(&finished, ":output_tokens"), "20");
    assert_eq!(n(&finished, ":attempts"), "1");
    let sent: Value = serde_json::from_str(&fixture.successes.lock().unwrap()[0]).unwrap();
    assert_eq!(sent, json!({"step": "outline", "exports": {"sections": []}}));
    assert_eq!(s(&finished, ":result"), fixture.successes.lock().unwrap()[0]);
    assert!(!finished.contains_key(":cost"), "no prices, no cost");
}

/// DynamoDB keeps refusing reads: the message comes back until its last
/// delivery, which fails the step with the last error instead of leaving it
/// to the dead-letter queue while the execution waits.
#[tokio::test]
async fn a_task_failing_on_its_last_delivery_fails_its_step() {
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;

    let refused = mock!(Ddb::get_item).then_error(|| {
        GetItemError::ProvisionedThroughputExceededException(ProvisionedThroughputExceededException::builder().build())
    });
    for delivery in [1, 4, 5] {
        let fixture = Fixture::new(None);
        let mut ctx = Mocks {
            ddb: std::iter::once(&refused).chain(&fixture.rules).collect(),
            sfn: fixture.sfn_rules.iter().collect(),
            ..Mocks::default()
        }
        .context();
        ctx.settings.max_receives = 5;
        let mut batch = event(&model_task("Plan", json!({})));
        (batch.records[0].attributes).insert("ApproximateReceiveCount".into(), delivery.to_string());
        let response = step::handle(&ctx, batch).await;
        let failures = fixture.failures.lock().unwrap().clone();
        if delivery < 5 {
            assert_eq!(response.batch_item_failures.len(), 1, "delivery {delivery} comes back");
            assert!(failures.is_empty(), "delivery {delivery}: {failures:?}");
            continue;
        }
        assert!(response.batch_item_failures.is_empty(), "the last delivery is settled");
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, errors::WORKER_FAILED);
        assert!(failures[0].1.contains("in 5 deliveries"), "{}", failures[0].1);
        assert!(
            failures[0].1.contains("GetItem"),
            "the last error is named: {}",
            failures[0].1
        );
        let (_, failed) = fixture
            .update_with("#error = :error")
            .expect("the step is recorded as failed");
        assert_eq!(s(&failed, ":error"), errors::WORKER_FAILED);
    }
}

#[tokio::test]
async fn a_for_each_over_no_items_reads_as_an_empty_list() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse)
        .match_requests(|r| r.messages()[0].content()[0].as_text().unwrap() == "Found: []")
        .then_output(|| text_reply("Nothing to summarise."));
    let ctx = fixture.context(&[&converse]);
    let mut task: Value = serde_json::from_str(&model_task("Found: {{ steps.gather.output }}", json!({}))).unwrap();
    // `gather` ran no item, so it left no records to read.
    step::handle(&ctx, event(&task.to_string())).await;
    assert_eq!(
        converse.num_calls(),
        0,
        "without `lists`, a step with no records is an error"
    );
    let failures = fixture.failures.lock().unwrap().clone();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, errors::BAD_REFERENCE);

    let fixture = Fixture::new(None);
    let ctx = fixture.context(&[&converse]);
    task["lists"] = json!(["gather"]);
    step::handle(&ctx, event(&task.to_string())).await;
    assert_eq!(converse.num_calls(), 1, "the prompt rendered the empty list");
    assert_eq!(fixture.successes.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_priced_model_step_records_what_its_tokens_cost() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse).then_output(|| text_reply("An outline."));
    let ctx = fixture.context(&[&converse]);
    // 100 tokens in at $3 and 20 out at $15 per million: $0.0003 + $0.0003.
    let priced = json!({"price": {"input": 3.0, "output": 15.0}});
    step::handle(&ctx, event(&model_task("Plan", priced))).await;
    let (expression, finished) = fixture.update_with("finished_at = :now").expect("step finished");
    assert!(expression.contains("cost_usd = :cost"), "{expression}");
    assert_eq!(n(&finished, ":cost"), "0.0006");
}

#[tokio::test]
async fn structured_output_is_checked_and_exported() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse)
        .match_requests(|r| {
            let tools = r.tool_config().unwrap();
            tools.tools()[0].as_tool_spec().unwrap().name() == "garden_output" && tools.tool_choice().unwrap().is_tool()
        })
        .then_output(|| answer(json!({"sections": ["a", "b", "c"]})));
    let ctx = fixture.context(&[&converse]);
    let body = model_task(
        "Plan",
        json!({"output_schema": {"type": "object", "required": ["sections"]}}),
    );
    step::handle(&ctx, event(&body)).await;
    assert_eq!(converse.num_calls(), 1);
    let sent: Value = serde_json::from_str(&fixture.successes.lock().unwrap()[0]).unwrap();
    assert_eq!(sent["exports"]["sections"], json!([0, 1, 2]));
}

#[tokio::test]
async fn an_invalid_answer_is_repaired_once() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse)
        .sequence()
        .output(|| answer(json!({"wrong": true})))
        .output(|| answer(json!({"sections": ["a"]})))
        .build();
    let ctx = fixture.context(&[&converse]);
    let body = model_task(
        "Plan",
        json!({"output_schema": {"type": "object", "required": ["sections"]}}),
    );
    step::handle(&ctx, event(&body)).await;
    assert_eq!(converse.num_calls(), 2);
    assert_eq!(fixture.successes.lock().unwrap().len(), 1);
    let (_, finished) = fixture.update_with("finished_at = :now, duration_ms").unwrap();
    assert_eq!(n(&finished, ":input_tokens"), "200", "tokens of both calls");
}

#[tokio::test]
async fn an_answer_invalid_twice_fails_with_invalid_output() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse).then_output(|| answer(json!({"wrong": true})));
    let ctx = fixture.context(&[&converse]);
    let body = model_task(
        "Plan",
        json!({"output_schema": {"type": "object", "required": ["sections"]}}),
    );
    let response = step::handle(&ctx, event(&body)).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a failed step is an answered task"
    );
    assert_eq!(converse.num_calls(), 2);
    let (error, cause) = fixture.failures.lock().unwrap()[0].clone();
    assert_eq!(error, errors::INVALID_OUTPUT);
    let cause: Value = serde_json::from_str(&cause).unwrap();
    assert_eq!(cause["step"], "outline");
    assert!(cause["message"].as_str().unwrap().contains("sections"), "{cause}");
    let (_, failed) = fixture.update_with(":failed").unwrap();
    assert_eq!(s(&failed, ":error"), errors::INVALID_OUTPUT);
}

#[tokio::test]
async fn throttling_is_retried_then_succeeds() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse)
        .sequence()
        .error(throttled)
        .times(2)
        .output(|| text_reply("done"))
        .build();
    let ctx = fixture.context(&[&converse]);
    step::handle(&ctx, event(&model_task("Plan", json!({})))).await;
    assert_eq!(converse.num_calls(), 3);
    let (_, finished) = fixture.update_with("finished_at = :now, duration_ms").unwrap();
    assert_eq!(n(&finished, ":attempts"), "3");
    assert_eq!(fixture.successes.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn throttling_past_the_policy_fails_as_throttled() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse).then_error(throttled);
    let ctx = fixture.context(&[&converse]);
    step::handle(&ctx, event(&model_task("Plan", json!({})))).await;
    assert_eq!(
        converse.num_calls(),
        3,
        "the policy allows 3 attempts, the SDK adds none"
    );
    assert_eq!(fixture.failures.lock().unwrap()[0].0, errors::THROTTLED);
    let (_, failed) = fixture.update_with(":failed").unwrap();
    assert_eq!(n(&failed, ":attempts"), "3");
}

#[tokio::test]
async fn a_rejected_request_is_not_retried() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse).then_error(|| {
        ConverseError::ValidationException(ValidationException::builder().message("bad model id").build())
    });
    let ctx = fixture.context(&[&converse]);
    step::handle(&ctx, event(&model_task("Plan", json!({})))).await;
    assert_eq!(converse.num_calls(), 1);
    assert_eq!(fixture.failures.lock().unwrap()[0].0, errors::PROVIDER_REJECTED);
}

#[tokio::test]
async fn a_server_error_is_transient_then_unavailable() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let ctx = fixture.context(&[&converse]);
    step::handle(&ctx, event(&model_task("Plan", json!({})))).await;
    assert_eq!(converse.num_calls(), 3);
    assert_eq!(fixture.failures.lock().unwrap()[0].0, errors::PROVIDER_UNAVAILABLE);
}

#[tokio::test]
async fn a_missing_reference_fails_as_bad_reference() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse).then_output(|| text_reply("never"));
    let ctx = fixture.context(&[&converse]);
    step::handle(&ctx, event(&model_task("Use {{ steps.ghost.output }}", json!({})))).await;
    assert_eq!(converse.num_calls(), 0);
    let (error, cause) = fixture.failures.lock().unwrap()[0].clone();
    assert_eq!(error, errors::BAD_REFERENCE);
    assert!(cause.contains("ghost"), "{cause}");
}

#[tokio::test]
async fn a_for_each_item_reads_its_element() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse)
        .match_requests(|r| r.messages()[0].content()[0].as_text().unwrap() == "Write risks for markets")
        .then_output(|| text_reply("ok"));
    let ctx = fixture.context(&[&converse]);
    let mut body: Value = serde_json::from_str(&model_task(
        "Write {{ item }} for {{ input.topic }}",
        json!({
            "for_each": "{{ steps.earlier.output.sections }}"
        }),
    ))
    .unwrap();
    body["item"] = json!(1);
    // The item has its own step item: STEP#outline#000001 is unknown to the
    // fixture, so it reads as not yet run.
    step::handle(&ctx, event(&body.to_string())).await;
    assert_eq!(converse.num_calls(), 1);
    let sent: Value = serde_json::from_str(&fixture.successes.lock().unwrap()[0]).unwrap();
    assert_eq!(sent["item"], 1);
}

/// Every item reads the same list: the worker reads it from DynamoDB once.
#[tokio::test]
async fn the_items_of_a_for_each_read_their_list_once_per_worker() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse).then_output(|| text_reply("ok"));
    let ctx = fixture.context(&[&converse]);
    let mut body: Value = serde_json::from_str(&model_task(
        "Write {{ item }}",
        json!({"for_each": "{{ steps.earlier.output.sections }}"}),
    ))
    .unwrap();
    for index in 0..3 {
        body["item"] = json!(index);
        step::handle(&ctx, event(&body.to_string())).await;
    }
    assert_eq!(converse.num_calls(), 3);
    assert_eq!(fixture.successes.lock().unwrap().len(), 3);
    let earlier = &fixture.rules[1];
    assert_eq!(earlier.num_calls(), 1, "the list is read once, not once per item");
    assert_eq!(ctx.outputs.len(), 1);
}

#[tokio::test]
async fn a_duplicate_delivery_answers_again_without_the_provider() {
    let stored = item(&[
        ("PK", "JOB#job-1"),
        ("SK", "STEP#outline"),
        ("status", "SUCCEEDED"),
        ("output", "\"An outline.\""),
        ("result", r#"{"step":"outline","exports":{"sections":[]}}"#),
    ]);
    let fixture = Fixture::new(Some(stored));
    let converse = mock!(Bedrock::converse).then_output(|| text_reply("again"));
    let ctx = fixture.context(&[&converse]);
    let response = step::handle(&ctx, event(&model_task("Plan", json!({})))).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(converse.num_calls(), 0);
    assert_eq!(
        fixture.successes.lock().unwrap().as_slice(),
        [r#"{"step":"outline","exports":{"sections":[]}}"#]
    );
    assert!(fixture.updates.lock().unwrap().is_empty(), "nothing is written again");
}

#[tokio::test]
async fn a_duplicate_of_a_timed_out_task_is_dropped() {
    let stored = item(&[
        ("PK", "JOB#job-1"),
        ("SK", "STEP#outline"),
        ("status", "SUCCEEDED"),
        ("result", r#"{"step":"outline","exports":{}}"#),
    ]);
    let fixture = Fixture::new(Some(stored));
    let gone = mock!(Sfn::send_task_success)
        .then_error(|| SendTaskSuccessError::TaskTimedOut(TaskTimedOut::builder().build()));
    let ctx = Mocks {
        ddb: fixture.rules.iter().collect(),
        sfn: vec![&gone],
        ..Mocks::default()
    }
    .context();
    let response = step::handle(&ctx, event(&model_task("Plan", json!({})))).await;
    assert!(response.batch_item_failures.is_empty(), "the message is deleted");
    assert_eq!(gone.num_calls(), 1);
}

#[tokio::test]
async fn an_unreadable_task_with_a_token_fails_as_bad_task() {
    let fixture = Fixture::new(None);
    let ctx = fixture.context(&[]);
    let response = step::handle(
        &ctx,
        event(r#"{"token":"token-1","step":"outline","spec":{"kind":"nope"}}"#),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    let (error, cause) = fixture.failures.lock().unwrap()[0].clone();
    assert_eq!(error, errors::BAD_TASK);
    assert!(cause.contains("outline"));
    let response = step::handle(&ctx, event("not even json")).await;
    assert!(response.batch_item_failures.is_empty(), "dropped");
    assert_eq!(
        fixture.failures.lock().unwrap().len(),
        1,
        "nothing to fail without a token"
    );
}

#[tokio::test]
async fn an_approval_parks_its_token() {
    let fixture = Fixture::new(None);
    let ctx = fixture.context(&[]);
    let body = json!({
        "token": "token-approve", "job_id": "job-1", "workflow": "brief", "step": "outline",
        "spec": {"kind": "approval", "notify": "reviewers", "message": "Check it"},
    });
    let response = step::handle(&ctx, event(&body.to_string())).await;
    assert!(response.batch_item_failures.is_empty());
    let (_, parked) = fixture.update_with("task_token").unwrap();
    assert_eq!(s(&parked, ":waiting"), "WAITING_APPROVAL");
    assert_eq!(s(&parked, ":token"), "token-approve");
    assert!(fixture.successes.lock().unwrap().is_empty() && fixture.failures.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_output_step_stores_the_job_output() {
    let fixture = Fixture::new(None);
    let ctx = fixture.context(&[]);
    let body = json!({
        "token": "token-out", "job_id": "job-1", "workflow": "brief", "step": "outline",
        "spec": {"kind": "output", "output": {"topic": "{{ input.topic }}", "parts": "{{ steps.earlier.output.sections }}"}},
    });
    step::handle(&ctx, event(&body.to_string())).await;
    let (_, job) = fixture
        .update_with("SET #output = :output, updated_at = :now REMOVE output_chunks")
        .unwrap();
    let output: Value = serde_json::from_str(&s(&job, ":output")).unwrap();
    assert_eq!(
        output,
        json!({"topic": "markets", "parts": ["intro", "risks", "outlook"]})
    );
    assert_eq!(fixture.successes.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn heartbeats_and_visibility_keep_a_slow_call_alive() {
    let fixture = Fixture::new(None);
    let ctx = fixture.context(&[]);
    let receipt = Receipt {
        queue_url: "http://sqs.local/garden-model".into(),
        receipt_handle: "r".into(),
    };
    let slow = tokio::time::sleep(Duration::from_secs(65));
    let kept = keepalive::keep_alive(&ctx, "token-1", Some(&receipt), Duration::from_secs(20), slow).await;
    assert!(matches!(kept, Kept::Done(())));
    assert_eq!(fixture.heartbeats.num_calls(), 3, "at 20, 40 and 60 s");
    assert_eq!(fixture.visibility.num_calls(), 3);
}

/// Under Lambda the message arrives with the queue's visibility (at least the
/// function timeout): the step brings it down to the worker's own before the
/// provider is called, so a function that dies at once gives the step back
/// within that time. The local loop receives with it already and sends nothing.
#[tokio::test(start_paused = true)]
async fn under_lambda_a_step_brings_its_message_visibility_down_as_it_starts() {
    for lambda in [true, false] {
        let fixture = Fixture::new(None);
        let converse = mock!(Bedrock::converse).then_output(|| text_reply("done"));
        let mut ctx = fixture.context(&[&converse]);
        ctx.settings.visibility_at_start = lambda;
        ctx.settings.visibility_timeout_secs = 25;
        step::handle(&ctx, event(&model_task("Plan", json!({})))).await;
        assert_eq!(converse.num_calls(), 1);
        assert_eq!(fixture.successes.lock().unwrap().len(), 1);
        assert_eq!(fixture.heartbeats.num_calls(), 0, "the call took no time");
        let expected: &[i32] = if lambda { &[25] } else { &[] };
        assert_eq!(
            *fixture.visibility_secs.lock().unwrap(),
            expected,
            "under Lambda: {lambda}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_task_stops_the_work() {
    let gone = mock!(Sfn::send_task_heartbeat)
        .then_error(|| SendTaskHeartbeatError::TaskTimedOut(TaskTimedOut::builder().build()));
    let ctx = Mocks {
        sfn: vec![&gone],
        ..Mocks::default()
    }
    .context();
    let endless = std::future::pending::<()>();
    let kept = keepalive::keep_alive(&ctx, "token-1", None, Duration::from_secs(5), endless).await;
    assert!(matches!(kept, Kept::Gone));
}

#[tokio::test(start_paused = true)]
async fn heartbeats_run_during_backoff() {
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse)
        .sequence()
        .error(throttled)
        .times(3)
        .output(|| text_reply("done"))
        .build();
    let ctx = fixture.context(&[&converse]);
    let body = model_task(
        "Plan",
        json!({
            "retry": {"attempts": 4, "backoff_ms": 40000, "max_delay_ms": 40000},
            "heartbeat_secs": 3
        }),
    );
    step::handle(&ctx, event(&body)).await;
    assert_eq!(converse.num_calls(), 4);
    assert_eq!(fixture.successes.lock().unwrap().len(), 1);
    // Three full-jitter backoffs of up to 40 s each, a heartbeat every second.
    let beats = fixture.heartbeats.num_calls();
    assert!(beats >= 1, "no heartbeat during {beats} backoffs");
    assert_eq!(
        beats,
        fixture.visibility.num_calls(),
        "each heartbeat extends the visibility"
    );
}

fn agent_task(session: &str) -> String {
    json!({
        "token": "token-1", "job_id": "job-1", "workflow": "brief", "step": "outline",
        "spec": {
            "kind": "agent",
            "runtime": {"name": "writer", "arn": "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/writer"},
            "session": session,
            "payload": {"topic": "{{ input.topic }}"},
            "retry": {"attempts": 2, "backoff_ms": 10, "max_delay_ms": 20},
        },
        "exports": [{"name": "confidence", "path": "confidence"}],
    })
    .to_string()
}

#[tokio::test]
async fn an_agent_step_keeps_one_session_per_job() {
    use aws_sdk_bedrockagentcore::Client as AgentCore;
    use aws_sdk_bedrockagentcore::operation::invoke_agent_runtime::InvokeAgentRuntimeOutput;
    let fixture = Fixture::new(None);
    let expected = crate::providers::agent::session_id(
        "job-1",
        "writer",
        garden_workflows::wire::SessionScope::PerJob,
        "outline",
        None,
    );
    let invoke = mock!(AgentCore::invoke_agent_runtime)
        .match_requests(move |r| {
            let payload: Value = serde_json::from_slice(r.payload().unwrap().as_ref()).unwrap();
            r.runtime_session_id() == Some(expected.as_str()) && payload == json!({"topic": "markets"})
        })
        .then_output(|| {
            InvokeAgentRuntimeOutput::builder()
                .content_type("text/event-stream")
                .response(aws_smithy_types::byte_stream::ByteStream::from_static(
                    b"data: {\"delta\": \"Draft\"}\n\ndata: {\"draft\": \"Draft\", \"confidence\": 0.6}\n\n",
                ))
                .build()
                .unwrap()
        });
    let ctx = fixture.context_with(&[], &[&invoke]);
    step::handle(&ctx, event(&agent_task("per-job"))).await;
    assert_eq!(invoke.num_calls(), 1);
    let sent: Value = serde_json::from_str(&fixture.successes.lock().unwrap()[0]).unwrap();
    assert_eq!(sent["exports"]["confidence"], json!(0.6));
}

#[tokio::test]
async fn an_agent_failure_is_an_agent_error() {
    use aws_sdk_bedrockagentcore::Client as AgentCore;
    use aws_sdk_bedrockagentcore::operation::invoke_agent_runtime::InvokeAgentRuntimeError;
    use aws_sdk_bedrockagentcore::types::error::RuntimeClientError;
    let fixture = Fixture::new(None);
    let invoke = mock!(AgentCore::invoke_agent_runtime).then_error(|| {
        InvokeAgentRuntimeError::RuntimeClientError(RuntimeClientError::builder().message("agent raised").build())
    });
    let ctx = fixture.context_with(&[], &[&invoke]);
    step::handle(&ctx, event(&agent_task("per-step"))).await;
    assert_eq!(invoke.num_calls(), 1, "an agent failure is not retried");
    let (error, cause) = fixture.failures.lock().unwrap()[0].clone();
    assert_eq!(error, errors::AGENT_ERROR);
    assert!(cause.contains("agent raised"), "{cause}");
}

#[tokio::test]
async fn an_agent_throttled_past_the_policy_is_throttled() {
    use aws_sdk_bedrockagentcore::Client as AgentCore;
    use aws_sdk_bedrockagentcore::operation::invoke_agent_runtime::InvokeAgentRuntimeError;
    use aws_sdk_bedrockagentcore::types::error::ThrottlingException as AgentThrottled;
    let fixture = Fixture::new(None);
    let invoke = mock!(AgentCore::invoke_agent_runtime)
        .then_error(|| InvokeAgentRuntimeError::ThrottlingException(AgentThrottled::builder().build()));
    let ctx = fixture.context_with(&[], &[&invoke]);
    step::handle(&ctx, event(&agent_task("per-job"))).await;
    assert_eq!(invoke.num_calls(), 2);
    assert_eq!(fixture.failures.lock().unwrap()[0].0, errors::THROTTLED);
}

#[tokio::test]
async fn a_lambda_event_fixture_round_trips() {
    // An SQS event as Lambda delivers it, and the partial batch response it gets.
    let fixture = Fixture::new(None);
    let converse = mock!(Bedrock::converse).then_output(|| text_reply("ok"));
    let ctx = fixture.context(&[&converse]);
    let body = model_task("Plan", json!({}));
    let raw = json!({"Records": [
        {
            "messageId": "m-good", "receiptHandle": "r-1", "body": body,
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:garden-model",
            "awsRegion": "us-east-1"
        }
    ]});
    let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(raw).unwrap();
    let response = step::handle(&ctx, event).await;
    let written = serde_json::to_value(&response).unwrap();
    assert_eq!(written, json!({"batchItemFailures": []}));
    assert_eq!(converse.num_calls(), 1);
}
