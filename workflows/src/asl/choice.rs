//! `when` conditions as Choice rules.

use serde_json::{Value, json};

use crate::template::CompareOp;
use crate::workflow::{Operand, Test, VarRef, Workflow};

pub(crate) fn var_path(wf: &Workflow, var: &VarRef) -> String {
    format!("$.v.{}.{}", wf.steps[var.step].id, var.export)
}

fn is(path: &str, test: &str) -> Value {
    json!({"Variable": path, test: true})
}

/// A Choice rule for a test; every comparison first checks the value is there
/// and of the right type, so a missing or odd value makes the rule false
/// instead of failing the execution.
pub(crate) fn test_rule(wf: &Workflow, test: &Test) -> Value {
    match test {
        Test::Truthy(var) => {
            let p = var_path(wf, var);
            json!({"And": [is(&p, "IsPresent"), {"Or": [
                {"And": [is(&p, "IsBoolean"), {"Variable": p, "BooleanEquals": true}]},
                {"And": [is(&p, "IsNumeric"), {"Not": {"Variable": p, "NumericEquals": 0}}]},
                {"And": [is(&p, "IsString"), {"Not": {"Variable": p, "StringEquals": ""}}]},
            ]}]})
        }
        Test::Not(inner) => json!({"Not": test_rule(wf, inner)}),
        Test::And(items) => json!({"And": items.iter().map(|t| test_rule(wf, t)).collect::<Vec<_>>()}),
        Test::Or(items) => json!({"Or": items.iter().map(|t| test_rule(wf, t)).collect::<Vec<_>>()}),
        Test::Compare(CompareOp::Ne, var, operand) => {
            json!({"Not": test_rule(wf, &Test::Compare(CompareOp::Eq, var.clone(), operand.clone()))})
        }
        Test::Compare(op, var, Operand::Literal(value)) => literal_rule(&var_path(wf, var), *op, value),
        Test::Compare(op, a, Operand::Var(b)) => {
            let (a, b) = (var_path(wf, a), var_path(wf, b));
            let mut kinds = vec![("IsNumeric", "Numeric"), ("IsString", "String")];
            if *op == CompareOp::Eq {
                kinds.push(("IsBoolean", "Boolean"));
            }
            let rules: Vec<Value> = kinds
                .into_iter()
                .map(|(check, prefix)| {
                    let cmp = format!("{prefix}{}Path", op_word(*op));
                    json!({"And": [is(&a, "IsPresent"), is(&b, "IsPresent"), is(&a, check), is(&b, check), {"Variable": a, cmp: b}]})
                })
                .collect();
            json!({"Or": rules})
        }
    }
}

fn literal_rule(path: &str, op: CompareOp, value: &Value) -> Value {
    let present = is(path, "IsPresent");
    match value {
        Value::Null => json!({"And": [present, is(path, "IsNull")]}),
        Value::Bool(b) => json!({"And": [present, is(path, "IsBoolean"), {"Variable": path, "BooleanEquals": b}]}),
        Value::Number(n) => {
            json!({"And": [present, is(path, "IsNumeric"), {"Variable": path, format!("Numeric{}", op_word(op)): n}]})
        }
        other => {
            let text = other.as_str().map(str::to_owned).unwrap_or_else(|| other.to_string());
            json!({"And": [present, is(path, "IsString"), {"Variable": path, format!("String{}", op_word(op)): text}]})
        }
    }
}

fn op_word(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq | CompareOp::Ne => "Equals",
        CompareOp::Lt => "LessThan",
        CompareOp::Le => "LessThanEquals",
        CompareOp::Gt => "GreaterThan",
        CompareOp::Ge => "GreaterThanEquals",
    }
}
