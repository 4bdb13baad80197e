//! The load of `mcp-auth bench`: its fixtures (the bench key and tokens
//! created first), the callers, and the calls they make through the typed
//! client.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;

use super::{BenchArgs, BenchReport, Scenario, summarize};
use crate::cli::CliError;
use crate::grpc::client::{Client, RetryPolicy};
use crate::pb;

/// One call a caller makes.
#[derive(Clone, Copy)]
enum Call {
    Health,
    Verify,
    VerifyFresh,
    Create,
    Refresh,
    OAuthToken,
    OAuthIntrospect,
    OAuthCodeFlow,
    OAuthRefresh,
}

/// What a scenario's callers share: its tokens.
pub(super) struct Fixture {
    /// Valid access tokens, created before the clock starts.
    pub(super) tokens: Vec<String>,
    /// Next unused token of `tokens`, for verify-uncached.
    pub(super) next_fresh: AtomicUsize,
    /// Lifetime of every session the run creates, seconds.
    pub(super) session_lifetime: u32,
    /// The OAuth client and its tokens, for the oauth-* scenarios.
    pub(super) oauth: Option<Arc<super::oauth::OAuthFixture>>,
}

/// A call's outcome; `Exhausted` ends the caller (no fresh token left);
/// `Setup` was preparation (a refresh chain's new session), not measured.
enum Outcome {
    Ok,
    /// The gRPC code's name, or `HTTP <status>` and the like.
    Failed(String),
    Exhausted,
    Setup,
}

/// Refreshes per chain before the refresh scenario starts a new session,
/// as clients do (a session's refresh tokens are remembered for reuse
/// detection until it ends, so an endless chain is not a real workload).
const REFRESH_CHAIN: u32 = 100;

