//! `AdminService.BackupStore`: a backup of the running server's store at
//! one point in time, taken by the store itself
//! ([`Store::backup`](crate::store::Store::backup)), with its own audit
//! record the newest of the chain it holds.

use crate::core::error::{Error, Reason};
use crate::core::principal::STORE_BACKUP;
use crate::core::{Core, Credentials, policy};
use crate::store::StoreError;

impl Core {
    /// `BackupStore`: the backup file's bytes. Needs `store:backup` (which
    /// `admin` implies): the backup holds the private signing keys.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, `BACKUP_UNSUPPORTED` for a
    /// PostgreSQL store, storage.
    pub async fn backup_store(&self, creds: &Credentials<'_>) -> Result<Vec<u8>, Error> {
        let caller = self.authenticate(creds).await?;
        policy::require(&caller, STORE_BACKUP)?;
        let backend = self.store.backend();
        let audit = self
            .audit
            .ok(&caller.id, "store.backed_up", backend, creds.request_id);
        match self.store.backup(audit, self.clock.now()).await {
            Err(StoreError::BackupUnsupported(backend)) => Err(Error::refused(
                Reason::BackupUnsupported,
                format!(
                    "the {backend} store cannot be backed up through mcp-auth: back up its database with its own tools (pg_dump)"
                ),
            )),
            Err(e) => Err(e.into()),
            Ok(bytes) => {
                tracing::info!(bytes = bytes.len(), "store backed up");
                Ok(bytes)
            }
        }
    }
}
