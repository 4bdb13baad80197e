//! `GET /jwks`: the public signing keys as a JWK Set (RFC 7517), the same
//! document as gRPC's `GetJwks`. No credential needed. Cacheable for a
//! minute: a verifier that meets a `kid` it does not know fetches again.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::App;

/// The media type of a JWK Set (RFC 7517 section 8.5.1).
pub const JWK_SET_CONTENT_TYPE: &str = "application/jwk-set+json";
/// How long clients may cache the JWK Set.
const CACHE_CONTROL: &str = "public, max-age=60";

/// `GET` of the JWK Set.
pub(super) async fn get(State(app): State<App>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(JWK_SET_CONTENT_TYPE),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(CACHE_CONTROL),
            ),
        ],
        app.core.jwks_json(),
    )
        .into_response()
}
