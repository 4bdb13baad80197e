//! Heap allocations per RPC on the hot verify path, counted with dhat's
//! allocator: the real server and a real tonic client in one process
//! (plaintext, so TLS buffers do not blur the count), a health check as
//! the baseline of what tonic itself allocates, then VerifyToken with a
//! token already verified once (the cached path) and with fresh tokens.
//!
//! `cargo bench --bench allocations` prints allocations per RPC for each,
//! and writes the dhat profile (allocation sites with backtraces) to
//! `target/dhat-allocations.json` for dhat's viewer (`dh_view.html`).
//! With `ALLOCATIONS_PROFILE=verify` it only makes cached VerifyToken
//! calls, so the profile's allocation sites are theirs alone.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use mcp_auth::config::TlsMode;
use mcp_auth::pb;
use mcp_auth::pb::token_service_client::TokenServiceClient;
use mcp_auth::{Clock, Config, Server};
use tonic::Request;
use tonic::transport::{Channel, Endpoint};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CALLS: u64 = 2_000;

fn with_key<T>(key: &str, message: T) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    req
}

async fn create(client: &mut TokenServiceClient<Channel>, key: &str) -> String {
    client
        .create_session(with_key(
            key,
            pb::CreateSessionRequest {
                subject: "user-42".to_owned(),
                scopes: vec!["tools:read".to_owned()],
                audience: "https://mcp.example.com".to_owned(),
                ttl_seconds: 0,
                session_lifetime_seconds: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .access_token
}

async fn verify(client: &mut TokenServiceClient<Channel>, key: &str, token: String) {
    let r = client
        .verify_token(with_key(
            key,
            pb::VerifyTokenRequest {
                token,
                audience: "https://mcp.example.com".to_owned(),
                required_scopes: vec![],
                client_address: String::new(),
            },
        ))
        .await
        .unwrap();
    assert!(r.get_ref().active);
}

/// Heap blocks allocated (process-wide) while `f` runs, per call.
async fn per_call<F: std::future::Future<Output = ()>>(calls: u64, f: F) -> f64 {
    let before = dhat::HeapStats::get().total_blocks;
    f.await;
    let after = dhat::HeapStats::get().total_blocks;
    (after - before) as f64 / calls as f64
}

fn main() {
    let profiler = dhat::Profiler::builder()
        .file_name("target/dhat-allocations.json")
        .build();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_test(dir.path()).unwrap();
        config.tls = TlsMode::Plaintext;
        // The rate limiter is not what is counted here.
        config.default_rate_limit = None;
        let server = Server::open(config, Clock::system()).await.unwrap();
        let key = server.new_primary_key().unwrap().expose().to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(server.serve(listener, std::future::pending()));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut tokens = TokenServiceClient::new(channel.clone());
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let token = create(&mut tokens, &key).await;
        if std::env::var("ALLOCATIONS_PROFILE").as_deref() == Ok("verify") {
            // Only cached verifies, so the profile's sites are theirs.
            for _ in 0..20 * CALLS {
                verify(&mut tokens, &key, token.clone()).await;
            }
            return;
        }
        let mut fresh = Vec::new();
        for _ in 0..CALLS {
            fresh.push(create(&mut tokens, &key).await);
        }
        // Warm up connection buffers, caches and the rate limiter.
        for _ in 0..500 {
            health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .unwrap();
            verify(&mut tokens, &key, token.clone()).await;
        }

        let h = per_call(CALLS, async {
            for _ in 0..CALLS {
                health
                    .check(tonic_health::pb::HealthCheckRequest::default())
                    .await
                    .unwrap();
            }
        })
        .await;
        // The token's clone is the client's own; count it out.
        let clone = per_call(CALLS, async {
            for _ in 0..CALLS {
                std::hint::black_box(token.clone());
            }
        })
        .await;
        let v = per_call(CALLS, async {
            for _ in 0..CALLS {
                verify(&mut tokens, &key, token.clone()).await;
            }
        })
        .await
            - clone;
        let u = per_call(CALLS, async {
            for t in fresh {
                verify(&mut tokens, &key, t).await;
            }
        })
        .await;
        println!("heap allocations per RPC (client and server, one process, plaintext h2c)");
        println!("  health check (tonic's own baseline)   {h:7.1}");
        println!("  VerifyToken, verified before (cached) {v:7.1}");
        println!("  VerifyToken, fresh token (uncached)   {u:7.1}");
        println!("  cached verify beyond the baseline     {:7.1}", v - h);
    });
    drop(profiler);
}
