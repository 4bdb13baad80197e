//! Hostile clients against the real server process: thousands of
//! generated hostile inputs over gRPC and HTTP — garbage protobuf for every
//! method, forged and confused tokens (`alg: none`, HS256 keyed with the
//! public key, embedded `jwk`/`jku`/`x5u`/`x5c` headers, spliced
//! signatures, tampered claims, random mutations of a real token),
//! malformed `authorization` values, garbage bodies for every OAuth
//! endpoint — and hundreds of idle connections held open while a normal
//! client must still be served. Nothing may come back INTERNAL, UNKNOWN or
//! 5xx, the process must live, its memory stay bounded, and no line it
//! wrote (at `debug`, the most it says) may hold a secret or a token.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth::grpc::client::{Client, RetryPolicy};
use mcp_auth::pb;
use prost::bytes::{Buf, BufMut, Bytes};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

use crate::common::{spawn_binary_logging, strings};

/// Sends bytes as they are, reads the answer's bytes as they are.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// A deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Every unary method of the proto, as gRPC paths.
fn unary_methods() -> Vec<String> {
    let proto = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proto/mcp_auth/v1/mcp_auth.proto"
    ))
    .unwrap();
    let mut service = String::new();
    let mut paths = Vec::new();
    for line in proto.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("service ") {
            service = rest.split_whitespace().next().unwrap().to_owned();
        } else if let Some(rest) = line.strip_prefix("rpc ") {
            if line.contains("stream ") {
                continue;
            }
            let name = rest.split('(').next().unwrap().trim();
            paths.push(format!("/mcp_auth.v1.{service}/{name}"));
        }
    }
    assert!(paths.len() > 30, "{paths:?}");
    paths
}

/// Garbage messages: random bytes, fields with lengths past the end,
/// strings that are not UTF-8, wrong wire types, deep nesting, a field
/// too big for the server's limit.
fn garbage(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = vec![
        vec![],
        vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], // length past the end
        vec![0x0a, 0x02, 0xff, 0xfe],             // not UTF-8
        vec![0x0b; 64],                           // start-group tags
        vec![
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ], // varint too long
        vec![0x0d, 0x00],                         // truncated fixed32
        vec![0x7f],                               // reserved wire type
        [0x0a, 0x7f].repeat(400),                 // nested lengths
    ];
    // Field 1 as a 3 MiB string: beyond the 4 MiB-ish default? Near it.
    let mut big = vec![0x0a, 0x80, 0x80, 0xc0, 0x01];
    big.extend(std::iter::repeat_n(b'a', 3 << 20));
    out.push(big);
    for _ in 0..30 {
        let n = rng.below(256);
        out.push(rng.bytes(n));
    }
    out
}

