//! Gateway tools: one MCP `tools/call` over Streamable HTTP with `rmcp`.
//!
//! One MCP session is kept per gateway URL and reused by every step; a
//! session whose transport broke is dropped and opened again on the next
//! attempt. `tools/list` is asked once per session (model steps offer those
//! tools to the model). OAuth client-credential tokens are cached until
//! shortly before they expire; SigV4 gateways get every request signed with
//! the worker's own AWS credentials ([`super::sigv4`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use garden_workflows::wire::{Gateway, GatewayAuth, errors};
use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::{RoleClient, RunningService, ServiceError, ServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};

use super::sigv4::SigV4Http;
use crate::error::StepError;

/// The URL the worker uses for a gateway: `GARDEN_GATEWAY_URL_<NAME>` when set
/// (name upper-cased, `-` as `_`), else the gateway's own URL.
pub fn gateway_url(gateway: &Gateway) -> String {
    let var = format!("GARDEN_GATEWAY_URL_{}", env_name(&gateway.name));
    std::env::var(var)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| gateway.url.clone())
}

pub(crate) fn env_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

struct Session {
    client: RunningService<RoleClient, ()>,
    tools: OnceCell<Arc<Vec<Tool>>>,
}

/// What SigV4 gateway requests are signed with.
#[derive(Debug, Clone)]
pub struct Signing {
    pub credentials: aws_credential_types::provider::SharedCredentialsProvider,
    pub region: String,
}

