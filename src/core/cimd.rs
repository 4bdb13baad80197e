//! Client ID Metadata Documents (the MCP authorization specification's
//! preferred way for a client to be known; draft-ietf-oauth-client-id-
//! metadata-document): a `client_id` that is an `https` URL names a JSON
//! document, served there by the client's owner, that describes the
//! client. The server fetches it ([`crate::fetch`], guarded against
//! SSRF), checks it, and keeps the client it describes in memory for as
//! long as the document's `Cache-Control` allows (five minutes when it
//! says nothing, a day at most, never when it says `no-store` or
//! `no-cache`), at most [`MAX_CACHED`] of them. Such a client is never
//! stored.
//!
//! The rules, beyond the fetch's own:
//! - the URL is `https`, in normal form (as a URL parser writes it back:
//!   lowercase host, no `.` or `..` segments, no default port), with a
//!   path other than `/`, no user information and no fragment; its host
//!   is in `cimd_allowed_hosts` when that is set;
//! - the document is a JSON object whose `client_id` is that URL, byte for
//!   byte, with a `client_name` and at least one redirect URI;
//! - it authenticates with `none` (a public client) or `private_key_jwt`
//!   with its keys inline (`jwks`); a document holding a shared secret or
//!   asking for a `client_secret_*` method is refused, and `jwks_uri` is
//!   not supported (as at `/register`);
//! - its scopes are its `scope` or, without one, `dcr_default_scopes`; its
//!   resources are `cimd_allowed_resources`; every field then passes the
//!   checks an admin-created client passes (`client_rules`).
//!
//! Each fetch (not each use of a cached client) takes one from the
//! peer's allowance of registrations (`dcr_registrations_per_hour`), is
//! audited `client.metadata_fetched`, and a refused document counts as a
//! failed client authentication.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::Value;

use crate::core::audit::AuditEvent;
use crate::core::client_rules::{self, ClientShape};
use crate::core::error::Error;
use crate::core::{Core, Credentials};
use crate::fetch::{FetchError, FetchPolicy, Fetcher};
use crate::store::{AuthMethod, ClientOrigin, GrantType, OAuthClientRecord};

/// Largest metadata document read, bytes.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// Longest client-id URL, bytes.
const MAX_URL_LEN: usize = 2048;
/// Seconds a document is kept when its response says nothing of caching.
const DEFAULT_FRESHNESS: i64 = 300;
/// Most seconds a document is kept, whatever it says.
const MAX_FRESHNESS: i64 = 24 * 60 * 60;
/// Most documents kept at once.
pub(crate) const MAX_CACHED: usize = 10_000;

/// Whether `client_id` names a metadata document (is an `https` URL).
pub(crate) fn is_document_url(client_id: &str) -> bool {
    client_id
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// Why a metadata document was not accepted. Each is `invalid_client`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CimdError {
    /// `cimd = false`.
    #[error("this server does not accept client metadata documents")]
    Off,
    /// The URL breaks a rule.
    #[error("the client_id URL {0}")]
    Url(&'static str),
    /// The host is not in `cimd_allowed_hosts`.
    #[error("client_id URLs on this host are not accepted here")]
    HostNotAllowed,
    /// The fetch failed.
    #[error("fetching it failed: {0}")]
    Fetch(#[from] FetchError),
    /// The body is not a JSON object of client metadata.
    #[error("it is not a JSON object of client metadata")]
    NotJson,
    /// Its `client_id` is not the URL.
    #[error("its client_id is not the URL it was fetched from")]
    Mismatch,
    /// A member is missing or not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The peer's allowance of fetches ran dry.
    #[error("{0}")]
    Limited(Error),
}

impl CimdError {
    /// A stable name for logs and the audit trail.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            CimdError::Off => "CIMD_OFF",
            CimdError::Url(_) => "CIMD_URL",
            CimdError::HostNotAllowed => "CIMD_HOST_NOT_ALLOWED",
            CimdError::Fetch(_) => "CIMD_FETCH",
            CimdError::NotJson => "CIMD_NOT_JSON",
            CimdError::Mismatch => "CIMD_CLIENT_ID_MISMATCH",
            CimdError::Invalid(_) => "CIMD_INVALID",
            CimdError::Limited(_) => "CIMD_RATE_LIMITED",
        }
    }
}

/// The members of a metadata document this server reads; the rest (logo,
/// policy and terms URLs, contacts...) are ignored.
#[derive(Deserialize)]
struct Document {
    client_id: String,
    client_name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    scope: Option<String>,
    jwks: Option<Value>,
    jwks_uri: Option<Value>,
    client_secret: Option<Value>,
}

