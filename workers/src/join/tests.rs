//! The gate Task and the finished notices against mocked clients, from the
//! task messages the state machine sends.

use aws_sdk_dynamodb::Client as Ddb;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::{ConditionalCheckFailedException, ProvisionedThroughputExceededException};
use aws_sdk_sfn::Client as Sfn;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput;
use aws_smithy_mocks::{Rule, mock};
use serde_json::{Value, json};

use crate::error::Retryable;
use crate::step;
use crate::tests::{Item, Mocks, Seen, event, key_of, seen};

/// A gate item as DynamoDB returns it after a write.
fn gate(sk: &str, deps: &[&str], remaining: u32, extra: &[(&str, AttributeValue)]) -> Item {
    let strings = |list: &[&str]| AttributeValue::Ss(list.iter().map(|d| (*d).to_owned()).collect());
    let mut item: Item = [
        ("PK", AttributeValue::S("JOB#job-1".into())),
        ("SK", AttributeValue::S(sk.into())),
        ("deps", strings(deps)),
        ("remaining", AttributeValue::N(remaining.to_string())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        item.insert((*k).to_owned(), v.clone());
    }
    item
}

fn token() -> (&'static str, AttributeValue) {
    ("token", AttributeValue::S("token-1".into()))
}

fn is_claim(r: &aws_sdk_dynamodb::operation::update_item::UpdateItemInput) -> bool {
    r.update_expression() == Some("SET opened = :true, opened_at = :now")
}

fn is_mark(r: &aws_sdk_dynamodb::operation::update_item::UpdateItemInput) -> bool {
    r.update_expression() == Some("SET sent = :true")
}

/// Answers the mark that an opened gate's answer went out.
fn marks() -> Rule {
    mock!(Ddb::update_item)
        .match_requests(is_mark)
        .then_output(|| UpdateItemOutput::builder().build())
}

/// Answers the claim of gate `sk` with `item`, recording that it was asked.
fn claim(sk: &'static str, item: Item) -> Rule {
    mock!(Ddb::update_item)
        .match_requests(move |r| is_claim(r) && key_of(r.key()).1 == sk)
        .then_output(move || UpdateItemOutput::builder().set_attributes(Some(item.clone())).build())
}

/// Answers every other write of gate `sk` with `item`, recording the
/// expression and its values.
fn write(sk: &'static str, item: Item, writes: &Seen<(String, Item)>) -> Rule {
    let writes = writes.clone();
    mock!(Ddb::update_item)
        .match_requests(move |r| {
            if is_claim(r) || is_mark(r) || key_of(r.key()).1 != sk {
                return false;
            }
            let expression = r.update_expression().unwrap_or_default().to_owned();
            writes
                .lock()
                .unwrap()
                .push((expression, r.expression_attribute_values().cloned().unwrap_or_default()));
            true
        })
        .then_output(move || UpdateItemOutput::builder().set_attributes(Some(item.clone())).build())
}

fn successes(outputs: &Seen<(String, Value)>) -> Rule {
    let outputs = outputs.clone();
    mock!(Sfn::send_task_success)
        .match_requests(move |r| {
            let output = serde_json::from_str(r.output().unwrap_or_default()).unwrap();
            let token = r.task_token().unwrap_or_default().to_owned();
            outputs.lock().unwrap().push((token, output));
            true
        })
        .then_output(|| SendTaskSuccessOutput::builder().build())
}

fn gate_message(values: &[&str]) -> String {
    json!({
        "token": "token-1",
        "job_id": "job-1",
        "workflow": "n-shape",
        "step": "c",
        "attempt": 0,
        "spec": {"kind": "gate", "deps": ["a", "b"], "values": values},
    })
    .to_string()
}

fn notice(step: &str, gates: Value, values: Option<Value>) -> String {
    let mut spec = json!({"kind": "finished", "gates": gates});
    if let Some(values) = values {
        spec["values"] = values;
    }
    json!({"job_id": "job-1", "workflow": "n-shape", "step": step, "spec": spec}).to_string()
}

async fn deliver(ctx: &crate::Context, body: &str) -> Result<(), Retryable> {
    step::process(ctx, &event(body).records[0]).await
}

#[tokio::test]
async fn a_gate_registered_last_opens_with_the_values_it_wants() {
    let writes = seen();
    let stored = [
        token(),
        ("wanted", AttributeValue::Ss(vec!["a".into()])),
        ("value_a", AttributeValue::S(r#"{"score":0.8}"#.into())),
    ];
    let register = write("GATE#c", gate("GATE#c", &["a", "b"], 0, &stored), &writes);
    let claimed = claim("GATE#c", gate("GATE#c", &["a", "b"], 0, &stored));
    let outputs = seen();
    let success = successes(&outputs);
    let marked = marks();
    let ctx = Mocks {
        ddb: vec![&claimed, &marked, &register],
        sfn: vec![&success],
        ..Mocks::default()
    }
    .context();

    deliver(&ctx, &gate_message(&["a"])).await.unwrap();

    let writes = writes.lock().unwrap();
    assert_eq!(writes.len(), 1);
    assert!(writes[0].0.contains("#token = :token"), "{}", writes[0].0);
    assert_eq!(writes[0].1[":token"], AttributeValue::S("token-1".into()));
    assert_eq!(writes[0].1[":wanted"], AttributeValue::Ss(vec!["a".into()]));
    assert_eq!(claimed.num_calls(), 1);
    assert_eq!(
        *outputs.lock().unwrap(),
        vec![("token-1".to_owned(), json!({"v": {"a": {"score": 0.8}}}))]
    );
}

#[tokio::test]
async fn a_gate_without_values_opens_with_an_empty_object() {
    let writes = seen();
    let register = write("GATE#c", gate("GATE#c", &["a", "b"], 0, &[token()]), &writes);
    let claimed = claim("GATE#c", gate("GATE#c", &["a", "b"], 0, &[token()]));
    let outputs = seen();
    let success = successes(&outputs);
    let marked = marks();
    let ctx = Mocks {
        ddb: vec![&claimed, &marked, &register],
        sfn: vec![&success],
        ..Mocks::default()
    }
    .context();

    deliver(&ctx, &gate_message(&[])).await.unwrap();

    assert!(!writes.lock().unwrap()[0].1.contains_key(":wanted"));
    assert_eq!(*outputs.lock().unwrap(), vec![("token-1".to_owned(), json!({}))]);
}

#[tokio::test]
async fn a_gate_with_dependencies_left_only_registers() {
    let writes = seen();
    let register = write("GATE#c", gate("GATE#c", &["a", "b"], 1, &[token()]), &writes);
    let claimed = claim("GATE#c", gate("GATE#c", &["a", "b"], 1, &[token()]));
    let outputs = seen();
    let success = successes(&outputs);
    let marked = marks();
    let ctx = Mocks {
        ddb: vec![&claimed, &marked, &register],
        sfn: vec![&success],
        ..Mocks::default()
    }
    .context();

    deliver(&ctx, &gate_message(&[])).await.unwrap();

    assert_eq!(writes.lock().unwrap().len(), 1);
    assert_eq!(claimed.num_calls(), 0, "not ready: no claim is tried");
    assert!(outputs.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_repeated_gate_message_does_not_open_again() {
    let writes = seen();
    let opened = [token(), ("opened", AttributeValue::Bool(true))];
    let register = write("GATE#c", gate("GATE#c", &["a", "b"], 0, &opened), &writes);
    let claimed = claim("GATE#c", gate("GATE#c", &["a", "b"], 0, &opened));
    let outputs = seen();
    let success = successes(&outputs);
    let marked = marks();
    let ctx = Mocks {
        ddb: vec![&claimed, &marked, &register],
        sfn: vec![&success],
        ..Mocks::default()
    }
    .context();

    deliver(&ctx, &gate_message(&[])).await.unwrap();

    assert_eq!(claimed.num_calls(), 0);
    assert!(outputs.lock().unwrap().is_empty(), "one answer per token");
}

#[tokio::test]
async fn a_notice_counts_the_step_in_each_gate_and_opens_the_ready_ones() {
    let (c_writes, d_writes) = (seen(), seen());
    // `b` was the last dependency of `c`, whose token waits; `d` still waits on `e`.
    let c_item = gate("GATE#c", &["a", "b"], 0, &[token()]);
    let c = write("GATE#c", c_item.clone(), &c_writes);
    let d = write("GATE#d", gate("GATE#d", &["b", "e"], 1, &[]), &d_writes);
    let (c_claim, d_claim) = (claim("GATE#c", c_item), claim("GATE#d", Item::new()));
    let outputs = seen();
    let success = successes(&outputs);
    let marked = marks();
    let ctx = Mocks {
        ddb: vec![&c_claim, &d_claim, &marked, &c, &d],
        sfn: vec![&success],
        ..Mocks::default()
    }
    .context();
    let gates = json!([{"step": "c", "deps": ["a", "b"]}, {"step": "d", "deps": ["b", "e"]}]);
    let body = notice("b", gates, Some(json!({"b": {"n": 2}})));

    deliver(&ctx, &body).await.unwrap();

    for writes in [&c_writes, &d_writes] {
        let writes = writes.lock().unwrap();
        assert_eq!(writes.len(), 1);
        let (expression, values) = &writes[0];
        assert!(
            expression.contains("#value0 = if_not_exists(#value0, :value0)"),
            "{expression}"
        );
        assert_eq!(values[":dep"], AttributeValue::S("b".into()));
        assert_eq!(values[":value0"], AttributeValue::S(r#"{"n":2}"#.into()));
    }
    assert_eq!(c_writes.lock().unwrap()[0].1[":count"], AttributeValue::N("2".into()));
    assert_eq!((c_claim.num_calls(), d_claim.num_calls()), (1, 0));
    assert_eq!(*outputs.lock().unwrap(), vec![("token-1".to_owned(), json!({}))]);
}

#[tokio::test]
async fn a_duplicate_notice_changes_nothing() {
    let counted = mock!(Ddb::update_item).match_requests(|r| !is_claim(r)).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
    });
    let opened = gate(
        "GATE#c",
        &["a", "b"],
        0,
        &[token(), ("opened", AttributeValue::Bool(true))],
    );
    let read =
        mock!(Ddb::get_item).then_output(move || GetItemOutput::builder().set_item(Some(opened.clone())).build());
    let claimed = claim("GATE#c", Item::new());
    let outputs = seen();
    let success = successes(&outputs);
    let ctx = Mocks {
        ddb: vec![&claimed, &counted, &read],
        sfn: vec![&success],
        ..Mocks::default()
    }
    .context();

    deliver(&ctx, &notice("b", json!([{"step": "c", "deps": ["a", "b"]}]), None))
        .await
        .unwrap();

    assert_eq!((counted.num_calls(), read.num_calls()), (1, 1));
    assert_eq!(claimed.num_calls(), 0);
    assert!(outputs.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_throttled_gate_brings_the_notice_back_after_trying_the_others() {
    let throttled = mock!(Ddb::update_item)
        .match_requests(|r| key_of(r.key()).1 == "GATE#c")
        .then_error(|| {
            UpdateItemError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder().build(),
            )
        });
    let d_writes = seen();
    let d = write("GATE#d", gate("GATE#d", &["b", "e"], 1, &[]), &d_writes);
    let ctx = Mocks {
        ddb: vec![&throttled, &d],
        ..Mocks::default()
    }
    .context();
    let gates = json!([{"step": "c", "deps": ["a", "b"]}, {"step": "d", "deps": ["b", "e"]}]);

    let err = deliver(&ctx, &notice("b", gates, None)).await.unwrap_err();

    assert!(matches!(err, Retryable::Store(_)), "{err}");
    assert_eq!(d_writes.lock().unwrap().len(), 1, "the other gate was still counted");
}

#[tokio::test]
async fn a_notice_for_a_gate_that_does_not_wait_on_the_step_is_dropped() {
    let any = mock!(Ddb::update_item).then_output(|| UpdateItemOutput::builder().build());
    let ctx = Mocks {
        ddb: vec![&any],
        ..Mocks::default()
    }
    .context();

    deliver(&ctx, &notice("zzz", json!([{"step": "c", "deps": ["a", "b"]}]), None))
        .await
        .unwrap();

    assert_eq!(
        any.num_calls(),
        0,
        "nothing is written for a step the gate does not know"
    );
}
