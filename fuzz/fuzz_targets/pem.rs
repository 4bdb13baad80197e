//! PEM and DER as the server reads them: presented client certificates
//! (the identity and serial), the mutual-TLS CA's certificate and key,
//! the HTTP listener's certificate chain and key (rustls), and the
//! names and serials the CA takes. `data[0]` picks the reader; see
//! `mcp_auth::fuzzing::pem`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mcp_auth::fuzzing::pem(data);
});
