//! Metrics in the Prometheus exposition format: every metric's name and
//! meaning, the fixed label values, and the process's recorder.
//!
//! Counters and histograms are recorded where things happen (the
//! per-request layers, the core, the store) through the `metrics`
//! facade's macros, with the names below; they go to one recorder for the
//! process, [`install`]ed by the first server that serves a metrics
//! listener. Until one is installed (`metrics_listen = "off"`), the macros
//! do nothing. Several servers in one process (the tests) share that
//! recorder, so its counters add up what all of them did.
//!
//! Gauges describe one server's state (its live API keys, its key ring):
//! [`render`] takes them from that server at each scrape, rendered by a
//! recorder of their own, so two servers in one process never overwrite
//! each other's.
//!
//! No label carries a secret, a token, a subject, a client id, a path as
//! sent or any other value a caller chooses: only the fixed values of this
//! module and of the callers' enums (a gRPC method the server serves, a
//! route it declares, a reason of the error table).

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use metrics::{Counter, Histogram, Label};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter: requests answered, by `transport` (`grpc`, `http`), `method`
/// (the gRPC method, `mcp_auth.v1.TokenService/VerifyToken`; or the HTTP
/// method and route, `POST /token`) and `code` (the gRPC status name,
/// `OK`; or the HTTP status, `200`).
pub const REQUESTS: &str = "mcp_auth_requests_total";
/// Histogram: request latency, from arrival to the end of the response,
/// seconds; labels `transport` and `method`.
pub const REQUEST_SECONDS: &str = "mcp_auth_request_duration_seconds";
/// Counter: verdicts on tokens handed to `VerifyToken` (`endpoint =
/// verify_token`) and `POST /introspect` (`introspect`), by `kind`
/// (`access_token`, `api_key`) and `reason` (`ACTIVE`, or why not:
/// `EXPIRED`, `REVOKED`, ...).
pub const TOKEN_VERDICTS: &str = "mcp_auth_token_verdicts_total";
/// Counter: requests refused as rate limited, by `limit` (which allowance
/// ran dry).
pub const RATE_LIMITED: &str = "mcp_auth_rate_limited_total";
/// Counter: refused credentials (API keys, certificates, refresh tokens,
/// OAuth client credentials, sign-ins), by `reason`.
pub const AUTH_FAILURES: &str = "mcp_auth_authentication_failures_total";
/// Counter: lookups of the verified-token cache, by `result` (`hit`,
/// `miss`).
pub const VERIFY_CACHE: &str = "mcp_auth_verify_cache_total";
/// Histogram: time a store commit took, seconds, by `backend` (`sled`: a
/// group flush to disk; `postgres`: a group commit's round trip).
pub const STORE_COMMIT_SECONDS: &str = "mcp_auth_store_commit_duration_seconds";
/// Histogram: writes committed together by one group commit, by
/// `backend`.
pub const STORE_COMMIT_BATCH: &str = "mcp_auth_store_commit_batch_size";

/// Gauge: sessions that can still be refreshed (neither revoked nor
/// ended), as counted by the last full maintenance sweep.
pub const SESSIONS: &str = "mcp_auth_sessions";
/// Gauge: API keys the server accepts (neither revoked nor expired).
pub const API_KEYS: &str = "mcp_auth_api_keys";
/// Gauge: registered OAuth clients.
pub const CLIENTS: &str = "mcp_auth_oauth_clients";
/// Gauge: age of the active signing key, seconds.
pub const SIGNING_KEY_AGE: &str = "mcp_auth_signing_key_age_seconds";
/// Gauge: open `WatchRevocations` streams.
pub const REVOCATION_SUBSCRIBERS: &str = "mcp_auth_revocation_subscribers";
/// Gauge: records in the audit chain since it began (the newest record's
/// seq; pruning old records does not lower it).
pub const AUDIT_CHAIN_LENGTH: &str = "mcp_auth_audit_chain_length";
/// Gauge: 1 while the server is ready (what `/readyz` answers), else 0.
pub const READY: &str = "mcp_auth_ready";

