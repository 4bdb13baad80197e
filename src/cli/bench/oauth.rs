//! The OAuth scenarios of `mcp-auth bench`, over the HTTP listener:
//! `oauth-client-credentials` (a `client_credentials` grant at `/token`
//! per call, the client authenticated with HTTP Basic) and
//! `oauth-introspect` (`/introspect` of one of a pool of tokens per call,
//! as a resource server with a `tokens:verify` API key), and the browser
//! flow's: `oauth-code-flow` (an authorization by a signed-in browser whose
//! user consented before, then the code exchange: one flow per call) and
//! `oauth-refresh` (refresh token rotation at `/token`). The setup makes
//! the OAuth clients (and, for the browser flow, a user who signs in and
//! approves once with "remember") through gRPC and the pages, and deletes
//! them at the end.

use std::sync::Arc;

use crate::cli::CliError;
use crate::grpc::client::Client;
use crate::pb;

/// The resource the bench client's tokens are for.
const RESOURCE: &str = "https://mcp-auth-bench.example";
/// Its scope.
const SCOPE: &str = "bench:read";

/// The redirect URI of the bench's browser-flow client (nothing listens
/// there: the bench reads the code from the redirect).
const REDIRECT: &str = "http://127.0.0.1/bench-callback";
/// The PKCE verifier of every bench authorization.
const VERIFIER: &str = "mcp-auth-bench-verifier-0123456789-abcdefghijklmnop";

/// The browser flow's part of the fixture.
pub(super) struct CodeFlow {
    /// A browser: the signed-in user's cookies, no redirects followed.
    browser: reqwest::Client,
    /// The public client.
    pub(super) client_id: String,
    /// The user who signed in.
    pub(super) user_id: String,
    /// The authorization URL, PKCE included.
    authorize_url: String,
    /// Measured flows' step latencies: the authorization, the exchange.
    steps: std::sync::Mutex<(Vec<std::time::Duration>, Vec<std::time::Duration>)>,
}

