//! `VerifyToken`: the verdict on a token an MCP server received from its
//! caller, an access token (a JWT this server signed) or an API key
//! (`mcp_sk_...`); and the verdict on access tokens alone, which
//! introspection and revocation at the HTTP endpoints share.
//!
//! Service scopes (`admin`, `keys:admin`, ...) govern this service, not
//! an MCP server: they are never among the scopes a verdict answers, and a
//! required scope that is one is never satisfied. A refused API key counts
//! against the address of the MCP server's caller, as a failed
//! authentication at this service would (see [`Core::count_failure`]).

use std::net::IpAddr;
use std::sync::Arc;

use metrics::Counter;

use crate::core::api_keys::{ApiKeyEntry, KeyRefusal};
use crate::core::authn::FailedAuthentication;
use crate::core::error::Error;
use crate::core::fields::MAX_NAME_LEN;
use crate::core::principal::{TOKENS_VERIFY, is_service_scope, parse_scopes};
use crate::core::{Core, Credentials, policy};
use crate::secret::API_KEY_PREFIX;
use crate::telemetry::{self, Family};
use crate::token::{AccessClaims, TokenReason};

/// Longest `client_address` looked at (the longest IPv6 text is 45).
const MAX_ADDRESS_LEN: usize = 64;

/// What VerifyToken asks.
#[derive(Clone, Copy, Debug)]
pub struct TokenCheck<'a> {
    /// The token: an access token or an API key.
    pub token: &'a str,
    /// The audience an access token must have; empty for any. API keys
    /// are not bound to an audience.
    pub audience: &'a str,
    /// Scopes it must carry.
    pub required_scopes: &'a [String],
    /// The IP address of the MCP server's own caller, as text; empty if
    /// unknown.
    pub client_address: &'a str,
}

/// What kind of credential a token is, by its form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A signed access token (a JWT).
    AccessToken,
    /// An API key (`mcp_sk_...`).
    ApiKey,
}

impl TokenKind {
    /// The kind `token` is of: an API key if it has the API-key prefix,
    /// else an access token (well-formed or not).
    pub fn of(token: &str) -> TokenKind {
        if token.starts_with(API_KEY_PREFIX) {
            TokenKind::ApiKey
        } else {
            TokenKind::AccessToken
        }
    }
}

/// Why a token is not active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InactiveReason {
    /// Past its expiry (an access token's `exp`, or its lifetime is longer
    /// than the maximum; an API key's `expires_at`).
    Expired,
    /// Revoked: the access token's session, the token itself or its OAuth
    /// client; or the API key.
    Revoked,
    /// An access token whose signature does not verify.
    BadSignature,
    /// Not an access token's form.
    Malformed,
    /// An access token for another audience than the one asked for.
    WrongAudience,
    /// It lacks a required scope (or a required scope is a service scope).
    InsufficientScope,
    /// An access token before its `nbf`.
    NotYetValid,
    /// An access token signed by no key of the ring.
    UnknownKey,
    /// An access token of another issuer.
    WrongIssuer,
    /// An API key this server never issued, or not of an API key's form.
    UnknownApiKey,
    /// An API key's previous secret, after its grace period.
    RotatedOut,
}

impl InactiveReason {
    /// Its name, as `TokenReason` in the protocol spells it (`EXPIRED`).
    pub fn as_str(self) -> &'static str {
        match self {
            InactiveReason::Expired => "EXPIRED",
            InactiveReason::Revoked => "REVOKED",
            InactiveReason::BadSignature => "BAD_SIGNATURE",
            InactiveReason::Malformed => "MALFORMED",
            InactiveReason::WrongAudience => "WRONG_AUDIENCE",
            InactiveReason::InsufficientScope => "INSUFFICIENT_SCOPE",
            InactiveReason::NotYetValid => "NOT_YET_VALID",
            InactiveReason::UnknownKey => "UNKNOWN_KEY",
            InactiveReason::WrongIssuer => "WRONG_ISSUER",
            InactiveReason::UnknownApiKey => "UNKNOWN_API_KEY",
            InactiveReason::RotatedOut => "ROTATED_OUT",
        }
    }
}

