//! The browser's way through an authorization: an interaction begins
//! when `/authorize` accepted a request, is bound to the browser that
//! started it (the hash of a random value the browser holds in a cookie),
//! learns who the user is (the login page, or a signed-in browser), and
//! ends with the user's decision: a code sent to the client, or
//! `access_denied`. It lives at most [`INTERACTION_LIFETIME`] seconds,
//! in memory (a restart forgets it: the user starts again from the
//! application).
//!
//! A signed-in browser holds a login session (`mcp_ls_...`, kept as its
//! hash, in memory, for `login_remember_seconds`): a second authorization
//! within that time skips the login page.
//!
//! With `login_url` set, the user signs in at the operator's application
//! instead: the interaction then carries a login challenge and moves
//! through [`DelegatedLogin`]'s states ([`super::delegated_login`] has the
//! operations).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::core::authorize::CheckedAuthorization;
use crate::core::codes::ApprovedAuthorization;
use crate::core::error::{Error, Reason};
use crate::core::{Core, Credentials};
use crate::secret::{Secret, SecretHash, random_base62};

/// Seconds an interaction may take, from `/authorize` to the decision.
pub const INTERACTION_LIFETIME: i64 = 600;
/// Most interactions (and, separately, login sessions) held at once.
const MAX_HELD: usize = 100_000;
/// Prefix of a login session token.
const LOGIN_SESSION_PREFIX: &str = "mcp_ls_";
/// Prefix of a login challenge.
pub(crate) const LOGIN_CHALLENGE_PREFIX: &str = "mcp_lc_";

/// An interaction as the pages see it.
#[derive(Clone, Debug)]
pub struct Interaction {
    /// Its id (`ia_...`), carried by the pages' forms.
    pub id: String,
    /// The authorization request.
    pub request: CheckedAuthorization,
    /// The signed-in user, once known.
    pub user: Option<SignedInUser>,
    /// When it ends.
    pub expires_at: i64,
    binding: SecretHash,
    /// Where a sign-in at the operator's application stands; `None` for
    /// the built-in sign-in page.
    pub(crate) delegated: Option<DelegatedLogin>,
}

impl Interaction {
    /// Whether `binding` is the value of the browser that began it.
    pub(crate) fn is_bound_to(&self, binding: &str) -> bool {
        self.binding == SecretHash::of(binding.as_bytes())
    }
}

/// Where a sign-in delegated to the operator's application stands. Each
/// step happens once: the challenge gets one answer, the verifier one
/// visit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DelegatedLogin {
    /// The browser went to the application; no answer yet.
    Pending,
    /// The application signed `subject` in; the browser has yet to come
    /// back with the verifier.
    Accepted {
        /// The user, as the application names them.
        subject: String,
        /// Seconds the application asked the browser to be remembered.
        remember: u32,
    },
    /// The browser came back: the interaction goes on to consent.
    Continued,
    /// The application refused to sign the user in.
    Rejected,
}

/// What a one-use value of a delegated sign-in opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ticket {
    /// The login challenge, for the application.
    Challenge,
    /// The login verifier, for the browser coming back.
    Verifier,
}

/// Who signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedInUser {
    /// The user id: the tokens' `sub`.
    pub user_id: String,
    /// The name to show.
    pub username: String,
}

/// How an interaction ended.
#[derive(Debug)]
pub struct Decision {
    /// Where the browser goes.
    pub redirect_uri: String,
    /// The request's `state`.
    pub state: Option<String>,
    /// The code (approved), or `None` (denied).
    pub code: Option<Secret>,
}

/// A user's sign-in, for the browser to keep.
#[derive(Debug)]
pub struct SignedIn {
    /// The interaction, now with its subject.
    pub interaction: Interaction,
    /// A login session token to remember the user by, when remembering is
    /// on.
    pub login_session: Option<Secret>,
    /// Seconds the login session lasts (0 without one).
    pub remember_seconds: u32,
}

#[derive(Default)]
pub(crate) struct Interactions {
    pub(crate) by_id: Mutex<HashMap<String, Interaction>>,
    logins: Mutex<HashMap<[u8; 32], (SignedInUser, i64)>>,
    /// Hashes of login challenges and verifiers → (interaction id, what it
    /// is, when it ends).
    tickets: Mutex<HashMap<[u8; 32], (String, Ticket, i64)>>,
}

impl Interactions {
    fn insert(&self, interaction: Interaction, now: i64) -> bool {
        let mut map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_HELD {
            map.retain(|_, i| now < i.expires_at);
            if map.len() >= MAX_HELD {
                return false;
            }
        }
        map.insert(interaction.id.clone(), interaction);
        true
    }

