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