impl TokenKind {
    /// Its name as a metrics label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            TokenKind::AccessToken => "access_token",
            TokenKind::ApiKey => "api_key",
        }
    }
}

/// Counts one verdict at `endpoint` (`verify_token`, `introspect`) on a
/// token of `kind`: `ACTIVE`, or the reason it is not.
pub(crate) fn count_verdict(endpoint: &'static str, kind: TokenKind, reason: &'static str) {
    static VERDICTS: Family<Counter, 3> =
        Family::counters(telemetry::TOKEN_VERDICTS, ["endpoint", "kind", "reason"]);
    VERDICTS.increment([endpoint, kind.label(), reason]);
}

impl From<TokenReason> for InactiveReason {
    fn from(r: TokenReason) -> Self {
        match r {
            TokenReason::Expired => InactiveReason::Expired,
            TokenReason::Revoked => InactiveReason::Revoked,
            TokenReason::BadSignature => InactiveReason::BadSignature,
            TokenReason::Malformed => InactiveReason::Malformed,
            TokenReason::WrongAudience => InactiveReason::WrongAudience,
            TokenReason::InsufficientScope => InactiveReason::InsufficientScope,
            TokenReason::NotYetValid => InactiveReason::NotYetValid,
            TokenReason::UnknownKey => InactiveReason::UnknownKey,
            TokenReason::WrongIssuer => InactiveReason::WrongIssuer,
        }
    }
}

impl From<&KeyRefusal> for InactiveReason {
    fn from(r: &KeyRefusal) -> Self {
        match r {
            KeyRefusal::Malformed | KeyRefusal::Unknown => InactiveReason::UnknownApiKey,
            KeyRefusal::Revoked(_) => InactiveReason::Revoked,
            KeyRefusal::Expired(_) => InactiveReason::Expired,
            KeyRefusal::RotatedOut(_) => InactiveReason::RotatedOut,
        }
    }
}

/// The claims of an active token, as VerifyToken answers them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedClaims {
    /// Who the token speaks for: an access token's `sub`; an API key's id.
    pub subject: String,
    /// Its application scopes (never a service scope).
    pub scopes: Vec<String>,
    /// An access token's `aud`; empty for an API key.
    pub audience: String,
    /// An access token's session; empty for an API key.
    pub session_id: String,
    /// The credential or OAuth client that started the session; an API
    /// key's own id.
    pub client_id: String,
    /// Unix seconds: an access token's `iat`; when an API key was created.
    pub issued_at: i64,
    /// Unix seconds: an access token's `exp`; an API key's expiry (0
    /// never).
    pub expires_at: i64,
    /// This server's issuer (an access token's `iss`).
    pub issuer: String,
}

/// VerifyToken's answer: what the token is, and its claims or why it is
/// not active.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The token's kind, by its form (also for an inactive token).
    pub kind: TokenKind,
    /// The claims of an active token, or why it is not active.
    pub claims: Result<VerifiedClaims, InactiveReason>,
}

/// The scopes of `scopes` that are the application's (not this service's).
fn application_scopes<'a>(scopes: impl Iterator<Item = &'a str>) -> Vec<String> {
    scopes
        .filter(|s| !is_service_scope(s))
        .map(str::to_owned)
        .collect()
}

/// Whether `held` satisfies every scope of `required`; a service scope
/// never does.
fn satisfies<'a, I: Iterator<Item = &'a str>>(required: &[String], held: impl Fn() -> I) -> bool {
    required
        .iter()
        .all(|want| !is_service_scope(want) && held().any(|have| have == want))
}

/// The claims VerifyToken answers for an active access token.
fn access_token_claims(c: &AccessClaims) -> VerifiedClaims {
    VerifiedClaims {
        subject: c.sub.clone(),
        scopes: application_scopes(c.scopes()),
        audience: c.aud.clone(),
        session_id: c.session_id().to_owned(),
        client_id: c.client_id.clone(),
        issued_at: c.iat,
        expires_at: c.exp,
        issuer: c.iss.clone(),
    }
}

