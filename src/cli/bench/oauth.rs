//! The OAuth scenarios of `mcp-auth bench`, over the HTTP listener:
//! `oauth-client-credentials` (a `client_credentials` grant at `/token`
//! per call, the client authenticated with HTTP Basic) and
//! `oauth-introspect` (`/introspect` of one of a pool of tokens per call,
//! as a resource server with a `tokens:verify` API key). The setup makes a
//! confidential OAuth client through gRPC and deletes it at the end.

use std::sync::Arc;

use crate::cli::CliError;
use crate::grpc::client::Client;
use crate::pb;

/// The resource the bench client's tokens are for.
const RESOURCE: &str = "https://mcp-auth-bench.example";
/// Its scope.
const SCOPE: &str = "bench:read";

/// What the OAuth callers share.
pub(super) struct OAuthFixture {
    http: reqwest::Client,
    token_url: String,
    introspect_url: String,
    client_id: String,
    client_secret: String,
    /// `Bearer <bench key>`, for introspection.
    verifier: String,
    /// Tokens from `/token`, for introspection.
    pub(super) tokens: Vec<String>,
}

/// An HTTP client trusting `ca` (PEM), keeping connections alive.
fn http_client(ca: &std::path::Path, plaintext: bool) -> Result<reqwest::Client, CliError> {
    let mut builder = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true);
    if !plaintext {
        let pem = std::fs::read(ca).map_err(|source| CliError::Io {
            context: format!(
                "reading the CA certificate {} (set --ca or MCP_AUTH_CA)",
                ca.display()
            ),
            source,
        })?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| CliError::Usage(format!("the CA certificate is not PEM: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build()
        .map_err(|e| CliError::Usage(format!("cannot set up the HTTP client: {e}")))
}

impl OAuthFixture {
    /// Creates the bench's OAuth client with `admin` and, for
    /// introspection, `tokens` tokens from `/token`.
    pub(super) async fn set_up(
        admin: &Client,
        http_server: &str,
        ca: &std::path::Path,
        plaintext: bool,
        bench_key: &str,
        tokens: usize,
    ) -> Result<Arc<OAuthFixture>, CliError> {
        let created = admin
            .create_client(pb::CreateClientRequest {
                name: "mcp-auth bench".to_owned(),
                redirect_uris: vec![],
                grant_types: vec!["client_credentials".to_owned()],
                allowed_scopes: vec![SCOPE.to_owned()],
                allowed_resources: vec![RESOURCE.to_owned()],
                token_endpoint_auth_method: "client_secret_basic".to_owned(),
                jwks: String::new(),
                skip_consent: false,
            })
            .await?;
        let client_id = created.client.map(|c| c.client_id).unwrap_or_default();
        let base = http_server.trim_end_matches('/');
        let mut fixture = OAuthFixture {
            http: http_client(ca, plaintext)?,
            token_url: format!("{base}/token"),
            introspect_url: format!("{base}/introspect"),
            client_id,
            client_secret: created.secret,
            verifier: format!("Bearer {bench_key}"),
            tokens: Vec::new(),
        };
        for _ in 0..tokens {
            let token = fixture.grant().await.map_err(|e| {
                CliError::Usage(format!(
                    "the bench could not get a token at {}: {e}",
                    fixture.token_url
                ))
            })?;
            fixture.tokens.push(token);
        }
        Ok(Arc::new(fixture))
    }

    /// The client's id, to delete it after the run.
    pub(super) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// One `client_credentials` grant; its access token.
    pub(super) async fn grant(&self) -> Result<String, String> {
        let resp = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)])
            .send()
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.map_err(|e| format!("HTTP body: {e}"))?;
        match body.get("access_token").and_then(serde_json::Value::as_str) {
            Some(token) if status.is_success() => Ok(token.to_owned()),
            _ => Err(format!("HTTP {}", status.as_u16())),
        }
    }

    /// One introspection of `token`; an inactive verdict is a failure.
    pub(super) async fn introspect(&self, token: &str) -> Result<(), String> {
        let resp = self
            .http
            .post(&self.introspect_url)
            .header(reqwest::header::AUTHORIZATION, &self.verifier)
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.map_err(|e| format!("HTTP body: {e}"))?;
        if status.is_success() && body.get("active") == Some(&serde_json::Value::Bool(true)) {
            Ok(())
        } else if status.is_success() {
            Err("inactive".to_owned())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }
}
