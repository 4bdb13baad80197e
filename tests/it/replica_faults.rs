//! Replicas when the database fails under them. A real PostgreSQL server
//! of the test's own ([`crate::pg_cluster`]) restarted, and crashed, under
//! writers on two replicas; replicas reaching the machine's server through
//! a TCP proxy of the test's own, which can drop every connection and
//! refuse new ones for as long as a test needs (a network cut); and a
//! replica SIGKILLed in the middle of writes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_auth::pb;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::assert_status;
use crate::pg_cluster::Cluster;
use crate::replicas::{PROPAGATION_BOUND, Replica, database, time_until};

/// A TCP proxy to the database that can be cut and restored.
struct Proxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let open = open.clone();
            let conns = conns.clone();
            async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if !open.load(Ordering::SeqCst) {
                        drop(inbound); // refused: closed at once
                        continue;
                    }
                    let relay = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    conns.lock().unwrap().push(relay);
                }
            }
        });
        Proxy {
            addr,
            open,
            conns,
            accept,
        }
    }

    /// Drops every connection and closes new ones at once.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for relay in self.conns.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url_for(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_host(Some(&self.addr.ip().to_string())).unwrap();
        u.set_port(Some(self.addr.port())).unwrap();
        u.to_string()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// The address a PostgreSQL URL names.
fn target_of(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).unwrap();
    let host = u.host_str().unwrap_or("127.0.0.1");
    let port = u.port().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .unwrap()
        .next()
        .unwrap()
}

