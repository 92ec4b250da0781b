//! Deterministic instances of a JSON Schema, built from the words of a prompt: how the stand-in fills
//! a tool call's `input`, and so how it answers a request for structured output.
//!
//! Covered: `type` (also as a list), `properties` with `required`, `items` with `minItems`/`maxItems`
//! and `uniqueItems`, `exclusiveMinimum`/`exclusiveMaximum`,
//! `enum`, `const`, `$ref` into `$defs`/`definitions`, `anyOf`/`oneOf`/`allOf` (first usable branch),
//! string `format`s (date-time, date, email, uri, uuid), `minimum`/`maximum`, `minLength`/`maxLength`.
//! Numbers named like a confidence, score or probability fall in [0, 1]; other numbers are small.

use serde_json::{Map, Value, json};

const MAX_DEPTH: usize = 12;
const UNIT_NAMES: &[&str] = &[
    "confidence",
    "score",
    "probability",
    "likelihood",
    "ratio",
    "certainty",
    "share",
];

/// Builds instances of one schema; the words and the random source make the values.
pub struct InstanceBuilder<'a> {
    root: &'a Value,
    words: &'a [String],
    rng: fastrand::Rng,
    cursor: usize,
}

impl<'a> InstanceBuilder<'a> {
    /// A builder for `root`, drawing text from `words` (not empty) and choices from `rng`.
    pub fn new(root: &'a Value, words: &'a [String], rng: fastrand::Rng) -> Self {
        let cursor = if words.is_empty() {
            0
        } else {
            rng.clone().usize(..words.len())
        };
        Self {
            root,
            words,
            rng,
            cursor,
        }
    }

    /// An instance of the root schema.
    pub fn build(mut self) -> Value {
        let root = self.root;
        self.instance(root, "value", 0)
    }

    fn instance(&mut self, schema: &Value, name: &str, depth: usize) -> Value {
        let Some(schema) = schema.as_object() else {
            // `true` or an unusable schema: anything goes, a string reads best.
            return Value::String(self.phrase(name, 3));
        };
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        if let Some(target) = schema.get("$ref").and_then(Value::as_str).and_then(|r| self.resolve(r)) {
            return self.instance(target, name, depth + 1);
        }
        if let Some(value) = schema.get("const") {
            return value.clone();
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array).filter(|o| !o.is_empty()) {
            return options[self.rng.usize(..options.len())].clone();
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                let usable = branches
                    .iter()
                    .find(|b| b.get("type").and_then(Value::as_str) != Some("null"));
                if let Some(branch) = usable {
                    return self.instance(branch, name, depth + 1);
                }
            }
        }

