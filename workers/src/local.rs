//! The local polling loop behind `garden worker`: the same handlers as the
//! Lambda functions, fed by long polls instead of event source mappings.
//!
//! One poller per queue receives up to ten messages at a time, never more
//! than its free concurrency slots. A message whose handler succeeded is
//! deleted; one that failed is made visible again after a short backoff that
//! grows with its receive count. On shutdown the pollers stop receiving,
//! in-flight messages get a grace period, and what is still running after it
//! is released (visibility 0) for another worker.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::{Context, QueueKind, Settings};
use crate::error::WorkerError;
use crate::{dispatcher, step};

/// A queue the loop consumes, resolved.
#[derive(Debug, Clone)]
pub struct Queue {
    pub kind: QueueKind,
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// Runs the loop until `shutdown` resolves, with clients from the
/// environment.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), WorkerError> {
    let ctx = Arc::new(Context::from_env(settings).await);
    run_with(ctx, shutdown).await
}

/// Runs the loop with a prepared context.
pub async fn run_with(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    let queues = resolve_queues(&ctx).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    for queue in &queues {
        tracing::info!(
            queue = %queue.name,
            concurrency = ctx.settings.concurrency_of(queue.kind),
            "consuming"
        );
    }
    let pollers: Vec<_> = queues
        .into_iter()
        .map(|queue| tokio::spawn(poll(ctx.clone(), queue, stop_rx.clone())))
        .collect();
    for poller in pollers {
        let _ = poller.await;
    }
    tracing::info!("workers stopped");
    Ok(())
}

/// Looks up the URL and ARN of every queue to consume.
pub async fn resolve_queues(ctx: &Context) -> Result<Vec<Queue>, WorkerError> {
    let mut queues = Vec::new();
    for kind in ctx.settings.queues() {
        let name = kind.queue_name(&ctx.settings.prefix);
        let url = ctx
            .clients
            .sqs
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| WorkerError::QueueNotFound {
                name: name.clone(),
                message: match e.as_service_error() {
                    Some(service) => format!(
                        "{}: {}",
                        service.code().unwrap_or("error"),
                        service.message().unwrap_or("")
                    ),
                    None => format!("SQS could not be reached: {e}"),
                },
            })?
            .queue_url
            .unwrap_or_default();
        let arn = queue_arn(&url, &name);
        ctx.know_queue(&name, &url);
        queues.push(Queue { kind, name, url, arn });
    }
    Ok(queues)
}

/// An ARN-shaped source name for the handler (only its last part, the queue
/// name, is read back).
fn queue_arn(url: &str, name: &str) -> String {
    let account = url.rsplit('/').nth(1).unwrap_or("000000000000");
    format!("arn:aws:sqs:local:{account}:{name}")
}

async fn poll(ctx: Arc<Context>, queue: Queue, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(ctx.settings.concurrency_of(queue.kind)));
    let in_flight: Arc<std::sync::Mutex<HashMap<String, String>>> = Arc::default();
    let mut tasks = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        // Wait for at least one free slot before asking for messages.
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.ok(),
            _ = stop.changed() => None,
        };
        let Some(first) = first else { break };
        let room = 1 + slots.available_permits().min(9);
        let receiving = receive(&ctx, &queue, room as i32);
        tokio::pin!(receiving);
        let received = tokio::select! {
            received = &mut receiving => received,
            _ = stop.changed() => {
                // The long poll may already have taken messages: let it
                // answer, then hand them straight back to the queue.
                if let Ok(messages) = receiving.await {
                    let receipts = messages.into_iter().filter_map(|m| m.receipt_handle).collect();
                    release(&ctx, &queue, receipts).await;
                }
                break;
            }
        };
        while tasks.try_join_next().is_some() {}
        let messages = match received {
            Ok(messages) => messages,
            Err(message) => {
                tracing::warn!(queue = %queue.name, error = %message, "receive failed, trying again shortly");
                drop(first);
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let mut first = Some(first);
        for message in messages {
            let permit = match first.take() {
                Some(permit) => permit,
                None => match slots.clone().acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let (ctx, queue, in_flight) = (ctx.clone(), queue.clone(), in_flight.clone());
            tasks.spawn(async move {
                let id = message.message_id.clone().unwrap_or_default();
                let receipt = message.receipt_handle.clone().unwrap_or_default();
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone(), receipt);
                handle_one(&ctx, &queue, message).await;
                in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                drop(permit);
            });
        }
    }
    drain(&ctx, &queue, tasks, in_flight).await;
}

