//! `ekg read --require-log` (`docs/protocol.md` §10.5, §10.8): before countersigning a
//! ticket, the recipient asks the ticket's gatekeeper for the ticket's inclusion proof and
//! checks it with the core's audit code, so that a ticket signed with a stolen signing key
//! but never issued (never logged) is refused before any release request is sent.
//!
//! The checks, in order, each failure with its stable code: the gatekeeper knows no issue
//! entry for the ticket (`ticket_not_logged`, its own answer); the answer is JSON of the
//! shape §10.8 gives (`log_proof_malformed`); the head is a TreeHead signed by the ticket's
//! gatekeeper (A2: the ticket's signer, or after a rotation a certificate valid under our
//! anchors with `id-ekg-kp-gatekeeper` naming the ticket's URI, as C2 accepts for a release;
//! `tree_head_bad_signature`); the entry is an issue entry holding the ticket's SHA-256
//! (`ticket_not_logged`); the proof leads from the entry's leaf hash to the head's root (A4,
//! `log_inclusion_failed`).

use ekg_binding as binding;
use ekg_core::audit::entry::ticket_hash;
use ekg_core::audit::merkle::{hash_from_slice, leaf_hash, verify_inclusion};
use ekg_core::audit::{EntryKind, LogEntry, TreeHead};
use ekg_core::crypto::pki::TrustAnchors;
use ekg_core::role::Ticket;
use ekg_core::{Rejection, UnixTime};
use serde::Deserialize;

use super::{ClientError, GatekeeperClient, fail, provider};

/// The inclusion answer (`GET log/inclusion?ticket=HEX`, §10.8), hex strings.
#[derive(Debug, Deserialize)]
struct InclusionAnswer {
    leaf_index: u64,
    tree_size: u64,
    entry: String,
    proof: Vec<String>,
    head: String,
}

/// Most hashes an inclusion proof of a tree of 2^64 leaves has.
const MAX_PROOF_LEN: usize = 64;

fn malformed<T>(detail: impl Into<String>) -> Result<T, ClientError> {
    fail(Rejection::LogProofMalformed.code(), detail)
}

/// Asks the ticket's gatekeeper for its inclusion proof and checks it (module documentation).
pub fn require_logged(
    http: &GatekeeperClient,
    anchors: &TrustAnchors,
    ticket: &Ticket,
    now: UnixTime,
) -> Result<(), ClientError> {
    let hash = ticket_hash(&ticket.der);
    let query = format!("{}?ticket={}", binding::LOG_INCLUSION, hex::encode(hash.0));
    let body = http.get(&ticket.gatekeeper_uri, &query)?;
    let answer: InclusionAnswer = serde_json::from_slice(&body)
        .or_else(|e| malformed(format!("the inclusion answer is not §10.8's JSON: {e}")))?;
    check(anchors, ticket, &answer, now)
}

fn check(anchors: &TrustAnchors, ticket: &Ticket, answer: &InclusionAnswer, now: UnixTime) -> Result<(), ClientError> {
    let unhex = |what: &str, s: &str| hex::decode(s).or_else(|_| malformed(format!("{what} is not hex")));
    let head_der = unhex("head", &answer.head)?;
    let head = open_head(anchors, ticket, &head_der, now)?;
    if head.tree_size != answer.tree_size || answer.leaf_index >= head.tree_size {
        return malformed(format!(
            "leaf {} of a tree of {} under a head of {} entries",
            answer.leaf_index, answer.tree_size, head.tree_size
        ));
    }
    let entry_bytes = unhex("entry", &answer.entry)?;
    let (entry, used) = LogEntry::decode_prefix(&entry_bytes)?;
    if used != entry_bytes.len() {
        return malformed("the entry has bytes after it");
    }
    if entry.kind != EntryKind::Issue || entry.ticket_hash != ticket_hash(&ticket.der) {
        return fail(
            Rejection::TicketNotLogged.code(),
            "the entry the gatekeeper offers is not this ticket's issue entry".to_owned(),
        );
    }
    if answer.proof.len() > MAX_PROOF_LEN {
        return malformed(format!("{} hashes in the proof", answer.proof.len()));
    }
    let proof = answer
        .proof
        .iter()
        .map(|h| hash_from_slice(&unhex("a proof hash", h)?, "a proof hash").map_err(ClientError::from))
        .collect::<Result<Vec<_>, _>>()?;
    verify_inclusion(answer.leaf_index, head.tree_size, &leaf_hash(&entry_bytes).0, &proof, &head.root_hash.0)?;
    Ok(())
}

/// A2: the head signed by the ticket's certificate, or by a certificate of the same
/// gatekeeper (valid under `anchors`, `id-ekg-kp-gatekeeper`, naming the ticket's URI).
fn open_head(anchors: &TrustAnchors, ticket: &Ticket, der: &[u8], now: UnixTime) -> Result<TreeHead, ClientError> {
    let p = provider();
    match TreeHead::open(p, der, std::slice::from_ref(&ticket.signer_der)) {
        Ok(head) => Ok(head),
        Err(e) if e.rejection() == Rejection::TreeHeadBadSignature => {
            use ekg_core::wire::{oid, signed};
            let object = signed::open(p, der, oid::CT_TREE_HEAD, ekg_core::audit::head::MAX_TREE_HEAD_LEN)?;
            let same_gatekeeper = anchors
                .validate(p, &object.signer, &object.certificates, now)
                .is_ok_and(|v| v.is_gatekeeper && v.uris.contains(&ticket.gatekeeper_uri));
            if !same_gatekeeper {
                return Err(e.into());
            }
            Ok(TreeHead::open(p, der, &[object.signer_der])?)
        }
        Err(e) => Err(e.into()),
    }
}
