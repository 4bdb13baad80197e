//! Serving the HTTP router on a listener the caller bound: axum on hyper
//! (HTTP/1.1 and HTTP/2, via hyper-util), TLS by tokio-rustls unless the
//! server is plaintext. The same bounds as gRPC's: connections are
//! accepted through [`conn::Incoming`] (at most `max_connections` at
//! once on this listener, closed after the idle timeout), the TLS
//! handshake must finish within its timeout, and HTTP/1.1 request heads
//! within the request timeout. On shutdown the listener stops accepting,
//! every connection is asked to finish (HTTP/1.1 after its current
//! request, HTTP/2 with GOAWAY) and this returns once all have; the
//! caller bounds that wait by the grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_stream::StreamExt;
use tonic::transport::server::{Connected, TcpIncoming};

use super::conn;
use crate::http::Peer;

/// The bounds of the HTTP listener's connections.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    /// Most connections open at once.
    pub max_connections: u32,
    /// Time a connection has to complete its TLS handshake.
    pub handshake_timeout: Duration,
    /// A connection receiving nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Time an HTTP/1.1 request head has to arrive.
    pub header_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for
/// the open connections to finish.
pub(super) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<ServerConfig>>,
    bounds: Bounds,
    shutdown: impl Future<Output = ()>,
) {
    let mut incoming = conn::Incoming::new(
        TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60))),
        bounds.max_connections,
        bounds.idle_timeout,
    );
    let acceptor = tls.map(TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            next = incoming.next() => match next {
                Some(Ok(conn)) => {
                    tokio::spawn(connection(
                        conn,
                        acceptor.clone(),
                        bounds.handshake_timeout,
                        builder.clone(),
                        router.clone(),
                        graceful.watcher(),
                    ));
                }
                // Logged (and paused after, if not the peer's doing) by
                // `Incoming`.
                Some(Err(_)) => {}
                None => break,
            },
            () = &mut shutdown => break,
        }
    }
    // Stop accepting: the listening socket closes here.
    drop(incoming);
    graceful.shutdown().await;
}

/// One connection: its TLS handshake within the timeout, then HTTP until
/// it closes or is asked to finish.
async fn connection(
    conn: conn::Conn,
    acceptor: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    builder: auto::Builder<TokioExecutor>,
    router: axum::Router,
    watcher: Watcher,
) {
    let peer = conn.connect_info().remote_addr();
    let Some(acceptor) = acceptor else {
        return serve_http(conn, peer, builder, router, watcher).await;
    };
    match tokio::time::timeout(handshake_timeout, acceptor.accept(conn)).await {
        Ok(Ok(tls)) => serve_http(tls, peer, builder, router, watcher).await,
        Ok(Err(err)) => tracing::debug!(peer = ?peer, cause = %err, "TLS handshake failed"),
        Err(_) => tracing::debug!(peer = ?peer, "TLS handshake timed out"),
    }
}

/// HTTP on an established (TLS or plain) stream.
async fn serve_http<I>(
    io: I,
    peer: Option<std::net::SocketAddr>,
    builder: auto::Builder<TokioExecutor>,
    router: axum::Router,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = tower::ServiceBuilder::new()
        .map_request(move |mut req: axum::http::Request<Incoming>| {
            if let Some(peer) = peer {
                req.extensions_mut().insert(Peer(peer));
            }
            req
        })
        .service(router);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(err) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(peer = ?peer, cause = %err, "HTTP connection ended with an error");
    }
}
