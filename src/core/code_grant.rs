//! The token endpoint's half of the browser flow: the authorization code
//! grant (RFC 6749 section 4.1.3, with PKCE as OAuth 2.1 requires) and
//! the refresh token grant (section 6) for sessions an OAuth grant
//! started.
//!
//! A code exchange authenticates the client (a confidential one by its
//! method, a public one by `client_id` alone, PKCE being its proof),
//! spends the code ([`super::codes`]), checks that it was issued to this
//! client for this redirect URI and that the `code_verifier` matches its
//! challenge, and starts a session like CreateSession's: `client_id` the
//! OAuth client, `sub` the user, listed by ListSessions, revoked by
//! RevokeSession and with its client. A second exchange of a code is
//! refused and revokes that session.
//!
//! A refresh rotates the refresh token with the same rules (and reuse
//! detection) as RefreshSession, for the session's own client only;
//! scopes may be narrowed, never widened.

use std::sync::Arc;

use crate::core::client_auth::ClientCredential;
use crate::core::codes::{ApprovedAuthorization, CODE_LIFETIME, CodeGrant, Taken};
use crate::core::error::{Error, Reason};
use crate::core::fields::new_id;
use crate::core::pkce;
use crate::core::sessions::{IssuedSession, SessionStart};
use crate::core::{Core, Credentials};
use crate::secret::{AUTHORIZATION_CODE_PREFIX, Secret, SecretHash, random_base62};
use crate::store::{GrantType, OAuthClientRecord};
use crate::untrusted::Echo;

/// Longest code looked at, bytes.
const MAX_CODE_LEN: usize = 128;

/// What a code exchange sends besides the client's authentication.
#[derive(Clone, Copy, Debug, Default)]
pub struct CodeExchange<'a> {
    /// `code`.
    pub code: &'a str,
    /// `redirect_uri`: must be the authorization request's.
    pub redirect_uri: Option<&'a str>,
    /// `code_verifier` (PKCE).
    pub code_verifier: Option<&'a str>,
    /// `resource` (RFC 8707): one of the authorization's; may be left out
    /// when it has exactly one.
    pub resource: Option<&'a str>,
}

fn invalid_code(message: impl Into<String>) -> Error {
    Error::refused(Reason::AuthorizationCodeInvalid, message)
}

impl Core {
    /// Issues a code for what the user approved: `mcp_ac_...`, valid for
    /// 60 seconds, kept only as its hash.
    ///
    /// # Errors
    /// INVALID_ARGUMENT for a challenge that is not S256's form; the
    /// random source; RATE_LIMITED when too many codes are pending.
    pub async fn issue_authorization_code(
        &self,
        approved: ApprovedAuthorization,
    ) -> Result<Secret, Error> {
        pkce::check_challenge(Some(&approved.code_challenge), Some(pkce::S256))?;
        let now = self.clock.now();
        let code = Secret::new(format!("{AUTHORIZATION_CODE_PREFIX}{}", random_base62(43)?));
        let grant = CodeGrant {
            approved,
            expires_at: now + CODE_LIFETIME,
        };
        if !self.codes.insert(&code.hash(), grant, now).await? {
            crate::core::limits::count_refusal("pending_authorizations");
            return Err(Error::RateLimited {
                retry_after: std::time::Duration::from_secs(60),
                message: "too many authorizations are pending; retry shortly".to_owned(),
            });
        }
        Ok(code)
    }