impl CodeFlow {
    /// The step latencies measured, by step name (and forgets them).
    pub(super) fn take_steps(&self) -> Vec<(&'static str, Vec<std::time::Duration>)> {
        let mut steps = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        let (authorize, token) = std::mem::take(&mut *steps);
        vec![("authorize", authorize), ("token", token)]
    }
}

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
    /// The browser flow, for `oauth-code-flow` and `oauth-refresh`.
    pub(super) flow: Option<CodeFlow>,
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
        with_flow: bool,
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
            flow: None,
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
        if with_flow {
            Self::set_up_flow(&mut fixture, admin, http_server, ca, plaintext).await?;
        }
        Ok(Arc::new(fixture))
    }

    /// The client's id, to delete it after the run.
    pub(super) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Adds the browser flow: a public client, a user with a random
    /// password, and one authorization through the pages (sign-in, then
    /// approve with "remember"), so later ones go straight back with a
    /// code.
    pub(super) async fn set_up_flow(
        fixture: &mut OAuthFixture,
        admin: &Client,
        http_server: &str,
        ca: &std::path::Path,
        plaintext: bool,
    ) -> Result<(), CliError> {
        let setup = |what: &str, e: &dyn std::fmt::Display| {
            CliError::Usage(format!(
                "the bench could not set up the browser flow ({what}): {e}"
            ))
        };
        let created = admin
            .create_client(pb::CreateClientRequest {
                name: "mcp-auth bench (browser flow)".to_owned(),
                redirect_uris: vec![REDIRECT.to_owned()],
                grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
                allowed_scopes: vec![SCOPE.to_owned()],
                allowed_resources: vec![RESOURCE.to_owned()],
                token_endpoint_auth_method: "none".to_owned(),
                jwks: String::new(),
                skip_consent: false,
            })
            .await?;
        let client_id = created.client.map(|c| c.client_id).unwrap_or_default();
        let suffix = crate::secret::random_base62(8).map_err(|e| setup("random", &e))?;
        let password = crate::secret::random_base62(32).map_err(|e| setup("random", &e))?;
        let user = admin
            .create_user(pb::CreateUserRequest {
                username: format!("bench-{}", suffix.to_lowercase()),
                password: password.clone(),
            })
            .await?
            .user
            .unwrap_or_default();
        let base = http_server.trim_end_matches('/');
        let mut url =
            url::Url::parse(&format!("{base}/authorize")).map_err(|e| setup("URL", &e))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("scope", SCOPE)
            .append_pair("state", "bench")
            .append_pair("code_challenge", &crate::core::pkce::challenge_of(VERIFIER))
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", RESOURCE);
        let mut builder = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true);
        if !plaintext {
            let pem = std::fs::read(ca).map_err(|e| setup("CA", &e))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| setup("CA", &e))?;
            builder = builder.add_root_certificate(cert);
        }
        let browser = builder.build().map_err(|e| setup("HTTP client", &e))?;
        let page = |html: &str, name: &str| {
            let marker = format!("name=\"{name}\" value=\"");
            html.find(&marker).and_then(|at| {
                let rest = &html[at + marker.len()..];
                rest.find('"').map(|end| rest[..end].to_owned())
            })
        };
        let html = browser
            .get(url.as_str())
            .send()
            .await
            .map_err(|e| setup("/authorize", &e))?
            .text()
            .await
            .map_err(|e| setup("/authorize", &e))?;
        let (Some(interaction), Some(csrf)) = (page(&html, "interaction"), page(&html, "csrf"))
        else {
            return Err(setup("/authorize", &"no sign-in form (is login_url set?)"));
        };
        let signed = browser
            .post(format!("{base}/login"))
            .form(&[
                ("interaction", interaction.as_str()),
                ("csrf", csrf.as_str()),
                ("username", user.username.as_str()),
                ("password", password.as_str()),
            ])
            .send()
            .await
            .map_err(|e| setup("/login", &e))?;
        if !signed.status().is_success() {
            return Err(setup("/login", &signed.status()));
        }
        let back = browser
            .post(format!("{base}/consent"))
            .form(&[
                ("interaction", interaction.as_str()),
                ("csrf", csrf.as_str()),
                ("decision", "approve"),
                ("remember", "yes"),
            ])
            .send()
            .await
            .map_err(|e| setup("/consent", &e))?;
        if !back.status().is_redirection() {
            return Err(setup("/consent", &back.status()));
        }
        fixture.flow = Some(CodeFlow {
            browser,
            client_id,
            user_id: user.user_id,
            authorize_url: url.to_string(),
            steps: std::sync::Mutex::new((Vec::new(), Vec::new())),
        });
        Ok(())
    }

    /// One browser flow: the authorization (straight back with a code),
    /// then the exchange; the refresh token. With `measured`, the steps'
    /// latencies are kept for the report.
    pub(super) async fn code_flow(&self, measured: bool) -> Result<String, String> {
        let Some(flow) = &self.flow else {
            return Err("no browser flow".to_owned());
        };
        let started = std::time::Instant::now();
        let resp = flow
            .browser
            .get(&flow.authorize_url)
            .send()
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let code = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url::Url::parse(l).ok())
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            })
            .ok_or_else(|| format!("HTTP {} without a code", resp.status().as_u16()))?;
        let authorized = started.elapsed();
        let exchange = std::time::Instant::now();
        let resp = flow
            .browser
            .post(&self.token_url)
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", flow.client_id.as_str()),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let token = refresh_token_of(resp).await?;
        if measured {
            let mut steps = flow.steps.lock().unwrap_or_else(|p| p.into_inner());
            steps.0.push(authorized);
            steps.1.push(exchange.elapsed());
        }
        Ok(token)
    }

    /// One refresh at `/token`; the new refresh token.
    pub(super) async fn refresh(&self, refresh_token: &str) -> Result<String, String> {
        let Some(flow) = &self.flow else {
            return Err("no browser flow".to_owned());
        };
        let resp = flow
            .browser
            .post(&self.token_url)
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", flow.client_id.as_str()),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        refresh_token_of(resp).await
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

/// The refresh token of a token response.
async fn refresh_token_of(resp: reqwest::Response) -> Result<String, String> {
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.map_err(|e| format!("HTTP body: {e}"))?;
    match body
        .get("refresh_token")
        .and_then(serde_json::Value::as_str)
    {
        Some(t) if status.is_success() => Ok(t.to_owned()),
        _ => Err(format!(
            "HTTP {} {}",
            status.as_u16(),
            body.get("reason")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
        )),
    }
}