/// What the server allows of metadata-document clients.
#[derive(Clone, Debug, Default)]
pub(crate) struct CimdSettings {
    /// Hosts (`example.com`) and suffixes (`*.example.com`); empty: any.
    pub allowed_hosts: Vec<String>,
    /// Scopes of a document without `scope`.
    pub default_scopes: Vec<String>,
    /// Resources its tokens may be for.
    pub allowed_resources: Vec<String>,
}

struct Cached {
    client: Arc<OAuthClientRecord>,
    fresh_until: i64,
}

/// The metadata-document clients: the fetcher (none when off) and the
/// cache.
pub(crate) struct MetadataClients {
    fetcher: Option<Fetcher>,
    settings: CimdSettings,
    cache: Mutex<HashMap<String, Cached>>,
}

impl MetadataClients {
    /// Metadata-document clients fetched with `policy` (none: off).
    ///
    /// # Errors
    /// The fetcher cannot be set up (a testing CA that is not PEM).
    pub fn new(policy: Option<FetchPolicy>, settings: CimdSettings) -> Result<Self, String> {
        let fetcher = policy.map(Fetcher::new).transpose()?;
        Ok(MetadataClients {
            fetcher,
            settings,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Whether documents are fetched at all.
    pub fn enabled(&self) -> bool {
        self.fetcher.is_some()
    }

    fn cached(&self, url: &str, now: i64) -> Option<Arc<OAuthClientRecord>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(url)
            .filter(|c| now < c.fresh_until)
            .map(|c| c.client.clone())
    }

    fn keep(&self, client: Arc<OAuthClientRecord>, fresh_until: i64, now: i64) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED && !cache.contains_key(&client.client_id) {
            cache.retain(|_, c| now < c.fresh_until);
            if cache.len() >= MAX_CACHED {
                // Still full of fresh ones: the one closest to going stale
                // makes room.
                if let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, c)| c.fresh_until)
                    .map(|(k, _)| k.clone())
                {
                    cache.remove(&oldest);
                }
            }
        }
        cache.insert(
            client.client_id.clone(),
            Cached {
                client,
                fresh_until,
            },
        );
    }

    /// Drops the documents no longer fresh at `now` (maintenance);
    /// returns how many are left.
    pub fn evict_stale(&self, now: i64) -> usize {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, c| now < c.fresh_until);
        cache.len()
    }

    /// Checks `url` as a client id and returns it parsed.
    pub(crate) fn check_url(&self, url: &str) -> Result<url::Url, CimdError> {
        if url.len() > MAX_URL_LEN {
            return Err(CimdError::Url("is longer than 2048 bytes"));
        }
        let parsed = url::Url::parse(url).map_err(|_| CimdError::Url("is not a valid URL"))?;
        if parsed.scheme() != "https" {
            return Err(CimdError::Url("must be https"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(CimdError::Url("must not carry user information"));
        }
        if parsed.fragment().is_some() {
            return Err(CimdError::Url("must not have a fragment"));
        }
        if parsed.path() == "/" {
            return Err(CimdError::Url("must have a path (e.g. /client.json)"));
        }
        if parsed.as_str() != url {
            return Err(CimdError::Url(
                "must be in normal form (lowercase host, no default port, no . or .. segments, percent-encoded)",
            ));
        }
        let host = parsed.host_str().unwrap_or_default();
        if !self.settings.allowed_hosts.is_empty()
            && !self
                .settings
                .allowed_hosts
                .iter()
                .any(|p| host_matches(p, host))
        {
            return Err(CimdError::HostNotAllowed);
        }
        Ok(parsed)
    }

    /// The client a fetched document describes, at `now`.
    pub(crate) fn client_from(
        &self,
        url: &str,
        body: &[u8],
        now: i64,
    ) -> Result<OAuthClientRecord, CimdError> {
        let doc: Document = serde_json::from_slice(body).map_err(|_| CimdError::NotJson)?;
        if doc.client_id != url {
            return Err(CimdError::Mismatch);
        }
        let invalid = |why: &str| CimdError::Invalid(why.to_owned());
        if doc.client_secret.is_some() {
            return Err(invalid(
                "a metadata document must not hold a client_secret: it is public",
            ));
        }
        if doc.jwks_uri.is_some() {
            return Err(invalid(
                "jwks_uri is not supported: put the public keys in the document as jwks",
            ));
        }
        let Some(name) = doc.client_name else {
            return Err(invalid("client_name is required"));
        };
        let redirect_uris = doc.redirect_uris.unwrap_or_default();
        if redirect_uris.is_empty() {
            return Err(invalid("redirect_uris is required (at least one)"));
        }
        let method = doc
            .token_endpoint_auth_method
            .unwrap_or_else(|| AuthMethod::None.as_str().to_owned());
        let method = client_rules::auth_method(&method).map_err(field_error)?;
        if !matches!(method, AuthMethod::None | AuthMethod::PrivateKeyJwt) {
            return Err(invalid(
                "token_endpoint_auth_method must be none or private_key_jwt: a metadata document cannot share a secret",
            ));
        }
        let grant_types = doc
            .grant_types
            .unwrap_or_else(|| vec![GrantType::AuthorizationCode.as_str().to_owned()]);
        let Some(scopes) = client_rules::self_registered_scopes(
            doc.scope.as_deref(),
            &self.settings.default_scopes,
        ) else {
            return Err(invalid(
                "scope is required: this server has no default scopes for self-registered clients",
            ));
        };
        let jwks = client_rules::jwks_member(doc.jwks).map_err(invalid)?;
        let shape = ClientShape {
            name: client_rules::name(&name).map_err(field_error)?,
            redirect_uris: client_rules::redirect_uris(&redirect_uris).map_err(field_error)?,
            grant_types: client_rules::grant_types(&grant_types).map_err(field_error)?,
            allowed_scopes: client_rules::scopes(&scopes).map_err(field_error)?,
            allowed_resources: self.settings.allowed_resources.clone(),
            method,
            jwks: jwks
                .as_deref()
                .map(client_rules::jwks)
                .transpose()
                .map_err(field_error)?,
        };
        if shape.grant_types.contains(&GrantType::ClientCredentials)
            && shape.allowed_resources.is_empty()
        {
            return Err(invalid(
                "client_credentials needs a resource, and this server allows metadata-document clients none (cimd_allowed_resources)",
            ));
        }
        client_rules::check_combination(&shape).map_err(field_error)?;
        Ok(OAuthClientRecord {
            client_id: url.to_owned(),
            name: shape.name,
            secret_hash: None,
            secret_prefix: None,
            previous_secret: None,
            secret_rotated_at: None,
            redirect_uris: shape.redirect_uris,
            grant_types: shape.grant_types,
            allowed_scopes: shape.allowed_scopes,
            allowed_resources: shape.allowed_resources,
            token_endpoint_auth_method: shape.method,
            jwks: shape.jwks,
            created_at: now,
            updated_at: now,
            disabled: false,
            tokens_valid_after: None,
            origin: ClientOrigin::MetadataDocument,
            last_grant_at: None,
            skip_consent: false,
        })
    }
}

/// A field check's refusal, as a document refusal (the field named).
fn field_error(err: Error) -> CimdError {
    CimdError::Invalid(err.to_string())
}

/// Whether `host` is `pattern`, or under it for `*.suffix`.
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        None => pattern == host,
    }
}

