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

/// Fills in the `default` of every property the instance leaves out, in
/// nested objects too, so that templates can read `input.audience` when the
/// job did not name one. JSON Schema validators only describe defaults; the
/// dispatcher applies them once, to the input it stores with the job.
pub fn apply_defaults(schema: &Value, instance: &mut Value) {
    let (Some(properties), Value::Object(object)) = (schema.get("properties").and_then(Value::as_object), instance)
    else {
        return;
    };
    for (name, property) in properties {
        match object.get_mut(name) {
            Some(value) => apply_defaults(property, value),
            None => {
                if let Some(default) = property.get("default") {
                    object.insert(name.clone(), default.clone());
                }
            }
        }
    }
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

    #[test]
    fn defaults_fill_what_the_input_leaves_out() {
        let schema = json!({"type": "object", "properties": {
            "topic": {"type": "string"},
            "audience": {"type": "string", "default": "executives"},
            "limits": {"type": "object", "properties": {"words": {"type": "integer", "default": 800}}}
        }});
        let mut input = json!({"topic": "tides", "limits": {}});
        apply_defaults(&schema, &mut input);
        assert_eq!(
            input,
            json!({"topic": "tides", "audience": "executives", "limits": {"words": 800}})
        );
        let mut given = json!({"audience": "traders"});
        apply_defaults(&schema, &mut given);
        assert_eq!(given["audience"], "traders", "a given value wins over the default");
    }
}
