//! The dispatcher: rejections, idempotency, transient failures.

use aws_sdk_dynamodb::Client as Ddb;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::{ConditionalCheckFailedException, ProvisionedThroughputExceededException};
use aws_sdk_sfn::Client as Sfn;
use aws_sdk_sfn::operation::start_execution::{StartExecutionError, StartExecutionOutput};
use aws_sdk_sfn::types::error::ExecutionAlreadyExists;
use aws_smithy_mocks::{Rule, mock};

use super::{Item, Mocks, Seen, event, item, key_of, seen};
use crate::dispatcher::{self, Dispatched};

const ARN: &str = "arn:aws:states:us-east-1:000000000000:stateMachine:garden-brief";

fn registry(schema: &'static str) -> Rule {
    mock!(Ddb::get_item)
        .match_requests(|r| key_of(r.key()).0 == "WORKFLOW#brief")
        .then_output(move || {
            GetItemOutput::builder()
                .set_item(Some(item(&[
                    ("PK", "WORKFLOW#brief"),
                    ("SK", "WORKFLOW"),
                    ("state_machine_arn", ARN),
                    ("input_schema", schema),
                ])))
                .build()
        })
}

fn unknown_workflow() -> Rule {
    mock!(Ddb::get_item)
        .match_requests(|r| key_of(r.key()).0.starts_with("WORKFLOW#"))
        .then_output(|| GetItemOutput::builder().build())
}

/// Records every job item written.
fn put_job(writes: &Seen<Item>) -> Rule {
    let writes = writes.clone();
    mock!(Ddb::put_item)
        .match_requests(move |r| {
            writes.lock().unwrap().push(r.item().cloned().unwrap_or_default());
            true
        })
        .then_output(|| PutItemOutput::builder().build())
}

fn put_exists() -> Rule {
    mock!(Ddb::put_item).then_error(|| {
        PutItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
    })
}

fn update_ok(updates: &Seen<String>) -> Rule {
    let updates = updates.clone();
    mock!(Ddb::update_item)
        .match_requests(move |r| {
            let arn = match r.expression_attribute_values().and_then(|v| v.get(":arn")) {
                Some(AttributeValue::S(arn)) => arn.clone(),
                _ => String::new(),
            };
            updates.lock().unwrap().push(arn);
            true
        })
        .then_output(|| UpdateItemOutput::builder().build())
}

fn started() -> Rule {
    mock!(Sfn::start_execution)
        .match_requests(|r| r.name() == Some("job-1") && r.state_machine_arn() == Some(ARN))
        .then_output(|| {
            StartExecutionOutput::builder()
                .execution_arn("arn:aws:states:us-east-1:000000000000:execution:garden-brief:job-1")
                .start_date(aws_smithy_types::DateTime::from_secs(0))
                .build()
                .unwrap()
        })
}

fn job_pk_of(r: &aws_sdk_dynamodb::operation::put_item::PutItemInput) -> String {
    match r.item().and_then(|item| item.get("PK")) {
        Some(AttributeValue::S(pk)) => pk.clone(),
        _ => String::new(),
    }
}

const SCHEMA: &str = r#"{"type":"object","required":["topic"],"properties":{"topic":{"type":"string"}}}"#;

async fn rejected_reason(body: &str, ddb: Vec<&Rule>) -> (String, Item) {
    let writes = seen();
    let put = put_job(&writes);
    let start = started();
    let mut rules = ddb;
    rules.push(&put);
    let ctx = Mocks {
        ddb: rules,
        sfn: vec![&start],
        ..Mocks::default()
    }
    .context();
    let response = dispatcher::handle(&ctx, event(body)).await;
    assert!(response.batch_item_failures.is_empty(), "a rejection leaves the queue");
    assert_eq!(start.num_calls(), 0, "a rejected job starts nothing");
    let written = writes.lock().unwrap().pop().expect("a job item was written");
    let reason = match written.get("reason") {
        Some(AttributeValue::S(reason)) => reason.clone(),
        _ => panic!("no reason on {written:?}"),
    };
    assert_eq!(written.get("status"), Some(&AttributeValue::S("REJECTED".into())));
    (reason, written)
}

#[tokio::test]
async fn a_body_that_is_not_json_is_rejected() {
    let (reason, written) = rejected_reason("{not json", vec![]).await;
    assert!(reason.contains("not JSON"), "{reason}");
    assert_eq!(written.get("PK"), Some(&AttributeValue::S("JOB#m-msg-1".into())));
    assert_eq!(written.get("GSI1PK"), Some(&AttributeValue::S("WF#_rejected".into())));
}

