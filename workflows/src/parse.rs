//! Parse: definition text in, a [`Definition`] out, with every problem of
//! shape found on the way (malformed YAML, wrong types, unknown keys with a
//! suggestion, missing fields). Cost: linear in the size of the text.
//!
//! Nothing is looked up here; names of steps and resources are checked by
//! [`crate::resolve`].

use std::sync::Arc;

use serde_json::Value;

use crate::definition::*;
use crate::error::{Diagnostics, Problem, SourceFile, Span, suggestion};
use crate::wire::{Gateway, GatewayAuth, RetryPolicy, Runtime, SessionScope};
use crate::yaml::{self, Kind, Node};

const TOP: &[&str] = &[
    "name",
    "description",
    "input",
    "defaults",
    "resources",
    "steps",
    "output",
    "schedules",
];
const DEFAULTS: &[&str] = &["model", "timeout", "heartbeat", "retry"];
const RETRY: &[&str] = &["attempts", "backoff", "max_delay"];
pub(crate) const RESOURCES: &[&str] = &["models", "gateways", "runtimes"];
const GATEWAY: &[&str] = &["url", "auth"];
const AUTH: &[&str] = &["type", "token_url", "client_id", "client_secret_env", "scope"];
const RUNTIME: &[&str] = &["arn", "qualifier"];
pub(crate) const KINDS: &[&str] = &["model", "tool", "agent", "approval", "wait", "workflow"];
const MODIFIERS: &[&str] = &[
    "description",
    "needs",
    "when",
    "for_each",
    "max_concurrency",
    "timeout",
    "heartbeat",
    "retry",
    "on_error",
];
const MODEL: &[&str] = &[
    "model",
    "system",
    "prompt",
    "max_tokens",
    "temperature",
    "top_p",
    "tools",
    "output_schema",
    "max_tool_rounds",
];
const TOOL: &[&str] = &["gateway", "name", "arguments"];
const AGENT: &[&str] = &["runtime", "session", "payload"];
const APPROVAL: &[&str] = &["notify", "message"];
const WAIT: &[&str] = &["seconds", "until"];
const WORKFLOW: &[&str] = &["name", "input"];
const SCHEDULE: &[&str] = &["name", "description", "cron", "rate", "at", "timezone", "input"];

/// Parses a definition. Returns what could be read even when there are
/// problems, so that later passes can report theirs too.
pub fn parse_definition(file: &Arc<SourceFile>, diags: &mut Diagnostics) -> Option<Definition> {
    let root = read_root(file, diags)?;
    let mut r = Reader { file, diags };
    let fields = r.fields(&root, TOP, "the definition")?;
    let name = match fields.get("name") {
        Some(node) => r.string(node).map(|s| Spanned::new(s, node.span)),
        None => {
            r.problem(
                Problem::error("garden::missing", "the definition has no `name`")
                    .at(file, Span::new(0, 0), "")
                    .help("add `name: my-workflow` at the top"),
            );
            None
        }
    };
    if let Some(name) = &name {
        r.check_name(name, "workflow");
    }
    let description = fields.get("description").and_then(|n| r.string(n));
    let input = fields.get("input").map(|n| r.json(n));
    let defaults = fields.get("defaults").map(|n| r.defaults(n)).unwrap_or_default();
    let resources = fields.get("resources").map(|n| r.resources(n)).unwrap_or_default();
    let mut broken_steps = Vec::new();
    let (steps, steps_span) = match fields.get_entry("steps") {
        Some((key, node)) => (r.steps(node, &mut broken_steps), key.span),
        None => {
            r.problem(
                Problem::error("garden::missing", "the definition has no `steps`")
                    .at(file, root.span.sub(0, 0), "")
                    .help("add a `steps:` mapping with at least one step"),
            );
            (Vec::new(), Span::default())
        }
    };
    let output = fields.get("output").cloned();
    let schedules = fields.get("schedules").map(|n| r.schedules(n)).unwrap_or_default();
    Some(Definition {
        file: file.clone(),
        name: name?,
        description,
        input,
        defaults,
        resources,
        steps,
        broken_steps,
        steps_span,
        output,
        schedules,
    })
}

/// Parses a shared resources file (`models`, `gateways`, `runtimes` at the top).
pub fn parse_resources(file: &Arc<SourceFile>, diags: &mut Diagnostics) -> Option<Resources> {
    let root = read_root(file, diags)?;
    Some(Reader { file, diags }.resources(&root))
}

