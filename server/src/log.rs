//! The issuance log as the service serves it (`docs/protocol.md` §10, §8.1): its Merkle tree,
//! read from the store's `ekg_log` and kept in memory (32 bytes per entry: 32 MiB at the 2^20
//! entries an auditor's check takes), signed tree heads (at intervals, and on demand when a
//! ticket's inclusion is asked under a head that does not cover it yet), and the proofs.
//!
//! The entries are the store's: this process only reads them (they are appended with the
//! records they describe, `crate::store`), so several instances on one PostgreSQL database
//! serve one log. What is kept here is a cache of their hashes, extended from the store.

use std::collections::HashMap;
use std::sync::Mutex;

use ekg_core::Digest;
use ekg_core::audit::entry::{EntryKind, LogEntry, MAX_LOG_ENTRIES};
use ekg_core::audit::{Tree, TreeHead};
use ekg_core::ledger::StoreError;
use ekg_core::role::Gatekeeper;
use ekg_core::{Error, Rejection, UnixTime};

use crate::store::{AnyStore, MAX_LOG_RANGE};

/// Shortest and longest interval between two signed heads (`gatekeeper.log_head_interval_secs`).
pub const HEAD_INTERVAL_SECS: std::ops::RangeInclusive<u64> = 1..=86_400;
/// The interval when the configuration names none.
pub const DEFAULT_HEAD_INTERVAL_SECS: u64 = 300;

/// The log's tree as read so far, and the latest signed head.
#[derive(Debug, Default)]
pub struct IssuanceLog {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tree: Tree,
    /// The issue entry of each ticket hash: its leaf index.
    issued: HashMap<Digest, u64>,
    /// The latest signed head: its content and DER.
    head: Option<(TreeHead, Vec<u8>)>,
}

/// An inclusion proof as served: the entry, where it is, the proof, and the head it leads to.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InclusionAnswer {
    /// The issue entry's leaf index.
    pub leaf_index: u64,
    /// The size of the head's tree.
    pub tree_size: u64,
    /// The entry's encoding (§10.2), hex: its leaf hash is `SHA-256(0x00 || entry)`.
    pub entry: String,
    /// The audit path, hex hashes (RFC 9162 §2.1.3).
    pub proof: Vec<String>,
    /// The signed head (DER, hex) whose root the proof leads to.
    pub head: String,
}

/// A consistency proof as served.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConsistencyAnswer {
    /// The smaller size.
    pub first: u64,
    /// The larger size.
    pub second: u64,
    /// The proof, hex hashes (RFC 9162 §2.1.4).
    pub proof: Vec<String>,
}

fn storage(e: StoreError) -> Error {
    Error::new(Rejection::StorageFailed, e.0)
}

fn poisoned() -> Error {
    Error::new(Rejection::StorageFailed, "the log's lock is poisoned")
}

impl IssuanceLog {
    /// Reads the entries appended since the last read into the tree.
    fn sync(state: &mut State, store: &mut AnyStore) -> Result<(), Error> {
        let size = store.log_size().map_err(storage)?;
        if size > MAX_LOG_ENTRIES as u64 {
            return Err(Error::new(
                Rejection::StorageFailed,
                format!("the log holds {size} entries > {MAX_LOG_ENTRIES}"),
            ));
        }
        while state.tree.size() < size {
            let from = state.tree.size();
            let entries = store.log_entries(from, size.min(from + MAX_LOG_RANGE)).map_err(storage)?;
            if entries.is_empty() {
                return Err(Error::new(Rejection::StorageFailed, format!("the log has no entry {from}")));
            }
            for raw in entries {
                let (entry, _) = LogEntry::decode_prefix(&raw)?;
                let index = state.tree.push(&raw);
                if entry.kind == EntryKind::Issue {
                    state.issued.insert(entry.ticket_hash, index);
                }
            }
        }
        Ok(())
    }

    /// The latest head stored, if this gatekeeper's certificate signed it (after a rotation
    /// the next head is signed under the new key).
    fn load_head(state: &mut State, gk: &mut Gatekeeper<AnyStore>) -> Result<(), Error> {
        if state.head.is_some() {
            return Ok(());
        }
        if let Some(der) = gk.store_mut().latest_head().map_err(storage)?
            && let Ok(head) = gk.crypto().open_own_tree_head(&der)
        {
            state.head = Some((head, der));
        }
        Ok(())
    }

