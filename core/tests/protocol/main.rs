//! The protocol end to end, one test per verification step of docs/protocol.md, each with
//! its positive case beside it.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use der::asn1::{GeneralizedTime, Ia5String, OctetString};
use der::{DateTime, Encode};
use ekg_core::internal::cms::signed;
use ekg_core::internal::wire::{KeyRequest, oid};
use ekg_core::ledger::{KeyState, MemoryStore, ReleaseKind, ReleasePolicy};
use ekg_core::pki::{PathLimits, TrustAnchors};
use ekg_core::role::{Gatekeeper, Recipient};
use ekg_core::{Rejection, UnixTime};

fn sign_request(signer: &ekg_testpki::Issued, sender: &str, recipients: &[&str], time: UnixTime) -> Vec<u8> {
    let req = KeyRequest {
        version: 0,
        sender: Ia5String::new(sender).expect("ia5"),
        recipients: recipients.iter().map(|r| Ia5String::new(r).expect("ia5")).collect(),
        nonce: OctetString::new(vec![9; 16]).expect("nonce"),
        request_time: GeneralizedTime::from_date_time(
            DateTime::from_unix_duration(std::time::Duration::from_secs(time.0)).expect("time"),
        ),
        labels: None,
        expansion: None,
    };
    signed::sign(p(), &credential(signer), oid::CT_KEY_REQUEST, &req.to_der().expect("der"), time, &mut rng(1))
        .expect("sign")
}

fn issue_code(gk: &mut Gk, der: &[u8]) -> Option<&'static str> {
    code(gk.handle_key_request(der, NOW, &mut rng(2)))
}

fn flip_last(mut der: Vec<u8>) -> Vec<u8> {
    let n = der.len() - 1;
    der[n] ^= 1;
    der
}

fn flip_at(mut der: Vec<u8>, needle: &[u8]) -> Vec<u8> {
    let i = der.windows(needle.len()).position(|w| w == needle).expect("needle");
    der[i] ^= 1;
    der
}

// ---------------------------------------------------------------- the whole flow

#[test]
fn full_flow_across_two_organisations() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org", "carol@example.com"], 10);
    assert_eq!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 11).expect("bob"), sent.plaintext);
    // The sender organisation's gateway reads it, without counting as a recipient.
    let gw = gateway();
    let msg = gw.receive(&sent.sealed, NOW).expect("gateway receive");
    let pending = gw.request_key(&msg, NOW, &mut rng(12)).expect("gateway request");
    let release = gk.handle_release_request(&pending.der, NOW, &mut rng(13)).expect("gateway release");
    assert_eq!(release.kind, ReleaseKind::Gateway);
    let key = gw.accept_key(&msg, &pending, &release.der, NOW, &mut rng(14)).expect("gateway key");
    assert_eq!(gw.open(&msg, &key).expect("gateway open").to_vec(), sent.plaintext);
    assert_eq!(ledger(&gk).held_keys(), 1);
    assert_eq!(fetch(&mut gk, &carol(), &sent.sealed, NOW, 15).expect("carol"), sent.plaintext);
    // Every listed recipient served: destroyed (seed: "must never be served out again").
    assert_eq!(ledger(&gk).held_keys(), 0);
    assert_eq!(code(fetch(&mut gk, &bob(), &sent.sealed, NOW, 16)), Some("key_destroyed"));
}

#[test]
fn keys_and_key_ids_are_fresh_for_every_request() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let a = send(&mut gk, &alice(), &["bob@example.org"], 20);
    let b = send(&mut gk, &alice(), &["bob@example.org"], 21);
    assert_ne!(a.ticket, b.ticket);
    let ids: Vec<_> = ledger(&gk).keys().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 2);
    let handles: Vec<_> = ledger(&gk)
        .keys()
        .filter_map(|(_, s)| match s {
            KeyState::Pending(k) => Some(k.handle.clone()),
            _ => None,
        })
        .collect();
    assert_ne!(handles[0], handles[1]);
}

