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
//!
//! This file holds the options, the run and the report; `load` the callers
//! and their calls, `signature` the local signature check, `seed` the
//! `--seed-sessions` path. Every call goes through the typed
//! [`crate::grpc::client::Client`].

mod load;
mod oauth;
mod seed;
mod signature;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{CliError, GlobalOpts};
use crate::pb;
use load::{Fixture, create_bench_key, create_tokens, load, parse_mix};

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
    /// OAuth `client_credentials` grants at the HTTP listener's `/token`
    /// (client_secret_basic), one per call.
    OauthClientCredentials,
    /// OAuth introspection at `/introspect` of a pool of `--tokens` (1000)
    /// tokens, as a resource server with the bench's `tokens:verify` key.
    OauthIntrospect,
    /// The OAuth browser flow, one per call: `/authorize` by a signed-in
    /// browser whose user consented before (straight back with a code),
    /// then the code exchange at `/token`.
    OauthCodeFlow,
    /// OAuth refresh token rotation at `/token`, chains per caller.
    OauthRefresh,
}

impl Scenario {
    /// Whether the scenario talks to the HTTP listener.
    fn is_oauth(self) -> bool {
        matches!(
            self,
            Scenario::OauthClientCredentials
                | Scenario::OauthIntrospect
                | Scenario::OauthCodeFlow
                | Scenario::OauthRefresh
        )
    }
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
    /// Another replica of the same service (same database, same CA), by
    /// URL; repeat for more. Connections go round-robin over --server and
    /// these, so the calls are spread over every replica.
    #[arg(long = "replica", value_name = "URL")]
    pub replicas: Vec<String>,
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
    /// The HTTP listener, for the oauth-* scenarios.
    #[arg(long, env = "MCP_AUTH_HTTP", default_value = "https://localhost:8443")]
    pub http_server: String,
}

/// Sessions the run creates outlive it by this much, seconds.
const SESSION_MARGIN_SECS: u64 = 300;

impl BenchArgs {
    /// How long the run's sessions live: the whole run and a margin, so
    /// tokens stay valid while measured and maintenance sweeps them soon
    /// after.
    fn session_lifetime(&self) -> u32 {
        let scenarios = u64::try_from(self.scenario.len()).unwrap_or(1);
        let run = scenarios.saturating_mul(self.warmup + self.duration);
        u32::try_from(run.saturating_add(SESSION_MARGIN_SECS)).unwrap_or(u32::MAX)
    }
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
    /// For a scenario made of steps (`oauth-code-flow`): each step's
    /// latency percentiles, milliseconds.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, StepLatency>,
}

/// One step's latency, milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct StepLatency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

impl StepLatency {
    /// The percentiles of `samples`.
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let pct = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let idx = ((samples.len() - 1) as f64 * q).round() as usize;
            samples[idx.min(samples.len() - 1)].as_secs_f64() * 1000.0
        };
        StepLatency {
            p50_ms: pct(0.50),
            p90_ms: pct(0.90),
            p99_ms: pct(0.99),
        }
    }
}

