//! Resolve: a [`Definition`] in, a [`Workflow`] out. Applies defaults, looks up
//! models, gateways and runtimes, parses every template, and turns each
//! reference to another step (`needs`, `steps.X.output...` in a template, a
//! `when`, a `for_each`) into a dependency. `when` conditions become Choice
//! tests over values the producing steps export. Cost: linear in the size of
//! the definition (each template is parsed once).

mod condition;
mod modifiers;
mod references;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::definition::{Definition, OnErrorDef, Spanned, StepDef, StepKindDef, WaitDef};
use crate::error::{Diagnostics, Problem, SourceFile, Span, suggestion};
use crate::schedule::Schedule;
use crate::template::{self, Expr, Path, Piece, Segment};
use crate::wire::*;
use crate::workflow::*;
use crate::yaml::{Kind, Node};

/// Seconds a step may take when neither it nor `defaults` says.
pub const DEFAULT_TIMEOUT_SECS: u64 = 600;
/// Seconds an approval waits for a person when the step does not say.
pub const DEFAULT_APPROVAL_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
/// The most concurrent iterations of an inline Map state.
pub const MAX_MAP_CONCURRENCY: u64 = 40;
/// The most items of a `wide` fan-out in flight at once.
pub const MAX_WIDE_CONCURRENCY: u64 = 10_000;
/// Items of a `wide` fan-out in flight at once when `max_concurrency` is not set.
pub const DEFAULT_WIDE_CONCURRENCY: u64 = 100;

pub fn resolve(def: &Definition, diags: &mut Diagnostics) -> Workflow {
    let mut cx = Resolver {
        def,
        file: &def.file,
        diags,
        index: def
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.value.clone(), i))
            .collect(),
        inputs_read: Some(Default::default()),
    };
    cx.check_ids();
    let mut steps: Vec<Step> = def.steps.iter().map(|s| cx.step(s)).collect();
    for (i, s) in def.steps.iter().enumerate() {
        cx.modifiers(i, s, &mut steps);
    }
    for step in &mut steps {
        step.deps.sort_by_key(|(d, _)| *d);
        step.deps.dedup_by_key(|(d, _)| *d);
    }
    let output = match &def.output {
        Some(node) => {
            cx.templates(node, None, false, &mut Vec::new());
            node.to_json()
        }
        None => Value::Null,
    };
    let input_schema = def
        .input
        .clone()
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    let schedules = def.schedules.iter().map(|s| cx.schedule(s, &input_schema)).collect();
    cx.unread_inputs();
    Workflow {
        name: def.name.value.clone(),
        description: def.description.clone(),
        input_schema,
        steps,
        output,
        schedules,
        warnings: Vec::new(),
        file: def.file.clone(),
        steps_span: def.steps_span,
    }
}

/// The state-safe form of a step name.
pub fn state_id(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

struct Resolver<'a> {
    def: &'a Definition,
    file: &'a Arc<SourceFile>,
    diags: &'a mut Diagnostics,
    index: BTreeMap<String, usize>,
    /// Input properties templates read; `None` once a template reads the whole input.
    inputs_read: Option<std::collections::BTreeSet<String>>,
}

