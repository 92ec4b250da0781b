//! Join gates at run time: the gate Task and the notices of finished steps.

use garden_workflows::wire::{FinishedAction, GateAction, TaskMessage};

use crate::config::Context;
use crate::error::Retryable;

pub async fn wait(_ctx: &Context, _message: &TaskMessage, _gate: &GateAction) -> Result<(), Retryable> {
    todo!("join gate task")
}

pub async fn finished(_ctx: &Context, _message: &TaskMessage, _finished: &FinishedAction) -> Result<(), Retryable> {
    todo!("finished notice")
}
