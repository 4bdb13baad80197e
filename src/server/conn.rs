//! Accepting connections within bounds, so idle or stalled sockets cannot
//! pin every file descriptor: at most `max_connections` are served at once
//! (further ones wait in the listen backlog until one closes), and a
//! connection that neither receives nor sends anything for the idle
//! timeout is closed (a response stream that carries heartbeats, such as
//! `WatchRevocations`, keeps its connection; a peer that stops reading
//! soon stops it sending, through flow control). The
//! TLS handshake's own deadline is set on tonic's TLS acceptor, which runs
//! the handshake on the [`Conn`]s this yields.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// How long accepting pauses after an error that is not the peer's doing
/// (out of file descriptors, for instance), so it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Least time between two "connection limit reached" warnings.
const LIMIT_WARNING_EVERY: Duration = Duration::from_secs(60);

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// The accepted connections of a listener, each holding one of
/// `max_connections` permits for as long as it is open.
pub(super) struct Incoming {
    inner: TcpIncoming,
    permits: Arc<Semaphore>,
    max_connections: u32,
    idle_timeout: Duration,
    /// The permit for the next connection, once acquired.
    permit: Option<OwnedSemaphorePermit>,
    acquiring: Option<Acquire>,
    pause: Option<Pin<Box<Sleep>>>,
    last_limit_warning: Option<Instant>,
}

impl Incoming {
    /// Connections from `inner`, at most `max_connections` open at once,
    /// each closed after `idle_timeout` without receiving anything.
    pub(super) fn new(inner: TcpIncoming, max_connections: u32, idle_timeout: Duration) -> Self {
        let permits = usize::try_from(max_connections).unwrap_or(usize::MAX);
        Incoming {
            inner,
            permits: Arc::new(Semaphore::new(permits)),
            max_connections,
            idle_timeout,
            permit: None,
            acquiring: None,
            pause: None,
            last_limit_warning: None,
        }
    }

    /// Polls for a free connection slot; only then is the next connection
    /// accepted, so those beyond the limit wait in the kernel's backlog.
    fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<Option<OwnedSemaphorePermit>> {
        if let Some(permit) = self.permit.take() {
            return Poll::Ready(Some(permit));
        }
        if self.acquiring.is_none() {
            if self.permits.available_permits() == 0 {
                self.warn_limit();
            }
            self.acquiring = Some(Box::pin(self.permits.clone().acquire_owned()));
        }
        let acquiring = self.acquiring.as_mut().map(|a| a.as_mut().poll(cx));
        match acquiring {
            Some(Poll::Ready(permit)) => {
                self.acquiring = None;
                // The semaphore is never closed.
                Poll::Ready(permit.ok())
            }
            Some(Poll::Pending) | None => Poll::Pending,
        }
    }

    fn warn_limit(&mut self) {
        let now = Instant::now();
        if self
            .last_limit_warning
            .is_none_or(|at| now.duration_since(at) >= LIMIT_WARNING_EVERY)
        {
            self.last_limit_warning = Some(now);
            tracing::warn!(
                max_connections = self.max_connections,
                "connection limit reached; new connections wait until one closes"
            );
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(pause) = this.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            this.pause = None;
        }
        let Some(permit) = ready!(this.poll_permit(cx)) else {
            return Poll::Ready(None);
        };
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(tcp))) => {
                Poll::Ready(Some(Ok(Conn::new(tcp, permit, this.idle_timeout))))
            }
            Poll::Ready(Some(Err(err))) => {
                this.permit = Some(permit);
                if !is_peer_error(&err) {
                    tracing::warn!(cause = %err, "accepting a connection failed");
                    this.pause = Some(Box::pin(tokio::time::sleep(ACCEPT_ERROR_PAUSE)));
                }
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                this.permit = Some(permit);
                Poll::Pending
            }
        }
    }
}

/// Errors of one connection that went away before it was accepted.
fn is_peer_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// An accepted connection: its socket, its slot under the connection
/// limit (given back when it is dropped), and its idle deadline.
pub(super) struct Conn {
    tcp: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle_timeout: Duration,
    /// When something was last received or sent.
    last_active: Instant,
    /// Fires at `last_active + idle_timeout` or before; checked when it
    /// does.
    deadline: Pin<Box<Sleep>>,
}

impl Conn {
    fn new(tcp: TcpStream, permit: OwnedSemaphorePermit, idle_timeout: Duration) -> Self {
        let now = Instant::now();
        Conn {
            tcp,
            _permit: permit,
            idle_timeout,
            last_active: now,
            deadline: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
        }
    }

    /// Ready when the connection has received and sent nothing for the
    /// idle timeout. Reads and writes only note their time; the timer is
    /// moved when it fires early, so a busy connection costs no timer
    /// updates.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.deadline.as_mut().poll(cx));
            let due = self.last_active + self.idle_timeout;
            if Instant::now() >= due {
                return Poll::Ready(());
            }
            self.deadline.as_mut().reset(due);
        }
    }
}

impl Conn {
    /// Notes the time of a write that sent something.
    fn note_written(&mut self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.last_active = Instant::now();
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.last_active = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => match this.poll_idle(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.note_written(&written);
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.note_written(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// The socket's addresses, as tonic's own TCP streams give them: requests
/// see the peer address, and over TLS the client certificates, exactly as
/// before (`grpc::call` reads both).
impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.tcp.connect_info()
    }
}
