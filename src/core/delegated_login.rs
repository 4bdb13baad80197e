//! Signing in at the operator's application (`login_url`), as Ory
//! Hydra's login challenge: `/authorize` sends a browser that is not
//! signed in to the application with a login challenge; the application
//! signs the user in its own way and answers over `OAuthService` (scope
//! `oauth:login`, implied by `admin`, never in a token):
//!
//! - [`Core::get_login_request`]: what the challenge is for (client,
//!   scopes, resource, where the browser will go back to);
//! - [`Core::accept_login`]: the user is `subject`; the answer is the URL
//!   the application sends the browser to, this server's
//!   [`LOGIN_CONTINUE_PATH`] with a login verifier (`mcp_lv_...`), where
//!   the same browser (its cookie) sees the consent page
//!   ([`Core::continue_login`]);
//! - [`Core::reject_login`]: the user is not signed in; the answer is the
//!   client's redirect URI with `error`, `error_description`, `state` and
//!   `iss`, and the interaction is over.
//!
//! A challenge gets one answer and a verifier one visit (each a
//! compare-and-swap of the interaction in the store, so also when two
//! replicas get them at once); both end with their interaction, and both
//! are kept only as hashes. Accepting and rejecting are audited
//! (`login.accepted`, `login.rejected`) with the caller as actor.

use crate::core::audit::AuditEvent;
use crate::core::authorize::{client_redirect_url, redirect_host};
use crate::core::error::{Error, Reason};
use crate::core::fields::{MAX_NAME_LEN, check_text};
use crate::core::interactions::{
    DelegatedLogin, Interaction, LOGIN_CHALLENGE_PREFIX, SignedIn, SignedInUser, Ticket, gone,
    too_many,
};
use crate::core::principal::{OAUTH_LOGIN, Principal};
use crate::core::transient::Held;
use crate::core::{Core, Credentials, policy};
use crate::secret::{Secret, random_base62};
use crate::store::Swap;

/// The path, under the issuer's, where the browser comes back from the
/// application after [`Core::accept_login`].
pub const LOGIN_CONTINUE_PATH: &str = "/login-continue";
/// Prefix of a login verifier.
const LOGIN_VERIFIER_PREFIX: &str = "mcp_lv_";
/// Longest login challenge or verifier looked at.
const MAX_TICKET_LEN: usize = 64;
/// Longest `error_description` of a rejection, bytes.
const MAX_ERROR_DESCRIPTION_LEN: usize = 512;
/// The `error` of a rejection that names none.
const DEFAULT_REJECT_ERROR: &str = "access_denied";
/// The `error` codes a rejection may send: RFC 6749 section 4.1.2.1's
/// and OpenID Connect Core section 3.1.2.6's that speak of the user.
pub const REJECT_ERRORS: [&str; 7] = [
    "access_denied",
    "login_required",
    "interaction_required",
    "account_selection_required",
    "consent_required",
    "temporarily_unavailable",
    "server_error",
];

/// What a login challenge asks for, for the application to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginRequest {
    /// The OAuth client that asks.
    pub client_id: String,
    /// Its name.
    pub client_name: String,
    /// The scopes it asks for.
    pub scopes: Vec<String>,
    /// The resources the tokens are for, space-separated.
    pub resource: String,
    /// The host (and port) the browser goes back to.
    pub redirect_host: String,
    /// When the challenge ends (with its interaction), Unix seconds.
    pub expires_at: i64,
}

fn challenge_invalid(message: &str) -> Error {
    Error::refused(Reason::LoginChallengeInvalid, message)
}

impl Core {
    async fn login_app(&self, creds: &Credentials<'_>) -> Result<Principal, Error> {
        let caller = self.authenticate(creds).await?;
        policy::require(&caller, OAUTH_LOGIN)?;
        Ok(caller)
    }

