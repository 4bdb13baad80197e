//! What the layer adds to a request with a cached verdict: a `tools/call`
//! POST through `McpAuthLayer` (credential taken, verdict from the cache,
//! body read and parsed, headers checked against it, scopes checked,
//! claims inserted) against the same request sent straight to the inner
//! service. `cargo bench -p mcp-auth-sdk --bench layer`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use mcp_auth_sdk::bench_support::{api_key_verified, seed_verdict};
use mcp_auth_sdk::{Clock, Mode, Protection, ScopeMap, Verifier};
use tower::{Layer, Service, ServiceExt};

const ISS: &str = "https://auth.example";
const AUD: &str = "https://mcp.example/mcp";
const KEY: &str = "mcp_sk_0123456789abcdefghijklmnopqrstuvwxyzABCDEF";
const BODY: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add_note","arguments":{"text":"a note of a few words"}}}"#;

fn request() -> Request<Full<Bytes>> {
    Request::post(AUD)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "add_note")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap()
}

async fn ok(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Online: nothing listens on port 1, so only the cache answers.
    let verifier = rt
        .block_on(
            Verifier::builder(AUD)
                .issuer(ISS)
                .mode(Mode::Online)
                .grpc("https://127.0.0.1:1")
                .api_key("mcp_sk_bench")
                .clock(Clock::manual(1_800_000_000))
                .build(),
        )
        .expect("verifier");
    seed_verdict(
        &verifier,
        KEY,
        api_key_verified("key_0123456789abcdefghijkl", &["tools:read", "tools:call"]),
    );
    let scopes = ScopeMap::new()
        .method("tools/list", ["tools:read"])
        .tool("add_note", ["tools:call"]);
    let protected = Protection::new(verifier, scopes)
        .expect("protection")
        .layer()
        .layer(tower::service_fn(ok));
    let bare = tower::service_fn(ok);

    let resp = rt.block_on(protected.clone().oneshot(request())).unwrap();
    assert_eq!(resp.status(), 200, "the cached verdict serves");

    c.bench_function("inner service alone", |b| {
        b.iter(|| rt.block_on(bare.oneshot(request())).unwrap())
    });
    c.bench_function("through McpAuthLayer (cached verdict)", |b| {
        b.iter(|| {
            let mut s = protected.clone();
            rt.block_on(async move {
                ServiceExt::<Request<Full<Bytes>>>::ready(&mut s)
                    .await
                    .unwrap()
                    .call(request())
                    .await
                    .unwrap()
            })
        })
    });
}

criterion_group!(benches, layer);
criterion_main!(benches);
