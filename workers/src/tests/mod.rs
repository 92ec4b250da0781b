//! Handler tests against mocked AWS clients (`aws-smithy-mocks`).

mod dispatcher;
mod steps;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{Rule, RuleMode, mock_client};

use crate::config::{Clients, Context, Settings};

/// Rules for each client; every client answers the first matching rule.
#[derive(Default)]
pub struct Mocks<'a> {
    pub ddb: Vec<&'a Rule>,
    pub sfn: Vec<&'a Rule>,
    pub sqs: Vec<&'a Rule>,
    pub bedrock: Vec<&'a Rule>,
    pub agentcore: Vec<&'a Rule>,
}

impl Mocks<'_> {
    pub fn context(&self) -> Context {
        let once = aws_config::retry::RetryConfig::standard().with_max_attempts(1);
        let (o1, o2, o3, o4, o5) = (once.clone(), once.clone(), once.clone(), once.clone(), once);
        let clients = Clients {
            ddb: mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, self.ddb.iter().copied(), |c| c
                .retry_config(o1.clone())),
            sfn: mock_client!(aws_sdk_sfn, RuleMode::MatchAny, self.sfn.iter().copied(), |c| c
                .retry_config(o2.clone())),
            sqs: mock_client!(aws_sdk_sqs, RuleMode::MatchAny, self.sqs.iter().copied(), |c| c
                .retry_config(o3.clone())),
            bedrock: mock_client!(
                aws_sdk_bedrockruntime,
                RuleMode::MatchAny,
                self.bedrock.iter().copied(),
                |c| c.retry_config(o4.clone())
            ),
            agentcore: mock_client!(
                aws_sdk_bedrockagentcore,
                RuleMode::MatchAny,
                self.agentcore.iter().copied(),
                |c| c.retry_config(o5.clone())
            ),
            signing: None,
        };
        let settings = Settings {
            table: "garden".into(),
            ..Settings::default()
        };
        Context::new(settings, clients)
    }
}

pub fn event(body: &str) -> SqsEvent {
    let mut record = SqsMessage::default();
    record.message_id = Some("msg-1".into());
    record.receipt_handle = Some("receipt-1".into());
    record.body = Some(body.to_owned());
    record.event_source_arn = Some("arn:aws:sqs:us-east-1:000000000000:garden-model".into());
    let mut event = SqsEvent::default();
    event.records.push(record);
    event
}

pub type Item = HashMap<String, AttributeValue>;

pub fn item(pairs: &[(&str, &str)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), AttributeValue::S((*v).to_owned())))
        .collect()
}

pub fn key_of(key: Option<&Item>) -> (String, String) {
    let get = |name: &str| match key.and_then(|k| k.get(name)) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    (get("PK"), get("SK"))
}

/// A place for a mock's matcher to record what it saw.
pub type Seen<T> = Arc<Mutex<Vec<T>>>;

pub fn seen<T>() -> Seen<T> {
    Arc::new(Mutex::new(Vec::new()))
}

mod approvals {
    use aws_sdk_dynamodb::Client as Ddb;
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_sdk_sfn::Client as Sfn;
    use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureOutput;
    use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput;
    use aws_smithy_mocks::mock;
    use serde_json::{Value, json};

    use super::{Mocks, item};
    use crate::approval::{ApprovalError, Decision, answer};

    fn waiting() -> aws_smithy_mocks::Rule {
        mock!(Ddb::get_item).then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(item(&[
                    ("PK", "JOB#job-1"),
                    ("SK", "STEP#review"),
                    ("status", "WAITING_APPROVAL"),
                    ("task_token", "token-9"),
                    ("approval", r#"{"exports":[{"name":"approved","path":"approved"}]}"#),
                ])))
                .build()
        })
    }

    #[tokio::test]
    async fn an_approval_sends_its_exports() {
        let (get, update) = (
            waiting(),
            mock!(Ddb::update_item).then_output(|| UpdateItemOutput::builder().build()),
        );
        let success = mock!(Sfn::send_task_success)
            .match_requests(|r| {
                r.task_token() == Some("token-9")
                    && serde_json::from_str::<Value>(r.output().unwrap()).unwrap()
                        == json!({"step": "review", "exports": {"approved": true}})
            })
            .then_output(|| SendTaskSuccessOutput::builder().build());
        let ctx = Mocks {
            ddb: vec![&get, &update],
            sfn: vec![&success],
            ..Mocks::default()
        }
        .context();
        let (ddb, sfn) = (&ctx.clients.ddb, &ctx.clients.sfn);
        let decision = Decision::Approve {
            comment: Some("fine".into()),
            by: Some("ana".into()),
        };
        let output = answer(ddb, sfn, "garden", "job-1", "review", decision).await.unwrap();
        assert_eq!(output["approved"], true);
        assert_eq!(success.num_calls(), 1);
        assert_eq!(update.num_calls(), 2, "the claim, then the answer recorded");
    }

    #[tokio::test]
    async fn a_second_answer_at_the_same_time_is_refused() {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
        let get = waiting();
        let taken = mock!(Ddb::update_item).then_error(|| {
            UpdateItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
        });
        let success = mock!(Sfn::send_task_success).then_output(|| SendTaskSuccessOutput::builder().build());
        let ctx = Mocks {
            ddb: vec![&get, &taken],
            sfn: vec![&success],
            ..Mocks::default()
        }
        .context();
        let decision = Decision::Approve {
            comment: None,
            by: None,
        };
        let err = answer(
            &ctx.clients.ddb,
            &ctx.clients.sfn,
            "garden",
            "job-1",
            "review",
            decision,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ApprovalError::NotWaiting { .. }), "{err}");
        assert_eq!(
            success.num_calls(),
            0,
            "the token is sent back once, by the first answer"
        );
    }

    #[tokio::test]
    async fn a_rejection_fails_the_task_as_rejected() {
        let (get, update) = (
            waiting(),
            mock!(Ddb::update_item).then_output(|| UpdateItemOutput::builder().build()),
        );
        let failure = mock!(Sfn::send_task_failure)
            .match_requests(|r| r.error() == Some(garden_workflows::wire::errors::REJECTED))
            .then_output(|| SendTaskFailureOutput::builder().build());
        let ctx = Mocks {
            ddb: vec![&get, &update],
            sfn: vec![&failure],
            ..Mocks::default()
        }
        .context();
        let decision = Decision::Reject {
            reason: "sources missing".into(),
            by: None,
        };
        answer(
            &ctx.clients.ddb,
            &ctx.clients.sfn,
            "garden",
            "job-1",
            "review",
            decision,
        )
        .await
        .unwrap();
        assert_eq!(failure.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_step_that_is_not_waiting_is_named() {
        let get = mock!(Ddb::get_item).then_output(|| GetItemOutput::builder().build());
        let ctx = Mocks {
            ddb: vec![&get],
            ..Mocks::default()
        }
        .context();
        let decision = Decision::Approve {
            comment: None,
            by: None,
        };
        let err = answer(
            &ctx.clients.ddb,
            &ctx.clients.sfn,
            "garden",
            "job-1",
            "review",
            decision,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ApprovalError::NotWaiting { .. }), "{err}");
        assert!(err.to_string().contains("garden status job-1"));
    }
}