/// Runs one scenario against the server: `--concurrency` callers spread
/// over `clients` (one per connection, sending the bench key).
pub(super) async fn load(
    args: &BenchArgs,
    scenario: Scenario,
    mix: &[u32; 3],
    clients: &[Client],
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
        // A refusal is counted, never waited out.
        let client = clients[w % clients.len()]
            .clone()
            .with_retry(RetryPolicy::never());
        let fixture = fixture.clone();
        let ok = ok.clone();
        let measuring = measuring.clone();
        let exhausted = exhausted.clone();
        let budget = budget.clone();
        let mix = *mix;
        workers.push(tokio::spawn(async move {
            let mut worker = Worker::new(client, fixture);
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
                    Scenario::OauthClientCredentials => Call::OAuthToken,
                    Scenario::OauthIntrospect => Call::OAuthIntrospect,
                    Scenario::OauthCodeFlow => Call::OAuthCodeFlow,
                    Scenario::OauthRefresh => Call::OAuthRefresh,
                    Scenario::Mixed | Scenario::Signature => pick(&mix, i),
                };
                let result = worker.call(call, i, counted).await;
                if counted {
                    match result {
                        Outcome::Ok => {
                            latencies.push(now.elapsed());
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Outcome::Failed(what) => *errors.entry(what).or_default() += 1,
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

/// Starts the progress line, if stderr is a terminal.
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

/// Parses `--mix`: three weights, verify,create-session,refresh.
pub(super) fn parse_mix(s: &str) -> Result<[u32; 3], CliError> {
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

/// The `i`th call of `--scenario mixed`.
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

/// A bench key, with a rate limit high enough not to be what is measured,
/// expiring `lifetime` seconds from now (the run revokes it when it ends;
/// the expiry covers a run that is killed). Created with `admin`'s key.
/// Returns its id and secret.
pub(super) async fn create_bench_key(
    admin: &Client,
    lifetime: u32,
) -> Result<(String, String), CliError> {
    let created = admin
        .create_api_key(pb::CreateApiKeyRequest {
            name: "mcp-auth bench".to_owned(),
            scopes: vec![
                "sessions:create".to_owned(),
                "tokens:verify".to_owned(),
                "bench:read".to_owned(),
            ],
            expires_at: time::OffsetDateTime::now_utc().unix_timestamp() + i64::from(lifetime),
            rate_limit: Some(pb::RateLimit {
                requests_per_second: 1_000_000,
                burst: 1_000_000,
            }),
        })
        .await?;
    let key_id = created.api_key.map(|k| k.key_id).unwrap_or_default();
    Ok((key_id, created.secret))
}

/// `n` valid access tokens, created over all of `clients` at once.
pub(super) async fn create_tokens(
    args: &BenchArgs,
    clients: &[Client],
    n: usize,
) -> Result<Vec<String>, CliError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if n > 10_000 && std::io::stderr().is_terminal() {
        eprintln!("creating {n} tokens first...");
    }
    let callers = args.concurrency.clamp(1, 64);
    let lifetime = args.session_lifetime();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let client = clients[c % clients.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (c..n).step_by(callers) {
                out.push(create(&client, i, lifetime).await?.access_token);
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

/// A session for `bench-user-{i}`, as `client`'s key, ending after
/// `lifetime` seconds (so maintenance sweeps it soon after the run).
pub(super) async fn create(
    client: &Client,
    i: usize,
    lifetime: u32,
) -> Result<pb::Session, tonic::Status> {
    client
        .create_session(pb::CreateSessionRequest {
            subject: format!("bench-user-{i}"),
            scopes: vec!["bench:read".to_owned()],
            audience: "mcp-auth-bench".to_owned(),
            ttl_seconds: 0,
            session_lifetime_seconds: lifetime,
        })
        .await
}

/// One caller: its client, and its refresh chain.
struct Worker {
    client: Client,
    fixture: Arc<Fixture>,
    refresh_token: Option<String>,
    /// Refreshes so far in the current chain.
    chain: u32,
}

impl Worker {
    fn new(client: Client, fixture: Arc<Fixture>) -> Self {
        Worker {
            client,
            fixture,
            refresh_token: None,
            chain: 0,
        }
    }

    /// Verifies `token`; an inactive verdict is a failure.
    async fn verify(&mut self, token: String) -> Result<(), tonic::Status> {
        let r = self
            .client
            .verify_token(pb::VerifyTokenRequest {
                client_address: String::new(),
                token,
                audience: "mcp-auth-bench".to_owned(),
                required_scopes: vec![],
            })
            .await?;
        if r.active {
            Ok(())
        } else {
            // An inactive verdict is a failure of the benchmark.
            Err(tonic::Status::failed_precondition("token not active"))
        }
    }

    /// Makes the `i`th call.
    async fn call(&mut self, call: Call, i: usize, measured: bool) -> Outcome {
        if let (Call::OAuthCodeFlow | Call::OAuthRefresh, Some(oauth)) =
            (call, self.fixture.oauth.clone())
        {
            if matches!(call, Call::OAuthCodeFlow) {
                return match oauth.code_flow(measured).await {
                    Ok(_) => Outcome::Ok,
                    Err(what) => Outcome::Failed(what),
                };
            }
            let token = match self.refresh_token.take() {
                Some(t) if self.chain < REFRESH_CHAIN => t,
                _ => {
                    return match oauth.code_flow(false).await {
                        Ok(t) => {
                            self.refresh_token = Some(t);
                            self.chain = 0;
                            Outcome::Setup
                        }
                        Err(what) => Outcome::Failed(what),
                    };
                }
            };
            self.chain += 1;
            return match oauth.refresh(&token).await {
                Ok(t) => {
                    self.refresh_token = Some(t);
                    Outcome::Ok
                }
                Err(what) => Outcome::Failed(what),
            };
        }
        if let (Call::OAuthToken | Call::OAuthIntrospect, Some(oauth)) = (call, &self.fixture.oauth)
        {
            let result = match call {
                Call::OAuthToken => oauth.grant().await.map(|_| ()),
                _ => {
                    let pool = &oauth.tokens;
                    match pool.get(i % pool.len().max(1)) {
                        Some(token) => oauth.introspect(token).await,
                        None => Err("no token".to_owned()),
                    }
                }
            };
            return match result {
                Ok(()) => Outcome::Ok,
                Err(what) => Outcome::Failed(what),
            };
        }
        let result = match call {
            Call::Health => self
                .client
                .health_check(HealthCheckRequest::default())
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
            Call::Create => create(&self.client, i, self.fixture.session_lifetime)
                .await
                .map(|_| ()),
            Call::Refresh => {
                let token = match self.refresh_token.take() {
                    Some(t) if self.chain < REFRESH_CHAIN => t,
                    _ => {
                        return match create(&self.client, i, self.fixture.session_lifetime).await {
                            Ok(s) => {
                                self.refresh_token = Some(s.refresh_token);
                                self.chain = 0;
                                Outcome::Setup
                            }
                            Err(e) => failed(&e),
                        };
                    }
                };
                self.chain += 1;
                self.client
                    .refresh_session(pb::RefreshSessionRequest {
                        refresh_token: token,
                        scopes: vec![],
                    })
                    .await
                    .map(|s| self.refresh_token = Some(s.refresh_token))
            }
            // Reached only without an OAuth fixture, which the bench
            // always sets up for these scenarios.
            Call::OAuthToken | Call::OAuthIntrospect | Call::OAuthCodeFlow | Call::OAuthRefresh => {
                return Outcome::Failed("no OAuth client".to_owned());
            }
        };
        match result {
            Ok(()) => Outcome::Ok,
            Err(e) => failed(&e),
        }
    }
}

/// A refused gRPC call, counted under its code's name.
fn failed(status: &tonic::Status) -> Outcome {
    Outcome::Failed(crate::grpc::status::code_name(status.code()).to_owned())
}
