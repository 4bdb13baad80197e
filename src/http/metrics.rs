//! The layer that counts and times every HTTP request for the metrics
//! (`mcp_auth_requests_total`, `mcp_auth_request_duration_seconds`, with
//! `transport = http`): by method, the HTTP method (one of the standard
//! ones, else `OTHER`) and the route that served it as the router
//! declares it (`POST /token`; `unmatched` for a path no route serves,
//! never the path as sent), and by status, timed from the request's
//! arrival to the end of its response.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::telemetry;

/// The method label of a path no route serves.
const UNMATCHED: &str = "unmatched";

/// Counts and times the request (see the module documentation).
pub(super) async fn record(req: Request, next: Next) -> Response {
    if !telemetry::installed() {
        return next.run(req).await;
    }
    let start = Instant::now();
    let method = match req.extensions().get::<MatchedPath>() {
        Some(route) => format!("{} {}", verb(req.method()), route.as_str()),
        None => UNMATCHED.to_owned(),
    };
    let response = next.run(req).await;
    let code = telemetry::http_status_label(response.status().as_u16());
    response.map(|inner| {
        Body::new(CountedBody {
            inner,
            method,
            code,
            start,
        })
    })
}

/// The HTTP method as a label: a standard one, else `OTHER`.
fn verb(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// A response body that records the request when it is dropped: once it
/// has been sent, or the connection went away.
struct CountedBody {
    inner: Body,
    method: String,
    code: &'static str,
    start: Instant,
}

impl http_body::Body for CountedBody {
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

impl Drop for CountedBody {
    fn drop(&mut self) {
        let method = std::mem::take(&mut self.method);
        metrics::counter!(
            telemetry::REQUESTS,
            "transport" => "http",
            "method" => method.clone(),
            "code" => self.code
        )
        .increment(1);
        metrics::histogram!(
            telemetry::REQUEST_SECONDS,
            "transport" => "http",
            "method" => method
        )
        .record(self.start.elapsed());
    }
}
