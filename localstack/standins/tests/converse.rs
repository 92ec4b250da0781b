//! Bedrock Converse through the real `aws-sdk-bedrockruntime` client against the stand-in.

mod common;

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message, SpecificToolChoice, StopReason,
    SystemContentBlock, Tool, ToolChoice, ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock,
    ToolSpecification, ToolUseBlock,
};
use common::{sdk_config, start_converse, stats, to_document, to_json};
use garden_standins::ConverseConfig;
use serde_json::{Value, json};

const MODEL: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

fn user(text: &str) -> Message {
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(text.to_owned()))
        .build()
        .unwrap()
}

fn tool(name: &str, schema: Value) -> Tool {
    Tool::ToolSpec(
        ToolSpecification::builder()
            .name(name)
            .description(format!("the {name} tool"))
            .input_schema(ToolInputSchema::Json(to_document(&schema)))
            .build()
            .unwrap(),
    )
}

async fn client(url: &str, attempts: u32) -> Client {
    Client::new(&sdk_config(url, attempts).await)
}

fn text_of(message: &Message) -> String {
    message
        .content()
        .iter()
        .filter_map(|b| b.as_text().ok().cloned())
        .collect::<Vec<_>>()
        .join("")
}

#[tokio::test]
async fn text_answers_derive_from_the_prompt_and_model() {
    let standin = start_converse(ConverseConfig::default()).await;
    let client = client(&standin.url, 1).await;

    let ask = |prompt: &'static str, model: &'static str| {
        client
            .converse()
            .model_id(model)
            .system(SystemContentBlock::Text("You write research briefs.".to_owned()))
            .messages(user(prompt))
            .inference_config(
                InferenceConfiguration::builder()
                    .temperature(0.2)
                    .max_tokens(400)
                    .build(),
            )
            .send()
    };
    let first = ask("Summarise the outlook for offshore wind turbines", MODEL)
        .await
        .unwrap();
    let again = ask("Summarise the outlook for offshore wind turbines", MODEL)
        .await
        .unwrap();
    let other = ask("Explain container shipping rates", "amazon.nova-lite-v1:0")
        .await
        .unwrap();

    assert_eq!(first.stop_reason(), &StopReason::EndTurn);
    let text = text_of(first.output().unwrap().as_message().unwrap());
    assert!(text.contains("Claude"), "{text}");
    assert!(text.contains("offshore") && text.contains("wind"), "{text}");
    assert_eq!(text, text_of(again.output().unwrap().as_message().unwrap()));
    let other_text = text_of(other.output().unwrap().as_message().unwrap());
    assert!(
        other_text.contains("Nova") && other_text.contains("shipping"),
        "{other_text}"
    );

    let usage = first.usage().unwrap();
    assert!(usage.input_tokens() > 5 && usage.output_tokens() > 5);
    assert_eq!(usage.total_tokens(), usage.input_tokens() + usage.output_tokens());
    assert!(first.metrics().unwrap().latency_ms() > 0);

    let stats = stats(&standin.url).await;
    assert_eq!(stats["converse"]["calls"], 3);
    assert_eq!(stats["converse"]["per_model"][MODEL], 2);
    let repeated: Vec<&Value> = stats["converse"]["per_request"]
        .as_object()
        .unwrap()
        .values()
        .filter(|c| c["answered"] == 2)
        .collect();
    assert_eq!(repeated.len(), 1, "the same request twice shares one hash: {stats}");
}

