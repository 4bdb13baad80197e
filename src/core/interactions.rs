//! The browser's way through an authorization: an interaction begins
//! when `/authorize` accepted a request, is bound to the browser that
//! started it (the hash of a random value the browser holds in a cookie),
//! learns who the user is (the login page, or a signed-in browser), and
//! ends with the user's decision: a code sent to the client, or
//! `access_denied`. It lives at most [`INTERACTION_LIFETIME`] seconds,
//! in the store (its transient entries, so that behind a load balancer
//! every replica of a shared store carries on an interaction another
//! began); each step is a compare-and-swap from the interaction as it was
//! read, so a step taken twice at once (a double submit, on one replica or
//! two) happens once.
//!
//! A signed-in browser holds a login session (`mcp_ls_...`, kept as its
//! hash, in the store, for `login_remember_seconds`): a second
//! authorization within that time skips the login page.
//!
//! With `login_url` set, the user signs in at the operator's application
//! instead: the interaction then carries a login challenge and moves
//! through [`DelegatedLogin`]'s states ([`super::delegated_login`] has the
//! operations).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::core::authorize::CheckedAuthorization;
use crate::core::codes::ApprovedAuthorization;
use crate::core::error::{Error, Reason};
use crate::core::transient::{Entries, Held};
use crate::core::{Core, Credentials};
use crate::secret::{Secret, SecretHash, random_base62};
use crate::store::{Store, StoreResult, Swap, TransientKind};

/// Seconds an interaction may take, from `/authorize` to the decision.
pub const INTERACTION_LIFETIME: i64 = 600;
/// Most interactions (and, separately, login sessions) held at once; twice
/// as many login challenges and verifiers.
const MAX_HELD: usize = 100_000;
/// How often a step that lost a race to another writer of its
/// interaction reads it again and retries.
const STEP_TRIES: usize = 4;
/// Prefix of a login session token.
const LOGIN_SESSION_PREFIX: &str = "mcp_ls_";
/// Prefix of a login challenge.
pub(crate) const LOGIN_CHALLENGE_PREFIX: &str = "mcp_lc_";

/// An interaction as the pages see it.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Ticket {
    /// The login challenge, for the application.
    Challenge,
    /// The login verifier, for the browser coming back.
    Verifier,
}

/// Who signed in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// A login session's entry: who, until when.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LoginSession {
    user: SignedInUser,
    until: i64,
}

/// A login challenge's or verifier's entry: its interaction, and which it
/// is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TicketEntry {
    interaction: String,
    kind: Ticket,
}

/// The interactions (by id: no secret, the browser's binding is), the
/// login sessions and the tickets (by hash), in the store.
pub(crate) struct Interactions {
    by_id: Entries<Interaction>,
    logins: Entries<LoginSession>,
    tickets: Entries<TicketEntry>,
}

