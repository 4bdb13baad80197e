//! jsonrpc (being written).
