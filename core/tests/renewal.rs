//! The gatekeeper's own credential (checked at start and before each issuance) and its
//! renewal: tickets signed under a retired certificate are released (V20), and clients
//! accept a release signed by the renewed gatekeeper (C2), never by another one.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use ekg_core::UnixTime;
use ekg_core::crypto::pki::Credential;
use ekg_core::ledger::{MemoryStore, ReleasePolicy};
use ekg_core::role::{Gatekeeper, GatekeeperConfig, RetiredCertificate, RetiredKey, StorageKey, check_credential};
use ekg_core::wire::oid;
use ekg_core::wire::{envelope, signed};
use ekg_testpki::{Issued, Lifecycle};

fn lc() -> &'static Lifecycle {
    Lifecycle::shared()
}

fn new_gk(
    config: GatekeeperConfig,
    who: &Issued,
    store: MemoryStore<ekg_core::ledger::Concrete>,
) -> ekg_core::Result<Gk> {
    Gatekeeper::new(p(), config, credential(who), StorageKey::from_bytes([7; 32]), store)
}

fn retired(who: &Issued, key: RetiredKey) -> RetiredCertificate {
    RetiredCertificate { der: who.cert_der.clone(), key }
}

// ------------------------------------------------------------ the credential at `now`

#[test]
fn the_credential_check_names_the_field_and_the_rule() {
    let c = config(ReleasePolicy::Once);
    let status = check_credential(p(), &c, &credential(&fed().sender_org.gatekeeper), NOW).expect("the good one");
    assert_eq!(status.not_after.to_rfc3339(), "2045-01-01T00:00:00Z");
    let cases: [(&Issued, &str); 4] = [
        (&lc().gatekeeper_expired, "certificate: expired"),
        (&lc().gatekeeper_not_yet_valid, "certificate: not valid yet"),
        (&lc().gatekeeper_no_eku, "certificate: must carry extended key usage id-ekg-kp-gatekeeper"),
        (&lc().gatekeeper_other_uri, "certificate: must name uri https://ekg.example.com/"),
    ];
    for (who, rule) in cases {
        let e = check_credential(p(), &c, &credential(who), NOW).expect_err(rule);
        assert_eq!(e.code(), "invalid_configuration");
        assert!(e.detail().starts_with(rule), "{rule}: {e}");
    }
    // Without the intermediate that follows it in its file: no path to an anchor.
    let inter = &fed().misfits.gatekeeper_via_intermediate;
    let bare = Credential::from_der(p(), &inter.cert_der, &[], &inter.key_pkcs8).expect("credential");
    let e = check_credential(p(), &c, &bare, NOW).expect_err("no chain");
    assert!(e.detail().starts_with("certificate: must chain to one of the anchors"), "{e}");
    assert!(check_credential(p(), &c, &credential(inter), NOW).is_ok(), "with its intermediate");
}

#[test]
fn a_gatekeeper_whose_certificate_is_not_valid_now_issues_nothing() {
    for who in [&lc().gatekeeper_expired, &lc().gatekeeper_not_yet_valid] {
        // Its profile holds, so it starts (it may still release what it issued before)...
        let mut gk = new_gk(config(ReleasePolicy::Once), who, MemoryStore::new()).expect("starts");
        let pending = alice().request_key(&[addr("bob@example.org")], NOW, &mut rng(1)).expect("request");
        // ... but it refuses to issue a ticket every client would refuse.
        let e = gk.handle_key_request(&pending.der, NOW, &mut rng(2)).expect_err("no issuance");
        assert_eq!(e.code(), "invalid_configuration");
        assert!(gk.store().records().is_empty(), "nothing recorded");
        // The credential check comes after V1 to V13: a bad request is refused for itself.
        assert_eq!(code(gk.handle_key_request(b"junk", NOW, &mut rng(3))), Some("malformed_der"));
    }
    // A profile that clients refuse stops it at start.
    for who in [&lc().gatekeeper_no_eku, &lc().gatekeeper_other_uri] {
        assert_eq!(code(new_gk(config(ReleasePolicy::Once), who, MemoryStore::new())), Some("invalid_configuration"));
    }
}