#[test]
fn a_repeating_rng_is_caught_as_a_key_id_collision_and_nothing_is_issued() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let pending = alice().request_key(&[addr("bob@example.org")], NOW, &mut rng(22)).expect("request");
    gk.handle_key_request(&pending.der, NOW, &mut rng(23)).expect("first");
    let appends = gk.store().appends();
    let other = alice().request_key(&[addr("bob@example.org")], NOW, &mut rng(24)).expect("request");
    assert_eq!(code(gk.handle_key_request(&other.der, NOW, &mut rng(23))), Some("key_id_collision"));
    assert_eq!(gk.store().appends(), appends);
    assert_eq!(ledger(&gk).held_keys(), 1);
}

// ---------------------------------------------------------------- V1-V4: DER and CMS

#[test]
fn v1_oversize_ber_and_truncated_input_is_rejected() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let good = sign_request(&fed().sender_org.users[0].1, "alice@example.com", &["bob@example.org"], NOW);
    assert!(gk.handle_key_request(&good, NOW, &mut rng(1)).is_ok());
    assert_eq!(issue_code(&mut gk, &vec![0x30; 300 * 1024]), Some("input_too_large"));
    assert_eq!(issue_code(&mut gk, &good[..good.len() - 1]), Some("malformed_der"));
    // Outer length re-encoded in a longer form than needed: BER, not DER.
    assert_eq!(good[1], 0x82);
    let mut ber = vec![0x30, 0x83, 0x00, good[2], good[3]];
    ber.extend_from_slice(&good[4..]);
    assert_eq!(issue_code(&mut gk, &ber), Some("ber_not_der"));
}

#[test]
fn v2_wrong_content_type_is_rejected() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 30);
    assert_eq!(issue_code(&mut gk, &sent.ticket), Some("unexpected_content_type"));
    assert_eq!(issue_code(&mut gk, &sent.grant), Some("unexpected_content_type"));
}

#[test]
fn v3_changed_content_breaks_the_message_digest() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let good = sign_request(&fed().sender_org.users[0].1, "alice@example.com", &["bob@example.org"], NOW);
    let bad = flip_at(good, b"bob@example.org");
    assert_eq!(issue_code(&mut gk, &bad), Some("digest_mismatch"));
}

#[test]
fn v4_changed_signature_is_rejected() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let good = sign_request(&fed().sender_org.users[0].1, "alice@example.com", &["bob@example.org"], NOW);
    assert_eq!(issue_code(&mut gk, &flip_last(good)), Some("bad_signature"));
}

#[test]
fn v4_missing_signer_certificate_is_rejected() {
    use cms::signed_data::SignedData;
    use der::{Any, Decode};
    let good = sign_request(&fed().sender_org.users[0].1, "alice@example.com", &["bob@example.org"], NOW);
    let ci = ekg_core::internal::wire::ContentInfo::from_der(&good).expect("ci");
    let mut sd: SignedData = ci.content.decode_as().expect("sd");
    sd.certificates = None;
    let ci = ekg_core::internal::wire::ContentInfo {
        content_type: ci.content_type,
        content: Any::encode_from(&sd).expect("any"),
    };
    let mut gk = gatekeeper(ReleasePolicy::Once);
    assert_eq!(issue_code(&mut gk, &ci.to_der().expect("der")), Some("signer_certificate_missing"));
}

// ---------------------------------------------------------------- V5-V8: certificates

