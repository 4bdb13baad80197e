//! The tower layers around every RPC: a request id for each (the
//! caller's if usable, else a fresh one), and one span and one
//! `rpc finished` line per call.

use std::time::Duration;

use crate::grpc::call::{REQUEST_ID_HEADER, is_usable_request_id};

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
/// line with the gRPC status and the latency.
pub(super) fn rpc_trace_layer() -> tower_http::trace::TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::GrpcErrorsAsFailures>,
    impl tower_http::trace::MakeSpan<tonic::body::Body> + Clone,
    (),
    impl tower_http::trace::OnResponse<tonic::body::Body> + Clone,
    (),
    impl tower_http::trace::OnEos + Clone,
    impl tower_http::trace::OnFailure<tower_http::classify::GrpcFailureClass> + Clone,
> {
    use tonic::codegen::http;
    tower_http::trace::TraceLayer::new_for_grpc()
        .make_span_with(|req: &http::Request<tonic::body::Body>| {
            let request_id = req
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!(
                "rpc",
                method = %req.uri().path(),
                request_id = %request_id,
                caller = tracing::field::Empty,
            )
        })
        .on_request(())
        .on_body_chunk(())
        // Refusals come as trailers-only responses: the status is in the
        // headers. Successful calls carry it in the trailers.
        .on_response(
            |res: &http::Response<tonic::body::Body>, latency: Duration, span: &tracing::Span| {
                if let Some(status) = res.headers().get("grpc-status") {
                    finished(span, status.to_str().unwrap_or("?"), latency);
                }
            },
        )
        .on_eos(
            |trailers: Option<&http::HeaderMap>, latency: Duration, span: &tracing::Span| {
                if let Some(status) = trailers.and_then(|t| t.get("grpc-status")) {
                    finished(span, status.to_str().unwrap_or("?"), latency);
                }
            },
        )
        .on_failure(|_: tower_http::classify::GrpcFailureClass, _: Duration, _: &tracing::Span| {})
}

fn finished(span: &tracing::Span, grpc_status: &str, latency: Duration) {
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    // The code's name is written straight into the log line (no String).
    match grpc_status.parse::<i32>().map(tonic::Code::from) {
        Ok(code) => tracing::info!(parent: span, outcome = ?code, latency_us, "rpc finished"),
        Err(_) => tracing::info!(parent: span, outcome = %grpc_status, latency_us, "rpc finished"),
    }
}
