//! `WhoAmI`: which credential a call authenticated with, and what it
//! holds, so an operator can check a key or certificate before using it.

use crate::core::error::Error;
use crate::core::principal::CallerKind;
use crate::core::{Core, Credentials};
use crate::store::RateLimit;

/// The caller of one call, as `WhoAmI` describes it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// API key or identity.
    pub kind: CallerKind,
    /// The key id or identity name (`client_id` in the tokens it mints).
    pub client_id: String,
    /// The key's name, or the identity name.
    pub name: String,
    /// The scopes it holds.
    pub scopes: Vec<String>,
    /// Unix seconds; 0 means never (an identity's certificate expiry is
    /// the TLS layer's business, not tracked here).
    pub expires_at: i64,
    /// Its own rate limit, if it overrides the server default.
    pub rate_limit: Option<RateLimit>,
}

impl Core {
    /// `WhoAmI`: needs any valid credential and no scope.
    ///
    /// # Errors
    /// Authentication, storage.
    pub async fn whoami(&self, creds: &Credentials<'_>) -> Result<Caller, Error> {
        let caller = self.authenticate(creds).await?;
        let (name, expires_at) = match caller.kind {
            CallerKind::ApiKey => match self.store.api_key(&caller.id).await? {
                Some(stored) => (stored.record.name, stored.record.expires_at),
                None => (caller.id.to_string(), 0),
            },
            CallerKind::Identity => (caller.id.to_string(), 0),
        };
        Ok(Caller {
            kind: caller.kind,
            client_id: caller.id.to_string(),
            name,
            scopes: caller.scopes.to_vec(),
            expires_at,
            rate_limit: caller.rate_limit,
        })
    }
}