    /// Drops what has ended (maintenance).
    pub fn evict(&self, now: i64) {
        self.by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, i| now < i.expires_at);
        self.logins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, until)| now < *until);
        self.tickets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, _, until)| now < *until);
    }

    /// Remembers `hash` as the `kind` ticket of interaction `id` until
    /// `until`; `false` when too many are held.
    pub(crate) fn insert_ticket(
        &self,
        hash: SecretHash,
        id: &str,
        kind: Ticket,
        until: i64,
        now: i64,
    ) -> bool {
        let mut map = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= 2 * MAX_HELD {
            map.retain(|_, (_, _, end)| now < *end);
            if map.len() >= 2 * MAX_HELD {
                return false;
            }
        }
        map.insert(hash.0, (id.to_owned(), kind, until));
        true
    }

    /// Forgets the ticket `hash`.
    pub(crate) fn remove_ticket(&self, hash: &SecretHash) {
        self.tickets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&hash.0);
    }

    /// The interaction id a `kind` ticket with value `value` names, while it
    /// lasts.
    pub(crate) fn ticket(&self, value: &str, kind: Ticket, now: i64) -> Option<String> {
        let map = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&SecretHash::of(value.as_bytes()).0)
            .filter(|(_, k, until)| *k == kind && now < *until)
            .map(|(id, _, _)| id.clone())
    }

    /// Starts a login session for `user` lasting `seconds`: its token, or
    /// `None` when `seconds` is 0 or too many are held.
    ///
    /// # Errors
    /// The random source.
    pub(crate) fn start_login_session(
        &self,
        user: &SignedInUser,
        seconds: u32,
        now: i64,
    ) -> Result<Option<Secret>, Error> {
        if seconds == 0 {
            return Ok(None);
        }
        let token = Secret::new(format!("{LOGIN_SESSION_PREFIX}{}", random_base62(43)?));
        let mut logins = self.logins.lock().unwrap_or_else(|p| p.into_inner());
        if logins.len() >= MAX_HELD {
            logins.retain(|_, (_, until)| now < *until);
        }
        if logins.len() >= MAX_HELD {
            return Ok(None);
        }
        logins.insert(token.hash().0, (user.clone(), now + i64::from(seconds)));
        Ok(Some(token))
    }
}

/// The refusal of too many sign-ins under way.
pub(crate) fn too_many() -> Error {
    Error::RateLimited {
        retry_after: std::time::Duration::from_secs(60),
        message: "too many sign-ins are under way; retry shortly".to_owned(),
    }
}

pub(crate) fn gone() -> Error {
    Error::refused(
        Reason::InteractionInvalid,
        "this sign-in has expired or was started in another browser: start again from the application",
    )
}

impl Core {
    /// Begins an interaction for `request`, bound to the browser holding
    /// `binding`; `user` when the browser is signed in already.
    ///
    /// # Errors
    /// The random source; RATE_LIMITED when too many are under way.
    pub fn begin_interaction(
        &self,
        request: CheckedAuthorization,
        binding: &str,
        user: Option<SignedInUser>,
    ) -> Result<Interaction, Error> {
        self.start_interaction(request, binding, user, None)
    }

