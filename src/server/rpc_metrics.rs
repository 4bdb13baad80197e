//! The tower layer that counts and times every RPC for the metrics
//! (`mcp_auth_requests_total`, `mcp_auth_request_duration_seconds`, with
//! `transport = grpc`): by method, one of those the server serves (read
//! from its descriptor sets, so a path a caller makes up is `unknown`),
//! and by the gRPC status the call ended with, timed from the request's
//! arrival to the end of its response (its trailers, or the head of a
//! trailers-only refusal). A response dropped before its end (the caller
//! went away) counts as `CANCELLED`.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use metrics::{Counter, Histogram};
use prost::Message;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic::codegen::http::{Request, Response};

use crate::telemetry::{self, Family};

static REQUESTS: Family<Counter, 3> =
    Family::counters(telemetry::REQUESTS, ["transport", "method", "code"]);
static LATENCY: Family<Histogram, 2> =
    Family::histograms(telemetry::REQUEST_SECONDS, ["transport", "method"]);

/// The method label of a path no service serves.
const UNKNOWN: &str = "unknown";

/// Every `package.Service/Method` the gRPC listener serves.
fn methods() -> &'static HashSet<String> {
    static METHODS: OnceLock<HashSet<String>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut all = HashSet::new();
        for set in [
            crate::pb::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(files) = prost_types::FileDescriptorSet::decode(set) else {
                continue;
            };
            for file in files.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let service_name = service.name.unwrap_or_default();
                    for method in service.method {
                        all.insert(format!(
                            "{package}.{service_name}/{}",
                            method.name.unwrap_or_default()
                        ));
                    }
                }
            }
        }
        for reflection in ["grpc.reflection.v1", "grpc.reflection.v1alpha"] {
            all.insert(format!(
                "{reflection}.ServerReflection/ServerReflectionInfo"
            ));
        }
        all
    })
}

/// The method label of a request to `path`: the method it names if the
/// server serves it, else `unknown`.
pub(super) fn method_label(path: &str) -> &'static str {
    let name = path.strip_prefix('/').unwrap_or(path);
    methods().get(name).map_or(UNKNOWN, String::as_str)
}

/// Counts and times every RPC (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner }
    }
}

/// The service [`RpcMetricsLayer`] wraps around the routes.
#[derive(Clone, Debug)]
pub(super) struct RpcMetrics<S> {
    inner: S,
}

impl<S> tower::Service<Request<Body>> for RpcMetrics<S>
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
        if !telemetry::installed() {
            return Box::pin(self.inner.call(req));
        }
        let call = Call {
            method: method_label(req.uri().path()),
            start: Instant::now(),
        };
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            if let Some(status) = response.headers().get("grpc-status") {
                call.finish(status_code(status.as_bytes()));
                return Ok(response);
            }
            Ok(response.map(|inner| {
                Body::new(CountedBody {
                    inner,
                    call: Some(call),
                })
            }))
        })
    }
}

/// One RPC under way.
struct Call {
    method: &'static str,
    start: Instant,
}

impl Call {
    fn finish(self, code: i32) {
        let method = self.method;
        if let Some(c) = REQUESTS.get(["grpc", method, telemetry::grpc_code_name(code)]) {
            c.increment(1);
        }
        if let Some(h) = LATENCY.get(["grpc", method]) {
            h.record(self.start.elapsed());
        }
    }
}

/// A `grpc-status` value as a number; UNKNOWN (2) when it is none.
fn status_code(value: &[u8]) -> i32 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

/// A response body that records the call when its trailers go out, or
/// as `CANCELLED` when it is dropped before.
struct CountedBody {
    inner: Body,
    /// Taken when recorded.
    call: Option<Call>,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(|t| {
                t.get("grpc-status")
                    .map_or(2, |v| status_code(v.as_bytes()))
            }),
            Poll::Ready(Some(Err(status))) => Some(status.code() as i32),
            Poll::Ready(None) | Poll::Pending => None,
        };
        if let Some(code) = code {
            if let Some(call) = self.call.take() {
                call.finish(code);
            }
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

impl Drop for CountedBody {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(tonic::Code::Cancelled as i32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_are_labels() {
        assert_eq!(
            method_label("/mcp_auth.v1.TokenService/VerifyToken"),
            "mcp_auth.v1.TokenService/VerifyToken"
        );
        assert_eq!(
            method_label("/grpc.health.v1.Health/Check"),
            "grpc.health.v1.Health/Check"
        );
        assert_eq!(
            method_label("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        );
        for made_up in [
            "/mcp_auth.v1.TokenService/VerifyTokenX",
            "/mcp_auth.v1.TokenService/mcp_sk_secret",
            "/",
            "",
            "/x/y/z",
        ] {
            assert_eq!(method_label(made_up), "unknown", "{made_up}");
        }
    }
}