    /// `grant_type=authorization_code`.
    ///
    /// # Errors
    /// CLIENT_AUTH_FAILED, RATE_LIMITED; GRANT_NOT_ALLOWED;
    /// AUTHORIZATION_CODE_INVALID (unknown, expired, another client's,
    /// another redirect URI); AUTHORIZATION_CODE_REUSED (its session is
    /// revoked); PKCE_FAILED; signing, storage.
    pub async fn authorization_code_grant(
        &self,
        creds: &Credentials<'_>,
        credential: &ClientCredential,
        req: CodeExchange<'_>,
    ) -> Result<IssuedSession, Error> {
        let client = self.authenticate_oauth_client(creds, credential).await?;
        require_grant(&client, GrantType::AuthorizationCode)?;
        if req.code.len() > MAX_CODE_LEN || !req.code.starts_with(AUTHORIZATION_CODE_PREFIX) {
            return Err(invalid_code(
                "malformed authorization code: expected mcp_ac_...",
            ));
        }
        let now = self.clock.now();
        let session_id = new_id("ses_")?;
        let hash = SecretHash::of(req.code.as_bytes());
        let grant = match self.codes.take(&hash, now, &session_id).await? {
            Taken::Fresh(CodeGrant { approved, .. }) => approved,
            Taken::Unknown => {
                return Err(invalid_code(
                    "unknown or expired authorization code (codes live 60 seconds and are used once)",
                ));
            }
            Taken::Spent {
                client_id,
                session_id,
            } => {
                let audit = self.audit.entry(crate::core::audit::AuditEvent {
                    actor: &client_id,
                    action: "authorization_code.reused",
                    target: &session_id,
                    outcome: Reason::AuthorizationCodeReused.as_str(),
                    request_id: creds.request_id,
                });
                let revoked = self
                    .revoke_ids(std::slice::from_ref(&session_id), audit)
                    .await?;
                tracing::warn!(%client_id, %session_id, revoked, "authorization code reused: its session is revoked");
                return Err(Error::refused(
                    Reason::AuthorizationCodeReused,
                    "this authorization code was used before: the tokens issued for it are revoked",
                ));
            }
        };
        if grant.client_id != client.client_id {
            return Err(invalid_code(
                "the authorization code was issued to another client",
            ));
        }
        if req.redirect_uri != Some(grant.redirect_uri.as_str()) {
            return Err(invalid_code(format!(
                "redirect_uri must be the authorization request's ({})",
                Echo(&grant.redirect_uri)
            )));
        }
        let audience = match (req.resource, grant.resources.as_slice()) {
            (Some(r), all) if all.iter().any(|a| a == r) => r.to_owned(),
            (Some(r), _) => {
                return Err(Error::refused(
                    Reason::ResourceNotAllowed,
                    format!("resource {} is not one this code was issued for", Echo(r)),
                ));
            }
            (None, [only]) => only.clone(),
            (None, _) => {
                return Err(Error::refused(
                    Reason::ResourceNotAllowed,
                    "name the resource: this code was issued for several",
                ));
            }
        };
        let Some(verifier) = req.code_verifier else {
            return Err(Error::refused(
                Reason::PkceFailed,
                "code_verifier is required (PKCE)",
            ));
        };
        if !pkce::verifier_matches(verifier, &grant.code_challenge) {
            return Err(Error::refused(
                Reason::PkceFailed,
                "code_verifier does not match the code_challenge of the authorization request",
            ));
        }
        let start = SessionStart {
            session_id,
            subject: grant.subject,
            client_id: client.client_id.clone(),
            scopes: grant.scopes,
            audience,
            resources: grant.resources,
            ttl: self.settings.default_ttl,
            lifetime: self.settings.max_session_lifetime,
            oauth: true,
            actor: &client.client_id,
            request_id: creds.request_id,
        };
        let issued = self.start_code_session(creds, &hash, now, start).await?;
        self.note_first_grant(&client).await?;
        Ok(issued)
    }

    /// Starts `start`, the session of the code hashing to `code`, spent by
    /// this exchange; and revokes it at once if the code was presented
    /// again meanwhile (that replay, refused, found no session to revoke
    /// yet).
    async fn start_code_session(
        &self,
        creds: &Credentials<'_>,
        code: &SecretHash,
        now: i64,
        start: SessionStart<'_>,
    ) -> Result<IssuedSession, Error> {
        let client_id = start.client_id.clone();
        let issued = self.start_session(start).await?;
        if self.codes.replayed(code, now).await? && !self.revoked_already(&issued).await? {
            let session_id = &issued.record.session_id;
            let audit = self.audit.entry(crate::core::audit::AuditEvent {
                actor: &client_id,
                action: "authorization_code.reused",
                target: session_id,
                outcome: Reason::AuthorizationCodeReused.as_str(),
                request_id: creds.request_id,
            });
            self.revoke_ids(std::slice::from_ref(session_id), audit)
                .await?;
            tracing::warn!(%client_id, %session_id, "authorization code reused while its first exchange made its session: that session is revoked");
        }
        Ok(issued)
    }

    /// Whether `issued`'s session is revoked already (by the replay, when
    /// it came after the session was stored).
    async fn revoked_already(&self, issued: &IssuedSession) -> Result<bool, Error> {
        let stored = self.store.session(&issued.record.session_id).await?;
        Ok(stored.is_some_and(|s| s.record.revoked_at.is_some()))
    }