#[tokio::test]
async fn an_unknown_field_is_rejected_by_name() {
    let (reason, _) = rejected_reason(r#"{"workflow":"brief","inptu":{}}"#, vec![]).await;
    assert!(reason.contains("inptu"), "{reason}");
}

#[tokio::test]
async fn an_unknown_workflow_is_rejected() {
    let unknown = unknown_workflow();
    let (reason, written) = rejected_reason(r#"{"workflow":"nope","input":{}}"#, vec![&unknown]).await;
    assert!(reason.contains("`nope` is not deployed"), "{reason}");
    assert_eq!(written.get("GSI1PK"), Some(&AttributeValue::S("WF#_rejected".into())));
}

#[tokio::test]
async fn input_failing_the_schema_is_rejected_with_its_path() {
    let known = registry(SCHEMA);
    let body = r#"{"workflow":"brief","input":{"topic":42},"job_id":"job-1"}"#;
    let (reason, written) = rejected_reason(body, vec![&known]).await;
    assert!(reason.contains("/topic"), "{reason}");
    assert_eq!(written.get("GSI1PK"), Some(&AttributeValue::S("WF#brief".into())));
    assert_eq!(written.get("PK"), Some(&AttributeValue::S("JOB#job-1".into())));
}

#[tokio::test]
async fn json_that_is_not_an_object_is_rejected_with_the_expected_shape() {
    let (reason, _) = rejected_reason("[1, 2, 3]", vec![]).await;
    assert!(
        reason.contains("not an array") && reason.contains(r#""workflow""#),
        "{reason}"
    );
}

#[tokio::test]
async fn a_message_without_input_says_so() {
    let known = registry(SCHEMA);
    let (reason, _) = rejected_reason(r#"{"workflow":"brief"}"#, vec![&known]).await;
    assert!(reason.starts_with("the message has no `input`"), "{reason}");
}

#[tokio::test]
async fn an_oversized_body_is_rejected() {
    let body = format!(
        r#"{{"workflow":"brief","input":{{"topic":"{}"}}}}"#,
        "x".repeat(300 * 1024)
    );
    let (reason, _) = rejected_reason(&body, vec![]).await;
    assert!(reason.contains("bytes, more than"), "{reason}");
}

#[tokio::test]
async fn a_valid_message_makes_a_job_and_an_execution() {
    let (writes, updates) = (seen(), seen());
    let (known, put, update, start) = (registry(SCHEMA), put_job(&writes), update_ok(&updates), started());
    let ctx = Mocks {
        ddb: vec![&known, &put, &update],
        sfn: vec![&start],
        ..Mocks::default()
    }
    .context();
    let body = r#"{"workflow":"brief","input":{"topic":"markets"},"job_id":"job-1"}"#;
    let outcome = dispatcher::process(&ctx, &event(body).records[0]).await.unwrap();
    assert!(
        matches!(outcome, Dispatched::Started { ref job_id, .. } if job_id == "job-1"),
        "{outcome:?}"
    );
    assert_eq!(start.num_calls(), 1);
    let written = writes.lock().unwrap()[0].clone();
    assert_eq!(written.get("status"), Some(&AttributeValue::S("RUNNING".into())));
    assert_eq!(
        written.get("input"),
        Some(&AttributeValue::S(r#"{"topic":"markets"}"#.into()))
    );
    assert!(updates.lock().unwrap()[0].ends_with(":execution:garden-brief:job-1"));
}

#[tokio::test]
async fn a_duplicate_of_a_started_job_starts_nothing() {
    let updates = seen();
    let (known, exists, update, start) = (registry(SCHEMA), put_exists(), update_ok(&updates), started());
    let job = mock!(Ddb::get_item)
        .match_requests(|r| key_of(r.key()).0 == "JOB#job-1")
        .then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(item(&[
                    ("PK", "JOB#job-1"),
                    ("SK", "JOB"),
                    ("job_id", "job-1"),
                    ("workflow", "brief"),
                    ("input", r#"{"topic":"markets"}"#),
                    ("status", "RUNNING"),
                    (
                        "execution_arn",
                        "arn:aws:states:us-east-1:000000000000:execution:garden-brief:job-1",
                    ),
                ])))
                .build()
        });
    let ctx = Mocks {
        ddb: vec![&known, &exists, &job, &update],
        sfn: vec![&start],
        ..Mocks::default()
    }
    .context();
    let body = r#"{"workflow":"brief","input":{"topic":"markets"},"job_id":"job-1"}"#;
    let response = dispatcher::handle(&ctx, event(body)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(start.num_calls(), 0);
    assert!(updates.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_job_id_reused_with_another_input_is_rejected_not_dropped() {
    let known = registry(SCHEMA);
    let exists = mock!(Ddb::put_item)
        .match_requests(|r| r.condition_expression() == Some("attribute_not_exists(PK)") && job_pk_of(r) == "JOB#job-1")
        .then_error(|| {
            PutItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
        });
    let job = mock!(Ddb::get_item)
        .match_requests(|r| key_of(r.key()).0 == "JOB#job-1")
        .then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(item(&[
                    ("PK", "JOB#job-1"),
                    ("SK", "JOB"),
                    ("job_id", "job-1"),
                    ("workflow", "brief"),
                    ("input", r#"{"topic":"markets"}"#),
                    ("status", "SUCCEEDED"),
                ])))
                .build()
        });
    let body = r#"{"workflow":"brief","input":{"topic":"rivers"},"job_id":"job-1"}"#;
    let (reason, written) = rejected_reason(body, vec![&known, &exists, &job]).await;
    assert!(
        reason.contains("already belongs to a job with another input"),
        "{reason}"
    );
    assert_ne!(
        written.get("PK"),
        Some(&AttributeValue::S("JOB#job-1".into())),
        "the first job is kept"
    );
}

#[tokio::test]
async fn a_duplicate_after_a_crash_before_the_start_starts_once() {
    let updates = seen();
    let (known, exists, update) = (registry(SCHEMA), put_exists(), update_ok(&updates));
    let job = mock!(Ddb::get_item)
        .match_requests(|r| key_of(r.key()).0 == "JOB#job-1")
        .then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(item(&[
                    ("PK", "JOB#job-1"),
                    ("SK", "JOB"),
                    ("job_id", "job-1"),
                    ("workflow", "brief"),
                    ("input", r#"{"topic":"markets"}"#),
                    ("status", "RUNNING"),
                ])))
                .build()
        });
    // The first delivery may have started it after all: the name is taken.
    let start = mock!(Sfn::start_execution)
        .then_error(|| StartExecutionError::ExecutionAlreadyExists(ExecutionAlreadyExists::builder().build()));
    let ctx = Mocks {
        ddb: vec![&known, &exists, &job, &update],
        sfn: vec![&start],
        ..Mocks::default()
    }
    .context();
    let body = r#"{"workflow":"brief","input":{"topic":"markets"},"job_id":"job-1"}"#;
    let outcome = dispatcher::process(&ctx, &event(body).records[0]).await.unwrap();
    assert!(matches!(outcome, Dispatched::Started { .. }), "{outcome:?}");
    assert_eq!(start.num_calls(), 1);
    assert_eq!(
        updates.lock().unwrap().as_slice(),
        ["arn:aws:states:us-east-1:000000000000:execution:garden-brief:job-1"]
    );
}

#[tokio::test]
async fn dynamodb_throttling_goes_back_to_the_queue() {
    let known = registry(SCHEMA);
    let throttled = mock!(Ddb::put_item).then_error(|| {
        PutItemError::ProvisionedThroughputExceededException(ProvisionedThroughputExceededException::builder().build())
    });
    let start = started();
    let ctx = Mocks {
        ddb: vec![&known, &throttled],
        sfn: vec![&start],
        ..Mocks::default()
    }
    .context();
    let response = dispatcher::handle(&ctx, event(r#"{"workflow":"brief","input":{"topic":"a"}}"#)).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, "msg-1");
    assert_eq!(start.num_calls(), 0);
}

#[tokio::test]
async fn step_functions_throttling_goes_back_to_the_queue() {
    let (writes, updates) = (seen(), seen());
    let (known, put, update) = (registry(SCHEMA), put_job(&writes), update_ok(&updates));
    let start = mock!(Sfn::start_execution).then_error(|| {
        StartExecutionError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    });
    let ctx = Mocks {
        ddb: vec![&known, &put, &update],
        sfn: vec![&start],
        ..Mocks::default()
    }
    .context();
    let body = r#"{"workflow":"brief","input":{"topic":"a"},"job_id":"job-1"}"#;
    let response = dispatcher::handle(&ctx, event(body)).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert!(updates.lock().unwrap().is_empty(), "no execution recorded");
}

#[tokio::test]
async fn known_workflows_are_cached_unknown_ones_are_not() {
    let writes = seen();
    let (known, unknown, put) = (registry(SCHEMA), unknown_workflow(), put_job(&writes));
    let ctx = Mocks {
        ddb: vec![&known, &unknown, &put],
        ..Mocks::default()
    }
    .context();
    for _ in 0..3 {
        dispatcher::handle(&ctx, event(r#"{"workflow":"brief","input":{}}"#)).await;
        dispatcher::handle(&ctx, event(r#"{"workflow":"nope"}"#)).await;
    }
    assert_eq!(known.num_calls(), 1);
    assert_eq!(unknown.num_calls(), 3);
}
