//! The public entry points: load (parse, resolve, validate) and compile (plan,
//! emit, check AWS limits).

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::definition::Resources;
use crate::error::{Diagnostics, Problem, SourceFile, Span};
use crate::explain::{Explain, MAX_HISTORY_EVENTS, explain};
use crate::schedule::Schedule;
use crate::target::Target;
use crate::wire::ExportShape;
use crate::workflow::Workflow;
use crate::{asl, graph, parse, plan, policy, resolve};

/// The largest state machine definition Step Functions accepts, in bytes.
pub const MAX_DEFINITION_BYTES: usize = 1024 * 1024;
/// The name of the shared resources file next to definitions.
pub const SHARED_RESOURCES_FILE: &str = "resources.yaml";

/// Models, gateways and runtimes shared by the definitions of a directory.
#[derive(Debug, Clone, Default)]
pub struct SharedResources {
    resources: Resources,
}

impl SharedResources {
    pub fn parse(name_for_errors: &str, text: &str) -> Result<Self, Diagnostics> {
        let file = SourceFile::new(name_for_errors, text);
        let mut diags = Diagnostics::default();
        let resources = parse::parse_resources(&file, &mut diags);
        match resources {
            Some(resources) if !diags.has_errors() => Ok(SharedResources { resources }),
            _ => Err(diags),
        }
    }

    pub fn load(path: &Path) -> Result<Self, Diagnostics> {
        let text = read(path)?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// `resources.yaml` next to a definition, when there is one (and it is not the definition).
    pub fn beside(definition: &Path) -> Result<Option<Self>, Diagnostics> {
        let shared = definition.with_file_name(SHARED_RESOURCES_FILE);
        if definition.file_name() == shared.file_name() || !shared.is_file() {
            return Ok(None);
        }
        Self::load(&shared).map(Some)
    }
}

fn read(path: &Path) -> Result<String, Diagnostics> {
    std::fs::read_to_string(path).map_err(|e| {
        Problem::error("garden::io", format!("cannot read `{}`: {e}", path.display()))
            .help("check the path and that the file is UTF-8 text")
            .into()
    })
}

/// Reads a definition file and `resources.yaml` beside it, and checks both.
pub fn load_file(path: &Path) -> Result<Workflow, Diagnostics> {
    let text = read(path)?;
    let shared = SharedResources::beside(path)?;
    load_str(&path.display().to_string(), &text, shared.as_ref())
}

/// Parses, resolves and validates a definition; every problem found is returned.
/// Warnings that do not stop the compile are kept in [`Workflow::warnings`].
pub fn load_str(name_for_errors: &str, text: &str, shared: Option<&SharedResources>) -> Result<Workflow, Diagnostics> {
    let file = SourceFile::new(name_for_errors, text);
    let mut diags = Diagnostics::default();
    let Some(mut def) = parse::parse_definition(&file, &mut diags) else {
        return Err(ensure_error(diags, &file));
    };
    if let Some(shared) = shared {
        def.resources.merge_shared(&shared.resources);
    }
    let wf = resolve::resolve(&def, &mut diags);
    graph::validate(&wf, &def, &mut diags);
    diags.problems.sort_by_key(|p| p.span.map(|s| s.start));
    let ((), warnings) = diags.into_result(())?;
    Ok(Workflow { warnings, ..wf })
}

fn ensure_error(mut diags: Diagnostics, file: &Arc<SourceFile>) -> Diagnostics {
    if !diags.has_errors() {
        diags.push(
            Problem::error("garden::definition", "the definition could not be read").at(file, Span::default(), ""),
        );
    }
    diags
}

/// Everything deploying a workflow needs.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub name: String,
    /// The state machine definition (Amazon States Language).
    pub asl: Value,
    /// The state machine role's policy document.
    pub policy: Value,
    /// The JSON Schema of the job input.
    pub input_schema: Value,
    pub schedules: Vec<Schedule>,
    /// The queues, table and schedules the workflow uses (`<name>.resources.json`).
    pub resources: Value,
    /// SHA-256 of the compiled artifacts, hex: equal hashes deploy the same thing.
    pub hash: String,
    /// The plan, counts and costs; `Display` prints the `--explain` text.
    pub explain: Explain,
}

impl Compiled {
    /// The ASL as pretty-printed JSON, as written to `<name>.asl.json`.
    pub fn asl_json(&self) -> String {
        serde_json::to_string_pretty(&self.asl).unwrap_or_default()
    }
}

/// The workflow with every Map's item list capped at what the execution's
/// history has room for, so that the step producing the list fails with
/// [`TOO_MANY_ITEMS`](crate::wire::errors::TOO_MANY_ITEMS) rather than the
/// execution stopping part way through the Map.
fn with_max_items(wf: &Workflow, room: u64) -> Workflow {
    let mut wf = wf.clone();
    for export in wf.steps.iter_mut().flat_map(|s| s.exports.iter_mut()) {
        if export.shape == ExportShape::Indices {
            export.max_items = Some(room);
        }
    }
    wf
}

/// Plans and emits a checked workflow for a target, and checks the AWS limits
/// that only the emitted definition shows.
pub fn compile(wf: &Workflow, target: &Target) -> Result<Compiled, Diagnostics> {
    let plan = plan::plan(wf);
    let mut explain = explain(wf, &plan);
    let asl = match explain.items_room() {
        Some(room) => asl::emit(&with_max_items(wf, room), &plan, target),
        None => asl::emit(wf, &plan, target),
    };
    let policy = policy::policy(wf, target);
    let mut diags = Diagnostics::default();
    let size = serde_json::to_string(&asl).map_or(0, |s| s.len());
    explain.states = crate::explain::count_states(&asl["States"]);
    explain.definition_bytes = size;
    if size > MAX_DEFINITION_BYTES {
        diags.push(
            Problem::error(
                "garden::limit",
                format!("the state machine definition is {size} bytes; Step Functions accepts at most {MAX_DEFINITION_BYTES}"),
            )
            .at(&wf.file, wf.steps_span, "too many or too large steps")
            .help("split the workflow into child workflows (`workflow:` steps), or shorten prompts and schemas"),
        );
    }
    if explain.fixed_events > MAX_HISTORY_EVENTS {
        diags.push(
            Problem::error(
                "garden::limit",
                format!(
                    "one job would write about {} history events; an execution stops at {MAX_HISTORY_EVENTS}",
                    explain.fixed_events
                ),
            )
            .at(&wf.file, wf.steps_span, "too many steps for one execution")
            .help("split the workflow into child workflows (`workflow:` steps)"),
        );
    }
    if diags.has_errors() {
        return Err(diags);
    }
    let resources = policy::resources(wf, target);
    let hash = hash(&json!({
        "name": wf.name,
        "asl": asl,
        "policy": policy,
        "input_schema": wf.input_schema,
        "schedules": wf.schedules,
    }));
    Ok(Compiled {
        name: wf.name.clone(),
        asl,
        policy,
        input_schema: wf.input_schema.clone(),
        schedules: wf.schedules.clone(),
        resources,
        hash,
        explain,
    })
}

fn hash(value: &Value) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}
