//! Listening for other replicas' changes: one connection of its own (not
//! the pool's) that runs `LISTEN mcp_auth_changes`; every write adding to
//! the change feed sends `NOTIFY` at commit, which wakes the replica's
//! follower at once. The follower reads the feed on a timer as well, so a
//! notification lost with a connection costs only latency.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Connection};

use super::pg;
use crate::store::{StoreError, StoreResult};

/// How long making the listening connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection listening for change notifications.
pub(super) struct Listener {
    /// Kept so the connection stays open (dropping it closes it).
    _client: Client,
    /// Drives the connection and signals each notification.
    task: JoinHandle<()>,
    signal: Arc<Notify>,
}

impl Listener {
    /// Connects to the database `config` names (over `tls` if given) and
    /// listens.
    ///
    /// # Errors
    /// The database cannot be reached, or refuses `LISTEN`.
    pub async fn start(
        config: &tokio_postgres::Config,
        tls: Option<&tokio_postgres_rustls::MakeRustlsConnect>,
    ) -> StoreResult<Listener> {
        let signal = Arc::new(Notify::new());
        let connect = async {
            match tls {
                Some(tls) => {
                    let (client, connection) = config.connect(tls.clone()).await.map_err(pg)?;
                    Ok::<_, StoreError>((client, drive(connection, signal.clone())))
                }
                None => {
                    let (client, connection) =
                        config.connect(tokio_postgres::NoTls).await.map_err(pg)?;
                    Ok((client, drive(connection, signal.clone())))
                }
            }
        };
        let (client, task) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| StoreError::Unavailable("postgres: connecting timed out".to_owned()))??;
        client
            .batch_execute("LISTEN mcp_auth_changes")
            .await
            .map_err(pg)?;
        Ok(Listener {
            _client: client,
            task,
            signal,
        })
    }

    /// Whether the connection is still open.
    pub fn alive(&self) -> bool {
        !self.task.is_finished()
    }

    /// Notified on each notification, and once when the connection ends.
    pub fn signal(&self) -> Arc<Notify> {
        self.signal.clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Spawns the task that drives `connection`, signalling each
/// notification, until it ends.
fn drive<S, T>(mut connection: Connection<S, T>, signal: Arc<Notify>) -> JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio_postgres::tls::TlsStream + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => signal.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(cause = %e, "the connection listening for changes ended");
                    break;
                }
                None => break,
            }
        }
        // Wake the follower: it reads the feed and listens again.
        signal.notify_one();
    })
}
