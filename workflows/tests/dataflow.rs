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

/// Resolves a `.$` value: a path, a context path or one of the intrinsics the compiler uses.
fn resolve(expr: &str, input: &Value, context: &str) -> Result<Value, String> {
    if expr.starts_with("$$") || expr.starts_with("States.Format(") {
        return Ok(json!("context"));
    }
    let inner = |name: &str| expr.strip_prefix(name).and_then(|r| r.strip_suffix(')'));
    if let Some(path) = inner("States.StringToJson(") {
        let text = resolve(path, input, context)?;
        return serde_json::from_str(text.as_str().unwrap_or_default()).map_err(|e| format!("{context}: {e}"));
    }
    if let Some(path) = inner("States.JsonToString(") {
        return Ok(Value::String(resolve(path, input, context)?.to_string()));
    }
    if let Some(args) = inner("States.JsonMerge(") {
        let args: Vec<&str> = args.split(',').map(str::trim).collect();
        let [a, b, "false"] = args.as_slice() else {
            return Err(format!(
                "{context}: States.JsonMerge takes two paths and `false`: {expr}"
            ));
        };
        let (mut a, b) = (resolve(a, input, context)?, resolve(b, input, context)?);
        let (Some(into), Some(from)) = (a.as_object_mut(), b.as_object()) else {
            return Err(format!("{context}: States.JsonMerge of a non-object: {expr}"));
        };
        into.extend(from.clone());
        return Ok(a);
    }
    read(input, expr)
        .cloned()
        .ok_or_else(|| format!("{context}: `{expr}` names nothing in {input}"))
}

/// Builds a selector (`{"a.$": "$.x", "b": {...}}`) against `input`.
fn select(selector: &Value, input: &Value, context: &str) -> Result<Value, String> {
    let mut out = Map::new();
    for (key, value) in selector.as_object().into_iter().flatten() {
        if let Some(name) = key.strip_suffix(".$") {
            out.insert(
                name.to_owned(),
                resolve(value.as_str().unwrap_or_default(), input, context)?,
            );
        } else if value.is_object() {
            out.insert(key.clone(), select(value, input, context)?);
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(Value::Object(out))
}

/// `*` matches any text, as in `StringMatches`.
fn matches(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (head.len()..=text.len()).any(|i| text.is_char_boundary(i) && matches(tail, &text[i..]))
        }
    }
}

