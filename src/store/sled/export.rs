//! What `store migrate` reads from a data directory beyond what the
//! [`Store`](crate::store::Store) trait lists: every remembered consent
//! (the trait reads them only by subject), and how many refresh tokens of
//! the layout before tokens named their session are still honoured.

use super::SledStore;
use super::codec::decode;
use crate::store::StoreResult;
use crate::store::model::ConsentRecord;

impl SledStore {
    /// Every remembered consent, by subject then client id.
    ///
    /// # Errors
    /// The database cannot be read, or a record is corrupt.
    pub(in crate::store) fn all_consents(&self) -> StoreResult<Vec<ConsentRecord>> {
        self.consents
            .iter()
            .values()
            .map(|v| decode("consent", &v?))
            .collect()
    }

    /// How many refresh tokens issued before tokens named their session
    /// this store still honours (see the `legacy` module); no other
    /// backend knows them.
    pub(in crate::store) fn legacy_refresh_tokens(&self) -> usize {
        self.legacy.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
