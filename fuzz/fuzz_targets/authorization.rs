//! The `Authorization` values of a request, on both transports: the HTTP
//! request's credentials and the OAuth endpoints' client authentication
//! (Basic decoded, Bearer, form secrets and assertions), and gRPC's
//! `authorization` metadata through to the API key check. The input is
//! lines: every line but the last an `Authorization` value, the last the
//! form body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let form = lines.pop().unwrap_or_default();
    mcp_auth::fuzzing::http_authorization(&lines, form);
    mcp_auth::fuzzing::grpc_authorization(&lines);
});
