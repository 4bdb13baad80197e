//! mTLS identities: the scopes granted to each service identity, revoked
//! client certificates, and the in-memory index authentication reads.
//! Every operation needs `identities:admin`; a caller may grant only
//! scopes it holds, and may change only grants whose scopes it holds.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use crate::ca::{normalize_serial, validate_identity_name};
use crate::core::error::{Error, Reason};
use crate::core::principal::{IDENTITIES_ADMIN, Principal, parse_scopes};
use crate::core::{Core, Credentials, limits, policy};
use crate::store::{IdentityRecord, RateLimit, RevokedCert};
use crate::untrusted::{Echo, Escaped};

/// Identity grants and revoked certificate serials, in memory: loaded from
/// the store at start and updated by every write that changes them.
#[derive(Default)]
pub(crate) struct IdentityIndex {
    grants: RwLock<HashMap<String, IdentityRecord>>,
    revoked: RwLock<HashSet<String>>,
}

impl IdentityIndex {
    /// The index of what `store` holds.
    ///
    pub fn new(grants: Vec<IdentityRecord>, revoked: Vec<RevokedCert>) -> Self {
        let grants = grants.into_iter().map(|r| (r.name.clone(), r)).collect();
        let revoked = revoked.into_iter().map(|r| r.serial).collect();
        IdentityIndex {
            grants: RwLock::new(grants),
            revoked: RwLock::new(revoked),
        }
    }

    /// How many grants there are.
    pub fn len(&self) -> usize {
        self.grants.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Notes a grant.
    pub fn set(&self, record: IdentityRecord) {
        let mut grants = self.grants.write().unwrap_or_else(|p| p.into_inner());
        grants.insert(record.name.clone(), record);
    }

    /// Replaces every grant with `records` (the store's, read again).
    pub fn replace_grants(&self, records: Vec<IdentityRecord>) {
        let mut grants = self.grants.write().unwrap_or_else(|p| p.into_inner());
        *grants = records.into_iter().map(|r| (r.name.clone(), r)).collect();
    }

    /// Forgets a grant.
    pub fn remove(&self, name: &str) {
        let mut grants = self.grants.write().unwrap_or_else(|p| p.into_inner());
        grants.remove(name);
    }

    /// Notes a revoked serial.
    pub fn revoke(&self, serial: &str) {
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        revoked.insert(serial.to_owned());
    }

    /// The grant named .
    pub fn grant(&self, name: &str) -> Option<IdentityRecord> {
        let grants = self.grants.read().unwrap_or_else(|p| p.into_inner());
        grants.get(name).cloned()
    }

    /// Whether the serial was revoked.
    pub fn is_revoked(&self, serial: &str) -> bool {
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        revoked.contains(serial)
    }
}

/// What SetIdentity asks for.
#[derive(Clone, Debug)]
pub struct IdentityGrant {
    /// The identity's name.
    pub name: String,
    /// Scopes to grant.
    pub scopes: Vec<String>,
    /// Refuse the identity.
    pub disabled: bool,
    /// Overrides the default request rate.
    pub rate_limit: Option<RateLimit>,
}

impl Core {
    async fn identity_admin(&self, creds: &Credentials<'_>) -> Result<Principal, Error> {
        let caller = self.authenticate(creds).await?;
        policy::require(&caller, IDENTITIES_ADMIN)?;
        Ok(caller)
    }

    /// `SetIdentity`: creates or replaces a grant.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, storage.
    pub async fn set_identity(
        &self,
        creds: &Credentials<'_>,
        req: IdentityGrant,
    ) -> Result<IdentityRecord, Error> {
        let caller = self.identity_admin(creds).await?;
        validate_identity_name(&req.name).map_err(|m| Error::invalid("name", m))?;
        let scopes = parse_scopes("scopes", &req.scopes, true)?;
        let rate_limit = req
            .rate_limit
            .map(|l| limits::validate(l, "rate_limit"))
            .transpose()?;
        policy::may_grant(&caller, &scopes)?;
        let _one = self.identity_writes.lock().await;
        policy::may_manage_identity(&caller, self.identities.grant(&req.name).as_ref())?;
        let now = self.clock.now();
        let record = IdentityRecord {
            name: req.name,
            scopes,
            disabled: req.disabled,
            created_at: now,
            updated_at: now,
            rate_limit,
        };
        let target = format!(
            "{} (scopes: {}; disabled: {})",
            record.name,
            record.scopes.join(","),
            record.disabled
        );
        let audit = self
            .audit
            .ok(&caller.id, "identity.set", &target, creds.request_id);
        let stored = self.store.put_identity(&record, audit).await?;
        self.identities.set(stored.clone());
        tracing::info!(identity = %Escaped(&stored.name), disabled = stored.disabled, "identity set");
        Ok(stored)
    }

    /// `ListIdentities`.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, storage.
    pub async fn list_identities(
        &self,
        creds: &Credentials<'_>,
    ) -> Result<Vec<IdentityRecord>, Error> {
        self.identity_admin(creds).await?;
        Ok(self.store.identities().await?)
    }

    /// `DeleteIdentity`; with `cascade`, the sessions it created are
    /// revoked too. Returns how many sessions this call revoked.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND,
    /// storage.
    pub async fn delete_identity(
        &self,
        creds: &Credentials<'_>,
        name: &str,
        cascade: bool,
    ) -> Result<u32, Error> {
        let caller = self.identity_admin(creds).await?;
        validate_identity_name(name).map_err(|m| Error::invalid("name", m))?;
        {
            let _one = self.identity_writes.lock().await;
            policy::may_manage_identity(&caller, self.identities.grant(name).as_ref())?;
            let audit = self
                .audit
                .ok(&caller.id, "identity.deleted", name, creds.request_id);
            if !self.store.delete_identity(name, audit).await? {
                return Err(Error::refused(
                    Reason::IdentityNotFound,
                    format!("no identity {}", Echo(name)),
                ));
            }
            self.identities.remove(name);
        }
        tracing::info!(identity = %Escaped(name), "identity deleted");
        if cascade {
            self.revoke_sessions_of_client(&caller.id, name, creds.request_id)
                .await
        } else {
            Ok(0)
        }
    }

    /// `RevokeCertificate`: the serial is refused from now on.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, storage.
    pub async fn revoke_certificate(
        &self,
        creds: &Credentials<'_>,
        serial: &str,
    ) -> Result<RevokedCert, Error> {
        let caller = self.identity_admin(creds).await?;
        let serial = normalize_serial(serial).map_err(|m| Error::invalid("serial", m))?;
        let audit = self
            .audit
            .ok(&caller.id, "certificate.revoked", &serial, creds.request_id);
        let revoked = self
            .store
            .revoke_cert(&serial, self.clock.now(), audit)
            .await?;
        self.identities.revoke(&serial);
        tracing::info!(serial = %serial, "client certificate revoked");
        Ok(revoked)
    }
}