/// The `client_address` of a request: `None` when empty.
///
/// # Errors
/// INVALID_ARGUMENT naming `client_address` when it is not an IP address.
pub(crate) fn client_address(text: &str) -> Result<Option<IpAddr>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || {
        Error::invalid(
            "client_address",
            "must be an IP address (e.g. 203.0.113.7 or 2001:db8::7), without a port",
        )
    };
    if text.len() > MAX_ADDRESS_LEN {
        return Err(bad());
    }
    let ip: IpAddr = text.parse().map_err(|_| bad())?;
    // An IPv4 address mapped into IPv6 is that IPv4 address: one
    // allowance for both spellings.
    Ok(Some(ip.to_canonical()))
}

impl Core {
    /// `VerifyToken`: needs `tokens:verify`. An API key (`mcp_sk_...`) is
    /// active while it is neither revoked nor expired, for its current
    /// secret or, within its grace period, the one it was rotated from; it
    /// is not bound to an audience. An access token is active as
    /// [`Core::token_verdict`] decides.
    ///
    /// A refused API key counts against `client_address` as a failed
    /// authentication; while that address is throttled, a refused API key
    /// from it is RATE_LIMITED instead. A good API key is always answered.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT,
    /// RESOURCE_EXHAUSTED (`RATE_LIMITED`).
    pub async fn verify_token(
        &self,
        creds: &Credentials<'_>,
        check: TokenCheck<'_>,
    ) -> Result<Verdict, Error> {
        let caller = self.authenticate(creds).await?;
        policy::require(&caller, TOKENS_VERIFY)?;
        if check.audience.len() > MAX_NAME_LEN {
            return Err(Error::invalid(
                "audience",
                format!("must be at most {MAX_NAME_LEN} bytes"),
            ));
        }
        let required = parse_scopes("required_scopes", check.required_scopes, true)?;
        let address = client_address(check.client_address)?;
        let kind = TokenKind::of(check.token);
        let claims = match kind {
            TokenKind::AccessToken => self
                .token_verdict(check.token, check.audience, &required)
                .map(|c| access_token_claims(&c))
                .map_err(InactiveReason::from),
            TokenKind::ApiKey => match self.keys.check(check.token, self.clock.now()) {
                Ok(entry) => self.api_key_claims(&entry, &required),
                Err(refusal) => {
                    let actor = match address {
                        Some(ip) => format!("peer:{ip}"),
                        None => "peer:unknown".to_owned(),
                    };
                    self.count_failure(FailedAuthentication {
                        address,
                        actor: &actor,
                        what: "api key, at VerifyToken",
                        reason: refusal.reason(),
                        request_id: creds.request_id,
                    })
                    .await?;
                    Err(InactiveReason::from(&refusal))
                }
            },
        };
        let reason = claims.as_ref().map_or_else(|r| r.as_str(), |_| "ACTIVE");
        count_verdict("verify_token", kind, reason);
        Ok(Verdict { kind, claims })
    }

    /// The claims of the good API key `entry`, if it holds `required`.
    pub(crate) fn api_key_claims(
        &self,
        entry: &ApiKeyEntry,
        required: &[String],
    ) -> Result<VerifiedClaims, InactiveReason> {
        if !satisfies(required, || entry.scopes.iter().map(String::as_str)) {
            return Err(InactiveReason::InsufficientScope);
        }
        Ok(VerifiedClaims {
            subject: entry.id.to_string(),
            scopes: application_scopes(entry.scopes.iter().map(String::as_str)),
            audience: String::new(),
            session_id: String::new(),
            client_id: entry.id.to_string(),
            issued_at: entry.record.created_at,
            expires_at: entry.record.expires_at,
            issuer: self.tokens.issuer().to_owned(),
        })
    }

