//! The step modifiers that need other steps: `for_each` (a Map over indices
//! another step exports), `when` and `on_error`.

use super::*;

impl Resolver<'_> {
    pub(super) fn modifiers(&mut self, i: usize, s: &StepDef, steps: &mut [Step]) {
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
}
