//! Keeping a running step alive: while its provider call or a backoff runs,
//! the worker sends `SendTaskHeartbeat` and pushes the SQS message's
//! visibility further out, so neither Step Functions nor SQS gives the task to
//! someone else. A worker that dies stops both, and the message comes back
//! after the visibility timeout with the same token.

use std::future::Future;
use std::time::Duration;

use aws_sdk_sfn::operation::send_task_heartbeat::SendTaskHeartbeatError;
use tokio::time::Instant;

use crate::config::Context;

/// The SQS message a step came from, to extend its visibility.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub queue_url: String,
    pub receipt_handle: String,
}

/// How a kept-alive piece of work ended.
#[derive(Debug)]
pub enum Kept<T> {
    Done(T),
    /// Step Functions no longer knows the task (timed out or finished
    /// elsewhere): the work was dropped and the message can go.
    Gone,
}

/// Seconds between heartbeats: at most a third of the step's heartbeat
/// timeout and of the visibility timeout, and never more than the default.
pub fn interval(heartbeat_secs: Option<u64>, default_secs: u64, visibility_secs: i32) -> Duration {
    let mut secs = default_secs;
    if let Some(heartbeat) = heartbeat_secs {
        secs = secs.min(heartbeat / 3);
    }
    secs = secs.min((visibility_secs.max(3) / 3) as u64);
    Duration::from_secs(secs.max(1))
}

/// Runs `work`, heartbeating every `every`. An empty `token` (an item of a
/// wide fan-out, which no Task waits on) only keeps the message invisible.
/// With [`Settings::visibility_at_start`](crate::config::Settings), the
/// message's visibility is first brought down to the worker's own, so that a
/// crash returns it within that time.
pub async fn keep_alive<T>(
    ctx: &Context,
    token: &str,
    receipt: Option<&Receipt>,
    every: Duration,
    work: impl Future<Output = T>,
) -> Kept<T> {
    tokio::pin!(work);
    if ctx.settings.visibility_at_start
        && let Some(receipt) = receipt
    {
        extend_visibility(ctx, receipt).await;
    }
    let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
    loop {
        tokio::select! {
            out = &mut work => return Kept::Done(out),
            _ = ticker.tick() => {
                if !token.is_empty() && !heartbeat(ctx, token).await {
                    return Kept::Gone;
                }
                if let Some(receipt) = receipt {
                    extend_visibility(ctx, receipt).await;
                }
            }
        }
    }
}

/// Sends one heartbeat; `false` when the task no longer exists.
async fn heartbeat(ctx: &Context, token: &str) -> bool {
    match ctx.clients.sfn.send_task_heartbeat().task_token(token).send().await {
        Ok(_) => {
            tracing::debug!("heartbeat sent");
            true
        }
        Err(err) => match err.as_service_error() {
            Some(
                SendTaskHeartbeatError::TaskTimedOut(_)
                | SendTaskHeartbeatError::InvalidToken(_)
                | SendTaskHeartbeatError::TaskDoesNotExist(_),
            ) => {
                tracing::warn!("the task timed out or is unknown to Step Functions: dropping the step");
                false
            }
            _ => {
                let detail = aws_smithy_types::error::display::DisplayErrorContext(&err);
                tracing::warn!(error = %detail, "heartbeat failed, will try again");
                true
            }
        },
    }
}

async fn extend_visibility(ctx: &Context, receipt: &Receipt) {
    let result = ctx
        .clients
        .sqs
        .change_message_visibility()
        .queue_url(&receipt.queue_url)
        .receipt_handle(&receipt.receipt_handle)
        .visibility_timeout(ctx.settings.visibility_timeout_secs)
        .send()
        .await;
    if let Err(err) = result {
        let detail = aws_smithy_types::error::display::DisplayErrorContext(&err);
        tracing::warn!(error = %detail, "could not extend the message's visibility");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_come_often_enough() {
        assert_eq!(interval(None, 20, 60), Duration::from_secs(20));
        assert_eq!(interval(Some(30), 20, 60), Duration::from_secs(10));
        assert_eq!(interval(Some(300), 20, 30), Duration::from_secs(10));
        assert_eq!(interval(Some(1), 20, 60), Duration::from_secs(1));
    }
}
