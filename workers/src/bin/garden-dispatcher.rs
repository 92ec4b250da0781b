//! The dispatcher Lambda function: job messages to executions.

use garden_workers::lambda::{Function, run};

#[tokio::main]
async fn main() -> Result<(), garden_workers::WorkerError> {
    run(Function::Dispatcher).await
}
