//! The gate's writes and its opening against mocked clients.

use aws_sdk_dynamodb::Client as Ddb;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_sfn::Client as Sfn;
use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureOutput;
use aws_sdk_sfn::operation::send_task_success::{SendTaskSuccessError, SendTaskSuccessOutput};
use aws_sdk_sfn::types::error::{InvalidOutput, TaskTimedOut};
use aws_smithy_mocks::{Rule, mock};
use serde_json::{Value, json};

use super::*;
use crate::error::Retryable;
use crate::tests::Mocks;

fn key() -> GateKey {
    GateKey::new("job-1", "join", None)
}

fn deps() -> Vec<String> {
    vec!["a".into(), "b".into()]
}

fn gate(extra: &[(&str, AttributeValue)]) -> Item {
    let mut item: Item = [
        ("PK", AttributeValue::S("JOB#job-1".into())),
        ("SK", AttributeValue::S("GATE#join".into())),
        ("deps", AttributeValue::Ss(deps())),
        ("remaining", AttributeValue::N("0".into())),
        ("done", AttributeValue::Ss(deps())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        item.insert((*k).to_owned(), v.clone());
    }
    item
}

fn claimed(item: Item) -> Rule {
    mock!(Ddb::update_item)
        .match_requests(|r| r.update_expression() == Some("SET opened = :true, opened_at = :now"))
        .then_output(move || UpdateItemOutput::builder().set_attributes(Some(item.clone())).build())
}

fn marked() -> Rule {
    mock!(Ddb::update_item)
        .match_requests(|r| r.update_expression() == Some("SET sent = :true"))
        .then_output(|| UpdateItemOutput::builder().build())
}

fn stored(item: Item) -> Rule {
    mock!(Ddb::get_item).then_output(move || GetItemOutput::builder().set_item(Some(item.clone())).build())
}

fn refused() -> Rule {
    mock!(Ddb::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
    })
}

#[test]
fn gate_keys_follow_the_step_keys() {
    assert_eq!(key().sk(), "GATE#join");
    assert_eq!(GateKey::new("j", "merge", Some(7)).sk(), "GATE#merge#000007");
}

#[test]
fn a_gate_is_ready_with_a_token_once_all_finished_or_one_failed() {
    let token = Some("t".to_owned());
    let all_done = GateState {
        remaining: 0,
        token: token.clone(),
        ..GateState::default()
    };
    assert!(all_done.ready());
    assert!(
        !GateState {
            token: None,
            ..all_done.clone()
        }
        .ready(),
        "no token yet"
    );
    assert!(
        !GateState {
            opened: true,
            ..all_done.clone()
        }
        .ready(),
        "already opened"
    );
    let waiting = GateState {
        remaining: 1,
        ..all_done.clone()
    };
    assert!(!waiting.ready());
    let failure = DepFailure {
        dependency: "a".into(),
        error: "Garden.ToolError".into(),
        cause: "{}".into(),
    };
    assert!(
        GateState {
            failed: Some(failure),
            ..waiting
        }
        .ready()
    );
}

#[tokio::test]
async fn the_winner_sends_success_with_an_empty_object() {
    let claim = claimed(gate(&[("token", AttributeValue::S("token-1".into()))]));
    let success = mock!(Sfn::send_task_success)
        .match_requests(|r| {
            r.task_token() == Some("token-1")
                && serde_json::from_str::<Value>(r.output().unwrap()).unwrap() == json!({})
        })
        .then_output(|| SendTaskSuccessOutput::builder().build());
    let mark = marked();
    let ctx = Mocks {
        ddb: vec![&claim, &mark],
        sfn: vec![&success],
        ..Mocks::default()
    }
    .context();
    assert!(
        open_if_ready(&ctx.clients.ddb, &ctx.clients.sfn, "garden", &key())
            .await
            .unwrap()
    );
    assert_eq!(success.num_calls(), 1);
    assert_eq!(mark.num_calls(), 1, "the answer is marked as sent");
}

