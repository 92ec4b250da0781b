//! The MCP tool server that stands in for the AgentCore Gateways: Streamable HTTP at `/mcp`, built
//! with `rmcp`, with the finance, research and support tools of the example workflows.
//!
//! Every result carries structured JSON content and the same JSON as text. Refused inputs come back
//! as tool errors (`isError: true` with a text saying what to fix), as the MCP specification asks
//! for input validation errors, rather than as JSON-RPC errors: this includes arguments that do not
//! match a tool's input schema and unknown tool names.
//!
//! The server negotiates protocol versions up to `2025-11-25`, the newest with an `initialize`
//! handshake, so today's clients keep the session-based lifecycle.

pub mod catalog;
pub mod finance;

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode, Implementation, ProtocolVersion,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::error::StandinError;
use catalog::{Customer, SearchResult};

/// The newest protocol version served.
pub const MAX_PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// The MCP server with every tool.
#[derive(Debug, Clone)]
pub struct ToolsStandin {
    tool_router: ToolRouter<Self>,
    lanes: Arc<Lanes>,
}

/// Calls of `pause` in flight, per lane.
#[derive(Debug, Default)]
struct Lanes(std::sync::Mutex<std::collections::HashMap<String, u64>>);

impl Lanes {
    fn enter(&self, lane: &str) -> u64 {
        let mut lanes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = lanes.entry(lane.to_owned()).or_default();
        *n += 1;
        *n
    }

    fn leave(&self, lane: &str) {
        let mut lanes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = lanes.get_mut(lane) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Default for ToolsStandin {
    fn default() -> Self {
        Self::new()
    }
}

/// `calculate_npv` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NpvArgs {
    /// Cash flows per period, the first at t = 0 (usually the negative investment).
    pub cash_flows: Vec<f64>,
    /// Discount rate per period as a fraction, for example 0.1 for 10%; greater than -1.
    pub discount_rate: f64,
}

/// `calculate_npv` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Npv {
    pub npv: f64,
}

/// `calculate_irr` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct IrrArgs {
    /// Cash flows per period, the first at t = 0; at least one negative and one positive.
    pub cash_flows: Vec<f64>,
}

/// `calculate_irr` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Irr {
    pub irr: f64,
}

/// `loan_payment` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct LoanArgs {
    /// Amount borrowed.
    pub principal: f64,
    /// Yearly interest rate as a fraction, for example 0.05 for 5%.
    pub annual_rate: f64,
    /// Length of the loan in years, repaid monthly.
    pub years: f64,
}

/// `loan_payment` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LoanPayment {
    pub monthly_payment: f64,
    pub total_interest: f64,
}

/// `web_search` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchArgs {
    /// What to search for.
    pub query: String,
    /// How many results to return, 1 to 10 (3 when not given).
    pub max_results: Option<u32>,
}

/// `web_search` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchResults {
    pub results: Vec<SearchResult>,
}

/// `lookup_customer` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CustomerArgs {
    /// The customer's email address.
    pub email: String,
}

/// Ticket priorities.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

/// `create_ticket` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TicketArgs {
    /// The id returned by lookup_customer.
    pub customer_id: String,
    /// What the ticket is about, for example billing or outage.
    pub category: String,
    pub priority: Priority,
    /// One line that describes the problem.
    pub summary: String,
}

/// `pause` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PauseArgs {
    /// How long to take, in milliseconds (at most 600000).
    pub ms: u64,
    /// Calls with the same lane are counted together in `in_flight`.
    #[serde(default)]
    pub lane: String,
    /// Returned as given, to tell results apart.
    #[serde(default)]
    pub tag: serde_json::Value,
}

/// `pause` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Paused {
    pub paused_ms: u64,
    /// Calls of this lane running when this one started, itself included.
    pub in_flight: u64,
    pub tag: serde_json::Value,
}

/// `list_items` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListItemsArgs {
    /// How many items, at most 100000.
    pub count: u64,
}

/// `list_items` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Items {
    pub items: Vec<u64>,
}

/// `create_ticket` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Ticket {
    pub ticket_id: String,
    pub status: String,
}

