//! The MCP tool server through the real `rmcp` Streamable HTTP client.

mod common;

use garden_standins::{ToolsStandin, bind_loopback};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

async fn connect() -> RunningService<RoleClient, ClientConfig> {
    let listener = bind_loopback(0).await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(ToolsStandin::serve(listener, std::future::pending()));
    let transport = StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(url));
    ClientConfig::default()
        .serve(transport)
        .await
        .expect("initialize against the tool server")
}

async fn call(client: &RunningService<RoleClient, ClientConfig>, name: &str, arguments: Value) -> CallToolResult {
    let arguments = arguments.as_object().cloned().unwrap();
    client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(arguments))
        .await
        .unwrap()
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("")
}

#[tokio::test]
async fn lists_every_tool_with_schemas_and_negotiates_an_initialize_version() {
    let client = connect().await;
    let info = client.peer_info().expect("server info after initialize");
    assert_eq!(info.protocol_version.as_str(), "2025-11-25");

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "calculate_irr",
            "calculate_npv",
            "create_ticket",
            "list_items",
            "loan_payment",
            "lookup_customer",
            "pause",
            "web_search"
        ]
    );
    let npv = tools.iter().find(|t| t.name == "calculate_npv").unwrap();
    let schema = Value::Object((*npv.input_schema).clone());
    assert_eq!(schema["required"], json!(["cash_flows", "discount_rate"]));
    assert_eq!(schema["properties"]["cash_flows"]["type"], "array");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn tools_answer_with_structured_content_and_text() {
    let client = connect().await;

    let npv = call(
        &client,
        "calculate_npv",
        json!({ "cash_flows": [-100, 60, 60], "discount_rate": 0.1 }),
    )
    .await;
    assert_ne!(npv.is_error, Some(true));
    let value = npv.structured_content.clone().unwrap();
    assert!((value["npv"].as_f64().unwrap() - 4.1322).abs() < 1e-3, "{value}");
    assert_eq!(
        serde_json::from_str::<Value>(&text(&npv)).unwrap(),
        value,
        "the text carries the same JSON"
    );

    let irr = call(&client, "calculate_irr", json!({ "cash_flows": [-100, 60, 60] })).await;
    assert!((irr.structured_content.unwrap()["irr"].as_f64().unwrap() - 0.1307).abs() < 1e-4);

    let loan = call(
        &client,
        "loan_payment",
        json!({ "principal": 200000, "annual_rate": 0.06, "years": 30 }),
    )
    .await;
    assert_eq!(loan.structured_content.unwrap()["monthly_payment"], 1199.1);

    let search = call(
        &client,
        "web_search",
        json!({ "query": "heat pump subsidies", "max_results": 4 }),
    )
    .await;
    let results = search.structured_content.unwrap()["results"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results.len(), 4);
    assert!(
        results
            .iter()
            .all(|r| r["url"].as_str().unwrap().starts_with("https://example.org/"))
    );

    let customer = call(&client, "lookup_customer", json!({ "email": "ada@example.com" })).await;
    let customer = customer.structured_content.unwrap();
    let again = call(&client, "lookup_customer", json!({ "email": "ada@example.com" })).await;
    assert_eq!(again.structured_content.unwrap(), customer, "deterministic by email");

    let ticket = json!({ "customer_id": customer["customer_id"], "category": "billing", "priority": "high", "summary": "charged twice" });
    let first = call(&client, "create_ticket", ticket.clone())
        .await
        .structured_content
        .unwrap();
    let second = call(&client, "create_ticket", ticket).await.structured_content.unwrap();
    assert!(first["ticket_id"].as_str().unwrap().starts_with("TCK-"));
    assert_eq!(first, second);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn refused_arguments_and_unknown_tools_are_tool_errors() {
    let client = connect().await;

    let bad_rate = call(
        &client,
        "calculate_npv",
        json!({ "cash_flows": [-100, 60], "discount_rate": -1.5 }),
    )
    .await;
    assert_eq!(bad_rate.is_error, Some(true));
    assert!(
        text(&bad_rate).contains("discount_rate must be greater than -1"),
        "{}",
        text(&bad_rate)
    );

    let empty = call(
        &client,
        "calculate_npv",
        json!({ "cash_flows": [], "discount_rate": 0.1 }),
    )
    .await;
    assert_eq!(empty.is_error, Some(true));
    assert!(text(&empty).contains("cash_flows is empty"));

    let no_sign_change = call(&client, "calculate_irr", json!({ "cash_flows": [10, 20] })).await;
    assert_eq!(no_sign_change.is_error, Some(true));

    let wrong_type = call(
        &client,
        "calculate_npv",
        json!({ "cash_flows": "lots", "discount_rate": 0.1 }),
    )
    .await;
    assert_eq!(wrong_type.is_error, Some(true));
    assert!(
        text(&wrong_type).contains("cash_flows") || text(&wrong_type).contains("sequence"),
        "{}",
        text(&wrong_type)
    );

    let bad_priority = call(
        &client,
        "create_ticket",
        json!({ "customer_id": "CUST-1", "category": "x", "priority": "whenever", "summary": "y" }),
    )
    .await;
    assert_eq!(bad_priority.is_error, Some(true));

    let unknown = call(&client, "delete_everything", json!({})).await;
    assert_eq!(unknown.is_error, Some(true));
    assert!(text(&unknown).contains("delete_everything"));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn pause_counts_the_calls_of_its_lane_and_list_items_counts_up() {
    let client = connect().await;
    let pause = |lane: &'static str, tag: u64| {
        let client = &client;
        async move { call(client, "pause", json!({ "ms": 300, "lane": lane, "tag": tag })).await }
    };
    // Two calls of lane `a` overlap, one of lane `b` runs beside them.
    let (first, second, other) = tokio::join!(
        pause("a", 1),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            pause("a", 2).await
        },
        pause("b", 3)
    );
    let first = first.structured_content.unwrap();
    let second = second.structured_content.unwrap();
    assert_eq!(first["in_flight"], 1, "{first}");
    assert_eq!(second["in_flight"], 2, "{second}");
    assert_eq!(second["tag"], 2);
    assert_eq!(
        other.structured_content.unwrap()["in_flight"],
        1,
        "lanes are counted apart"
    );
    let after = call(&client, "pause", json!({ "ms": 0, "lane": "a" })).await;
    assert_eq!(
        after.structured_content.unwrap()["in_flight"],
        1,
        "finished calls leave the lane"
    );

    let too_long = call(&client, "pause", json!({ "ms": 600_001 })).await;
    assert_eq!(too_long.is_error, Some(true));

    let items = call(&client, "list_items", json!({ "count": 4 })).await;
    assert_eq!(items.structured_content.unwrap()["items"], json!([0, 1, 2, 3]));
    let too_many = call(&client, "list_items", json!({ "count": 100_001 })).await;
    assert_eq!(too_many.is_error, Some(true));
    assert!(text(&too_many).contains("at most 100000"), "{}", text(&too_many));
    client.cancel().await.unwrap();
}
