//! The template context of a step: `input` (the job's input), `steps.<name>.output`
//! (stored outputs, loaded from DynamoDB), `item` (the current `for_each`
//! element) and `job` (`id`, `workflow`). Only what the step's templates name
//! is loaded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use garden_workflows::template::{self, Path};
use garden_workflows::wire::TaskMessage;
use serde_json::{Value, json};

use crate::config::Context;
use crate::error::{Retryable, StepError};
use crate::store;

/// Why a step could not run: a named step error (answered to Step Functions)
/// or a bookkeeping failure (the message is retried).
#[derive(Debug)]
pub enum Fault {
    Step(StepError),
    /// A provider call that failed after some attempts.
    Failed(crate::providers::Failure),
    Retry(Retryable),
}

impl From<StepError> for Fault {
    fn from(err: StepError) -> Self {
        Fault::Step(err)
    }
}

impl From<crate::error::StoreError> for Fault {
    fn from(err: crate::error::StoreError) -> Self {
        Fault::Retry(Retryable::Store(err))
    }
}

/// Finished steps' outputs, as the items of a fan-out read them: every item
/// reads the same `for_each` list (for a wide source, every record of it), so
/// without this a fan-out of n items over a list of n reads it n times. A
/// finished output never changes, so nothing goes stale; the oldest entry
/// leaves first.
#[derive(Default)]
pub(crate) struct OutputCache {
    entries: Mutex<VecDeque<(OutputKey, Arc<Value>)>>,
}

/// The job and the step.
type OutputKey = (String, String);

/// Outputs kept at once (per worker process).
const CACHED_OUTPUTS: usize = 16;

impl OutputCache {
    fn get(&self, key: &OutputKey) -> Option<Arc<Value>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    fn put(&self, key: OutputKey, value: Arc<Value>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.iter().any(|(k, _)| *k == key) {
            return;
        }
        if entries.len() == CACHED_OUTPUTS {
            entries.pop_front();
        }
        entries.push_back((key, value));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The values a step's templates can read.
#[derive(Debug, Default, Clone)]
pub struct Scope {
    input: Option<Value>,
    steps: HashMap<String, Value>,
    item: Option<Value>,
    job: Value,
}

impl Scope {
    /// Loads what `templates` (and the step's `for_each`) reference.
    pub async fn load(ctx: &Context, message: &TaskMessage, templates: &[&Value]) -> Result<Scope, Fault> {
        let for_each = message.spec.for_each.as_ref().map(|t| Value::String(t.clone()));
        let mut paths = Vec::new();
        for value in templates.iter().copied().chain(for_each.as_ref()) {
            paths.extend(
                template::template_paths(value)
                    .map_err(|e| StepError::bad_reference(format!("template does not parse: {e}")))?,
            );
        }
        let mut scope = Scope {
            job: json!({"id": message.job_id, "workflow": message.workflow}),
            ..Scope::default()
        };
        let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
        if paths.iter().any(|p| p.root() == Some("input")) {
            let job = store::get_job(ddb, table, &message.job_id).await?.ok_or_else(|| {
                StepError::bad_reference(format!("job `{}` has no job item to read `input` from", message.job_id))
            })?;
            scope.input = Some(job.input);
        }
        for path in &paths {
            let Some((step, _)) = path.step_reference() else {
                continue;
            };
            if scope.steps.contains_key(step) {
                continue;
            }
            let output = step_output(ctx, message, step).await?;
            // A `for_each` over no items leaves no records: its output is empty.
            let output = output
                .or_else(|| {
                    message
                        .lists
                        .iter()
                        .any(|l| l == step)
                        .then(|| Value::Array(Vec::new()))
                })
                .ok_or_else(|| {
                    StepError::bad_reference(format!(
                        "step `{step}` has no stored output in job `{}`",
                        message.job_id
                    ))
                })?;
            scope.steps.insert(step.to_owned(), output);
        }
        if let (Some(list), Some(index)) = (&for_each, message.item) {
            let items = scope.render(list)?;
            let item = items.get(index as usize).cloned().ok_or_else(|| {
                StepError::bad_reference(format!(
                    "the for_each list has no item {index} (it has {} items)",
                    len(&items)
                ))
            })?;
            scope.item = Some(item);
        }
        Ok(scope)
    }

    /// Renders a JSON value whose strings may hold templates.
    pub fn render(&self, value: &Value) -> Result<Value, StepError> {
        template::render(value, &mut |path| self.resolve(path)).map_err(|e| StepError::bad_reference(e.to_string()))
    }

    /// Renders a template as text (non-string values as JSON).
    pub fn render_text(&self, text: &str) -> Result<String, StepError> {
        match template::render_str(text, &mut |path| self.resolve(path)) {
            Ok(Value::String(text)) => Ok(text),
            Ok(other) => Ok(other.to_string()),
            Err(e) => Err(StepError::bad_reference(e.to_string())),
        }
    }

    fn resolve(&self, path: &Path) -> Option<Value> {
        let rest = &path.segments[1.min(path.segments.len())..];
        match path.root()? {
            "input" => Path::lookup(rest, self.input.as_ref()?).cloned(),
            "item" => Path::lookup(rest, self.item.as_ref()?).cloned(),
            "job" => Path::lookup(rest, &self.job).cloned(),
            "steps" => {
                let (step, rest) = path.step_reference()?;
                Path::lookup(rest, self.steps.get(step)?).cloned()
            }
            _ => None,
        }
    }

    /// A scope with fixed values, for tests and tools.
    pub fn with_values(input: Value, steps: HashMap<String, Value>, item: Option<Value>, job: Value) -> Self {
        Scope {
            input: Some(input),
            steps,
            item,
            job,
        }
    }
}

fn len(value: &Value) -> usize {
    value.as_array().map_or(0, Vec::len)
}

/// A step's stored output; for an item of a `for_each`, from the worker's
/// [`OutputCache`] when another item read it already.
async fn step_output(ctx: &Context, message: &TaskMessage, step: &str) -> Result<Option<Value>, Fault> {
    let (ddb, table) = (&ctx.clients.ddb, ctx.settings.table.as_str());
    if message.item.is_none() {
        return Ok(store::step_output(ddb, table, &message.job_id, step).await?);
    }
    let key = (message.job_id.clone(), step.to_owned());
    if let Some(output) = ctx.outputs.get(&key) {
        return Ok(Some((*output).clone()));
    }
    let output = store::step_output(ddb, table, &message.job_id, step).await?;
    if let Some(output) = &output {
        ctx.outputs.put(key, Arc::new(output.clone()));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_read_input_steps_item_and_job() {
        let steps = HashMap::from([("outline".to_owned(), json!({"sections": ["a", "b"]}))]);
        let scope = Scope::with_values(
            json!({"topic": "markets"}),
            steps,
            Some(json!("b")),
            json!({"id": "k-1", "workflow": "brief"}),
        );
        let rendered = scope
            .render(&json!({"q": "{{ item }} of {{ input.topic }}", "all": "{{ steps.outline.output.sections }}", "id": "{{ job.id }}"}))
            .unwrap();
        assert_eq!(rendered, json!({"q": "b of markets", "all": ["a", "b"], "id": "k-1"}));
        let err = scope.render(&json!("{{ steps.missing.output }}")).unwrap_err();
        assert_eq!(err.name, garden_workflows::wire::errors::BAD_REFERENCE);
    }
}
