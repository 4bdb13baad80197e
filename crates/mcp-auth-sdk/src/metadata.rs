//! metadata (being written).

/// RFC 9728 metadata (being written).
#[derive(Clone, Debug)]
pub struct ResourceMetadata;