#[test]
fn the_expiry_warning_is_due_a_margin_before_tickets_would_outlive_the_certificate() {
    let c = config(ReleasePolicy::Once);
    let status = check_credential(p(), &c, &credential(&fed().sender_org.gatekeeper), NOW).expect("status");
    let lifetime = 7 * 24 * 3600;
    let margin = 14 * 24 * 3600;
    let renew_by = status.renew_by(lifetime);
    assert_eq!(renew_by.secs(), status.not_after.secs() - lifetime);
    assert_eq!(status.expiry_warning(NOW, lifetime, margin), None);
    assert_eq!(status.expiry_warning(UnixTime(renew_by.secs() - margin), lifetime, margin), None);
    let soon = status.expiry_warning(UnixTime(renew_by.secs() - margin + 1), lifetime, margin).expect("due");
    assert!(soon.contains("renew it before"), "{soon}");
    let late = status.expiry_warning(renew_by.plus_secs(1), lifetime, margin).expect("overdue");
    assert!(late.contains("renew it now"), "{late}");
    assert_eq!(status.expires_in_secs(status.not_after.plus_secs(10)), -10);
}

// ----------------------------------------------------------------- renewal and V20

/// alice's message to bob, issued under the current certificate; the store it is in.
fn issued_before_renewal() -> (Sent, MemoryStore<ekg_core::ledger::Concrete>) {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org", "carol@example.com"], 50);
    (sent, gk.into_store())
}

#[test]
fn tickets_signed_before_a_renewal_are_released_after_it() {
    let (sent, store) = issued_before_renewal();
    let mut c = config(ReleasePolicy::Once);
    c.retired = vec![retired(&fed().sender_org.gatekeeper, RetiredKey::Same)];
    let mut gk = new_gk(c, &lc().gatekeeper_renewed, store).expect("renewed");
    // bob's client accepts the release the renewed certificate signed (C2).
    assert_eq!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 51).expect("bob reads"), sent.plaintext);
    // New tickets are signed with the renewed certificate, and clients accept them (C1).
    let fresh = send(&mut gk, &alice(), &["dave@example.org"], 52);
    assert_eq!(fetch(&mut gk, &dave(), &fresh.sealed, NOW, 53).expect("dave reads"), fresh.plaintext);
}

#[test]
fn a_ticket_of_a_certificate_not_in_the_list_is_refused() {
    let (sent, store) = issued_before_renewal();
    let mut gk = new_gk(config(ReleasePolicy::Once), &lc().gatekeeper_renewed, store).expect("renewed");
    assert_eq!(code(fetch(&mut gk, &bob(), &sent.sealed, NOW, 61)), Some("wrong_gatekeeper"));
    // Listing another certificate of the same gatekeeper does not help.
    let (sent, store) = issued_before_renewal();
    let mut c = config(ReleasePolicy::Once);
    c.retired = vec![retired(&lc().gatekeeper_expired, RetiredKey::Same)];
    let mut gk = new_gk(c, &lc().gatekeeper_renewed, store).expect("renewed");
    assert_eq!(code(fetch(&mut gk, &bob(), &sent.sealed, NOW, 62)), Some("wrong_gatekeeper"));
}

#[test]
fn a_key_rotation_is_declared_as_one_and_then_releases_old_tickets() {
    let (sent, store) = issued_before_renewal();
    let mut c = config(ReleasePolicy::Once);
    c.retired = vec![retired(&fed().sender_org.gatekeeper, RetiredKey::Same)];
    let e = new_gk(c.clone(), &lc().gatekeeper_rekeyed, MemoryStore::new()).expect_err("declared as the same key");
    assert!(e.detail().starts_with("retired[0]: certifies another key"), "{e}");
    c.retired = vec![retired(&fed().sender_org.gatekeeper, RetiredKey::Previous)];
    let mut gk = new_gk(c.clone(), &lc().gatekeeper_rekeyed, store).expect("rotated");
    assert_eq!(fetch(&mut gk, &carol(), &sent.sealed, NOW, 71).expect("carol reads"), sent.plaintext);
    // A renewal declared as a rotation is refused too.
    let e = new_gk(c, &lc().gatekeeper_renewed, MemoryStore::new()).expect_err("declared as another key");
    assert!(e.detail().starts_with("retired[0]: certifies the current key"), "{e}");
}

