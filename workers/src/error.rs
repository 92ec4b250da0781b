//! Errors of the workers.
//!
//! Two families matter at run time. A [`StepError`] is the outcome of one step
//! and carries a stable name (`Garden.Throttled`, ...) that the state machine's
//! Retry and Catch match; `transient` says whether trying again can help. A
//! [`StoreError`] or [`AwsError`] is a failure of the worker's own
//! bookkeeping (DynamoDB, Step Functions, SQS): the message goes back to the
//! queue and is tried again later. [`WorkerError`] covers start-up.

use garden_workflows::wire::errors;

/// Why the workers could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(
        "cannot find queue `{name}` ({message}): run `garden deploy` first, or check AWS_ENDPOINT_URL and the prefix"
    )]
    QueueNotFound { name: String, message: String },
    #[error("invalid setting `{name}`: {message}")]
    Setting { name: String, message: String },
    #[error("unknown queue kind `{0}` in --only: use jobs, model, tool, agent, approval or control")]
    UnknownKind(String),
    #[error("lambda runtime failed: {0}")]
    Lambda(String),
}

/// A failed step attempt, named for Step Functions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct StepError {
    /// One of [`garden_workflows::wire::errors`].
    pub name: &'static str,
    pub message: String,
    /// Whether another attempt of the same request can succeed.
    pub transient: bool,
}

impl StepError {
    pub fn transient(name: &'static str, message: impl Into<String>) -> Self {
        StepError {
            name,
            message: message.into(),
            transient: true,
        }
    }

    pub fn terminal(name: &'static str, message: impl Into<String>) -> Self {
        StepError {
            name,
            message: message.into(),
            transient: false,
        }
    }

    pub fn throttled(message: impl Into<String>) -> Self {
        Self::transient(errors::THROTTLED, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::transient(errors::PROVIDER_UNAVAILABLE, message)
    }

    pub fn rejected(message: impl Into<String>) -> Self {
        Self::terminal(errors::PROVIDER_REJECTED, message)
    }

    pub fn bad_reference(message: impl Into<String>) -> Self {
        Self::terminal(errors::BAD_REFERENCE, message)
    }

    /// The `cause` sent with `SendTaskFailure`: `{"step", "message"}`.
    pub fn cause(&self, step: &str) -> String {
        serde_json::json!({ "step": step, "message": self.message }).to_string()
    }
}

/// A DynamoDB call failed, or an item did not have the expected shape.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("dynamodb {op} failed: {message}")]
    Aws { op: &'static str, message: String },
    #[error("item {key} is malformed: {message}")]
    Data { key: String, message: String },
}

impl StoreError {
    pub(crate) fn aws<E: std::error::Error>(op: &'static str, err: E) -> Self {
        StoreError::Aws {
            op,
            message: aws_smithy_types::error::display::DisplayErrorContext(err).to_string(),
        }
    }
}

/// A Step Functions or SQS call failed; the message is left for SQS to retry.
#[derive(Debug, thiserror::Error)]
#[error("{op} failed: {message}")]
pub struct AwsError {
    pub op: &'static str,
    pub message: String,
}

impl AwsError {
    pub(crate) fn new<E: std::error::Error>(op: &'static str, err: E) -> Self {
        AwsError {
            op,
            message: aws_smithy_types::error::display::DisplayErrorContext(err).to_string(),
        }
    }
}

/// Why a message was not finished; it goes back to its queue.
#[derive(Debug, thiserror::Error)]
pub enum Retryable {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// Another delivery holds the work and has not finished it yet: look
    /// again when the message comes back.
    #[error("{0}")]
    Held(String),
}