    /// `grant_type=refresh_token`: the session's own client refreshes it
    /// (a confidential client authenticated, a public one by `client_id`),
    /// narrowing `scope` if asked.
    ///
    /// # Errors
    /// CLIENT_AUTH_FAILED, RATE_LIMITED; GRANT_NOT_ALLOWED; what
    /// RefreshSession refuses (REFRESH_TOKEN_INVALID, _REUSED,
    /// SESSION_EXPIRED, SESSION_REVOKED, NOT_SESSION_CREATOR, a widened
    /// scope as INVALID_FIELD).
    pub async fn oauth_refresh_grant(
        &self,
        creds: &Credentials<'_>,
        credential: &ClientCredential,
        refresh_token: &str,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<IssuedSession, Error> {
        let client = self.authenticate_oauth_client(creds, credential).await?;
        require_grant(&client, GrantType::RefreshToken)?;
        let scopes: Vec<String> = scope
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        // A `resource` sent must be one the session was granted, checked
        // before anything is spent; the new token is for it.
        let audience = match resource {
            None => None,
            Some(r) => {
                let granted = match crate::core::sessions::refresh_token_session(refresh_token) {
                    Some(id) => self.store.session(id).await?.map(|s| s.record),
                    None => None,
                };
                match granted {
                    Some(s) if s.audience == r || s.resources.iter().any(|g| g == r) => {
                        Some(r.to_owned())
                    }
                    Some(_) => {
                        return Err(Error::refused(
                            Reason::ResourceNotAllowed,
                            format!("resource {} was not granted to this session", Echo(r)),
                        ));
                    }
                    // An unknown refresh token: the refresh says so.
                    None => None,
                }
            }
        };
        self.refresh_as(
            creds,
            Some(&client.client_id),
            true,
            refresh_token,
            &scopes,
            audience.as_deref(),
        )
        .await
    }
}

fn require_grant(client: &Arc<OAuthClientRecord>, grant: GrantType) -> Result<(), Error> {
    if client.allows_grant(grant) {
        Ok(())
    } else {
        Err(Error::refused(
            Reason::GrantNotAllowed,
            format!(
                "client {} is not registered for {}",
                Echo(&client.client_id),
                grant.as_str()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::store::{AuthMethod, Durability, conformance};

    const RESOURCE: &str = "https://mcp.example";
    const VERIFIER: &str = "a-verifier-of-forty-three-characters-or-more-0123";

    /// A replay that comes after the first exchange spent the code but
    /// before it stored its session finds nothing to revoke; the first
    /// exchange, once its session is stored, sees the code marked replayed
    /// and revokes that session itself.
    #[tokio::test]
    async fn a_replay_while_the_first_exchange_makes_its_session_still_revokes_it() {
        let now = 1_800_000_000;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path(), Durability::Durable).unwrap();
        let mut client = conformance::oauth_client("cli_public");
        client.secret_hash = None;
        client.secret_prefix = None;
        client.token_endpoint_auth_method = AuthMethod::None;
        client.grant_types = vec![GrantType::AuthorizationCode];
        client.allowed_resources = vec![RESOURCE.to_owned()];
        store
            .insert_client(&client, conformance::entry("oauth_client.created"))
            .await
            .unwrap();
        let config = Config::for_test(dir.path()).unwrap();
        let (core, _) = Core::open(store, Clock::manual(now), &config)
            .await
            .unwrap();
        let creds = Credentials::default();
        let code = core
            .issue_authorization_code(ApprovedAuthorization {
                client_id: client.client_id.clone(),
                redirect_uri: client.redirect_uris[0].clone(),
                code_challenge: pkce::challenge_of(VERIFIER),
                subject: "alice".to_owned(),
                scopes: vec!["tools:read".to_owned()],
                resources: vec![RESOURCE.to_owned()],
            })
            .await
            .unwrap();

        // The first exchange has spent the code, its session not yet made.
        let first = new_id("ses_").unwrap();
        let Taken::Fresh(grant) = core.codes.take(&code.hash(), now, &first).await.unwrap() else {
            panic!("a fresh code");
        };
        // The replay is refused and finds no session to revoke.
        let replay = core
            .authorization_code_grant(
                &creds,
                &ClientCredential::Public {
                    client_id: client.client_id.clone(),
                },
                CodeExchange {
                    code: code.expose(),
                    redirect_uri: Some(&client.redirect_uris[0]),
                    code_verifier: Some(VERIFIER),
                    resource: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(replay.reason(), Reason::AuthorizationCodeReused, "{replay}");
        assert!(core.store.session(&first).await.unwrap().is_none());

        // The first exchange makes its session: revoked at once.
        let start = SessionStart {
            session_id: first.clone(),
            subject: grant.approved.subject,
            client_id: client.client_id.clone(),
            scopes: grant.approved.scopes,
            audience: RESOURCE.to_owned(),
            resources: grant.approved.resources,
            ttl: 300,
            lifetime: 3_600,
            oauth: true,
            actor: &client.client_id,
            request_id: "r",
        };
        let issued = core
            .start_code_session(&creds, &code.hash(), now, start)
            .await
            .unwrap();
        let stored = core.store.session(&first).await.unwrap().unwrap().record;
        assert_eq!(stored.revoked_at, Some(now));
        assert_eq!(issued.record.session_id, first);
    }
}
