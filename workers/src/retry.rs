//! Retries of transient provider failures inside the worker: exponential
//! backoff with full jitter, bounded by the step's [`RetryPolicy`] and its
//! timeout. The SDK clients of the providers make one attempt each, so the
//! attempts counted here are all the attempts there were.

use std::future::Future;
use std::time::Duration;

use garden_workflows::wire::RetryPolicy;
use tokio::time::Instant;

use crate::error::StepError;

/// The outcome of a call with retries, and how many attempts it took.
#[derive(Debug)]
pub struct Retried<T> {
    pub result: Result<T, StepError>,
    pub attempts: u32,
}

/// Calls `call(attempt)` (1-based) until it succeeds, fails terminally, runs
/// out of attempts, or the next backoff would pass `deadline`. The last error
/// keeps its name: throttling to the end gives `Garden.Throttled`.
pub async fn with_retry<T, F, Fut>(policy: &RetryPolicy, deadline: Option<Instant>, mut call: F) -> Retried<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, StepError>>,
{
    let max_attempts = policy.attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match call(attempt).await {
            Ok(value) => {
                return Retried {
                    result: Ok(value),
                    attempts: attempt,
                };
            }
            Err(error) => error,
        };
        let delay = backoff_delay(policy, attempt);
        let past_deadline = deadline.is_some_and(|deadline| Instant::now() + delay >= deadline);
        if !error.transient || attempt >= max_attempts || past_deadline {
            return Retried {
                result: Err(error),
                attempts: attempt,
            };
        }
        tracing::warn!(
            attempt,
            error = error.name,
            message = %error.message,
            delay_ms = delay.as_millis() as u64,
            "transient provider failure, retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Full jitter: a uniform delay between zero and
/// `min(max_delay, backoff * 2^(attempt - 1))`.
pub fn backoff_delay(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let cap = policy.backoff_ms.saturating_mul(1 << exponent).min(policy.max_delay_ms);
    Duration::from_millis(fastrand::u64(0..=cap))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use garden_workflows::wire::errors;

    use super::*;

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            backoff_ms: 1_000,
            max_delay_ms: 5_000,
        }
    }

    #[test]
    fn delays_stay_under_the_exponential_cap() {
        let policy = policy(10);
        for _ in 0..200 {
            assert!(backoff_delay(&policy, 1) <= Duration::from_millis(1_000));
            assert!(backoff_delay(&policy, 2) <= Duration::from_millis(2_000));
            assert!(backoff_delay(&policy, 9) <= Duration::from_millis(5_000));
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| backoff_delay(&policy, 3)).collect();
        assert!(spread.len() > 10, "jitter spreads the delays");
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_is_retried_until_success() {
        let calls = AtomicU32::new(0);
        let out = with_retry(&policy(4), None, |attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt < 3 {
                    Err(StepError::throttled("slow down"))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(out.result, Ok(3));
        assert_eq!(out.attempts, 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn exhaustion_keeps_the_last_error_name() {
        let out: Retried<()> = with_retry(&policy(3), None, |_| async { Err(StepError::throttled("slow down")) }).await;
        assert_eq!(out.attempts, 3);
        assert_eq!(out.result.unwrap_err().name, errors::THROTTLED);
    }

    #[tokio::test(start_paused = true)]
    async fn a_terminal_failure_is_not_retried() {
        let out: Retried<()> =
            with_retry(&policy(5), None, |_| async { Err(StepError::rejected("bad request")) }).await;
        assert_eq!(out.attempts, 1);
        assert_eq!(out.result.unwrap_err().name, errors::PROVIDER_REJECTED);
    }

    #[tokio::test(start_paused = true)]
    async fn no_backoff_runs_past_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(1);
        let slow = RetryPolicy {
            attempts: 10,
            backoff_ms: 60_000,
            max_delay_ms: 60_000,
        };
        // Full jitter may pick a zero delay; over many runs most stop at once.
        let mut stopped_first = 0;
        for _ in 0..20 {
            let out: Retried<()> =
                with_retry(&slow, Some(deadline), |_| async { Err(StepError::unavailable("503")) }).await;
            if out.attempts == 1 {
                stopped_first += 1;
            }
        }
        assert!(stopped_first >= 18, "{stopped_first}");
    }
}
