//! The fuzz targets' entry points on the gRPC side (feature `fuzzing`,
//! re-exported by `crate::fuzzing`): request bodies decoded as the server
//! decodes them, and `authorization` metadata. A refusal must be the
//! caller's error, never INTERNAL.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use prost::Message;
use prost::bytes::Bytes;
use tonic::Code;
use tonic::codec::{Codec, Streaming};

use crate::core::Error;
use crate::grpc::codec::StrictCodec;
use crate::pb;

/// Asserts that `err`, as the gRPC adapter answers it, is not INTERNAL.
pub fn assert_caller_error(err: Error) {
    let status = tonic::Status::from(err);
    assert_ne!(
        status.code(),
        Code::Internal,
        "a bad input answered INTERNAL: {}",
        status.message()
    );
}

/// Runs a future that never waits (every body here is in memory).
fn ready<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("an in-memory decode waited"),
    }
}

/// The request messages, in the order [`grpc_request`]'s first byte
/// picks them (modulo their count).
pub const GRPC_REQUESTS: &[&str] = &[
    "CreateClientRequest",
    "UpdateClientRequest",
    "GetClientRequest",
    "ListClientsRequest",
    "RotateClientSecretRequest",
    "DeleteClientRequest",
    "ListConsentsRequest",
    "RevokeConsentRequest",
    "CreateUserRequest",
    "ListUsersRequest",
    "GetUserRequest",
    "SetPasswordRequest",
    "SetUserDisabledRequest",
    "DeleteUserRequest",
    "GetLoginRequestRequest",
    "AcceptLoginRequest",
    "RejectLoginRequest",
    "RotateSigningKeyRequest",
    "ListAuditEventsRequest",
    "CreateSessionRequest",
    "VerifyTokenRequest",
    "WatchRevocationsRequest",
    "RevokeSessionRequest",
    "GetJwksRequest",
    "RefreshSessionRequest",
    "CreateApiKeyRequest",
    "UpdateApiKeyRequest",
    "ListApiKeysRequest",
    "GetApiKeyRequest",
    "RevokeApiKeyRequest",
    "RotateApiKeyRequest",
    "SetIdentityRequest",
    "ListIdentitiesRequest",
    "DeleteIdentityRequest",
    "RevokeCertificateRequest",
    "ListSessionsRequest",
    "GetSessionRequest",
    "WhoAmIRequest",
    "RevokeSessionsRequest",
    "GetStatusRequest",
    "BackupStoreRequest",
];

