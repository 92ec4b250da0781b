//! Execution Garden workers: the dispatcher, the step workers, and the loops
//! that feed them.
//!
//! The handlers ([`dispatcher::handle`], [`step::handle`]) take an SQS batch
//! and return a partial batch response. In AWS they run as Lambda functions
//! fed by SQS event source mappings ([`lambda`]); locally the very same
//! handlers run in a long-polling loop ([`local::run`], `garden worker`).
//! Job and step state lives in DynamoDB ([`store`]).

pub mod approval;
mod batch;
pub mod config;
pub mod dispatcher;
pub mod error;
pub mod fanout;
pub mod gate;
pub mod join;
pub mod keepalive;
pub mod lambda;
pub mod local;
pub mod providers;
pub mod render;
pub mod retry;
pub mod schema;
pub mod step;
pub mod store;

pub use config::{Clients, Context, QueueKind, Settings};
pub use error::{StepError, WorkerError};
#[cfg(test)]
mod tests;
