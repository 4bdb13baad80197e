//! scopes (being written).

/// Per-tool scopes (being written).
#[derive(Clone, Debug, Default)]
pub struct ScopeMap;