/// Not a fault of the server's.
fn assert_not_internal(status: &Status, what: &str) {
    assert!(
        !matches!(
            status.code(),
            Code::Internal | Code::Unknown | Code::DataLoss
        ),
        "{what}: {:?} {}",
        status.code(),
        status.message()
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Forged and confused tokens made from a real one (`good`, another real
/// one `other`) and the server's JWK Set.
fn forgeries(good: &str, other: &str, jwks: &str) -> Vec<(String, String)> {
    let parts: Vec<&str> = good.split('.').collect();
    let other_parts: Vec<&str> = other.split('.').collect();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let payload = parts[1];
    let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
    let mut out = Vec::new();
    // alg none, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = enc(serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": kid}));
        out.push((format!("alg {alg}"), format!("{h}.{payload}.")));
        out.push((
            format!("alg {alg} signed"),
            format!("{h}.{payload}.{}", parts[2]),
        ));
    }
    // HS256 keyed with the public key, in the forms a confused verifier
    // might use.
    let jwk: serde_json::Value = serde_json::from_str(jwks).unwrap();
    let first = &jwk["keys"][0];
    let mut keys: Vec<(String, Vec<u8>)> = vec![
        ("the JWK Set".into(), jwks.as_bytes().to_vec()),
        ("the JWK".into(), serde_json::to_vec(first).unwrap()),
    ];
    if let Some(x) = first["x"].as_str() {
        keys.push(("x".into(), URL_SAFE_NO_PAD.decode(x).unwrap()));
        keys.push(("x as text".into(), x.as_bytes().to_vec()));
    }
    for alg in ["HS256", "HS384", "HS512"] {
        for (name, key) in &keys {
            let h = serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": kid});
            let jalg = match alg {
                "HS256" => jsonwebtoken::Algorithm::HS256,
                "HS384" => jsonwebtoken::Algorithm::HS384,
                _ => jsonwebtoken::Algorithm::HS512,
            };
            let mut header = jsonwebtoken::Header::new(jalg);
            header.kid = Some(kid.clone());
            header.typ = Some("at+jwt".into());
            let claims: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
            let token = jsonwebtoken::encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(key),
            )
            .unwrap();
            let _ = h;
            out.push((format!("{alg} keyed with {name}"), token));
        }
    }
    // An attacker's own key, announced in the header.
    let attacker = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    )
    .unwrap();
    let pkcs8 = attacker.to_pkcs8v1().unwrap();
    let encoding = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    let attacker_jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"});
    for (name, extra) in [
        ("jwk", serde_json::json!({"jwk": attacker_jwk})),
        (
            "jku",
            serde_json::json!({"jku": "https://attacker.example/jwks.json"}),
        ),
        (
            "x5u",
            serde_json::json!({"x5u": "https://attacker.example/cert.pem"}),
        ),
        ("x5c", serde_json::json!({"x5c": ["MIIBaaaa"]})),
        ("unknown kid", serde_json::json!({"kid": "attacker"})),
        (
            "kid path",
            serde_json::json!({"kid": "../../../../etc/passwd"}),
        ),
        ("kid huge", serde_json::json!({"kid": "k".repeat(100_000)})),
    ] {
        let mut h = serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        let input = format!("{}.{payload}", enc(h));
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &encoding, jsonwebtoken::Algorithm::ES256)
                .unwrap();
        out.push((
            format!("attacker key with {name}"),
            format!("{input}.{sig}"),
        ));
    }
    // Spliced: one token's header and claims, another's signature; and
    // claims tampered under the real signature.
    out.push((
        "spliced signature".into(),
        format!("{}.{}.{}", parts[0], parts[1], other_parts[2]),
    ));
    out.push((
        "spliced claims".into(),
        format!("{}.{}.{}", parts[0], other_parts[1], parts[2]),
    ));
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    for (field, value) in [
        ("scope", serde_json::json!("tools:read tools:call admin")),
        ("sub", serde_json::json!("root")),
        ("exp", serde_json::json!(4_000_000_000i64)),
        ("aud", serde_json::json!(["aud", "other"])),
        ("iss", serde_json::json!("https://attacker.example")),
    ] {
        let mut c = claims.clone();
        c[field] = value;
        out.push((
            format!("tampered {field}"),
            format!("{}.{}.{}", parts[0], enc(c), parts[2]),
        ));
    }
    claims["exp"] = serde_json::json!("soon");
    out.push((
        "exp as text".into(),
        format!("{}.{}.{}", parts[0], enc(claims), parts[2]),
    ));
    // Shapes.
    for (name, t) in [
        ("empty", String::new()),
        ("dots", "....".to_owned()),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
        ("four parts", format!("{good}.{}", parts[2])),
        (
            "padding",
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        ),
        ("whitespace", format!(" {good} ")),
        ("json", "{\"alg\":\"none\"}".to_owned()),
        ("huge", "a".repeat(1 << 20)),
    ] {
        out.push((name.to_owned(), t));
    }
    out
}