/// Evaluates a Choice rule; reading a missing variable in a comparison is a
/// run-time error, as in Step Functions.
fn holds(rule: &Value, data: &Value, context: &str) -> Result<bool, String> {
    if let Some(items) = rule.get("And").and_then(Value::as_array) {
        for item in items {
            if !holds(item, data, context)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(items) = rule.get("Or").and_then(Value::as_array) {
        for item in items {
            if holds(item, data, context)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Some(inner) = rule.get("Not") {
        return Ok(!holds(inner, data, context)?);
    }
    let path = rule["Variable"].as_str().unwrap_or_default();
    let value = read(data, path);
    if let Some(wanted) = rule.get("IsPresent") {
        return Ok(value.is_some() == (*wanted == true));
    }
    let value = value.ok_or_else(|| format!("{context}: the Choice reads `{path}`, which is not there"))?;
    let (op, operand) = rule
        .as_object()
        .and_then(|m| m.iter().find(|(k, _)| *k != "Variable" && *k != "Next"))
        .ok_or_else(|| format!("{context}: an empty rule"))?;
    let operand = match op.strip_suffix("Path") {
        Some(_) => read(data, operand.as_str().unwrap_or_default())
            .cloned()
            .ok_or_else(|| format!("{context}: `{operand}` is not there"))?,
        None => operand.clone(),
    };
    let num = |v: &Value| v.as_f64();
    Ok(match op.trim_end_matches("Path") {
        "IsNull" => value.is_null() == (operand == true),
        "IsString" => value.is_string() == (operand == true),
        "IsNumeric" => value.is_number() == (operand == true),
        "IsBoolean" => value.is_boolean() == (operand == true),
        "StringEquals" | "BooleanEquals" => *value == operand,
        "StringMatches" => matches(operand.as_str().unwrap_or_default(), value.as_str().unwrap_or_default()),
        "NumericEquals" => num(value) == num(&operand),
        "NumericLessThan" => num(value) < num(&operand),
        "NumericGreaterThan" => num(value) > num(&operand),
        "NumericLessThanEquals" => num(value) <= num(&operand),
        "NumericGreaterThanEquals" => num(value) >= num(&operand),
        other => return Err(format!("{context}: the simulator does not know `{other}`")),
    })
}

/// How a run of some states ended.
enum End {
    Done(Value),
    /// The error: `{Error, Cause?}`.
    Failed(Value),
    /// Waiting at a join gate (the state's name) for steps not finished yet.
    Blocked(String, Value),
}

impl std::fmt::Debug for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Done(v) => write!(f, "done {v}"),
            End::Failed(e) => write!(f, "failed {e}"),
            End::Blocked(at, _) => write!(f, "blocked at {at}"),
        }
    }
}

/// Runs the emitted state machine on a JSON state. Every `when` is true (the
/// worker exports `true`); the task of step `fail.0`, if any, fails with `fail.1`.
struct Sim {
    fail: Option<(String, Value)>,
    ran: Vec<String>,
    /// The `ExpressionAttributeValues` of each job update, resolved.
    updates: Vec<Value>,
    /// Steps a `Finished` notice reported, with the values it carried.
    finished: Map<String, Value>,
}

impl Sim {
    /// Follows the state's catchers; `None` when none applies.
    fn catch(&self, state: &Value, data: &Value, error: &Value) -> Option<(String, Value)> {
        for catcher in state["Catch"].as_array().into_iter().flatten() {
            let names = catcher["ErrorEquals"].as_array().cloned().unwrap_or_default();
            if names.iter().any(|n| *n == "States.ALL" || *n == error["Error"]) {
                let mut data = data.clone();
                match catcher.get("ResultPath") {
                    Some(Value::String(path)) => write(&mut data, path, error.clone()),
                    Some(Value::Null) => {}
                    _ => data = error.clone(),
                }
                return Some((catcher["Next"].as_str().unwrap_or_default().to_owned(), data));
            }
        }
        None
    }

    /// Runs branches one at a time; a branch blocked at a join gate resumes
    /// once others have finished what it waits for. No progress in a round
    /// is a deadlock, and an error.
    fn group(&mut self, runs: Vec<(Value, String, Value)>) -> Result<Result<Value, Value>, String> {
        let mut outputs = vec![None; runs.len()];
        let mut pending: Vec<(usize, Value, String, Value)> = runs
            .into_iter()
            .enumerate()
            .map(|(i, (s, at, d))| (i, s, at, d))
            .collect();
        while !pending.is_empty() {
            let mut blocked = Vec::new();
            let mut moved = false;
            for (i, states, at, input) in pending {
                match self.run(&states, &at, input)? {
                    End::Done(out) => {
                        outputs[i] = Some(out);
                        moved = true;
                    }
                    End::Failed(e) => return Ok(Err(e)),
                    End::Blocked(now, data) => {
                        moved |= now != at;
                        blocked.push((i, states, now, data));
                    }
                }
            }
            if !moved {
                let at: Vec<&String> = blocked.iter().map(|b| &b.2).collect();
                return Err(format!("deadlock: every branch waits at a gate: {at:?}"));
            }
            pending = blocked;
        }
        Ok(Ok(Value::Array(outputs.into_iter().flatten().collect())))
    }

    fn run(&mut self, states: &Value, start: &str, mut data: Value) -> Result<End, String> {
        let mut current = start.to_owned();
        loop {
            let state = &states[&current];
            let context = current.clone();
            let outcome: Result<Value, Value> = match state["Type"].as_str().unwrap_or_default() {
                "Task" => {
                    let params = &state["Parameters"];
                    let resolved = select(params, &data, &context)?;
                    if state["Resource"]
                        .as_str()
                        .unwrap_or_default()
                        .ends_with("dynamodb:updateItem")
                    {
                        self.updates.push(resolved["ExpressionAttributeValues"].clone());
                    }
                    let spec = &resolved["MessageBody"]["spec"];
                    match params["MessageBody"]["step"].as_str() {
                        Some(step) if spec["kind"] == "finished" => {
                            self.finished.insert(step.to_owned(), spec["values"].clone());
                            Ok(json!({}))
                        }
                        Some(_) if spec["kind"] == "gate" => {
                            let deps: Vec<&str> = spec["deps"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .collect();
                            if deps.iter().any(|d| !self.finished.contains_key(*d)) {
                                return Ok(End::Blocked(current, data));
                            }
                            let mut v = Map::new();
                            for id in spec["values"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                            {
                                let found = self.finished.values().find_map(|values| values.get(id));
                                let found =
                                    found.ok_or_else(|| format!("{context}: no notice carried the values of {id}"))?;
                                v.insert(id.to_owned(), found.clone());
                            }
                            Ok(json!({"v": v}))
                        }
                        Some(step) => {
                            self.ran.push(step.to_owned());
                            match &self.fail {
                                Some((failing, error)) if failing == step => Err(error.clone()),
                                _ => Ok(task_result(state)),
                            }
                        }
                        None => Ok(json!({})),
                    }
                }
                "Parallel" => {
                    let runs = state["Branches"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|b| {
                            (
                                b["States"].clone(),
                                b["StartAt"].as_str().unwrap_or_default().to_owned(),
                                data.clone(),
                            )
                        })
                        .collect();
                    self.group(runs)?
                }
                "Map" => {
                    let path = state["ItemsPath"].as_str().unwrap_or_default();
                    let items = read(&data, path)
                        .and_then(Value::as_array)
                        .cloned()
                        .ok_or_else(|| format!("{context}: no items at {path}"))?;
                    let processor = &state["ItemProcessor"];
                    let mut runs = Vec::new();
                    for item in items {
                        let mut input = select(&state["ItemSelector"], &data, &context)?;
                        input["item"] = item;
                        let start = processor["StartAt"].as_str().unwrap_or_default().to_owned();
                        runs.push((processor["States"].clone(), start, input));
                    }
                    self.group(runs)?
                }
                "Choice" => {
                    let mut next = state["Default"].as_str().map(str::to_owned);
                    for rule in state["Choices"].as_array().into_iter().flatten() {
                        if holds(rule, &data, &context)? {
                            next = rule["Next"].as_str().map(str::to_owned);
                            break;
                        }
                    }
                    current = next.ok_or_else(|| format!("{context}: no rule matched and there is no Default"))?;
                    continue;
                }
                "Pass" => {
                    if let Some(params) = state.get("Parameters") {
                        data = select(params, &data, &context)?;
                    }
                    if let Some(result) = state.get("Result") {
                        data = apply_result(state, data, result.clone(), &context)?;
                    }
                    Ok(Value::Null)
                }
                "Fail" => {
                    let mut error = Map::new();
                    // Step Functions refuses to raise `States.*` names from a Fail state.
                    let raised = state["ErrorPath"]
                        .as_str()
                        .and_then(|p| read(&data, p))
                        .and_then(Value::as_str);
                    if raised.is_some_and(|e| e.starts_with("States.")) {
                        return Err(format!("{context}: a Fail state may not raise {raised:?}"));
                    }
                    if let Some(name) = state.get("Error") {
                        error.insert("Error".into(), name.clone());
                    }
                    if let Some(path) = state["ErrorPath"].as_str() {
                        error.insert("Error".into(), resolve(path, &data, &context)?);
                    }
                    if let Some(path) = state["CausePath"].as_str() {
                        error.insert("Cause".into(), resolve(path, &data, &context)?);
                    }
                    return Ok(End::Failed(Value::Object(error)));
                }
                "Succeed" => return Ok(End::Done(data)),
                _ => Ok(Value::Null),
            };
            match outcome {
                Ok(result) => {
                    if matches!(state["Type"].as_str(), Some("Task" | "Parallel" | "Map")) {
                        data = apply_result(state, data, result, &context)?;
                    }
                }
                Err(error) => match self.catch(state, &data, &error) {
                    Some((next, caught)) => {
                        data = caught;
                        current = next;
                        continue;
                    }
                    None => return Ok(End::Failed(error)),
                },
            }
            match state["Next"].as_str() {
                Some(next) => current = next.to_owned(),
                None => return Ok(End::Done(data)),
            }
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

fn start() -> Value {
    json!({"job": {"id": "j-1", "workflow": "flow"}, "v": {}})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn every_value_read_is_there_when_it_is_read(text in workflow(10)) {
        let compiled = common::compiled(&text);
        let asl = &compiled.asl;
        let mut sim = Sim { fail: None, ran: Vec::new(), updates: Vec::new(), finished: Map::new() };
        let end = sim.run(&asl["States"], asl["StartAt"].as_str().unwrap_or_default(), start());
        prop_assert!(matches!(end, Ok(End::Done(_))), "{:?}\n{}", end, text);
        let steps: BTreeSet<&String> = sim.ran.iter().filter(|s| s.starts_with('s')).collect();
        let expected = text.lines().filter(|l| l.starts_with("  s")).count();
        prop_assert_eq!(steps.len(), expected, "{:?}\n{}", sim.ran, text);
        prop_assert_eq!(&sim.updates.last().expect("the job is updated")[":status"]["S"], "SUCCEEDED");
    }

    #[test]
    fn a_failed_step_is_recorded_with_its_name_and_status(
        text in workflow(8),
        pick in 0..8usize,
        timeout in proptest::bool::ANY,
        with_cause in proptest::bool::ANY,
    ) {
        let compiled = common::compiled(&text);
        let asl = &compiled.asl;
        let count = text.lines().filter(|l| l.starts_with("  s")).count();
        let step = format!("s{}", pick % count);
        let mut error = json!({"Error": if timeout { "States.Timeout" } else { "Garden.ToolError" }});
        if with_cause {
            error["Cause"] = json!("the tool said no");
        }
        let mut sim = Sim { fail: Some((step.clone(), error)), ran: Vec::new(), updates: Vec::new(), finished: Map::new() };
        let end = sim.run(&asl["States"], asl["StartAt"].as_str().unwrap_or_default(), start());
        let failed = match end {
            Ok(End::Failed(e)) => e,
            other => return Err(TestCaseError::fail(format!("{other:?}\n{text}"))),
        };
        let update = sim.updates.last().expect("the job is updated");
        prop_assert_eq!(&update[":step"]["S"], &json!(step), "{}", text);
        prop_assert_eq!(&update[":status"]["S"], if timeout { "TIMED_OUT" } else { "FAILED" });
        prop_assert_eq!(&update[":cause"]["S"], if with_cause { "the tool said no" } else { "" });
        prop_assert_eq!(&failed["Error"], if timeout { "Garden.TimedOut" } else { "Garden.ToolError" });
    }
}