#[test]
fn a_retired_certificate_must_be_this_gatekeepers() {
    let cases: [(RetiredCertificate, &str); 4] = [
        (retired(&lc().gatekeeper_other_uri, RetiredKey::Same), "retired[0]: must name uri"),
        (retired(&lc().gatekeeper_no_eku, RetiredKey::Same), "retired[0]: must carry extended key usage"),
        (retired(&fed().recipient_org.gatekeeper, RetiredKey::Previous), "retired[0]: must name uri"),
        (retired(&lc().gatekeeper_renewed, RetiredKey::Same), "retired[0]: is the current certificate"),
    ];
    for (r, rule) in cases {
        let mut c = config(ReleasePolicy::Once);
        c.retired = vec![r];
        let e = new_gk(c, &lc().gatekeeper_renewed, MemoryStore::new()).expect_err(rule);
        assert!(e.detail().starts_with(rule), "{rule}: {e}");
    }
    let mut c = config(ReleasePolicy::Once);
    c.retired = vec![retired(&fed().sender_org.gatekeeper, RetiredKey::Same); 2];
    let e = new_gk(c, &lc().gatekeeper_renewed, MemoryStore::new()).expect_err("twice");
    assert!(e.detail().starts_with("retired[1]: listed twice"), "{e}");
}

// ------------------------------------------------------------------------------ C2

/// bob's genuine release of `sent`, opened and signed again by `signer`, sealed to bob.
fn release_signed_by(signer: &Issued) -> (Sent, ekg_core::Result<ekg_core::OneTimeKey>) {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 80);
    let bob_r = bob();
    let msg = bob_r.receive(&sent.sealed, NOW).expect("receive");
    let pending = bob_r.request_release(&msg, NOW, &mut rng(81)).expect("request");
    let release = gk.handle_release_request(&pending.der, NOW, &mut rng(82)).expect("release");
    let bob_cred = credential(fed().recipient_org.user("bob@example.org"));
    let (_, inner) = envelope::open(p(), &release.der, &bob_cred, 64 * 1024, &mut rng(83)).expect("open");
    let delivery = signed::open(p(), &inner, oid::CT_KEY_DELIVERY, 64 * 1024).expect("signed");
    let resigned = signed::sign(p(), &credential(signer), oid::CT_KEY_DELIVERY, &delivery.content, NOW, &mut rng(84))
        .expect("sign");
    let resealed =
        envelope::seal_to(p(), bob_cred.certificate(), oid::ID_SIGNED_DATA, &resigned, &mut rng(85)).expect("seal");
    let key = bob_r.accept_release(&msg, &pending, &resealed, NOW, &mut rng(86));
    (sent, key)
}

#[test]
fn a_client_accepts_a_release_from_the_renewed_gatekeeper_only() {
    let (sent, key) = release_signed_by(&lc().gatekeeper_renewed);
    let key = key.expect("the same gatekeeper, renewed");
    assert_eq!(
        bob().open(&bob().receive(&sent.sealed, NOW).expect("receive"), &key).expect("open").to_vec(),
        sent.plaintext
    );
    let refused: [&Issued; 4] = [
        &lc().gatekeeper_other_uri,      // same key, another URI
        &lc().gatekeeper_no_eku,         // same key, not a gatekeeper
        &lc().gatekeeper_expired,        // same key and URI, not valid now
        &fed().recipient_org.gatekeeper, // another gatekeeper
    ];
    for signer in refused {
        let (_, key) = release_signed_by(signer);
        assert_eq!(code(key), Some("wrong_gatekeeper"));
    }
}
