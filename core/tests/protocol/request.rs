//! Steps V1 to V14: the DER and CMS of a key request, its signer's certificate, the request
//! itself, a replay.

use super::*;

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
    let ci = ekg_core::wire::ContentInfo::from_der(&good).expect("ci");
    let mut sd: SignedData = ci.content.decode_as().expect("sd");
    sd.certificates = None;
    let ci =
        ekg_core::wire::ContentInfo { content_type: ci.content_type, content: Any::encode_from(&sd).expect("any") };
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
