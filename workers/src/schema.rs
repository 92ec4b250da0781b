//! JSON Schema checks of job inputs and structured model outputs.

use serde_json::Value;

/// Checks `instance` against `schema`. Each problem names the failing path
/// (`/sections/0`, or `/` for the whole value) and what is wrong there.
pub fn check(schema: &Value, instance: &Value) -> Result<(), Vec<String>> {
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        vec![format!(
            "the schema itself is invalid ({e}): deploy a corrected definition"
        )]
    })?;
    let problems: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| {
            let path = error.instance_path().to_string();
            let path = if path.is_empty() { "/".to_owned() } else { path };
            format!("at {path}: {error}")
        })
        .collect();
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn problems_name_the_failing_path() {
        let schema = json!({"type": "object", "required": ["topic"], "properties": {"topic": {"type": "string"}}});
        assert!(check(&schema, &json!({"topic": "markets"})).is_ok());
        let problems = check(&schema, &json!({"topic": 3})).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("at /topic:"), "{problems:?}");
        let problems = check(&schema, &json!({})).unwrap_err();
        assert!(
            problems[0].starts_with("at /:") && problems[0].contains("topic"),
            "{problems:?}"
        );
    }
}