#[test]
fn v5_untrusted_and_too_long_paths_are_rejected() {
    let f = fed();
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let mallory = sign_request(&f.untrusted_org.users[0].1, "mallory@untrusted.test", &["bob@example.org"], NOW);
    assert_eq!(issue_code(&mut gk, &mallory), Some("untrusted_certificate"));
    // A path of 3 (end entity, intermediate, root) is accepted; of 4 too by default.
    let erin = sign_request(&f.misfits.via_intermediate, "erin@example.com", &["bob@example.org"], NOW);
    assert!(gk.handle_key_request(&erin, NOW, &mut rng(3)).is_ok());
    let frank = sign_request(&f.misfits.via_two_intermediates, "frank@example.com", &["bob@example.org"], NOW);
    assert!(gk.handle_key_request(&frank, NOW, &mut rng(300)).is_ok());
    let mut short = config(ReleasePolicy::Once);
    short.anchors = TrustAnchors::from_der(p(), &f.anchors(), PathLimits { max_path_len: 3 }).expect("anchors");
    let mut gk = gatekeeper_with(short, MemoryStore::new());
    assert!(gk.handle_key_request(&erin, NOW, &mut rng(301)).is_ok());
    assert_eq!(issue_code(&mut gk, &frank), Some("chain_too_long"));
}

#[test]
fn v6_certificates_outside_their_validity_are_rejected() {
    let f = fed();
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let old = sign_request(&f.misfits.expired, "old@example.com", &["bob@example.org"], NOW);
    assert_eq!(issue_code(&mut gk, &old), Some("certificate_expired"));
    let future = sign_request(&f.misfits.not_yet_valid, "future@example.com", &["bob@example.org"], NOW);
    assert_eq!(issue_code(&mut gk, &future), Some("certificate_not_yet_valid"));
}

#[test]
fn v7_key_usage_extended_key_usage_and_critical_extensions() {
    let f = fed();
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let cases = [
        (&f.misfits.encrypt_only, "enc@example.com", "key_usage_not_allowed"),
        (&f.misfits.server_auth_only, "server@example.com", "extended_key_usage_not_allowed"),
        (&f.misfits.unknown_critical, "critical@example.com", "unknown_critical_extension"),
    ];
    for (cert, sender, expected) in cases {
        let der = sign_request(cert, sender, &["bob@example.org"], NOW);
        assert_eq!(issue_code(&mut gk, &der), Some(expected), "{sender}");
    }
}

#[test]
fn v8_a_certificate_without_an_email_address_is_rejected() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let der = sign_request(&fed().misfits.no_email, "noemail@example.com", &["bob@example.org"], NOW);
    assert_eq!(issue_code(&mut gk, &der), Some("certificate_has_no_email"));
}

// ---------------------------------------------------------------- V9-V13: the request

#[test]
fn v9_invalid_addresses_are_rejected() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let alice = &fed().sender_org.users[0].1;
    assert_eq!(
        issue_code(&mut gk, &sign_request(alice, "alice@example.com", &["not an address"], NOW)),
        Some("invalid_address")
    );
    assert_eq!(issue_code(&mut gk, &sign_request(alice, "alice", &["bob@example.org"], NOW)), Some("invalid_address"));
}

#[test]
fn v10_sender_must_be_the_certificate_holder_with_domain_case_folded() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let alice = &fed().sender_org.users[0].1;
    assert_eq!(
        issue_code(&mut gk, &sign_request(alice, "carol@example.com", &["bob@example.org"], NOW)),
        Some("sender_address_mismatch")
    );
    // Local part exact: Alice is not alice.
    assert_eq!(
        issue_code(&mut gk, &sign_request(alice, "Alice@example.com", &["bob@example.org"], NOW)),
        Some("sender_address_mismatch")
    );
    // Domain case-insensitive.
    assert!(
        gk.handle_key_request(&sign_request(alice, "alice@EXAMPLE.com", &["bob@example.org"], NOW), NOW, &mut rng(4))
            .is_ok()
    );
    // A certificate for ALICE@example.com does not speak for alice@example.com.
    let upper = sign_request(&fed().misfits.alice_upper, "alice@example.com", &["bob@example.org"], NOW);
    assert_eq!(issue_code(&mut gk, &upper), Some("sender_address_mismatch"));
}