    /// The verdict on the access token `token` at the server's time: its
    /// claims if it is well-formed, signed by a key of the ring, in its
    /// time window, not revoked, for `audience` (empty: any) and carrying
    /// `required` (a service scope never counts as carried).
    pub(crate) fn token_verdict(
        &self,
        token: &str,
        audience: &str,
        required: &[String],
    ) -> Result<Arc<AccessClaims>, TokenReason> {
        self.tokens
            .verify(token, self.clock.now())
            .and_then(|claims| {
                if self.revocations.is_revoked(&claims) {
                    Err(TokenReason::Revoked)
                } else if !audience.is_empty() && claims.aud != audience {
                    Err(TokenReason::WrongAudience)
                } else if !satisfies(required, || claims.scopes()) {
                    Err(TokenReason::InsufficientScope)
                } else {
                    Ok(claims)
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::store::{Durability, SessionRecord};

    /// An access token that carries service scopes (which no request can
    /// get; signed here directly) answers without them, and never
    /// satisfies one.
    #[tokio::test]
    async fn service_scopes_in_an_access_token_count_for_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_800_000_000;
        let config = Config::for_test(dir.path()).unwrap();
        let store = crate::store::open(dir.path(), Durability::Durable).unwrap();
        let (core, primary) = Core::open(store, Clock::manual(now), &config)
            .await
            .unwrap();
        let session = SessionRecord {
            session_id: "ses_0000000000000000000000".to_owned(),
            subject: "alice".to_owned(),
            client_id: "key_x".to_owned(),
            scopes: vec!["tools:read".to_owned(), "admin".to_owned()],
            audience: "aud".to_owned(),
            created_at: now,
            expires_at: now + 60,
            revoked_at: None,
            session_expires_at: now + 60,
            last_refreshed_at: now,
            token_ttl: 60,
            oauth: false,
            resources: Vec::new(),
            refresh_tokens: vec![],
        };
        let token = core
            .tokens
            .issue(&session, &session.scopes, now, now + 60)
            .unwrap();
        let admin = format!("Bearer {}", primary.unwrap().expose());
        let creds = Credentials {
            authorization: Some(&admin),
            authorization_count: 1,
            ..Credentials::default()
        };
        let admin_scope = ["admin".to_owned()];
        for (required, want) in [
            (&[][..], Ok(vec!["tools:read".to_owned()])),
            (&admin_scope[..], Err(InactiveReason::InsufficientScope)),
        ] {
            let check = TokenCheck {
                token: &token,
                audience: "",
                required_scopes: required,
                client_address: "",
            };
            let v = core.verify_token(&creds, check).await.unwrap();
            assert_eq!(v.kind, TokenKind::AccessToken);
            assert_eq!(v.claims.map(|c| c.scopes), want);
        }
    }

    #[test]
    fn the_kind_is_the_form() {
        assert_eq!(TokenKind::of("mcp_sk_abc"), TokenKind::ApiKey);
        assert_eq!(TokenKind::of("mcp_sk_"), TokenKind::ApiKey);
        assert_eq!(TokenKind::of("a.b.c"), TokenKind::AccessToken);
        assert_eq!(TokenKind::of(""), TokenKind::AccessToken);
        assert_eq!(TokenKind::of("mcp_rt_abc"), TokenKind::AccessToken);
    }

    #[test]
    fn service_scopes_are_never_the_applications() {
        let held = ["tools:read", "admin", "tokens:verify"];
        assert_eq!(application_scopes(held.into_iter()), ["tools:read"]);
        let want = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(satisfies(&want(&["tools:read"]), || held.into_iter()));
        assert!(satisfies(&want(&[]), || held.into_iter()));
        assert!(!satisfies(&want(&["admin"]), || held.into_iter()));
        assert!(!satisfies(&want(&["tokens:verify"]), || held.into_iter()));
        assert!(!satisfies(&want(&["tools:call"]), || held.into_iter()));
    }

    #[test]
    fn client_addresses_are_ip_addresses() {
        assert_eq!(client_address("").unwrap(), None);
        assert_eq!(
            client_address("203.0.113.7").unwrap(),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            client_address("::ffff:203.0.113.7").unwrap(),
            Some("203.0.113.7".parse().unwrap()),
            "one allowance for both spellings"
        );
        assert_eq!(
            client_address("2001:db8::7").unwrap(),
            Some("2001:db8::7".parse().unwrap())
        );
        for bad in ["203.0.113.7:443", "localhost", "[::1]", " 1.2.3.4", "x"] {
            match client_address(bad) {
                Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "client_address"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