    /// Signs a head of the log as it stands now at `now` and stores it, unless the latest head
    /// already covers every entry (`force`: sign anyway). Returns the latest head's DER.
    pub fn sign(&self, gk: &mut Gatekeeper<AnyStore>, now: UnixTime, force: bool) -> Result<Vec<u8>, Error> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        IssuanceLog::sync(&mut state, gk.store_mut())?;
        IssuanceLog::load_head(&mut state, gk)?;
        let size = state.tree.size();
        if let Some((head, der)) = &state.head
            && head.tree_size == size
            && !force
        {
            return Ok(der.clone());
        }
        // Heads never go back in time: a clock moved back signs at the last head's time.
        let timestamp = state.head.as_ref().map_or(now, |(h, _)| h.timestamp.max(now));
        let head = TreeHead { tree_size: size, root_hash: state.tree.root(), timestamp };
        let mut rng = crate::rng::request_rng()?;
        let der = gk.crypto().sign_tree_head(&head, &mut rng)?;
        gk.store_mut().put_head(size, &der).map_err(storage)?;
        state.head = Some((head, der.clone()));
        Ok(der)
    }

    /// The latest signed head (one is signed first if none is stored).
    pub fn head(&self, gk: &mut Gatekeeper<AnyStore>, now: UnixTime) -> Result<Vec<u8>, Error> {
        {
            let mut state = self.state.lock().map_err(|_| poisoned())?;
            IssuanceLog::sync(&mut state, gk.store_mut())?;
            IssuanceLog::load_head(&mut state, gk)?;
            if let Some((_, der)) = &state.head {
                return Ok(der.clone());
            }
        }
        self.sign(gk, now, false)
    }

    /// The inclusion proof of the issue entry of the ticket whose SHA-256 is `ticket`, under
    /// the latest head; a head is signed first if the latest does not cover the entry.
    /// `ticket_not_logged` if the log has no issue entry for it.
    pub fn inclusion(
        &self,
        gk: &mut Gatekeeper<AnyStore>,
        ticket: Digest,
        now: UnixTime,
    ) -> Result<InclusionAnswer, Error> {
        let covered = {
            let mut state = self.state.lock().map_err(|_| poisoned())?;
            IssuanceLog::sync(&mut state, gk.store_mut())?;
            IssuanceLog::load_head(&mut state, gk)?;
            let Some(&index) = state.issued.get(&ticket) else {
                return Err(Error::new(Rejection::TicketNotLogged, format!("no issue entry for ticket {ticket}")));
            };
            state.head.as_ref().is_some_and(|(h, _)| h.tree_size > index)
        };
        if !covered {
            self.sign(gk, now, false)?;
        }
        let state = self.state.lock().map_err(|_| poisoned())?;
        let (Some(&index), Some((head, der))) = (state.issued.get(&ticket), &state.head) else {
            return Err(Error::new(Rejection::StorageFailed, "the log changed while read"));
        };
        let proof = state.tree.inclusion_proof(index, head.tree_size)?;
        let (tree_size, head) = (head.tree_size, hex::encode(der));
        drop(state);
        let entry = gk.store_mut().log_entries(index, index + 1).map_err(storage)?;
        let entry = entry.into_iter().next().ok_or_else(|| Error::new(Rejection::StorageFailed, "an entry is gone"))?;
        Ok(InclusionAnswer {
            leaf_index: index,
            tree_size,
            entry: hex::encode(entry),
            proof: proof.iter().map(|h| hex::encode(h.as_bytes())).collect(),
            head,
        })
    }

    /// The consistency proof between the log's first `first` and `second` entries
    /// (`0 < first <= second <= size`; `log_query_invalid` otherwise).
    pub fn consistency(
        &self,
        gk: &mut Gatekeeper<AnyStore>,
        first: u64,
        second: u64,
    ) -> Result<Result<ConsistencyAnswer, String>, Error> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        IssuanceLog::sync(&mut state, gk.store_mut())?;
        IssuanceLog::load_head(&mut state, gk)?;
        let size = state.tree.size();
        if first == 0 || first > second || second > size {
            return Ok(Err(format!("need 0 < first <= second <= {size} (the log's size)")));
        }
        let proof = state.tree.consistency_proof(first, second)?;
        Ok(Ok(ConsistencyAnswer { first, second, proof: proof.iter().map(|h| hex::encode(h.as_bytes())).collect() }))
    }
}