        match schema_type(schema) {
            "object" => self.object(schema, depth),
            "array" => self.array(schema, name, depth),
            "number" => self.number(schema, name, false),
            "integer" => self.number(schema, name, true),
            "boolean" => Value::Bool(self.rng.bool()),
            "null" => Value::Null,
            _ => self.string(schema, name),
        }
    }

    fn object(&mut self, schema: &Map<String, Value>, depth: usize) -> Value {
        let mut object = Map::new();
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (key, property) in properties {
                let value = self.instance(property, key, depth + 1);
                object.insert(key.clone(), value);
            }
        }
        // A required name without a property schema still gets a value, guessed from the name.
        for key in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if let Some(key) = key.as_str().filter(|k| !object.contains_key(*k)) {
                let value = self.instance(&guess_schema(key), key, depth + 1);
                object.insert(key.to_owned(), value);
            }
        }
        Value::Object(object)
    }

    fn array(&mut self, schema: &Map<String, Value>, name: &str, depth: usize) -> Value {
        let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .map_or(usize::MAX, |m| m as usize);
        let count = 3.clamp(min, max.max(min));
        let items = schema.get("items").cloned().unwrap_or(json!({ "type": "string" }));
        let singular = name.strip_suffix('s').unwrap_or(name);
        let unique = schema.get("uniqueItems").and_then(Value::as_bool).unwrap_or(false);
        let mut values: Vec<Value> = Vec::with_capacity(count);
        let mut tries = 0;
        while values.len() < count && tries < count * 8 {
            tries += 1;
            let value = self.instance(&items, singular, depth + 1);
            if !(unique && values.contains(&value)) {
                values.push(value);
            }
        }
        Value::Array(values)
    }

    fn number(&mut self, schema: &Map<String, Value>, name: &str, integer: bool) -> Value {
        let lower = name.to_lowercase();
        let step = if integer { 1.0 } else { 0.01 };
        let exclusive_min = schema.get("exclusiveMinimum").and_then(Value::as_f64).map(|m| m + step);
        let exclusive_max = schema.get("exclusiveMaximum").and_then(Value::as_f64).map(|m| m - step);
        let minimum = schema
            .get("minimum")
            .and_then(Value::as_f64)
            .into_iter()
            .chain(exclusive_min)
            .reduce(f64::max);
        let maximum = schema
            .get("maximum")
            .and_then(Value::as_f64)
            .into_iter()
            .chain(exclusive_max)
            .reduce(f64::min);
        let unit = UNIT_NAMES.iter().any(|u| lower.contains(u));

        let (low, high) = match (minimum, maximum) {
            (Some(low), Some(high)) => (low, high),
            (Some(low), None) => (low, low + if unit { 1.0 } else { 10.0 }),
            (None, Some(high)) => (
                (high - if unit { 1.0 } else { 10.0 })
                    .max(if unit { 0.0 } else { 1.0 })
                    .min(high),
                high,
            ),
            (None, None) if unit => (0.0, 1.0),
            (None, None) => (1.0, 10.0),
        };
        if integer {
            let (low, high) = (low.ceil() as i64, high.floor() as i64);
            return json!(if high > low { self.rng.i64(low..=high) } else { low });
        }
        let value = low + (high - low) * self.rng.f64();
        let rounded = (value * 100.0).round() / 100.0;
        json!(rounded.clamp(low, high))
    }

    fn string(&mut self, schema: &Map<String, Value>, name: &str) -> Value {
        let word = self.next_word();
        let text = match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => format!("2026-{:02}-{:02}T09:00:00Z", self.rng.u8(1..=12), self.rng.u8(1..=28)),
            Some("date") => format!("2026-{:02}-{:02}", self.rng.u8(1..=12), self.rng.u8(1..=28)),
            Some("time") => format!("{:02}:{:02}:00", self.rng.u8(0..24), self.rng.u8(0..60)),
            Some("email") => format!("{word}@example.org"),
            Some("uri" | "url") => format!("https://example.org/{word}"),
            Some("uuid") => {
                let hex: String = (0..32).map(|_| self.rng.digit(16)).collect();
                format!(
                    "{}-{}-4{}-a{}-{}",
                    &hex[..8],
                    &hex[8..12],
                    &hex[13..16],
                    &hex[17..20],
                    &hex[20..]
                )
            }
            _ => {
                self.cursor = self.cursor.wrapping_sub(1);
                let count = 2 + self.rng.usize(..4);
                self.phrase(name, count)
            }
        };
        let min_len = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max_len = schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .map_or(usize::MAX, |m| m as usize);
        let mut text = text;
        while text.chars().count() < min_len {
            text.push(' ');
            text.push_str(&self.next_word());
        }
        Value::String(text.chars().take(max_len).collect::<String>().trim_end().to_owned())
    }

    /// A short phrase of prompt words; a name or title gets capitals.
    fn phrase(&mut self, name: &str, count: usize) -> String {
        let words: Vec<String> = (0..count.max(1)).map(|_| self.next_word()).collect();
        let phrase = words.join(" ");
        let lower = name.to_lowercase();
        if lower.contains("title") || lower.contains("name") || lower.contains("heading") {
            words
                .iter()
                .map(|w| super::words::capitalize(w))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            super::words::capitalize(&phrase)
        }
    }

    fn next_word(&mut self) -> String {
        if self.words.is_empty() {
            return "garden".to_owned();
        }
        self.cursor = self.cursor.wrapping_add(1);
        self.words[self.cursor % self.words.len()].clone()
    }

    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }
}

