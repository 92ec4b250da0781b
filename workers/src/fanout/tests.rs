//! The fan-out against mocked clients: the first window, an item's successor
//! and count, the opening at zero, duplicates and failures, through the step
//! worker as the queues deliver them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_bedrockruntime::Client as Bedrock;
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::types::error::ValidationException;
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, ConverseOutput as Reply, Message, StopReason};
use aws_sdk_dynamodb::Client as Ddb;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_sfn::Client as Sfn;
use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureOutput;
use aws_sdk_sfn::operation::send_task_heartbeat::SendTaskHeartbeatOutput;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput;
use aws_sdk_sqs::Client as Sqs;
use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityOutput;
use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlOutput;
use aws_sdk_sqs::operation::send_message::SendMessageOutput;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_smithy_mocks::{Rule, mock};
use garden_workflows::wire::{TaskMessage, errors};
use serde_json::{Value, json};

use crate::step;
use crate::tests::{Item, Mocks, event, key_of};

const QUEUE: &str = "http://sqs.local/garden-model";

fn attrs(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The fan-out record as the item worker finds it.
fn fan_record(extra: &[(&str, AttributeValue)]) -> Item {
    let mut item = attrs(&[
        ("PK", s("JOB#job-1")),
        ("SK", s("FANOUT#each")),
        ("total", n(5)),
        ("remaining", n(5)),
        ("token", s("token-fan")),
        ("token_attempt", n(0)),
    ]);
    item.extend(attrs(extra));
    item
}

fn item_spec() -> Value {
    json!({
        "kind": "model",
        "model_id": "anthropic.claude-3-5-haiku-20241022-v1:0",
        "prompt": "Item {{ item }}",
        "for_each": "{{ steps.items.output.items }}",
        "retry": {"attempts": 1, "backoff_ms": 1, "max_delay_ms": 1},
    })
}

fn start_task(concurrency: u64) -> String {
    start_task_with(concurrency, item_spec())
}

fn start_task_with(concurrency: u64, item: Value) -> String {
    json!({
        "token": "token-fan", "job_id": "job-1", "workflow": "brief", "step": "each", "attempt": 0,
        "spec": {"kind": "fan_out", "item": item, "concurrency": concurrency, "queue_url": QUEUE},
    })
    .to_string()
}

fn item_task(index: u64) -> String {
    json!({
        "job_id": "job-1", "workflow": "brief", "step": "each", "attempt": 0, "item": index,
        "spec": item_spec(), "fan": {"total": 5, "concurrency": 2, "queue_url": QUEUE},
    })
    .to_string()
}

/// What the mocked services were asked, in order (`"<op> <detail>"`).
type Log = Arc<Mutex<Vec<String>>>;

/// The AWS side of a fan-out test. `writes` answers UpdateItem by sort key
/// and expression: `Some(item)` writes and returns it, `None` fails the
/// condition. Unlisted reads find nothing.
struct World {
    items: usize,
    reads: Vec<(String, Item)>,
    writes: Vec<(&'static str, &'static str, Option<Item>)>,
    converse: Result<&'static str, ()>,
}

impl World {
    fn new(items: usize) -> Self {
        World {
            items,
            reads: Vec::new(),
            writes: Vec::new(),
            converse: Ok("ok"),
        }
    }

    fn read(mut self, sk: &str, item: Item) -> Self {
        self.reads.push((sk.to_owned(), item));
        self
    }

    fn write(mut self, sk: &'static str, expression: &'static str, result: Option<Item>) -> Self {
        self.writes.push((sk, expression, result));
        self
    }

    /// Runs one message through the step worker; returns what happened.
    async fn deliver(&self, body: &str) -> (Log, Vec<TaskMessage>, bool) {
        let log: Log = Arc::default();
        let sent: Arc<Mutex<Vec<TaskMessage>>> = Arc::default();
        let mut ddb = vec![self.spy(&log)];
        let items = json!({"items": (0..self.items).collect::<Vec<_>>()}).to_string();
        ddb.push(self.get(
            "STEP#items",
            attrs(&[
                ("SK", s("STEP#items")),
                ("status", s("SUCCEEDED")),
                ("output", s(&items)),
            ]),
        ));
        for (sk, item) in &self.reads {
            ddb.push(self.get(sk, item.clone()));
        }
        ddb.push(mock!(Ddb::get_item).then_output(|| GetItemOutput::builder().build()));
        for (sk, expression, result) in self.writes.clone() {
            let rule = mock!(Ddb::update_item).match_requests(move |r| {
                key_of(r.key()).1 == sk && r.update_expression().unwrap_or_default().contains(expression)
            });
            ddb.push(match result {
                Some(item) => {
                    rule.then_output(move || UpdateItemOutput::builder().set_attributes(Some(item.clone())).build())
                }
                None => rule.then_error(|| {
                    UpdateItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
                }),
            });
        }
        ddb.push(mock!(Ddb::update_item).then_output(|| UpdateItemOutput::builder().build()));
        ddb.push(mock!(Ddb::query).then_output(|| QueryOutput::builder().build()));

        let (log_sqs, log_batch, sent_one, sent_batch) = (log.clone(), log.clone(), sent.clone(), sent.clone());
        let sqs = [
            mock!(Sqs::send_message)
                .match_requests(move |r| {
                    let message: TaskMessage = serde_json::from_str(r.message_body().unwrap()).unwrap();
                    log_sqs
                        .lock()
                        .unwrap()
                        .push(format!("SendMessage item {}", message.item.unwrap()));
                    sent_one.lock().unwrap().push(message);
                    r.queue_url() == Some(QUEUE)
                })
                .then_output(|| SendMessageOutput::builder().build()),
            mock!(Sqs::send_message_batch)
                .match_requests(move |r| {
                    log_batch
                        .lock()
                        .unwrap()
                        .push(format!("SendMessageBatch {}", r.entries().len()));
                    for entry in r.entries() {
                        sent_batch
                            .lock()
                            .unwrap()
                            .push(serde_json::from_str(entry.message_body()).unwrap());
                    }
                    r.queue_url() == Some(QUEUE)
                })
                .then_output(|| {
                    SendMessageBatchOutput::builder()
                        .set_successful(Some(vec![]))
                        .set_failed(Some(vec![]))
                        .build()
                        .unwrap()
                }),
            mock!(Sqs::get_queue_url).then_output(|| GetQueueUrlOutput::builder().queue_url(QUEUE).build()),
            mock!(Sqs::change_message_visibility).then_output(|| ChangeMessageVisibilityOutput::builder().build()),
        ];
        let (log_ok, log_failed, log_beat) = (log.clone(), log.clone(), log.clone());
        let sfn = [
            mock!(Sfn::send_task_success)
                .match_requests(move |r| {
                    let output = r.output().unwrap_or_default();
                    log_ok.lock().unwrap().push(format!(
                        "SendTaskSuccess {} {output}",
                        r.task_token().unwrap_or_default()
                    ));
                    true
                })
                .then_output(|| SendTaskSuccessOutput::builder().build()),
            mock!(Sfn::send_task_failure)
                .match_requests(move |r| {
                    let line = format!(
                        "SendTaskFailure {} {} {}",
                        r.task_token().unwrap_or_default(),
                        r.error().unwrap_or_default(),
                        r.cause().unwrap_or_default()
                    );
                    log_failed.lock().unwrap().push(line);
                    true
                })
                .then_output(|| SendTaskFailureOutput::builder().build()),
            mock!(Sfn::send_task_heartbeat)
                .match_requests(move |_| {
                    log_beat.lock().unwrap().push("SendTaskHeartbeat".into());
                    true
                })
                .then_output(|| SendTaskHeartbeatOutput::builder().build()),
        ];
        let log_model = log.clone();
        let reply = self.converse;
        let converse = mock!(Bedrock::converse).match_requests(move |r| {
            let prompt = r.messages()[0].content()[0].as_text().unwrap().clone();
            log_model.lock().unwrap().push(format!("Converse {prompt}"));
            true
        });
        let bedrock = [match reply {
            Ok(text) => converse.then_output(move || text_reply(text)),
            Err(()) => converse.then_error(|| {
                ConverseError::ValidationException(ValidationException::builder().message("bad request").build())
            }),
        }];

        let ctx = Mocks {
            ddb: ddb.iter().collect(),
            sfn: sfn.iter().collect(),
            sqs: sqs.iter().collect(),
            bedrock: bedrock.iter().collect(),
            ..Mocks::default()
        }
        .context();
        let response = step::handle(&ctx, event(body)).await;
        let sent = sent.lock().unwrap().clone();
        (log, sent, response.batch_item_failures.is_empty())
    }

    fn get(&self, sk: &str, item: Item) -> Rule {
        let sk = sk.to_owned();
        mock!(Ddb::get_item)
            .match_requests(move |r| key_of(r.key()).1 == sk)
            .then_output(move || GetItemOutput::builder().set_item(Some(item.clone())).build())
    }

    /// Logs every DynamoDB write, matching none.
    fn spy(&self, log: &Log) -> Rule {
        let log = log.clone();
        mock!(Ddb::update_item)
            .match_requests(move |r| {
                let (_, sk) = key_of(r.key());
                log.lock()
                    .unwrap()
                    .push(format!("UpdateItem {sk} {}", r.update_expression().unwrap_or_default()));
                false
            })
            .then_output(|| UpdateItemOutput::builder().build())
    }
}

fn text_reply(text: &str) -> ConverseOutput {
    ConverseOutput::builder()
        .output(Reply::Message(
            Message::builder()
                .role(ConversationRole::Assistant)
                .content(ContentBlock::Text(text.to_owned()))
                .build()
                .unwrap(),
        ))
        .stop_reason(StopReason::EndTurn)
        .build()
        .unwrap()
}

fn lines(log: &Log, prefix: &str) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|line| line.starts_with(prefix))
        .cloned()
        .collect()
}

