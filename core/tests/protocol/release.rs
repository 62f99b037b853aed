//! Steps V20 to V24: releases.

use super::*;

#[test]
fn v20_a_ticket_of_another_gatekeeper_is_refused() {
    use ekg_core::role::{Gatekeeper, GatekeeperConfig, SenderRule, StorageKey};
    let f = fed();
    // example.org's gatekeeper issues a ticket for bob -> alice.
    let mut other_cfg = GatekeeperConfig::new(f.recipient_org.gatekeeper_uri(), anchors());
    other_cfg.senders = vec![SenderRule { domain: Some("example.org".into()), issuer: None }];
    let mut other = Gatekeeper::new(
        p(),
        other_cfg,
        credential(&f.recipient_org.gatekeeper),
        StorageKey::from_bytes([1; 32]),
        MemoryStore::new(),
    )
    .expect("gk");
    let bob_sender = ekg_core::role::Sender::new(
        p(),
        credential(f.recipient_org.user("bob@example.org")),
        anchors(),
        f.recipient_org.gatekeeper_uri(),
    )
    .expect("sender");
    let sent = send(&mut other, &bob_sender, &["alice@example.com"], 40);
    let alice_r = recipient(f.sender_org.user("alice@example.com"));
    assert_eq!(fetch(&mut other, &alice_r, &sent.sealed, NOW, 41).expect("own gatekeeper"), sent.plaintext);
    let sent = send(&mut other, &bob_sender, &["alice@example.com"], 42);
    let mut ours = gatekeeper(ReleasePolicy::Once);
    assert_eq!(code(fetch(&mut ours, &alice_r, &sent.sealed, NOW, 43)), Some("wrong_gatekeeper"));
}

#[test]
fn v21_expired_tickets_are_refused_and_their_keys_destroyed() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 50);
    let later = NOW.plus_secs(7 * 24 * 3600);
    let bob = bob();
    let msg = bob.receive(&sent.sealed, later).expect("receive");
    let pending = bob.request_release(&msg, later, &mut rng(51)).expect("request");
    assert_eq!(code(gk.handle_release_request(&pending.der, later, &mut rng(52))), Some("ticket_expired"));
    assert_eq!(gk.next_deadline().expect("deadline"), Some(later));
    assert_eq!(gk.handle_timeout(later).expect("timeout"), 1);
    assert_eq!(ledger(&gk).held_keys(), 0);
    // Nothing of the key is left in the store.
    assert!(gk.store().records().iter().all(|r| matches!(r, ekg_core::ledger::Record::Destroyed { .. })));
}

#[test]
fn v22_unlisted_recipients_and_other_gateways_are_refused() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 60);
    // dave is not listed: his own client already refuses, and so does the gatekeeper.
    assert_eq!(code(dave().receive(&sent.sealed, NOW)), Some("not_for_this_recipient"));
    let fgw = foreign_gateway();
    let msg = fgw.receive(&sent.sealed, NOW).expect("foreign gateway parses");
    let pending = fgw.request_key(&msg, NOW, &mut rng(61)).expect("request");
    assert_eq!(code(gk.handle_release_request(&pending.der, NOW, &mut rng(62))), Some("recipient_not_listed"));
    let d = dave();
    let msg = ekg_core::role::Gateway::new(p(), credential(fed().recipient_org.user("dave@example.org")), anchors())
        .receive(&sent.sealed, NOW)
        .expect("parse");
    let pending = d.request_release(&msg, NOW, &mut rng(63)).expect("request");
    assert_eq!(code(gk.handle_release_request(&pending.der, NOW, &mut rng(64))), Some("recipient_not_listed"));
    assert_eq!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 65).expect("bob"), sent.plaintext);
}

#[test]
fn v22_listed_address_matches_with_domain_case_folded_only() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@EXAMPLE.ORG"], 66);
    assert_eq!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 67).expect("bob"), sent.plaintext);
    let sent = send(&mut gk, &alice(), &["Bob@example.org"], 68);
    assert_eq!(code(fetch(&mut gk, &bob(), &sent.sealed, NOW, 69)), Some("not_for_this_recipient"));
}

