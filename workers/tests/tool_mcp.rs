//! The tool provider against a real MCP server: `@modelcontextprotocol/server-everything`
//! over Streamable HTTP on 127.0.0.1:4640 (install it with
//! `npm ci --prefix workers/tests/mcp`).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use garden_workers::providers::tool::Gateways;
use garden_workflows::wire::{Gateway, GatewayAuth, errors};
use serde_json::{Value, json};

const PORT: u16 = 4640;

/// The server process, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server() -> Server {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp");
    let entry = dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        entry.exists(),
        "the MCP test server is not installed: run `npm ci --prefix workers/tests/mcp` (missing {})",
        entry.display()
    );
    let child = Command::new("node")
        .arg("--require")
        .arg(dir.join("loopback.cjs"))
        .arg(&entry)
        .arg("streamableHttp")
        .env("PORT", PORT.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts: install Node.js 20 or newer");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", PORT)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the MCP test server did not listen on {PORT} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn gateway() -> Gateway {
    Gateway {
        name: "everything".into(),
        url: format!("http://127.0.0.1:{PORT}/mcp"),
        auth: GatewayAuth::None,
    }
}

#[tokio::test]
async fn tool_calls_against_server_everything() {
    let _server = start_server();
    let gateways = Gateways::new(reqwest::Client::new());
    let gateway = gateway();

    let tools = gateways.list_tools(&gateway).await.expect("tools/list answers");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"echo") && names.contains(&"get-sum"), "{names:?}");

    let echoed = gateways
        .call(&gateway, "echo", &json!({"message": "hello garden"}))
        .await
        .unwrap();
    assert_eq!(echoed, Value::String("Echo: hello garden".into()));

    let sum = gateways
        .call(&gateway, "get-sum", &json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    let text = match &sum {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    assert!(text.contains("42"), "{sum}");

    let unknown = gateways.call(&gateway, "no-such-tool", &json!({})).await.unwrap_err();
    assert_eq!(unknown.name, errors::TOOL_ERROR);
    assert!(!unknown.transient);
    assert!(unknown.message.contains("no-such-tool"), "{}", unknown.message);

    let invalid = gateways
        .call(&gateway, "get-sum", &json!({"a": "two"}))
        .await
        .unwrap_err();
    assert_eq!(invalid.name, errors::TOOL_ERROR);
    assert!(!invalid.transient);

    let not_object = gateways.call(&gateway, "echo", &json!([1, 2])).await.unwrap_err();
    assert_eq!(not_object.name, errors::PROVIDER_REJECTED);

    // The session is reused: one more call still works.
    let again = gateways
        .call(&gateway, "echo", &json!({"message": "again"}))
        .await
        .unwrap();
    assert_eq!(again, Value::String("Echo: again".into()));
}

#[tokio::test]
async fn an_unreachable_gateway_is_transient() {
    let gateways = Gateways::new(reqwest::Client::new());
    let down = Gateway {
        name: "down".into(),
        url: "http://127.0.0.1:9/mcp".into(),
        auth: GatewayAuth::None,
    };
    let err = gateways
        .call(&down, "echo", &json!({"message": "x"}))
        .await
        .unwrap_err();
    assert_eq!(err.name, errors::PROVIDER_UNAVAILABLE);
    assert!(err.transient);
}

#[tokio::test]
async fn sigv4_gateways_are_refused_clearly() {
    let gateways = Gateways::new(reqwest::Client::new());
    let signed = Gateway {
        name: "signed".into(),
        url: "http://127.0.0.1:9/mcp".into(),
        auth: GatewayAuth::Sigv4,
    };
    let err = gateways.call(&signed, "echo", &json!({})).await.unwrap_err();
    assert_eq!(err.name, errors::PROVIDER_REJECTED);
    assert!(err.message.contains("sigv4"), "{}", err.message);
}
