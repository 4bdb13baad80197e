//! Every OAuth client in memory, by id, so authenticating a client at the
//! token endpoint reads memory, not the store: loaded at start and kept in
//! step by the core's own writes. The check of a client secret lives here:
//! hashed where it lies, compared in constant time with the current
//! secret and with a rotated-out one still in its grace period.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::secret::SecretHash;
use crate::store::{AuthMethod, OAuthClientRecord};

/// Longest client secret hashed and compared.
const MAX_SECRET_LEN: usize = 256;

/// Why a client could not be authenticated with a secret. Every case is
/// `invalid_client` to the client (RFC 6749 section 5.2); the case is for
/// logs and the audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientAuthError {
    /// No client has this id.
    #[error("unknown client")]
    UnknownClient,
    /// The client is registered with another authentication method than
    /// the one the request used (or one without a secret).
    #[error("the client does not authenticate this way")]
    WrongMethod,
    /// The secret is neither the current one nor a rotated-out one.
    #[error("wrong client secret")]
    WrongSecret,
    /// The secret was rotated out and its grace period has ended.
    #[error("this client secret was rotated out and its grace period has ended")]
    SecretExpired,
    /// The client is disabled (said only to a caller that knows its
    /// secret).
    #[error("the client is disabled")]
    Disabled,
}

impl ClientAuthError {
    /// A stable name for audit records and logs, e.g. `WRONG_SECRET`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthError::UnknownClient => "UNKNOWN_CLIENT",
            ClientAuthError::WrongMethod => "WRONG_METHOD",
            ClientAuthError::WrongSecret => "WRONG_SECRET",
            ClientAuthError::SecretExpired => "SECRET_EXPIRED",
            ClientAuthError::Disabled => "CLIENT_DISABLED",
        }
    }
}

/// OAuth clients by id.
#[derive(Default)]
pub(crate) struct ClientIndex {
    by_id: RwLock<HashMap<String, Arc<OAuthClientRecord>>>,
}

impl ClientIndex {
    /// The index of `records`.
    pub fn new(records: Vec<OAuthClientRecord>) -> Self {
        let by_id = records
            .into_iter()
            .map(|r| (r.client_id.clone(), Arc::new(r)))
            .collect();
        ClientIndex {
            by_id: RwLock::new(by_id),
        }
    }

    /// Indexes `record`, replacing what was indexed for its id.
    pub fn set(&self, record: OAuthClientRecord) {
        let mut map = self.by_id.write().unwrap_or_else(|p| p.into_inner());
        map.insert(record.client_id.clone(), Arc::new(record));
    }

