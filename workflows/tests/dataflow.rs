//! A property test of the emitted data flow: on the path where every `when`
//! is true, every value a state reads from the execution state is there when
//! it is read (Choice variables, Map items, the values a Parallel re-collects
//! from its branches), and every step runs.

mod common;

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Reads a path such as `$`, `$.v.a.b` or `$[1].v.x`; `None` when it names nothing.
fn read<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let mut rest = path.strip_prefix('$')?;
    let mut at = value;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            at = at.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            at = at.get(r[..end].parse::<usize>().ok()?)?;
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(at)
}

fn write(state: &mut Value, path: &str, value: Value) {
    if path == "$" {
        *state = value;
        return;
    }
    let keys: Vec<&str> = path.trim_start_matches("$.").split('.').collect();
    let mut at = state;
    for key in &keys[..keys.len() - 1] {
        at = at
            .as_object_mut()
            .expect("an object")
            .entry(key.to_string())
            .or_insert_with(|| json!({}));
    }
    at.as_object_mut()
        .expect("an object")
        .insert(keys[keys.len() - 1].to_string(), value);
}

/// Builds a selector (`{"a.$": "$.x", "b": {...}}`) against `input`.
fn select(selector: &Value, input: &Value, context: &str) -> Result<Value, String> {
    let mut out = Map::new();
    for (key, value) in selector.as_object().into_iter().flatten() {
        if let Some(name) = key.strip_suffix(".$") {
            let path = value.as_str().unwrap_or_default();
            if path.starts_with("$$") || path.starts_with("States.") {
                out.insert(name.to_owned(), json!("context"));
                continue;
            }
            let found = read(input, path).ok_or_else(|| format!("{context}: `{path}` names nothing in {input}"))?;
            out.insert(name.to_owned(), found.clone());
        } else if value.is_object() {
            out.insert(key.clone(), select(value, input, context)?);
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(Value::Object(out))
}

fn variables(rule: &Value, out: &mut Vec<String>) {
    match rule {
        Value::Object(map) => {
            for (key, value) in map {
                // `Variable`, and the second operand of `...Path` comparisons.
                if key == "Variable" || (key.ends_with("Path") && key != "ResultPath") {
                    out.push(value.as_str().unwrap_or_default().to_owned());
                } else {
                    variables(value, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| variables(v, out)),
        _ => {}
    }
}

/// The answer a worker gives: every export, `true` for values and `[0, 1]` for indices.
fn task_result(state: &Value) -> Value {
    let mut exports = Map::new();
    for e in state["Parameters"]["MessageBody"]["exports"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let value = if e["shape"] == "indices" {
            json!([0, 1])
        } else {
            json!(true)
        };
        exports.insert(e["name"].as_str().unwrap_or_default().to_owned(), value);
    }
    json!({"step": state["Parameters"]["MessageBody"]["step"], "exports": exports})
}

fn apply_result(state: &Value, input: Value, result: Value, context: &str) -> Result<Value, String> {
    let result = match state.get("ResultSelector") {
        Some(selector) => select(selector, &result, context)?,
        None => result,
    };
    let mut output = input;
    match state.get("ResultPath") {
        Some(Value::Null) => {}
        Some(Value::String(path)) => write(&mut output, path, result),
        _ => output = result,
    }
    if let Some(path) = state.get("OutputPath").and_then(Value::as_str) {
        output = read(&output, path)
            .cloned()
            .ok_or_else(|| format!("{context}: OutputPath `{path}` names nothing"))?;
    }
    Ok(output)
}

fn run(states: &Value, start: &str, mut data: Value, ran: &mut Vec<String>) -> Result<Value, String> {
    let mut current = start.to_owned();
    loop {
        let state = &states[&current];
        let context = current.clone();
        match state["Type"].as_str().unwrap_or_default() {
            "Task" => {
                let step = state["Parameters"]["MessageBody"]["step"].as_str().map(str::to_owned);
                let result = match &step {
                    Some(step) => {
                        ran.push(step.clone());
                        select(&json!({"job_id.$": "$.job.id"}), &data, &context)?;
                        task_result(state)
                    }
                    None => json!({}),
                };
                data = apply_result(state, data, result, &context)?;
            }
            "Parallel" => {
                let mut outputs = Vec::new();
                for b in state["Branches"].as_array().into_iter().flatten() {
                    outputs.push(run(
                        &b["States"],
                        b["StartAt"].as_str().unwrap_or_default(),
                        data.clone(),
                        ran,
                    )?);
                }
                data = apply_result(state, data, Value::Array(outputs), &context)?;
            }
            "Map" => {
                let path = state["ItemsPath"].as_str().unwrap_or_default();
                let items = read(&data, path)
                    .and_then(Value::as_array)
                    .cloned()
                    .ok_or_else(|| format!("{context}: no items at {path}"))?;
                let processor = &state["ItemProcessor"];
                let mut outputs = Vec::new();
                for item in items {
                    let mut input = select(&state["ItemSelector"], &data, &context)?;
                    input["item"] = item;
                    outputs.push(run(
                        &processor["States"],
                        processor["StartAt"].as_str().unwrap_or_default(),
                        input,
                        ran,
                    )?);
                }
                data = apply_result(state, data, Value::Array(outputs), &context)?;
            }
            "Choice" => {
                let rule = &state["Choices"][0];
                let mut vars = Vec::new();
                variables(rule, &mut vars);
                for var in vars {
                    read(&data, &var)
                        .ok_or_else(|| format!("{context}: the Choice reads `{var}`, which is not there"))?;
                }
                current = rule["Next"].as_str().unwrap_or_default().to_owned();
                continue;
            }
            "Pass" => {
                if let Some(result) = state.get("Result") {
                    data = apply_result(state, data, result.clone(), &context)?;
                }
            }
            "Succeed" | "Fail" => return Ok(data),
            _ => {}
        }
        match state["Next"].as_str() {
            Some(next) => current = next.to_owned(),
            None => return Ok(data),
        }
    }
}

/// A random workflow: steps depend on earlier ones through `needs`, `when`
/// and `for_each`.
fn workflow(max: usize) -> impl Strategy<Value = String> {
    (2..=max).prop_flat_map(|n| {
        proptest::collection::vec(
            (proptest::collection::vec(proptest::bool::weighted(0.35), n), 0..3u8),
            n,
        )
        .prop_map(move |rows| {
            let mut fan_out = vec![false; n];
            let mut text = String::from("name: flow\nsteps:\n");
            for (v, (bits, how)) in rows.iter().enumerate() {
                let preds: Vec<usize> = (0..v).filter(|&u| bits[u]).collect();
                text.push_str(&format!("  s{v}:\n"));
                let mut needs: Vec<String> = preds.iter().map(|u| format!("s{u}")).collect();
                if let Some(&first) = preds.first() {
                    match how {
                        1 if !fan_out[first] => {
                            text.push_str(&format!("    when: \"{{{{ steps.s{first}.output.ok }}}}\"\n"));
                            needs.remove(0);
                        }
                        2 => {
                            let path = if fan_out[first] { String::new() } else { ".items".into() };
                            text.push_str(&format!("    for_each: \"{{{{ steps.s{first}.output{path} }}}}\"\n"));
                            fan_out[v] = true;
                            needs.remove(0);
                        }
                        _ => {}
                    }
                }
                if !needs.is_empty() {
                    text.push_str(&format!("    needs: [{}]\n", needs.join(", ")));
                }
                text.push_str("    tool: { gateway: research, name: web_search }\n");
            }
            text
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn every_value_read_is_there_when_it_is_read(text in workflow(10)) {
        let compiled = common::compiled(&text);
        let asl = &compiled.asl;
        let mut ran = Vec::new();
        let start = json!({"job": {"id": "j-1", "workflow": "flow"}, "v": {}});
        let result = run(&asl["States"], asl["StartAt"].as_str().unwrap_or_default(), start, &mut ran);
        prop_assert!(result.is_ok(), "{}\n{}", result.unwrap_err(), text);
        let steps: BTreeSet<&String> = ran.iter().filter(|s| s.starts_with('s')).collect();
        let expected = text.lines().filter(|l| l.starts_with("  s")).count();
        prop_assert_eq!(steps.len(), expected, "{:?}\n{}", ran, text);
    }
}