async fn receive(ctx: &Context, queue: &Queue, max: i32) -> Result<Vec<Message>, String> {
    let out = ctx
        .clients
        .sqs
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(max.clamp(1, 10))
        .wait_time_seconds(ctx.settings.wait_time_secs.clamp(1, 20))
        .visibility_timeout(ctx.settings.visibility_timeout_secs)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .map_err(|e| aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())?;
    Ok(out.messages.unwrap_or_default())
}

/// Runs one message through its handler and settles it with SQS.
pub async fn handle_one(ctx: &Context, queue: &Queue, message: Message) {
    let receipt = message.receipt_handle.clone().unwrap_or_default();
    let record = to_record(queue, message);
    let receive_count = crate::batch::receive_count(&record);
    let mut event = SqsEvent::default();
    event.records.push(record);
    let response = match queue.kind {
        QueueKind::Jobs => dispatcher::handle(ctx, event).await,
        QueueKind::Task(_) => step::handle(ctx, event).await,
    };
    let sqs = &ctx.clients.sqs;
    if response.batch_item_failures.is_empty() {
        if let Err(err) = sqs
            .delete_message()
            .queue_url(&queue.url)
            .receipt_handle(&receipt)
            .send()
            .await
        {
            let detail = aws_smithy_types::error::display::DisplayErrorContext(&err);
            tracing::warn!(queue = %queue.name, error = %detail, "could not delete a finished message");
        }
    } else {
        let backoff = 2_i32.saturating_pow(receive_count.saturating_sub(1).min(5)).min(30);
        let _ = sqs
            .change_message_visibility()
            .queue_url(&queue.url)
            .receipt_handle(&receipt)
            .visibility_timeout(backoff)
            .send()
            .await;
    }
}

/// An SQS SDK message in the shape a Lambda event source mapping delivers.
pub fn to_record(queue: &Queue, message: Message) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id;
    record.receipt_handle = message.receipt_handle;
    record.body = message.body;
    record.md5_of_body = message.md5_of_body;
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some(queue.arn.clone());
    if let Some(attributes) = message.attributes {
        record.attributes = attributes
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect();
    }
    record
}

/// Waits for in-flight messages up to the grace period, then releases the
/// rest to other workers.
async fn drain(
    ctx: &Context,
    queue: &Queue,
    mut tasks: JoinSet<()>,
    in_flight: Arc<std::sync::Mutex<HashMap<String, String>>>,
) {
    if tasks.is_empty() {
        return;
    }
    tracing::info!(queue = %queue.name, running = tasks.len(), "finishing in-flight messages");
    let finished = tokio::time::timeout(ctx.settings.grace, async { while tasks.join_next().await.is_some() {} }).await;
    if finished.is_ok() {
        return;
    }
    tasks.abort_all();
    let receipts: Vec<String> = in_flight
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    tracing::warn!(queue = %queue.name, released = receipts.len(), "grace period over: releasing messages");
    release(ctx, queue, receipts).await;
}

/// Makes messages visible again at once, for another worker to take.
async fn release(ctx: &Context, queue: &Queue, receipts: Vec<String>) {
    for receipt in receipts {
        let _ = ctx
            .clients
            .sqs
            .change_message_visibility()
            .queue_url(&queue.url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await;
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::types::Message;

    use super::*;

    #[test]
    fn received_messages_look_like_lambda_records() {
        let queue = Queue {
            kind: QueueKind::Task(garden_workflows::wire::TaskKind::Tool),
            name: "garden-tool".into(),
            url: "http://127.0.0.1:4566/000000000000/garden-tool".into(),
            arn: queue_arn("http://127.0.0.1:4566/000000000000/garden-tool", "garden-tool"),
        };
        assert_eq!(queue.arn, "arn:aws:sqs:local:000000000000:garden-tool");
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("r-1")
            .body("{}")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
            .build();
        let record = to_record(&queue, message);
        assert_eq!(record.message_id.as_deref(), Some("m-1"));
        assert_eq!(record.receipt_handle.as_deref(), Some("r-1"));
        assert_eq!(record.event_source_arn.as_deref(), Some(queue.arn.as_str()));
        assert_eq!(
            record.attributes.get("ApproximateReceiveCount").map(String::as_str),
            Some("3")
        );
    }
}
