//! `mcp-auth bench`: load against a running server, like `redis-benchmark`
//! or `vault-benchmark`. It creates what its scenarios need (a bench key
//! with a high rate limit, sessions, tokens) before the clock starts, then
//! runs `--concurrency` callers over `--connections` connections for
//! `--duration` seconds (or `--requests` calls) after `--warmup`, and
//! reports RPC/s, latency percentiles and errors by status code. A failed
//! call never counts as throughput. Several scenarios in one run
//! (`--scenario health,verify,...`) are measured one after the other and
//! compared, so their ratios hold on a noisy machine.
//!
//! `--seed-sessions N` instead fills a stopped server's data directory with
//! N live sessions, for measuring at scale.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, ValueEnum};
use tonic::Request;
use tonic::transport::Channel;

use super::ClientOpts;
use super::client::{CliError, authed, connect};
use crate::clock::Clock;
use crate::pb;
use crate::pb::api_key_service_client::ApiKeyServiceClient;
use crate::pb::token_service_client::TokenServiceClient;
use crate::secret::SecretHash;
use crate::service::new_id;
use crate::store::{RefreshRecord, SessionRecord, Store};

/// What the load consists of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// The gRPC health check: the transport's ceiling.
    Health,
    /// VerifyToken over a pool of `--tokens` valid tokens, each verified
    /// many times.
    Verify,
    /// VerifyToken with a token never verified before on every call (a
    /// pool of `--tokens`, each used once; the run ends if it runs out).
    VerifyUncached,
    /// The bare signature check of a token, on this machine's cores, with
    /// no server: what `verify-uncached` is compared with.
    Signature,
    /// CreateSession, each durable before the reply.
    CreateSession,
    /// RefreshSession chains, one per caller.
    Refresh,
    /// A weighted mix of verify, create-session and refresh.
    Mixed,
}

