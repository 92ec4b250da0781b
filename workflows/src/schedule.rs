//! Schedule expressions, checked and written the way EventBridge Scheduler
//! reads them: `cron(...)`, `rate(...)` and `at(...)`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A schedule that submits a job of the workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub name: String,
    /// `cron(0 2 * * ? *)`, `rate(1 hour)` or `at(2026-12-24T09:00:00)`.
    pub expression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The job input the schedule submits.
    pub input: Value,
}

/// Checks one form of schedule and returns the Scheduler expression, or a hint.
pub fn expression(form: &str, text: &str) -> Result<String, String> {
    let text = text.trim();
    match form {
        "cron" => cron(text).map(|()| format!("cron({text})")),
        "rate" => rate(text).map(|()| format!("rate({text})")),
        "at" => at(text).map(|()| format!("at({text})")),
        _ => Err("use `cron`, `rate` or `at`".into()),
    }
}

fn cron(text: &str) -> Result<(), String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let hint = "a cron expression has six fields: minutes hours day-of-month month day-of-week year, \
                with `?` in one of the two day fields, such as `0 2 * * ? *`";
    if fields.len() != 6 {
        return Err(format!("found {} fields; {hint}", fields.len()));
    }
    let allowed = |f: &str| f.chars().all(|c| c.is_ascii_alphanumeric() || ",-*?/#L".contains(c));
    if let Some(bad) = fields.iter().find(|f| !allowed(f)) {
        return Err(format!("`{bad}` is not a cron field; {hint}"));
    }
    if (fields[2] == "?") == (fields[4] == "?") {
        return Err(format!(
            "exactly one of day-of-month and day-of-week must be `?`; {hint}"
        ));
    }
    Ok(())
}

fn rate(text: &str) -> Result<(), String> {
    let hint = "write a rate such as `5 minutes`, `1 hour` or `7 days`";
    let mut parts = text.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(hint.into());
    };
    let Ok(value) = value.parse::<u64>() else {
        return Err(hint.into());
    };
    let ok = match unit {
        "minute" | "hour" | "day" => value == 1,
        "minutes" | "hours" | "days" => value > 1,
        _ => false,
    };
    if value == 0 {
        Err(format!("a rate must be at least 1; {hint}"))
    } else if ok {
        Ok(())
    } else {
        Err(format!("use the singular unit for 1 and the plural otherwise; {hint}"))
    }
}

fn at(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    let shape = b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if shape {
        Ok(())
    } else {
        Err("write a local date and time such as `2026-12-24T09:00:00` (no zone: set `timezone`)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_are_checked_and_wrapped() {
        assert_eq!(expression("cron", "0 2 * * ? *").unwrap(), "cron(0 2 * * ? *)");
        assert!(expression("cron", "0 2 * * *").is_err());
        assert!(expression("cron", "0 2 * * 1 *").is_err());
        assert_eq!(expression("rate", "1 hour").unwrap(), "rate(1 hour)");
        assert!(expression("rate", "1 hours").is_err());
        assert!(expression("rate", "0 minutes").is_err());
        assert_eq!(
            expression("at", "2026-12-24T09:00:00").unwrap(),
            "at(2026-12-24T09:00:00)"
        );
        assert!(expression("at", "tomorrow").is_err());
    }
}
