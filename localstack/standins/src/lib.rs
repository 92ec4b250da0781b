//! Local stand-ins for the services LocalStack does not emulate, so a workflow runs end to end on a
//! laptop or a CI machine with the real AWS SDK clients and the real MCP client:
//!
//! - [`converse`]: Bedrock Runtime `Converse` and the AgentCore Runtime data plane
//!   (`InvokeAgentRuntime`), spoken on the wire exactly as the SDKs expect, with deterministic answers
//!   derived from each request, injectable throttling and call statistics under `/_standin/*`;
//! - [`tools`]: an MCP server over Streamable HTTP with the finance, research and support tools the
//!   example workflows call through their gateways.
//!
//! The `garden-standins` binary serves either or both; tests start them in-process on ephemeral ports.

pub mod converse;
pub mod error;
pub mod tools;

mod serve;

pub use converse::{ConverseConfig, ConverseStandin};
pub use error::StandinError;
pub use serve::{bind_loopback, shutdown_signal};
pub use tools::ToolsStandin;
