//! Dynamic Client Registration bodies (`POST /register`, RFC 7591): the
//! JSON read as the endpoint reads it, then checked as the core checks a
//! new client (names, URLs, grant types, scopes, JWK Sets, how they fit).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mcp_auth::fuzzing::register(data);
});
