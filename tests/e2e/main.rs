//! End-to-end tests: real jobs through LocalStack, the workers and the
//! stand-ins, driven by the `garden` command as a user would drive it.
//!
//! One test binary, so that the tests run side by side; each deploys under a
//! prefix of its own.

mod common;

mod approvals;
mod dags;
mod delivery;
mod deploy;
mod examples;
mod fanout;
mod resilience;
mod schedules;
