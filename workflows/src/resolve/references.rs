//! Template references: every path a template reads is checked, and a
//! reference to another step's output becomes a dependency.

use super::*;

impl Resolver<'_> {
    /// Parses every template inside `node`, checks its paths and records step references.
    pub(super) fn templates(
        &mut self,
        node: &Node,
        step: Option<&StepDef>,
        has_item: bool,
        deps: &mut Vec<(usize, Span)>,
    ) {
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

    pub(super) fn bad_expression(&mut self, node: &Node, base: usize, e: &template::ParseError) {
        let span = clamp(node.span, base + e.offset, e.len);
        let problem = Problem::error("garden::expression", format!("bad expression: {}", e.message))
            .at(self.file, span, "here")
            .help("templates look like `{{ input.topic }}` or `{{ steps.draft.output.confidence < 0.7 }}`");
        self.diags.push(problem);
    }

    /// Checks a path's root; returns the step it depends on, if any.
    pub(super) fn path(&mut self, path: &Path, span: Span, step: Option<&StepDef>, has_item: bool) -> Option<usize> {
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
                self.output_property(dep, path, span);
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
    /// Warns about `steps.X.output.field` when X is a model step whose
    /// `output_schema` lists its properties and `field` is not one of them.
    pub(super) fn output_property(&mut self, dep: usize, path: &Path, span: Span) {
        let Some(Segment::Key(field)) = path.segments.get(3) else {
            return;
        };
        let StepKindDef::Model(model) = &self.def.steps[dep].kind else {
            return;
        };
        let Some(schema) = &model.output_schema else {
            return;
        };
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        if props.contains_key(field) || schema.get("additionalProperties") == Some(&Value::Bool(true)) {
            return;
        }
        let step = &self.def.steps[dep].name.value;
        let problem = Problem::warning(
            "garden::output",
            format!("the `output_schema` of `{step}` has no property `{field}`"),
        )
        .at(self.file, span, "not in the output schema")
        .help(suggestion(field, props.keys().map(String::as_str)));
        self.diags.push(problem);
    }

    /// Warns about input properties no template reads.
    pub(super) fn unread_inputs(&mut self) {
        let (Some(read), Some(node)) = (&self.inputs_read, &self.def.input_node) else {
            return;
        };
        let Kind::Map(entries) = &node.kind else {
            return;
        };
        let Some((_, props)) = entries.iter().find(|(k, _)| k.as_str() == Some("properties")) else {
            return;
        };
        let Kind::Map(props) = &props.kind else {
            return;
        };
        let unread: Vec<&Node> = props
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !read.contains(k.as_str().unwrap_or_default()))
            .collect();
        for key in unread {
            let name = key.as_str().unwrap_or_default();
            let problem = Problem::warning("garden::unused", format!("input property `{name}` is never read"))
                .at(self.file, key.span, "unused")
                .help(format!(
                    "read it with `{{{{ input.{name} }}}}`, or remove it from the schema"
                ));
            self.diags.push(problem);
        }
    }

    pub(super) fn input_property(&mut self, path: &Path, span: Span) {
        let Some(Segment::Key(key)) = path.segments.get(1) else {
            self.inputs_read = None;
            return;
        };
        if let Some(read) = &mut self.inputs_read {
            read.insert(key.clone());
        }
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
}
