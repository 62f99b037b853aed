//! The issuance log end to end with real tickets and a real gatekeeper key: a good log and its
//! heads verify; a forked log, a head of another log, a forged ticket (signed with the
//! gatekeeper's key, never logged), a head signed by another key, and an address not listed
//! are each refused with their code (docs/protocol.md §3.4a).

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use ekg_core::audit::merkle::Tree;
use ekg_core::audit::{Log, LogEntry, LogSalt, TreeHead, check_consistency, entry::encode_log};
use ekg_core::ledger::ReleasePolicy;
use ekg_core::role::Ticket;
use ekg_core::{Rejection, UnixTime};

fn salt() -> LogSalt {
    LogSalt::from_bytes([0x5a; 32])
}

/// A gatekeeper's log of `n` issuances (each to bob and dave) and one release of each to
/// bob; the tickets in issue order.
fn logged(n: u64) -> (Vec<LogEntry>, Vec<Vec<u8>>) {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let (mut entries, mut tickets) = (Vec::new(), Vec::new());
    for i in 0..n {
        let sent = send(&mut gk, &alice(), &["bob@example.org", "dave@example.org"], 100 + i);
        let t = Ticket::open(p(), &sent.ticket).unwrap();
        let time = UnixTime(NOW.0 + i);
        entries.push(LogEntry::issue(&salt(), time, t.key_id, &t.der, &t.request.recipients).unwrap());
        fetch(&mut gk, &bob(), &sent.sealed, NOW, 200 + i).unwrap();
        entries.push(LogEntry::release(&salt(), time, t.key_id, &t.der, 2, &addr("bob@example.org")).unwrap());
        tickets.push(sent.ticket);
    }
    (entries, tickets)
}

fn gatekeeper_cert() -> Vec<Vec<u8>> {
    vec![fed().sender_org.gatekeeper.cert_der.clone()]
}

/// The head of the first `size` entries, signed by the sender organisation's gatekeeper and
/// opened again as an auditor does.
fn head(entries: &[LogEntry], size: usize, seed: u64) -> (Vec<u8>, TreeHead) {
    let mut tree = Tree::new();
    for e in &entries[..size] {
        tree.push(&e.encode().unwrap());
    }
    let head = TreeHead { tree_size: size as u64, root_hash: tree.root(), timestamp: UnixTime(NOW.0 + 60) };
    let der = head.sign(p(), &credential(&fed().sender_org.gatekeeper), &mut rng(seed)).unwrap();
    let opened = TreeHead::open(p(), &der, &gatekeeper_cert()).unwrap();
    assert_eq!(opened, head);
    (der, opened)
}

#[test]
fn a_good_log_its_heads_and_its_tickets_verify() {
    let (entries, tickets) = logged(3);
    let log = Log::decode(&encode_log(&entries).unwrap()).unwrap();
    let (_, early) = head(&entries, 3, 1);
    let (_, late) = head(&entries, 6, 2);
    log.check_head(&early).unwrap();
    log.check_head(&late).unwrap();
    log.check_heads(&early, &late).unwrap();
    log.check_heads(&late, &early).unwrap();
    for (i, ticket) in tickets.iter().enumerate() {
        let inclusion = log.check_ticket(ticket, &late).unwrap();
        assert_eq!(inclusion.index, 2 * i as u64);
        inclusion.entry.names(&salt(), &addr("dave@example.org")).unwrap();
        assert_eq!(
            inclusion.entry.names(&salt(), &addr("carol@example.com")).unwrap_err(),
            Rejection::LogAddressMismatch
        );
    }
    // The consistency proof a monitor is given, without the log.
    let proof = log.tree().consistency_proof(3, 6).unwrap();
    check_consistency(&early, &late, &proof).unwrap();
    let mut bad = proof.clone();
    bad[0].0[0] ^= 1;
    assert_eq!(check_consistency(&early, &late, &bad).unwrap_err(), Rejection::LogConsistencyFailed);
}