impl Scenario {
    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

/// Options of `mcp-auth bench`.
#[derive(Clone, Debug, Args)]
pub struct BenchArgs {
    /// The scenario, or several separated by commas (run in turn and
    /// compared).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "verify")]
    pub scenario: Vec<Scenario>,
    /// Talk plain HTTP/2 to a server started with --plaintext.
    #[arg(long)]
    pub plaintext: bool,
    /// Connections to open (calls are spread over them).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Concurrent callers.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds to measure (ignored with --requests).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Stop after this many calls instead of after --duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Seconds of unmeasured load first.
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Distinct valid tokens to create first: for verify (default 1000)
    /// and verify-uncached (default 25,000 per second of warm-up and
    /// measurement).
    #[arg(long)]
    pub tokens: Option<usize>,
    /// Weights for --scenario mixed: verify,create-session,refresh.
    #[arg(long, default_value = "90,9,1")]
    pub mix: String,
    /// Instead of running load, add this many live sessions (1% of them
    /// revoked) to the data directory of a stopped server, and exit.
    #[arg(long, value_name = "N")]
    pub seed_sessions: Option<u64>,
    /// The data directory for --seed-sessions.
    #[arg(long, env = "MCP_AUTH_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// How to reach the server (with an admin key in MCP_AUTH_API_KEY).
    #[command(flatten)]
    pub opts: ClientOpts,
}

/// The result of one scenario, as `--json` prints it.
#[derive(Debug, serde::Serialize)]
pub struct BenchReport {
    /// The scenario's name.
    pub scenario: String,
    /// Successful calls per second.
    pub rpc_per_sec: f64,
    /// Latency percentiles of successful calls, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Successful calls.
    pub ok: u64,
    /// Failed calls by gRPC status code name.
    pub errors: BTreeMap<String, u64>,
}

#[derive(Clone, Copy)]
enum Call {
    Health,
    Verify,
    VerifyFresh,
    Create,
    Refresh,
}

/// What the scenarios share: the bench key, and each scenario's tokens.
struct Fixture {
    key: String,
    tokens: Vec<String>,
    /// Next unused token of `tokens`, for verify-uncached.
    next_fresh: AtomicUsize,
}

/// A call's outcome; `Exhausted` ends the caller (no fresh token left);
/// `Setup` was preparation (a refresh chain's new session), not measured.
enum Outcome {
    Ok,
    Failed(tonic::Code),
    Exhausted,
    Setup,
}

/// Refreshes per chain before the refresh scenario starts a new session,
/// as clients do (a session's refresh tokens are remembered for reuse
/// detection until it ends, so an endless chain is not a real workload).
const REFRESH_CHAIN: u32 = 100;

/// Runs the benchmark and prints the report.
///
/// # Errors
/// The server cannot be reached or the setup calls fail.
pub async fn run(mut args: BenchArgs) -> Result<u8, CliError> {
    if let Some(n) = args.seed_sessions {
        return seed(&args.data_dir, n).await;
    }
    if args.plaintext {
        args.opts.server = args.opts.server.replacen("https://", "http://", 1);
    }
    let mix = parse_mix(&args.mix)?;
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&args.opts).await?);
    }
    let key = create_bench_key(&args, &channels[0]).await?;
    let mut reports = Vec::new();
    for &scenario in &args.scenario {
        let report = if scenario == Scenario::Signature {
            signature(&args, &channels[0], &key).await?
        } else {
            let tokens = match scenario {
                Scenario::Verify | Scenario::Mixed => args.tokens.unwrap_or(1000),
                Scenario::VerifyUncached => args.tokens.unwrap_or_else(|| {
                    25_000 * usize::try_from(args.warmup + args.duration).unwrap_or(1)
                }),
                _ => 0,
            };
            let fixture = Fixture {
                tokens: create_tokens(&args, &channels, &key, tokens).await?,
                key: key.clone(),
                next_fresh: AtomicUsize::new(0),
            };
            load(&args, scenario, &mix, &channels, Arc::new(fixture)).await?
        };
        if args.opts.json {
            // One line per scenario (JSON Lines), so several scenarios in
            // one run stay easy to read with a script.
            let line = serde_json::to_string(&report)
                .map_err(|e| CliError::Usage(format!("cannot print JSON: {e}")))?;
            outln!("{line}");
        } else {
            print_report(&report);
        }
        reports.push(report);
    }
    if !args.opts.json && reports.len() > 1 {
        print_ratios(&reports);
    }
    Ok(if reports.iter().all(|r| r.errors.is_empty()) {
        0
    } else {
        1
    })
}

fn print_report(report: &BenchReport) {
    outln!("scenario     {}", report.scenario);
    outln!("RPC/s        {:.0}", report.rpc_per_sec);
    outln!(
        "latency ms   p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        report.p50_ms,
        report.p90_ms,
        report.p99_ms,
        report.max_ms
    );
    outln!("ok           {}", report.ok);
    if report.errors.is_empty() {
        outln!("errors       none");
    }
    for (code, n) in &report.errors {
        outln!("errors       {code}: {n}");
    }
    outln!();
}

/// The comparisons the performance targets are stated in, for the
/// scenarios this run measured.
fn print_ratios(reports: &[BenchReport]) {
    let rate = |name: &str| {
        reports
            .iter()
            .find(|r| r.scenario == name)
            .map(|r| r.rpc_per_sec)
    };
    let pairs = [
        ("verify", "health", 70),
        ("verify-uncached", "signature", 90),
        ("create-session", "verify", 40),
    ];
    let mut header = false;
    for (a, b, target) in pairs {
        if let (Some(x), Some(y)) = (rate(a), rate(b)) {
            if !header {
                outln!("ratios");
                header = true;
            }
            let pct = if y > 0.0 { 100.0 * x / y } else { 0.0 };
            outln!("  {a:<16} / {b:<10} {pct:5.1}%   (target {target}%)");
        }
    }
}

