//! The Bedrock Runtime and AgentCore Runtime stand-in: one HTTP server that the real
//! `aws-sdk-bedrockruntime` and `aws-sdk-bedrockagentcore` clients talk to unchanged, selected by
//! `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` and `AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`.
//!
//! Routes:
//! - `POST /model/{modelId}/converse`: Converse, answered from the request content (`answer.rs`);
//! - `POST /runtimes/{agentRuntimeArn}/invocations`: InvokeAgentRuntime, forwarded to the agent process
//!   (`runtime.rs`);
//! - `GET /_standin/health`, `GET /_standin/stats`, `POST /_standin/reset`, `POST /_standin/config`
//!   (`{"throttle_rate": 0.3, "seed"?: 7}`): probes and knobs for tests and scripts.

mod answer;
mod request;
mod runtime;
mod schema_instance;
mod stats;
pub(crate) mod words;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::error::{ApiError, StandinError};
pub use request::ConverseRequest;
pub use schema_instance::InstanceBuilder;
pub use stats::{Stats, Throttle};

const MAX_BODY_BYTES: usize = 100 * 1024 * 1024;

/// Settings of the Converse and AgentCore Runtime stand-in.
#[derive(Debug, Clone)]
pub struct ConverseConfig {
    /// Base URL of the agent process that InvokeAgentRuntime is forwarded to.
    pub agent_url: String,
    /// Share of Converse calls answered with a `ThrottlingException`, in [0, 1].
    pub throttle_rate: f64,
    /// Seed of the throttling draws, for runs that throttle the same calls every time.
    pub seed: Option<u64>,
}

impl Default for ConverseConfig {
    fn default() -> Self {
        Self {
            agent_url: "http://127.0.0.1:4630".to_owned(),
            throttle_rate: 0.0,
            seed: None,
        }
    }
}

/// The stand-in server; clone it freely, clones share their statistics.
#[derive(Clone)]
pub struct ConverseStandin {
    shared: Arc<Shared>,
}

struct Shared {
    agent_url: String,
    http: reqwest::Client,
    stats: Mutex<Stats>,
    throttle: Mutex<Throttle>,
}

impl ConverseStandin {
    /// A stand-in with the given settings.
    pub fn new(config: ConverseConfig) -> Result<Self, StandinError> {
        let http = reqwest::Client::builder().build().map_err(StandinError::AgentClient)?;
        let shared = Shared {
            agent_url: config.agent_url.trim_end_matches('/').to_owned(),
            http,
            stats: Mutex::new(Stats::default()),
            throttle: Mutex::new(Throttle::new(config.throttle_rate, config.seed)),
        };
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// The axum router of every route.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/model/{model_id}/converse", post(converse))
            .route("/model/{model_id}/converse-stream", post(converse_stream))
            .route("/runtimes/{runtime_arn}/invocations", post(runtime::invoke))
            .route("/_standin/health", get(health))
            .route("/_standin/stats", get(stats))
            .route("/_standin/reset", post(reset))
            .route("/_standin/config", post(configure))
            // AgentCore takes payloads of up to 100 MB; axum's default limit is 2 MB.
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.shared.clone())
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        self.shared.stats().clone()
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StandinError> {
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(%addr, agent_url = %self.shared.agent_url, "converse and agentcore runtime stand-in listening");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| StandinError::Serve {
                server: "converse",
                source,
            })
    }
}

impl Shared {
    fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn throttle(&self) -> MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn converse(State(shared): State<Arc<Shared>>, Path(model_id): Path<String>, body: Bytes) -> Response {
    let canonical = ConverseRequest::canonical_json(&body);
    let hash = match &canonical {
        Ok(value) => words::hash_hex(&[model_id.as_bytes(), value.to_string().as_bytes()]),
        Err(_) => words::hash_hex(&[model_id.as_bytes(), &body]),
    };
    let throttled = shared.throttle().throttles_now();
    let parsed = match canonical {
        _ if throttled => Err(ApiError::Throttling),
        Ok(value) => ConverseRequest::parse(&value),
        Err(error) => Err(error),
    };

    let call_number;
    {
        let mut stats = shared.stats();
        let converse = &mut stats.converse;
        converse.calls += 1;
        call_number = converse.calls;
        *converse.per_model.entry(model_id.clone()).or_default() += 1;
        let counts = converse.per_request.entry(hash.clone()).or_default();
        counts.model.clone_from(&model_id);
        counts.calls += 1;
        match &parsed {
            Ok(_) => {
                counts.answered += 1;
                converse.answered += 1;
            }
            Err(ApiError::Throttling) => {
                counts.throttled += 1;
                converse.throttled += 1;
            }
            Err(_) => converse.rejected += 1,
        }
    }

    let mut response = match parsed {
        Ok(request) => {
            let body = answer::answer(&model_id, &request, &hash);
            tracing::info!(model = %model_id, request_hash = &hash[..16], stop_reason = %body["stopReason"], "converse answered");
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(error) => {
            tracing::info!(model = %model_id, request_hash = &hash[..16], %error, "converse refused");
            error.into_response()
        }
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id(&hash, call_number)) {
        headers.insert("x-amzn-RequestId", value);
    }
    if let Ok(value) = HeaderValue::from_str(&hash) {
        headers.insert("x-standin-request-hash", value);
    }
    response
}

async fn converse_stream(Path(model_id): Path<String>) -> ApiError {
    ApiError::Validation(format!(
        "the stand-in does not serve ConverseStream (model {model_id}); call Converse instead"
    ))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let stats = shared.stats().clone();
    let mut value = serde_json::to_value(stats).unwrap_or_default();
    value["throttle_rate"] = json!(shared.throttle().rate());
    Json(value)
}

async fn reset(State(shared): State<Arc<Shared>>) -> Json<Value> {
    *shared.stats() = Stats::default();
    tracing::info!("statistics reset");
    Json(json!({ "reset": true }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigUpdate {
    throttle_rate: Option<f64>,
    seed: Option<u64>,
}

async fn configure(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let update: ConfigUpdate = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(error) => {
            let message = format!("expected {{\"throttle_rate\": 0.0..1.0, \"seed\"?: integer}}: {error}");
            return ApiError::Validation(message).into_response();
        }
    };
    let mut throttle = shared.throttle();
    if let Some(rate) = update.throttle_rate {
        if !(0.0..=1.0).contains(&rate) {
            return ApiError::Validation(format!("throttle_rate must be within 0 and 1, got {rate}")).into_response();
        }
        throttle.set_rate(rate);
    }
    if let Some(seed) = update.seed {
        throttle.reseed(seed);
    }
    tracing::info!(throttle_rate = throttle.rate(), seed = ?update.seed, "settings changed");
    Json(json!({ "throttle_rate": throttle.rate() })).into_response()
}

/// A request id in the usual UUID shape, distinct for every call, even a retry of the same request.
fn request_id(hash: &str, call_number: u64) -> String {
    let id = words::hash_hex(&[hash.as_bytes(), &call_number.to_be_bytes()]);
    format!(
        "{}-{}-{}-{}-{}",
        &id[..8],
        &id[8..12],
        &id[12..16],
        &id[16..20],
        &id[20..32]
    )
}
