//! The tower layers around every RPC: a request id for each (the
//! caller's if usable, else a fresh one), and one span and one
//! `rpc finished` line per call at DEBUG (so none at the default level),
//! timed from the request's arrival to the end of its response.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic::codegen::http::{Request, Response};
use tracing::Instrument;

use crate::grpc::call::{REQUEST_ID_HEADER, is_usable_request_id};
use crate::untrusted::Escaped;

/// Gives every request an `x-request-id`: the caller's if usable, else a
/// fresh random one, so logs and audit records of one RPC share it.
pub(super) fn ensure_request_id<B>(
    mut req: tonic::codegen::http::Request<B>,
) -> tonic::codegen::http::Request<B> {
    let usable = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .is_some_and(|v| is_usable_request_id(v.as_bytes()));
    if !usable {
        let mut id = [0u8; 16];
        if crate::secret::fill_base62(&mut id).is_ok() {
            if let Ok(value) = tonic::codegen::http::HeaderValue::from_bytes(&id) {
                req.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
        }
    }
    req
}

/// One span per RPC (method, request id, caller) and one `rpc finished`
/// line at DEBUG with the gRPC status and the latency: the time from the request's
/// arrival to the end of its response (its trailers, or the head of a
/// trailers-only refusal).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RpcLogLayer;

impl<S> tower::Layer<S> for RpcLogLayer {
    type Service = RpcLog<S>;

    fn layer(&self, inner: S) -> RpcLog<S> {
        RpcLog { inner }
    }
}

/// The service [`RpcLogLayer`] wraps around the routes.
#[derive(Clone, Debug)]
pub(super) struct RpcLog<S> {
    inner: S,
}

impl<S> tower::Service<Request<Body>> for RpcLog<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let start = Instant::now();
        let span = rpc_span(&req);
        let response = span.in_scope(|| self.inner.call(req));
        Box::pin(async move {
            let response = response.instrument(span.clone()).await?;
            // Refusals come as trailers-only responses: the status is in
            // the headers. Other calls carry it in the trailers.
            if let Some(status) = response.headers().get("grpc-status") {
                let code = status.to_str().ok().and_then(|s| s.parse::<i32>().ok());
                finished(&span, code, start.elapsed());
                return Ok(response);
            }
            Ok(response.map(|inner| {
                Body::new(TimedBody {
                    inner,
                    start,
                    span: Some(span),
                })
            }))
        })
    }
}

fn rpc_span(req: &Request<Body>) -> tracing::Span {
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "rpc",
        method = %Escaped(req.uri().path()),
        request_id = %request_id,
        caller = tracing::field::Empty,
    )
}

/// A response body that logs `rpc finished` when its trailers go out,
/// timed from the request's start.
struct TimedBody {
    inner: Body,
    start: Instant,
    /// Taken when the line is written.
    span: Option<tracing::Span>,
}

impl TimedBody {
    fn finish(&mut self, grpc_status: Option<i32>) {
        if let Some(span) = self.span.take() {
            finished(&span, grpc_status, self.start.elapsed());
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                // The status as a number (no copy of the header on the
                // hot path); `?` in the log for one that is not a number.
                let status = frame
                    .trailers_ref()
                    .and_then(|t| t.get("grpc-status"))
                    .map(|v| v.to_str().ok().and_then(|s| s.parse::<i32>().ok()));
                if let Some(code) = status {
                    self.finish(code);
                }
            }
            Poll::Ready(Some(Err(status))) => {
                let code = status.code() as i32;
                self.finish(Some(code));
            }
            Poll::Ready(None) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn finished(span: &tracing::Span, grpc_status: Option<i32>, latency: Duration) {
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    // The code's name is written straight into the log line (no String).
    match grpc_status.map(tonic::Code::from) {
        Some(code) => tracing::debug!(parent: span, outcome = ?code, latency_us, "rpc finished"),
        None => tracing::debug!(parent: span, outcome = "?", latency_us, "rpc finished"),
    }
}