#[tokio::test]
async fn forced_tool_returns_an_instance_of_its_schema() {
    let standin = start_converse(ConverseConfig::default()).await;
    let client = client(&standin.url, 1).await;
    let schema = json!({
        "type": "object",
        "required": ["sections", "confidence", "audience"],
        "properties": {
            "sections": { "type": "array", "items": { "type": "string" } },
            "confidence": { "type": "number" },
            "audience": { "enum": ["executives", "engineers"] },
            "pages": { "type": "integer" }
        }
    });
    let config = ToolConfiguration::builder()
        .tools(tool("structured_output", schema))
        .tool_choice(ToolChoice::Tool(
            SpecificToolChoice::builder().name("structured_output").build().unwrap(),
        ))
        .build()
        .unwrap();

    let out = client
        .converse()
        .model_id(MODEL)
        .messages(user("List the sections of a brief on battery recycling regulation"))
        .tool_config(config)
        .send()
        .await
        .unwrap();

    assert_eq!(out.stop_reason(), &StopReason::ToolUse);
    let message = out.output().unwrap().as_message().unwrap();
    let tool_use = message
        .content()
        .iter()
        .find_map(|b| b.as_tool_use().ok())
        .expect("a toolUse block");
    assert_eq!(tool_use.name(), "structured_output");
    assert!(tool_use.tool_use_id().starts_with("tooluse_"));
    let input = to_json(tool_use.input());
    let sections = input["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 3);
    let prompt_words = ["sections", "brief", "battery", "recycling", "regulation"];
    for section in sections {
        let section = section.as_str().unwrap().to_lowercase();
        assert!(prompt_words.iter().any(|w| section.contains(w)), "{section}");
    }
    assert!((0.0..=1.0).contains(&input["confidence"].as_f64().unwrap()));
    assert!(["executives", "engineers"].contains(&input["audience"].as_str().unwrap()));
    assert!(input["pages"].is_u64());
}

#[tokio::test]
async fn tool_loop_calls_the_tool_then_quotes_its_result() {
    let standin = start_converse(ConverseConfig::default()).await;
    let client = client(&standin.url, 1).await;
    let config = ToolConfiguration::builder()
        .tools(tool(
            "web_search",
            json!({ "type": "object", "required": ["query"], "properties": { "query": { "type": "string" } } }),
        ))
        .tools(tool(
            "calculate_npv",
            json!({ "type": "object", "properties": { "discount_rate": { "type": "number" } } }),
        ))
        .build()
        .unwrap();
    let question = user("Find recent news about heat pumps");

    let first = client
        .converse()
        .model_id(MODEL)
        .messages(question.clone())
        .tool_config(config.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(first.stop_reason(), &StopReason::ToolUse);
    let assistant = first.output().unwrap().as_message().unwrap().clone();
    let call: ToolUseBlock = assistant
        .content()
        .iter()
        .find_map(|b| b.as_tool_use().ok())
        .unwrap()
        .clone();
    assert_eq!(call.name(), "web_search", "the first offered tool is called");
    let query = to_json(call.input())["query"].as_str().unwrap().to_lowercase();
    let prompt_words = ["find", "recent", "news", "heat", "pumps"];
    assert!(query.split(' ').all(|w| prompt_words.contains(&w)), "{query}");

    let result = ToolResultBlock::builder()
        .tool_use_id(call.tool_use_id())
        .content(ToolResultContentBlock::Json(to_document(
            &json!({ "results": ["heat pump sales doubled"] }),
        )))
        .build()
        .unwrap();
    let tool_message = Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::ToolResult(result))
        .build()
        .unwrap();
    let second = client
        .converse()
        .model_id(MODEL)
        .messages(question)
        .messages(assistant)
        .messages(tool_message)
        .tool_config(config)
        .send()
        .await
        .unwrap();
    assert_eq!(second.stop_reason(), &StopReason::EndTurn);
    let text = text_of(second.output().unwrap().as_message().unwrap());
    assert!(
        text.contains("web_search") && text.contains("heat pump sales doubled"),
        "{text}"
    );
}

#[tokio::test]
async fn throttling_surfaces_as_throttling_exception() {
    let standin = start_converse(ConverseConfig {
        throttle_rate: 1.0,
        seed: Some(1),
        ..Default::default()
    })
    .await;
    let client = client(&standin.url, 1).await;

    let error = client
        .converse()
        .model_id(MODEL)
        .messages(user("hello there"))
        .send()
        .await
        .unwrap_err();
    let error = error.into_service_error();
    assert!(error.is_throttling_exception(), "{error:?}");
    assert_eq!(
        error.meta().message(),
        Some("Too many requests, please wait before trying again.")
    );

    let stats = stats(&standin.url).await;
    assert_eq!(stats["converse"]["throttled"], 1);
    assert_eq!(stats["converse"]["answered"], 0);
}

#[tokio::test]
async fn throttle_rate_changes_at_run_time_and_the_sdk_retries_throttles() {
    let standin = start_converse(ConverseConfig::default()).await;
    let http = reqwest::Client::new();
    let set = |rate: f64| {
        http.post(format!("{}/_standin/config", standin.url))
            .json(&json!({ "throttle_rate": rate }))
            .send()
    };
    assert_eq!(set(1.0).await.unwrap().status(), 200);
    assert_eq!(set(1.5).await.unwrap().status(), 400);

    // Three attempts in all, every one throttled and each with the same request hash.
    let client = client(&standin.url, 3).await;
    let error = client
        .converse()
        .model_id(MODEL)
        .messages(user("hello again"))
        .send()
        .await
        .unwrap_err();
    assert!(error.into_service_error().is_throttling_exception());
    let stats = stats(&standin.url).await;
    assert_eq!(stats["converse"]["throttled"], 3, "{stats}");
    let per_request = stats["converse"]["per_request"].as_object().unwrap();
    assert_eq!(per_request.len(), 1);

    set(0.0).await.unwrap();
    let reset = http
        .post(format!("{}/_standin/reset", standin.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    client
        .converse()
        .model_id(MODEL)
        .messages(user("hello again"))
        .send()
        .await
        .unwrap();
    assert_eq!(standin.standin.stats().converse.calls, 1);
    assert_eq!(standin.standin.stats().converse.answered, 1);
}

#[tokio::test]
async fn invalid_conversations_are_validation_exceptions() {
    let standin = start_converse(ConverseConfig::default()).await;
    let client = client(&standin.url, 3).await;
    let assistant_first = Message::builder()
        .role(ConversationRole::Assistant)
        .content(ContentBlock::Text("hi".to_owned()))
        .build()
        .unwrap();

    let error = client
        .converse()
        .model_id(MODEL)
        .messages(assistant_first)
        .send()
        .await
        .unwrap_err();
    let error = error.into_service_error();
    assert!(error.is_validation_exception(), "{error:?}");
    assert!(
        error
            .meta()
            .message()
            .unwrap()
            .contains("must start with a user message")
    );

    let forced_unknown = ToolConfiguration::builder()
        .tools(tool("a", json!({ "type": "object" })))
        .tool_choice(ToolChoice::Tool(
            SpecificToolChoice::builder().name("b").build().unwrap(),
        ))
        .build()
        .unwrap();
    let error = client
        .converse()
        .model_id(MODEL)
        .messages(user("x y z"))
        .tool_config(forced_unknown)
        .send()
        .await;
    assert!(error.unwrap_err().into_service_error().is_validation_exception());
    assert_eq!(
        stats(&standin.url).await["converse"]["rejected"],
        2,
        "validation errors are not retried"
    );
}

#[tokio::test]
async fn key_order_does_not_change_the_answer_or_the_request_hash() {
    let standin = start_converse(ConverseConfig::default()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/model/{}/converse", standin.url, MODEL.replace(':', "%3A"));
    let bodies = [
        r#"{"messages":[{"role":"user","content":[{"text":"Rank cloud regions by carbon"}]}],
            "toolConfig":{"tools":[{"toolSpec":{"name":"out","inputSchema":{"json":{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"number"}}}}}}],
            "toolChoice":{"any":{}}}}"#,
        r#"{"toolConfig":{"toolChoice":{"any":{}},"tools":[{"toolSpec":{"inputSchema":{"json":{"properties":{"b":{"type":"number"},"a":{"type":"string"}},"type":"object"}},"name":"out"}}]},
            "messages":[{"content":[{"text":"Rank cloud regions by carbon"}],"role":"user"}]}"#,
    ];
    let mut answers = Vec::new();
    for body in bodies {
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let hash = response.headers()["x-standin-request-hash"]
            .to_str()
            .unwrap()
            .to_owned();
        let answer: Value = response.json().await.unwrap();
        answers.push((
            hash,
            answer["output"]["message"]["content"][0]["toolUse"]["input"].clone(),
        ));
    }
    assert_eq!(answers[0], answers[1]);
    assert!(
        answers[0].1["a"].is_string() && answers[0].1["b"].is_number(),
        "{:?}",
        answers[0]
    );
}