/// Whether `a` and `b` decode to the same three parts.
fn same_decoded(a: &str, b: &str) -> bool {
    let d = |t: &str| -> Option<Vec<Vec<u8>>> {
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() != 3 {
            return None;
        }
        parts
            .iter()
            .map(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .collect()
    };
    matches!((d(a), d(b)), (Some(x), Some(y)) if x == y)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_hostile_inputs_get_clear_refusals_and_nothing_secret_is_logged() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let dir = tempfile::tempdir().unwrap();
    let (log, mut logged) = tokio::sync::mpsc::unbounded_channel();
    let server = spawn_binary_logging(
        dir.path(),
        &["--auth-failures-per-minute", "1000000"],
        Some("debug"),
        Some(log),
    )
    .await;
    let pid = server.child.id().unwrap();
    let ca = dir.path().join("tls/ca.pem");
    let primary = server.primary.clone().unwrap();
    let ch = crate::common::connect(&server.url, &ca).await;
    let admin = Client::from_channel(ch.clone(), Some(primary.clone()))
        .unwrap()
        .with_retry(RetryPolicy::never());
    let verifier = admin
        .create_api_key(pb::CreateApiKeyRequest {
            name: "verifier".into(),
            scopes: strings(&["tokens:verify"]),
            expires_at: 0,
            rate_limit: None,
        })
        .await
        .unwrap()
        .secret;
    let session = |subject: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .create_session(pb::CreateSessionRequest {
                    subject: subject.into(),
                    scopes: strings(&["tools:read"]),
                    audience: "aud".into(),
                    ttl_seconds: 0,
                    session_lifetime_seconds: 0,
                })
                .await
                .unwrap()
        }
    };
    let (good, other) = (session("alice").await, session("bob").await);
    let jwks = admin
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .jwks_json;
    let rss_before = rss_kib(pid);
    let mut tried = 0usize;

    // 1. Garbage protobuf, every unary method, with a valid credential
    //    and without.
    let mut raw = tonic::client::Grpc::new(ch.clone());
    let methods = unary_methods();
    for path in &methods {
        for body in garbage(&mut rng) {
            for key in [Some(&primary), None] {
                raw.ready().await.unwrap();
                let mut req = tonic::Request::new(Bytes::from(body.clone()));
                if let Some(key) = key {
                    req.metadata_mut()
                        .insert("authorization", format!("Bearer {key}").parse().unwrap());
                }
                let answer = raw.unary(req, path.parse().unwrap(), RawCodec).await;
                if let Err(status) = answer {
                    assert_not_internal(&status, &format!("{path} with {} bytes", body.len()));
                }
                tried += 1;
            }
        }
    }
    let protobuf_inputs = tried;

    // 2. Forged, confused and mutated tokens, at VerifyToken and at
    //    /introspect.
    let verify = Client::from_channel(ch.clone(), Some(verifier.clone()))
        .unwrap()
        .with_retry(RetryPolicy::never());
    let http = crate::common::http_client_trusting(&ca);
    let mut tokens = forgeries(&good.access_token, &other.access_token, &jwks);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    for i in 0..1500 {
        let mut t = good.access_token.clone().into_bytes();
        match i % 3 {
            0 => {
                let at = rng.below(t.len());
                t[at] = alphabet[rng.below(alphabet.len())];
            }
            1 => {
                let at = rng.below(t.len());
                t.truncate(at);
            }
            _ => {
                let at = rng.below(t.len());
                let n = rng.below(8) + 1;
                let junk = rng.bytes(n);
                t.splice(
                    at..at,
                    junk.iter().map(|b| alphabet[*b as usize % alphabet.len()]),
                );
            }
        }
        tokens.push((format!("mutation {i}"), String::from_utf8(t).unwrap()));
    }
    for (i, (name, token)) in tokens.iter().enumerate() {
        let answer = verify
            .verify_token(pb::VerifyTokenRequest {
                token: token.clone(),
                audience: String::new(),
                required_scopes: vec![],
                client_address: String::new(),
            })
            .await;
        match answer {
            Ok(v) => assert!(
                !v.active || same_decoded(token, &good.access_token),
                "{name} verified: {v:?}"
            ),
            Err(status) => assert_not_internal(&status, name),
        }
        if i % 4 == 0 || !name.starts_with("mutation") {
            let resp = http
                .post(format!("{}/introspect", server.http_url))
                .bearer_auth(&verifier)
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            let status = resp.status();
            assert!(
                status.is_client_error() || status.is_success(),
                "{name}: {status}"
            );
            if status.is_success() {
                let body: serde_json::Value = resp.json().await.unwrap();
                assert!(
                    body["active"] == false || same_decoded(token, &good.access_token),
                    "{name} introspected active: {body}"
                );
            }
            tried += 1;
        }
        tried += 1;
    }
    let token_inputs = tried - protobuf_inputs;

    // 3. Malformed authorization values, at gRPC and HTTP.
    let fake = format!("mcp_sk_{}", "Q".repeat(43));
    let mut values: Vec<String> = vec![
        "".into(),
        "Bearer".into(),
        "Bearer ".into(),
        "Bearer  x".into(),
        format!("bearer {fake}"),
        format!("Bearer {fake}"),
        format!("Bearer {fake} extra"),
        format!("Bearer {primary}x"),
        format!("Bearer {}", &primary[..primary.len() - 1]),
        format!("Basic {fake}"),
        "Basic !!!".into(),
        "Basic Og==".into(),
        format!("Bearer {}", "a".repeat(9000)),
        format!("Bearer mcp_sk_{}", "é".repeat(30)),
        format!("Bearer {}", good.access_token),
        format!("Bearer {}", good.refresh_token),
        "Bearer mcp_sk_".into(),
        "Bearer mcp_sk_/../../".into(),
        "Negotiate abc".into(),
        format!("Bearer\t{fake}"),
    ];
    for _ in 0..200 {
        let n = rng.below(80) + 1;
        let junk: String = rng
            .bytes(n)
            .iter()
            .map(|b| (b' ' + b % 95) as char)
            .collect();
        values.push(format!("Bearer mcp_sk_{junk}"));
    }
    for value in &values {
        let mut req = tonic::Request::new(pb::WhoAmIRequest {});
        if let Ok(v) = value.parse() {
            req.metadata_mut().insert("authorization", v);
        }
        let answer = pb::token_service_client::TokenServiceClient::new(ch.clone())
            .who_am_i(req)
            .await;
        if let Err(status) = answer {
            assert_not_internal(&status, value);
        }
        let resp = http
            .post(format!("{}/introspect", server.http_url))
            .header("authorization", value.as_str())
            .form(&[("token", good.access_token.as_str())])
            .send()
            .await;
        if let Ok(resp) = resp {
            assert!(
                !resp.status().is_server_error(),
                "{value}: {}",
                resp.status()
            );
        }
        tried += 2;
    }

    // 4. Garbage bodies at every OAuth endpoint.
    let endpoints = [
        "/token",
        "/register",
        "/introspect",
        "/revoke",
        "/login",
        "/consent",
    ];
    let types = [
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        "",
    ];
    let mut bodies: Vec<Vec<u8>> = vec![
        b"grant_type=%zz".to_vec(),
        b"grant_type=client_credentials&grant_type=client_credentials".to_vec(),
        "a=b&".repeat(5000).into_bytes(),
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        b"{\"redirect_uris\": [\"javascript:alert(1)\"]}".to_vec(),
        b"{\"redirect_uris\": \"x\", \"client_name\": {\"a\": 1}}".to_vec(),
        vec![b'x'; 3 << 20],
    ];
    for _ in 0..20 {
        let n = rng.below(512);
        bodies.push(rng.bytes(n));
    }
    for path in endpoints {
        for body in &bodies {
            for ty in types {
                let mut req = http
                    .post(format!("{}{path}", server.http_url))
                    .body(body.clone());
                if !ty.is_empty() {
                    req = req.header("content-type", ty);
                }
                if let Ok(resp) = req.send().await {
                    assert!(
                        !resp.status().is_server_error(),
                        "{path} {ty} {} bytes: {}",
                        body.len(),
                        resp.status()
                    );
                }
                tried += 1;
            }
        }
    }
    for query in [
        "",
        "?response_type=code",
        "?client_id=%zz",
        "?x=1&x=2&x=3",
        "?client_id=a&redirect_uri=javascript:alert(1)",
    ] {
        let resp = http
            .get(format!("{}/authorize{query}", server.http_url))
            .send()
            .await
            .unwrap();
        assert!(!resp.status().is_server_error(), "/authorize{query}");
        tried += 1;
    }

    // 5. Hundreds of idle connections, some past their TLS handshake,
    //    while a normal client must still be served.
    let grpc_addr = server.url.trim_start_matches("https://").to_owned();
    let http_addr = server.http_url.trim_start_matches("https://").to_owned();
    let grpc_addr = grpc_addr.replace("localhost", "127.0.0.1");
    let http_addr = http_addr.replace("localhost", "127.0.0.1");
    let mut idle = Vec::new();
    for i in 0..400 {
        let addr = if i % 2 == 0 { &grpc_addr } else { &http_addr };
        let mut tcp = tokio::net::TcpStream::connect(addr.as_str()).await.unwrap();
        if i % 4 == 1 {
            // Half a TLS ClientHello, then nothing.
            let _ = tokio::io::AsyncWriteExt::write_all(
                &mut tcp,
                &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01],
            )
            .await;
        }
        idle.push(tcp);
    }
    let started = Instant::now();
    let fresh = crate::common::connect(&server.url, &ca).await;
    let served = Client::from_channel(fresh, Some(verifier.clone()))
        .unwrap()
        .with_retry(RetryPolicy::never());
    let v = tokio::time::timeout(
        Duration::from_secs(5),
        served.verify_token(pb::VerifyTokenRequest {
            token: good.access_token.clone(),
            audience: String::new(),
            required_scopes: vec![],
            client_address: String::new(),
        }),
    )
    .await
    .expect("a normal client waited more than 5 s behind 400 idle connections")
    .unwrap();
    assert!(v.active);
    let meta = tokio::time::timeout(
        Duration::from_secs(5),
        crate::common::http_client_trusting(&ca)
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                server.http_url
            ))
            .send(),
    )
    .await
    .expect("a normal HTTP client waited more than 5 s")
    .unwrap();
    assert!(meta.status().is_success());
    let served_in = started.elapsed();
    drop(idle);

    // Alive, bounded.
    let rss_after = rss_kib(pid);
    admin.who_am_i().await.expect("the server lives");
    assert!(
        rss_after < rss_before + 256 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );

    // 6. No line holds a secret or a token.
    let mut lines = Vec::new();
    while let Ok(line) = logged.try_recv() {
        lines.push(line);
    }
    let secrets = [
        primary.as_str(),
        verifier.as_str(),
        good.access_token.as_str(),
        good.refresh_token.as_str(),
        other.access_token.as_str(),
        other.refresh_token.as_str(),
        fake.as_str(),
    ];
    for line in &lines {
        for secret in secrets {
            // The secret part of a key, past its public prefix.
            let tail = &secret[secret.len().saturating_sub(24)..];
            assert!(!line.contains(tail), "a log line holds a secret: {line}");
        }
        assert!(
            !line.contains("mcp_sk_Q"),
            "a log line holds a presented key: {line}"
        );
    }
    let figures = format!(
        "hostile clients: {tried} hostile inputs ({protobuf_inputs} garbage protobuf messages \
         over {} methods, {token_inputs} forged, confused or mutated tokens, {} authorization \
         values, garbage bodies at {} endpoints), none INTERNAL or 5xx; a normal client served \
         in {} ms behind 400 idle connections; RSS {} -> {} MiB; {} log lines scanned, no secret",
        methods.len(),
        values.len(),
        endpoints.len(),
        served_in.as_millis(),
        rss_before / 1024,
        rss_after / 1024,
        lines.len()
    );
    crate::common::report_figures("hostile_clients", &figures);
}

/// The `grpc_request` fuzz target (fuzz/, through `grpc::fuzzing`)
/// decodes every request message of the proto: a new RPC's request
/// left out of its list fails here.
#[test]
fn the_grpc_fuzz_target_covers_every_request_message() {
    let root = env!("CARGO_MANIFEST_DIR");
    let proto =
        std::fs::read_to_string(format!("{root}/proto/mcp_auth/v1/mcp_auth.proto")).unwrap();
    let fuzzing = std::fs::read_to_string(format!("{root}/src/grpc/fuzzing.rs")).unwrap();
    let requests: std::collections::BTreeSet<&str> = proto
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .filter_map(|rest| rest.split_once('(').map(|(_, r)| r))
        .filter_map(|r| {
            r.split_once(')')
                .map(|(r, _)| r.trim_start_matches("stream ").trim())
        })
        .collect();
    assert!(requests.len() > 30, "{requests:?}");
    for request in requests {
        assert!(
            fuzzing.contains(&format!("\"{request}\" => ")),
            "{request} is not decoded by the grpc_request fuzz target (src/grpc/fuzzing.rs)"
        );
    }
}