    /// How many clients are registered.
    pub fn len(&self) -> usize {
        self.by_id.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Forgets a client.
    pub fn remove(&self, client_id: &str) {
        let mut map = self.by_id.write().unwrap_or_else(|p| p.into_inner());
        map.remove(client_id);
    }

    /// The client with this id.
    pub fn get(&self, client_id: &str) -> Option<Arc<OAuthClientRecord>> {
        let map = self.by_id.read().unwrap_or_else(|p| p.into_inner());
        map.get(client_id).cloned()
    }

    /// The client `client_id` if `secret` is its current secret, or its
    /// previous one before `valid_until`, at `now`, presented with
    /// `method` (`client_secret_basic` or `client_secret_post`), which
    /// must be the client's own. The secret is hashed and compared in
    /// constant time with both; a disabled client is refused only after
    /// its secret checked out.
    ///
    /// # Errors
    /// Why the client is not authenticated.
    pub fn authenticate(
        &self,
        client_id: &str,
        secret: &str,
        method: AuthMethod,
        now: i64,
    ) -> Result<Arc<OAuthClientRecord>, ClientAuthError> {
        let client = self.get(client_id).ok_or(ClientAuthError::UnknownClient)?;
        if !method.uses_secret() || client.token_endpoint_auth_method != method {
            return Err(ClientAuthError::WrongMethod);
        }
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Err(ClientAuthError::WrongSecret);
        }
        let presented = SecretHash::of(secret.as_bytes());
        let current = client.secret_hash.is_some_and(|h| h == presented);
        let previous = client
            .previous_secret
            .as_ref()
            .filter(|p| p.secret_hash == presented)
            .map(|p| p.valid_until);
        match (current, previous) {
            (true, _) => {}
            (false, Some(valid_until)) if now < valid_until => {}
            (false, Some(_)) => return Err(ClientAuthError::SecretExpired),
            (false, None) => return Err(ClientAuthError::WrongSecret),
        }
        if client.disabled {
            return Err(ClientAuthError::Disabled);
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::store::PreviousSecret;

    fn client(method: AuthMethod, secret: Option<&Secret>) -> OAuthClientRecord {
        let mut r = crate::store::conformance::oauth_client("cli_a");
        r.token_endpoint_auth_method = method;
        r.secret_hash = secret.map(Secret::hash);
        r
    }

    #[test]
    fn current_secret_authenticates_with_the_registered_method_only() {
        let secret = Secret::generate_client_secret().unwrap();
        let index = ClientIndex::new(vec![client(AuthMethod::ClientSecretBasic, Some(&secret))]);
        let ok = index
            .authenticate("cli_a", secret.expose(), AuthMethod::ClientSecretBasic, 10)
            .unwrap();
        assert_eq!(ok.client_id, "cli_a");
        let auth = |id: &str, s: &str, m| index.authenticate(id, s, m, 10).unwrap_err();
        assert_eq!(
            auth("cli_b", secret.expose(), AuthMethod::ClientSecretBasic),
            ClientAuthError::UnknownClient
        );
        assert_eq!(
            auth("cli_a", secret.expose(), AuthMethod::ClientSecretPost),
            ClientAuthError::WrongMethod
        );
        assert_eq!(
            auth("cli_a", secret.expose(), AuthMethod::None),
            ClientAuthError::WrongMethod
        );
        assert_eq!(
            auth("cli_a", "mcp_cs_wrong", AuthMethod::ClientSecretBasic),
            ClientAuthError::WrongSecret
        );
        assert_eq!(
            auth("cli_a", "", AuthMethod::ClientSecretBasic),
            ClientAuthError::WrongSecret
        );
        let long = "x".repeat(MAX_SECRET_LEN + 1);
        assert_eq!(
            auth("cli_a", &long, AuthMethod::ClientSecretBasic),
            ClientAuthError::WrongSecret
        );
    }

    #[test]
    fn previous_secret_works_until_its_grace_ends() {
        let old = Secret::generate_client_secret().unwrap();
        let new = Secret::generate_client_secret().unwrap();
        let mut r = client(AuthMethod::ClientSecretPost, Some(&new));
        r.previous_secret = Some(PreviousSecret {
            secret_hash: old.hash(),
            valid_until: 100,
        });
        let index = ClientIndex::new(vec![r]);
        let m = AuthMethod::ClientSecretPost;
        assert!(index.authenticate("cli_a", old.expose(), m, 99).is_ok());
        assert!(index.authenticate("cli_a", new.expose(), m, 99).is_ok());
        assert_eq!(
            index
                .authenticate("cli_a", old.expose(), m, 100)
                .unwrap_err(),
            ClientAuthError::SecretExpired
        );
        assert!(index.authenticate("cli_a", new.expose(), m, 100).is_ok());
    }

    #[test]
    fn a_disabled_or_removed_client_is_refused() {
        let secret = Secret::generate_client_secret().unwrap();
        let mut r = client(AuthMethod::ClientSecretBasic, Some(&secret));
        r.disabled = true;
        let index = ClientIndex::new(vec![r.clone()]);
        let m = AuthMethod::ClientSecretBasic;
        assert_eq!(
            index
                .authenticate("cli_a", "mcp_cs_wrong", m, 1)
                .unwrap_err(),
            ClientAuthError::WrongSecret,
            "a wrong secret learns nothing about the client's state"
        );
        assert_eq!(
            index
                .authenticate("cli_a", secret.expose(), m, 1)
                .unwrap_err(),
            ClientAuthError::Disabled
        );
        r.disabled = false;
        index.set(r);
        assert!(index.authenticate("cli_a", secret.expose(), m, 1).is_ok());
        index.remove("cli_a");
        assert_eq!(
            index
                .authenticate("cli_a", secret.expose(), m, 1)
                .unwrap_err(),
            ClientAuthError::UnknownClient
        );
    }

    #[test]
    fn a_client_without_a_secret_never_authenticates_with_one() {
        let index = ClientIndex::new(vec![client(AuthMethod::None, None)]);
        assert_eq!(
            index
                .authenticate("cli_a", "mcp_cs_x", AuthMethod::ClientSecretBasic, 1)
                .unwrap_err(),
            ClientAuthError::WrongMethod
        );
    }
}
