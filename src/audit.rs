//! The tamper-evident audit trail.
//!
//! Every security event (keys, identities, certificates, signing keys,
//! sessions, refresh-token reuse, failed authentication, rate limiting) is
//! appended to the store as an [`AuditRecord`] carrying the SHA-256 of the
//! previous record, so deleting or editing a record breaks the chain.
//! [`verify_chain`] checks it and names the first broken record; retention
//! pruning keeps an anchor (the last pruned record's hash) so the chain
//! stays verifiable from the oldest kept record. Records never contain a
//! secret, a token or key material: only ids.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::Error;
use crate::secret::SecretHash;
use crate::store::{Store, StoreError};

/// Events of one kind from one actor within this window are aggregated
/// (failed authentication and rate limiting), so a flood does not flood
/// the log.
const AGGREGATE_SECS: i64 = 10;

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub time: i64,
    /// Who: a key id, an identity name, or `peer:<address>` when
    /// unauthenticated.
    pub actor: String,
    /// What, e.g. `api_key.created`.
    pub action: String,
    /// On what: an id, never a secret.
    pub target: String,
    /// `ok`, or the refusal's reason.
    pub outcome: String,
    /// The RPC's request id.
    pub request_id: String,
    /// Hex SHA-256 of the previous record (or of the anchor), empty for the
    /// first record ever.
    pub prev_hash: String,
    /// Hex SHA-256 of this record's other fields and `prev_hash`.
    pub hash: String,
}

impl AuditRecord {
    /// The hash this record should carry.
    pub fn compute_hash(&self) -> String {
        // The canonical form is the JSON array of the fields in this order;
        // serialised from borrowed fields, without building a JSON value.
        let canonical = serde_json::to_vec(&(
            self.seq,
            self.time,
            &self.actor,
            &self.action,
            &self.target,
            &self.outcome,
            &self.request_id,
            &self.prev_hash,
        ))
        .unwrap_or_default();
        crate::ca::hex(SecretHash::of(&canonical).as_bytes())
    }
}

/// The chain's starting point after pruning: the last pruned record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnchor {
    /// Seq of the last pruned record (0 if nothing was pruned).
    pub seq: u64,
    /// Its hash (empty if nothing was pruned).
    pub hash: String,
}

/// Where a chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit record {seq} is broken: {problem}")]
pub struct BrokenChain {
    /// The first record that does not verify.
    pub seq: u64,
    /// What is wrong with it.
    pub problem: String,
}

/// Checks that `records` (in order) form an unbroken chain from `anchor`.
/// Returns how many records were checked.
///
/// # Errors
/// The first record whose hash, link or sequence number is wrong.
pub fn verify_chain<'a>(
    anchor: &AuditAnchor,
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> Result<u64, BrokenChain> {
    let mut prev_seq = anchor.seq;
    let mut prev_hash = anchor.hash.clone();
    let mut n = 0;
    for r in records {
        if r.seq != prev_seq + 1 {
            return Err(BrokenChain {
                seq: prev_seq + 1,
                problem: format!("missing; the next record is {}", r.seq),
            });
        }
        if r.prev_hash != prev_hash {
            return Err(BrokenChain {
                seq: r.seq,
                problem: "its prev_hash does not match the previous record".to_owned(),
            });
        }
        if r.compute_hash() != r.hash {
            return Err(BrokenChain {
                seq: r.seq,
                problem: "its contents do not match its hash (edited)".to_owned(),
            });
        }
        prev_seq = r.seq;
        prev_hash = r.hash.clone();
        n += 1;
    }
    Ok(n)
}

/// Verifies the audit chain in the data directory of a stopped server.
/// Returns (records checked, anchor seq).
///
/// # Errors
/// The database cannot be opened (a running server holds it), or the chain
/// is broken (as [`AuditVerifyError::Broken`]).
pub fn verify_data_dir(data_dir: &std::path::Path) -> Result<(u64, u64), AuditVerifyError> {
    if !data_dir.join("db").exists() {
        return Err(AuditVerifyError::Open(format!(
            "{}: no mcp-auth database here",
            data_dir.display()
        )));
    }
    let store = Store::open(data_dir).map_err(|e| AuditVerifyError::Open(e.to_string()))?;
    let anchor = store
        .audit_anchor()
        .map_err(|e| AuditVerifyError::Open(e.to_string()))?;
    let mut checker = ChainChecker::new(&anchor);
    let mut after = anchor.seq;
    loop {
        let page = store
            .audit_page(after, 1024)
            .map_err(|e| AuditVerifyError::Open(e.to_string()))?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        checker.feed(&page).map_err(AuditVerifyError::Broken)?;
        if page.len() < 1024 {
            break;
        }
    }
    Ok((checker.checked, anchor.seq))
}

