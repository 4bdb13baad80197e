//! Outbound HTTPS fetches of documents that a caller names (an OAuth
//! client's metadata document), guarded against server-side request
//! forgery: `https` only, no redirects, no proxy, only public addresses
//! ([`guard`], checked after resolution and for address literals), a
//! time limit for the whole exchange, a size cap read as the body
//! arrives, and a JSON content type. What the document says is the
//! caller's business; this module only brings its bytes and how long
//! they may be cached.
//!
//! One setting exists for tests: trusting one more CA and allowing
//! loopback addresses (never private or link-local ones), so a test can
//! serve documents from `127.0.0.1`. It is off by default, and the server
//! warns at start when it is on.

pub mod guard;

use std::net::IpAddr;
use std::time::Duration;

use self::guard::{GuardedResolver, Refusal, RefusedAddress};

/// How a [`Fetcher`] fetches.
#[derive(Clone, Debug)]
pub struct FetchPolicy {
    /// Time for the whole fetch, connecting and reading included.
    pub timeout: Duration,
    /// Largest body read, bytes.
    pub max_bytes: usize,
    /// A CA certificate (PEM) to trust besides the system's, with
    /// loopback addresses allowed: for tests only.
    pub testing_ca: Option<Vec<u8>>,
}

/// What a fetch brought.
#[derive(Debug)]
pub struct Fetched {
    /// The body, at most the policy's `max_bytes`.
    pub body: Vec<u8>,
    /// How long it may be cached, from `Cache-Control`: `Some(0)` for
    /// `no-store` or `no-cache`, `None` when the response does not say.
    pub max_age: Option<u64>,
}

/// Why a fetch failed; each says what to fix at the document's server.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not `https`.
    #[error("only https URLs are fetched")]
    NotHttps,
    /// The host is an address (or resolves only to addresses) that may
    /// not be fetched.
    #[error("{0} is a {kind} address, which is never fetched", kind = kind(*.1))]
    Address(IpAddr, Refusal),
    /// Connecting, TLS or HTTP failed.
    #[error("the request failed: {0}")]
    Transport(String),
    /// The whole fetch took longer than allowed.
    #[error("no complete answer within {0} ms")]
    Timeout(u128),
    /// The answer was a redirect, which is never followed.
    #[error("the server answered {0} (a redirect); redirects are not followed")]
    Redirect(u16),
    /// The answer was not 200.
    #[error("the server answered {0}, not 200")]
    Status(u16),
    /// The content type is not JSON.
    #[error("the content type is {0:?}, not application/json")]
    ContentType(String),
    /// The body is larger than allowed.
    #[error("the document is larger than {0} bytes")]
    TooLarge(usize),
}

fn kind(why: Refusal) -> &'static str {
    match why {
        Refusal::Loopback => "loopback",
        Refusal::NotPublic => "private, link-local or otherwise non-public",
    }
}

/// Fetches JSON documents over HTTPS under a [`FetchPolicy`].
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: FetchPolicy,
}

