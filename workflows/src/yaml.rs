//! The first pass: YAML text in, a tree of [`Node`]s with byte spans out.
//!
//! saphyr gives every node a span in characters; this pass turns them into
//! byte offsets (what miette underlines with) and flattens saphyr's types into
//! a small tree the later passes read. Cost: linear in the size of the text.

use std::borrow::Cow;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, ScalarStyle, YamlData};
use serde_json::{Map, Number, Value};

use crate::error::Span;

/// A YAML node with the byte span of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string, and whether it was quoted (the span then includes the quote).
    Str(String, bool),
    Seq(Vec<Node>),
    /// Keys in document order; keys are always strings here.
    Map(Vec<(Node, Node)>),
}

impl Kind {
    /// The name of the YAML type, for "expected a mapping, found a string".
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Null => "nothing",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(..) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s, _) => Some(s),
            _ => None,
        }
    }

    /// The node as JSON; mapping keys that are not strings are written as text.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::Number((*i).into()),
            Kind::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Str(s, _) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => {
                let map: Map<String, Value> = entries
                    .iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v.to_json()))
                    .collect();
                Value::Object(map)
            }
        }
    }

    /// Where the text of a string starts inside the span (after a quote).
    pub fn text_offset(&self) -> usize {
        match self.kind {
            Kind::Str(_, true) => 1,
            _ => 0,
        }
    }
}

/// A YAML syntax error, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub message: String,
    pub span: Span,
}

/// Parses one YAML document. `Ok(None)` for a file with no document.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let offsets = CharOffsets::new(text);
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let at = offsets.byte(e.marker().index());
        SyntaxError {
            message: e.info().to_owned(),
            span: Span::new(at, next_char_end(text, at)),
        }
    })?;
    if docs.len() > 1 {
        let second = offsets.byte(docs[1].span.start.index());
        return Err(SyntaxError {
            message: "a definition file holds one YAML document, this is a second one".into(),
            span: Span::new(second, next_char_end(text, second)),
        });
    }
    let Some(doc) = docs.into_iter().next() else {
        return Ok(None);
    };
    let node = convert(&doc, text, &offsets)?;
    Ok(match node.kind {
        Kind::Null => None,
        _ => Some(node),
    })
}

fn next_char_end(text: &str, at: usize) -> usize {
    text[at.min(text.len())..]
        .chars()
        .next()
        .map_or(at, |c| at + c.len_utf8())
}

fn convert(node: &MarkedYaml<'_>, text: &str, offsets: &CharOffsets) -> Result<Node, SyntaxError> {
    let mut span = Span::new(
        offsets.byte(node.span.start.index()),
        offsets.byte(node.span.end.index()),
    );
    let trimmed = text
        .get(span.start..span.end)
        .map_or(0, |s| s.len() - s.trim_end().len());
    span.end -= trimmed;
    let kind = match &node.data {
        YamlData::Value(scalar) => scalar_kind(scalar, quoted_at(text, span.start)),
        YamlData::Representation(repr, style, tag) => {
            let quoted = !matches!(style, ScalarStyle::Plain);
            match Scalar::parse_from_cow_and_metadata(Cow::Borrowed(repr.as_ref()), *style, tag.as_ref()) {
                Some(scalar) => scalar_kind(&scalar, quoted),
                None => return Err(bad_value(span)),
            }
        }
        YamlData::Sequence(items) => {
            let items = items
                .iter()
                .map(|n| convert(n, text, offsets))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(last) = items.last() {
                span.end = span.end.max(last.span.end);
            }
            span.end = close_flow(text, span, '[', ']');
            Kind::Seq(items)
        }
        YamlData::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (key, value) in map {
                let key = convert(key, text, offsets)?;
                let key = match key.kind {
                    Kind::Str(..) => key,
                    Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) | Kind::Null => Node {
                        kind: Kind::Str(text[key.span.start..key.span.end].to_owned(), false),
                        span: key.span,
                    },
                    _ => {
                        return Err(SyntaxError {
                            message: "a mapping key must be a plain name, not a list or a mapping".into(),
                            span: key.span,
                        });
                    }
                };
                let value = convert(value, text, offsets)?;
                span.end = span.end.max(value.span.end);
                entries.push((key, value));
            }
            span.end = close_flow(text, span, '{', '}');
            Kind::Map(entries)
        }
        YamlData::Tagged(_, inner) => return convert(inner, text, offsets),
        YamlData::Alias(_) | YamlData::BadValue => return Err(bad_value(span)),
    };
    Ok(Node { span, kind })
}

