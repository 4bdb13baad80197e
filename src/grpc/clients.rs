//! `OAuthClientService`: CreateClient, ListClients, GetClient,
//! UpdateClient, RotateClientSecret, DeleteClient.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::call::Call;
use super::convert::{
    client_to_pb, client_update_from_pb, created_client_to_pb, new_client_from_pb,
};
use crate::core::Core;
use crate::pb;

/// The `OAuthClientService` adapter.
pub(crate) struct OAuthClientService {
    pub core: Arc<Core>,
}

#[tonic::async_trait]
impl pb::o_auth_client_service_server::OAuthClientService for OAuthClientService {
    async fn create_client(
        &self,
        request: Request<pb::CreateClientRequest>,
    ) -> Result<Response<pb::CreateClientResponse>, Status> {
        let (call, r) = Call::split(request);
        let created = self
            .core
            .create_client(&call.credentials(), new_client_from_pb(r))
            .await?;
        Ok(Response::new(created_client_to_pb(created)))
    }

    async fn list_clients(
        &self,
        request: Request<pb::ListClientsRequest>,
    ) -> Result<Response<pb::ListClientsResponse>, Status> {
        let (call, _) = Call::split(request);
        let clients = self.core.list_clients(&call.credentials()).await?;
        Ok(Response::new(pb::ListClientsResponse {
            clients: clients.into_iter().map(client_to_pb).collect(),
        }))
    }

    async fn get_client(
        &self,
        request: Request<pb::GetClientRequest>,
    ) -> Result<Response<pb::OAuthClient>, Status> {
        let (call, r) = Call::split(request);
        let client = self
            .core
            .get_client(&call.credentials(), &r.client_id)
            .await?;
        Ok(Response::new(client_to_pb(client)))
    }

    async fn update_client(
        &self,
        request: Request<pb::UpdateClientRequest>,
    ) -> Result<Response<pb::UpdateClientResponse>, Status> {
        let (call, r) = Call::split(request);
        let client_id = r.client_id.clone();
        let updated = self
            .core
            .update_client(&call.credentials(), &client_id, client_update_from_pb(r))
            .await?;
        let pb::CreateClientResponse { client, secret } = created_client_to_pb(updated);
        Ok(Response::new(pb::UpdateClientResponse { client, secret }))
    }

    async fn rotate_client_secret(
        &self,
        request: Request<pb::RotateClientSecretRequest>,
    ) -> Result<Response<pb::CreateClientResponse>, Status> {
        let (call, r) = Call::split(request);
        let rotated = self
            .core
            .rotate_client_secret(&call.credentials(), &r.client_id, r.grace_seconds)
            .await?;
        Ok(Response::new(created_client_to_pb(rotated)))
    }

    async fn delete_client(
        &self,
        request: Request<pb::DeleteClientRequest>,
    ) -> Result<Response<pb::DeleteClientResponse>, Status> {
        let (call, r) = Call::split(request);
        let (_, sessions_revoked) = self
            .core
            .delete_client(&call.credentials(), &r.client_id)
            .await?;
        Ok(Response::new(pb::DeleteClientResponse { sessions_revoked }))
    }
}
