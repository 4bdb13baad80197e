//! Criterion benches for the pieces on the request hot path: token sign
//! and verify (both algorithms, with and without the verified-token
//! cache), API-key lookup, revocation lookup, the rate-limit check, an
//! audit append, and one storage write with and without flush.
//! `cargo bench --bench hot_path`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_auth::SigningAlg;
use mcp_auth::bench_support::Fixture;

fn hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for alg in [SigningAlg::EdDSA, SigningAlg::ES256] {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = rt.block_on(Fixture::new(dir.path(), alg)).expect("fixture");
        let token = f.sign().expect("sign");
        c.bench_function(&format!("token sign {}", alg.as_str()), |b| {
            b.iter(|| f.sign().expect("sign"))
        });
        c.bench_function(&format!("token verify {} uncached", alg.as_str()), |b| {
            b.iter(|| assert!(f.verify_uncached(&token)))
        });
        c.bench_function(&format!("token verify {} cached", alg.as_str()), |b| {
            b.iter(|| assert!(f.verify(&token)))
        });
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let f = rt
        .block_on(Fixture::new(dir.path(), SigningAlg::EdDSA))
        .expect("fixture");
    c.bench_function("api key lookup", |b| b.iter(|| assert!(f.api_key_lookup())));
    c.bench_function("revocation lookup", |b| {
        b.iter(|| assert!(!f.revocation_lookup()))
    });
    c.bench_function("rate limit check", |b| b.iter(|| f.limiter_check()));
    let mut m = 0u64;
    c.bench_function("session write (no flush)", |b| {
        b.to_async(&rt).iter(|| {
            m += 1;
            let f = &f;
            let m = m;
            async move { f.session_write(m).await.expect("write") }
        })
    });
    c.bench_function("audit append (no flush)", |b| {
        b.to_async(&rt).iter(|| f.audit_append())
    });
    let mut n = 0u64;
    c.bench_function("durable session write (insert + flush)", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let f = &f;
            let n = n;
            async move { f.durable_write(n).await.expect("write") }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = hot_path
}
criterion_main!(benches);
