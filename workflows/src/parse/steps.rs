//! Steps: exactly one kind (`model`, `tool`, `agent`, `approval`, `wait`,
//! `workflow`) and its modifiers.

use super::*;

impl Reader<'_> {
    pub(super) fn steps(&mut self, node: &Node, broken: &mut Vec<String>) -> Vec<StepDef> {
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

    pub(super) fn step(&mut self, key: &Node, node: &Node) -> Option<StepDef> {
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
        let wide = fields
            .get("wide")
            .and_then(|n| self.boolean(n).map(|v| Spanned::new(v, n.span)));
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
            wide,
            max_concurrency,
            timeout_secs,
            heartbeat_secs,
            retry,
            on_error,
        })
    }

    pub(super) fn on_error(&mut self, node: &Node) -> Option<OnErrorDef> {
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

    pub(super) fn step_kind(&mut self, kind: &str, node: &Node, what: &str) -> Option<StepKindDef> {
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
}
