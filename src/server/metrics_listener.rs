//! The metrics listener (`metrics_listen`, `127.0.0.1:9464` by default):
//! plain HTTP, for a Prometheus that scrapes it on the host or through the
//! operator's network policy, and for probes.
//!
//! - `GET /metrics`: the Prometheus text exposition
//!   ([`crate::telemetry`]): the process's counters and histograms, then
//!   this server's gauges;
//! - `GET /healthz`: 200 `ok` while the process serves;
//! - `GET /readyz`: 200 `ready` while the server is ready (store open and
//!   current, key ring loaded), 503 `not ready: <reason>` from the start
//!   of graceful shutdown.
//!
//! It is served with the same connection bounds as the other listeners,
//! and keeps serving through the drain of a graceful shutdown (so probes
//! read 503, not a refused connection), until the server stops.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use super::http_listener::{self, Bounds};
use crate::core::Core;
use crate::telemetry;

/// The exposition's content type (Prometheus text format 0.0.4).
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How often histograms are drained between scrapes, so their samples do
/// not pile up in memory.
const UPKEEP: Duration = Duration::from_secs(5);

/// What the handlers read.
#[derive(Clone)]
struct Metrics {
    core: Arc<Core>,
    process: Option<&'static PrometheusHandle>,
}

/// The listener's routes over `core`.
fn router(core: Arc<Core>, process: Option<&'static PrometheusHandle>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Metrics { core, process })
}

async fn metrics(State(m): State<Metrics>) -> Response {
    let text = telemetry::render(m.process, &m.core.gauges());
    ([(header::CONTENT_TYPE, EXPOSITION)], text).into_response()
}

async fn healthz() -> Response {
    "ok\n".into_response()
}

async fn readyz(State(m): State<Metrics>) -> Response {
    match m.core.readiness() {
        Ok(()) => "ready\n".into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", why.as_str()),
        )
            .into_response(),
    }
}

/// Serves the metrics listener on `listener` until `stop` resolves, with
/// `process`, the process's recorder ([`telemetry::install`]), and drains
/// its histograms every few seconds meanwhile.
pub(super) async fn serve(
    listener: TcpListener,
    core: Arc<Core>,
    process: Option<&'static PrometheusHandle>,
    bounds: Bounds,
    stop: impl Future<Output = ()>,
) {
    let upkeep = async {
        let Some(handle) = process else {
            return std::future::pending().await;
        };
        let mut tick = tokio::time::interval(UPKEEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    };
    let serving = http_listener::serve(listener, router(core, process), None, bounds, stop);
    tokio::select! {
        () = serving => {}
        () = upkeep => {}
    }
}
