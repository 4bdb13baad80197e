//! gRPC adapter.

pub mod client;