fn position(log: &Log, needle: &str) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in {:?}", log.lock().unwrap()))
}

#[tokio::test]
async fn start_records_the_fan_out_and_sends_the_first_window() {
    let world = World::new(25).write(
        "FANOUT#each",
        "#token",
        Some(fan_record(&[("total", n(25)), ("remaining", n(25))])),
    );
    let (log, sent, ok) = world.deliver(&start_task(12)).await;
    assert!(ok);
    assert_eq!(
        lines(&log, "SendMessageBatch"),
        ["SendMessageBatch 10", "SendMessageBatch 2"]
    );
    let indices: Vec<u64> = sent.iter().map(|m| m.item.unwrap()).collect();
    assert_eq!(indices, (0..12).collect::<Vec<_>>(), "items 0..concurrency, each once");
    for message in &sent {
        assert_eq!(message.token, "", "no Task waits on an item");
        assert_eq!((message.step.as_str(), message.attempt), ("each", 0));
        let fan = message.fan.as_ref().unwrap();
        assert_eq!((fan.total, fan.concurrency, fan.queue_url.as_str()), (25, 12, QUEUE));
        let spec: garden_workflows::wire::StepSpec = serde_json::from_value(item_spec()).unwrap();
        assert_eq!(message.spec, spec, "the item runs the fan-out's item spec");
    }
    assert!(lines(&log, "SendTask").is_empty(), "the Task waits for the items");
    assert_eq!(lines(&log, "Converse").len(), 0);
}

