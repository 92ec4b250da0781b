//! Call statistics and runtime settings of the Converse stand-in, served under `/_standin/*`.
//!
//! `per_request` is keyed by the request hash (sha256 of the model id and the body with its keys sorted), so a test can prove that
//! a finished step was not sent to the model again: each hash is `answered` at most once.

use std::collections::BTreeMap;

use serde::Serialize;

/// Counts since start or the last `POST /_standin/reset`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub converse: ConverseStats,
    pub invocations: InvocationStats,
}

/// Converse calls.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ConverseStats {
    /// Every call that reached the handler.
    pub calls: u64,
    /// Calls answered with a model response.
    pub answered: u64,
    /// Calls refused with a `ThrottlingException`.
    pub throttled: u64,
    /// Calls refused with a `ValidationException`.
    pub rejected: u64,
    pub per_model: BTreeMap<String, u64>,
    pub per_request: BTreeMap<String, RequestCounts>,
}

/// What became of the calls with one request hash.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RequestCounts {
    pub model: String,
    pub calls: u64,
    pub answered: u64,
    pub throttled: u64,
}

/// `InvokeAgentRuntime` calls.
#[derive(Debug, Default, Clone, Serialize)]
pub struct InvocationStats {
    pub calls: u64,
    /// Calls whose agent answered with a 2xx status.
    pub succeeded: u64,
    /// Calls answered with an error (agent failure, unreachable agent, invalid request).
    pub failed: u64,
    pub per_runtime: BTreeMap<String, u64>,
    pub per_session: BTreeMap<String, u64>,
}

/// Whether and how often Converse calls are throttled.
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    rng: fastrand::Rng,
}

impl Throttle {
    /// A throttle for `rate` of the calls; with a seed, the same calls are throttled on every run.
    pub fn new(rate: f64, seed: Option<u64>) -> Self {
        let rng = seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        Self {
            rate: rate.clamp(0.0, 1.0),
            rng,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn set_rate(&mut self, rate: f64) {
        self.rate = rate.clamp(0.0, 1.0);
    }

    pub fn reseed(&mut self, seed: u64) {
        self.rng = fastrand::Rng::with_seed(seed);
    }

    /// Draws whether this call is throttled.
    pub fn throttles_now(&mut self) -> bool {
        self.rate > 0.0 && self.rng.f64() < self.rate
    }
}