#[test]
fn v23_unknown_keys_are_refused() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 70);
    // Same gatekeeper identity, empty store: it never issued that key.
    let mut fresh = gatekeeper(ReleasePolicy::Once);
    assert_eq!(code(fetch(&mut fresh, &bob(), &sent.sealed, NOW, 71)), Some("key_unknown"));
}

#[test]
fn v24_once_policy_refuses_a_second_release_even_after_a_crash() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org", "carol@example.com"], 80);
    assert!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 81).is_ok());
    assert_eq!(code(fetch(&mut gk, &bob(), &sent.sealed, NOW, 82)), Some("already_released"));
    // Crash and recover from the durable store.
    let store = gk.into_store();
    let mut gk = gatekeeper_with(config(ReleasePolicy::Once), store);
    assert_eq!(code(fetch(&mut gk, &bob(), &sent.sealed, NOW, 83)), Some("already_released"));
    assert!(fetch(&mut gk, &carol(), &sent.sealed, NOW, 84).is_ok());
}

#[test]
fn v24_once_policy_loses_the_key_when_the_response_is_lost() {
    // The draft's promise costs liveness: the record is durable, the response never arrives.
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org", "carol@example.com"], 85);
    let bob = bob();
    let msg = bob.receive(&sent.sealed, NOW).expect("receive");
    let pending = bob.request_release(&msg, NOW, &mut rng(86)).expect("request");
    let _lost = gk.handle_release_request(&pending.der, NOW, &mut rng(87)).expect("release");
    assert_eq!(code(gk.handle_release_request(&pending.der, NOW, &mut rng(88))), Some("already_released"));
}

#[test]
fn v24_same_certificate_policy_redelivers_and_refuses_a_second_certificate() {
    let mut gk = gatekeeper(ReleasePolicy::SameCertificate);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 90);
    let bob = bob();
    let msg = bob.receive(&sent.sealed, NOW).expect("receive");
    let pending = bob.request_release(&msg, NOW, &mut rng(91)).expect("request");
    let first = gk.handle_release_request(&pending.der, NOW, &mut rng(92)).expect("first");
    assert_eq!(first.kind, ReleaseKind::First);
    // Lost response: the same certificate asks again and gets it again.
    let again = gk.handle_release_request(&pending.der, NOW, &mut rng(93)).expect("again");
    assert_eq!(again.kind, ReleaseKind::Redelivery);
    let key = bob.accept_release(&msg, &pending, &again.der, NOW, &mut rng(94)).expect("key");
    assert_eq!(bob.open(&msg, &key).expect("open").to_vec(), sent.plaintext);
    // A second certificate for the same address is never served.
    let bob2 = recipient(&fed().misfits.bob_second);
    assert_eq!(code(fetch(&mut gk, &bob2, &sent.sealed, NOW, 95)), Some("released_to_other_certificate"));
    // The bound on deliveries holds.
    let third = gk.handle_release_request(&pending.der, NOW, &mut rng(96)).expect("third");
    assert_eq!(third.kind, ReleaseKind::Redelivery);
    assert_eq!(code(gk.handle_release_request(&pending.der, NOW, &mut rng(97))), Some("redelivery_limit"));
    // Retention ends: destroyed.
    gk.handle_timeout(NOW.plus_secs(3600)).expect("timeout");
    assert_eq!(ledger(&gk).held_keys(), 0);
}

#[test]
fn v24_under_once_a_second_certificate_for_a_served_address_is_refused() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org", "carol@example.com"], 98);
    assert!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 99).is_ok());
    assert_eq!(
        code(fetch(&mut gk, &recipient(&fed().misfits.bob_second), &sent.sealed, NOW, 100)),
        Some("already_released")
    );
}