/// Open MCP sessions and OAuth tokens, shared by all steps of a worker.
pub struct Gateways {
    http: reqwest::Client,
    signing: Option<Signing>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl Gateways {
    pub fn new(http: reqwest::Client) -> Self {
        Gateways {
            http,
            signing: None,
            sessions: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Signs requests to SigV4 gateways with these credentials.
    pub fn with_signing(mut self, signing: Option<Signing>) -> Self {
        self.signing = signing;
        self
    }

    /// Calls one tool. `isError` results are [`errors::TOOL_ERROR`] with the
    /// tool's text; a gateway that cannot be reached is transient.
    pub async fn call(&self, gateway: &Gateway, name: &str, arguments: &Value) -> Result<Value, StepError> {
        let result = self.call_raw(gateway, name, arguments).await?;
        if result.is_error == Some(true) {
            return Err(StepError::terminal(
                errors::TOOL_ERROR,
                format!("tool `{name}` failed: {}", result_text(&result)),
            ));
        }
        Ok(result_value(&result))
    }

    /// Calls one tool and returns its result as is (`isError` included).
    pub async fn call_raw(
        &self,
        gateway: &Gateway,
        name: &str,
        arguments: &Value,
    ) -> Result<CallToolResult, StepError> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        match arguments {
            Value::Object(map) => params = params.with_arguments(map.clone()),
            Value::Null => {}
            other => {
                return Err(StepError::rejected(format!(
                    "arguments of tool `{name}` must be an object, not {other}: fix the step's `arguments`"
                )));
            }
        }
        let session = self.session(gateway).await?;
        match session.client.call_tool(params).await {
            Ok(result) => Ok(result),
            Err(err) => Err(self.service_error(gateway, name, err).await),
        }
    }

    /// The gateway's tools, listed once per session.
    pub async fn list_tools(&self, gateway: &Gateway) -> Result<Arc<Vec<Tool>>, StepError> {
        let session = self.session(gateway).await?;
        let listed = session
            .tools
            .get_or_try_init(|| async { session.client.list_all_tools().await.map(Arc::new) })
            .await;
        match listed {
            Ok(tools) => Ok(tools.clone()),
            Err(err) => Err(self.service_error(gateway, "tools/list", err).await),
        }
    }

    async fn service_error(&self, gateway: &Gateway, what: &str, err: ServiceError) -> StepError {
        match err {
            ServiceError::McpError(data) => StepError::terminal(
                errors::TOOL_ERROR,
                format!("gateway `{}` refused `{what}`: {}", gateway.name, data.message),
            ),
            other => {
                // The session may be gone (server restarted, connection cut):
                // the next attempt opens a new one.
                self.sessions.lock().await.remove(&gateway_url(gateway));
                StepError::unavailable(format!("gateway `{}` failed during `{what}`: {other}", gateway.name))
            }
        }
    }

    async fn session(&self, gateway: &Gateway) -> Result<Arc<Session>, StepError> {
        let url = gateway_url(gateway);
        let mut sessions = self.sessions.lock().await;
        if let Some(session) = sessions.get(&url)
            && !session.client.is_closed()
        {
            return Ok(session.clone());
        }
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.clone());
        if let Some(token) = self.auth_token(gateway).await? {
            config = config.auth_header(token);
        }
        let opened = match &gateway.auth {
            GatewayAuth::Sigv4 => {
                let signing = self.signing.clone().ok_or_else(|| {
                    StepError::rejected(format!(
                        "gateway `{}` uses sigv4 but the worker has no AWS credentials or region: configure them",
                        gateway.name
                    ))
                })?;
                let inner = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap_or_default();
                let signer = SigV4Http::new(inner, signing.credentials, &signing.region);
                ().serve(StreamableHttpClientTransport::with_client(signer, config))
                    .await
            }
            _ => ().serve(StreamableHttpClientTransport::from_config(config)).await,
        };
        let client = opened.map_err(|e| {
            StepError::unavailable(format!(
                "cannot open an MCP session with gateway `{}` at {url}: {e}",
                gateway.name
            ))
        })?;
        let session = Arc::new(Session {
            client,
            tools: OnceCell::new(),
        });
        sessions.insert(url, session.clone());
        Ok(session)
    }

    /// The bearer token for a gateway, if its auth needs one.
    async fn auth_token(&self, gateway: &Gateway) -> Result<Option<String>, StepError> {
        match &gateway.auth {
            GatewayAuth::None => Ok(None),
            GatewayAuth::Sigv4 => Ok(None),
            GatewayAuth::Oauth {
                token_url,
                client_id,
                client_secret_env,
                scope,
            } => {
                let key = format!("{token_url} {client_id} {}", scope.as_deref().unwrap_or(""));
                if let Some((token, until)) = self.tokens.lock().await.get(&key)
                    && Instant::now() < *until
                {
                    return Ok(Some(token.clone()));
                }
                let secret = std::env::var(client_secret_env).map_err(|_| {
                    StepError::rejected(format!(
                        "gateway `{}`: set {client_secret_env} to the OAuth client secret",
                        gateway.name
                    ))
                })?;
                let (token, lifetime) = self
                    .fetch_token(token_url, client_id, &secret, scope.as_deref())
                    .await?;
                // Renew a minute early so a token never expires mid-call.
                let until = Instant::now() + lifetime.saturating_sub(Duration::from_secs(60));
                self.tokens.lock().await.insert(key, (token.clone(), until));
                Ok(Some(token))
            }
        }
    }

    async fn fetch_token(
        &self,
        token_url: &str,
        client_id: &str,
        secret: &str,
        scope: Option<&str>,
    ) -> Result<(String, Duration), StepError> {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response = self
            .http
            .post(token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| StepError::unavailable(format!("token endpoint {token_url} unreachable: {e}")))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(StepError::unavailable(format!("token endpoint answered {status}")));
        }
        let token = answer.get("access_token").and_then(Value::as_str);
        match (status.is_success(), token) {
            (true, Some(token)) => {
                let lifetime = answer.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
                Ok((token.to_owned(), Duration::from_secs(lifetime)))
            }
            _ => Err(StepError::rejected(format!(
                "token endpoint {token_url} refused the client credentials ({status}): {answer}"
            ))),
        }
    }
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text of a tool result's text blocks, joined by newlines.
pub fn result_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A tool result as a step output: `structuredContent` when present, else the
/// text parsed as JSON, else the text itself.
pub fn result_value(result: &CallToolResult) -> Value {
    if let Some(structured) = &result.structured_content {
        return structured.clone();
    }
    let text = result_text(result);
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_a_gateway_url() {
        let gateway = Gateway {
            name: "unit-test-gw".into(),
            url: "https://example.invalid/mcp".into(),
            auth: GatewayAuth::None,
        };
        assert_eq!(env_name(&gateway.name), "UNIT_TEST_GW");
        assert_eq!(gateway_url(&gateway), "https://example.invalid/mcp");
    }

    /// A token endpoint that answers every request with one token and keeps
    /// the request bodies it saw.
    fn token_endpoint() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/oauth2/token", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = vec![0u8; 8192];
                let n = stream.read(&mut buf).unwrap_or(0);
                requests
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let body = r#"{"access_token":"token-abc","token_type":"Bearer","expires_in":3600}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn oauth_tokens_are_fetched_once_and_cached() {
        let (token_url, seen) = token_endpoint();
        let gateways = Gateways::new(reqwest::Client::new());
        let gateway = Gateway {
            name: "finance".into(),
            url: "http://127.0.0.1:9/mcp".into(),
            auth: GatewayAuth::Oauth {
                token_url,
                client_id: "garden-client".into(),
                // Any variable that is always set stands in for the secret.
                client_secret_env: "PATH".into(),
                scope: Some("tools/invoke".into()),
            },
        };
        assert_eq!(
            gateways.auth_token(&gateway).await.unwrap().as_deref(),
            Some("token-abc")
        );
        assert_eq!(
            gateways.auth_token(&gateway).await.unwrap().as_deref(),
            Some("token-abc")
        );
        let requests = seen.lock().unwrap();
        assert_eq!(requests.len(), 1, "the second call uses the cached token");
        assert!(requests[0].contains("grant_type=client_credentials"), "{}", requests[0]);
        assert!(requests[0].contains("client_id=garden-client"));
        assert!(requests[0].contains("scope=tools%2Finvoke"));
    }

    #[tokio::test]
    async fn a_missing_client_secret_is_named() {
        let gateways = Gateways::new(reqwest::Client::new());
        let gateway = Gateway {
            name: "finance".into(),
            url: "http://127.0.0.1:9/mcp".into(),
            auth: GatewayAuth::Oauth {
                token_url: "http://127.0.0.1:9/token".into(),
                client_id: "c".into(),
                client_secret_env: "GARDEN_TEST_SECRET_THAT_IS_NEVER_SET".into(),
                scope: None,
            },
        };
        let err = gateways.auth_token(&gateway).await.unwrap_err();
        assert_eq!(err.name, errors::PROVIDER_REJECTED);
        assert!(err.message.contains("GARDEN_TEST_SECRET_THAT_IS_NEVER_SET"));
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode("a b&c=d"), "a%20b%26c%3Dd");
    }
}
