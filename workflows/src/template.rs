//! Templates and expressions: `{{ input.topic }}`, `{{ steps.outline.output.sections }}`,
//! `{{ steps.draft.output.confidence < 0.7 }}`.
//!
//! One small language serves both sides. The compiler parses every template to
//! find references (a reference to another step's output is a dependency) and
//! to turn `when` conditions into Choice rules; the workers render templates
//! against the job's input and the stored outputs of earlier steps.
//!
//! Grammar, loosest binding first:
//!
//! ```text
//! expr    := or
//! or      := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | compare
//! compare := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
//! operand := path | number | string | true | false | null | "(" expr ")"
//! path    := ident ("." ident | "[" digits "]")*
//! ```
//!
//! A string that is exactly one `{{ expr }}` renders to the expression's JSON
//! value (an array stays an array); anywhere else the value is spliced into the
//! text, strings as they are and other values as JSON.

use std::fmt;

use serde_json::Value;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Path(Path),
    Literal(Value),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(CompareOp, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

/// A dotted path such as `steps.outline.output.sections[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    pub segments: Vec<Segment>,
    /// Byte offset of the path within the expression text.
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl Path {
    /// The first key: `input`, `steps`, `item` or `job`.
    pub fn root(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Key(key)) => Some(key),
            _ => None,
        }
    }

    /// For `steps.NAME.output.rest`, the step name and the rest of the path.
    pub fn step_reference(&self) -> Option<(&str, &[Segment])> {
        match self.segments.as_slice() {
            [Segment::Key(root), Segment::Key(step), rest @ ..] if root == "steps" => {
                let rest = match rest {
                    [Segment::Key(output), tail @ ..] if output == "output" => tail,
                    other => other,
                };
                Some((step.as_str(), rest))
            }
            _ => None,
        }
    }

    /// Looks the path up in a JSON value.
    pub fn lookup<'v>(segments: &[Segment], mut value: &'v Value) -> Option<&'v Value> {
        for segment in segments {
            value = match segment {
                Segment::Key(key) => value.get(key)?,
                Segment::Index(index) => value.get(index)?,
            };
        }
        Some(value)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_segments(f, &self.segments)
    }
}

/// Writes segments as `a.b[2].c`.
pub fn write_segments(f: &mut impl fmt::Write, segments: &[Segment]) -> fmt::Result {
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Key(key) if i == 0 => f.write_str(key)?,
            Segment::Key(key) => write!(f, ".{key}")?,
            Segment::Index(index) => write!(f, "[{index}]")?,
        }
    }
    Ok(())
}

/// A template or expression that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    /// Byte offset within the text that was parsed.
    pub offset: usize,
    pub len: usize,
}

/// One piece of a template string.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    /// An expression and the byte offset of its text within the template.
    Expr(Expr, usize),
}

/// Splits a template string into text and expressions.
pub fn parse_template(text: &str) -> Result<Vec<Piece>, ParseError> {
    let mut pieces = Vec::new();
    let mut rest = 0;
    while let Some(open) = text[rest..].find("{{").map(|i| i + rest) {
        if open > rest {
            pieces.push(Piece::Text(text[rest..open].to_owned()));
        }
        let inner_start = open + 2;
        let Some(close) = text[inner_start..].find("}}").map(|i| i + inner_start) else {
            return Err(ParseError {
                message: "`{{` is never closed: add `}}` after the expression".into(),
                offset: open,
                len: 2,
            });
        };
        let expr = parse_expr(&text[inner_start..close]).map_err(|e| ParseError {
            offset: e.offset + inner_start,
            ..e
        })?;
        pieces.push(Piece::Expr(expr, inner_start));
        rest = close + 2;
    }
    if rest < text.len() {
        pieces.push(Piece::Text(text[rest..].to_owned()));
    }
    Ok(pieces)
}

/// Parses one expression (the text between `{{` and `}}`, or a `when`).
pub fn parse_expr(text: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser { text, pos: 0 };
    parser.skip_space();
    if parser.pos == text.len() {
        return Err(parser.error("empty expression: write a path such as `input.topic`", 0));
    }
    let expr = parser.or()?;
    parser.skip_space();
    if parser.pos < text.len() {
        return Err(parser.error(
            &format!("unexpected `{}` after the expression", &text[parser.pos..]),
            text.len() - parser.pos,
        ));
    }
    Ok(expr)
}

