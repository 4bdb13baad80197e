//! The notes MCP server of the example: three tools on rmcp's streamable
//! HTTP transport, protected by mcp-auth's SDK layer with per-tool scopes.
//!
//! - `whoami` (`tools:read`): what the caller's credential says.
//! - `list_notes` (`tools:read`): the notes so far.
//! - `add_note` (`tools:call`): adds one.
//!
//! `tools/list` needs `tools:read` and shows only the tools the caller may
//! call. Kept apart from `main.rs` so the project's tests serve the very
//! same server on their own listener.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use mcp_auth_sdk::{BuildError, Protection, ScopeMap, Verified, Verifier};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CacheScope, CallToolResult, ContentBlock, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};

/// Which scopes each operation needs.
pub fn scopes() -> ScopeMap {
    ScopeMap::new()
        .method("tools/list", ["tools:read"])
        .tool("whoami", ["tools:read"])
        .tool("list_notes", ["tools:read"])
        .tool("add_note", ["tools:call"])
        // A tool added later without a line above is not left open.
        .unlisted_tools(["tools:call"])
}

/// The protection of the server `verifier` verifies tokens for: its
/// scopes, its name, and the caller's address (for mcp-auth's throttle of
/// refused API keys) from axum's connection info.
///
/// # Errors
/// The verifier's resource is not a usable resource URL.
pub fn protection(verifier: Verifier) -> Result<Protection, BuildError> {
    Ok(Protection::new(verifier, scopes())?
        .resource_name("Notes (mcp-auth example)")
        .client_address(|parts| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        }))
}

/// The app: the MCP endpoint at the resource's path, everything behind
/// the layer (which also answers the protected resource metadata).
/// `allowed_hosts`: the `Host` values rmcp accepts (DNS-rebinding guard).
pub fn app(protection: Protection, allowed_hosts: Vec<String>) -> axum::Router {
    let path = protection.metadata().resource_path().to_owned();
    mcp_router(&path, protection.scopes().clone(), allowed_hosts).layer(protection.layer())
}

/// The same MCP endpoint with no protection at all, to measure what the
/// layer costs (`--unprotected-for-benchmarks`); `whoami` and `add_note`
/// fail there, having no caller.
pub fn unprotected_app(path: &str, allowed_hosts: Vec<String>) -> axum::Router {
    mcp_router(path, scopes(), allowed_hosts)
}

fn mcp_router(path: &str, scopes: ScopeMap, allowed_hosts: Vec<String>) -> axum::Router {
    let notes = Notes::new(scopes);
    let mcp = StreamableHttpService::new(
        move || Ok(notes.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default()
            // A plain JSON answer to a stateless call (curl-friendly).
            .with_json_response(true)
            .with_allowed_hosts(allowed_hosts),
    );
    axum::Router::new()
        .route_service(path, mcp)
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
}

/// One note.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct AddNote {
    /// The note's text.
    pub text: String,
}

/// The server: its notes (in memory) and its tools.
#[derive(Clone)]
pub struct Notes {
    notes: Arc<Mutex<Vec<String>>>,
    scopes: ScopeMap,
    tool_router: ToolRouter<Self>,
}

/// The verified caller of a request, which the layer put there.
fn caller(parts: &Parts) -> Result<&Verified, ErrorData> {
    parts
        .extensions
        .get::<Verified>()
        .ok_or_else(|| ErrorData::internal_error("no verified caller", None))
}

#[tool_router]
impl Notes {
    fn new(scopes: ScopeMap) -> Self {
        Notes {
            notes: Arc::default(),
            scopes,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Who is calling: the subject, client, kind and scopes of the credential")]
    fn whoami(&self, Extension(parts): Extension<Parts>) -> Result<CallToolResult, ErrorData> {
        let who = caller(&parts)?;
        let text = serde_json::json!({
            "subject": who.subject,
            "client_id": who.client_id,
            "kind": format!("{:?}", who.kind),
            "scopes": who.scopes,
        })
        .to_string();
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }

    #[tool(description = "List the notes")]
    fn list_notes(&self) -> Result<CallToolResult, ErrorData> {
        let notes = self.notes.lock().map(|n| n.clone()).unwrap_or_default();
        Ok(CallToolResult::success(vec![ContentBlock::text(
            serde_json::json!(notes).to_string(),
        )]))
    }

    #[tool(description = "Add a note")]
    fn add_note(
        &self,
        Parameters(AddNote { text }): Parameters<AddNote>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let who = caller(&parts)?.subject.clone();
        let count = match self.notes.lock() {
            Ok(mut notes) => {
                notes.push(format!("{who}: {text}"));
                notes.len()
            }
            Err(_) => return Err(ErrorData::internal_error("notes unavailable", None)),
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "{count} notes"
        ))]))
    }
}

#[tool_handler]
impl ServerHandler for Notes {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("Notes, for callers mcp-auth vouches for")
    }

    /// The tools the caller may call, and no others.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = match context
            .extensions
            .get::<Parts>()
            .and_then(|p| p.extensions.get::<Verified>())
        {
            Some(who) => self
                .scopes
                .filter_tools(who, self.tool_router.list_all(), |t| &t.name),
            None => Vec::new(),
        };
        let mut result = ListToolsResult::with_all_items(tools);
        // The list depends on who asks.
        result.cache_scope = Some(CacheScope::Private);
        Ok(result)
    }
}