#[tokio::test]
async fn a_seed_throttles_the_same_calls_on_every_run() {
    let mut patterns = Vec::new();
    for _ in 0..2 {
        let standin = start_converse(ConverseConfig {
            throttle_rate: 0.5,
            seed: Some(42),
            ..Default::default()
        })
        .await;
        let client = client(&standin.url, 1).await;
        let mut pattern = Vec::new();
        for n in 0..12 {
            let result = client
                .converse()
                .model_id(MODEL)
                .messages(user(&format!("question {n}")))
                .send()
                .await;
            pattern.push(result.is_err());
        }
        patterns.push(pattern);
    }
    assert_eq!(patterns[0], patterns[1]);
    assert!(
        patterns[0].contains(&true) && patterns[0].contains(&false),
        "{:?}",
        patterns[0]
    );
}

#[tokio::test]
async fn any_calls_each_tool_once_then_the_answer_tool() {
    let standin = start_converse(ConverseConfig::default()).await;
    let client = client(&standin.url, 1).await;
    let answer_schema =
        json!({ "type": "object", "required": ["verdict"], "properties": { "verdict": { "type": "string" } } });
    let config = ToolConfiguration::builder()
        .tools(tool(
            "web_search",
            json!({ "type": "object", "properties": { "query": { "type": "string" } } }),
        ))
        .tools(tool("final_answer", answer_schema))
        .tool_choice(ToolChoice::Any(
            aws_sdk_bedrockruntime::types::AnyToolChoice::builder().build(),
        ))
        .build()
        .unwrap();
    let mut messages = vec![user("Is district heating cheaper than heat pumps")];

    let mut called = Vec::new();
    for _ in 0..2 {
        let out = client
            .converse()
            .model_id(MODEL)
            .set_messages(Some(messages.clone()))
            .tool_config(config.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(out.stop_reason(), &StopReason::ToolUse);
        let reply = out.output().unwrap().as_message().unwrap().clone();
        let call = reply
            .content()
            .iter()
            .find_map(|b| b.as_tool_use().ok())
            .unwrap()
            .clone();
        called.push(call.name().to_owned());
        let result = ToolResultBlock::builder()
            .tool_use_id(call.tool_use_id())
            .content(ToolResultContentBlock::Text("ok".to_owned()))
            .build()
            .unwrap();
        messages.push(reply);
        messages.push(
            Message::builder()
                .role(ConversationRole::User)
                .content(ContentBlock::ToolResult(result))
                .build()
                .unwrap(),
        );
    }
    assert_eq!(called, ["web_search", "final_answer"]);
}
