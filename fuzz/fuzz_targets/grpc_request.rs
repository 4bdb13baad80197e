//! Every gRPC request message, decoded as the server decodes it (tonic's
//! framing and the strict codec: a message that does not decode is
//! INVALID_ARGUMENT), then converted and checked as far as the adapter
//! and the core go before a store. `data[0]` picks the message type and
//! whether the rest is framed here; see `mcp_auth::fuzzing::grpc_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mcp_auth::fuzzing::grpc_request(data);
});