impl Interactions {
    /// Those kept in `store`.
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Interactions {
            by_id: Entries::new(
                store.clone(),
                TransientKind::Interaction,
                "interaction",
                MAX_HELD,
            ),
            logins: Entries::new(
                store.clone(),
                TransientKind::LoginSession,
                "login session",
                MAX_HELD,
            ),
            tickets: Entries::new(store, TransientKind::Ticket, "login ticket", 2 * MAX_HELD),
        }
    }

    /// Stores a new interaction; `false` when too many are under way.
    async fn insert(&self, interaction: &Interaction, now: i64) -> StoreResult<bool> {
        self.by_id
            .insert(
                interaction.id.as_bytes(),
                interaction,
                interaction.expires_at,
                now,
            )
            .await
    }

    /// Interaction `id`, while it lasts, as read.
    pub(crate) async fn get(&self, id: &str, now: i64) -> StoreResult<Option<Held<Interaction>>> {
        Ok(self
            .by_id
            .get(id.as_bytes(), now)
            .await?
            .filter(|i| now < i.value.expires_at))
    }

    /// Replaces `held` with `next` (the same interaction a step further),
    /// unless it changed since it was read.
    pub(crate) async fn swap(
        &self,
        held: &Held<Interaction>,
        next: &Interaction,
    ) -> StoreResult<Swap> {
        self.by_id
            .swap(held.value.id.as_bytes(), held, next, held.value.expires_at)
            .await
    }

    /// Ends `held`, unless it changed since it was read.
    pub(crate) async fn end(&self, held: &Held<Interaction>) -> StoreResult<Swap> {
        self.by_id.remove(held.value.id.as_bytes(), held).await
    }

    /// Remembers `hash` as the `kind` ticket of interaction `id` until
    /// `until`; `false` when too many are held.
    pub(crate) async fn insert_ticket(
        &self,
        hash: &SecretHash,
        id: &str,
        kind: Ticket,
        until: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let entry = TicketEntry {
            interaction: id.to_owned(),
            kind,
        };
        self.tickets.insert(&hash.0, &entry, until, now).await
    }

    /// Forgets the `kind` ticket `hash` of interaction `id`.
    pub(crate) async fn remove_ticket(
        &self,
        hash: &SecretHash,
        id: &str,
        kind: Ticket,
    ) -> StoreResult<()> {
        let entry = TicketEntry {
            interaction: id.to_owned(),
            kind,
        };
        // Gone already is as good.
        let _ = self.tickets.remove_value(&hash.0, &entry).await?;
        Ok(())
    }

    /// The interaction id a `kind` ticket with value `value` names, while it
    /// lasts.
    pub(crate) async fn ticket(
        &self,
        value: &str,
        kind: Ticket,
        now: i64,
    ) -> StoreResult<Option<String>> {
        Ok(self
            .tickets
            .get(&SecretHash::of(value.as_bytes()).0, now)
            .await?
            .filter(|t| t.value.kind == kind)
            .map(|t| t.value.interaction))
    }

    /// Starts a login session for `user` lasting `seconds`: its token, or
    /// `None` when `seconds` is 0 or too many are held.
    ///
    /// # Errors
    /// The random source, the store.
    pub(crate) async fn start_login_session(
        &self,
        user: &SignedInUser,
        seconds: u32,
        now: i64,
    ) -> Result<Option<Secret>, Error> {
        if seconds == 0 {
            return Ok(None);
        }
        let token = Secret::new(format!("{LOGIN_SESSION_PREFIX}{}", random_base62(43)?));
        let until = now + i64::from(seconds);
        let entry = LoginSession {
            user: user.clone(),
            until,
        };
        if !self
            .logins
            .insert(&token.hash().0, &entry, until, now)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(token))
    }
}