impl Expr {
    /// Every path the expression reads.
    pub fn paths(&self) -> Vec<&Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut out);
        out
    }

    fn collect_paths<'e>(&'e self, out: &mut Vec<&'e Path>) {
        match self {
            Expr::Path(path) => out.push(path),
            Expr::Literal(_) => {}
            Expr::Not(inner) => inner.collect_paths(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(_, a, b) => {
                a.collect_paths(out);
                b.collect_paths(out);
            }
        }
    }

    /// Evaluates the expression; `resolve` answers for each path (`None` when
    /// it names nothing, which makes the whole evaluation fail).
    pub fn eval<F>(&self, resolve: &mut F) -> Result<Value, String>
    where
        F: FnMut(&Path) -> Option<Value>,
    {
        Ok(match self {
            Expr::Path(path) => resolve(path).ok_or_else(|| format!("`{path}` names nothing"))?,
            Expr::Literal(value) => value.clone(),
            Expr::Not(inner) => Value::Bool(!truthy(&inner.eval(resolve)?)),
            Expr::And(a, b) => Value::Bool(truthy(&a.eval(resolve)?) && truthy(&b.eval(resolve)?)),
            Expr::Or(a, b) => Value::Bool(truthy(&a.eval(resolve)?) || truthy(&b.eval(resolve)?)),
            Expr::Compare(op, a, b) => Value::Bool(compare(*op, &a.eval(resolve)?, &b.eval(resolve)?)),
        })
    }
}

/// JSON truthiness: `null`, `false`, `0`, `""` and empty arrays and objects are false.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn compare(op: CompareOp, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().zip(y.as_f64()).and_then(|(x, y)| x.partial_cmp(&y)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    };
    match op {
        CompareOp::Eq => a == b || ordering == Some(Ordering::Equal),
        CompareOp::Ne => !(a == b || ordering == Some(Ordering::Equal)),
        CompareOp::Lt => ordering == Some(Ordering::Less),
        CompareOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        CompareOp::Gt => ordering == Some(Ordering::Greater),
        CompareOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
    }
}

/// Renders a JSON value whose strings may hold templates.
pub fn render<F>(value: &Value, resolve: &mut F) -> Result<Value, RenderError>
where
    F: FnMut(&Path) -> Option<Value>,
{
    Ok(match value {
        Value::String(text) => render_str(text, resolve)?,
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, resolve)).collect::<Result<_, _>>()?),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render(v, resolve)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
        other => other.clone(),
    })
}

/// Renders one template string. A string that is exactly one `{{ expr }}`
/// becomes the expression's value, whatever its type.
pub fn render_str<F>(text: &str, resolve: &mut F) -> Result<Value, RenderError>
where
    F: FnMut(&Path) -> Option<Value>,
{
    let pieces = parse_template(text).map_err(|e| RenderError {
        template: text.to_owned(),
        message: e.message,
    })?;
    let fail = |message: String| RenderError {
        template: text.to_owned(),
        message,
    };
    if let [Piece::Expr(expr, _)] = pieces.as_slice() {
        return expr.eval(resolve).map_err(fail);
    }
    let mut out = String::with_capacity(text.len());
    for piece in &pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Expr(expr, _) => match expr.eval(resolve).map_err(fail)? {
                Value::String(s) => out.push_str(&s),
                other => out.push_str(&other.to_string()),
            },
        }
    }
    Ok(Value::String(out))
}

/// Every path referenced by the templates inside a JSON value.
pub fn template_paths(value: &Value) -> Result<Vec<Path>, ParseError> {
    let mut out = Vec::new();
    collect_template_paths(value, &mut out)?;
    Ok(out)
}

fn collect_template_paths(value: &Value, out: &mut Vec<Path>) -> Result<(), ParseError> {
    match value {
        Value::String(text) => {
            for piece in parse_template(text)? {
                if let Piece::Expr(expr, _) = piece {
                    out.extend(expr.paths().into_iter().cloned());
                }
            }
        }
        Value::Array(items) => items.iter().try_for_each(|v| collect_template_paths(v, out))?,
        Value::Object(map) => map.values().try_for_each(|v| collect_template_paths(v, out))?,
        _ => {}
    }
    Ok(())
}

/// A template that could not be rendered at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render `{template}`: {message}")]
pub struct RenderError {
    pub template: String,
    pub message: String,
}