/// One gRPC request body: `data[0]` picks the message type
/// ([`GRPC_REQUESTS`]); with its top bit clear the rest is the message,
/// framed here as gRPC frames it, with it set the rest is the whole
/// (unframed) request body. The body is decoded as the server decodes
/// it (tonic's framing, [`StrictCodec`]), then converted and checked as
/// far as the adapter and the core do before they need a store.
pub fn grpc_request(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let framed = selector & 0x80 == 0;
    let body = if framed {
        let mut body = Vec::with_capacity(rest.len() + 5);
        body.push(0);
        body.extend_from_slice(&u32::try_from(rest.len()).unwrap_or(u32::MAX).to_be_bytes());
        body.extend_from_slice(rest);
        Bytes::from(body)
    } else {
        Bytes::copy_from_slice(rest)
    };
    let which = usize::from(selector & 0x7f) % GRPC_REQUESTS.len();
    macro_rules! decode {
        ($ty:ident) => {
            match decode_body::<pb::$ty>(body, framed) {
                Some(m) => m,
                None => return,
            }
        };
    }
    use crate::core::fields::{MAX_NAME_LEN, check_id, check_text};
    use crate::core::principal::parse_scopes;
    use crate::grpc::convert::{client_update_from_pb, new_client_from_pb, rate_limit_from_pb};
    let check = |r: Result<(), Error>| {
        if let Err(e) = r {
            assert_caller_error(e);
        }
    };
    let rate_limit = |l: Option<pb::RateLimit>| {
        rate_limit_from_pb(l)
            .map(|l| crate::core::limits::validate(l, "rate_limit").map(drop))
            .unwrap_or(Ok(()))
    };
    match GRPC_REQUESTS[which] {
        "CreateClientRequest" => {
            let r = decode!(CreateClientRequest);
            check(crate::core::clients::check_new(&new_client_from_pb(r)).map(drop));
        }
        "UpdateClientRequest" => {
            let r = decode!(UpdateClientRequest);
            check(check_id("client_id", &r.client_id));
            check(crate::core::clients::check_update(&client_update_from_pb(r)).map(drop));
        }
        "GetClientRequest" => check(check_id("client_id", &decode!(GetClientRequest).client_id)),
        "ListClientsRequest" => drop(decode!(ListClientsRequest)),
        "GetStatusRequest" => drop(decode!(GetStatusRequest)),
        "BackupStoreRequest" => drop(decode!(BackupStoreRequest)),
        "RotateClientSecretRequest" => check(check_id(
            "client_id",
            &decode!(RotateClientSecretRequest).client_id,
        )),
        "DeleteClientRequest" => {
            check(check_id(
                "client_id",
                &decode!(DeleteClientRequest).client_id,
            ));
        }
        "ListConsentsRequest" => drop(decode!(ListConsentsRequest)),
        "RevokeConsentRequest" => check(check_text(
            "client_id",
            &decode!(RevokeConsentRequest).client_id,
            2048,
        )),
        "CreateUserRequest" => {
            let r = decode!(CreateUserRequest);
            check(crate::core::passwords::check_length(
                "password",
                &r.password,
            ));
        }
        "ListUsersRequest" => drop(decode!(ListUsersRequest)),
        "GetUserRequest" => check(check_id("user_id", &decode!(GetUserRequest).user_id)),
        "SetPasswordRequest" => {
            let r = decode!(SetPasswordRequest);
            check(check_id("user_id", &r.user_id));
            check(crate::core::passwords::check_length(
                "password",
                &r.password,
            ));
        }
        "SetUserDisabledRequest" => {
            check(check_id(
                "user_id",
                &decode!(SetUserDisabledRequest).user_id,
            ));
        }
        "DeleteUserRequest" => check(check_id("user_id", &decode!(DeleteUserRequest).user_id)),
        "GetLoginRequestRequest" => drop(decode!(GetLoginRequestRequest)),
        "AcceptLoginRequest" => {
            let r = decode!(AcceptLoginRequest);
            check(check_text("subject", &r.subject, MAX_NAME_LEN));
        }
        "RejectLoginRequest" => drop(decode!(RejectLoginRequest)),
        "RotateSigningKeyRequest" => drop(decode!(RotateSigningKeyRequest)),
        "ListAuditEventsRequest" => drop(decode!(ListAuditEventsRequest)),
        "CreateSessionRequest" => {
            let r = decode!(CreateSessionRequest);
            check(check_text("subject", &r.subject, MAX_NAME_LEN));
            check(check_text("audience", &r.audience, MAX_NAME_LEN));
            check(parse_scopes("scopes", &r.scopes, true).map(drop));
        }
        "VerifyTokenRequest" => {
            let r = decode!(VerifyTokenRequest);
            let _ = crate::core::TokenKind::of(&r.token);
            check(parse_scopes("required_scopes", &r.required_scopes, true).map(drop));
            check(crate::core::verify::client_address(&r.client_address).map(drop));
        }
        "WatchRevocationsRequest" => drop(decode!(WatchRevocationsRequest)),
        "RevokeSessionRequest" => {
            check(check_id(
                "session_id",
                &decode!(RevokeSessionRequest).session_id,
            ));
        }
        "GetJwksRequest" => drop(decode!(GetJwksRequest)),
        "RefreshSessionRequest" => {
            let r = decode!(RefreshSessionRequest);
            let _ = crate::core::sessions::refresh_token_session(&r.refresh_token);
        }
        "CreateApiKeyRequest" => {
            let r = decode!(CreateApiKeyRequest);
            check(check_text(
                "name",
                &r.name,
                crate::core::api_keys::MAX_KEY_NAME_LEN,
            ));
            check(parse_scopes("scopes", &r.scopes, false).map(drop));
            check(rate_limit(r.rate_limit));
        }
        "UpdateApiKeyRequest" => {
            let r = decode!(UpdateApiKeyRequest);
            check(check_id("key_id", &r.key_id));
            check(rate_limit(r.rate_limit));
        }
        "ListApiKeysRequest" => drop(decode!(ListApiKeysRequest)),
        "GetApiKeyRequest" => check(check_id("key_id", &decode!(GetApiKeyRequest).key_id)),
        "RevokeApiKeyRequest" => check(check_id("key_id", &decode!(RevokeApiKeyRequest).key_id)),
        "RotateApiKeyRequest" => check(check_id("key_id", &decode!(RotateApiKeyRequest).key_id)),
        "SetIdentityRequest" => {
            let r = decode!(SetIdentityRequest);
            check(
                crate::ca::validate_identity_name(&r.name).map_err(|m| Error::invalid("name", m)),
            );
            check(parse_scopes("scopes", &r.scopes, true).map(drop));
            check(rate_limit(r.rate_limit));
        }
        "ListIdentitiesRequest" => drop(decode!(ListIdentitiesRequest)),
        "DeleteIdentityRequest" => {
            let r = decode!(DeleteIdentityRequest);
            check(
                crate::ca::validate_identity_name(&r.name).map_err(|m| Error::invalid("name", m)),
            );
        }
        "RevokeCertificateRequest" => {
            let r = decode!(RevokeCertificateRequest);
            check(
                crate::ca::normalize_serial(&r.serial)
                    .map(drop)
                    .map_err(|m| Error::invalid("serial", m)),
            );
        }
        "ListSessionsRequest" => drop(decode!(ListSessionsRequest)),
        "GetSessionRequest" => {
            check(check_id(
                "session_id",
                &decode!(GetSessionRequest).session_id,
            ));
        }
        "WhoAmIRequest" => drop(decode!(WhoAmIRequest)),
        "RevokeSessionsRequest" => drop(decode!(RevokeSessionsRequest)),
        other => panic!("no decoder for {other}"),
    }
}

