//! The connection to mcp-auth: one lazily connected tonic channel over
//! TLS (trusting `ca_pem` if given, else the platform's roots; a client
//! certificate for mutual TLS if given), and the MCP server's own API key
//! added to every call as `authorization: Bearer ...` by an interceptor.
//! The key is held as a sensitive metadata value, never printed.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::BuildError;
use crate::pb::token_service_client::TokenServiceClient;

/// Adds the MCP server's own credential to each call.
#[derive(Clone)]
pub(crate) struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// The `TokenService` client the verifier calls.
pub(crate) type Client = TokenServiceClient<InterceptedService<Channel, Bearer>>;

/// A connection to mcp-auth and the time each call may take.
#[derive(Clone)]
pub(crate) struct Connection {
    client: Client,
    /// Each unary call's deadline (sent to the server too).
    pub timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How to reach mcp-auth, as the builder collected it.
pub(crate) struct Target<'a> {
    /// `https://host:port`.
    pub url: &'a str,
    /// The CA that signed mcp-auth's certificate, PEM.
    pub ca_pem: Option<&'a [u8]>,
    /// Client certificate and key, PEM, for mutual TLS.
    pub identity: Option<(&'a [u8], &'a [u8])>,
    /// The MCP server's own API key.
    pub api_key: Option<&'a str>,
    /// Per-call deadline, also the connect timeout.
    pub timeout: Duration,
}

impl Connection {
    /// A connection to `target`, connected at the first call (and again
    /// after any failure) rather than now.
    ///
    /// # Errors
    /// [`BuildError::Invalid`] for a URL that is not `https`, a key that
    /// is not a header value, or unusable TLS material.
    pub fn lazy(target: &Target<'_>) -> Result<Self, BuildError> {
        let invalid =
            |setting: &'static str, message: String| BuildError::Invalid { setting, message };
        if !target.url.starts_with("https://") {
            return Err(invalid(
                "grpc",
                "must be an https:// URL: the verifier talks to mcp-auth over TLS only".to_owned(),
            ));
        }
        let endpoint = Endpoint::from_shared(target.url.to_owned())
            .map_err(|e| invalid("grpc", format!("not a URL: {e}")))?;
        let mut tls = ClientTlsConfig::new();
        tls = match target.ca_pem {
            Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
            None => tls.with_native_roots(),
        };
        if let Some((cert, key)) = target.identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        let endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| invalid("ca_pem", format!("unusable TLS settings: {e}")))?
            .connect_timeout(target.timeout)
            .tcp_nodelay(true);
        let bearer = match target.api_key {
            Some(key) => {
                let mut value: MetadataValue<Ascii> =
                    format!("Bearer {key}").parse().map_err(|_| {
                        invalid(
                            "api_key",
                            "not a valid header value (mcp_sk_... is printable ASCII)".to_owned(),
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Connection {
            client: TokenServiceClient::with_interceptor(endpoint.connect_lazy(), Bearer(bearer)),
            timeout: target.timeout,
        })
    }

    /// A client for one call (clones share the channel).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// `message` as a request with this connection's deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        req.set_timeout(self.timeout);
        req
    }
}
