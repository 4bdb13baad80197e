//! `ApiKeyService`: CreateApiKey, ListApiKeys, RevokeApiKey, RotateApiKey.
//! Every call needs `keys:admin`. A caller may grant only scopes it holds
//! itself, and may revoke or rotate only keys whose scopes it holds, so a
//! delegated `keys:admin` key can never mint or disarm a stronger key
//! (`admin` holds every scope).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{State, check_id, check_text, new_id, rate_limit_from_pb, rate_limit_to_pb};
use crate::auth::{ADMIN, KEYS_ADMIN, Principal, parse_scopes, request_id};
use crate::clock::Clock;
use crate::error::{Error, Reason};
use crate::limits::RateLimit;
use crate::pb;
use crate::secret::Secret;
use crate::store::{ApiKeyRecord, PreviousSecret, Store};

/// Longest key name, in bytes.
const MAX_KEY_NAME_LEN: usize = 128;
/// Longest grace period for a rotated-out secret: 30 days.
pub(crate) const MAX_ROTATION_GRACE: u32 = 30 * 24 * 60 * 60;

/// The `ApiKeyService` implementation.
pub(crate) struct ApiKeyService {
    state: Arc<State>,
}

/// Creates a key with scope `admin` named `name` and returns its id and
/// secret: the primary key on an empty data directory, or a recovery key
/// made offline by `mcp-auth recover-admin`.
///
/// # Errors
/// Storage or the random source failed.
pub(crate) async fn create_admin_key(
    store: &Store,
    clock: &Clock,
    name: &str,
) -> Result<(String, Secret), Error> {
    let (record, secret) = insert_key(
        store,
        clock,
        name.to_owned(),
        vec![ADMIN.to_owned()],
        0,
        None,
    )
    .await?;
    Ok((record.key_id, secret))
}

async fn insert_key(
    store: &Store,
    clock: &Clock,
    name: String,
    scopes: Vec<String>,
    expires_at: i64,
    rate_limit: Option<RateLimit>,
) -> Result<(ApiKeyRecord, Secret), Error> {
    let secret = Secret::generate_api_key()?;
    let record = ApiKeyRecord {
        key_id: new_id("key_")?,
        name,
        scopes,
        prefix: secret.display_prefix(),
        created_at: clock.now(),
        expires_at,
        revoked_at: None,
        rotated_at: None,
        secret_hash: secret.hash(),
        previous: None,
        rate_limit,
    };
    store.insert_api_key(&record).await?;
    tracing::info!(key_id = %record.key_id, name = %record.name, "api key created");
    Ok((record, secret))
}

fn key_not_found(key_id: &str) -> Error {
    Error::Refused {
        reason: Reason::ApiKeyNotFound,
        message: format!("no API key {key_id}"),
    }
}

/// Revoking or rotating a key needs every scope it holds.
fn may_manage(caller: &Principal, target: &ApiKeyRecord) -> Result<(), Error> {
    caller.require_all(&target.scopes)
}

pub(crate) fn key_to_pb(r: ApiKeyRecord) -> pb::ApiKey {
    pb::ApiKey {
        key_id: r.key_id,
        name: r.name,
        scopes: r.scopes,
        prefix: r.prefix,
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked: r.revoked_at.is_some(),
        rotated_at: r.rotated_at.unwrap_or_default(),
        rate_limit: rate_limit_to_pb(r.rate_limit),
    }
}

impl ApiKeyService {
    pub fn new(state: Arc<State>) -> Self {
        ApiKeyService { state }
    }

    fn admin<T>(&self, req: &Request<T>) -> Result<Principal, Error> {
        let caller = self.state.auth.authenticate(req)?;
        caller.require(KEYS_ADMIN)?;
        Ok(caller)
    }

