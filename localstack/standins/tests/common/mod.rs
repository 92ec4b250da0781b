//! Shared setup of the integration tests: stand-ins on ephemeral loopback ports, SDK configurations
//! with dummy credentials, and conversions between `serde_json::Value` and the SDK's `Document`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{Credentials, Region};
use aws_smithy_types::{Document, Number};
use garden_standins::{ConverseConfig, ConverseStandin, bind_loopback};
use serde_json::Value;

/// A running Converse/AgentCore stand-in.
pub struct Standin {
    pub url: String,
    pub standin: ConverseStandin,
}

/// Starts the Converse and AgentCore Runtime stand-in on a free port.
pub async fn start_converse(config: ConverseConfig) -> Standin {
    let listener = bind_loopback(0).await.expect("bind a free port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let standin = ConverseStandin::new(config).expect("build the stand-in");
    tokio::spawn(standin.clone().serve(listener, std::future::pending()));
    Standin { url, standin }
}

/// Serves `router` on a free loopback port and returns its address.
pub async fn serve_router(router: axum::Router) -> SocketAddr {
    let listener = bind_loopback(0).await.expect("bind a free port");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// The SDK configuration a worker would load, pointed at `endpoint`, with `attempts` attempts per call.
pub async fn sdk_config(endpoint: &str, attempts: u32) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::standard().with_max_attempts(attempts))
        .load()
        .await
}

pub fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Document::Number(Number::PosInt(u)),
            (None, Some(i)) => Document::Number(Number::NegInt(i)),
            _ => Document::Number(Number::Float(n.as_f64().unwrap_or_default())),
        },
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

pub fn to_json(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => Value::from(*f),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Document::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

/// `GET /_standin/stats` as JSON.
pub async fn stats(url: &str) -> Value {
    reqwest::get(format!("{url}/_standin/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