    /// Begins an interaction for `request`, bound to the browser holding
    /// `binding`, whose user signs in at the operator's application: the
    /// interaction and its login challenge (`mcp_lc_...`, kept as its
    /// hash; it ends with the interaction).
    ///
    /// # Errors
    /// The random source; RATE_LIMITED when too many are under way.
    pub fn begin_delegated_interaction(
        &self,
        request: CheckedAuthorization,
        binding: &str,
    ) -> Result<(Interaction, Secret), Error> {
        let challenge = Secret::new(format!("{LOGIN_CHALLENGE_PREFIX}{}", random_base62(43)?));
        let interaction =
            self.start_interaction(request, binding, None, Some(DelegatedLogin::Pending))?;
        let now = self.clock.now();
        if !self.interactions.insert_ticket(
            challenge.hash(),
            &interaction.id,
            Ticket::Challenge,
            interaction.expires_at,
            now,
        ) {
            self.interactions
                .by_id
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&interaction.id);
            return Err(too_many());
        }
        Ok((interaction, challenge))
    }

    fn start_interaction(
        &self,
        request: CheckedAuthorization,
        binding: &str,
        user: Option<SignedInUser>,
        delegated: Option<DelegatedLogin>,
    ) -> Result<Interaction, Error> {
        let now = self.clock.now();
        let interaction = Interaction {
            id: format!("ia_{}", random_base62(43)?),
            request,
            user,
            expires_at: now + INTERACTION_LIFETIME,
            binding: SecretHash::of(binding.as_bytes()),
            delegated,
        };
        if !self.interactions.insert(interaction.clone(), now) {
            return Err(too_many());
        }
        Ok(interaction)
    }

    /// The interaction `id` of the browser holding `binding`.
    ///
    /// # Errors
    /// INTERACTION_INVALID when it is unknown, over, or another browser's.
    pub fn interaction(&self, id: &str, binding: &str) -> Result<Interaction, Error> {
        let now = self.clock.now();
        let map = self
            .interactions
            .by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match map.get(id) {
            Some(i) if now < i.expires_at && i.is_bound_to(binding) => Ok(i.clone()),
            _ => Err(gone()),
        }
    }

    /// The user a login session token names, while it lasts.
    pub fn login_session_user(&self, token: &str) -> Option<SignedInUser> {
        let now = self.clock.now();
        let logins = self
            .interactions
            .logins
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        logins
            .get(&SecretHash::of(token.as_bytes()).0)
            .filter(|(_, until)| now < *until)
            .map(|(user, _)| user.clone())
    }

    /// Ends every login session of `user_id`: each browser signed in as
    /// the user signs in again (a password change, a disabled or deleted
    /// user). Returns how many ended.
    pub(crate) fn sign_out_everywhere(&self, user_id: &str) -> usize {
        let mut logins = self
            .interactions
            .logins
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let before = logins.len();
        logins.retain(|_, (user, _)| user.user_id != user_id);
        before - logins.len()
    }

    /// Signs the user in for interaction `id` with a built-in account;
    /// with `remember` seconds above 0, also starts a login session.
    ///
    /// # Errors
    /// INTERACTION_INVALID (also for an interaction whose user signs in at
    /// the operator's application); LOGIN_FAILED (one refusal for an
    /// unknown user, a wrong password and a disabled account, counted
    /// against the address and the username); RATE_LIMITED while either
    /// is throttled.
    pub async fn sign_in(
        &self,
        creds: &Credentials<'_>,
        id: &str,
        binding: &str,
        username: &str,
        password: &str,
        remember: u32,
    ) -> Result<SignedIn, Error> {
        if self.interaction(id, binding)?.delegated.is_some() {
            return Err(gone());
        }
        if let Some(peer) = creds.peer {
            self.limits.check_peer(peer.ip())?;
        }
        let account = username.trim().to_lowercase();
        let account: String = account.chars().take(64).collect();
        self.limits.check_account(&account)?;
        let user = match self.check_password(username, password).await {
            Ok(user) => user,
            Err(err) => {
                if err.reason() == Reason::LoginFailed {
                    self.limits.record_account_failure(&account);
                }
                return Err(self.refused_credential(creds, "login", err).await);
            }
        };
        let now = self.clock.now();
        let interaction = {
            let mut map = self
                .interactions
                .by_id
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let Some(i) = map.get_mut(id).filter(|i| now < i.expires_at) else {
                return Err(gone());
            };
            i.user = Some(SignedInUser {
                user_id: user.user_id.clone(),
                username: user.username.clone(),
            });
            i.clone()
        };
        self.audit
            .record_aggregated(crate::core::audit::AuditEvent {
                actor: &user.user_id,
                action: "user.signed_in",
                target: &interaction.request.client.client_id,
                outcome: "ok",
                request_id: creds.request_id,
            })
            .await;
        let signed_in = SignedInUser {
            user_id: user.user_id.clone(),
            username: user.username.clone(),
        };
        let login_session = self
            .interactions
            .start_login_session(&signed_in, remember, now)?;
        Ok(SignedIn {
            interaction,
            remember_seconds: if login_session.is_some() { remember } else { 0 },
            login_session,
        })
    }

    /// Ends interaction `id` with the signed-in user's decision: approved,
    /// a code for the client (and, with `remember`, the consent kept for
    /// next time); denied, nothing. Either way the interaction is over.
    /// Audited as `authorization.approved` or `authorization.denied`.
    ///
    /// # Errors
    /// INTERACTION_INVALID (unknown, over, another browser's, or nobody
    /// signed in); what issuing a code refuses.
    pub async fn decide(
        &self,
        creds: &Credentials<'_>,
        id: &str,
        binding: &str,
        approve: bool,
        remember: bool,
    ) -> Result<Decision, Error> {
        let interaction = self.interaction(id, binding)?;
        let Some(subject) = interaction.user.as_ref().map(|u| u.user_id.clone()) else {
            return Err(gone());
        };
        self.interactions
            .by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let r = interaction.request;
        let action = if approve {
            "authorization.approved"
        } else {
            "authorization.denied"
        };
        let target = format!("{} for {}", r.client.client_id, r.resources.join(" "));
        self.audit
            .record_aggregated(crate::core::audit::AuditEvent {
                actor: &subject,
                action,
                target: &target,
                outcome: "ok",
                request_id: creds.request_id,
            })
            .await;
        if approve && remember {
            self.remember_consent(
                &subject,
                &r.client.client_id,
                &r.scopes,
                &r.resources,
                creds.request_id,
            )
            .await?;
        }
        let code = if approve {
            Some(
                self.issue_authorization_code(ApprovedAuthorization {
                    client_id: r.client.client_id.clone(),
                    redirect_uri: r.redirect_uri.clone(),
                    code_challenge: r.code_challenge,
                    subject,
                    scopes: r.scopes,
                    resources: r.resources,
                })
                .await?,
            )
        } else {
            None
        };
        Ok(Decision {
            redirect_uri: r.redirect_uri,
            state: r.state,
            code,
        })
    }
}