#[tokio::test]
async fn the_winner_sends_the_values_the_gate_wants() {
    let claim = claimed(gate(&[
        ("token", AttributeValue::S("token-1".into())),
        ("wanted", AttributeValue::Ss(vec!["a".into()])),
        ("value_a", AttributeValue::S(r#"{"score":0.9,"tags":["x"]}"#.into())),
        ("value_b", AttributeValue::S(r#"{"ignored":true}"#.into())),
    ]));
    let success = mock!(Sfn::send_task_success)
        .match_requests(|r| {
            serde_json::from_str::<Value>(r.output().unwrap()).unwrap()
                == json!({"v": {"a": {"score": 0.9, "tags": ["x"]}}})
        })
        .then_output(|| SendTaskSuccessOutput::builder().build());
    let mark = marked();
    let ctx = Mocks {
        ddb: vec![&claim, &mark],
        sfn: vec![&success],
        ..Mocks::default()
    }
    .context();
    assert!(
        open_if_ready(&ctx.clients.ddb, &ctx.clients.sfn, "garden", &key())
            .await
            .unwrap()
    );
    assert_eq!(success.num_calls(), 1, "only the wanted dependency's values are sent");
}

#[test]
fn the_output_leaves_out_wanted_values_never_stored() {
    let state = GateState {
        wanted: ["a".to_owned(), "b".to_owned()].into(),
        values: [("b".to_owned(), "[1,2]".to_owned())].into(),
        ..GateState::default()
    };
    assert_eq!(state.output(), json!({"v": {"b": [1, 2]}}));
    assert_eq!(GateState::default().output(), json!({}));
}

#[tokio::test]
async fn registering_with_wanted_values_stores_their_ids() {
    let update = mock!(Ddb::update_item)
        .match_requests(|r| {
            r.update_expression().unwrap_or_default().contains("wanted = :wanted")
                && r.expression_attribute_values().unwrap()[":wanted"] == AttributeValue::Ss(vec!["a".into()])
        })
        .then_output(|| {
            let item = gate(&[
                ("token", AttributeValue::S("token-1".into())),
                ("wanted", AttributeValue::Ss(vec!["a".into()])),
            ]);
            UpdateItemOutput::builder().set_attributes(Some(item)).build()
        });
    let ctx = Mocks {
        ddb: vec![&update],
        ..Mocks::default()
    }
    .context();
    let state = register_wanting(&ctx.clients.ddb, "garden", &key(), &deps(), &["a".into()], "token-1", 0)
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
    assert_eq!(state.wanted, ["a".to_owned()].into());
    assert!(state.ready());
}

#[tokio::test]
async fn finish_keeps_the_first_values_with_the_count() {
    let update = mock!(Ddb::update_item)
        .match_requests(|r| {
            let expression = r.update_expression().unwrap_or_default();
            let names = r.expression_attribute_names().unwrap();
            let values = r.expression_attribute_values().unwrap();
            r.condition_expression() == Some("NOT contains(done, :dep)")
                && expression.contains("#value0 = if_not_exists(#value0, :value0)")
                && names["#value0"] == "value_a"
                && values[":value0"] == AttributeValue::S(r#"{"n":1}"#.into())
        })
        .then_output(|| {
            let item = gate(&[
                ("remaining", AttributeValue::N("1".into())),
                ("done", AttributeValue::Ss(vec!["a".into()])),
                ("value_a", AttributeValue::S(r#"{"n":1}"#.into())),
            ]);
            UpdateItemOutput::builder().set_attributes(Some(item)).build()
        });
    let ctx = Mocks {
        ddb: vec![&update],
        ..Mocks::default()
    }
    .context();
    let values = json!({"a": {"n": 1}}).as_object().unwrap().clone();
    let state = finish_with_values(
        &ctx.clients.ddb,
        "garden",
        &key(),
        &deps(),
        "a",
        &DepOutcome::Ok,
        &values,
    )
    .await
    .unwrap();
    assert_eq!(update.num_calls(), 1);
    assert_eq!(state.values.get("a").map(String::as_str), Some(r#"{"n":1}"#));
}

#[tokio::test]
async fn a_failed_dependency_fails_the_waiting_task_with_its_cause() {
    let cause = r#"{"step":"a","message":"tool broke"}"#;
    let claim = claimed(gate(&[
        ("token", AttributeValue::S("token-1".into())),
        ("remaining", AttributeValue::N("1".into())),
        ("failed", AttributeValue::S("a".into())),
        ("failed_error", AttributeValue::S("Garden.ToolError".into())),
        ("failed_cause", AttributeValue::S(cause.into())),
    ]));
    let failure = mock!(Sfn::send_task_failure)
        .match_requests(move |r| r.error() == Some(DEPENDENCY_FAILED) && r.cause() == Some(cause))
        .then_output(|| SendTaskFailureOutput::builder().build());
    let mark = marked();
    let ctx = Mocks {
        ddb: vec![&claim, &mark],
        sfn: vec![&failure],
        ..Mocks::default()
    }
    .context();
    assert!(
        open_if_ready(&ctx.clients.ddb, &ctx.clients.sfn, "garden", &key())
            .await
            .unwrap()
    );
    assert_eq!(failure.num_calls(), 1);
}

#[tokio::test]
async fn a_lost_claim_sends_nothing() {
    let claim = refused();
    let read = stored(gate(&[
        ("token", AttributeValue::S("token-1".into())),
        ("opened", AttributeValue::Bool(true)),
        ("sent", AttributeValue::Bool(true)),
    ]));
    let success = mock!(Sfn::send_task_success).then_output(|| SendTaskSuccessOutput::builder().build());
    let ctx = Mocks {
        ddb: vec![&claim, &read],
        sfn: vec![&success],
        ..Mocks::default()
    }
    .context();
    assert!(
        !open_if_ready(&ctx.clients.ddb, &ctx.clients.sfn, "garden", &key())
            .await
            .unwrap()
    );
    assert_eq!(success.num_calls(), 0);
}

#[tokio::test]
async fn a_claim_held_without_an_answer_brings_the_message_back() {
    // Another delivery claimed the gate a moment ago and has not sent yet:
    // it may have died, so this message must come back rather than go.
    let claim = refused();
    let read = stored(gate(&[
        ("token", AttributeValue::S("token-1".into())),
        ("opened", AttributeValue::Bool(true)),
        ("opened_at", AttributeValue::S(crate::store::now_rfc3339())),
    ]));
    let success = mock!(Sfn::send_task_success).then_output(|| SendTaskSuccessOutput::builder().build());
    let ctx = Mocks {
        ddb: vec![&claim, &read],
        sfn: vec![&success],
        ..Mocks::default()
    }
    .context();
    let err = open_if_ready(&ctx.clients.ddb, &ctx.clients.sfn, "garden", &key())
        .await
        .unwrap_err();
    assert!(matches!(err, Retryable::Held(_)), "{err}");
    assert!(claim.num_calls() > 1, "the claim is tried again while waiting");
    assert_eq!(success.num_calls(), 0);
}

#[test]
fn a_claim_older_than_the_lease_can_be_taken_over_and_a_sent_gate_never() {
    let at = |secs_ago: i64| {
        (chrono::Utc::now() - chrono::Duration::seconds(secs_ago)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let claimed = GateState {
        remaining: 0,
        token: Some("t".into()),
        opened: true,
        opened_at: Some(at(1)),
        ..GateState::default()
    };
    assert!(!claimed.ready() && claimed.due(), "a fresh claim is held");
    let stale = GateState {
        opened_at: Some(at(CLAIM_LEASE_SECS + 1)),
        ..claimed.clone()
    };
    assert!(stale.ready(), "a claim left by a crash is taken over");
    let sent = GateState { sent: true, ..stale };
    assert!(!sent.ready() && !sent.due(), "an answered gate is done");
}

#[tokio::test]
async fn a_failed_send_gives_the_claim_back() {
    let claim = claimed(gate(&[("token", AttributeValue::S("token-1".into()))]));
    let release = mock!(Ddb::update_item)
        .match_requests(|r| r.update_expression() == Some("REMOVE opened, opened_at"))
        .then_output(|| UpdateItemOutput::builder().build());
    let broken = mock!(Sfn::send_task_success)
        .then_error(|| SendTaskSuccessError::InvalidOutput(InvalidOutput::builder().build()));
    let ctx = Mocks {
        ddb: vec![&claim, &release],
        sfn: vec![&broken],
        ..Mocks::default()
    }
    .context();
    let err = open_if_ready(&ctx.clients.ddb, &ctx.clients.sfn, "garden", &key())
        .await
        .unwrap_err();
    assert!(matches!(err, Retryable::Aws(_)), "{err}");
    assert_eq!(release.num_calls(), 1, "the claim is released for the retry");
}

#[tokio::test]
async fn a_waiting_task_that_is_gone_counts_as_opened() {
    let claim = claimed(gate(&[("token", AttributeValue::S("token-1".into()))]));
    let gone = mock!(Sfn::send_task_success)
        .then_error(|| SendTaskSuccessError::TaskTimedOut(TaskTimedOut::builder().build()));
    let mark = marked();
    let ctx = Mocks {
        ddb: vec![&claim, &mark],
        sfn: vec![&gone],
        ..Mocks::default()
    }
    .context();
    assert!(
        open_if_ready(&ctx.clients.ddb, &ctx.clients.sfn, "garden", &key())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn finish_counts_a_dependency_once_and_records_the_first_failure() {
    let update = mock!(Ddb::update_item)
        .match_requests(|r| {
            let expression = r.update_expression().unwrap_or_default();
            r.condition_expression() == Some("NOT contains(done, :dep)")
                && expression.contains("remaining = if_not_exists(remaining, :count) - :one")
                && expression.contains("failed = if_not_exists(failed, :dep)")
                && expression.ends_with("ADD done :done")
                && r.expression_attribute_values().unwrap()[":count"] == AttributeValue::N("2".into())
        })
        .then_output(|| {
            let item = gate(&[
                ("remaining", AttributeValue::N("1".into())),
                ("done", AttributeValue::Ss(vec!["a".into()])),
                ("failed", AttributeValue::S("a".into())),
                ("failed_error", AttributeValue::S("Garden.ToolError".into())),
                ("failed_cause", AttributeValue::S("why".into())),
            ]);
            UpdateItemOutput::builder().set_attributes(Some(item)).build()
        });
    let ctx = Mocks {
        ddb: vec![&update],
        ..Mocks::default()
    }
    .context();
    let outcome = DepOutcome::Failed {
        error: "Garden.ToolError".into(),
        cause: "why".into(),
    };
    let state = finish(&ctx.clients.ddb, "garden", &key(), &deps(), "a", &outcome)
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
    assert_eq!(state.remaining, 1);
    assert_eq!(state.failed.as_ref().unwrap().dependency, "a");
    assert!(!state.ready(), "no token registered yet");
    let registered = GateState {
        token: Some("token-1".into()),
        ..state
    };
    assert!(registered.ready(), "a failure opens the gate with dependencies left");
}

#[tokio::test]
async fn a_duplicate_finish_reads_the_gate_and_can_still_open_it() {
    let (duplicate, get) = (
        refused(),
        mock!(Ddb::get_item).then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(gate(&[("token", AttributeValue::S("token-1".into()))])))
                .build()
        }),
    );
    let ctx = Mocks {
        ddb: vec![&duplicate, &get],
        ..Mocks::default()
    }
    .context();
    let state = finish(&ctx.clients.ddb, "garden", &key(), &deps(), "b", &DepOutcome::Ok)
        .await
        .unwrap();
    assert_eq!(get.num_calls(), 1);
    assert!(
        state.ready(),
        "a first delivery that counted but did not open is finished by the next one"
    );
}

#[tokio::test]
async fn finishing_something_the_gate_does_not_wait_on_is_an_error() {
    let ctx = Mocks::default().context();
    let err = finish(&ctx.clients.ddb, "garden", &key(), &deps(), "zzz", &DepOutcome::Ok)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`zzz` is not a dependency"), "{err}");
}

#[tokio::test]
async fn an_older_attempt_does_not_replace_the_token() {
    let (stale, get) = (
        refused(),
        mock!(Ddb::get_item).then_output(|| {
            let item = gate(&[
                ("token", AttributeValue::S("token-2".into())),
                ("token_attempt", AttributeValue::N("2".into())),
                ("opened", AttributeValue::Bool(true)),
            ]);
            GetItemOutput::builder().set_item(Some(item)).build()
        }),
    );
    let ctx = Mocks {
        ddb: vec![&stale, &get],
        ..Mocks::default()
    }
    .context();
    let state = register(&ctx.clients.ddb, "garden", &key(), &deps(), "token-1", 1)
        .await
        .unwrap();
    assert_eq!(stale.num_calls(), 2, "same attempt, then newer attempt, both refused");
    assert_eq!(state.token.as_deref(), Some("token-2"));
    assert!(!state.ready());
}

#[tokio::test]
async fn both_sides_must_agree_on_the_dependencies() {
    let update = mock!(Ddb::update_item).then_output(|| {
        let item = gate(&[("deps", AttributeValue::Ss(vec!["a".into(), "c".into()]))]);
        UpdateItemOutput::builder().set_attributes(Some(item)).build()
    });
    let ctx = Mocks {
        ddb: vec![&update],
        ..Mocks::default()
    }
    .context();
    let err = register(&ctx.clients.ddb, "garden", &key(), &deps(), "token-1", 0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("same dependency list"), "{err}");
}