/// Runs the benchmark and prints the report.
///
/// # Errors
/// The server cannot be reached or the setup calls fail.
pub async fn run(args: BenchArgs, opts: &GlobalOpts) -> Result<u8, CliError> {
    if let Some(n) = args.seed_sessions {
        return seed::seed(&args.data_dir, n).await;
    }
    let mix = parse_mix(&args.mix)?;
    let mut options = opts.connect_options(true)?;
    options.plaintext = args.plaintext;
    let servers: Vec<String> = std::iter::once(options.server.clone())
        .chain(args.replicas.iter().cloned())
        .collect();
    let mut admins = Vec::new();
    for i in 0..args.connections.max(servers.len()) {
        options.server.clone_from(&servers[i % servers.len()]);
        admins.push(super::connect(&options).await?);
    }
    let (key_id, key) = create_bench_key(&admins[0], args.session_lifetime()).await?;
    // The same connections, as the bench key.
    let clients = admins
        .iter()
        .map(|admin| admin.with_api_key(Some(key.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    if servers.len() > 1 {
        known_everywhere(&clients).await?;
    }
    let result = run_scenarios(&args, opts, &mix, &clients, &admins[0], &key).await;
    // The bench key goes when the run does (its sessions end by
    // themselves shortly after); a failed revocation is said, not fatal.
    if let Err(e) = admins[0]
        .revoke_api_key(pb::RevokeApiKeyRequest {
            key_id: key_id.clone(),
            cascade: Some(false),
        })
        .await
    {
        eprintln!("could not revoke the bench key {key_id}: {}", e.message());
    }
    result
}

/// Waits until every replica behind `clients` knows the bench key (made
/// on the first; the others learn it from the database within moments).
async fn known_everywhere(clients: &[crate::grpc::client::Client]) -> Result<(), CliError> {
    let probe = || pb::VerifyTokenRequest {
        token: "not-a-token".to_owned(),
        ..Default::default()
    };
    for client in clients {
        let mut tries = 0;
        while let Err(e) = client.verify_token(probe()).await {
            tries += 1;
            if tries > 100 {
                return Err(CliError::Usage(format!(
                    "a --replica does not know the bench key after 5 s ({}): is it on the same database?",
                    e.message()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Runs every scenario in turn and prints the reports.
async fn run_scenarios(
    args: &BenchArgs,
    opts: &GlobalOpts,
    mix: &[u32; 3],
    clients: &[crate::grpc::client::Client],
    admin: &crate::grpc::client::Client,
    bench_key: &str,
) -> Result<u8, CliError> {
    let mut reports = Vec::new();
    for &scenario in &args.scenario {
        let report = if scenario == Scenario::Signature {
            signature::signature(args, &clients[0]).await?
        } else if scenario.is_oauth() {
            let tokens = match scenario {
                Scenario::OauthIntrospect => args.tokens.unwrap_or(1000),
                _ => 0,
            };
            let oauth = oauth::OAuthFixture::set_up(
                admin,
                &args.http_server,
                &opts.ca,
                args.plaintext,
                bench_key,
                tokens,
                matches!(scenario, Scenario::OauthCodeFlow | Scenario::OauthRefresh),
            )
            .await?;
            let fixture = Fixture {
                tokens: Vec::new(),
                next_fresh: AtomicUsize::new(0),
                session_lifetime: args.session_lifetime(),
                oauth: Some(oauth.clone()),
            };
            let mut report = load(args, scenario, mix, clients, Arc::new(fixture)).await;
            if let (Ok(r), Some(flow)) = (report.as_mut(), &oauth.flow) {
                for (step, samples) in flow.take_steps() {
                    r.steps.insert(step.to_owned(), StepLatency::of(samples));
                }
            }
            // The bench's OAuth client goes with its scenario (and with it
            // every token it got).
            if let Err(e) = admin
                .delete_client(pb::DeleteClientRequest {
                    client_id: oauth.client_id().to_owned(),
                })
                .await
            {
                eprintln!("could not delete the bench's OAuth client: {}", e.message());
            }
            if let Some(flow) = &oauth.flow {
                if let Err(e) = admin
                    .delete_client(pb::DeleteClientRequest {
                        client_id: flow.client_id.clone(),
                    })
                    .await
                {
                    eprintln!("could not delete the bench's OAuth client: {}", e.message());
                }
                if let Err(e) = admin
                    .delete_user(pb::DeleteUserRequest {
                        user_id: flow.user_id.clone(),
                    })
                    .await
                {
                    eprintln!("could not delete the bench's user: {}", e.message());
                }
            }
            report?
        } else {
            let tokens = match scenario {
                Scenario::Verify | Scenario::Mixed => args.tokens.unwrap_or(1000),
                Scenario::VerifyUncached => args.tokens.unwrap_or_else(|| {
                    25_000 * usize::try_from(args.warmup + args.duration).unwrap_or(1)
                }),
                _ => 0,
            };
            let fixture = Fixture {
                tokens: create_tokens(args, clients, tokens).await?,
                next_fresh: AtomicUsize::new(0),
                session_lifetime: args.session_lifetime(),
                oauth: None,
            };
            load(args, scenario, mix, clients, Arc::new(fixture)).await?
        };
        if opts.json {
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
    if !opts.json && reports.len() > 1 {
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
    for (step, l) in &report.steps {
        outln!(
            "step ms      {step}: p50 {:.2}  p90 {:.2}  p99 {:.2}",
            l.p50_ms,
            l.p90_ms,
            l.p99_ms
        );
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

/// The report of one scenario from its successful calls' latencies.
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
        steps: BTreeMap::new(),
    }
}