impl Resolver<'_> {
    fn error(
        &mut self,
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: &str,
        help: impl Into<String>,
    ) {
        let problem = Problem::error(code, message).at(self.file, span, label).help(help);
        self.diags.push(problem);
    }

    fn check_ids(&mut self) {
        let mut seen: BTreeMap<String, &Spanned<String>> = BTreeMap::new();
        for step in &self.def.steps {
            let id = state_id(&step.name.value);
            if let Some(first) = seen.get(&id) {
                let message = format!(
                    "steps `{}` and `{}` read the same to Step Functions",
                    first.value, step.name.value
                );
                self.error("garden::name", message, step.name.span, "clashes", "rename one of them");
            } else {
                seen.insert(id, &step.name);
            }
        }
    }

    fn step_named(&mut self, name: &Spanned<String>, what: &str) -> Option<usize> {
        if let Some(i) = self.index.get(&name.value) {
            return Some(*i);
        }
        if self.def.broken_steps.contains(&name.value) {
            return None;
        }
        let help = suggestion(&name.value, self.index.keys().map(String::as_str));
        let message = format!("{what} names step `{}`, which does not exist", name.value);
        self.error("garden::unknown-step", message, name.span, "no such step", help);
        None
    }

    fn step(&mut self, s: &StepDef) -> Step {
        let defaults = &self.def.defaults;
        let approval = matches!(s.kind, StepKindDef::Approval { .. });
        let timeout_secs = match (&s.timeout_secs, approval) {
            (Some(t), _) => t.value,
            (None, true) => DEFAULT_APPROVAL_TIMEOUT_SECS,
            (None, false) => defaults.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS),
        };
        let worker_step = matches!(
            s.kind,
            StepKindDef::Model(_) | StepKindDef::Tool { .. } | StepKindDef::Agent { .. }
        );
        let heartbeat_secs = match &s.heartbeat_secs {
            Some(h) => Some(h.value),
            None if worker_step => defaults.heartbeat_secs,
            None => None,
        };
        if let (Some(h), Some(span)) = (heartbeat_secs, s.heartbeat_secs.as_ref().map(|h| h.span))
            && h >= timeout_secs
        {
            let message = format!("the heartbeat ({h}s) must be shorter than the timeout ({timeout_secs}s)");
            self.error(
                "garden::heartbeat",
                message,
                span,
                "too long",
                "lower `heartbeat` or raise `timeout`",
            );
        }
        let mut deps = Vec::new();
        for need in &s.needs {
            if let Some(d) = self.step_named(need, "`needs`") {
                deps.push((d, need.span));
            }
        }
        let has_item = s.for_each.is_some();
        let body = self.body(s, has_item, &mut deps);
        Step {
            name: s.name.value.clone(),
            id: state_id(&s.name.value),
            span: s.span,
            name_span: s.name.span,
            body,
            deps,
            when: None,
            for_each: None,
            on_error: OnError::Fail,
            timeout_secs,
            heartbeat_secs,
            retry: s.retry.clone().or_else(|| defaults.retry.clone()).unwrap_or_default(),
            exports: Vec::new(),
            fallback_for: None,
        }
    }

    fn body(&mut self, s: &StepDef, has_item: bool, deps: &mut Vec<(usize, Span)>) -> StepBody {
        let mut json = |this: &mut Self, node: Option<&Node>| match node {
            Some(node) => {
                this.templates(node, Some(s), has_item, deps);
                this.no_path_keys(node);
                node.to_json()
            }
            None => Value::Null,
        };
        let action = match &s.kind {
            StepKindDef::Model(m) => {
                let prompt = json(self, Some(&m.prompt)).as_str().unwrap_or_default().to_owned();
                let system = m
                    .system
                    .as_ref()
                    .map(|n| json(self, Some(n)).as_str().unwrap_or_default().to_owned());
                let (model_id, price) = self.model(m.model.as_ref(), s);
                let tools = m.tools.iter().filter_map(|t| self.gateway_tool(t)).collect();
                if m.output_schema.as_ref().is_some_and(|schema| !schema.is_object()) {
                    let message = "`output_schema` must be a JSON Schema object";
                    self.error(
                        "garden::type",
                        message,
                        s.kind_span,
                        "here",
                        "write `output_schema: { type: object, ... }`",
                    );
                }
                Action::Model(ModelAction {
                    model_id,
                    system,
                    prompt,
                    max_tokens: m.max_tokens,
                    temperature: m.temperature,
                    top_p: m.top_p,
                    tools,
                    max_tool_rounds: m.max_tool_rounds.unwrap_or(8),
                    output_schema: m.output_schema.clone(),
                    price,
                })
            }
            StepKindDef::Tool {
                gateway,
                name,
                arguments,
            } => {
                let arguments = match arguments {
                    Some(_) => json(self, arguments.as_ref()),
                    None => Value::Object(Default::default()),
                };
                let gateway = self.gateway(gateway);
                Action::Tool(ToolAction {
                    gateway,
                    name: name.clone(),
                    arguments,
                })
            }
            StepKindDef::Agent {
                runtime,
                session,
                payload,
            } => {
                let payload = json(self, payload.as_ref());
                let runtime = self.runtime(runtime);
                Action::Agent(AgentAction {
                    runtime,
                    session: *session,
                    payload,
                })
            }
            StepKindDef::Approval { notify, message } => {
                let message = message
                    .as_ref()
                    .map(|n| json(self, Some(n)).as_str().unwrap_or_default().to_owned());
                Action::Approval(ApprovalAction {
                    notify: notify.clone(),
                    message,
                })
            }
            StepKindDef::Wait(wait) => {
                if s.for_each.is_some() {
                    let help = "a wait does the same for every item: remove `for_each`";
                    self.error(
                        "garden::wait",
                        "a `wait` step cannot have `for_each`",
                        s.kind_span,
                        "here",
                        help,
                    );
                }
                if let WaitDef::Until(until) = wait
                    && !looks_like_timestamp(until)
                {
                    let message = "`until` must be a timestamp such as `2026-12-24T09:00:00Z`";
                    self.error(
                        "garden::wait",
                        message,
                        s.kind_span,
                        "here",
                        "templates are not read by a Wait state",
                    );
                }
                return StepBody::Wait(wait.clone());
            }
            StepKindDef::Workflow { name, input: node } => {
                if let Some(node) = node {
                    self.literal_only(node);
                }
                if s.for_each.is_some() {
                    let help = "start one child with a list in its input, or use a `tool` or `agent` step per item";
                    self.error(
                        "garden::workflow",
                        "a `workflow` step cannot have `for_each` yet",
                        s.kind_span,
                        "here",
                        help,
                    );
                }
                let input = match node {
                    Some(_) => json(self, node.as_ref()),
                    None => Value::Object(Default::default()),
                };
                return StepBody::Workflow {
                    name: name.value.clone(),
                    input,
                };
            }
        };
        StepBody::Task(action)
    }

    /// The step's model id and its prices, when named in `resources`.
    fn model(&mut self, model: Option<&Spanned<String>>, s: &StepDef) -> (String, Option<TokenPrice>) {
        let Some(model) = model.or(self.def.defaults.model.as_ref()) else {
            let message = format!("step `{}` names no model", s.name.value);
            self.error(
                "garden::model",
                message,
                s.kind_span,
                "which model?",
                "set `model:` on the step or in `defaults`",
            );
            return (String::new(), None);
        };
        if let Some(named) = self.def.resources.models.get(&model.value) {
            return (named.value.id.clone(), named.value.price);
        }
        if model.value.contains(['.', ':', '/']) {
            return (model.value.clone(), None);
        }
        let help = suggestion(&model.value, self.def.resources.models.keys().map(String::as_str));
        let message = format!("`{}` is neither a model alias nor a model id", model.value);
        self.error("garden::model", message, model.span, "unknown model", help);
        (String::new(), None)
    }

    fn gateway(&mut self, name: &Spanned<String>) -> Gateway {
        if let Some(g) = self.def.resources.gateways.get(&name.value) {
            return g.value.clone();
        }
        let help = match self.def.resources.gateways.is_empty() {
            true => undefined_help("gateways"),
            false => suggestion(&name.value, self.def.resources.gateways.keys().map(String::as_str)),
        };
        let message = format!("gateway `{}` is not defined", name.value);
        self.error("garden::unknown-gateway", message, name.span, "no such gateway", help);
        Gateway {
            name: name.value.clone(),
            url: String::new(),
            auth: GatewayAuth::None,
        }
    }

    fn gateway_tool(&mut self, tool: &Spanned<String>) -> Option<GatewayTool> {
        let Some((gateway, name)) = tool.value.split_once('.') else {
            let message = format!("`{}` does not say which gateway serves it", tool.value);
            self.error(
                "garden::tool",
                message,
                tool.span,
                "here",
                "write `gateway.tool_name`, such as `research.web_search`",
            );
            return None;
        };
        let gateway = self.gateway(&Spanned::new(gateway.to_owned(), tool.span));
        Some(GatewayTool {
            gateway,
            name: name.to_owned(),
        })
    }

    fn runtime(&mut self, name: &Spanned<String>) -> Runtime {
        if let Some(r) = self.def.resources.runtimes.get(&name.value) {
            return r.value.clone();
        }
        let help = match self.def.resources.runtimes.is_empty() {
            true => undefined_help("runtimes"),
            false => suggestion(&name.value, self.def.resources.runtimes.keys().map(String::as_str)),
        };
        let message = format!("runtime `{}` is not defined", name.value);
        self.error("garden::unknown-runtime", message, name.span, "no such runtime", help);
        Runtime {
            name: name.value.clone(),
            arn: String::new(),
            qualifier: None,
        }
    }

    /// A child workflow's input is written to its job item by the state machine,
    /// which cannot render templates.
    fn literal_only(&mut self, node: &Node) {
        match &node.kind {
            Kind::Str(text, _) if text.contains("{{") => {
                let help = "pass literal JSON; a child that needs values from this job can read them in its own steps";
                let message = "a child workflow's `input` cannot hold templates yet";
                self.error("garden::workflow", message, node.span, "template here", help);
            }
            Kind::Seq(items) => items.iter().for_each(|n| self.literal_only(n)),
            Kind::Map(entries) => entries.iter().for_each(|(_, v)| self.literal_only(v)),
            _ => {}
        }
    }

    /// Keys ending in `.$` would be read by Step Functions as paths.
    fn no_path_keys(&mut self, node: &Node) {
        match &node.kind {
            Kind::Map(entries) => {
                for (key, value) in entries {
                    if key.as_str().is_some_and(|k| k.ends_with(".$")) {
                        let message = "keys ending in `.$` are read by Step Functions as paths";
                        self.error(
                            "garden::path-key",
                            message,
                            key.span,
                            "here",
                            "rename the key without the `.$` ending",
                        );
                    }
                    self.no_path_keys(value);
                }
            }
            Kind::Seq(items) => items.iter().for_each(|n| self.no_path_keys(n)),
            _ => {}
        }
    }

    fn schedule(&mut self, s: &crate::definition::ScheduleDef, input_schema: &Value) -> Schedule {
        let required = input_schema.get("required").and_then(Value::as_array);
        for key in required.into_iter().flatten().filter_map(Value::as_str) {
            if s.input.get(key).is_none() {
                let message = format!("schedule `{}` gives no `{key}`, which the input requires", s.name.value);
                self.error(
                    "garden::schedule",
                    message,
                    s.span,
                    "input incomplete",
                    format!("add `{key}` to its `input`"),
                );
            }
        }
        Schedule {
            name: s.name.value.clone(),
            expression: s.expression.value.clone(),
            timezone: s.timezone.clone(),
            input: s.input.clone(),
        }
    }
}

fn describe(segment: &Segment) -> String {
    match segment {
        Segment::Key(k) => format!("`{k}`"),
        Segment::Index(i) => format!("`[{i}]`"),
    }
}

pub(crate) fn segments_text(segments: &[Segment]) -> String {
    let mut out = String::new();
    let _ = template::write_segments(&mut out, segments);
    out
}

/// A span `len` long at `start`, kept within `outer` (escapes in quoted YAML can shift text).
fn clamp(outer: Span, start: usize, len: usize) -> Span {
    if start >= outer.end {
        return outer;
    }
    Span::new(start.max(outer.start), (start + len.max(1)).min(outer.end))
}

fn looks_like_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':'
}

/// The hint when no resource of a kind is defined at all: most often the
/// shared file is not beside the definition.
fn undefined_help(kind: &str) -> String {
    format!(
        "no {kind} are defined: name them under `resources: {{ {kind}: ... }}` in the definition, \
         or in a `{}` beside it",
        crate::compile::SHARED_RESOURCES_FILE
    )
}