/// Runs one scenario against the server.
async fn load(
    args: &BenchArgs,
    scenario: Scenario,
    mix: &[u32; 3],
    channels: &[Channel],
    fixture: Arc<Fixture>,
) -> Result<BenchReport, CliError> {
    let ok = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(args.warmup == 0));
    let exhausted = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let warmup = Duration::from_secs(args.warmup);
    let deadline = started + warmup + Duration::from_secs(args.duration);
    let budget = args.requests.map(|n| Arc::new(AtomicU64::new(n)));

    let mut workers = Vec::new();
    for w in 0..args.concurrency.max(1) {
        let channel = channels[w % channels.len()].clone();
        let fixture = fixture.clone();
        let ok = ok.clone();
        let measuring = measuring.clone();
        let exhausted = exhausted.clone();
        let budget = budget.clone();
        let mix = *mix;
        workers.push(tokio::spawn(async move {
            let mut worker = Worker::new(channel, fixture);
            let mut latencies = Vec::new();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut i = w;
            loop {
                let now = Instant::now();
                if budget.is_none() && now >= deadline {
                    break;
                }
                let counted = measuring.load(Ordering::Relaxed);
                if counted {
                    if let Some(b) = &budget {
                        if b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                            n.checked_sub(1)
                        })
                        .is_err()
                        {
                            break;
                        }
                    }
                }
                let call = match scenario {
                    Scenario::Health => Call::Health,
                    Scenario::Verify => Call::Verify,
                    Scenario::VerifyUncached => Call::VerifyFresh,
                    Scenario::CreateSession => Call::Create,
                    Scenario::Refresh => Call::Refresh,
                    Scenario::Mixed | Scenario::Signature => pick(&mix, i),
                };
                let result = worker.call(call, i).await;
                if counted {
                    match result {
                        Outcome::Ok => {
                            latencies.push(now.elapsed());
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Outcome::Failed(code) => {
                            *errors.entry(format!("{code:?}")).or_default() += 1
                        }
                        Outcome::Exhausted => {
                            exhausted.store(true, Ordering::Relaxed);
                            break;
                        }
                        Outcome::Setup => {
                            if let Some(b) = &budget {
                                b.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                } else if matches!(result, Outcome::Exhausted) {
                    exhausted.store(true, Ordering::Relaxed);
                    break;
                }
                i += 1;
            }
            (latencies, errors)
        }));
    }

    // Warm-up, then measure; a progress line on a terminal.
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let measure_start = Instant::now();
    let ticker = progress_line(ok.clone(), measure_start);
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for w in workers {
        let (l, e) = w
            .await
            .map_err(|e| CliError::Usage(format!("a bench worker failed: {e}")))?;
        latencies.extend(l);
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let elapsed = measure_start.elapsed().as_secs_f64();
    ticker.stop();
    if exhausted.load(Ordering::Relaxed) {
        eprintln!(
            "note: the {} fresh tokens ran out after {elapsed:.1} s of measurement; \
             pass a larger --tokens for a longer run",
            fixture.tokens.len()
        );
    }
    Ok(summarize(scenario, latencies, errors, elapsed))
}

/// The live progress line on a terminal (nothing otherwise).
struct Progress(Option<tokio::task::JoinHandle<()>>);

impl Progress {
    fn stop(self) {
        if let Some(t) = self.0 {
            t.abort();
            eprintln!();
        }
    }
}

fn progress_line(ok: Arc<AtomicU64>, start: Instant) -> Progress {
    if !std::io::stderr().is_terminal() {
        return Progress(None);
    }
    Progress(Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let n = ok.load(Ordering::Relaxed);
            let secs = start.elapsed().as_secs_f64();
            eprint!("\r{secs:5.1} s  {n:>9} ok  {:>9.0} RPC/s", n as f64 / secs);
        }
    })))
}