#[test]
fn a_ticket_issued_after_the_head_or_never_logged_is_detected() {
    let (entries, tickets) = logged(2);
    let log = Log::decode(&encode_log(&entries).unwrap()).unwrap();
    // The second ticket's issue entry is entry 2: a head of two entries does not hold it.
    let (_, early) = head(&entries, 2, 1);
    assert_eq!(log.check_ticket(&tickets[1], &early).unwrap_err(), Rejection::TicketNotLogged);
    // A ticket signed with the gatekeeper's own key that the log never saw (a stolen key,
    // or a gatekeeper hiding an issuance): it verifies as a ticket, but is not in the log.
    let mut thief = gatekeeper(ReleasePolicy::Once);
    let forged = send(&mut thief, &alice(), &["bob@example.org"], 999).ticket;
    let t = Ticket::open(p(), &forged).unwrap();
    t.check_gatekeeper(p(), &anchors(), NOW).unwrap();
    let (_, late) = head(&entries, 4, 2);
    assert_eq!(log.check_ticket(&forged, &late).unwrap_err(), Rejection::TicketNotLogged);
}

#[test]
fn a_forked_log_is_detected() {
    let (entries, _) = logged(3);
    let log = Log::decode(&encode_log(&entries).unwrap()).unwrap();
    let (_, honest) = head(&entries, 4, 1);
    // The same first entries in another order: a second history the gatekeeper signed.
    let mut other = entries.clone();
    other.swap(0, 2);
    let (_, forked_same_size) = head(&other, 4, 2);
    assert_eq!(log.check_heads(&honest, &forked_same_size).unwrap_err(), Rejection::LogFork);
    assert_eq!(check_consistency(&honest, &forked_same_size, &[]).unwrap_err(), Rejection::LogFork);
    // An earlier head of the other history against a later head of this log.
    let (_, forked_early) = head(&other, 3, 3);
    let (_, late) = head(&entries, 6, 4);
    assert_eq!(log.check_heads(&forked_early, &late).unwrap_err(), Rejection::LogFork);
    // A head of the other history shown with this log: its root is not this log's.
    assert_eq!(log.check_head(&forked_early).unwrap_err(), Rejection::LogRootMismatch);
    let (_, too_big) = head(&[entries.clone(), entries.clone()].concat(), 7, 5);
    assert_eq!(log.check_head(&too_big).unwrap_err(), Rejection::LogRootMismatch);
}

#[test]
fn a_head_signed_by_another_key_or_tampered_is_refused() {
    let (entries, _) = logged(1);
    let (der, _) = head(&entries, 2, 1);
    // Another organisation's gatekeeper certificate is not the one trusted.
    let other = vec![fed().recipient_org.gatekeeper.cert_der.clone()];
    assert_eq!(TreeHead::open(p(), &der, &other).unwrap_err(), Rejection::TreeHeadBadSignature);
    // A head signed by the other gatekeeper, checked against ours.
    let tree_head = TreeHead::open(p(), &der, &gatekeeper_cert()).unwrap();
    let theirs = tree_head.sign(p(), &credential(&fed().recipient_org.gatekeeper), &mut rng(3)).unwrap();
    assert_eq!(TreeHead::open(p(), &theirs, &gatekeeper_cert()).unwrap_err(), Rejection::TreeHeadBadSignature);
    // The treeSize changed after signing: the message digest no longer matches.
    let content = tree_head.encode().unwrap();
    let at = der.windows(content.len()).position(|w| w == content).unwrap();
    let mut tampered = der.clone();
    tampered[at + 4] ^= 1; // the version octet: any change to the signed content
    assert_eq!(TreeHead::open(p(), &tampered, &gatekeeper_cert()).unwrap_err(), Rejection::TreeHeadBadSignature);
    // The signature itself.
    let mut sig = der.clone();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    assert_eq!(TreeHead::open(p(), &sig, &gatekeeper_cert()).unwrap_err(), Rejection::TreeHeadBadSignature);
}

#[test]
fn a_release_without_its_issuance_makes_the_log_malformed() {
    let (entries, _) = logged(2);
    // Drop the first issue entry: its release now refers to nothing.
    assert_eq!(Log::decode(&encode_log(&entries[1..]).unwrap()).unwrap_err(), Rejection::LogMalformed);
    // An issue entry twice.
    let twice = [entries.clone(), vec![entries[0].clone()]].concat();
    assert_eq!(Log::decode(&encode_log(&twice).unwrap()).unwrap_err(), Rejection::LogMalformed);
    // A log cut in the middle of an entry.
    let bytes = encode_log(&entries).unwrap();
    assert_eq!(Log::decode(&bytes[..bytes.len() - 5]).unwrap_err(), Rejection::LogMalformed);
}
