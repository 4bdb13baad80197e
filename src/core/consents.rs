//! Remembered consent (issue 13): when a user approves with "remember",
//! the scopes and the resource are kept for that user and client, and a
//! later authorization of the client asking for no more skips the
//! consent page. Asking for more asks again (and, approved with remember,
//! widens what is kept). A client marked first-party (`skip_consent`)
//! never asks. An admin (`users:admin`) lists a user's consents and
//! withdraws one, which also revokes that client's sessions for the user.

use crate::core::error::Error;
use crate::core::{Core, Credentials};
use crate::store::{ConsentRecord, OAuthClientRecord};

impl Core {
    /// Whether `subject` already consented to what `client` asks
    /// (`scopes` for each of `resources`).
    ///
    /// # Errors
    /// Storage.
    pub async fn consent_covers(
        &self,
        subject: &str,
        client: &OAuthClientRecord,
        scopes: &[String],
        resources: &[String],
    ) -> Result<bool, Error> {
        if client.skip_consent {
            return Ok(true);
        }
        Ok(self
            .store
            .consent(subject, &client.client_id)
            .await?
            .is_some_and(|c| resources.iter().all(|r| c.covers(scopes, r))))
    }

    /// Remembers that `subject` approved `scopes` for `resources` of
    /// `client_id`, widening what was kept; audited `consent.granted`.
    ///
    /// # Errors
    /// Storage.
    pub(crate) async fn remember_consent(
        &self,
        subject: &str,
        client_id: &str,
        scopes: &[String],
        resources: &[String],
        request_id: &str,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        let mut record = self
            .store
            .consent(subject, client_id)
            .await?
            .unwrap_or_else(|| ConsentRecord {
                subject: subject.to_owned(),
                client_id: client_id.to_owned(),
                scopes: Vec::new(),
                resources: Vec::new(),
                granted_at: now,
                updated_at: now,
            });
        for s in scopes {
            if !record.scopes.contains(s) {
                record.scopes.push(s.clone());
            }
        }
        for resource in resources {
            if !record.resources.contains(resource) {
                record.resources.push(resource.clone());
            }
        }
        record.scopes.sort();
        record.resources.sort();
        record.updated_at = now;
        let audit = self
            .audit
            .ok(subject, "consent.granted", client_id, request_id);
        self.store.put_consent(&record, audit).await?;
        Ok(())
    }

    /// `ListConsents`: the consents the user `user_id` gave, needs
    /// `users:admin`.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, USER_NOT_FOUND, storage.
    pub async fn list_consents(
        &self,
        creds: &Credentials<'_>,
        user_id: &str,
        username: &str,
    ) -> Result<Vec<ConsentRecord>, Error> {
        let user = self.get_user(creds, user_id, username).await?;
        Ok(self.store.consents_of(&user.user_id).await?)
    }

    /// `RevokeConsent`: forgets the consent the user gave `client_id` and
    /// revokes that client's sessions for the user; needs `users:admin`.
    /// Returns how many sessions were revoked.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, USER_NOT_FOUND, storage.
    pub async fn revoke_consent(
        &self,
        creds: &Credentials<'_>,
        user_id: &str,
        username: &str,
        client_id: &str,
    ) -> Result<u32, Error> {
        let user = self.get_user(creds, user_id, username).await?;
        let caller = self.authenticate(creds).await?;
        crate::core::fields::check_text("client_id", client_id, 2048)?;
        let audit = self.audit.ok(
            &caller.id,
            "consent.revoked",
            &format!("{} for {client_id}", user.user_id),
            creds.request_id,
        );
        self.store
            .delete_consent(&user.user_id, client_id, audit)
            .await?;
        let filter = crate::store::SessionFilter {
            subject: Some(user.user_id.clone()),
            client_id: Some(client_id.to_owned()),
        };
        self.revoke_sessions_matching(
            &caller.id,
            &filter,
            &format!("{client_id} for {}", user.user_id),
            creds.request_id,
        )
        .await
    }
}
