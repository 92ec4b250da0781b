//! The providers a step calls: Bedrock models, Gateway tools (MCP) and
//! AgentCore Runtime agents. Each returns the step's output and what it cost,
//! or a named [`StepError`] whose `transient` flag drives the retries.

pub mod agent;
pub mod model;
pub mod sigv4;
pub mod tool;

// The SDK crates share one `SdkError` type; any crate's path names it.
use aws_sdk_bedrockruntime::error::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::Value;

use crate::error::StepError;

/// What a provider call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub output: Value,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Provider attempts, retries included.
    pub attempts: u32,
}

impl Outcome {
    pub fn new(output: Value, attempts: u32) -> Self {
        Outcome {
            output,
            input_tokens: 0,
            output_tokens: 0,
            attempts,
        }
    }
}

/// A failed provider call and the attempts it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub error: StepError,
    pub attempts: u32,
}

const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "TooManyRequestsException",
    "ServiceQuotaExceededException",
];

const UNAVAILABLE_CODES: &[&str] = &[
    "ServiceUnavailableException",
    "InternalServerException",
    "InternalFailure",
    "ModelNotReadyException",
    "ModelTimeoutException",
    "RetryableConflictException",
];

/// Classifies an AWS SDK error: throttling and server-side trouble are
/// transient; a request the service refused (validation, access, unknown
/// resource) is terminal.
pub(crate) fn classify_sdk_error<E>(service: &str, err: &SdkError<E>) -> StepError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = aws_smithy_types::error::display::DisplayErrorContext(err).to_string();
    match err {
        SdkError::ServiceError(service_err) => {
            let code = service_err.err().code().unwrap_or_default();
            let status = service_err.raw().status().as_u16();
            let message = service_err.err().message().unwrap_or(&detail);
            let text = format!("{service} answered {status} {code}: {message}");
            if THROTTLING_CODES.contains(&code) || (code.is_empty() && status == 429) {
                StepError::throttled(text)
            } else if UNAVAILABLE_CODES.contains(&code) || (code.is_empty() && status >= 500) {
                StepError::unavailable(text)
            } else {
                StepError::rejected(text)
            }
        }
        SdkError::ConstructionFailure(_) => {
            StepError::rejected(format!("{service} request could not be built: {detail}"))
        }
        _ => StepError::unavailable(format!("{service} could not be reached: {detail}")),
    }
}