#[test]
fn v11_senders_outside_the_policy_are_rejected() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let bob = sign_request(fed().recipient_org.user("bob@example.org"), "bob@example.org", &["alice@example.com"], NOW);
    assert_eq!(issue_code(&mut gk, &bob), Some("sender_not_recognised"));
}

#[test]
fn v12_recipient_lists_empty_duplicate_or_oversize_are_rejected() {
    let alice = &fed().sender_org.users[0].1;
    let mut gk = gatekeeper(ReleasePolicy::Once);
    assert_eq!(issue_code(&mut gk, &sign_request(alice, "alice@example.com", &[], NOW)), Some("no_recipients"));
    let dup = sign_request(alice, "alice@example.com", &["bob@example.org", "bob@EXAMPLE.ORG"], NOW);
    assert_eq!(issue_code(&mut gk, &dup), Some("duplicate_recipient"));
    let mut c = config(ReleasePolicy::Once);
    c.max_recipients = 2;
    let mut gk = gatekeeper_with(c, MemoryStore::new());
    let three = sign_request(alice, "alice@example.com", &["a@example.org", "b@example.org", "c@example.org"], NOW);
    assert_eq!(issue_code(&mut gk, &three), Some("too_many_recipients"));
    let two = sign_request(alice, "alice@example.com", &["a@example.org", "b@example.org"], NOW);
    assert!(gk.handle_key_request(&two, NOW, &mut rng(5)).is_ok());
    let many: Vec<String> = (0..1001).map(|i| format!("r{i}@example.org")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut gk = gatekeeper(ReleasePolicy::Once);
    assert_eq!(issue_code(&mut gk, &sign_request(alice, "alice@example.com", &many, NOW)), Some("too_many_recipients"));
}

#[test]
fn v13_stale_requests_are_rejected() {
    let alice = &fed().sender_org.users[0].1;
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let stale = sign_request(alice, "alice@example.com", &["bob@example.org"], UnixTime(NOW.0 - 3600));
    assert_eq!(issue_code(&mut gk, &stale), Some("request_time_skew"));
    let recent = sign_request(alice, "alice@example.com", &["bob@example.org"], UnixTime(NOW.0 - 60));
    assert!(gk.handle_key_request(&recent, NOW, &mut rng(6)).is_ok());
}

// ---------------------------------------------------------------- V20-V24: releases

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

// ---------------------------------------------------------------- storage

#[test]
fn nothing_is_answered_without_a_durable_record() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 110);
    let store = gk.into_store();
    store.set_failing(true);
    let mut gk = gatekeeper_with(config(ReleasePolicy::Once), store);
    assert_eq!(code(fetch(&mut gk, &bob(), &sent.sealed, NOW, 111)), Some("storage_failed"));
    let pending = alice().request_key(&[addr("bob@example.org")], NOW, &mut rng(112)).expect("request");
    assert_eq!(code(gk.handle_key_request(&pending.der, NOW, &mut rng(113))), Some("storage_failed"));
    // The failed release did not count: once the store works, bob gets the key.
    let store = gk.into_store();
    store.set_failing(false);
    let mut gk = gatekeeper_with(config(ReleasePolicy::Once), store);
    assert_eq!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 114).expect("bob"), sent.plaintext);
}

#[test]
fn stored_keys_are_wrapped_never_in_the_clear() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 120);
    let bob = bob();
    let msg = bob.receive(&sent.sealed, NOW).expect("receive");
    let pending = bob.request_release(&msg, NOW, &mut rng(121)).expect("request");
    let release = gk.crypto().verify_release_request(&pending.der, NOW).expect("verify");
    let _ = release;
    let dump = format!("{:?}", gk.store().records());
    assert!(dump.contains("WrappedKey(<40 bytes>)"), "{dump}");
    let released = gk.handle_release_request(&pending.der, NOW, &mut rng(122)).expect("release");
    let key = bob.accept_release(&msg, &pending, &released.der, NOW, &mut rng(123)).expect("key");
    let hex: String = key.expose().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!dump.contains(&hex));
}

