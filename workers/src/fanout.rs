//! Wide fan-out: one SQS task message per `for_each` item.

use garden_workflows::wire::{FanOutAction, TaskMessage};

use crate::config::Context;
use crate::error::Retryable;

pub async fn start(_ctx: &Context, _message: &TaskMessage, _fan: &FanOutAction) -> Result<(), Retryable> {
    todo!("fan-out start")
}
