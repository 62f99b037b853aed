//! The auditor's checks of `docs/protocol.md` §3.4a (A1 to A6), over a whole log in memory.
//!
//! Give it the log's bytes ([`Log::decode`], A1), signed heads opened with
//! [`super::TreeHead::open`] (A2), then: [`Log::check_head`] (A3), [`Log::check_ticket`] (A4),
//! [`Log::check_heads`] (A5), [`LogEntry::names`] (A6). [`check_consistency`] is A5 for a
//! monitor that holds two heads and a proof but not the log.

use crate::error::{Rejection, Result, reject};
use crate::ids::Digest;

use super::entry::{EntryKind, LogEntry, decode_log, ticket_hash};
use super::head::TreeHead;
use super::merkle::{self, Tree};

/// A decoded log: its entries and their Merkle tree.
#[derive(Clone, Debug)]
pub struct Log {
    entries: Vec<LogEntry>,
    tree: Tree,
}

/// Where a ticket's issuance sits in the log, with the proof that checked it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inclusion {
    /// The entry's index.
    pub index: u64,
    /// The entry.
    pub entry: LogEntry,
    /// Its inclusion proof in the head's tree (verified).
    pub proof: Vec<Digest>,
}

impl Log {
    /// A1: decodes a log file (§10.2), and checks that every release entry follows the issue
    /// entry of its ticket (same ticket hash, key id and recipient count).
    pub fn decode(bytes: &[u8]) -> Result<Log> {
        let decoded = decode_log(bytes)?;
        let mut issued = std::collections::HashMap::new();
        let mut entries = Vec::with_capacity(decoded.len());
        let mut leaves = Vec::with_capacity(decoded.len());
        for (i, (entry, raw)) in decoded.into_iter().enumerate() {
            match entry.kind {
                EntryKind::Issue => {
                    if issued.insert(entry.ticket_hash, (entry.key_id, entry.recipient_count)).is_some() {
                        return Err(malformed(format!("entry {i}: a second issue entry for one ticket")));
                    }
                }
                EntryKind::Release => {
                    if issued.get(&entry.ticket_hash) != Some(&(entry.key_id, entry.recipient_count)) {
                        return Err(malformed(format!("entry {i}: a release of a ticket with no earlier issue entry")));
                    }
                }
            }
            leaves.push(merkle::leaf_hash(&raw));
            entries.push(entry);
        }
        Ok(Log { entries, tree: Tree::from_leaf_hashes(leaves) })
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// The Merkle tree of the whole log.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// A3: the head's root is the root of the log's first `tree_size` entries.
    pub fn check_head(&self, head: &TreeHead) -> Result<()> {
        if head.tree_size > self.tree.size() {
            return Err(reject(
                Rejection::LogRootMismatch,
                format!("the head counts {} entries, the log holds {}", head.tree_size, self.tree.size()),
            ));
        }
        if self.tree.root_at(head.tree_size)? != head.root_hash {
            return Err(reject(
                Rejection::LogRootMismatch,
                format!("the head's root is not the root of the log's first {} entries", head.tree_size),
            ));
        }
        Ok(())
    }

    /// A4: the ticket (its DER) has an issue entry among the head's first `tree_size`
    /// entries, and that entry's inclusion proof leads to the head's root.
    pub fn check_ticket(&self, ticket_der: &[u8], head: &TreeHead) -> Result<Inclusion> {
        let hash = ticket_hash(ticket_der);
        let limit = usize::try_from(head.tree_size).unwrap_or(usize::MAX);
        let (index, entry) = self
            .entries
            .iter()
            .take(limit)
            .enumerate()
            .find(|(_, e)| e.kind == EntryKind::Issue && e.ticket_hash == hash)
            .ok_or_else(|| {
                reject(
                    Rejection::TicketNotLogged,
                    format!("no issue entry for ticket {hash} among the head's {} entries", head.tree_size),
                )
            })?;
        let index = index as u64;
        let proof = self.tree.inclusion_proof(index, head.tree_size)?;
        let leaf = self.tree.leaf_hashes().get(index as usize).copied().unwrap_or_else(merkle::empty_root);
        merkle::verify_inclusion(index, head.tree_size, &leaf.0, &proof, &head.root_hash.0)?;
        Ok(Inclusion { index, entry: entry.clone(), proof })
    }

    /// A5 with the log: `earlier` and `later` (any order) are heads of this one log. Equal
    /// sizes need equal roots; otherwise the consistency proof between them, made from this
    /// log, must verify. The larger head must match the log (A3) first: a failure after that
    /// means the gatekeeper signed two trees that no append-only log has (`log_fork`).
    pub fn check_heads(&self, a: &TreeHead, b: &TreeHead) -> Result<()> {
        let (small, large) = if a.tree_size <= b.tree_size { (a, b) } else { (b, a) };
        if small.tree_size == large.tree_size && small.root_hash != large.root_hash {
            return Err(fork(small.tree_size));
        }
        self.check_head(large)?;
        if small.tree_size == 0 {
            return if small.root_hash == merkle::empty_root() { Ok(()) } else { Err(fork(0)) };
        }
        let proof = self.tree.consistency_proof(small.tree_size, large.tree_size)?;
        merkle::verify_consistency(small.tree_size, large.tree_size, &proof, &small.root_hash.0, &large.root_hash.0)
            .map_err(|_| fork(small.tree_size))
    }
}

/// A5 without the log: two heads and the consistency proof between them (from the smaller to
/// the larger). Equal sizes with different roots are `log_fork`; a proof that does not
/// verify is `log_consistency_failed` (the proof or the heads are wrong: a monitor asks
/// for the log).
pub fn check_consistency(a: &TreeHead, b: &TreeHead, proof: &[Digest]) -> Result<()> {
    let (small, large) = if a.tree_size <= b.tree_size { (a, b) } else { (b, a) };
    if small.tree_size == large.tree_size && small.root_hash != large.root_hash {
        return Err(fork(small.tree_size));
    }
    if small.tree_size == 0 {
        // Every log extends the empty one: nothing to prove.
        return if small.root_hash == merkle::empty_root() { Ok(()) } else { Err(fork(0)) };
    }
    merkle::verify_consistency(small.tree_size, large.tree_size, proof, &small.root_hash.0, &large.root_hash.0)
}

fn fork(size: u64) -> crate::error::Error {
    reject(Rejection::LogFork, format!("two signed heads disagree on the log's first {size} entries"))
}

fn malformed(detail: String) -> crate::error::Error {
    reject(Rejection::LogMalformed, detail)
}