// ---------------------------------------------------------------- client checks C1-C6

#[test]
fn c1_a_ticket_signed_by_a_non_gatekeeper_is_refused() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 130);
    // Re-sign the ticket content with alice's certificate (no gatekeeper EKU).
    let obj = signed::open(p(), &sent.ticket, oid::CT_TICKET, 1 << 20).expect("open");
    let forged =
        signed::sign(p(), &credential(&fed().sender_org.users[0].1), oid::CT_TICKET, &obj.content, NOW, &mut rng(131))
            .expect("sign");
    let t = ekg_core::role::Ticket::open(p(), &forged).expect("parses");
    assert_eq!(code(t.check_gatekeeper(p(), &anchors(), NOW)), Some("wrong_gatekeeper"));
    let t = ekg_core::role::Ticket::open(p(), &sent.ticket).expect("parses");
    assert!(t.check_gatekeeper(p(), &anchors(), NOW).is_ok());
    // A sender refuses a ticket of a gatekeeper other than its own.
    let other =
        ekg_core::role::Sender::new(p(), credential(&fed().sender_org.users[0].1), anchors(), "https://ekg.elsewhere/")
            .expect("s");
    let pending = other.request_key(&[addr("bob@example.org")], NOW, &mut rng(132)).expect("req");
    let issuance = gk.handle_key_request(&pending.der, NOW, &mut rng(133)).expect("issue");
    assert_eq!(
        code(other.accept_grant(&pending, &issuance.grant, &issuance.ticket, NOW, &mut rng(134))),
        Some("wrong_gatekeeper")
    );
}

#[test]
fn c2_c3_a_grant_or_ticket_for_another_request_is_refused() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let a = alice();
    let p1 = a.request_key(&[addr("bob@example.org")], NOW, &mut rng(140)).expect("r1");
    let p2 = a.request_key(&[addr("bob@example.org")], NOW, &mut rng(141)).expect("r2");
    let i1 = gk.handle_key_request(&p1.der, NOW, &mut rng(142)).expect("i1");
    let i2 = gk.handle_key_request(&p2.der, NOW, &mut rng(143)).expect("i2");
    assert_eq!(code(a.accept_grant(&p1, &i2.grant, &i1.ticket, NOW, &mut rng(144))), Some("response_mismatch"));
    assert_eq!(code(a.accept_grant(&p1, &i1.grant, &i2.ticket, NOW, &mut rng(145))), Some("response_mismatch"));
    assert!(a.accept_grant(&p1, &i1.grant, &i1.ticket, NOW, &mut rng(146)).is_ok());
    // A release for another request (other nonce) is refused by the recipient.
    let sent = send(&mut gk, &a, &["bob@example.org"], 147);
    let bob = bob();
    let msg = bob.receive(&sent.sealed, NOW).expect("receive");
    let q1 = bob.request_release(&msg, NOW, &mut rng(148)).expect("q1");
    let q2 = bob.request_release(&msg, NOW, &mut rng(149)).expect("q2");
    let r1 = gk.handle_release_request(&q1.der, NOW, &mut rng(150)).expect("r1");
    assert_eq!(code(bob.accept_release(&msg, &q2, &r1.der, NOW, &mut rng(151))), Some("response_mismatch"));
}