#[tool_router]
impl ToolsStandin {
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
            lanes: Arc::default(),
        }
    }

    #[tool(
        description = "Take the given time, then say how many calls of the same lane were running; for timing tests"
    )]
    async fn pause(&self, Parameters(args): Parameters<PauseArgs>) -> Result<Json<Paused>, String> {
        if args.ms > 600_000 {
            return Err(format!("ms must be at most 600000, got {}", args.ms));
        }
        let in_flight = self.lanes.enter(&args.lane);
        tokio::time::sleep(std::time::Duration::from_millis(args.ms)).await;
        self.lanes.leave(&args.lane);
        Ok(Json(Paused {
            paused_ms: args.ms,
            in_flight,
            tag: args.tag,
        }))
    }

    #[tool(description = "The numbers 0 to count - 1, as items to fan out over; for load tests")]
    fn list_items(&self, Parameters(args): Parameters<ListItemsArgs>) -> Result<Json<Items>, String> {
        if args.count > 100_000 {
            return Err(format!("count must be at most 100000, got {}", args.count));
        }
        Ok(Json(Items {
            items: (0..args.count).collect(),
        }))
    }

    #[tool(description = "Net present value of cash flows (the first at t = 0) at a discount rate per period")]
    fn calculate_npv(&self, Parameters(args): Parameters<NpvArgs>) -> Result<Json<Npv>, String> {
        let npv = finance::npv(&args.cash_flows, args.discount_rate).map_err(|e| e.to_string())?;
        Ok(Json(Npv { npv }))
    }

    #[tool(description = "Internal rate of return of cash flows (the first at t = 0), as a fraction per period")]
    fn calculate_irr(&self, Parameters(args): Parameters<IrrArgs>) -> Result<Json<Irr>, String> {
        let irr = finance::irr(&args.cash_flows).map_err(|e| e.to_string())?;
        Ok(Json(Irr { irr }))
    }

    #[tool(description = "Monthly payment and total interest of a fixed-rate loan repaid monthly")]
    fn loan_payment(&self, Parameters(args): Parameters<LoanArgs>) -> Result<Json<LoanPayment>, String> {
        let (monthly_payment, total_interest) =
            finance::loan_payment(args.principal, args.annual_rate, args.years).map_err(|e| e.to_string())?;
        Ok(Json(LoanPayment {
            monthly_payment,
            total_interest,
        }))
    }

    #[tool(description = "Search the web; returns titles, urls and snippets")]
    fn web_search(&self, Parameters(args): Parameters<SearchArgs>) -> Result<Json<SearchResults>, String> {
        if args.query.trim().is_empty() {
            return Err("query is empty: say what to search for".to_owned());
        }
        let count = args.max_results.unwrap_or(3);
        if !(1..=10).contains(&count) {
            return Err(format!("max_results must be between 1 and 10, got {count}"));
        }
        Ok(Json(SearchResults {
            results: catalog::search(&args.query, count as usize),
        }))
    }

    #[tool(description = "Find a support customer by email; returns id, tier and open ticket count")]
    fn lookup_customer(&self, Parameters(args): Parameters<CustomerArgs>) -> Result<Json<Customer>, String> {
        let email = args.email.trim();
        let valid = email
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'));
        if !valid {
            return Err(format!(
                "email {email:?} is not an email address: give one like name@example.com"
            ));
        }
        Ok(Json(catalog::customer(email)))
    }

    #[tool(description = "Open a support ticket for a customer; the same fields give the same ticket")]
    fn create_ticket(&self, Parameters(args): Parameters<TicketArgs>) -> Result<Json<Ticket>, String> {
        if !args.customer_id.starts_with("CUST-") {
            return Err(format!(
                "customer_id {:?} is unknown: look the customer up with lookup_customer first",
                args.customer_id
            ));
        }
        if args.summary.trim().is_empty() || args.category.trim().is_empty() {
            return Err("category and summary must not be empty".to_owned());
        }
        let priority = format!("{:?}", args.priority).to_lowercase();
        let ticket_id = catalog::ticket_id(&args.customer_id, &args.category, &priority, &args.summary);
        Ok(Json(Ticket {
            ticket_id,
            status: "open".to_owned(),
        }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ToolsStandin {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_protocol_version(MAX_PROTOCOL_VERSION)
            .with_server_info(Implementation::new("garden-standins-tools", env!("CARGO_PKG_VERSION")))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&MAX_PROTOCOL_VERSION))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let context = ToolCallContext::new(self, request, context);
        match self.tool_router.call(context).await {
            Err(error) if error.code == ErrorCode::INVALID_PARAMS => {
                let text = if self.tool_router.get(&name).is_none() {
                    format!("Tool {name} not found")
                } else {
                    format!("invalid arguments for tool {name}: {}", error.message)
                };
                tracing::info!(tool = %name, %text, "tool call refused");
                Ok(CallToolResult::error(vec![ContentBlock::text(text)]).into())
            }
            other => {
                tracing::info!(tool = %name, ok = other.is_ok(), "tool called");
                other
            }
        }
    }
}

impl ToolsStandin {
    /// The Streamable HTTP service, to be nested at `/mcp`; it stops its sessions when `config`'s
    /// cancellation token is cancelled.
    pub fn service(config: StreamableHttpServerConfig) -> StreamableHttpService<Self, LocalSessionManager> {
        // Sessions share the lanes, so `pause` counts calls across clients.
        let lanes = Arc::<Lanes>::default();
        let session = move || {
            Ok(Self {
                tool_router: Self::tool_router(),
                lanes: lanes.clone(),
            })
        };
        StreamableHttpService::new(session, Arc::new(LocalSessionManager::default()), config)
    }

    /// The axum router with the MCP endpoint at `/mcp`.
    pub fn router(config: StreamableHttpServerConfig) -> axum::Router {
        axum::Router::new().nest_service("/mcp", Self::service(config))
    }

    /// Serves on `listener` until `shutdown` resolves, then closes the MCP sessions.
    pub async fn serve(
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StandinError> {
        let config = StreamableHttpServerConfig::default();
        let sessions = config.cancellation_token.clone();
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(%addr, path = "/mcp", "mcp tool server listening");
        axum::serve(listener, Self::router(config))
            .with_graceful_shutdown(async move {
                shutdown.await;
                sessions.cancel();
            })
            .await
            .map_err(|source| StandinError::Serve {
                server: "tools",
                source,
            })
    }
}