fn summarize(
    scenario: Scenario,
    mut latencies: Vec<Duration>,
    errors: BTreeMap<String, u64>,
    elapsed: f64,
) -> BenchReport {
    latencies.sort_unstable();
    let pct = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let idx = ((latencies.len() - 1) as f64 * q).round() as usize;
        latencies[idx.min(latencies.len() - 1)].as_secs_f64() * 1000.0
    };
    let ok = latencies.len() as u64;
    BenchReport {
        scenario: scenario.name(),
        rpc_per_sec: if elapsed > 0.0 {
            ok as f64 / elapsed
        } else {
            0.0
        },
        p50_ms: pct(0.50),
        p90_ms: pct(0.90),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        ok,
        errors,
    }
}

fn parse_mix(s: &str) -> Result<[u32; 3], CliError> {
    let usage =
        || CliError::Usage("--mix takes three weights: verify,create-session,refresh".to_owned());
    let parts: Vec<u32> = s
        .split(',')
        .map(|p| p.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|_| usage())?;
    match parts.as_slice() {
        [v, c, r] if v + c + r > 0 => Ok([*v, *c, *r]),
        _ => Err(usage()),
    }
}

fn pick(mix: &[u32; 3], i: usize) -> Call {
    let total = mix.iter().sum::<u32>().max(1);
    let slot = u32::try_from(i % total as usize).unwrap_or(0);
    if slot < mix[0] {
        Call::Verify
    } else if slot < mix[0] + mix[1] {
        Call::Create
    } else {
        Call::Refresh
    }
}

/// A bench key, with a rate limit high enough not to be what is measured.
async fn create_bench_key(args: &BenchArgs, channel: &Channel) -> Result<String, CliError> {
    let created = ApiKeyServiceClient::new(channel.clone())
        .create_api_key(authed(
            &args.opts,
            pb::CreateApiKeyRequest {
                name: "mcp-auth bench".to_owned(),
                scopes: vec![
                    "sessions:create".to_owned(),
                    "tokens:verify".to_owned(),
                    "bench:read".to_owned(),
                ],
                expires_at: 0,
                rate_limit: Some(pb::RateLimit {
                    requests_per_second: 1_000_000,
                    burst: 1_000_000,
                }),
            },
        )?)
        .await?
        .into_inner();
    Ok(created.secret)
}

/// `n` valid access tokens, created over all connections at once.
async fn create_tokens(
    args: &BenchArgs,
    channels: &[Channel],
    key: &str,
    n: usize,
) -> Result<Vec<String>, CliError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if n > 10_000 && std::io::stderr().is_terminal() {
        eprintln!("creating {n} tokens first...");
    }
    let callers = args.concurrency.clamp(1, 64);
    let mut tasks = Vec::new();
    for c in 0..callers {
        let mut client = TokenServiceClient::new(channels[c % channels.len()].clone());
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (c..n).step_by(callers) {
                out.push(create(&mut client, &key, i).await?.access_token);
            }
            Ok::<_, tonic::Status>(out)
        }));
    }
    let mut tokens = Vec::with_capacity(n);
    for t in tasks {
        let part = t
            .await
            .map_err(|e| CliError::Usage(format!("a bench setup task failed: {e}")))??;
        tokens.extend(part);
    }
    Ok(tokens)
}

