//! Errors of the deployer: which resource failed, and the provider's message.

/// A deployment step that failed.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// An AWS call failed; `message` is the provider's own words.
    #[error("{action} {resource} failed: {message}")]
    Aws {
        action: &'static str,
        resource: String,
        message: String,
    },
    /// The deployment is not in a state this command can work with.
    #[error("{0}")]
    State(String),
}

impl InfraError {
    pub(crate) fn aws<E>(action: &'static str, resource: impl Into<String>, err: E) -> Self
    where
        E: std::error::Error + 'static,
    {
        InfraError::Aws {
            action,
            resource: resource.into(),
            message: provider_message(&err),
        }
    }
}

/// The most useful text in an SDK error: the service's code and message when
/// there is one, else the innermost source (a refused connection, a timeout).
pub fn provider_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        innermost = inner.to_string();
        source = inner.source();
    }
    innermost
}

pub type Result<T, E = InfraError> = std::result::Result<T, E>;
