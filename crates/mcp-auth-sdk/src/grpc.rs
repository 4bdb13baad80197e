//! gRPC MCP servers (being written).

/// The gRPC interceptor (being written).
#[derive(Clone, Debug)]
pub struct McpAuthInterceptor;