fn with_key<T>(key: &str, message: T) -> Request<T> {
    let mut req = Request::new(message);
    if let Ok(v) = format!("Bearer {key}").parse() {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

async fn create(
    client: &mut TokenServiceClient<Channel>,
    key: &str,
    i: usize,
) -> Result<pb::Session, tonic::Status> {
    Ok(client
        .create_session(with_key(
            key,
            pb::CreateSessionRequest {
                subject: format!("bench-user-{i}"),
                scopes: vec!["bench:read".to_owned()],
                audience: "mcp-auth-bench".to_owned(),
                ttl_seconds: 0,
                session_lifetime_seconds: 0,
            },
        ))
        .await?
        .into_inner())
}

struct Worker {
    tokens: TokenServiceClient<Channel>,
    health: tonic_health::pb::health_client::HealthClient<Channel>,
    fixture: Arc<Fixture>,
    refresh_token: Option<String>,
    /// Refreshes so far in the current chain.
    chain: u32,
}

impl Worker {
    fn new(channel: Channel, fixture: Arc<Fixture>) -> Self {
        Worker {
            tokens: TokenServiceClient::new(channel.clone()),
            health: tonic_health::pb::health_client::HealthClient::new(channel),
            fixture,
            refresh_token: None,
            chain: 0,
        }
    }

    async fn verify(&mut self, token: String) -> Result<(), tonic::Status> {
        let r = self
            .tokens
            .verify_token(with_key(
                &self.fixture.key,
                pb::VerifyTokenRequest {
                    token,
                    audience: "mcp-auth-bench".to_owned(),
                    required_scopes: vec![],
                },
            ))
            .await?;
        if r.get_ref().active {
            Ok(())
        } else {
            // An inactive verdict is a failure of the benchmark.
            Err(tonic::Status::failed_precondition("token not active"))
        }
    }

    async fn call(&mut self, call: Call, i: usize) -> Outcome {
        let key = &self.fixture.key;
        let result = match call {
            Call::Health => self
                .health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .map(|_| ()),
            Call::Verify => {
                let pool = &self.fixture.tokens;
                let token = pool[i % pool.len().max(1)].clone();
                self.verify(token).await
            }
            Call::VerifyFresh => {
                let at = self.fixture.next_fresh.fetch_add(1, Ordering::Relaxed);
                let Some(token) = self.fixture.tokens.get(at).cloned() else {
                    return Outcome::Exhausted;
                };
                self.verify(token).await
            }
            Call::Create => create(&mut self.tokens, key, i).await.map(|_| ()),
            Call::Refresh => {
                let token = match self.refresh_token.take() {
                    Some(t) if self.chain < REFRESH_CHAIN => t,
                    _ => {
                        return match create(&mut self.tokens, key, i).await {
                            Ok(s) => {
                                self.refresh_token = Some(s.refresh_token);
                                self.chain = 0;
                                Outcome::Setup
                            }
                            Err(e) => Outcome::Failed(e.code()),
                        };
                    }
                };
                self.chain += 1;
                self.tokens
                    .refresh_session(Request::new(pb::RefreshSessionRequest {
                        refresh_token: token,
                        scopes: vec![],
                    }))
                    .await
                    .map(|s| self.refresh_token = Some(s.into_inner().refresh_token))
            }
        };
        match result {
            Ok(()) => Outcome::Ok,
            Err(e) => Outcome::Failed(e.code()),
        }
    }
}

/// The bare signature check of one of the server's tokens, with its public
/// key from the JWKS, on as many threads as this machine has cores: no
/// parsing, no claims, no network. `verify-uncached` is measured against
/// it.
async fn signature(
    args: &BenchArgs,
    channel: &Channel,
    key: &str,
) -> Result<BenchReport, CliError> {
    let mut client = TokenServiceClient::new(channel.clone());
    let token = create(&mut client, key, 0).await?.access_token;
    let jwks = client
        .get_jwks(pb::GetJwksRequest {})
        .await?
        .into_inner()
        .jwks_json;
    let check = SignatureCheck::new(&token, &jwks)
        .ok_or_else(|| CliError::Usage("the server's token or JWKS is not usable".to_owned()))?;
    let check = Arc::new(check);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let warmup = Duration::from_secs(args.warmup);
    let started = Instant::now();
    let measure_from = started + warmup;
    let deadline = measure_from + Duration::from_secs(args.duration);
    let budget = args
        .requests
        .map(|n| Arc::new(AtomicU64::new(n)))
        .unwrap_or_else(|| Arc::new(AtomicU64::new(u64::MAX)));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let check = check.clone();
            let budget = budget.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut failed = 0u64;
                loop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    let counted = now >= measure_from;
                    if counted
                        && budget
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                n.checked_sub(1)
                            })
                            .is_err()
                    {
                        break;
                    }
                    let good = check.verify();
                    if counted {
                        if good {
                            latencies.push(now.elapsed());
                        } else {
                            failed += 1;
                        }
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    let joined = tokio::task::spawn_blocking(move || {
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| CliError::Usage(format!("a bench thread failed: {e}")))?;
    let elapsed = measure_from.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let mut errors = BTreeMap::new();
    for (l, failed) in joined {
        latencies.extend(l);
        if failed > 0 {
            *errors.entry("BadSignature".to_owned()).or_default() += failed;
        }
    }
    Ok(summarize(Scenario::Signature, latencies, errors, elapsed))
}

/// A token's signing input and signature, and the public key to check
/// them with.
struct SignatureCheck {
    message: Vec<u8>,
    signature: Vec<u8>,
    key: UnparsedPublicKey<Vec<u8>>,
}

impl SignatureCheck {
    fn new(token: &str, jwks: &str) -> Option<Self> {
        let (message, sig_b64) = token.rsplit_once('.')?;
        let header_b64 = message.split('.').next()?;
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).ok()?).ok()?;
        let jwks: serde_json::Value = serde_json::from_str(jwks).ok()?;
        let jwk = jwks["keys"]
            .as_array()?
            .iter()
            .find(|k| k["kid"] == header["kid"])?;
        let b64 = |member: &str| URL_SAFE_NO_PAD.decode(jwk[member].as_str()?).ok();
        let key = match jwk["alg"].as_str()? {
            "EdDSA" => UnparsedPublicKey::new(&ED25519, b64("x")?),
            "ES256" => {
                let mut point = vec![4u8];
                point.extend(b64("x")?);
                point.extend(b64("y")?);
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            }
            _ => return None,
        };
        Some(SignatureCheck {
            message: message.as_bytes().to_vec(),
            signature: URL_SAFE_NO_PAD.decode(sig_b64).ok()?,
            key,
        })
    }

    fn verify(&self) -> bool {
        self.key.verify(&self.message, &self.signature).is_ok()
    }
}

