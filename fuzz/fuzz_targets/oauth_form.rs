//! The OAuth endpoints' form bodies (and the authorization request's
//! query): the strict `application/x-www-form-urlencoded` parse, the
//! lookups the handlers make, PKCE's parameters, and the `Content-Type`
//! check. The first line is the content type, the rest the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    mcp_auth::fuzzing::form(&String::from_utf8_lossy(content_type), body);
});