#[test]
fn c4_a_release_for_someone_else_or_tampered_is_refused() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org", "carol@example.com"], 160);
    let (bob, carol) = (bob(), carol());
    let msg = bob.receive(&sent.sealed, NOW).expect("receive");
    let pending = bob.request_release(&msg, NOW, &mut rng(161)).expect("request");
    let release = gk.handle_release_request(&pending.der, NOW, &mut rng(162)).expect("release");
    let cmsg = carol.receive(&sent.sealed, NOW).expect("carol receive");
    assert_eq!(
        code(carol.accept_release(&cmsg, &pending, &release.der, NOW, &mut rng(163))),
        Some("not_for_this_recipient")
    );
    // Flip a byte of the OAEP-encrypted content key.
    let mut bad = release.der.clone();
    let at = bad.len() / 3;
    bad[at] ^= 0x40;
    let err = bob.accept_release(&msg, &pending, &bad, NOW, &mut rng(164)).err().map(|e| e.rejection());
    assert!(
        matches!(err, Some(Rejection::KeyUnwrapFailed | Rejection::AuthenticationFailed | Rejection::MalformedDer)),
        "{err:?}"
    );
    assert_eq!(
        code(bob.accept_release(&msg, &pending, &flip_last(release.der.clone()), NOW, &mut rng(165))),
        Some("authentication_failed")
    );
}

#[test]
fn c5_c6_tampered_ciphertext_or_swapped_ticket_is_refused() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 170);
    let other = send(&mut gk, &alice(), &["bob@example.org"], 171);
    let bob = bob();
    // C6: the ticket of another message, attached in place of this one's.
    let mut swapped = sent.sealed.clone();
    let at = swapped.windows(sent.ticket.len()).position(|w| w == sent.ticket.as_slice()).expect("ticket inside");
    assert_eq!(sent.ticket.len(), other.ticket.len());
    swapped[at..at + other.ticket.len()].copy_from_slice(&other.ticket);
    assert_eq!(code(bob.receive(&swapped, NOW)), Some("ticket_digest_mismatch"));
    // C5: one flipped ciphertext byte.
    let msg = bob.receive(&sent.sealed, NOW).expect("receive");
    let pending = bob.request_release(&msg, NOW, &mut rng(172)).expect("request");
    let release = gk.handle_release_request(&pending.der, NOW, &mut rng(173)).expect("release");
    let key = bob.accept_release(&msg, &pending, &release.der, NOW, &mut rng(174)).expect("key");
    let body = b"Hello from";
    let plain_at = sent.plaintext.windows(body.len()).position(|w| w == body).expect("body");
    let _ = plain_at;
    let mut tampered = sent.sealed.clone();
    // The encrypted content sits right before the 16-byte mac at the end of the GCM part;
    // flip a byte 40 bytes before the attached ticket begins.
    tampered[at - 40] ^= 1;
    let tmsg = bob.receive(&tampered, NOW).expect("still parses");
    assert_eq!(code(bob.open(&tmsg, &key)), Some("authentication_failed"));
    assert_eq!(bob.open(&msg, &key).expect("open").to_vec(), sent.plaintext);
}

#[test]
fn recipient_refuses_a_sealed_message_with_garbage() {
    let bob: Recipient = bob();
    assert_eq!(code(bob.receive(&[0x30, 0x03, 0x02, 0x01, 0x00], NOW)), Some("malformed_der"));
}

#[test]
fn a_gatekeeper_refuses_a_configuration_clients_would_refuse() {
    use ekg_core::role::{Gatekeeper, StorageKey};
    let try_new = |cred: &ekg_testpki::Issued, uri: &str, with_senders: bool| {
        let mut c = config(ReleasePolicy::Once);
        c.uri = uri.into();
        if !with_senders {
            c.senders.clear();
        }
        code(Gatekeeper::new(p(), c, credential(cred), StorageKey::from_bytes([0; 32]), MemoryStore::new()))
    };
    let org = &fed().sender_org;
    assert_eq!(try_new(&org.gatekeeper, &org.gatekeeper_uri(), true), None);
    assert_eq!(try_new(&org.gatekeeper, "https://ekg.other/", true), Some("invalid_configuration"));
    assert_eq!(try_new(&org.users[0].1, &org.gatekeeper_uri(), true), Some("invalid_configuration"));
    assert_eq!(try_new(&org.gatekeeper, &org.gatekeeper_uri(), false), Some("invalid_configuration"));
    assert_eq!(try_new(&org.gatekeeper, "", true), Some("invalid_configuration"));
}

