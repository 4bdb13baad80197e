//! What a caller presents, as every transport hands it to the core: the
//! peer's address, the client certificate the TLS handshake verified, the
//! `authorization` values and the request's id. The gRPC adapter builds
//! it from request metadata; an HTTP adapter builds the same from headers.

use std::net::SocketAddr;

/// The header (gRPC metadata) carrying a request's id, on every transport.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Whether a caller-sent request id is usable as is: 1 to 64 visible
/// ASCII characters. Otherwise the server makes a fresh one.
pub fn is_usable_request_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= 64 && v.iter().all(u8::is_ascii_graphic)
}

/// A request's credentials, borrowed from the request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Credentials<'a> {
    /// The peer's address, when the transport knows it.
    pub peer: Option<SocketAddr>,
    /// The DER of the leaf client certificate the TLS layer verified.
    pub client_cert: Option<&'a [u8]>,
    /// The `authorization` value, when the request carries exactly one.
    pub authorization: Option<&'a str>,
    /// How many `authorization` values the request carries (more than one
    /// is refused, so a proxy and the server never disagree about who is
    /// calling).
    pub authorization_count: usize,
    /// The request's id, for logs and audit records.
    pub request_id: &'a str,
}

impl Credentials<'_> {
    /// Whether the request presents any credential at all.
    pub fn presents_any(&self) -> bool {
        self.client_cert.is_some() || self.authorization_count > 0
    }

    /// The peer as an audit actor, `peer:<ip>`.
    pub fn peer_actor(&self) -> String {
        match self.peer {
            Some(addr) => format!("peer:{}", addr.ip()),
            None => "peer:unknown".to_owned(),
        }
    }
}