/// Adds `n` live sessions (every hundredth revoked) to the data directory
/// of a stopped server, as one client `key_benchseed`, with their refresh
/// tokens and index entries, then flushes once.
async fn seed(data_dir: &std::path::Path, n: u64) -> Result<u8, CliError> {
    let store = Store::open(data_dir).map_err(crate::Error::from)?;
    let now = Clock::system().now();
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..threads {
        let store = store.clone();
        let done = done.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            for i in (t..n).step_by(usize::try_from(threads).unwrap_or(1)) {
                let hash = SecretHash::of(format!("seed-refresh-{now}-{i}").as_bytes());
                let record = SessionRecord {
                    session_id: new_id("ses_")?,
                    subject: format!("seed-user-{i}"),
                    client_id: "key_benchseed".to_owned(),
                    scopes: vec!["tools:read".to_owned(), "tools:call".to_owned()],
                    audience: "https://mcp.example.com".to_owned(),
                    created_at: now,
                    expires_at: now + 900,
                    revoked_at: (i % 100 == 99).then_some(now),
                    session_expires_at: now + 86_400,
                    last_refreshed_at: now,
                    refresh_hashes: vec![hash],
                    token_ttl: 900,
                };
                let refresh = RefreshRecord {
                    session_id: record.session_id.clone(),
                    issued_at: now,
                    spent_at: None,
                };
                store.insert_session(&record, Some((&hash, &refresh)))?;
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % 100_000 == 0 {
                    eprintln!("{d} sessions");
                }
            }
            Ok::<_, crate::Error>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| CliError::Usage(format!("a seeding task failed: {e}")))??;
    }
    store.flush().await.map_err(crate::Error::from)?;
    outln!(
        "added {n} sessions ({} revoked) to {} in {:.1} s",
        n / 100,
        data_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}