/// The refusal of too many sign-ins under way.
pub(crate) fn too_many() -> Error {
    crate::core::limits::count_refusal("pending_sign_ins");
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
    /// The random source; RATE_LIMITED when too many are under way; the
    /// store.
    pub async fn begin_interaction(
        &self,
        request: CheckedAuthorization,
        binding: &str,
        user: Option<SignedInUser>,
    ) -> Result<Interaction, Error> {
        self.start_interaction(request, binding, user, None).await
    }

    /// Begins an interaction for `request`, bound to the browser holding
    /// `binding`, whose user signs in at the operator's application: the
    /// interaction and its login challenge (`mcp_lc_...`, kept as its
    /// hash; it ends with the interaction).
    ///
    /// # Errors
    /// The random source; RATE_LIMITED when too many are under way; the
    /// store.
    pub async fn begin_delegated_interaction(
        &self,
        request: CheckedAuthorization,
        binding: &str,
    ) -> Result<(Interaction, Secret), Error> {
        let challenge = Secret::new(format!("{LOGIN_CHALLENGE_PREFIX}{}", random_base62(43)?));
        let interaction = self
            .start_interaction(request, binding, None, Some(DelegatedLogin::Pending))
            .await?;
        let now = self.clock.now();
        let inserted = self
            .interactions
            .insert_ticket(
                &challenge.hash(),
                &interaction.id,
                Ticket::Challenge,
                interaction.expires_at,
                now,
            )
            .await?;
        if !inserted {
            let _ = self
                .interactions
                .by_id
                .remove_value(interaction.id.as_bytes(), &interaction)
                .await?;
            return Err(too_many());
        }
        Ok((interaction, challenge))
    }

    async fn start_interaction(
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
        if !self.interactions.insert(&interaction, now).await? {
            return Err(too_many());
        }
        Ok(interaction)
    }

    /// Interaction `id` of the browser holding `binding`, as read.
    async fn bound_interaction(&self, id: &str, binding: &str) -> Result<Held<Interaction>, Error> {
        let now = self.clock.now();
        match self.interactions.get(id, now).await? {
            Some(i) if i.value.is_bound_to(binding) => Ok(i),
            _ => Err(gone()),
        }
    }

    /// The interaction `id` of the browser holding `binding`.
    ///
    /// # Errors
    /// INTERACTION_INVALID when it is unknown, over, or another browser's;
    /// the store.
    pub async fn interaction(&self, id: &str, binding: &str) -> Result<Interaction, Error> {
        Ok(self.bound_interaction(id, binding).await?.value)
    }

    /// The user a login session token names, while it lasts.
    ///
    /// # Errors
    /// The store.
    pub async fn login_session_user(&self, token: &str) -> Result<Option<SignedInUser>, Error> {
        let now = self.clock.now();
        Ok(self
            .interactions
            .logins
            .get(&SecretHash::of(token.as_bytes()).0, now)
            .await?
            .filter(|l| now < l.value.until)
            .map(|l| l.value.user))
    }

    /// Ends every login session of `user_id`: each browser signed in as
    /// the user signs in again (a password change, a disabled or deleted
    /// user). Returns how many ended.
    ///
    /// # Errors
    /// The store.
    pub(crate) async fn sign_out_everywhere(&self, user_id: &str) -> Result<usize, Error> {
        let now = self.clock.now();
        let mut ended = 0;
        for (key, held) in self.interactions.logins.all(now).await? {
            if held.value.user.user_id == user_id
                && self.interactions.logins.remove(&key, &held).await? == Swap::Done
            {
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Signs the user in for interaction `id` with a built-in account;
    /// with `remember` seconds above 0, also starts a login session.
    ///
    /// # Errors
    /// INTERACTION_INVALID (also for an interaction whose user signs in at
    /// the operator's application); LOGIN_FAILED (one refusal for an
    /// unknown user, a wrong password and a disabled account, counted
    /// against the address and the username); RATE_LIMITED while either
    /// is throttled; the store.
    pub async fn sign_in(
        &self,
        creds: &Credentials<'_>,
        id: &str,
        binding: &str,
        username: &str,
        password: &str,
        remember: u32,
    ) -> Result<SignedIn, Error> {
        if self.interaction(id, binding).await?.delegated.is_some() {
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
        let signed_in = SignedInUser {
            user_id: user.user_id.clone(),
            username: user.username.clone(),
        };
        let interaction = self.set_user(id, &signed_in, now).await?;
        self.audit
            .record_aggregated(crate::core::audit::AuditEvent {
                actor: &user.user_id,
                action: "user.signed_in",
                target: &interaction.request.client.client_id,
                outcome: "ok",
                request_id: creds.request_id,
            })
            .await;
        let login_session = self
            .interactions
            .start_login_session(&signed_in, remember, now)
            .await?;
        Ok(SignedIn {
            interaction,
            remember_seconds: if login_session.is_some() { remember } else { 0 },
            login_session,
        })
    }

    /// Makes `user` the user of interaction `id`: the last of sign-ins
    /// sent at once (a double submit) is the one that stays, as each
    /// reads the interaction again after losing to another.
    async fn set_user(
        &self,
        id: &str,
        user: &SignedInUser,
        now: i64,
    ) -> Result<Interaction, Error> {
        for _ in 0..STEP_TRIES {
            let Some(held) = self.interactions.get(id, now).await? else {
                return Err(gone());
            };
            let mut next = held.value.clone();
            next.user = Some(user.clone());
            if self.interactions.swap(&held, &next).await? == Swap::Done {
                return Ok(next);
            }
        }
        Err(gone())
    }

    /// Ends interaction `id` with the signed-in user's decision: approved,
    /// a code for the client (and, with `remember`, the consent kept for
    /// next time); denied, nothing. Either way the interaction is over:
    /// of two decisions sent at once (on one replica or two), one ends it
    /// and the other finds it over.
    /// Audited as `authorization.approved` or `authorization.denied`.
    ///
    /// # Errors
    /// INTERACTION_INVALID (unknown, over, another browser's, nobody
    /// signed in, or decided already); what issuing a code refuses; the
    /// store.
    pub async fn decide(
        &self,
        creds: &Credentials<'_>,
        id: &str,
        binding: &str,
        approve: bool,
        remember: bool,
    ) -> Result<Decision, Error> {
        let held = self.bound_interaction(id, binding).await?;
        let Some(subject) = held.value.user.as_ref().map(|u| u.user_id.clone()) else {
            return Err(gone());
        };
        if self.interactions.end(&held).await? == Swap::Conflict {
            return Err(gone());
        }
        let r = held.value.request;
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
