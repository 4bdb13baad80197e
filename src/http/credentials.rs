//! From an HTTP request to what the core takes: the [`Credentials`] (peer
//! address, `Authorization` values, request id), as `grpc::call` does for
//! gRPC. The only place the HTTP adapter reads those headers or the peer.
//!
//! The HTTP listener asks for no client certificate (browsers would prompt
//! for one), so [`Credentials::client_cert`] is always `None` here.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::core::Credentials;
use crate::core::credentials::REQUEST_ID_HEADER;

/// The peer address of a request's connection, put in the request's
/// extensions by the listener. Requests without it (a router driven
/// directly in tests) have no peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// What a request presents, kept while its handler runs. Extract it in a
/// handler (`call: Call`) and pass `&call.credentials()` to the core.
#[derive(Clone, Debug, Default)]
pub struct Call {
    peer: Option<SocketAddr>,
    /// The first `Authorization` value; `""` if it is not visible ASCII
    /// (it still counts as a malformed credential).
    authorization: Option<String>,
    authorization_count: usize,
    request_id: String,
}

impl Call {
    /// The call context of a request's head.
    pub fn from_parts(parts: &Parts) -> Call {
        let mut values = parts.headers.get_all(AUTHORIZATION).iter();
        let first = values.next();
        let authorization_count = usize::from(first.is_some()) + values.count();
        Call {
            peer: parts.extensions.get::<Peer>().map(|p| p.0),
            authorization: first.map(|v| v.to_str().unwrap_or_default().to_owned()),
            authorization_count,
            request_id: parts
                .headers
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// The first `Authorization` value, if any.
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// How many `Authorization` values the request carries.
    pub fn authorization_count(&self) -> usize {
        self.authorization_count
    }

    /// The caller's credentials, borrowed from the call.
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials {
            peer: self.peer,
            client_cert: None,
            authorization: self.authorization.as_deref(),
            authorization_count: self.authorization_count,
            request_id: &self.request_id,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Call {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Call::from_parts(parts))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    #[test]
    fn credentials_carry_the_peer_the_first_authorization_and_their_count() {
        let mut req = Request::builder()
            .header(AUTHORIZATION, "Basic YTpi")
            .header(AUTHORIZATION, "Bearer x")
            .header(REQUEST_ID_HEADER, "req-1")
            .body(())
            .unwrap();
        let peer: SocketAddr = "192.0.2.7:4711".parse().unwrap();
        req.extensions_mut().insert(Peer(peer));
        let (parts, ()) = req.into_parts();
        let call = Call::from_parts(&parts);
        let creds = call.credentials();
        assert_eq!(creds.peer, Some(peer));
        assert_eq!(creds.authorization, Some("Basic YTpi"));
        assert_eq!(creds.authorization_count, 2);
        assert_eq!(creds.request_id, "req-1");
        assert!(creds.client_cert.is_none());
        assert!(creds.presents_any());
    }

    #[test]
    fn a_request_without_credentials_presents_none() {
        let (parts, ()) = Request::new(()).into_parts();
        let call = Call::from_parts(&parts);
        let creds = call.credentials();
        assert!(!creds.presents_any());
        assert_eq!(creds.peer, None);
        assert_eq!(creds.authorization, None);
    }

    #[test]
    fn a_non_ascii_authorization_counts_as_a_malformed_one() {
        let value = axum::http::HeaderValue::from_bytes("Bearer é".as_bytes()).unwrap();
        let (parts, ()) = Request::builder()
            .header(AUTHORIZATION, value)
            .body(())
            .unwrap()
            .into_parts();
        let call = Call::from_parts(&parts);
        assert_eq!(call.credentials().authorization, Some(""));
        assert_eq!(call.credentials().authorization_count, 1);
    }
}