/// A schema for a required property that has none, from its name: plurals are lists of phrases,
/// confidence-like names are numbers in [0, 1], `is_`/`has_` names are booleans.
fn guess_schema(name: &str) -> Value {
    let lower = name.to_lowercase();
    if UNIT_NAMES.iter().any(|u| lower.contains(u)) {
        json!({ "type": "number", "minimum": 0, "maximum": 1 })
    } else if lower.starts_with("is_") || lower.starts_with("has_") || lower.starts_with("needs_") {
        json!({ "type": "boolean" })
    } else if lower.ends_with('s') && !["ss", "us", "is"].iter().any(|end| lower.ends_with(end)) {
        json!({ "type": "array", "items": { "type": "string" } })
    } else {
        json!({ "type": "string" })
    }
}

fn schema_type(schema: &Map<String, Value>) -> &str {
    match schema.get("type") {
        Some(Value::String(kind)) => kind,
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if schema.contains_key("properties") || schema.contains_key("required") => "object",
        _ if schema.contains_key("items") => "array",
        _ => "string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(schema: &Value, seed: u64) -> Value {
        let words: Vec<String> = ["solar", "storage", "grid", "tariffs"].map(String::from).to_vec();
        InstanceBuilder::new(schema, &words, fastrand::Rng::with_seed(seed)).build()
    }

    #[test]
    fn objects_get_every_property_with_the_right_type() {
        let schema = json!({
            "type": "object",
            "required": ["sections", "confidence", "count", "final", "tone"],
            "properties": {
                "sections": { "type": "array", "items": { "type": "string" } },
                "confidence": { "type": "number" },
                "count": { "type": "integer", "minimum": 2, "maximum": 4 },
                "final": { "type": "boolean" },
                "tone": { "enum": ["formal", "casual"] },
                "note": { "type": ["string", "null"] }
            }
        });
        for seed in 0..20 {
            let value = build(&schema, seed);
            let sections = value["sections"].as_array().unwrap();
            assert_eq!(sections.len(), 3);
            assert!(sections.iter().all(|s| s.as_str().is_some_and(|s| !s.is_empty())));
            let confidence = value["confidence"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&confidence), "{confidence}");
            assert!((2..=4).contains(&value["count"].as_i64().unwrap()));
            assert!(value["final"].is_boolean());
            assert!(["formal", "casual"].contains(&value["tone"].as_str().unwrap()));
            assert!(value["note"].is_string());
        }
    }

    #[test]
    fn bare_required_names_get_values_that_fit_the_name() {
        let schema = json!({ "type": "object", "required": ["sections", "confidence", "needs_human", "status"] });
        let value = build(&schema, 3);
        assert_eq!(value["sections"].as_array().map(Vec::len), Some(3), "{value}");
        assert!((0.0..=1.0).contains(&value["confidence"].as_f64().unwrap()));
        assert!(value["needs_human"].is_boolean());
        assert!(value["status"].is_string());
    }

    #[test]
    fn unique_items_and_exclusive_bounds_hold() {
        let schema = json!({
            "type": "object",
            "properties": {
                "tags": { "type": "array", "uniqueItems": true, "minItems": 2, "items": { "enum": ["a", "b"] } },
                "ratio": { "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 },
                "level": { "type": "integer", "exclusiveMinimum": 4, "maximum": 5 }
            }
        });
        for seed in 0..20 {
            let value = build(&schema, seed);
            let mut tags: Vec<&str> = value["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            tags.sort_unstable();
            assert_eq!(tags, ["a", "b"]);
            let ratio = value["ratio"].as_f64().unwrap();
            assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
            assert_eq!(value["level"], 5);
        }
    }

    #[test]
    fn same_seed_same_instance_and_refs_resolve() {
        let schema = json!({
            "type": "object",
            "properties": { "items": { "type": "array", "minItems": 5, "items": { "$ref": "#/$defs/Item" } } },
            "$defs": { "Item": { "type": "object", "required": ["title", "score"],
                "properties": { "title": { "type": "string", "maxLength": 12 }, "score": { "type": "number" } } } }
        });
        let first = build(&schema, 7);
        assert_eq!(first, build(&schema, 7));
        let items = first["items"].as_array().unwrap();
        assert_eq!(items.len(), 5);
        for item in items {
            assert!(item["title"].as_str().unwrap().chars().count() <= 12);
            assert!((0.0..=1.0).contains(&item["score"].as_f64().unwrap()));
        }
    }
}
