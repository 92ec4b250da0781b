//! The model of the Converse stand-in: reads a Converse request body and answers it
//! deterministically from its content.
//!
//! The choice between a tool call and text follows what a tool-using model does:
//! - a forced `toolChoice` always calls a tool: `{"tool": {"name"}}` that one (how structured output
//!   is asked for: the answer is an instance of that tool's input schema), `any` the first offered
//!   tool not called yet in the conversation, else the last one;
//! - offered tools (`auto`) are called once, with a generated input, until a `toolResult` is in the
//!   conversation; then the answer is text that quotes the result;
//! - otherwise the answer is a short paragraph built from the last user message's key words and the
//!   model family.

use serde_json::{Value, json};

use super::request::ConverseRequest;
use super::schema_instance::InstanceBuilder;
use super::words::{capitalize, model_family};

/// A Converse answer, ready to be sent as the response body.
pub fn answer(model_id: &str, request: &ConverseRequest, hash: &str) -> Value {
    let mut rng = super::words::rng_from_hash(hash);
    let (content, stop_reason) = match request.tool_to_call() {
        Some(tool) => {
            let input = InstanceBuilder::new(&tool.input_schema, &request.words, rng.clone()).build();
            let tool_use_id = format!("tooluse_{}", &hash[..22]);
            let block = json!({ "toolUse": { "toolUseId": tool_use_id, "name": tool.name, "input": input } });
            (vec![block], "tool_use")
        }
        None => {
            let text = match request.last_tool_result() {
                Some((name, result)) => quote_tool_result(&name, &result, &request.words, &mut rng),
                None => paragraph(model_id, &request.words, &mut rng),
            };
            let (text, stop_reason) = truncate_words(&text, request.max_tokens);
            (vec![json!({ "text": text })], stop_reason)
        }
    };

    let output_tokens = content.iter().map(output_tokens).sum::<u64>().max(1);
    let input_tokens = (request.input_chars as u64).div_ceil(4).max(1);
    json!({
        "output": { "message": { "role": "assistant", "content": content } },
        "stopReason": stop_reason,
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens
        },
        "metrics": { "latencyMs": 120 + output_tokens * 6 }
    })
}

fn paragraph(model_id: &str, words: &[String], rng: &mut fastrand::Rng) -> String {
    let family = capitalize(&model_family(model_id));
    let topic = match words {
        [] => "the request".to_owned(),
        [one] => one.clone(),
        [first, second] => format!("{first} and {second}"),
        [first, second, third, ..] => format!("{first}, {second} and {third}"),
    };
    let openings = [
        format!("{family} stand-in summary on {topic}."),
        format!("{family} stand-in notes about {topic}."),
        format!("Answer from the {family} stand-in on {topic}."),
    ];
    let middles = [
        "The main point is that each part depends on the others, so they are best weighed together.",
        "The evidence points one way, though the details deserve a second look.",
        "Three factors matter most: cost, timing and the risk of getting it wrong.",
    ];
    let mut text = openings[rng.usize(..openings.len())].clone();
    text.push(' ');
    text.push_str(middles[rng.usize(..middles.len())]);
    let rest: Vec<&str> = words.iter().skip(3).take(4).map(String::as_str).collect();
    if !rest.is_empty() {
        text.push_str(&format!(" It also touches on {}.", rest.join(", ")));
    }
    text
}

fn quote_tool_result(name: &str, result: &str, words: &[String], rng: &mut fastrand::Rng) -> String {
    let quoted: String = result.chars().take(400).collect();
    let ellipsis = if result.chars().count() > 400 { "..." } else { "" };
    let closings = [
        "That settles the question.",
        "This answers the request.",
        "Nothing else is needed.",
    ];
    let about = words.first().map_or(String::new(), |w| format!(" about {w}"));
    format!(
        "The {name} tool answered{about}: \"{quoted}{ellipsis}\". {}",
        closings[rng.usize(..closings.len())]
    )
}

/// Cuts the text at `max_tokens` words, reporting `max_tokens` as the stop reason when it does.
fn truncate_words(text: &str, max_tokens: Option<u64>) -> (String, &'static str) {
    match max_tokens {
        Some(max) if text.split_whitespace().count() as u64 > max => {
            let kept: Vec<&str> = text.split_whitespace().take(max as usize).collect();
            (kept.join(" "), "max_tokens")
        }
        _ => (text.to_owned(), "end_turn"),
    }
}

fn output_tokens(block: &Value) -> u64 {
    if let Some(text) = block.get("text").and_then(Value::as_str) {
        return text.split_whitespace().count() as u64;
    }
    (block.to_string().len() as u64).div_ceil(4)
}
