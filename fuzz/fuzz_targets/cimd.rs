//! Client ID Metadata Documents: the client-id URL's rules and the
//! document's, as `core::cimd` checks them after a fetch. The first line
//! is the URL, the rest the document; with no newline the input is the
//! document and the URL is `https://app.example.com/client.json`.
#![no_main]

use libfuzzer_sys::fuzz_target;

const URL: &str = "https://app.example.com/client.json";

fuzz_target!(|data: &[u8]| {
    match data.iter().position(|b| *b == b'\n') {
        Some(at) => {
            let url = String::from_utf8_lossy(&data[..at]);
            mcp_auth::fuzzing::cimd(&url, &data[at + 1..]);
        }
        None => mcp_auth::fuzzing::cimd(URL, data),
    }
});