#[tokio::test]
async fn a_replica_cut_off_from_the_database_refuses_writes_then_fails_closed_and_recovers() {
    let db = database().await;
    let proxy = Proxy::start(target_of(db.url())).await;
    let a = Replica::start(db.url(), None, &[]).await;
    let primary = a.process.primary.clone().unwrap();
    let b = Replica::start(
        &proxy.url_for(db.url()),
        Some(a.dir.path()),
        &["--store-max-staleness-seconds", "2"],
    )
    .await;
    let (_, verifier) = a
        .create_key(&primary, &["tokens:verify", "sessions:revoke"])
        .await;
    let s = a.session(&primary, "alice").await.unwrap();
    time_until("the verifier key on B", || async {
        b.verify(&verifier, &s.access_token).await.is_ok()
    })
    .await;

    proxy.cut();
    let cut_at = Instant::now();
    // Within the bound, B verifies from memory.
    let v = b.verify(&verifier, &s.access_token).await.unwrap();
    assert!(v.active, "{v:?}");
    // Writes need the database: refused, not acknowledged.
    let refused = b.session(&primary, "bob").await.unwrap_err();
    assert_status(&refused, tonic::Code::Unavailable, "STORE_UNAVAILABLE");
    assert!(
        !refused.message().contains("127.0.0.1"),
        "the database's address stays in the log: {refused:?}"
    );
    // Meanwhile A, still connected, revokes the session: B cannot learn
    // it, so past its bound it refuses everything.
    a.tokens()
        .revoke_session(crate::common::authed(
            pb::RevokeSessionRequest {
                session_id: s.session_id.clone(),
            },
            &verifier,
        ))
        .await
        .unwrap();
    let refused = loop {
        match b.verify(&verifier, &s.access_token).await {
            Err(status) => break status,
            Ok(v) => {
                assert!(v.active, "B cannot have learnt the revocation: {v:?}");
                assert!(
                    cut_at.elapsed() < Duration::from_secs(4),
                    "B never failed closed"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let after = cut_at.elapsed();
    assert_status(&refused, tonic::Code::Unavailable, "STORE_UNAVAILABLE");
    assert!(
        after >= Duration::from_millis(1500),
        "failed closed after {after:?}, before its 2 s bound"
    );
    eprintln!("cut off at 0, failed closed after {after:?} (bound 2 s)");

    // The database back: B recovers by itself and knows the revocation.
    proxy.restore();
    let took = time_until("B recovering", || async {
        matches!(
            b.verify(&verifier, &s.access_token).await,
            Ok(v) if v.reason() == pb::TokenReason::Revoked
        )
    })
    .await;
    eprintln!("reconnected, revocation enforced after {took:?}");
    b.session(&primary, "carol").await.unwrap();
}

/// Writes acknowledged by each replica, by subject.
type Ledger = Arc<Mutex<Vec<pb::Session>>>;

/// Creates sessions on `replica` until `stop`, noting each acknowledged
/// one; every refusal must be UNAVAILABLE (STORE_UNAVAILABLE). Returns how
/// many were refused.
async fn write_until(
    replica: &Replica,
    backend: &str,
    prefix: &str,
    ledger: Ledger,
    stop: Arc<AtomicBool>,
) -> usize {
    let mut refused = 0;
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        match replica.session(backend, &format!("{prefix}-{i}")).await {
            Ok(s) => ledger.lock().unwrap().push(s),
            Err(status) => {
                assert_status(&status, tonic::Code::Unavailable, "STORE_UNAVAILABLE");
                refused += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    refused
}

/// Two replicas on the database `url`: (A, B, the primary key, a
/// `tokens:verify` key).
async fn two_replicas(url: &str) -> (Replica, Replica, String, String) {
    let a = Replica::start(url, None, &[]).await;
    let primary = a.process.primary.clone().unwrap();
    let b = Replica::start(url, Some(a.dir.path()), &[]).await;
    let (_, verifier) = a.create_key(&primary, &["tokens:verify"]).await;
    (a, b, primary, verifier)
}

/// Asserts that every session in `acknowledged` is in the database `url`
/// and verifies on each of `replicas`.
async fn all_acknowledged_are_committed(
    url: &str,
    acknowledged: &[pb::Session],
    replicas: [&Replica; 2],
    verifier: &str,
) {
    let conn = mcp_auth::store::postgres::test_db::connect(url)
        .await
        .unwrap();
    for s in acknowledged {
        let row = conn
            .query_opt(
                "SELECT 1 FROM sessions WHERE session_id = $1",
                &[&s.session_id],
            )
            .await
            .unwrap();
        assert!(
            row.is_some(),
            "{} was acknowledged, not committed",
            s.session_id
        );
        for r in replicas {
            let v = r.verify(verifier, &s.access_token).await.unwrap();
            assert!(
                v.active,
                "acknowledged session {} lost: {v:?}",
                s.session_id
            );
        }
    }
}

/// Two writers on each of `a` and `b` until `stop`; how many writes were
/// refused.
async fn four_writers(
    a: &Replica,
    b: &Replica,
    primary: &str,
    ledger: &Ledger,
    stop: &Arc<AtomicBool>,
) -> usize {
    let (a1, a2, b1, b2) = tokio::join!(
        write_until(a, primary, "a1", ledger.clone(), stop.clone()),
        write_until(a, primary, "a2", ledger.clone(), stop.clone()),
        write_until(b, primary, "b1", ledger.clone(), stop.clone()),
        write_until(b, primary, "b2", ledger.clone(), stop.clone()),
    );
    a1 + a2 + b1 + b2
}

#[tokio::test]
async fn connections_to_the_database_dropped_under_load_lose_no_acknowledged_write() {
    let db = database().await;
    let proxy = Proxy::start(target_of(db.url())).await;
    let url = proxy.url_for(db.url());
    let (a, b, primary, verifier) = two_replicas(&url).await;
    let ledger: Ledger = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = four_writers(&a, &b, &primary, &ledger, &stop);
    let faults = async {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            proxy.cut();
            tokio::time::sleep(Duration::from_millis(300)).await;
            proxy.restore();
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        stop.store(true, Ordering::SeqCst);
    };
    let (refused, ()) = tokio::join!(writers, faults);
    let acknowledged = ledger.lock().unwrap().clone();
    eprintln!(
        "{} sessions acknowledged, {refused} refused with UNAVAILABLE over three cuts",
        acknowledged.len()
    );
    assert!(refused > 0, "the cuts refused nothing: they did not happen");
    assert!(!acknowledged.is_empty());

    // Every acknowledged session is in the database: both replicas
    // (recovered by themselves) verify each of them.
    all_acknowledged_are_committed(db.url(), &acknowledged, [&a, &b], &verifier).await;
    // Both write again.
    a.session(&primary, "after-a").await.unwrap();
    b.session(&primary, "after-b").await.unwrap();
}

#[tokio::test]
async fn a_replica_killed_mid_write_loses_nothing_it_acknowledged() {
    let db = database().await;
    let a = Replica::start(db.url(), None, &[]).await;
    let primary = a.process.primary.clone().unwrap();
    let b = Replica::start(db.url(), Some(a.dir.path()), &[]).await;
    let (_, verifier) = b.create_key(&primary, &["tokens:verify"]).await;

    let ledger: Ledger = Arc::default();
    let pid = a.process.child.id().unwrap();
    // Writers on A; A is SIGKILLed while they are in flight.
    let writer = |i: u32| {
        let ledger = ledger.clone();
        let (a, primary) = (&a, &primary);
        async move {
            for n in 0.. {
                match a.session(primary, &format!("w{i}-{n}")).await {
                    Ok(s) => ledger.lock().unwrap().push(s),
                    // The process died under the call: not acknowledged.
                    Err(_) => break,
                }
            }
        }
    };
    let writes = async {
        tokio::join!(writer(0), writer(1), writer(2), writer(3));
    };
    let kill = async {
        while ledger.lock().unwrap().len() < 40 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    };
    tokio::join!(writes, kill);
    let acknowledged = ledger.lock().unwrap().clone();
    eprintln!(
        "{} sessions acknowledged before SIGKILL",
        acknowledged.len()
    );
    for s in &acknowledged {
        let v = b.verify(&verifier, &s.access_token).await.unwrap();
        assert!(
            v.active,
            "acknowledged session {} lost: {v:?}",
            s.session_id
        );
    }

    // A starts again on its directory and the database, and serves them.
    let Replica {
        mut process, dir, ..
    } = a;
    process.child.wait().await.unwrap();
    let a = Replica::start_in(db.url(), dir, &[]).await;
    let last = acknowledged.last().unwrap();
    assert!(
        a.verify(&verifier, &last.access_token)
            .await
            .unwrap()
            .active
    );
    // The audit chain verifies: no half-written transaction in it.
    crate::common::audit_verify(&a.process.url, &a.dir.path().join("tls/ca.pem"), &primary).await;
    let _ = PROPAGATION_BOUND;
}

#[tokio::test]
async fn the_database_restarted_and_crashed_under_load_loses_no_acknowledged_write() {
    let cluster = Cluster::start().await;
    let url = cluster.url();
    let (a, b, primary, verifier) = two_replicas(&url).await;
    let ledger: Ledger = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = four_writers(&a, &b, &primary, &ledger, &stop);
    let acknowledged_now = || ledger.lock().unwrap().len();
    // Each fault with writes acknowledged before it and after it: the
    // replicas reconnect by themselves.
    let faults = async {
        let mut seen = Vec::new();
        for fault in ["restart", "crash", "restart"] {
            let before = acknowledged_now();
            while acknowledged_now() < before + 20 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let at = Instant::now();
            match fault {
                "crash" => cluster.crash_and_start().await,
                _ => cluster.restart().await,
            }
            let down = acknowledged_now();
            while acknowledged_now() < down + 20 {
                assert!(
                    at.elapsed() < Duration::from_secs(30),
                    "no write acknowledged within 30 s of the {fault}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen.push((fault, at.elapsed()));
        }
        stop.store(true, Ordering::SeqCst);
        seen
    };
    let (refused, seen) = tokio::join!(writers, faults);
    let acknowledged = ledger.lock().unwrap().clone();
    let figures = format!(
        "postgres restarted twice and crashed once under two replicas' writers: {} sessions \
         acknowledged and checked, {refused} refused with UNAVAILABLE; writing again after {seen:?}",
        acknowledged.len()
    );
    crate::common::report_figures("postgres_restart", &figures);
    assert!(
        refused > 0,
        "the restarts refused nothing: they did not happen"
    );

    // Every acknowledged session is in the database, and both replicas
    // verify each of them.
    all_acknowledged_are_committed(&url, &acknowledged, [&a, &b], &verifier).await;
    // The one chain verifies: no half-written batch in it.
    crate::common::audit_verify(&b.process.url, &b.dir.path().join("tls/ca.pem"), &primary).await;
}
