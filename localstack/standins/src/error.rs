//! Errors of the stand-ins: [`StandinError`] for starting a server, [`ApiError`] for the AWS-shaped
//! error answers (`x-amzn-ErrorType` header plus a `{"message"}` body) that the SDKs turn into their
//! typed errors.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Failures while starting or running a stand-in server.
#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}: is another stand-in already running there? pick a free port with --port")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    /// The server stopped with an I/O error.
    #[error("the {server} server stopped unexpectedly; see the log above for the cause")]
    Serve {
        server: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The HTTP client for the agent process could not be built.
    #[error("cannot build the http client for the agent process")]
    AgentClient(#[source] reqwest::Error),
}

/// An error answer in the shape the AWS SDKs parse: the error name from the `x-amzn-ErrorType` header,
/// the text from the body's `message`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `ValidationException`: never retried by the SDK.
    #[error("{0}")]
    Validation(String),

    /// 429 `ThrottlingException`: retried by the SDK with backoff.
    #[error("too many requests, please wait before trying again")]
    Throttling,

    /// 424 `RuntimeClientError`: the agent process failed; not retried by the SDK, so a failing agent
    /// runs once per call rather than three times.
    #[error("{0}")]
    RuntimeClient(String),
}

impl ApiError {
    /// The HTTP status and the error name sent in `x-amzn-ErrorType`.
    pub fn status_and_name(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Validation(_) => (StatusCode::BAD_REQUEST, "ValidationException"),
            Self::Throttling => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
            Self::RuntimeClient(_) => (StatusCode::FAILED_DEPENDENCY, "RuntimeClientError"),
        }
    }

    /// The message as the service words it on the wire.
    pub fn wire_message(&self) -> String {
        match self {
            Self::Throttling => "Too many requests, please wait before trying again.".to_owned(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, name) = self.status_and_name();
        let body = serde_json::json!({ "message": self.wire_message() });
        let mut response = (status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(name));
        response
    }
}

/// Inputs the finance tools refuse; the text goes back to the caller as a tool error.
#[derive(Debug, thiserror::Error)]
pub enum FinanceError {
    #[error("cash_flows is empty: give at least one cash flow, the first at t = 0")]
    NoCashFlows,

    #[error("cash_flows[{0}] is not a finite number: give plain numbers")]
    CashFlow(usize),

    #[error("discount_rate must be greater than -1 (a rate of -100% or less has no present value), got {0}")]
    DiscountRate(f64),

    #[error("cash_flows need at least one negative and one positive amount for a rate of return to exist")]
    NoSignChange,

    #[error("no rate of return between -100% and 100,000,000% gives a net present value of zero")]
    NoRate,

    #[error("principal must be a positive amount, got {0}")]
    Principal(f64),

    #[error("annual_rate must be zero or positive, as a fraction (0.05 for 5%), got {0}")]
    AnnualRate(f64),

    #[error("years must cover at least one monthly payment, got {0}")]
    Years(f64),
}