    /// The interaction `challenge` names, while it waits for an answer,
    /// as read; else why not (the message says whether it was answered).
    async fn pending_challenge(&self, challenge: &str) -> Result<Held<Interaction>, Error> {
        if challenge.is_empty() {
            return Err(Error::invalid("login_challenge", "must not be empty"));
        }
        let now = self.clock.now();
        let unknown = || {
            challenge_invalid(
                "unknown or expired login challenge: the user starts again from the application",
            )
        };
        if challenge.len() > MAX_TICKET_LEN || !challenge.starts_with(LOGIN_CHALLENGE_PREFIX) {
            return Err(unknown());
        }
        let id = self
            .interactions
            .ticket(challenge, Ticket::Challenge, now)
            .await?
            .ok_or_else(unknown)?;
        let interaction = self.interactions.get(&id, now).await?.ok_or_else(unknown)?;
        match &interaction.value.delegated {
            Some(DelegatedLogin::Pending) => Ok(interaction),
            Some(DelegatedLogin::Rejected) => Err(challenge_invalid(
                "this login challenge was rejected already; a challenge gets one answer",
            )),
            _ => Err(challenge_invalid(
                "this login challenge was accepted already; a challenge gets one answer",
            )),
        }
    }

    /// Moves the interaction `pending` was read as from `Pending` to
    /// `next`, unless another answer came first (on this replica or
    /// another).
    async fn answer_challenge(
        &self,
        pending: &Held<Interaction>,
        next: DelegatedLogin,
    ) -> Result<Interaction, Error> {
        let mut answered = pending.value.clone();
        answered.delegated = Some(next);
        match self.interactions.swap(pending, &answered).await? {
            Swap::Done => Ok(answered),
            Swap::Conflict => Err(challenge_invalid(
                "this login challenge was answered already; a challenge gets one answer",
            )),
        }
    }

    /// `GetLoginRequest`: what `challenge` asks for, while it waits for an
    /// answer.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED (`oauth:login`), INVALID_ARGUMENT
    /// (empty), NOT_FOUND (`LOGIN_CHALLENGE_INVALID`: unknown, expired,
    /// answered).
    pub async fn get_login_request(
        &self,
        creds: &Credentials<'_>,
        challenge: &str,
    ) -> Result<LoginRequest, Error> {
        self.login_app(creds).await?;
        let i = self.pending_challenge(challenge).await?.value;
        let r = i.request;
        Ok(LoginRequest {
            client_id: r.client.client_id.clone(),
            client_name: r.client.name.clone(),
            scopes: r.scopes,
            resource: r.resources.join(" "),
            redirect_host: redirect_host(&r.redirect_uri),
            expires_at: i.expires_at,
        })
    }

    /// `AcceptLogin`: the application signed `subject` in for `challenge`.
    /// Returns where the application sends the browser: this server's
    /// [`LOGIN_CONTINUE_PATH`] with a login verifier. `remember` seconds
    /// above 0 ask for the browser to be remembered (at most
    /// `login_remember_seconds`, when it comes back).
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT (an empty
    /// challenge; the subject as `CreateSession` checks it), NOT_FOUND
    /// (`LOGIN_CHALLENGE_INVALID`), RATE_LIMITED when too many sign-ins are
    /// under way, the random source.
    pub async fn accept_login(
        &self,
        creds: &Credentials<'_>,
        challenge: &str,
        subject: &str,
        remember: u32,
    ) -> Result<String, Error> {
        let caller = self.login_app(creds).await?;
        let pending = self.pending_challenge(challenge).await?;
        check_text("subject", subject, MAX_NAME_LEN)?;
        let verifier = Secret::new(format!("{LOGIN_VERIFIER_PREFIX}{}", random_base62(43)?));
        let now = self.clock.now();
        let (id, expires_at) = (&pending.value.id, pending.value.expires_at);
        if !self
            .interactions
            .insert_ticket(&verifier.hash(), id, Ticket::Verifier, expires_at, now)
            .await?
        {
            return Err(too_many());
        }
        let accepted = match self
            .answer_challenge(
                &pending,
                DelegatedLogin::Accepted {
                    subject: subject.to_owned(),
                    remember,
                },
            )
            .await
        {
            Ok(accepted) => accepted,
            Err(err) => {
                self.interactions
                    .remove_ticket(&verifier.hash(), id, Ticket::Verifier)
                    .await?;
                return Err(err);
            }
        };
        let target = format!(
            "subject {subject} for {}",
            accepted.request.client.client_id
        );
        self.audit
            .record(AuditEvent {
                actor: &caller.id,
                action: "login.accepted",
                target: &target,
                outcome: "ok",
                request_id: creds.request_id,
            })
            .await;
        let mut url = format!("{}{LOGIN_CONTINUE_PATH}", self.tokens.issuer());
        url.push_str("?login_verifier=");
        url.push_str(verifier.expose());
        Ok(url)
    }

    /// `RejectLogin`: the application did not sign the user in for
    /// `challenge`. The interaction is over; returns where the application
    /// sends the browser: the client's redirect URI with `error` (one of
    /// [`REJECT_ERRORS`], `access_denied` when empty),
    /// `error_description` (when given), `state` and `iss`.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT (an empty
    /// challenge, another `error`, a description that is too long or
    /// holds characters OAuth does not allow), NOT_FOUND
    /// (`LOGIN_CHALLENGE_INVALID`).
    pub async fn reject_login(
        &self,
        creds: &Credentials<'_>,
        challenge: &str,
        error: &str,
        error_description: &str,
    ) -> Result<String, Error> {
        let caller = self.login_app(creds).await?;
        let pending = self.pending_challenge(challenge).await?;
        let error = match error {
            "" => DEFAULT_REJECT_ERROR,
            e if REJECT_ERRORS.contains(&e) => e,
            _ => {
                return Err(Error::invalid(
                    "error",
                    format!(
                        "must be empty (access_denied) or one of {}",
                        REJECT_ERRORS.join(", ")
                    ),
                ));
            }
        };
        // RFC 6749 appendix A.7: %x20-21 / %x23-5B / %x5D-7E.
        if error_description.len() > MAX_ERROR_DESCRIPTION_LEN
            || !error_description
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(Error::invalid(
                "error_description",
                format!(
                    "must be at most {MAX_ERROR_DESCRIPTION_LEN} printable ASCII characters, without \" or \\"
                ),
            ));
        }
        let rejected = self
            .answer_challenge(&pending, DelegatedLogin::Rejected)
            .await?;
        let r = &rejected.request;
        let mut params = vec![("error", error)];
        if !error_description.is_empty() {
            params.push(("error_description", error_description));
        }
        if let Some(state) = r.state.as_deref() {
            params.push(("state", state));
        }
        let url = client_redirect_url(&r.redirect_uri, &params, self.tokens.issuer()).ok_or_else(
            || Error::invalid("redirect_uri", "the client's redirect URI cannot be parsed"),
        )?;
        let target = format!("{} ({error})", r.client.client_id);
        self.audit
            .record(AuditEvent {
                actor: &caller.id,
                action: "login.rejected",
                target: &target,
                outcome: "ok",
                request_id: creds.request_id,
            })
            .await;
        Ok(url)
    }

