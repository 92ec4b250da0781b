//! The step modifiers that need other steps: `for_each` (a Map over indices
//! another step exports), `when` and `on_error`.

use super::*;

impl Resolver<'_> {
    pub(super) fn modifiers(&mut self, i: usize, s: &StepDef, steps: &mut [Step]) {
        let wide = s.wide.as_ref().is_some_and(|w| w.value);
        let limit = if wide {
            MAX_WIDE_CONCURRENCY
        } else {
            MAX_MAP_CONCURRENCY
        };
        if let Some(mc) = &s.max_concurrency
            && (mc.value == 0 || mc.value > limit)
        {
            let message = format!("`max_concurrency` must be between 1 and {limit}");
            let help = if wide {
                format!("use {limit} or less; the workers' concurrency per kind bounds it too")
            } else {
                format!(
                    "an inline Map state runs at most {limit} iterations at once; use {limit} or less, or add `wide: true`"
                )
            };
            self.error("garden::max-concurrency", message, mc.span, "out of range", help);
        }
        if let Some(w) = &s.wide
            && w.value
        {
            let runs_on_worker = matches!(
                s.kind,
                StepKindDef::Model(_) | StepKindDef::Tool { .. } | StepKindDef::Agent { .. }
            );
            if s.for_each.is_none() {
                let help = "add `for_each` naming the items, or remove `wide`";
                self.error(
                    "garden::wide",
                    "`wide` without `for_each`",
                    w.span,
                    "nothing to fan out",
                    help,
                );
            } else if !runs_on_worker {
                let help = "only model, tool and agent steps fan out wide; remove `wide` to use a Map state";
                self.error(
                    "garden::wide",
                    "this kind of step cannot be `wide`",
                    w.span,
                    "not a worker step",
                    help,
                );
            }
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

    pub(super) fn for_each(&mut self, i: usize, node: &Node, s: &StepDef, steps: &mut [Step]) -> Option<ForEach> {
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
        let wide = s.wide.as_ref().is_some_and(|w| w.value);
        let source_wide = self.def.steps[source].wide.as_ref().is_some_and(|w| w.value);
        let export = if source_wide && !wide {
            let help = format!(
                "`{name}` is `wide`: its items are not in the state; add `wide: true` here, or drop it from `{name}`"
            );
            self.error(
                "garden::for-each",
                "a Map state cannot iterate over a wide fan-out",
                span,
                "wide output",
                help,
            );
            return None;
        } else if wide {
            // The worker reads the items from DynamoDB; the state carries nothing.
            String::new()
        } else if steps[source].for_each.is_some() || self.def.steps[source].for_each.is_some() {
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
        let max_concurrency = s.max_concurrency.as_ref().map(|mc| mc.value).filter(|&mc| {
            (1..=if wide {
                MAX_WIDE_CONCURRENCY
            } else {
                MAX_MAP_CONCURRENCY
            })
                .contains(&mc)
        });
        let max_concurrency = if wide {
            max_concurrency.or(Some(DEFAULT_WIDE_CONCURRENCY))
        } else {
            max_concurrency
        };
        Some(ForEach {
            source,
            export,
            max_concurrency,
            wide,
            template: text.to_owned(),
        })
    }
}
