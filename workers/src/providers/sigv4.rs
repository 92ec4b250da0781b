//! MCP over Streamable HTTP, signed with AWS Signature Version 4: how a worker
//! calls an AgentCore Gateway whose inbound authorization is IAM.
//!
//! [`SigV4Http`] wraps the `reqwest` client that `rmcp` already speaks through
//! and adds the SigV4 headers (`authorization`, `x-amz-date`,
//! `x-amz-content-sha256`, `x-amz-security-token`) to each request, signed
//! over the method, the URL, the host and the exact body bytes. Everything
//! else (sessions, SSE, limits) stays `rmcp`'s own. The credentials are the
//! worker's, from the standard AWS configuration.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use sse_stream::{Error as SseError, Sse};

/// The signing name of AgentCore Gateway endpoints.
pub const SERVICE: &str = "bedrock-agentcore";

type Error = StreamableHttpError<reqwest::Error>;

/// A `reqwest` client that signs every MCP request with SigV4.
#[derive(Clone)]
pub struct SigV4Http {
    inner: reqwest::Client,
    credentials: SharedCredentialsProvider,
    region: Arc<str>,
}

impl SigV4Http {
    pub fn new(inner: reqwest::Client, credentials: SharedCredentialsProvider, region: &str) -> Self {
        SigV4Http {
            inner,
            credentials,
            region: region.into(),
        }
    }

    /// The SigV4 headers for one request, merged into the caller's headers.
    async fn signed(
        &self,
        method: &str,
        uri: &str,
        body: &[u8],
        mut headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<HashMap<HeaderName, HeaderValue>, Error> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StreamableHttpError::UnexpectedServerResponse(
                format!("cannot sign the gateway request: {what}: {e}").into(),
            )
        };
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| fail("no AWS credentials", &e))?;
        let identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::Headers;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| fail("signing parameters", &e))?
            .into();
        let request = SignableRequest::new(method, uri, std::iter::empty(), SignableBody::Bytes(body))
            .map_err(|e| fail("request", &e))?;
        let (instructions, _) = sign(request, &params).map_err(|e| fail("signature", &e))?.into_parts();
        for (name, value) in instructions.headers() {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| fail("header name", &e))?;
            let value = HeaderValue::from_str(value).map_err(|e| fail("header value", &e))?;
            headers.insert(name, value);
        }
        Ok(headers)
    }
}

impl StreamableHttpClient for SigV4Http {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, Error> {
        // rmcp sends `serde_json::to_vec(&message)`: sign those very bytes.
        let body = serde_json::to_vec(&message)?;
        let headers = self.signed("POST", &uri, &body, custom_headers).await?;
        self.inner
            .post_message(uri, message, session_id, auth_header, headers)
            .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, Error> {
        let body = serde_json::to_vec(&message)?;
        let headers = self.signed("POST", &uri, &body, custom_headers).await?;
        self.inner
            .post_message_with_response_limits(uri, message, session_id, auth_header, headers, limits)
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), Error> {
        let headers = self.signed("DELETE", &uri, b"", custom_headers).await?;
        self.inner.delete_session(uri, session_id, auth_header, headers).await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, Error> {
        let headers = self.signed("GET", &uri, b"", custom_headers).await?;
        self.inner
            .get_stream(uri, session_id, last_event_id, auth_header, headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, Error> {
        let headers = self.signed("GET", &uri, b"", custom_headers).await?;
        self.inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                headers,
                max_sse_event_size,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use aws_credential_types::Credentials;

    use super::*;

    #[tokio::test]
    async fn requests_carry_a_signature_over_their_body() {
        let credentials = SharedCredentialsProvider::new(Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"));
        let client = SigV4Http::new(reqwest::Client::new(), credentials, "us-east-1");
        let uri = "https://finance.gateway.bedrock-agentcore.us-east-1.amazonaws.com/mcp";
        let headers = client.signed("POST", uri, b"{}", HashMap::new()).await.unwrap();
        let authorization = headers[&http::header::AUTHORIZATION].to_str().unwrap();
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{authorization}"
        );
        assert!(
            authorization.contains("/us-east-1/bedrock-agentcore/aws4_request"),
            "{authorization}"
        );
        assert!(
            authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date")
                || authorization.contains("SignedHeaders=host;x-amz-date"),
            "{authorization}"
        );
        assert!(headers.contains_key(&HeaderName::from_static("x-amz-date")));

        let other = client.signed("POST", uri, b"{\"a\":1}", HashMap::new()).await.unwrap();
        assert_ne!(
            other[&http::header::AUTHORIZATION],
            headers[&http::header::AUTHORIZATION],
            "another body, another signature"
        );
    }
}
