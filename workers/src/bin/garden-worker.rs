//! The step worker Lambda function: task messages of every step kind.

use garden_workers::lambda::{Function, run};

#[tokio::main]
async fn main() -> Result<(), garden_workers::WorkerError> {
    run(Function::Worker).await
}
