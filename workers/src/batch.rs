//! One SQS batch, as both handlers take it: every record processed at once,
//! and those that failed reported back (`ReportBatchItemFailures`) so that SQS
//! delivers only them again.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

/// How many times SQS has delivered this message (1 on the first delivery).
pub fn receive_count(record: &SqsMessage) -> u32 {
    (record.attributes.get("ApproximateReceiveCount"))
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

/// Runs `process` on every record; a record whose run fails is listed in the
/// response, with `what` naming it in the log.
pub async fn each_record<'e, F, Fut, T, E>(event: &'e SqsEvent, what: &str, process: F) -> SqsBatchResponse
where
    F: Fn(&'e SqsMessage) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let runs = event.records.iter().map(|record| {
        let run = process(record);
        async move {
            match run.await {
                Ok(_) => None,
                Err(err) => {
                    tracing::warn!(error = %err, "{what} left for another try");
                    Some(record.message_id.clone().unwrap_or_default())
                }
            }
        }
    });
    let mut response = SqsBatchResponse::default();
    for id in futures::future::join_all(runs).await.into_iter().flatten() {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}