impl Core {
    /// Whether client ids may be metadata document URLs (`cimd`).
    pub fn accepts_metadata_documents(&self) -> bool {
        self.metadata_clients.enabled()
    }

    /// The client that the metadata document at `url` describes: from
    /// the cache while fresh, else fetched and checked (one fetch from the
    /// peer's allowance, audited).
    ///
    /// # Errors
    /// Why the document is not accepted.
    pub(crate) async fn metadata_client(
        &self,
        creds: &Credentials<'_>,
        url: &str,
    ) -> Result<Arc<OAuthClientRecord>, CimdError> {
        let docs = &self.metadata_clients;
        let Some(fetcher) = &docs.fetcher else {
            return Err(CimdError::Off);
        };
        let now = self.clock.now();
        if let Some(client) = docs.cached(url, now) {
            return Ok(client);
        }
        let parsed = docs.check_url(url)?;
        let peer: Option<IpAddr> = creds.peer.map(|p| p.ip());
        if let Some(ip) = peer {
            self.limits
                .check_registration(ip)
                .map_err(CimdError::Limited)?;
        }
        let fetched = fetcher.get_json(&parsed).await?;
        let client = Arc::new(docs.client_from(url, &fetched.body, now)?);
        let freshness = fetched
            .max_age
            .map_or(DEFAULT_FRESHNESS, |s| i64::try_from(s).unwrap_or(i64::MAX))
            .min(MAX_FRESHNESS);
        if freshness > 0 {
            docs.keep(client.clone(), now.saturating_add(freshness), now);
        }
        let actor = peer.map_or_else(|| "peer:unknown".to_owned(), |ip| format!("peer:{ip}"));
        self.audit
            .record_aggregated(AuditEvent {
                actor: &actor,
                action: "client.metadata_fetched",
                target: url,
                outcome: "ok",
                request_id: creds.request_id,
            })
            .await;
        tracing::info!(client_id = %crate::untrusted::Escaped(url), freshness, "client metadata document fetched");
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients(hosts: &[&str]) -> MetadataClients {
        MetadataClients::new(
            None,
            CimdSettings {
                allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                default_scopes: vec!["tools:call".to_owned()],
                allowed_resources: vec!["https://mcp.example.com".to_owned()],
            },
        )
        .unwrap()
    }

    #[test]
    fn client_id_urls_must_be_plain_https_with_a_path() {
        let c = clients(&[]);
        assert!(c.check_url("https://app.example.com/client.json").is_ok());
        assert!(c.check_url("https://app.example.com:8443/c?v=1").is_ok());
        for bad in [
            "http://app.example.com/client.json",
            "https://app.example.com",
            "https://app.example.com/",
            "https://user@app.example.com/c.json",
            "https://app.example.com/c.json#x",
            "https://APP.example.com/c.json",
            "https://app.example.com:443/c.json",
            "https://app.example.com/a/../c.json",
            "https://app.example.com/./c.json",
            "https://app.example.com/a b",
            "not a url",
        ] {
            assert!(matches!(c.check_url(bad), Err(CimdError::Url(_))), "{bad}");
        }
    }

    #[test]
    fn the_host_allow_list_takes_names_and_suffixes() {
        let c = clients(&["app.example.com", "*.clients.example.org"]);
        assert!(c.check_url("https://app.example.com/c.json").is_ok());
        assert!(c.check_url("https://a.clients.example.org/c.json").is_ok());
        for bad in [
            "https://example.com/c.json",
            "https://clients.example.org/c.json",
            "https://evilclients.example.org/c.json",
            "https://app.example.com.evil.net/c.json",
        ] {
            assert!(
                matches!(c.check_url(bad), Err(CimdError::HostNotAllowed)),
                "{bad}"
            );
        }
    }

    #[test]
    fn documents_are_checked_member_by_member() {
        let c = clients(&[]);
        let url = "https://app.example.com/c.json";
        let doc = |v: Value| serde_json::to_vec(&v).unwrap();
        let good = serde_json::json!({
            "client_id": url, "client_name": "App",
            "redirect_uris": ["http://127.0.0.1/callback"],
        });
        let client = c.client_from(url, &doc(good.clone()), 7).unwrap();
        assert_eq!(client.client_id, url);
        assert_eq!(client.origin, ClientOrigin::MetadataDocument);
        assert_eq!(client.token_endpoint_auth_method, AuthMethod::None);
        assert_eq!(client.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(client.allowed_scopes, vec!["tools:call".to_owned()]);
        assert_eq!(client.created_at, 7);

        let with = |k: &str, v: Value| {
            let mut d = good.clone();
            d[k] = v;
            doc(d)
        };
        let without = |k: &str| {
            let mut d = good.clone();
            d.as_object_mut().unwrap().remove(k);
            doc(d)
        };
        assert!(matches!(
            c.client_from(
                url,
                &with("client_id", "https://app.example.com/other.json".into()),
                0
            ),
            Err(CimdError::Mismatch)
        ));
        assert!(matches!(
            c.client_from(url, b"[1]", 0),
            Err(CimdError::NotJson)
        ));
        assert!(matches!(
            c.client_from(url, b"{", 0),
            Err(CimdError::NotJson)
        ));
        for (bad, why) in [
            (without("client_name"), "client_name"),
            (without("redirect_uris"), "redirect_uris"),
            (
                with("redirect_uris", serde_json::json!([])),
                "redirect_uris",
            ),
            (
                with(
                    "redirect_uris",
                    serde_json::json!(["http://evil.example/cb"]),
                ),
                "redirect_uris",
            ),
            (with("client_secret", "s".into()), "client_secret"),
            (
                with("jwks_uri", "https://app.example.com/jwks".into()),
                "jwks_uri",
            ),
            (
                with("token_endpoint_auth_method", "client_secret_basic".into()),
                "none or private_key_jwt",
            ),
            (
                with("token_endpoint_auth_method", "private_key_jwt".into()),
                "jwks",
            ),
            (with("scope", "admin".into()), "allowed_scopes"),
        ] {
            match c.client_from(url, &bad, 0) {
                Err(CimdError::Invalid(msg)) => assert!(msg.contains(why), "{why}: {msg}"),
                other => panic!("{why}: {:?}", other.map(|c| c.client_id)),
            }
        }
    }
}