/// A provider that delegates to RustCrypto but whose key wrap fails: a second provider is
/// plugged in without touching protocol code, and its failure is a local `crypto_failure`
/// that issues nothing.
#[derive(Debug)]
struct FailingKeyWrap;

impl ekg_core::crypto::CryptoProvider for FailingKeyWrap {
    fn name(&self) -> &'static str {
        "failing-key-wrap"
    }
    fn deterministic(&self) -> bool {
        true
    }
    fn sha256(&self, data: &[u8]) -> ekg_core::Digest {
        p().sha256(data)
    }
    fn load_private_key(&self, pkcs8: &[u8]) -> ekg_core::Result<Box<dyn ekg_core::crypto::PrivateKey>> {
        p().load_private_key(pkcs8)
    }
    fn verify_pkcs1_sha256(&self, spki: &[u8], m: &[u8], s: &[u8]) -> ekg_core::Result<()> {
        p().verify_pkcs1_sha256(spki, m, s)
    }
    fn oaep_sha256_encrypt(
        &self,
        spki: &[u8],
        m: &[u8],
        r: &mut dyn ekg_core::crypto::CryptoRng,
    ) -> ekg_core::Result<Vec<u8>> {
        p().oaep_sha256_encrypt(spki, m, r)
    }
    fn aes256_gcm_seal(&self, k: &[u8; 32], n: &[u8; 12], a: &[u8], m: &[u8]) -> ekg_core::Result<(Vec<u8>, [u8; 16])> {
        p().aes256_gcm_seal(k, n, a, m)
    }
    fn aes256_gcm_open(
        &self,
        k: &[u8; 32],
        n: &[u8; 12],
        a: &[u8],
        c: &[u8],
        t: &[u8; 16],
    ) -> ekg_core::Result<zeroize::Zeroizing<Vec<u8>>> {
        p().aes256_gcm_open(k, n, a, c, t)
    }
    fn aes256_kw_wrap(&self, _: &[u8; 32], _: &[u8; 32]) -> ekg_core::Result<ekg_core::WrappedKey> {
        Err(ekg_core::Error::new(Rejection::CryptoFailure, "injected"))
    }
    fn aes256_kw_unwrap(&self, k: &[u8; 32], w: &[u8]) -> ekg_core::Result<ekg_core::OneTimeKey> {
        p().aes256_kw_unwrap(k, w)
    }
}

#[test]
fn l4_a_failing_provider_is_a_crypto_failure_and_issues_nothing() {
    use ekg_core::role::{Gatekeeper, StorageKey};
    static FAILING: FailingKeyWrap = FailingKeyWrap;
    let mut gk = Gatekeeper::new(
        &FAILING,
        config(ReleasePolicy::Once),
        credential(&fed().sender_org.gatekeeper),
        StorageKey::from_bytes([7; 32]),
        MemoryStore::new(),
    )
    .expect("gatekeeper");
    let pending = alice().request_key(&[addr("bob@example.org")], NOW, &mut rng(720)).expect("request");
    assert_eq!(code(gk.handle_key_request(&pending.der, NOW, &mut rng(721))), Some("crypto_failure"));
    assert_eq!((gk.store().appends(), ledger(&gk).held_keys()), (0, 0));
}

#[test]
fn v14_a_replayed_key_request_is_refused_and_a_new_request_is_answered() {
    // The model's finding F6 (docs/model.md): the draft issues a fresh key for every copy of
    // a key request. The gatekeeper answers each signed request once; V13 closes the window.
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let pending = alice().request_key(&[addr("bob@example.org")], NOW, &mut rng(730)).expect("request");
    gk.handle_key_request(&pending.der, NOW, &mut rng(731)).expect("first");
    assert_eq!(code(gk.handle_key_request(&pending.der, NOW.plus_secs(60), &mut rng(732))), Some("duplicate_request"));
    assert_eq!(ledger(&gk).held_keys(), 1);
    // A retry is a new request (new nonce): answered.
    let retry = alice().request_key(&[addr("bob@example.org")], NOW, &mut rng(734)).expect("retry");
    assert!(gk.handle_key_request(&retry.der, NOW.plus_secs(60), &mut rng(735)).is_ok());
    // Past the window V13 refuses the stale request instead.
    gk.handle_timeout(NOW.plus_secs(301)).expect("timeout");
    assert_eq!(code(gk.handle_key_request(&pending.der, NOW.plus_secs(301), &mut rng(733))), Some("request_time_skew"));
}