/// Latency buckets, seconds: from 50 µs (a cached VerifyToken) to 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];
/// Group commit sizes: 1 to the PostgreSQL committer's most (256).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The process's recorder, once installed; `None` inside when another
/// recorder was installed first (by an application embedding the server).
static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder, once, and returns its handle. `None`
/// when another recorder holds the process's place (then only the
/// gauges are rendered).
pub fn install() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let recorder = match builder() {
                Ok(builder) => builder.build_recorder(),
                Err(err) => {
                    tracing::warn!(cause = %err, "metrics recorder not built; /metrics serves the gauges alone");
                    return None;
                }
            };
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics serves the gauges alone");
                return None;
            }
            describe();
            Some(handle)
        })
        .as_ref()
}

/// Whether the process's recorder is installed (then it stays).
pub fn installed() -> bool {
    matches!(RECORDER.get(), Some(Some(_)))
}

/// One metric's handles by their label values, registered with the
/// process's recorder once per set of values and reused after, so a
/// request on the hot path records with an atomic add or two, no
/// allocation. Every value is a `&'static str`: the set is fixed.
pub struct Family<H, const N: usize> {
    name: &'static str,
    keys: [&'static str; N],
    register: fn(&'static str, Vec<Label>) -> H,
    handles: OnceLock<RwLock<HashMap<[&'static str; N], H>>>,
}

impl<H: Clone, const N: usize> Family<H, N> {
    /// The handle of the metric with label values `values` (for the label
    /// names this family was made with); `None` while no recorder is
    /// installed.
    pub fn get(&self, values: [&'static str; N]) -> Option<H> {
        if !installed() {
            return None;
        }
        let handles = self.handles.get_or_init(RwLock::default);
        if let Some(h) = handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&values)
        {
            return Some(h.clone());
        }
        let labels = self
            .keys
            .iter()
            .zip(values)
            .map(|(k, v)| Label::from_static_parts(k, v))
            .collect();
        let h = (self.register)(self.name, labels);
        handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(values, h.clone());
        Some(h)
    }
}

impl<const N: usize> Family<Counter, N> {
    /// A family of counters named `name`, labelled `keys`.
    pub const fn counters(name: &'static str, keys: [&'static str; N]) -> Self {
        Family {
            name,
            keys,
            register: |name, labels| metrics::counter!(name, labels),
            handles: OnceLock::new(),
        }
    }

    /// Adds one to the counter labelled `values`.
    pub fn increment(&self, values: [&'static str; N]) {
        if let Some(c) = self.get(values) {
            c.increment(1);
        }
    }
}

impl<const N: usize> Family<Histogram, N> {
    /// A family of histograms named `name`, labelled `keys`.
    pub const fn histograms(name: &'static str, keys: [&'static str; N]) -> Self {
        Family {
            name,
            keys,
            register: |name, labels| metrics::histogram!(name, labels),
            handles: OnceLock::new(),
        }
    }
}

/// The recorder's settings: histograms with buckets, not summaries.
fn builder() -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.to_owned()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(STORE_COMMIT_SECONDS.to_owned()),
            LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Full(STORE_COMMIT_BATCH.to_owned()), BATCH_BUCKETS)
}

/// The `# HELP` lines of the counters and histograms.
fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(
        REQUESTS,
        "Requests answered, by transport, method and code."
    );
    metrics::describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Request latency from arrival to the end of the response."
    );
    metrics::describe_counter!(
        TOKEN_VERDICTS,
        "Verdicts of VerifyToken and introspection, by endpoint, token kind and reason."
    );
    metrics::describe_counter!(RATE_LIMITED, "Requests refused as rate limited, by limit.");
    metrics::describe_counter!(AUTH_FAILURES, "Refused credentials, by reason.");
    metrics::describe_counter!(
        VERIFY_CACHE,
        "Lookups of the verified-token cache, by result (hit, miss)."
    );
    metrics::describe_histogram!(
        STORE_COMMIT_SECONDS,
        Unit::Seconds,
        "Time a store commit took, by backend."
    );
    metrics::describe_histogram!(
        STORE_COMMIT_BATCH,
        "Writes committed together by one group commit, by backend."
    );
}

