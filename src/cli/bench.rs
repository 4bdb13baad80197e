//! `mcp-auth bench`: load against a running server, like `redis-benchmark`
//! or `vault-benchmark`. It creates what its scenario needs (a bench key
//! with a high rate limit, sessions, tokens) before the clock starts, then
//! runs `--concurrency` callers over `--connections` connections for
//! `--duration` seconds (or `--requests` calls) after `--warmup`, and
//! reports RPC/s, latency percentiles and errors by status code. A failed
//! call never counts as throughput.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use tonic::Request;
use tonic::transport::Channel;

use super::ClientOpts;
use super::client::{CliError, authed, connect, print_json};
use crate::pb;
use crate::pb::api_key_service_client::ApiKeyServiceClient;
use crate::pb::token_service_client::TokenServiceClient;

/// What the load consists of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// The gRPC health check: the transport's ceiling.
    Health,
    /// VerifyToken over a pool of valid tokens.
    Verify,
    /// CreateSession, each durable before the reply.
    CreateSession,
    /// RefreshSession chains, one per caller.
    Refresh,
    /// A weighted mix of verify, create-session and refresh.
    Mixed,
}

/// Options of `mcp-auth bench`.
#[derive(Clone, Debug, Args)]
pub struct BenchArgs {
    /// The scenario.
    #[arg(long, value_enum, default_value_t = Scenario::Verify)]
    pub scenario: Scenario,
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
    /// Distinct valid tokens for the verify scenario.
    #[arg(long, default_value_t = 1000)]
    pub tokens: usize,
    /// Weights for --scenario mixed: verify,create-session,refresh.
    #[arg(long, default_value = "90,9,1")]
    pub mix: String,
    /// How to reach the server (with an admin key in MCP_AUTH_API_KEY).
    #[command(flatten)]
    pub opts: ClientOpts,
}

/// The result, as `--json` prints it.
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
    Create,
    Refresh,
}

struct Fixture {
    key: String,
    tokens: Vec<String>,
}

/// Runs the benchmark and prints the report.
///
/// # Errors
/// The server cannot be reached or the setup calls fail.
pub async fn run(args: BenchArgs) -> Result<u8, CliError> {
    let mix = parse_mix(&args.mix)?;
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&args.opts).await?);
    }
    let fixture = Arc::new(setup(&args, &channels[0]).await?);

    let ok = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(args.warmup == 0));
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
        let budget = budget.clone();
        let scenario = args.scenario;
        workers.push(tokio::spawn(async move {
            let mut worker = Worker::new(channel, fixture, w).await;
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
                    Scenario::CreateSession => Call::Create,
                    Scenario::Refresh => Call::Refresh,
                    Scenario::Mixed => pick(&mix, i),
                };
                let result = worker.call(call, i).await;
                if counted {
                    match result {
                        Ok(()) => {
                            latencies.push(now.elapsed());
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(code) => *errors.entry(format!("{code:?}")).or_default() += 1,
                    }
                }
                i += 1;
            }
            (latencies, errors)
        }));
    }

    // Warm-up, then measure; a progress line on a terminal.
    tokio::time::sleep(warmup).await;
    measuring.store(true, std::sync::atomic::Ordering::Relaxed);
    let measure_start = Instant::now();
    let progress = std::io::stderr().is_terminal();
    let ticker = {
        let ok = ok.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                if progress {
                    let n = ok.load(Ordering::Relaxed);
                    let secs = measure_start.elapsed().as_secs_f64();
                    eprint!("\r{secs:5.1} s  {n:>9} ok  {:>9.0} RPC/s", n as f64 / secs);
                }
            }
        })
    };
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
    ticker.abort();
    if progress {
        eprintln!();
    }
    let report = summarize(args.scenario, latencies, errors, elapsed);
    if args.opts.json {
        print_json(&report)?;
    } else {
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
    }
    Ok(if report.errors.is_empty() { 0 } else { 1 })
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
        scenario: scenario
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default(),
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
    let parts: Vec<u32> = s
        .split(',')
        .map(|p| p.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            CliError::Usage("--mix takes three weights: verify,create-session,refresh".to_owned())
        })?;
    match parts.as_slice() {
        [v, c, r] if v + c + r > 0 => Ok([*v, *c, *r]),
        _ => Err(CliError::Usage(
            "--mix takes three weights: verify,create-session,refresh".to_owned(),
        )),
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

/// A bench key (with a rate limit high enough not to be what is measured)
/// and a pool of valid tokens.
async fn setup(args: &BenchArgs, channel: &Channel) -> Result<Fixture, CliError> {
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
    let key = created.secret;
    let mut tokens = Vec::new();
    if matches!(args.scenario, Scenario::Verify | Scenario::Mixed) {
        let mut client = TokenServiceClient::new(channel.clone());
        for i in 0..args.tokens.max(1) {
            tokens.push(
                create(&mut client, &key, i)
                    .await
                    .map_err(CliError::from)?
                    .access_token,
            );
        }
    }
    Ok(Fixture { key, tokens })
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
}

impl Worker {
    async fn new(channel: Channel, fixture: Arc<Fixture>, _w: usize) -> Self {
        Worker {
            tokens: TokenServiceClient::new(channel.clone()),
            health: tonic_health::pb::health_client::HealthClient::new(channel),
            fixture,
            refresh_token: None,
        }
    }

    async fn call(&mut self, call: Call, i: usize) -> Result<(), tonic::Code> {
        let key = &self.fixture.key;
        let result = match call {
            Call::Health => self
                .health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .map(|_| ()),
            Call::Verify => {
                let token = &self.fixture.tokens[i % self.fixture.tokens.len().max(1)];
                match self
                    .tokens
                    .verify_token(with_key(
                        key,
                        pb::VerifyTokenRequest {
                            token: token.clone(),
                            audience: "mcp-auth-bench".to_owned(),
                            required_scopes: vec![],
                        },
                    ))
                    .await
                {
                    // An inactive verdict is a failure of the benchmark.
                    Ok(r) if r.get_ref().active => Ok(()),
                    Ok(_) => return Err(tonic::Code::FailedPrecondition),
                    Err(e) => Err(e),
                }
            }
            Call::Create => create(&mut self.tokens, key, i).await.map(|_| ()),
            Call::Refresh => {
                let token = match self.refresh_token.take() {
                    Some(t) => t,
                    None => match create(&mut self.tokens, key, i).await {
                        Ok(s) => s.refresh_token,
                        Err(e) => return Err(e.code()),
                    },
                };
                match self
                    .tokens
                    .refresh_session(Request::new(pb::RefreshSessionRequest {
                        refresh_token: token,
                        scopes: vec![],
                    }))
                    .await
                {
                    Ok(s) => {
                        self.refresh_token = Some(s.into_inner().refresh_token);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        result.map_err(|e| e.code())
    }
}