/// Issuance on two threads, each with its own gatekeeper on one store and one shared crypto
/// half, no lock: every request gets its own key, every grant opens, the store holds them all,
/// and a replay is refused whichever gatekeeper sees it.
#[test]
fn two_threads_issue_on_one_store_without_a_lock() {
    let gk = gatekeeper(ekg_core::ledger::ReleasePolicy::SameCertificate);
    let crypto = gk.shared_crypto();
    let alice = alice();
    let requests: Vec<_> =
        (0..8).map(|i| alice.request_key(&[addr("bob@example.org")], NOW, &mut rng(900 + i)).unwrap()).collect();
    let issued: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .chunks(4)
            .enumerate()
            .map(|(t, chunk)| {
                let mut mine = Gatekeeper::with_crypto(std::sync::Arc::clone(&crypto), gk.store().clone()).unwrap();
                let crypto = &crypto;
                s.spawn(move || {
                    let mut r = rng(950 + t as u64);
                    chunk
                        .iter()
                        .map(|p| {
                            let v = crypto.verify_key_request(&p.der, NOW).unwrap();
                            let committed = mine.issue(v, NOW, &mut r).unwrap();
                            crypto.build_issuance(committed, &mut r).unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let ids: std::collections::BTreeSet<_> = issued.iter().map(|i| i.key_id).collect();
    assert_eq!(ids.len(), 8);
    assert_eq!(ledger(&gk).held_keys(), 8);
    for (p, i) in requests.iter().zip(&issued) {
        alice.accept_grant(p, &i.grant, &i.ticket, NOW, &mut rng(999)).unwrap();
    }
    // A replay is refused by any gatekeeper on the store.
    let v = crypto.verify_key_request(&requests[0].der, NOW).unwrap();
    let mut gk = gk;
    assert_eq!(code(gk.issue(v, NOW, &mut rng(1000))), Some("duplicate_request"));
}

/// The gatekeeper caches validated certificate paths, but a cached path is not reused once
/// `now` leaves its validity: alice's certificate expires in 2045 (the gatekeeper's renewed
/// one in 2046: its own certificate is checked before each issuance).
#[test]
fn a_cached_certificate_path_expires_with_its_certificates() {
    let renewed = credential(&ekg_testpki::Lifecycle::shared().gatekeeper_renewed);
    let mut gk = ekg_core::role::Gatekeeper::new(
        p(),
        config(ekg_core::ledger::ReleasePolicy::Once),
        renewed,
        ekg_core::role::StorageKey::from_bytes([7; 32]),
        ekg_core::ledger::MemoryStore::new(),
    )
    .unwrap();
    let alice = alice();
    let to = [addr("bob@example.org")];
    let first = alice.request_key(&to, NOW, &mut rng(1200)).unwrap();
    gk.handle_key_request(&first.der, NOW, &mut rng(1201)).unwrap();
    let later = UnixTime(2_379_888_000); // 2045-06-01
    let second = alice.request_key(&to, later, &mut rng(1202)).unwrap();
    assert_eq!(code(gk.handle_key_request(&second.der, later, &mut rng(1203))), Some("certificate_expired"));
    // Still valid just before: served (from the cache or not, the answer is the same).
    let third = alice.request_key(&to, NOW.plus_secs(60), &mut rng(1204)).unwrap();
    gk.handle_key_request(&third.der, NOW.plus_secs(60), &mut rng(1205)).unwrap();
}