#[tokio::test]
async fn large_item_messages_go_in_smaller_batches() {
    let mut spec = item_spec();
    spec["prompt"] = json!(format!("{} {{{{ item }}}}", "x".repeat(60_000)));
    let world = World::new(25).write(
        "FANOUT#each",
        "#token",
        Some(fan_record(&[("total", n(25)), ("remaining", n(25))])),
    );
    let (log, sent, ok) = world.deliver(&start_task_with(12, spec)).await;
    assert!(ok);
    assert_eq!(
        lines(&log, "SendMessageBatch"),
        ["SendMessageBatch 4", "SendMessageBatch 4", "SendMessageBatch 4"],
        "four messages of 60 KB stay under the 256 KB a batch carries"
    );
    assert_eq!(sent.len(), 12);
}

#[tokio::test]
async fn start_with_fewer_items_than_the_window_sends_them_all() {
    let world = World::new(3).write(
        "FANOUT#each",
        "#token",
        Some(fan_record(&[("total", n(3)), ("remaining", n(3))])),
    );
    let (_, sent, ok) = world.deliver(&start_task(8)).await;
    assert!(ok);
    assert_eq!(sent.iter().map(|m| m.item.unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
}

#[tokio::test]
async fn start_with_no_items_succeeds_at_once() {
    let opened = fan_record(&[
        ("total", n(0)),
        ("remaining", n(0)),
        ("opened", AttributeValue::Bool(true)),
        ("outcome", s("SUCCEEDED")),
    ]);
    let world = World::new(0)
        .write(
            "FANOUT#each",
            "#token",
            Some(fan_record(&[("total", n(0)), ("remaining", n(0))])),
        )
        .write("FANOUT#each", "SET opened", Some(opened));
    let (log, sent, ok) = world.deliver(&start_task(8)).await;
    assert!(ok);
    assert!(sent.is_empty());
    assert_eq!(
        lines(&log, "SendTaskSuccess"),
        [r#"SendTaskSuccess token-fan {"step":"each","exports":{}}"#]
    );
}

#[tokio::test]
async fn a_stale_start_sends_nothing() {
    // Both register writes fail their condition: a newer attempt owns the fan-out.
    let world = World::new(5).write("FANOUT#each", "#token", None);
    let (log, sent, ok) = world.deliver(&start_task(2)).await;
    assert!(ok && sent.is_empty());
    assert_eq!(
        lines(&log, "UpdateItem FANOUT#each").len(),
        2,
        "same attempt, then newer"
    );
    assert!(lines(&log, "SendTask").is_empty());
}

#[tokio::test]
async fn an_item_sends_its_successor_before_counting_itself() {
    let world = World::new(5).read("FANOUT#each", fan_record(&[])).write(
        "FANOUT#each#0#000000",
        "ADD done",
        Some(attrs(&[("remaining", n(4))])),
    );
    let (log, sent, ok) = world.deliver(&item_task(0)).await;
    assert!(ok);
    assert_eq!(lines(&log, "Converse"), ["Converse Item 0"], "the item runs once");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].item, Some(2), "item i + concurrency");
    assert_eq!(sent[0].token, "");
    assert_eq!(
        sent[0].fan,
        serde_json::from_str::<TaskMessage>(&item_task(0)).unwrap().fan
    );
    assert!(
        position(&log, "SendMessage item 2") < position(&log, "#000000 SET remaining"),
        "the successor goes out before the item is counted"
    );
    assert!(
        lines(&log, "UpdateItem FANOUT#each ").is_empty(),
        "the shard is not full yet"
    );
    assert!(lines(&log, "SendTask").is_empty(), "no token to answer, no heartbeat");
}

#[tokio::test]
async fn a_copy_of_an_item_that_finished_second_leaves_the_fan_out_to_the_first() {
    // SQS delivered item 0 twice and both copies ran: the other one claimed first.
    let world = World::new(5)
        .read("FANOUT#each", fan_record(&[]))
        .write("FANOUT#each#0#000000", "ADD handed_on", None);
    let (log, sent, ok) = world.deliver(&item_task(0)).await;
    assert!(ok);
    assert_eq!(lines(&log, "Converse"), ["Converse Item 0"], "this copy ran");
    assert!(
        sent.is_empty(),
        "only the first copy sends item 2, so the chain is not doubled"
    );
    assert!(
        lines(&log, "ADD done").is_empty(),
        "the first copy counts the item; if it died, its message comes back"
    );
    assert!(lines(&log, "SendTask").is_empty());
}

#[tokio::test]
async fn the_last_item_opens_the_fan_out_at_zero() {
    let opened = fan_record(&[
        ("remaining", n(0)),
        ("opened", AttributeValue::Bool(true)),
        ("outcome", s("SUCCEEDED")),
    ]);
    let world = World::new(5)
        .read("FANOUT#each", fan_record(&[]))
        .write("FANOUT#each#0#000000", "ADD done", Some(attrs(&[("remaining", n(0))])))
        .write(
            "FANOUT#each",
            "ADD done_shards",
            Some(fan_record(&[("remaining", n(0))])),
        )
        .write("FANOUT#each", "SET opened", Some(opened));
    let (log, sent, ok) = world.deliver(&item_task(4)).await;
    assert!(ok);
    assert!(sent.is_empty(), "item 4 + 2 is past the end");
    assert_eq!(
        lines(&log, "SendTaskSuccess"),
        [r#"SendTaskSuccess token-fan {"step":"each","exports":{}}"#]
    );
    assert!(position(&log, "ADD done_shards") < position(&log, "SET opened"));
}

#[tokio::test]
async fn a_duplicate_completion_changes_nothing() {
    let stored = attrs(&[
        ("SK", s("STEP#each#000000")),
        ("status", s("SUCCEEDED")),
        ("output", s("\"ok\"")),
        ("result", s(r#"{"step":"each","item":0,"exports":{}}"#)),
    ]);
    let shard = attrs(&[
        ("remaining", n(3)),
        ("done", AttributeValue::Ns(vec!["0".into(), "1".into()])),
    ]);
    let world = World::new(5)
        .read("FANOUT#each", fan_record(&[]))
        .read("STEP#each#000000", stored)
        .read("FANOUT#each#0#000000", shard);
    let (log, sent, ok) = world.deliver(&item_task(0)).await;
    assert!(ok);
    assert!(lines(&log, "Converse").is_empty(), "the provider is not called again");
    assert!(sent.is_empty(), "the successor went out before the first count");
    assert!(
        lines(&log, "UpdateItem").is_empty(),
        "nothing is written: {:?}",
        log.lock().unwrap()
    );
    assert!(lines(&log, "SendTask").is_empty());
}

#[tokio::test]
async fn a_repeated_item_that_was_not_counted_repairs_its_completion() {
    // The first delivery stored its output and died before sending item 2.
    let stored = attrs(&[
        ("SK", s("STEP#each#000000")),
        ("status", s("SUCCEEDED")),
        ("result", s(r#"{"step":"each","item":0,"exports":{}}"#)),
    ]);
    let world = World::new(5)
        .read("FANOUT#each", fan_record(&[]))
        .read("STEP#each#000000", stored)
        .write("FANOUT#each#0#000000", "ADD done", Some(attrs(&[("remaining", n(4))])));
    let (log, sent, ok) = world.deliver(&item_task(0)).await;
    assert!(ok);
    assert!(lines(&log, "Converse").is_empty());
    assert_eq!(sent.iter().map(|m| m.item).collect::<Vec<_>>(), [Some(2)]);
    assert_eq!(lines(&log, "UpdateItem FANOUT#each#0#000000").len(), 1, "counted once");
}

#[tokio::test]
async fn a_failed_item_fails_the_fan_out_with_its_error() {
    let cause = r#"{"item":3,"message":"bad request","step":"each"}"#;
    let claimed = fan_record(&[
        ("opened", AttributeValue::Bool(true)),
        ("outcome", s("FAILED")),
        ("failed_item", n(3)),
        ("failed_error", s(errors::PROVIDER_REJECTED)),
        ("failed_cause", s(cause)),
    ]);
    let mut world =
        World::new(5)
            .read("FANOUT#each", fan_record(&[]))
            .write("FANOUT#each", "failed_item", Some(claimed));
    world.converse = Err(());
    let (log, sent, ok) = world.deliver(&item_task(3)).await;
    assert!(ok);
    assert!(sent.is_empty(), "a failed item sends no successor");
    assert!(
        lines(&log, "UpdateItem STEP#each#000003 SET #status = :failed").len() == 1,
        "the failure is recorded"
    );
    let failures = lines(&log, "SendTaskFailure");
    assert_eq!(
        failures,
        [format!(
            "SendTaskFailure token-fan {} {cause}",
            errors::PROVIDER_REJECTED
        )]
    );
    assert!(
        lines(&log, "UpdateItem FANOUT#each#").is_empty(),
        "a failed item is not counted"
    );
}

#[tokio::test]
async fn items_of_a_failed_fan_out_are_dropped() {
    let failed = fan_record(&[
        ("opened", AttributeValue::Bool(true)),
        ("outcome", s("FAILED")),
        ("failed_item", n(1)),
        ("failed_error", s(errors::PROVIDER_REJECTED)),
        ("failed_cause", s("{}")),
    ]);
    let world = World::new(5).read("FANOUT#each", failed);
    let (log, sent, ok) = world.deliver(&item_task(3)).await;
    assert!(ok, "the message goes");
    assert!(lines(&log, "Converse").is_empty() && sent.is_empty() && lines(&log, "UpdateItem").is_empty());
    assert!(lines(&log, "SendTask").is_empty(), "only the failed item answers again");
}

#[tokio::test]
async fn items_of_an_older_attempt_are_dropped() {
    let world = World::new(5).read("FANOUT#each", fan_record(&[("token_attempt", n(1))]));
    let (log, sent, ok) = world.deliver(&item_task(0)).await;
    assert!(ok && sent.is_empty());
    assert!(lines(&log, "Converse").is_empty() && lines(&log, "UpdateItem").is_empty());
}

#[tokio::test]
async fn a_delivery_after_success_answers_again() {
    let opened = fan_record(&[
        ("remaining", n(0)),
        ("opened", AttributeValue::Bool(true)),
        ("outcome", s("SUCCEEDED")),
    ]);
    let world = World::new(5).read("FANOUT#each", opened);
    let (log, sent, ok) = world.deliver(&item_task(4)).await;
    assert!(ok && sent.is_empty());
    assert!(lines(&log, "Converse").is_empty());
    assert_eq!(
        lines(&log, "SendTaskSuccess").len(),
        1,
        "in case the claimer died before sending"
    );
}

#[tokio::test]
async fn an_item_without_a_token_keeps_its_message_but_sends_no_heartbeat() {
    let beat = mock!(Sfn::send_task_heartbeat).then_output(|| SendTaskHeartbeatOutput::builder().build());
    let visibility =
        mock!(Sqs::change_message_visibility).then_output(|| ChangeMessageVisibilityOutput::builder().build());
    let ctx = Mocks {
        sfn: vec![&beat],
        sqs: vec![&visibility],
        ..Mocks::default()
    }
    .context();
    let receipt = crate::keepalive::Receipt {
        queue_url: QUEUE.into(),
        receipt_handle: "r-1".into(),
    };
    let every = Duration::from_millis(10);
    let work = tokio::time::sleep(Duration::from_millis(55));
    let kept = crate::keepalive::keep_alive(&ctx, "", Some(&receipt), every, work).await;
    assert!(matches!(kept, crate::keepalive::Kept::Done(())));
    assert_eq!(beat.num_calls(), 0);
    assert!(
        visibility.num_calls() >= 3,
        "visibility extended {} times",
        visibility.num_calls()
    );
}

#[tokio::test]
async fn a_wide_step_output_joins_every_query_page_in_index_order() {
    let record = |i: u64| {
        attrs(&[
            ("SK", s(&format!("STEP#each#{i:06}"))),
            ("status", s("SUCCEEDED")),
            ("output", s(&json!({"tag": i}).to_string())),
        ])
    };
    let last_key = attrs(&[("PK", s("JOB#job-1")), ("SK", s("STEP#each#000002"))]);
    let first = {
        let last_key = last_key.clone();
        mock!(Ddb::query)
            .match_requests(|r| r.exclusive_start_key().is_none())
            .then_output(move || {
                QueryOutput::builder()
                    .set_items(Some((0..3).map(record).collect()))
                    .set_last_evaluated_key(Some(last_key.clone()))
                    .build()
            })
    };
    let second = mock!(Ddb::query)
        .match_requests(move |r| r.exclusive_start_key() == Some(&last_key))
        .then_output(move || {
            QueryOutput::builder()
                .set_items(Some((3..5).map(record).collect()))
                .build()
        });
    let absent = mock!(Ddb::get_item).then_output(|| GetItemOutput::builder().build());
    let ctx = Mocks {
        ddb: vec![&first, &second, &absent],
        ..Mocks::default()
    }
    .context();
    let output = crate::store::step_output(&ctx.clients.ddb, "garden", "job-1", "each")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        output,
        json!([{"tag": 0}, {"tag": 1}, {"tag": 2}, {"tag": 3}, {"tag": 4}])
    );
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}
