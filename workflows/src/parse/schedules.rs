//! Schedules: a name, one of `cron`, `rate` and `at`, a time zone and the
//! job input.

use super::*;

impl Reader<'_> {
    pub(super) fn schedules(&mut self, node: &Node) -> Vec<ScheduleDef> {
        let Some(items) = self.list(node) else {
            return Vec::new();
        };
        items.iter().filter_map(|item| self.schedule(item)).collect()
    }

    pub(super) fn schedule(&mut self, node: &Node) -> Option<ScheduleDef> {
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