/// Why [`verify_data_dir`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditVerifyError {
    /// The store could not be read.
    #[error("cannot read the audit trail: {0}")]
    Open(String),
    /// The chain is broken.
    #[error(transparent)]
    Broken(BrokenChain),
}

/// Verifies a chain fed in pages.
pub struct ChainChecker {
    anchor: AuditAnchor,
    /// Records checked so far.
    pub checked: u64,
}

impl ChainChecker {
    /// A checker starting at `anchor`.
    pub fn new(anchor: &AuditAnchor) -> Self {
        ChainChecker {
            anchor: anchor.clone(),
            checked: 0,
        }
    }

    /// Checks the next records in order.
    ///
    /// # Errors
    /// The first broken record.
    pub fn feed<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a AuditRecord>,
    ) -> Result<(), BrokenChain> {
        let mut last = None;
        self.checked += verify_chain(
            &self.anchor,
            records
                .into_iter()
                .inspect(|r| last = Some((r.seq, r.hash.clone()))),
        )?;
        if let Some((seq, hash)) = last {
            self.anchor = AuditAnchor { seq, hash };
        }
        Ok(())
    }
}

/// An event to record.
#[derive(Clone, Debug)]
pub(crate) struct AuditEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    pub request_id: &'a str,
}

struct Chain {
    next_seq: u64,
    last_hash: String,
}

struct Aggregate {
    window_start: i64,
    suppressed: u64,
    /// The last folded event's target and outcome, for the summary record.
    target: String,
    outcome: String,
}

/// Appends to the audit trail in the store.
pub(crate) struct AuditLog {
    store: Store,
    clock: Clock,
    chain: Mutex<Chain>,
    /// (actor, action) → aggregation window, for flood-prone events.
    aggregates: Mutex<HashMap<(String, String), Aggregate>>,
}

impl AuditLog {
    /// Continues the chain stored in `store`.
    ///
    /// # Errors
    /// Storage failed.
    pub fn open(store: Store, clock: Clock) -> Result<Self, StoreError> {
        let (next_seq, last_hash) = match store.last_audit()? {
            Some(r) => (r.seq + 1, r.hash),
            None => {
                let anchor = store.audit_anchor()?;
                (anchor.seq + 1, anchor.hash)
            }
        };
        Ok(AuditLog {
            store,
            clock,
            chain: Mutex::new(Chain {
                next_seq,
                last_hash,
            }),
            aggregates: Mutex::new(HashMap::new()),
        })
    }

    /// Appends `event` and makes it durable (with group commit).
    ///
    /// # Errors
    /// Storage failed.
    pub async fn record(&self, event: AuditEvent<'_>) -> Result<(), Error> {
        self.append(event)?;
        self.store.flush().await?;
        Ok(())
    }

    /// Appends a flood-prone event (failed authentication, rate limiting):
    /// at most one record per actor and action per ten seconds, carrying
    /// how many were folded into it. Not flushed on its own.
    pub fn record_aggregated(&self, event: AuditEvent<'_>) {
        let now = self.clock.now();
        let key = (event.actor.to_owned(), event.action.to_owned());
        let suppressed = {
            let mut agg = self.aggregates.lock().unwrap_or_else(|p| p.into_inner());
            match agg.get_mut(&key) {
                Some(a) if now - a.window_start < AGGREGATE_SECS => {
                    a.suppressed += 1;
                    event.target.clone_into(&mut a.target);
                    event.outcome.clone_into(&mut a.outcome);
                    return;
                }
                Some(a) => {
                    let folded = a.suppressed;
                    a.window_start = now;
                    a.suppressed = 0;
                    folded
                }
                None => {
                    agg.insert(
                        key,
                        Aggregate {
                            window_start: now,
                            suppressed: 0,
                            target: String::new(),
                            outcome: String::new(),
                        },
                    );
                    0
                }
            }
        };
        let target = if suppressed > 0 {
            format!(
                "{} (+{suppressed} more in the previous window)",
                event.target
            )
        } else {
            event.target.to_owned()
        };
        if let Err(err) = self.append(AuditEvent {
            target: &target,
            ..event
        }) {
            tracing::warn!(cause = %err, "could not append to the audit trail");
        }
    }

    /// Appends without aggregation or flush: the caller's next flush makes
    /// it durable. A failure is logged, not returned.
    pub fn append_unflushed(&self, event: AuditEvent<'_>) {
        if let Err(err) = self.append(event) {
            tracing::warn!(cause = %err, "could not append to the audit trail");
        }
    }