    /// The browser holding `binding` comes back from the application with
    /// `verifier`: the accepted subject becomes the interaction's user
    /// (the consent page comes next) and, when the application asked for
    /// it and `remember_cap` (`login_remember_seconds`) allows, a login
    /// session starts for at most `remember_cap` seconds.
    ///
    /// # Errors
    /// INTERACTION_INVALID: the verifier is unknown, over or used (also
    /// when the same verifier comes twice at once, on one replica or two:
    /// one continues), or the interaction is another browser's; the random
    /// source; the store.
    pub async fn continue_login(
        &self,
        verifier: &str,
        binding: &str,
        remember_cap: u32,
    ) -> Result<SignedIn, Error> {
        let now = self.clock.now();
        if verifier.len() > MAX_TICKET_LEN || !verifier.starts_with(LOGIN_VERIFIER_PREFIX) {
            return Err(gone());
        }
        let id = self
            .interactions
            .ticket(verifier, Ticket::Verifier, now)
            .await?
            .ok_or_else(gone)?;
        let continued_already = || {
            Error::refused(
                Reason::InteractionInvalid,
                "this sign-in was continued already: start again from the application",
            )
        };
        let held = match self.interactions.get(&id, now).await? {
            Some(i) if i.value.is_bound_to(binding) => i,
            _ => return Err(gone()),
        };
        let Some(DelegatedLogin::Accepted { subject, remember }) = held.value.delegated.clone()
        else {
            return Err(continued_already());
        };
        let mut interaction = held.value.clone();
        interaction.user = Some(SignedInUser {
            user_id: subject.clone(),
            username: subject,
        });
        interaction.delegated = Some(DelegatedLogin::Continued);
        if self.interactions.swap(&held, &interaction).await? == Swap::Conflict {
            return Err(continued_already());
        }
        let seconds = remember.min(remember_cap);
        let login_session = match &interaction.user {
            Some(user) => {
                self.interactions
                    .start_login_session(user, seconds, now)
                    .await?
            }
            None => None,
        };
        Ok(SignedIn {
            interaction,
            remember_seconds: if login_session.is_some() { seconds } else { 0 },
            login_session,
        })
    }
}
