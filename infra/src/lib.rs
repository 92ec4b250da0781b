//! Execution Garden's infrastructure: one description of what a deployment is
//! made of ([`spec`]), and a deployer that makes an account match it
//! ([`deploy`]), the same way on LocalStack and on AWS. The endpoint is chosen
//! by the standard AWS configuration (`AWS_ENDPOINT_URL` and its per-service
//! forms), never by a branch in this code.
//!
//! Every operation is idempotent: each resource is read first and created,
//! updated in place, or left alone, and the deployer reports which of the three
//! happened, so a second deploy with nothing changed changes nothing.

pub mod deploy;
mod error;
pub mod functions;
pub mod spec;

pub use deploy::{Change, Deployer, Report};
pub use error::{InfraError, provider_message as error_message};
pub use spec::{CoreSpec, QueueSpec, ScheduleRoute};
