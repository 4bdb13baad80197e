//! What every HTTP request goes through, around the routes: a request id
//! (the caller's `x-request-id` if usable, else a fresh one, echoed in the
//! response), one span and one `http request finished` line at DEBUG
//! (method, escaped path, status, `latency_us` from the request's arrival
//! to the end of its response), error responses of the layers below turned into
//! OAuth JSON, and the common headers (`X-Content-Type-Options: nosniff`,
//! a `default-src 'none'` Content-Security-Policy). [`no_store`] is the
//! header rule of token-bearing responses.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::HttpError;
use crate::core::credentials::{REQUEST_ID_HEADER, is_usable_request_id};
use crate::untrusted::Escaped;

/// The Content-Security-Policy of responses that set none: nothing may
/// load, nothing may frame them.
const CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The outermost layer of the router (see the module documentation).
pub(super) async fn around(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = ensure_request_id(req.headers_mut());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!(
        "http",
        method = %Escaped(method.as_str()),
        path = %Escaped(&path),
        request_id = %Escaped(request_id.to_str().unwrap_or_default()),
        caller = tracing::field::Empty,
    );
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status();
    if (status.is_client_error() || status.is_server_error())
        && !is_json(response.headers())
        && !is_html(response.headers())
    {
        let mut json = HttpError::for_status(status, method.as_str(), &path).into_response();
        // Keep what the layer below said besides its body (`Allow`).
        for (name, value) in response.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                json.headers_mut().insert(name.clone(), value.clone());
            }
        }
        response = json;
    }
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID_HEADER, request_id);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    let status = response.status().as_u16();
    response.map(|inner| {
        Body::new(TimedBody {
            inner,
            start,
            status,
            span,
        })
    })
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 section
/// 5.1), for every response that carries a token or a client secret. Use
/// as `axum::middleware::map_response(no_store)` on such a route.
pub async fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The request's id: the caller's `x-request-id` if usable, else a fresh
/// random one, set on the request for the handlers (and the audit trail).
fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(REQUEST_ID_HEADER) {
        if is_usable_request_id(v.as_bytes()) {
            return v.clone();
        }
    }
    let mut id = [0u8; 16];
    let value = crate::secret::fill_base62(&mut id)
        .ok()
        .and_then(|()| HeaderValue::from_bytes(&id).ok())
        .unwrap_or_else(|| HeaderValue::from_static("unknown"));
    headers.insert(REQUEST_ID_HEADER, value.clone());
    value
}

/// Whether the response is one of the browser flow's pages.
fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// Whether the response is JSON (`application/json` or a `+json` type).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .is_some_and(|essence| essence == "application/json" || essence.ends_with("+json"))
}

/// A response body that writes `http request finished` when it is
/// dropped: once it has been sent, or the connection went away.
struct TimedBody {
    inner: Body,
    start: Instant,
    status: u16,
    span: tracing::Span,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        finished(&self.span, self.status, self.start.elapsed());
    }
}

fn finished(span: &tracing::Span, status: u16, latency: Duration) {
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    tracing::debug!(parent: span, status, latency_us, "http request finished");
}

/// Cross-origin access (CORS) for MCP clients that run in a browser
/// (the MCP Inspector, web IDEs): any origin may read the answers of
/// these endpoints and send `Authorization` and `Content-Type`, without
/// credentials (no cookies: `Access-Control-Allow-Credentials` is never
/// sent), so a page can discover the metadata, register, and get and
/// revoke tokens with what it holds itself. Preflights are answered here,
/// cached by the browser for an hour; `WWW-Authenticate` and
/// `Retry-After` are readable by the page.
pub fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-protocol-version"),
        ])
        .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER])
        .max_age(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_request_id_is_kept_and_any_other_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-1"));
        assert_eq!(ensure_request_id(&mut headers), "abc-1");
        for bad in ["", "has space"] {
            let mut headers = HeaderMap::new();
            headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static(bad));
            let id = ensure_request_id(&mut headers);
            assert_eq!(id.len(), 16);
            assert_eq!(headers[REQUEST_ID_HEADER], id);
        }
        let mut headers = HeaderMap::new();
        assert_eq!(ensure_request_id(&mut headers).len(), 16);
    }

    #[test]
    fn json_is_told_by_the_content_type() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (ct, json) in [
            ("application/json", true),
            ("application/jwk-set+json", true),
            ("application/json; charset=utf-8", true),
            ("text/plain; charset=utf-8", false),
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_json(&headers), json, "{ct}");
        }
    }
}
