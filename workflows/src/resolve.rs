//! Resolve: a [`Definition`] in, a [`Workflow`] out. Applies defaults, looks up
//! models, gateways and runtimes, parses every template, and turns each
//! reference to another step (`needs`, `steps.X.output...` in a template, a
//! `when`, a `for_each`) into a dependency. `when` conditions become Choice
//! tests over values the producing steps export. Cost: linear in the size of
//! the definition (each template is parsed once).

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
                let model_id = self.model_id(m.model.as_ref(), s);
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

    fn model_id(&mut self, model: Option<&Spanned<String>>, s: &StepDef) -> String {
        let Some(model) = model.or(self.def.defaults.model.as_ref()) else {
            let message = format!("step `{}` names no model", s.name.value);
            self.error(
                "garden::model",
                message,
                s.kind_span,
                "which model?",
                "set `model:` on the step or in `defaults`",
            );
            return String::new();
        };
        if let Some(id) = self.def.resources.models.get(&model.value) {
            return id.value.clone();
        }
        if model.value.contains(['.', ':', '/']) {
            return model.value.clone();
        }
        let help = suggestion(&model.value, self.def.resources.models.keys().map(String::as_str));
        let message = format!("`{}` is neither a model alias nor a model id", model.value);
        self.error("garden::model", message, model.span, "unknown model", help);
        String::new()
    }

    fn gateway(&mut self, name: &Spanned<String>) -> Gateway {
        if let Some(g) = self.def.resources.gateways.get(&name.value) {
            return g.value.clone();
        }
        let help = suggestion(&name.value, self.def.resources.gateways.keys().map(String::as_str));
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
        let help = suggestion(&name.value, self.def.resources.runtimes.keys().map(String::as_str));
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

    /// Parses every template inside `node`, checks its paths and records step references.
    fn templates(&mut self, node: &Node, step: Option<&StepDef>, has_item: bool, deps: &mut Vec<(usize, Span)>) {
        match &node.kind {
            Kind::Str(text, _) => {
                let base = node.span.start + node.text_offset();
                match template::parse_template(text) {
                    Err(e) => self.bad_expression(node, base, &e),
                    Ok(pieces) => {
                        for piece in pieces {
                            if let Piece::Expr(expr, offset) = piece {
                                for path in expr.paths() {
                                    let span = clamp(node.span, base + offset + path.offset, path.to_string().len());
                                    if let Some(dep) = self.path(path, span, step, has_item) {
                                        deps.push((dep, span));
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Kind::Seq(items) => items.iter().for_each(|n| self.templates(n, step, has_item, deps)),
            Kind::Map(entries) => entries
                .iter()
                .for_each(|(_, v)| self.templates(v, step, has_item, deps)),
            _ => {}
        }
    }

    fn bad_expression(&mut self, node: &Node, base: usize, e: &template::ParseError) {
        let span = clamp(node.span, base + e.offset, e.len);
        let problem = Problem::error("garden::expression", format!("bad expression: {}", e.message))
            .at(self.file, span, "here")
            .help("templates look like `{{ input.topic }}` or `{{ steps.draft.output.confidence < 0.7 }}`");
        self.diags.push(problem);
    }

    /// Checks a path's root; returns the step it depends on, if any.
    fn path(&mut self, path: &Path, span: Span, step: Option<&StepDef>, has_item: bool) -> Option<usize> {
        match path.root() {
            Some("steps") => {
                let (name, _) = path.step_reference()?;
                if path.segments.len() > 2 && path.segments[2] != Segment::Key("output".into()) {
                    let message = format!(
                        "`{path}` reads a step's {}, not its `output`",
                        describe(&path.segments[2])
                    );
                    self.error(
                        "garden::reference",
                        message,
                        span,
                        "here",
                        format!("write `steps.{name}.output...`"),
                    );
                    return None;
                }
                let name = Spanned::new(name.to_owned(), span.sub(6, name.len()));
                let dep = self.step_named(&name, "a template")?;
                if step.is_some_and(|s| s.name.value == name.value) {
                    let message = format!("step `{}` reads its own output", name.value);
                    self.error(
                        "garden::cycle",
                        message,
                        span,
                        "here",
                        "a step can only read the output of steps before it",
                    );
                    return None;
                }
                Some(dep)
            }
            Some("item") if has_item => None,
            Some("item") => {
                let help =
                    "`item` is the current element of a `for_each`; add `for_each` to this step or read another value";
                self.error(
                    "garden::reference",
                    "`item` is only known inside a `for_each` step",
                    span,
                    "no item here",
                    help,
                );
                None
            }
            Some("job") => {
                let ok = matches!(path.segments.as_slice(), [_, Segment::Key(k)] if k == "id" || k == "workflow");
                if !ok {
                    self.error(
                        "garden::reference",
                        format!("`{path}` names nothing"),
                        span,
                        "here",
                        "use `job.id` or `job.workflow`",
                    );
                }
                None
            }
            Some("input") => {
                self.input_property(path, span);
                None
            }
            other => {
                let root = other.unwrap_or_default();
                let message = format!("`{root}` is not something a template can read");
                let help = suggestion(root, ["input", "steps", "item", "job"]);
                self.error("garden::reference", message, span, "unknown name", help);
                None
            }
        }
    }

    /// Warns about `input.x` when the input schema lists its properties and `x` is not one of them.
    fn input_property(&mut self, path: &Path, span: Span) {
        let Some(Segment::Key(key)) = path.segments.get(1) else {
            return;
        };
        let Some(props) = self
            .def
            .input
            .as_ref()
            .and_then(|i| i.get("properties"))
            .and_then(Value::as_object)
        else {
            return;
        };
        if !props.contains_key(key) {
            let problem = Problem::warning("garden::input", format!("the input schema has no property `{key}`"))
                .at(self.file, span, "not in the input schema")
                .help(suggestion(key, props.keys().map(String::as_str)));
            self.diags.push(problem);
        }
    }

    fn modifiers(&mut self, i: usize, s: &StepDef, steps: &mut [Step]) {
        if let Some(mc) = &s.max_concurrency
            && (mc.value == 0 || mc.value > MAX_MAP_CONCURRENCY)
        {
            let message = format!("`max_concurrency` must be between 1 and {MAX_MAP_CONCURRENCY}");
            let help = format!(
                "an inline Map state runs at most {MAX_MAP_CONCURRENCY} iterations at once; use {MAX_MAP_CONCURRENCY} or less"
            );
            self.error("garden::max-concurrency", message, mc.span, "out of range", help);
        }
        if let Some(node) = &s.for_each {
            steps[i].for_each = self.for_each(i, node, s, steps);
        } else if let Some(mc) = &s.max_concurrency {
            let help = "remove it, or add `for_each` to run the step once per item";
            self.error(
                "garden::for-each",
                "`max_concurrency` without `for_each`",
                mc.span,
                "nothing to bound",
                help,
            );
        }
        if let Some(node) = &s.when {
            steps[i].when = self.condition(i, node, steps);
        }
        steps[i].on_error = match &s.on_error {
            OnErrorDef::Fail => OnError::Fail,
            OnErrorDef::Continue => OnError::Continue,
            OnErrorDef::Fallback(target) => match self.step_named(target, "`on_error`") {
                Some(f) if f == i => {
                    self.error(
                        "garden::fallback",
                        "a step cannot be its own fallback",
                        target.span,
                        "itself",
                        "name another step",
                    );
                    OnError::Fail
                }
                Some(f) if steps[f].fallback_for.is_some() => {
                    let help = "give each failing step a fallback of its own";
                    self.error(
                        "garden::fallback",
                        format!("`{}` is already a fallback", target.value),
                        target.span,
                        "taken",
                        help,
                    );
                    OnError::Fail
                }
                Some(f) => {
                    steps[f].fallback_for = Some(i);
                    OnError::Fallback(f)
                }
                None => OnError::Fail,
            },
        };
    }

    fn for_each(&mut self, i: usize, node: &Node, s: &StepDef, steps: &mut [Step]) -> Option<ForEach> {
        let help =
            "write `for_each: \"{{ steps.outline.output.sections }}\"`: a template naming an array a step produced";
        let Some(text) = node.as_str() else {
            self.error(
                "garden::for-each",
                "`for_each` takes a template, not a literal",
                node.span,
                "not a template",
                help,
            );
            return None;
        };
        let base = node.span.start + node.text_offset();
        let pieces = match template::parse_template(text) {
            Ok(p) => p,
            Err(e) => {
                self.bad_expression(node, base, &e);
                return None;
            }
        };
        let exprs: Vec<_> = pieces
            .iter()
            .filter(|p| !matches!(p, Piece::Text(t) if t.trim().is_empty()))
            .collect();
        let (path, offset) = match exprs.as_slice() {
            [Piece::Expr(Expr::Path(path), offset)] => (path, *offset),
            _ => {
                self.error(
                    "garden::for-each",
                    "`for_each` must be exactly one `{{ path }}`",
                    node.span,
                    "not a single path",
                    help,
                );
                return None;
            }
        };
        let span = clamp(node.span, base + offset + path.offset, path.to_string().len());
        let Some((name, rest)) = path.step_reference() else {
            let help = "a Map state iterates over indices a step exports; produce the list in a step first";
            self.error(
                "garden::for-each",
                "`for_each` must iterate over a step's output",
                span,
                "not a step output",
                help,
            );
            return None;
        };
        let source = self.path(path, span, Some(s), false)?;
        steps[i].deps.push((source, span));
        let rest_text = segments_text(rest);
        let export = if steps[source].for_each.is_some() || self.def.steps[source].for_each.is_some() {
            if !rest.is_empty() {
                let help = format!(
                    "iterate over `steps.{name}.output`, or add a step that picks `{rest_text}` from each item"
                );
                self.error(
                    "garden::for-each",
                    "a `for_each` over a fan-out reads its whole output",
                    span,
                    "path into items",
                    help,
                );
                return None;
            }
            steps[source].request_export("", ExportShape::Indices)
        } else {
            steps[source].request_export(&rest_text, ExportShape::Indices)
        };
        let max_concurrency = s
            .max_concurrency
            .as_ref()
            .map(|mc| mc.value)
            .filter(|&mc| (1..=MAX_MAP_CONCURRENCY).contains(&mc));
        Some(ForEach {
            source,
            export,
            max_concurrency,
            template: text.to_owned(),
        })
    }

    fn condition(&mut self, i: usize, node: &Node, steps: &mut [Step]) -> Option<Condition> {
        let text = node.as_str()?;
        let base = node.span.start + node.text_offset();
        let (expr, offset) = if text.contains("{{") {
            let pieces = match template::parse_template(text) {
                Ok(p) => p,
                Err(e) => {
                    self.bad_expression(node, base, &e);
                    return None;
                }
            };
            let exprs: Vec<_> = pieces
                .into_iter()
                .filter(|p| !matches!(p, Piece::Text(t) if t.trim().is_empty()))
                .collect();
            match <[Piece; 1]>::try_from(exprs) {
                Ok([Piece::Expr(expr, offset)]) => (expr, offset),
                _ => {
                    let help = "write one expression, such as `{{ steps.draft.output.confidence < 0.7 }}`";
                    self.error(
                        "garden::when",
                        "`when` must be one `{{ expression }}`",
                        node.span,
                        "here",
                        help,
                    );
                    return None;
                }
            }
        } else {
            match template::parse_expr(text) {
                Ok(expr) => (expr, 0),
                Err(e) => {
                    self.bad_expression(node, base, &e);
                    return None;
                }
            }
        };
        let mut tr = TestBuilder {
            cx: self,
            node,
            base: base + offset,
            step: i,
            steps,
            deps: Vec::new(),
        };
        let test = tr.build(&expr)?;
        let deps = std::mem::take(&mut tr.deps);
        steps[i].deps.extend(deps);
        Some(Condition {
            text: text.to_owned(),
            span: node.span,
            test,
        })
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

/// Turns a `when` expression into a Choice test, requesting exports on the way.
struct TestBuilder<'r, 'a, 's> {
    cx: &'r mut Resolver<'a>,
    node: &'r Node,
    base: usize,
    step: usize,
    steps: &'s mut [Step],
    deps: Vec<(usize, Span)>,
}

impl TestBuilder<'_, '_, '_> {
    fn fail(&mut self, at: usize, len: usize, message: &str, help: &str) -> Option<Test> {
        let span = clamp(self.node.span, self.base + at, len);
        self.cx.error(
            "garden::when",
            message.to_owned(),
            span,
            "a Choice state cannot read this",
            help.to_owned(),
        );
        None
    }

    fn var(&mut self, path: &Path) -> Option<VarRef> {
        let span = clamp(self.node.span, self.base + path.offset, path.to_string().len());
        if path.root() != Some("steps") {
            let help = "a `when` is checked by the state machine, which only sees step outputs; \
                        compute the value in a step and compare its output";
            self.fail(
                path.offset,
                path.to_string().len(),
                &format!("`when` cannot read `{path}`"),
                help,
            );
            return None;
        }
        let source = self.cx.path(path, span, None, false)?;
        if source == self.step {
            self.fail(
                path.offset,
                path.to_string().len(),
                "a step's `when` cannot read its own output",
                "read an earlier step",
            );
            return None;
        }
        let (_, rest) = path.step_reference()?;
        if self.steps[source].for_each.is_some() || self.cx.def.steps[source].for_each.is_some() {
            let help = "add a step that summarises the items and test its output";
            self.fail(
                path.offset,
                path.to_string().len(),
                "`when` cannot read the output of a `for_each` step",
                help,
            );
            return None;
        }
        self.deps.push((source, span));
        let export = self.steps[source].request_export(&segments_text(rest), ExportShape::Value);
        Some(VarRef { step: source, export })
    }

    fn build(&mut self, expr: &Expr) -> Option<Test> {
        match expr {
            Expr::Path(path) => self.var(path).map(Test::Truthy),
            Expr::Literal(_) => self.fail(
                0,
                0,
                "a `when` that is always the same is not a condition",
                "remove the `when`",
            ),
            Expr::Not(inner) => Some(Test::Not(Box::new(self.build(inner)?))),
            Expr::And(a, b) => {
                let (a, b) = (self.build(a), self.build(b));
                Some(flatten(Test::And(vec![a?, b?])))
            }
            Expr::Or(a, b) => {
                let (a, b) = (self.build(a), self.build(b));
                Some(flatten(Test::Or(vec![a?, b?])))
            }
            Expr::Compare(op, a, b) => match (a.as_ref(), b.as_ref()) {
                (Expr::Path(p), Expr::Literal(v)) => self.compare(*op, p, v),
                (Expr::Literal(v), Expr::Path(p)) => self.compare(flip(*op), p, v),
                (Expr::Path(p), Expr::Path(q)) => {
                    let (x, y) = (self.var(p), self.var(q));
                    Some(Test::Compare(*op, x?, Operand::Var(y?)))
                }
                _ => self.fail(
                    0,
                    0,
                    "compare a step output with a value or another output",
                    "such as `steps.a.output.score > 3`",
                ),
            },
        }
    }

    fn compare(&mut self, op: crate::template::CompareOp, path: &Path, value: &Value) -> Option<Test> {
        use crate::template::CompareOp::*;
        let ordered = matches!(op, Lt | Le | Gt | Ge);
        if ordered && !(value.is_number() || value.is_string()) {
            let help = "order comparisons work on numbers and strings";
            return self.fail(
                path.offset,
                path.to_string().len(),
                &format!("cannot compare with `{value}` using `{}`", op.symbol()),
                help,
            );
        }
        let var = self.var(path)?;
        Some(Test::Compare(op, var, Operand::Literal(value.clone())))
    }
}

fn flatten(test: Test) -> Test {
    match test {
        Test::And(items) => Test::And(
            items
                .into_iter()
                .flat_map(|t| match t {
                    Test::And(inner) => inner,
                    other => vec![other],
                })
                .collect(),
        ),
        Test::Or(items) => Test::Or(
            items
                .into_iter()
                .flat_map(|t| match t {
                    Test::Or(inner) => inner,
                    other => vec![other],
                })
                .collect(),
        ),
        other => other,
    }
}

fn flip(op: crate::template::CompareOp) -> crate::template::CompareOp {
    use crate::template::CompareOp::*;
    match op {
        Lt => Gt,
        Le => Ge,
        Gt => Lt,
        Ge => Le,
        other => other,
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