impl Fetcher {
    /// A fetcher following `policy`.
    ///
    /// # Errors
    /// The testing CA is not PEM, or the HTTP client cannot be set up.
    pub fn new(policy: FetchPolicy) -> Result<Self, String> {
        let allow_loopback = policy.testing_ca.is_some();
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .referer(false)
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("mcp-auth/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(std::sync::Arc::new(GuardedResolver { allow_loopback }));
        if let Some(pem) = &policy.testing_ca {
            let ca = reqwest::Certificate::from_pem(pem)
                .map_err(|e| format!("the testing CA is not a PEM certificate: {e}"))?;
            builder = builder.add_root_certificate(ca);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client for fetches: {e}"))?;
        Ok(Fetcher { client, policy })
    }

    /// GETs `url` (`Accept: application/json`) and returns its body if the
    /// answer is a 200 of JSON within the size cap.
    ///
    /// # Errors
    /// Why the document could not be had.
    pub async fn get_json(&self, url: &url::Url) -> Result<Fetched, FetchError> {
        if url.scheme() != "https" {
            return Err(FetchError::NotHttps);
        }
        let allow_loopback = self.policy.testing_ca.is_some();
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal {
            if let Some(why) = guard::refusal(ip, allow_loopback) {
                return Err(FetchError::Address(ip, why));
            }
        }
        let timeout = self.policy.timeout;
        match tokio::time::timeout(timeout, self.fetch(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(timeout.as_millis())),
        }
    }

    async fn fetch(&self, url: &url::Url) -> Result<Fetched, FetchError> {
        let mut resp = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect(status.as_u16()));
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        if !is_json(&content_type) {
            let mut shown = content_type;
            shown.truncate(64);
            return Err(FetchError::ContentType(shown));
        }
        let max = self.policy.max_bytes;
        if resp
            .content_length()
            .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
        {
            return Err(FetchError::TooLarge(max));
        }
        let max_age = max_age(resp.headers());
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(&e))? {
            if body.len() + chunk.len() > max {
                return Err(FetchError::TooLarge(max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, max_age })
    }

    /// What a reqwest error means here: a refused address (from the
    /// resolver), a timeout, or another failure (a failed lookup
    /// included), told by its innermost cause.
    fn transport_error(&self, err: &reqwest::Error) -> FetchError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(refused) = e.downcast_ref::<RefusedAddress>() {
                return FetchError::Address(refused.ip, refused.why);
            }
            source = e.source();
        }
        if err.is_timeout() {
            return FetchError::Timeout(self.policy.timeout.as_millis());
        }
        // The innermost cause says most (e.g. a certificate problem).
        let mut inner: &dyn std::error::Error = err;
        while let Some(next) = inner.source() {
            inner = next;
        }
        let mut text = inner.to_string();
        text.truncate(200);
        FetchError::Transport(text)
    }
}

/// Whether a content type is JSON (`application/json`, parameters
/// allowed).
fn is_json(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Seconds a response may be cached by its `Cache-Control`: `no-store` and
/// `no-cache` are 0; `max-age=N` is N less the `Age` it already has.
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let mut found = None;
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',') {
            let directive = directive.trim();
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(0);
            }
            if name.eq_ignore_ascii_case("max-age") {
                if let Ok(n) = arg.trim_matches('"').parse::<u64>() {
                    found = Some(n);
                }
            }
        }
    }
    let age = headers
        .get(reqwest::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    found.map(|n| n.saturating_sub(age))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{AGE, CACHE_CONTROL, HeaderMap, HeaderValue};

    fn headers(pairs: &[(reqwest::header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cache_control_gives_the_freshness() {
        assert_eq!(max_age(&headers(&[])), None);
        assert_eq!(
            max_age(&headers(&[(CACHE_CONTROL, "public, max-age=600")])),
            Some(600)
        );
        assert_eq!(
            max_age(&headers(&[(CACHE_CONTROL, "max-age=600"), (AGE, "100")])),
            Some(500)
        );
        assert_eq!(
            max_age(&headers(&[(CACHE_CONTROL, "max-age=600, no-cache")])),
            Some(0)
        );
        assert_eq!(max_age(&headers(&[(CACHE_CONTROL, "no-store")])), Some(0));
        assert_eq!(max_age(&headers(&[(CACHE_CONTROL, "max-age=x")])), None);
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(!is_json("text/html"));
        assert!(!is_json(""));
    }

    #[tokio::test]
    async fn address_literals_are_refused_before_connecting() {
        let fetcher = Fetcher::new(FetchPolicy {
            timeout: Duration::from_secs(5),
            max_bytes: 5120,
            testing_ca: None,
        })
        .unwrap();
        for (url, why) in [
            ("https://127.0.0.1/c.json", Refusal::Loopback),
            ("https://[::1]/c.json", Refusal::Loopback),
            ("https://10.1.2.3/c.json", Refusal::NotPublic),
            ("https://169.254.169.254/latest", Refusal::NotPublic),
            ("https://[::ffff:192.168.0.1]/c.json", Refusal::NotPublic),
        ] {
            let err = fetcher
                .get_json(&url::Url::parse(url).unwrap())
                .await
                .unwrap_err();
            assert!(
                matches!(err, FetchError::Address(_, w) if w == why),
                "{url}: {err}"
            );
        }
        let err = fetcher
            .get_json(&url::Url::parse("http://example.com/c.json").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::NotHttps));
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused() {
        let fetcher = Fetcher::new(FetchPolicy {
            timeout: Duration::from_secs(5),
            max_bytes: 5120,
            testing_ca: None,
        })
        .unwrap();
        let err = fetcher
            .get_json(&url::Url::parse("https://localhost:1/c.json").unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::Address(_, Refusal::Loopback)),
            "{err}"
        );
    }
}
