//! Parse: definition text in, a [`Definition`] out, with every problem of
//! shape found on the way (malformed YAML, wrong types, unknown keys with a
//! suggestion, missing fields). Cost: linear in the size of the text.
//!
//! Nothing is looked up here; names of steps and resources are checked by
//! [`crate::resolve`].

mod schedules;
mod steps;

use std::sync::Arc;

use serde_json::Value;

use crate::definition::*;
use crate::error::{Diagnostics, Problem, SourceFile, Span, suggestion};
use crate::wire::{Gateway, GatewayAuth, RetryPolicy, Runtime, SessionScope, TokenPrice};
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
const MODEL_RESOURCE: &[&str] = &["id", "price_per_million_tokens"];
const PRICE: &[&str] = &["input", "output"];
pub(crate) const KINDS: &[&str] = &["model", "tool", "agent", "approval", "wait", "workflow"];
const MODIFIERS: &[&str] = &[
    "description",
    "needs",
    "when",
    "for_each",
    "wide",
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
    let input_node = fields.get("input").cloned();
    let input = input_node.as_ref().map(|n| {
        if !matches!(n.kind, Kind::Map(_)) {
            r.wrong_type(
                n,
                "a mapping",
                "`input` is the JSON Schema of the job input, such as `{ type: object }`",
            );
        }
        r.json(n)
    });
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
        input_node,
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
            Kind::Int(i) => {
                let problem = Problem::error(
                    "garden::type",
                    format!("expected a whole number of 0 or more, found {i}"),
                )
                .at(self.file, node.span, "this cannot be negative")
                .help("write a number such as `5`");
                self.problem(problem);
                None
            }
            _ => {
                self.wrong_type(node, "a whole number", "write a number such as `5`, without quotes");
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node) -> Option<bool> {
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.wrong_type(node, "true or false", "write `true` or `false`, without quotes");
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
                .help("write a duration such as `30s`, `10m`, `1h30m`, `2d` or `500ms`");
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
            // A model written wrongly is still named, so that the steps using
            // it are not also told that it does not exist.
            let model = self.model(&alias, &value).unwrap_or(Model {
                id: String::new(),
                price: None,
            });
            out.models.insert(alias, Spanned::new(model, key.span));
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

    /// `alias: model-id`, or `alias: { id, price_per_million_tokens: { input, output } }`.
    fn model(&mut self, alias: &str, node: &Node) -> Option<Model> {
        match &node.kind {
            Kind::Str(id, _) => {
                return Some(Model {
                    id: id.clone(),
                    price: None,
                });
            }
            Kind::Map(_) => {}
            _ => {
                let help = "write the Bedrock model id, or `{ id: ..., price_per_million_tokens: { input: ..., output: ... } }`";
                self.wrong_type(node, "a model id or a mapping", help);
                return None;
            }
        }
        let what = format!("model `{alias}`");
        let fields = self.fields(node, MODEL_RESOURCE, &what)?;
        let id = self.required(&fields, "id", node, &what).and_then(|n| self.string(n));
        let price = match fields.get("price_per_million_tokens") {
            Some(price) => Some(self.price(&what, price)?),
            None => None,
        };
        Some(Model { id: id?, price })
    }

    fn price(&mut self, what: &str, node: &Node) -> Option<TokenPrice> {
        let what = format!("`price_per_million_tokens` of {what}");
        let fields = self.fields(node, PRICE, &what)?;
        let mut dollars = |key: &str| {
            let at = self.required(&fields, key, node, &what)?;
            let value = self.float(at)?;
            if value < 0.0 || !value.is_finite() {
                let problem = Problem::error("garden::type", format!("a price is 0 or more, not {value}"))
                    .at(self.file, at.span, "not a price")
                    .help("write US dollars per million tokens, such as `0.80`");
                self.problem(problem);
                return None;
            }
            Some(value)
        };
        let (input, output) = (dollars("input"), dollars("output"));
        Some(TokenPrice {
            input: input?,
            output: output?,
        })
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
