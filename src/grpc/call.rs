//! From a tonic request to what the core takes: the [`Credentials`]
//! (peer, client certificate, `authorization` values, request id) and the
//! message. The only place that reads request metadata or the TLS peer.

use std::net::SocketAddr;
use std::sync::Arc;

use tonic::Request;
use tonic::metadata::MetadataMap;
use tonic::transport::CertificateDer;

use crate::core::Credentials;

pub(crate) use crate::core::credentials::{REQUEST_ID_HEADER, is_usable_request_id};

/// A request's metadata and TLS peer, kept while its message is used.
pub(crate) struct Call {
    peer: Option<SocketAddr>,
    certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    metadata: MetadataMap,
}

impl Call {
    /// Splits `req` into its call context and its message.
    pub fn split<T>(req: Request<T>) -> (Call, T) {
        let peer = req.remote_addr();
        let certs = req.peer_certs();
        let (metadata, _, message) = req.into_parts();
        (
            Call {
                peer,
                certs,
                metadata,
            },
            message,
        )
    }

    /// The caller's credentials, borrowed from the request. A value that
    /// is not visible ASCII counts as a (malformed) credential.
    pub fn credentials(&self) -> Credentials<'_> {
        let mut values = self.metadata.get_all("authorization").iter();
        let first = values.next();
        let count = usize::from(first.is_some()) + values.count();
        Credentials {
            peer: self.peer,
            client_cert: self
                .certs
                .as_ref()
                .and_then(|chain| chain.first())
                .map(|c| c.as_ref()),
            authorization: first.map(|v| v.to_str().unwrap_or("")),
            authorization_count: count,
            request_id: self
                .metadata
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        }
    }
}