    async fn create(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Result<pb::CreateApiKeyResponse, Error> {
        let caller = self.admin(&req)?;
        let rid = request_id(&req);
        let r = req.into_inner();
        check_text("name", &r.name, MAX_KEY_NAME_LEN)?;
        let scopes = parse_scopes("scopes", &r.scopes, false)?;
        caller.require_all(&scopes)?;
        if r.expires_at < 0 || (r.expires_at != 0 && r.expires_at <= self.state.clock.now()) {
            return Err(Error::invalid(
                "expires_at",
                "must be 0 (never) or in the future",
            ));
        }
        let s = &self.state;
        let rate_limit = rate_limit_from_pb("rate_limit", r.rate_limit)?;
        let (record, secret) =
            insert_key(&s.store, &s.clock, r.name, scopes, r.expires_at, rate_limit).await?;
        s.audit_ok(&rid, &caller.id, "api_key.created", &record.key_id)
            .await?;
        Ok(pb::CreateApiKeyResponse {
            api_key: Some(key_to_pb(record)),
            secret: secret.expose().to_owned(),
        })
    }

    fn list(&self, req: Request<pb::ListApiKeysRequest>) -> Result<pb::ListApiKeysResponse, Error> {
        self.admin(&req)?;
        let api_keys = self
            .state
            .store
            .list_api_keys()?
            .into_iter()
            .map(key_to_pb)
            .collect();
        Ok(pb::ListApiKeysResponse { api_keys })
    }

    async fn revoke(
        &self,
        req: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<pb::RevokeApiKeyResponse, Error> {
        let caller = self.admin(&req)?;
        let rid = request_id(&req);
        let r = req.into_inner();
        let key_id = r.key_id;
        check_id("key_id", &key_id)?;
        let now = self.state.clock.now();
        let record = self
            .state
            .store
            .update_api_key(&key_id, |old| {
                let mut r = old.ok_or_else(|| key_not_found(&key_id))?;
                may_manage(&caller, &r)?;
                r.revoked_at.get_or_insert(now);
                Ok::<_, Error>(r)
            })
            .await??;
        tracing::info!(key_id = %record.key_id, "api key revoked");
        // Idempotent: revoking again re-runs the cascade, so a retry after
        // a crash between the two steps finishes the job.
        let sessions_revoked = if r.cascade.unwrap_or(true) {
            self.state.revoke_sessions_of_client(&record.key_id).await?
        } else {
            0
        };
        let target = format!("{} (sessions revoked: {sessions_revoked})", record.key_id);
        self.state
            .audit_ok(&rid, &caller.id, "api_key.revoked", &target)
            .await?;
        Ok(pb::RevokeApiKeyResponse {
            api_key: Some(key_to_pb(record)),
            sessions_revoked,
        })
    }

    async fn update(&self, req: Request<pb::UpdateApiKeyRequest>) -> Result<pb::ApiKey, Error> {
        let caller = self.admin(&req)?;
        let rid = request_id(&req);
        let r = req.into_inner();
        check_id("key_id", &r.key_id)?;
        let rate_limit = rate_limit_from_pb("rate_limit", r.rate_limit)?;
        let record = self
            .state
            .store
            .update_api_key(&r.key_id, |old| {
                let mut rec = old.ok_or_else(|| key_not_found(&r.key_id))?;
                may_manage(&caller, &rec)?;
                rec.rate_limit = rate_limit;
                Ok::<_, Error>(rec)
            })
            .await??;
        tracing::info!(key_id = %record.key_id, "api key updated");
        self.state
            .audit_ok(&rid, &caller.id, "api_key.updated", &record.key_id)
            .await?;
        Ok(key_to_pb(record))
    }

    async fn rotate(
        &self,
        req: Request<pb::RotateApiKeyRequest>,
    ) -> Result<pb::CreateApiKeyResponse, Error> {
        let caller = self.admin(&req)?;
        let rid = request_id(&req);
        let r = req.into_inner();
        check_id("key_id", &r.key_id)?;
        if r.grace_seconds > MAX_ROTATION_GRACE {
            return Err(Error::invalid(
                "grace_seconds",
                format!("must be at most {MAX_ROTATION_GRACE} (30 days)"),
            ));
        }
        let secret = Secret::generate_api_key()?;
        let now = self.state.clock.now();
        let record = self
            .state
            .store
            .update_api_key(&r.key_id, |old| {
                let mut rec = old.ok_or_else(|| key_not_found(&r.key_id))?;
                may_manage(&caller, &rec)?;
                if rec.revoked_at.is_some() {
                    return Err(Error::Refused {
                        reason: Reason::ApiKeyNotActive,
                        message: format!("API key {} is revoked and cannot be rotated", rec.key_id),
                    });
                }
                rec.previous = (r.grace_seconds > 0).then(|| PreviousSecret {
                    secret_hash: rec.secret_hash,
                    valid_until: now + i64::from(r.grace_seconds),
                });
                rec.secret_hash = secret.hash();
                rec.prefix = secret.display_prefix();
                rec.rotated_at = Some(now);
                Ok::<_, Error>(rec)
            })
            .await??;
        tracing::info!(key_id = %record.key_id, grace_seconds = r.grace_seconds, "api key rotated");
        self.state
            .audit_ok(&rid, &caller.id, "api_key.rotated", &record.key_id)
            .await?;
        Ok(pb::CreateApiKeyResponse {
            api_key: Some(key_to_pb(record)),
            secret: secret.expose().to_owned(),
        })
    }
}

#[tonic::async_trait]
impl pb::api_key_service_server::ApiKeyService for ApiKeyService {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        Ok(Response::new(self.create(request).await?))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        Ok(Response::new(self.list(request)?))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        Ok(Response::new(self.revoke(request).await?))
    }

    async fn update_api_key(
        &self,
        request: Request<pb::UpdateApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        Ok(Response::new(self.update(request).await?))
    }

    async fn rotate_api_key(
        &self,
        request: Request<pb::RotateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        Ok(Response::new(self.rotate(request).await?))
    }
}