/// A flow collection's span ends at its last item; take the closing bracket in.
fn close_flow(text: &str, span: Span, open: char, close: char) -> usize {
    if !text[span.start..].starts_with(open) {
        return span.end;
    }
    let rest = &text[span.end..];
    let trimmed = rest.trim_start();
    if trimmed.starts_with(close) && !text[..span.end].ends_with(close) {
        span.end + (rest.len() - trimmed.len()) + 1
    } else {
        span.end
    }
}

fn bad_value(span: Span) -> SyntaxError {
    SyntaxError {
        message: "this value cannot be read: check its tag and quoting".into(),
        span,
    }
}

fn quoted_at(text: &str, at: usize) -> bool {
    matches!(text.as_bytes().get(at), Some(b'"' | b'\''))
}

fn scalar_kind(scalar: &Scalar<'_>, quoted: bool) -> Kind {
    match scalar {
        Scalar::Null => Kind::Null,
        Scalar::Boolean(b) => Kind::Bool(*b),
        Scalar::Integer(i) => Kind::Int(*i),
        Scalar::FloatingPoint(f) => Kind::Float(f.into_inner()),
        Scalar::String(s) => Kind::Str(s.to_string(), quoted),
    }
}

/// Character index to byte offset; free for ASCII text.
struct CharOffsets {
    table: Option<Vec<usize>>,
    len: usize,
}

impl CharOffsets {
    fn new(text: &str) -> Self {
        let table = (!text.is_ascii()).then(|| text.char_indices().map(|(i, _)| i).collect());
        CharOffsets { table, len: text.len() }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.len),
            Some(table) => table.get(char_index).copied().unwrap_or(self.len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_keys_and_values() {
        let text = "name: demo\nsteps:\n  a:\n    model: { prompt: \"hi\" }\n";
        let root = parse(text).unwrap().unwrap();
        let Kind::Map(entries) = &root.kind else { panic!() };
        let (key, value) = &entries[0];
        assert_eq!(&text[key.span.start..key.span.end], "name");
        assert_eq!(&text[value.span.start..value.span.end], "demo");
        let Kind::Map(steps) = &entries[1].1.kind else { panic!() };
        let Kind::Map(model) = &steps[0].1.kind else { panic!() };
        let Kind::Map(fields) = &model[0].1.kind else { panic!() };
        let prompt = &fields[0].1;
        assert_eq!(&text[prompt.span.start..prompt.span.end], "\"hi\"");
        assert_eq!(prompt.text_offset(), 1);
    }

    #[test]
    fn non_ascii_text_keeps_byte_offsets() {
        let text = "a: \"é\"\nb: x\n";
        let root = parse(text).unwrap().unwrap();
        let Kind::Map(entries) = &root.kind else { panic!() };
        let (key, value) = &entries[1];
        assert_eq!(&text[key.span.start..key.span.end], "b");
        assert_eq!(&text[value.span.start..value.span.end], "x");
    }

    #[test]
    fn syntax_errors_and_empty_files_do_not_panic() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("# only a comment\n").unwrap().is_none());
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(!err.message.is_empty());
        assert!(parse("a: 1\na: 2\n").is_err());
        assert!(parse("[]").is_ok());
        assert!(parse("{}").is_ok());
        assert!(parse("[é, [ü]]").is_ok());
        assert!(parse("{a: [1, 2 ]}").is_ok());
    }
}
