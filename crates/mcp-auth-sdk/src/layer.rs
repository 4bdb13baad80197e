//! layer (being written).

/// The tower layer (being written).
#[derive(Clone, Debug)]
pub struct McpAuthLayer;

/// What the layer protects (being written).
#[derive(Clone, Debug)]
pub struct Protection;
