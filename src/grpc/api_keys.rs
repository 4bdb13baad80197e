//! `ApiKeyService`: CreateApiKey, ListApiKeys, GetApiKey, RevokeApiKey, UpdateApiKey,
//! RotateApiKey.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::call::Call;
use super::convert::{key_to_pb, rate_limit_from_pb};
use crate::core::{Core, CreatedApiKey, NewApiKey};
use crate::pb;

/// The `ApiKeyService` adapter.
pub(crate) struct ApiKeyService {
    pub core: Arc<Core>,
}

fn created(c: CreatedApiKey, now: i64) -> pb::CreateApiKeyResponse {
    pb::CreateApiKeyResponse {
        secret: c.secret.expose().to_owned(),
        api_key: Some(key_to_pb(c.record, now)),
    }
}

#[tonic::async_trait]
impl pb::api_key_service_server::ApiKeyService for ApiKeyService {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let (call, r) = Call::split(request);
        let req = NewApiKey {
            name: r.name,
            scopes: r.scopes,
            expires_at: r.expires_at,
            rate_limit: rate_limit_from_pb(r.rate_limit),
        };
        let key = self.core.create_api_key(&call.credentials(), req).await?;
        Ok(Response::new(created(key, self.core.now())))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let (call, _) = Call::split(request);
        let keys = self.core.list_api_keys(&call.credentials()).await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: keys
                .into_iter()
                .map(|k| key_to_pb(k, self.core.now()))
                .collect(),
        }))
    }

    async fn get_api_key(
        &self,
        request: Request<pb::GetApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let (call, r) = Call::split(request);
        let key = self
            .core
            .get_api_key(&call.credentials(), &r.key_id)
            .await?;
        Ok(Response::new(key_to_pb(key, self.core.now())))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let (call, r) = Call::split(request);
        let (key, sessions_revoked) = self
            .core
            .revoke_api_key(&call.credentials(), &r.key_id, r.cascade.unwrap_or(true))
            .await?;
        Ok(Response::new(pb::RevokeApiKeyResponse {
            api_key: Some(key_to_pb(key, self.core.now())),
            sessions_revoked,
        }))
    }

    async fn update_api_key(
        &self,
        request: Request<pb::UpdateApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let (call, r) = Call::split(request);
        let key = self
            .core
            .update_api_key(
                &call.credentials(),
                &r.key_id,
                rate_limit_from_pb(r.rate_limit),
            )
            .await?;
        Ok(Response::new(key_to_pb(key, self.core.now())))
    }

    async fn rotate_api_key(
        &self,
        request: Request<pb::RotateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let (call, r) = Call::split(request);
        let key = self
            .core
            .rotate_api_key(&call.credentials(), &r.key_id, r.grace_seconds)
            .await?;
        Ok(Response::new(created(key, self.core.now())))
    }
}