/// `body` decoded as the server decodes a request of type `T`; `None` if
/// it does not decode (then, for a well-framed body, the refusal must
/// be INVALID_ARGUMENT).
fn decode_body<T: Message + Default + Send + 'static>(body: Bytes, framed: bool) -> Option<T> {
    let decoder = StrictCodec::<T, T>::default().decoder();
    let mut stream = Streaming::new_request(decoder, http_body_util::Full::new(body), None, None);
    match ready(stream.message()) {
        Ok(Some(m)) => {
            // What decodes, encodes and decodes again to the same message.
            let again = T::decode(m.encode_to_vec().as_slice()).expect("a re-encoded message");
            assert_eq!(again.encode_to_vec(), m.encode_to_vec());
            Some(m)
        }
        Ok(None) => None,
        Err(status) => {
            if framed {
                assert_eq!(
                    status.code(),
                    Code::InvalidArgument,
                    "a message that does not decode: {}",
                    status.message()
                );
            }
            None
        }
    }
}

/// The gRPC side of `authorization`: `values` as the request's
/// `authorization` metadata (those that are ASCII metadata values),
/// through [`crate::grpc::call::Call`] to the credentials; the one value
/// they carry, if one (`crate::fuzzing` checks its API key).
pub fn grpc_credentials(values: &[&[u8]]) -> Option<String> {
    use tonic::metadata::{AsciiMetadataValue, MetadataMap};

    let mut metadata = MetadataMap::new();
    for v in values {
        if let Ok(v) = AsciiMetadataValue::try_from(*v) {
            metadata.append("authorization", v);
        }
    }
    let req = tonic::Request::from_parts(metadata, tonic::Extensions::default(), ());
    let (call, ()) = crate::grpc::call::Call::split(req);
    let creds = call.credentials();
    assert!(creds.authorization_count <= values.len());
    if creds.authorization_count == 1 {
        creds.authorization.map(str::to_owned)
    } else {
        None
    }
}