fn read_root(file: &Arc<SourceFile>, diags: &mut Diagnostics) -> Option<Node> {
    match yaml::parse(&file.text) {
        Ok(Some(root)) => Some(root),
        Ok(None) => {
            diags.push(
                Problem::error("garden::empty", format!("`{}` is empty", file.name))
                    .at(file, Span::new(0, 0), "nothing here")
                    .help("a definition needs at least `name` and `steps`"),
            );
            None
        }
        Err(e) => {
            diags.push(
                Problem::error("garden::yaml", format!("this is not valid YAML: {}", e.message))
                    .at(file, e.span, "here")
                    .help("check the indentation, quotes and brackets around this point"),
            );
            None
        }
    }
}

/// The fields of a mapping, after unknown keys were reported.
pub(crate) struct Fields<'n> {
    entries: &'n [(Node, Node)],
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.get_entry(key).map(|(_, v)| v)
    }

    pub fn get_entry(&self, key: &str) -> Option<(&'n Node, &'n Node)> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }
}

pub(crate) struct Reader<'a> {
    pub file: &'a Arc<SourceFile>,
    pub diags: &'a mut Diagnostics,
}

impl Reader<'_> {
    pub fn problem(&mut self, problem: Problem) {
        self.diags.push(problem);
    }

    fn wrong_type(&mut self, node: &Node, expected: &str, help: &str) {
        let problem = Problem::error(
            "garden::type",
            format!("expected {expected}, found {}", node.kind.type_name()),
        )
        .at(self.file, node.span, format!("this should be {expected}"))
        .help(help.to_owned());
        self.problem(problem);
    }

    /// The entries of a mapping; unknown keys are reported with a suggestion.
    pub fn fields<'n>(&mut self, node: &'n Node, allowed: &[&str], what: &str) -> Option<Fields<'n>> {
        let Kind::Map(entries) = &node.kind else {
            self.wrong_type(node, "a mapping", &format!("{what} is a mapping of `key: value` lines"));
            return None;
        };
        for (key, _) in entries {
            let name = key.as_str().unwrap_or_default();
            if !allowed.contains(&name) {
                let problem = Problem::error("garden::unknown-key", format!("unknown key `{name}` in {what}"))
                    .at(self.file, key.span, "not a known key")
                    .help(suggestion(name, allowed.iter().copied()));
                self.problem(problem);
            }
        }
        Some(Fields { entries })
    }

    pub fn string(&mut self, node: &Node) -> Option<String> {
        match &node.kind {
            Kind::Str(s, _) => Some(s.clone()),
            _ => {
                self.wrong_type(node, "a string", "quote the value if it should be text");
                None
            }
        }
    }

    fn spanned_string(&mut self, node: &Node) -> Option<Spanned<String>> {
        self.string(node).map(|s| Spanned::new(s, node.span))
    }

    fn uint(&mut self, node: &Node) -> Option<u64> {
        match node.kind {
            Kind::Int(i) if i >= 0 => Some(i as u64),
            _ => {
                self.wrong_type(node, "a whole number", "write a number such as `5`, without quotes");
                None
            }
        }
    }

    fn float(&mut self, node: &Node) -> Option<f64> {
        match node.kind {
            Kind::Int(i) => Some(i as f64),
            Kind::Float(f) => Some(f),
            _ => {
                self.wrong_type(node, "a number", "write a number such as `0.5`, without quotes");
                None
            }
        }
    }

    fn list<'n>(&mut self, node: &'n Node) -> Option<&'n [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            _ => {
                self.wrong_type(node, "a list", "write a list such as `[a, b]`");
                None
            }
        }
    }

    pub fn json(&mut self, node: &Node) -> Value {
        node.to_json()
    }

    /// A duration such as `90s`, `10m`, `1h30m` or `500ms`, or whole seconds; in milliseconds.
    fn duration_ms(&mut self, node: &Node) -> Option<u64> {
        let parsed = match &node.kind {
            Kind::Int(i) if *i >= 0 => Some(*i as u64 * 1000),
            Kind::Str(s, _) => parse_duration_ms(s),
            _ => None,
        };
        if parsed.is_none() {
            let problem = Problem::error("garden::duration", "this is not a duration")
                .at(self.file, node.span, "expected a duration")
                .help("write a duration such as `30s`, `10m`, `1h30m` or `500ms`");
            self.problem(problem);
        }
        parsed
    }

    fn duration_secs(&mut self, node: &Node) -> Option<Spanned<u64>> {
        let ms = self.duration_ms(node)?;
        if ms < 1000 {
            let problem = Problem::error("garden::duration", "Step Functions counts this in whole seconds")
                .at(self.file, node.span, "less than a second")
                .help("use at least `1s`");
            self.problem(problem);
            return None;
        }
        Some(Spanned::new(ms.div_ceil(1000), node.span))
    }

    /// Names of workflows, steps and resources: letters, digits, `-` and `_`, starting with a letter.
    pub fn check_name(&mut self, name: &Spanned<String>, what: &str) {
        let ok = name.value.len() <= 64
            && name.value.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            let problem = Problem::error("garden::name", format!("`{}` is not a valid {what} name", name.value))
                .at(self.file, name.span, "invalid name")
                .help("start with a letter and use only letters, digits, `-` and `_` (at most 64 characters)");
            self.problem(problem);
        }
    }

    fn retry(&mut self, node: &Node) -> Option<RetryPolicy> {
        let fields = self.fields(node, RETRY, "`retry`")?;
        let mut policy = RetryPolicy::default();
        if let Some(n) = fields.get("attempts") {
            policy.attempts = self.uint(n)? as u32;
            if policy.attempts == 0 {
                let problem = Problem::error("garden::retry", "`attempts` counts the first attempt too")
                    .at(self.file, n.span, "zero attempts")
                    .help("use `attempts: 1` for no retries");
                self.problem(problem);
            }
        }
        if let Some(n) = fields.get("backoff") {
            policy.backoff_ms = self.duration_ms(n)?;
        }
        if let Some(n) = fields.get("max_delay") {
            policy.max_delay_ms = self.duration_ms(n)?;
        }
        Some(policy)
    }

    fn defaults(&mut self, node: &Node) -> Defaults {
        let Some(fields) = self.fields(node, DEFAULTS, "`defaults`") else {
            return Defaults::default();
        };
        Defaults {
            model: fields.get("model").and_then(|n| self.spanned_string(n)),
            timeout_secs: fields
                .get("timeout")
                .and_then(|n| self.duration_secs(n))
                .map(|s| s.value),
            heartbeat_secs: fields
                .get("heartbeat")
                .and_then(|n| self.duration_secs(n))
                .map(|s| s.value),
            retry: fields.get("retry").and_then(|n| self.retry(n)),
        }
    }

    fn resources(&mut self, node: &Node) -> Resources {
        let mut out = Resources::default();
        let Some(fields) = self.fields(node, RESOURCES, "`resources`") else {
            return out;
        };
        for (key, value) in fields.get("models").map(|n| self.map_entries(n)).unwrap_or_default() {
            let alias = key.as_str().unwrap_or_default().to_owned();
            if let Some(id) = self.string(&value) {
                out.models.insert(alias, Spanned::new(id, key.span));
            }
        }
        for (key, value) in fields.get("gateways").map(|n| self.map_entries(n)).unwrap_or_default() {
            let name = key.as_str().unwrap_or_default().to_owned();
            self.check_name(&Spanned::new(name.clone(), key.span), "gateway");
            if let Some(gateway) = self.gateway(&name, &value) {
                out.gateways.insert(name, Spanned::new(gateway, key.span));
            }
        }
        for (key, value) in fields.get("runtimes").map(|n| self.map_entries(n)).unwrap_or_default() {
            let name = key.as_str().unwrap_or_default().to_owned();
            self.check_name(&Spanned::new(name.clone(), key.span), "runtime");
            if let Some(runtime) = self.runtime(&name, &value) {
                out.runtimes.insert(name, Spanned::new(runtime, key.span));
            }
        }
        out
    }

    fn map_entries(&mut self, node: &Node) -> Vec<(Node, Node)> {
        match &node.kind {
            Kind::Map(entries) => entries.clone(),
            _ => {
                self.wrong_type(node, "a mapping", "write `name: { ... }` entries");
                Vec::new()
            }
        }
    }

    fn required<'n>(&mut self, fields: &Fields<'n>, key: &str, at: &Node, what: &str) -> Option<&'n Node> {
        let found = fields.get(key);
        if found.is_none() {
            let problem = Problem::error("garden::missing", format!("{what} has no `{key}`"))
                .at(self.file, at.span.sub(0, 0), format!("`{key}` missing here"))
                .help(format!("add `{key}:`"));
            self.problem(problem);
        }
        found
    }

    fn gateway(&mut self, name: &str, node: &Node) -> Option<Gateway> {
        let what = format!("gateway `{name}`");
        let fields = self.fields(node, GATEWAY, &what)?;
        let url = self.required(&fields, "url", node, &what).and_then(|n| self.string(n));
        let auth = match fields.get("auth") {
            None => GatewayAuth::None,
            Some(n) => self.auth(n)?,
        };
        Some(Gateway {
            name: name.to_owned(),
            url: url?,
            auth,
        })
    }

    fn auth(&mut self, node: &Node) -> Option<GatewayAuth> {
        let fields = self.fields(node, AUTH, "`auth`")?;
        let kind = self.required(&fields, "type", node, "`auth`")?;
        let kind_name = self.string(kind)?;
        let text = |key: &str, this: &mut Self| {
            this.required(&fields, key, node, "oauth `auth`")
                .and_then(|n| this.string(n))
        };
        match kind_name.as_str() {
            "none" => Some(GatewayAuth::None),
            "sigv4" => Some(GatewayAuth::Sigv4),
            "oauth" => {
                let token_url = text("token_url", self);
                let client_id = text("client_id", self);
                let client_secret_env = text("client_secret_env", self);
                let scope = fields.get("scope").and_then(|n| self.string(n));
                Some(GatewayAuth::Oauth {
                    token_url: token_url?,
                    client_id: client_id?,
                    client_secret_env: client_secret_env?,
                    scope,
                })
            }
            other => {
                let problem = Problem::error("garden::auth", format!("unknown auth type `{other}`"))
                    .at(self.file, kind.span, "not an auth type")
                    .help(suggestion(other, ["none", "sigv4", "oauth"]));
                self.problem(problem);
                None
            }
        }
    }

    fn runtime(&mut self, name: &str, node: &Node) -> Option<Runtime> {
        let what = format!("runtime `{name}`");
        let fields = self.fields(node, RUNTIME, &what)?;
        let arn = self.required(&fields, "arn", node, &what).and_then(|n| self.string(n));
        let qualifier = fields.get("qualifier").and_then(|n| self.string(n));
        Some(Runtime {
            name: name.to_owned(),
            arn: arn?,
            qualifier,
        })
    }

    fn steps(&mut self, node: &Node, broken: &mut Vec<String>) -> Vec<StepDef> {
        let Kind::Map(entries) = &node.kind else {
            self.wrong_type(node, "a mapping", "`steps` maps each step name to what it does");
            return Vec::new();
        };
        if entries.is_empty() {
            let problem = Problem::error("garden::no-steps", "the workflow has no steps")
                .at(self.file, node.span, "empty")
                .help("add at least one step");
            self.problem(problem);
        }
        let mut steps = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            match self.step(key, value) {
                Some(step) => steps.push(step),
                None => broken.push(key.as_str().unwrap_or_default().to_owned()),
            }
        }
        steps
    }

    fn step(&mut self, key: &Node, node: &Node) -> Option<StepDef> {
        let name = Spanned::new(key.as_str().unwrap_or_default().to_owned(), key.span);
        self.check_name(&name, "step");
        let what = format!("step `{}`", name.value);
        let allowed: Vec<&str> = KINDS.iter().chain(MODIFIERS).copied().collect();
        let fields = self.fields(node, &allowed, &what)?;
        let kinds: Vec<_> = KINDS.iter().filter_map(|k| fields.get_entry(k)).collect();
        let (kind_key, kind_node) = match kinds.as_slice() {
            [one] => *one,
            [] => {
                let problem = Problem::error("garden::step-kind", format!("{what} does not say what it does"))
                    .at(self.file, key.span, "no step kind")
                    .help("add one of `model`, `tool`, `agent`, `approval`, `wait` or `workflow`");
                self.problem(problem);
                return None;
            }
            [_, second, ..] => {
                let problem = Problem::error("garden::step-kind", format!("{what} has more than one kind"))
                    .at(self.file, second.0.span, "second kind")
                    .help("split it into two steps, one kind each");
                self.problem(problem);
                return None;
            }
        };
        // Modifiers are read even when the kind has problems, so all are reported.
        let timeout_secs = fields.get("timeout").and_then(|n| self.duration_secs(n));
        let heartbeat_secs = fields.get("heartbeat").and_then(|n| self.duration_secs(n));
        let retry = fields.get("retry").and_then(|n| self.retry(n));
        let kind = self.step_kind(kind_key.as_str().unwrap_or_default(), kind_node, &what);
        let needs = match fields.get("needs") {
            None => Vec::new(),
            Some(n) => match &n.kind {
                Kind::Str(..) => self.spanned_string(n).into_iter().collect(),
                _ => self
                    .list(n)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|item| self.spanned_string(item))
                    .collect(),
            },
        };
        let when = fields.get("when").filter(|n| self.string(n).is_some()).cloned();
        let for_each = fields.get("for_each").cloned();
        let max_concurrency = fields
            .get("max_concurrency")
            .and_then(|n| self.uint(n).map(|v| Spanned::new(v, n.span)));
        let on_error = match fields.get("on_error") {
            None => OnErrorDef::Fail,
            Some(n) => self.on_error(n)?,
        };
        Some(StepDef {
            name,
            span: node.span,
            kind: kind?,
            kind_span: kind_key.span,
            needs,
            when,
            for_each,
            max_concurrency,
            timeout_secs,
            heartbeat_secs,
            retry,
            on_error,
        })
    }

    fn on_error(&mut self, node: &Node) -> Option<OnErrorDef> {
        match &node.kind {
            Kind::Str(s, _) if s == "fail" => Some(OnErrorDef::Fail),
            Kind::Str(s, _) if s == "continue" => Some(OnErrorDef::Continue),
            Kind::Map(_) => {
                let fields = self.fields(node, &["fallback"], "`on_error`")?;
                let target = self.required(&fields, "fallback", node, "`on_error`")?;
                Some(OnErrorDef::Fallback(self.spanned_string(target)?))
            }
            _ => {
                let problem = Problem::error(
                    "garden::on-error",
                    "`on_error` is `fail`, `continue` or `{ fallback: STEP }`",
                )
                .at(self.file, node.span, "not understood")
                .help("write `on_error: continue` or `on_error: { fallback: other_step }`");
                self.problem(problem);
                None
            }
        }
    }

    fn step_kind(&mut self, kind: &str, node: &Node, what: &str) -> Option<StepKindDef> {
        let what = format!("the `{kind}` of {what}");
        Some(match kind {
            "model" => {
                let f = self.fields(node, MODEL, &what)?;
                let prompt = self
                    .required(&f, "prompt", node, &what)
                    .filter(|n| self.string(n).is_some());
                let tools = match f.get("tools") {
                    None => Vec::new(),
                    Some(n) => self
                        .list(n)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|t| self.spanned_string(t))
                        .collect(),
                };
                let model = f.get("model").and_then(|n| self.spanned_string(n));
                let system = f.get("system").filter(|n| self.string(n).is_some()).cloned();
                let max_tokens = f.get("max_tokens").and_then(|n| self.uint(n)).map(|v| v as u32);
                let temperature = f.get("temperature").and_then(|n| self.float(n)).map(|v| v as f32);
                let top_p = f.get("top_p").and_then(|n| self.float(n)).map(|v| v as f32);
                let max_tool_rounds = f.get("max_tool_rounds").and_then(|n| self.uint(n)).map(|v| v as u32);
                let output_schema = f.get("output_schema").map(|n| self.json(n));
                StepKindDef::Model(ModelDef {
                    model,
                    system,
                    prompt: prompt?.clone(),
                    max_tokens,
                    temperature,
                    top_p,
                    tools,
                    output_schema,
                    max_tool_rounds,
                })
            }
            "tool" => {
                let f = self.fields(node, TOOL, &what)?;
                let gateway = self
                    .required(&f, "gateway", node, &what)
                    .and_then(|n| self.spanned_string(n));
                let name = self.required(&f, "name", node, &what).and_then(|n| self.string(n));
                StepKindDef::Tool {
                    gateway: gateway?,
                    name: name?,
                    arguments: f.get("arguments").cloned(),
                }
            }
            "agent" => {
                let f = self.fields(node, AGENT, &what)?;
                let runtime = self
                    .required(&f, "runtime", node, &what)
                    .and_then(|n| self.spanned_string(n));
                let session = match f.get("session") {
                    None => SessionScope::PerJob,
                    Some(n) => match self.string(n).as_deref() {
                        Some("per-job") => SessionScope::PerJob,
                        Some("per-step") => SessionScope::PerStep,
                        Some(other) => {
                            let problem = Problem::error("garden::session", format!("unknown session scope `{other}`"))
                                .at(self.file, n.span, "not a session scope")
                                .help(suggestion(other, ["per-job", "per-step"]));
                            self.problem(problem);
                            return None;
                        }
                        None => return None,
                    },
                };
                StepKindDef::Agent {
                    runtime: runtime?,
                    session,
                    payload: f.get("payload").cloned(),
                }
            }
            "approval" => {
                if matches!(node.kind, Kind::Null) {
                    return Some(StepKindDef::Approval {
                        notify: None,
                        message: None,
                    });
                }
                let f = self.fields(node, APPROVAL, &what)?;
                StepKindDef::Approval {
                    notify: f.get("notify").and_then(|n| self.string(n)),
                    message: f.get("message").filter(|n| self.string(n).is_some()).cloned(),
                }
            }
            "wait" => {
                let f = self.fields(node, WAIT, &what)?;
                match (f.get("seconds"), f.get("until")) {
                    (Some(n), None) => StepKindDef::Wait(WaitDef::Seconds(self.uint(n)?)),
                    (None, Some(n)) => StepKindDef::Wait(WaitDef::Until(self.string(n)?)),
                    _ => {
                        let problem =
                            Problem::error("garden::wait", "a wait needs exactly one of `seconds` and `until`")
                                .at(self.file, node.span, "here")
                                .help("write `wait: { seconds: 60 }` or `wait: { until: \"2026-12-24T09:00:00Z\" }`");
                        self.problem(problem);
                        return None;
                    }
                }
            }
            "workflow" => {
                let f = self.fields(node, WORKFLOW, &what)?;
                let name = self
                    .required(&f, "name", node, &what)
                    .and_then(|n| self.spanned_string(n))?;
                self.check_name(&name, "workflow");
                StepKindDef::Workflow {
                    name,
                    input: f.get("input").cloned(),
                }
            }
            _ => return None,
        })
    }

    fn schedules(&mut self, node: &Node) -> Vec<ScheduleDef> {
        let Some(items) = self.list(node) else {
            return Vec::new();
        };
        items.iter().filter_map(|item| self.schedule(item)).collect()
    }

    fn schedule(&mut self, node: &Node) -> Option<ScheduleDef> {
        let f = self.fields(node, SCHEDULE, "a schedule")?;
        let name = self
            .required(&f, "name", node, "a schedule")
            .and_then(|n| self.spanned_string(n));
        let forms: Vec<_> = ["cron", "rate", "at"]
            .into_iter()
            .filter_map(|k| f.get(k).map(|n| (k, n)))
            .collect();
        let expression = match forms.as_slice() {
            [(form, n)] => {
                let text = self.string(n)?;
                match crate::schedule::expression(form, &text) {
                    Ok(expr) => Some(Spanned::new(expr, n.span)),
                    Err(help) => {
                        let problem =
                            Problem::error("garden::schedule", format!("this `{form}` expression is not valid"))
                                .at(self.file, n.span, "invalid")
                                .help(help);
                        self.problem(problem);
                        None
                    }
                }
            }
            _ => {
                let problem = Problem::error(
                    "garden::schedule",
                    "a schedule needs exactly one of `cron`, `rate` and `at`",
                )
                .at(self.file, node.span, "here")
                .help("write `cron: \"0 2 * * ? *\"`, `rate: 1 hour` or `at: \"2026-12-24T09:00:00\"`");
                self.problem(problem);
                None
            }
        };
        let timezone = f.get("timezone").and_then(|n| self.string(n));
        let input = f
            .get("input")
            .map(|n| self.json(n))
            .unwrap_or_else(|| Value::Object(Default::default()));
        Some(ScheduleDef {
            name: name?,
            span: node.span,
            expression: expression?,
            timezone,
            input,
        })
    }
}

/// `90s`, `10m`, `1h30m`, `500ms`, `2d` to milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        total = total.checked_add(value.checked_mul(factor)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration_ms("10m"), Some(600_000));
        assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("2x"), None);
        assert_eq!(parse_duration_ms("m"), None);
    }
}
