//! Snapshots of every DER structure of the profile, as readable dumps, so that the wire
//! format cannot change silently. Inputs are fixed: the seed-2026 test PKI, seeded RNGs, a
//! fixed `now`. Each snapshot starts with the SHA-256 of the whole DER (the dump abbreviates
//! long byte strings; the digest does not).

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use ekg_core::ledger::ReleasePolicy;
use ekg_core::wire::dump;
use ekg_core::wire::oid;
use ekg_core::wire::{envelope, signed};

fn show(der: &[u8]) -> String {
    format!("sha256 {}  length {}\n{}", p().sha256(der), der.len(), dump(der))
}

#[test]
fn every_wire_structure_is_pinned() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let alice = alice();
    let mut r = rng(500);
    let pending =
        alice.request_key(&[addr("bob@example.org"), addr("carol@example.com")], NOW, &mut r).expect("request");
    insta::assert_snapshot!("01_key_request", show(&pending.der));
    let issuance = gk.handle_key_request(&pending.der, NOW, &mut rng(501)).expect("issue");
    insta::assert_snapshot!("02_ticket", show(&issuance.ticket));
    insta::assert_snapshot!("03_grant", show(&issuance.grant));
    let (_, grant_content) = envelope::open(
        p(),
        &issuance.grant,
        &credential(fed().sender_org.user("alice@example.com")),
        1 << 16,
        &mut rng(502),
    )
    .expect("open grant");
    insta::assert_snapshot!("03_grant_key_delivery", show(&grant_content));
    let key = alice.accept_grant(&pending, &issuance.grant, &issuance.ticket, NOW, &mut rng(503)).expect("accept");
    let sealed = alice.seal(&key, b"Subject: snapshot\r\n\r\nfixed body\r\n", &mut rng(504)).expect("seal");
    insta::assert_snapshot!("04_sealed_message", show(&sealed));
    let bob = bob();
    let msg = bob.receive(&sealed, NOW).expect("receive");
    let req = bob.request_release(&msg, NOW, &mut rng(505)).expect("release request");
    insta::assert_snapshot!("05_release_request", show(&req.der));
    let release = gk.handle_release_request(&req.der, NOW, &mut rng(506)).expect("release");
    insta::assert_snapshot!("06_release", show(&release.der));
    let (_, inner) = envelope::open(
        p(),
        &release.der,
        &credential(fed().recipient_org.user("bob@example.org")),
        1 << 16,
        &mut rng(507),
    )
    .expect("open release");
    insta::assert_snapshot!("06_release_signed_key_delivery", show(&inner));
    let delivery = signed::open(p(), &inner, oid::CT_KEY_DELIVERY, 1 << 16).expect("signed delivery");
    insta::assert_snapshot!("06_release_key_delivery", show(&delivery.content));
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let run = || {
        let mut gk = gatekeeper(ReleasePolicy::Once);
        let pending = alice().request_key(&[addr("bob@example.org")], NOW, &mut rng(510)).expect("request");
        let i = gk.handle_key_request(&pending.der, NOW, &mut rng(511)).expect("issue");
        (pending.der, i.ticket, i.grant)
    };
    assert_eq!(run(), run());
}