    fn append(&self, event: AuditEvent<'_>) -> Result<AuditRecord, Error> {
        let mut chain = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        let mut record = AuditRecord {
            seq: chain.next_seq,
            time: self.clock.now(),
            actor: event.actor.to_owned(),
            action: event.action.to_owned(),
            target: event.target.to_owned(),
            outcome: event.outcome.to_owned(),
            request_id: event.request_id.to_owned(),
            prev_hash: chain.last_hash.clone(),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        self.store.put_audit(&record)?;
        chain.next_seq += 1;
        chain.last_hash = record.hash.clone();
        Ok(record)
    }

    /// Drops aggregation windows that have closed, writing a summary record
    /// for each that folded events in, so no count is lost.
    pub fn evict_idle(&self) {
        let now = self.clock.now();
        let closed: Vec<((String, String), Aggregate)> = {
            let mut agg = self.aggregates.lock().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<_> = agg
                .iter()
                .filter(|(_, a)| now - a.window_start >= AGGREGATE_SECS)
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| agg.remove(&k).map(|a| (k, a)))
                .collect()
        };
        for ((actor, action), a) in closed.into_iter().filter(|(_, a)| a.suppressed > 0) {
            let target = format!(
                "{} ({} folded in the closed window)",
                a.target, a.suppressed
            );
            self.append_unflushed(AuditEvent {
                actor: &actor,
                action: &action,
                target: &target,
                outcome: &a.outcome,
                request_id: "",
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_hashes_are_stable_across_versions() {
        // Chains written by earlier versions must keep verifying: this pins
        // the hash of one record, computed when the chain format was set.
        let r = AuditRecord {
            seq: 7,
            time: 1_764_000_000,
            actor: "key_abc".to_owned(),
            action: "session.created".to_owned(),
            target: "ses_x \"quoted\" é".to_owned(),
            outcome: "ok".to_owned(),
            request_id: "req-1".to_owned(),
            prev_hash: "00ff".to_owned(),
            hash: String::new(),
        };
        assert_eq!(
            r.compute_hash(),
            "f106fb2b878736f6e9a6577908b14e17f30a82b24448241dd7c3f3cb8e3f7e36"
        );
    }

    #[tokio::test]
    async fn chain_verifies_and_edits_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let clock = Clock::manual(1_000);
        let log = AuditLog::open(store.clone(), clock.clone()).unwrap();
        for i in 0..5 {
            let target = format!("key_{i}");
            log.record(AuditEvent {
                actor: "key_admin",
                action: "api_key.created",
                target: &target,
                outcome: "ok",
                request_id: "r",
            })
            .await
            .unwrap();
        }
        let mut records = store.audit_page(0, 100).unwrap();
        assert_eq!(verify_chain(&AuditAnchor::default(), &records), Ok(5));

        records[2].outcome = "denied".to_owned();
        assert_eq!(
            verify_chain(&AuditAnchor::default(), &records)
                .unwrap_err()
                .seq,
            3
        );
        records[2].hash = records[2].compute_hash();
        assert_eq!(
            verify_chain(&AuditAnchor::default(), &records)
                .unwrap_err()
                .seq,
            4
        );
        let without: Vec<_> = store
            .audit_page(0, 100)
            .unwrap()
            .into_iter()
            .filter(|r| r.seq != 2)
            .collect();
        assert_eq!(
            verify_chain(&AuditAnchor::default(), &without)
                .unwrap_err()
                .seq,
            2
        );

        // A reopened log continues the chain.
        let again = AuditLog::open(store.clone(), clock).unwrap();
        again
            .record(AuditEvent {
                actor: "a",
                action: "b",
                target: "c",
                outcome: "ok",
                request_id: "",
            })
            .await
            .unwrap();
        let all = store.audit_page(0, 100).unwrap();
        assert_eq!(verify_chain(&AuditAnchor::default(), &all), Ok(6));
    }

    #[test]
    fn floods_are_aggregated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let clock = Clock::manual(1_000);
        let log = AuditLog::open(store.clone(), clock.clone()).unwrap();
        let event = AuditEvent {
            actor: "peer:192.0.2.1",
            action: "auth.failed",
            target: "api key",
            outcome: "API_KEY_INVALID",
            request_id: "",
        };
        for _ in 0..100 {
            log.record_aggregated(event.clone());
        }
        clock.advance(std::time::Duration::from_secs(10));
        log.record_aggregated(event);
        let all = store.audit_page(0, 1000).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all[1].target.contains("+99"), "{}", all[1].target);
    }
}