/// One server's state, as its gauges show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Sessions that can still be refreshed; `None` until a maintenance
    /// sweep counted them.
    pub sessions: Option<u64>,
    /// API keys accepted.
    pub api_keys: u64,
    /// OAuth clients registered.
    pub clients: u64,
    /// Age of the active signing key, seconds; `None` without one.
    pub signing_key_age_seconds: Option<i64>,
    /// Open revocation streams.
    pub revocation_subscribers: u64,
    /// Records in the audit chain; `None` when the store cannot tell
    /// without a query.
    pub audit_chain_length: Option<u64>,
    /// Whether the server is ready.
    pub ready: bool,
}

/// The exposition: what the process's recorder holds (when `process` is
/// given), then `gauges`.
pub fn render(process: Option<&PrometheusHandle>, gauges: &Gauges) -> String {
    let mut out = process.map(PrometheusHandle::render).unwrap_or_default();
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    #[allow(clippy::cast_precision_loss)]
    let set = |name: &'static str, value: u64| metrics::gauge!(name).set(value as f64);
    metrics::with_local_recorder(&recorder, || {
        use metrics::{Unit, describe_gauge};
        describe_gauge!(
            SESSIONS,
            "Sessions that can still be refreshed, as of the last full maintenance sweep."
        );
        describe_gauge!(API_KEYS, "API keys accepted (neither revoked nor expired).");
        describe_gauge!(CLIENTS, "OAuth clients registered.");
        describe_gauge!(
            SIGNING_KEY_AGE,
            Unit::Seconds,
            "Age of the active signing key."
        );
        describe_gauge!(REVOCATION_SUBSCRIBERS, "Open WatchRevocations streams.");
        describe_gauge!(
            AUDIT_CHAIN_LENGTH,
            "Records in the audit chain since it began (the newest record's seq)."
        );
        describe_gauge!(READY, "1 while the server is ready, else 0.");
        if let Some(n) = gauges.sessions {
            set(SESSIONS, n);
        }
        set(API_KEYS, gauges.api_keys);
        set(CLIENTS, gauges.clients);
        if let Some(age) = gauges.signing_key_age_seconds {
            set(SIGNING_KEY_AGE, u64::try_from(age).unwrap_or(0));
        }
        set(REVOCATION_SUBSCRIBERS, gauges.revocation_subscribers);
        if let Some(n) = gauges.audit_chain_length {
            set(AUDIT_CHAIN_LENGTH, n);
        }
        set(READY, u64::from(gauges.ready));
    });
    out.push_str(&handle.render());
    out
}

/// The name of gRPC status `code` (`OK`, `UNAUTHENTICATED`, ...), as the
/// error table spells it; `UNKNOWN` for a number that is none.
pub fn grpc_code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// An HTTP status as a label: the code for those the server answers with,
/// else its class (`4xx`), so the label has a fixed set of values.
pub fn http_status_label(status: u16) -> &'static str {
    const ANSWERED: [(u16, &str); 17] = [
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (302, "302"),
        (303, "303"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (413, "413"),
        (415, "415"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
    ];
    if let Some((_, label)) = ANSWERED.iter().find(|(code, _)| *code == status) {
        return label;
    }
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_a_fixed_set() {
        assert_eq!(grpc_code_name(0), "OK");
        assert_eq!(grpc_code_name(16), "UNAUTHENTICATED");
        assert_eq!(grpc_code_name(8), "RESOURCE_EXHAUSTED");
        assert_eq!(grpc_code_name(17), "UNKNOWN");
        assert_eq!(grpc_code_name(-1), "UNKNOWN");
        assert_eq!(http_status_label(200), "200");
        assert_eq!(http_status_label(418), "4xx");
        assert_eq!(http_status_label(599), "5xx");
        assert_eq!(http_status_label(999), "5xx");
    }

    #[test]
    fn gauges_render_as_prometheus_text() {
        let text = render(
            None,
            &Gauges {
                sessions: None,
                api_keys: 3,
                clients: 1,
                signing_key_age_seconds: Some(42),
                revocation_subscribers: 0,
                audit_chain_length: Some(7),
                ready: true,
            },
        );
        for line in [
            "# TYPE mcp_auth_api_keys gauge",
            "mcp_auth_api_keys 3",
            "mcp_auth_oauth_clients 1",
            "mcp_auth_signing_key_age_seconds 42",
            "mcp_auth_revocation_subscribers 0",
            "mcp_auth_audit_chain_length 7",
            "mcp_auth_ready 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert!(!text.contains("mcp_auth_sessions "), "not counted yet");
    }
}
