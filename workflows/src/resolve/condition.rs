//! `when`: an expression over step outputs, turned into a Choice test that
//! reads exported values.

use super::*;

impl Resolver<'_> {
    pub(super) fn condition(&mut self, i: usize, node: &Node, steps: &mut [Step]) -> Option<Condition> {
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
    pub(super) fn fail(&mut self, at: usize, len: usize, message: &str, help: &str) -> Option<Test> {
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

    pub(super) fn var(&mut self, path: &Path) -> Option<VarRef> {
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

    pub(super) fn build(&mut self, expr: &Expr) -> Option<Test> {
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

    pub(super) fn compare(&mut self, op: crate::template::CompareOp, path: &Path, value: &Value) -> Option<Test> {
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