struct Parser<'t> {
    text: &'t str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str, len: usize) -> ParseError {
        ParseError {
            message: message.to_owned(),
            offset: self.pos,
            len: len.max(1),
        }
    }

    fn skip_space(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.text[self.pos..].starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while self.eat("&&") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        self.skip_space();
        if self.text[self.pos..].starts_with('!') && !self.text[self.pos..].starts_with("!=") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ParseError> {
        let left = self.operand()?;
        const OPS: [(&str, CompareOp); 6] = [
            ("==", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            ("<=", CompareOp::Le),
            (">=", CompareOp::Ge),
            ("<", CompareOp::Lt),
            (">", CompareOp::Gt),
        ];
        for (token, op) in OPS {
            if self.eat(token) {
                let right = self.operand()?;
                return Ok(Expr::Compare(op, Box::new(left), Box::new(right)));
            }
        }
        Ok(left)
    }

    fn operand(&mut self) -> Result<Expr, ParseError> {
        self.skip_space();
        let rest = &self.text[self.pos..];
        let Some(first) = rest.chars().next() else {
            return Err(self.error("the expression ends where a value was expected", 1));
        };
        if first == '(' {
            self.pos += 1;
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.error("`(` is never closed: add `)`", 1));
            }
            return Ok(inner);
        }
        if first == '"' || first == '\'' {
            let Some(end) = rest[1..].find(first) else {
                return Err(self.error("a string is never closed", rest.len()));
            };
            self.pos += end + 2;
            return Ok(Expr::Literal(Value::String(rest[1..end + 1].to_owned())));
        }
        if first.is_ascii_digit() || first == '-' {
            let len = rest
                .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
                .unwrap_or(rest.len());
            let number: serde_json::Number = rest[..len]
                .parse()
                .map_err(|_| self.error(&format!("`{}` is not a number", &rest[..len]), len))?;
            self.pos += len;
            return Ok(Expr::Literal(Value::Number(number)));
        }
        if first.is_alphabetic() || first == '_' {
            return self.path();
        }
        Err(self.error(
            &format!("unexpected `{first}`: expected a path, a number or a string"),
            1,
        ))
    }

    fn path(&mut self) -> Result<Expr, ParseError> {
        let start = self.pos;
        let mut segments = vec![Segment::Key(self.ident())];
        loop {
            let rest = &self.text[self.pos..];
            if rest.starts_with('.') {
                self.pos += 1;
                if !self.text[self.pos..].starts_with(|c: char| c.is_alphanumeric() || c == '_') {
                    return Err(self.error("expected a name after `.`", 1));
                }
                segments.push(Segment::Key(self.ident()));
            } else if rest.starts_with('[') {
                let Some(end) = rest.find(']') else {
                    return Err(self.error("`[` is never closed: add `]`", 1));
                };
                let index = rest[1..end]
                    .trim()
                    .parse()
                    .map_err(|_| self.error("an index must be a whole number, such as `[0]`", end + 1))?;
                segments.push(Segment::Index(index));
                self.pos += end + 1;
            } else {
                break;
            }
        }
        if let [Segment::Key(word)] = segments.as_slice() {
            match word.as_str() {
                "true" => return Ok(Expr::Literal(Value::Bool(true))),
                "false" => return Ok(Expr::Literal(Value::Bool(false))),
                "null" => return Ok(Expr::Literal(Value::Null)),
                _ => {}
            }
        }
        Ok(Expr::Path(Path {
            segments,
            offset: start,
        }))
    }

    fn ident(&mut self) -> String {
        let rest = &self.text[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        self.pos += len;
        rest[..len].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn context() -> Value {
        json!({
            "input": {"topic": "tides", "years": 3},
            "steps": {"outline": {"output": {"sections": ["a", "b"], "confidence": 0.5}}},
            "item": "b",
        })
    }

    fn render_with(value: &Value) -> Result<Value, RenderError> {
        let ctx = context();
        render(value, &mut |path: &Path| Path::lookup(&path.segments, &ctx).cloned())
    }

    #[test]
    fn a_whole_template_keeps_the_value_type() {
        let out = render_with(&json!("{{ steps.outline.output.sections }}")).unwrap();
        assert_eq!(out, json!(["a", "b"]));
    }

    #[test]
    fn templates_inside_text_are_spliced() {
        let out = render_with(&json!({"q": "about {{input.topic}} over {{ input.years }} years, {{ item }}"})).unwrap();
        assert_eq!(out, json!({"q": "about tides over 3 years, b"}));
    }

    #[test]
    fn conditions_compare_numbers_and_combine() {
        let out = render_with(&json!(
            "{{ steps.outline.output.confidence < 0.7 && !(input.topic == 'sand') }}"
        ))
        .unwrap();
        assert_eq!(out, json!(true));
        let out = render_with(&json!(
            "{{ steps.outline.output.confidence >= 0.7 || input.years > 5 }}"
        ))
        .unwrap();
        assert_eq!(out, json!(false));
    }

    #[test]
    fn a_missing_path_is_an_error_that_names_it() {
        let err = render_with(&json!("{{ steps.outline.output.missing }}")).unwrap_err();
        assert!(err.message.contains("steps.outline.output.missing"), "{err}");
    }

    #[test]
    fn step_references_are_found_with_their_offsets() {
        let expr = parse_expr("steps.draft.output.confidence < 0.7").unwrap();
        let paths = expr.paths();
        let (step, rest) = paths[0].step_reference().unwrap();
        assert_eq!(step, "draft");
        assert_eq!(rest, &[Segment::Key("confidence".into())]);
        assert_eq!(paths[0].offset, 0);
    }

    #[test]
    fn bad_expressions_point_at_the_problem() {
        let err = parse_template("x {{ input.topic ").unwrap_err();
        assert_eq!(err.offset, 2);
        let err = parse_expr("input.topic <").unwrap_err();
        assert!(err.message.contains("ends"), "{}", err.message);
        let err = parse_expr("input..topic").unwrap_err();
        assert_eq!(err.offset, 6);
        assert!(parse_expr("   ").is_err());
        assert!(parse_expr("a[x]").is_err());
    }
}
