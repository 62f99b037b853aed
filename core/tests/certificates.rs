//! The path rules of issue 25 (docs/protocol.md §3.0.4 and V25): validity told apart,
//! name constraints (an anchor's and an intermediate's, critical or not), revocation from
//! configured CRLs (revoked, stale, reloaded), and anchors bound to recipient domains.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use der::Decode;
use ekg_core::crypto::pki::{PathLimits, Revocation, TrustAnchors, ValidatedCertificate};
use ekg_core::ledger::{MemoryStore, ReleasePolicy};
use ekg_core::role::{GatekeeperConfig, RecipientRule, SenderRule};
use ekg_testpki::{Issued, Lifecycle};
use x509_cert::Certificate;

fn lc() -> &'static Lifecycle {
    Lifecycle::shared()
}

/// The federation's anchors and `extra` ones.
fn anchors_plus(extra: &[&Issued]) -> TrustAnchors {
    let mut ders = fed().anchors();
    ders.extend(extra.iter().map(|i| i.cert_der.clone()));
    TrustAnchors::from_der(p(), &ders, PathLimits::default()).expect("anchors")
}

fn validate(anchors: &TrustAnchors, who: &Issued) -> ekg_core::Result<ValidatedCertificate> {
    let cert = Certificate::from_der(&who.cert_der).expect("certificate");
    let chain: Vec<Certificate> = who.chain_der.iter().map(|c| Certificate::from_der(c).expect("chain")).collect();
    anchors.validate(p(), &cert, &chain, NOW)
}

fn rejection(r: ekg_core::Result<ValidatedCertificate>) -> Option<&'static str> {
    code(r)
}

fn with_crl(anchors: TrustAnchors, crl: &ekg_testpki::Crl) -> TrustAnchors {
    let mut revocation = Revocation::new();
    revocation.add(p(), &crl.issuer_der, &crl.der).expect("CRL");
    anchors.with_revocation(revocation)
}

// ------------------------------------------------------------------------- V6.1 validity

#[test]
fn not_yet_valid_and_expired_are_told_apart_and_name_the_certificate() {
    let a = anchors();
    let e = validate(&a, &fed().misfits.not_yet_valid).expect_err("not yet valid");
    assert_eq!(e.code(), "certificate_not_yet_valid");
    assert!(e.detail().contains("future@example.com") && e.detail().contains("notBefore"), "{e}");
    let e = validate(&a, &fed().misfits.expired).expect_err("expired");
    assert_eq!(e.code(), "certificate_expired");
    assert!(e.detail().contains("notAfter"), "{e}");
}

// ----------------------------------------------------------------- V7.4 name constraints

#[test]
fn an_anchors_name_constraints_bind_every_path_that_ends_at_it() {
    let a = anchors_plus(&[&lc().constrained_ca.issued]);
    assert!(validate(&a, &lc().constrained_carl).is_ok(), "within the anchor's constraints");
    assert_eq!(rejection(validate(&a, &lc().constrained_bob)), Some("name_not_permitted"));
}

#[test]
fn an_intermediates_non_critical_name_constraints_are_enforced() {
    let a = anchors();
    assert!(validate(&a, &lc().limited_olga).is_ok(), "address and DNS name within");
    let e = validate(&a, &lc().limited_eve).expect_err("address outside");
    assert_eq!(e.code(), "name_not_permitted");
    assert!(e.detail().contains("eve@example.com"), "{e}");
    let e = validate(&a, &lc().limited_dana).expect_err("DNS name outside");
    assert_eq!(e.code(), "name_not_permitted");
    assert!(e.detail().contains("dana.example.net"), "{e}");
}

#[test]
fn a_critical_constraint_on_a_form_that_is_not_checked_refuses_the_path() {
    let e = validate(&anchors(), &lc().ip_limited_ivan).expect_err("iPAddress constraint");
    assert_eq!(e.code(), "name_not_permitted");
    assert!(e.detail().contains("iPAddress"), "{e}");
}

#[test]
fn an_anchor_whose_critical_constraints_are_not_checked_is_refused_when_loaded() {
    let e = TrustAnchors::from_der(p(), &[lc().ip_limited_ca.issued.cert_der.clone()], PathLimits::default())
        .expect_err("an anchor with an iPAddress constraint");
    assert_eq!(e.code(), "invalid_configuration");
    assert!(e.detail().contains("iPAddress"), "{e}");
}

#[test]
fn a_sender_path_obeys_name_constraints_too() {
    let constrained = anchor_id(&lc().constrained_ca.issued.cert_der);
    let mut c = GatekeeperConfig::new(fed().sender_org.gatekeeper_uri(), anchors_plus(&[&lc().constrained_ca.issued]));
    c.senders = vec![SenderRule { domain: None, issuer: Some(constrained) }];
    let mut gk = gatekeeper_with(c, MemoryStore::new());
    let carl = sender(&lc().constrained_carl);
    let pending = carl.request_key(&[addr("bob@example.org")], NOW, &mut rng(1)).expect("request");
    assert!(gk.handle_key_request(&pending.der, NOW, &mut rng(2)).is_ok(), "carl is within");
    let bob = sender(&lc().constrained_bob);
    let pending = bob.request_key(&[addr("dave@example.org")], NOW, &mut rng(3)).expect("request");
    assert_eq!(code(gk.handle_key_request(&pending.der, NOW, &mut rng(4))), Some("name_not_permitted"));
}

// ---------------------------------------------------------------------- V6.2 revocation

#[test]
fn a_revoked_certificate_is_refused_and_its_issuers_others_are_not() {
    let a = with_crl(anchors(), &lc().crl_example_org);
    assert_eq!(rejection(validate(&a, &lc().bob_revoked)), Some("certificate_revoked"));
    let bob = validate(&a, fed().recipient_org.user("bob@example.org")).expect("bob's other certificate");
    assert!(bob.valid_until.secs() <= 2_366_841_600, "a path result holds no longer than its CRL (2045-01-01)");
    assert!(validate(&a, fed().sender_org.user("alice@example.com")).is_ok(), "another issuer: no CRL");
    assert!(validate(&anchors(), &lc().bob_revoked).is_ok(), "without the CRL nothing is revoked");
}

#[test]
fn a_stale_crl_refuses_every_certificate_of_its_issuer() {
    let a = with_crl(anchors(), &lc().crl_example_org_stale);
    // Revoked first: a listed certificate is revoked whatever the CRL's age.
    assert_eq!(rejection(validate(&a, &lc().bob_revoked)), Some("certificate_revoked"));
    let e = validate(&a, fed().recipient_org.user("bob@example.org")).expect_err("stale");
    assert_eq!(e.code(), "crl_stale");
    assert!(e.detail().contains("2026-01-01T00:00:00Z"), "{e}");
    assert!(validate(&a, fed().sender_org.user("alice@example.com")).is_ok(), "another issuer: no CRL");
}

#[test]
fn a_crl_is_loaded_only_from_its_issuer_with_a_good_signature() {
    let crl = &lc().crl_example_org;
    let mut r = Revocation::new();
    let wrong_issuer = r.add(p(), &fed().sender_org.ca.issued.cert_der, &crl.der).expect_err("another CA");
    assert_eq!(wrong_issuer.code(), "invalid_configuration");
    let mut tampered = crl.der.clone();
    let n = tampered.len() - 3;
    tampered[n] ^= 1;
    let e = r.add(p(), &crl.issuer_der, &tampered).expect_err("a bad signature");
    assert!(e.detail().contains("signature"), "{e}");
    let e = r.add(p(), &crl.issuer_der, b"not a CRL").expect_err("garbage");
    assert_eq!(e.code(), "invalid_configuration");
    assert!(r.is_empty());
    let from_pem = ekg_core::crypto::pki::crl_der(crl.pem().as_bytes()).expect("PEM");
    assert_eq!(from_pem, crl.der);
    let list = r.add(p(), &crl.issuer_der, &from_pem).expect("the CRL");
    assert_eq!(list.revoked_count(), 1);
    // An older CRL of the same issuer does not replace a newer one.
    r.add(p(), &crl.issuer_der, &lc().crl_example_org_stale.der).expect("older");
    assert_eq!(r.lists().len(), 1);
    assert_eq!(r.lists()[0].next_update().to_rfc3339(), "2045-01-01T00:00:00Z");
}

#[test]
fn a_release_to_a_revoked_certificate_is_refused_once_the_crls_are_reloaded() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org", "dave@example.org"], 10);
    let revoked = recipient(&lc().bob_revoked);
    let msg = revoked.receive(&sent.sealed, NOW).expect("receive");
    let pending = revoked.request_release(&msg, NOW, &mut rng(11)).expect("request");
    let mut crls = Revocation::new();
    crls.add(p(), &lc().crl_example_org.issuer_der, &lc().crl_example_org.der).expect("CRL");
    // The first validation of this path is cached; the reload forgets it.
    assert!(gk.crypto().verify_release_request(&pending.der, NOW).is_ok(), "no CRL yet");
    gk.crypto().reload_revocation(crls);
    assert_eq!(code(gk.handle_release_request(&pending.der, NOW, &mut rng(12))), Some("certificate_revoked"));
    assert_eq!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 13).expect("bob's good certificate"), sent.plaintext);
    gk.crypto().reload_revocation(Revocation::new());
    assert_eq!(code(gk.handle_release_request(&pending.der, NOW, &mut rng(14))), Some("already_released"));
}

// -------------------------------------------------------------- V25 anchors and domains

/// example.com's gatekeeper trusting partner.test's CA too, with `rules`.
fn partner_gatekeeper(rules: Vec<RecipientRule>) -> Gk {
    let mut c = config(ReleasePolicy::Once);
    c.anchors = anchors_plus(&[&lc().partner_org.ca.issued]);
    c.recipients = rules;
    gatekeeper_with(c, MemoryStore::new())
}

fn rule(domain: &str, ca: &Issued) -> RecipientRule {
    RecipientRule { domain: Some(domain.into()), issuer: Some(anchor_id(&ca.cert_der)) }
}

fn own_rules() -> Vec<RecipientRule> {
    vec![
        rule("example.com", &fed().sender_org.ca.issued),
        rule("example.org", &fed().recipient_org.ca.issued),
        rule("partner.test", &lc().partner_org.ca.issued),
    ]
}

#[test]
fn a_partner_anchor_cannot_take_a_key_for_another_domain() {
    let mut gk = partner_gatekeeper(own_rules());
    let sent = send(&mut gk, &alice(), &["bob@example.org", "pat@partner.test"], 20);
    // The organisation's gateway is bound by its own entry, not by the recipient rules.
    let gw = gateway();
    let msg = gw.receive(&sent.sealed, NOW).expect("receive");
    let pending = gw.request_key(&msg, NOW, &mut rng(24)).expect("request");
    assert!(gk.handle_release_request(&pending.der, NOW, &mut rng(25)).is_ok(), "gateway");
    let impostor = recipient(&lc().partner_bob);
    let e = fetch(&mut gk, &impostor, &sent.sealed, NOW, 21).expect_err("partner.test's CA for example.org");
    assert_eq!(e.code(), "anchor_not_allowed_for_domain");
    assert!(e.detail().contains("example.org"), "{e}");
    assert_eq!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 22).expect("bob, by example.org's CA"), sent.plaintext);
    let pat = recipient(lc().partner_org.user("pat@partner.test"));
    assert_eq!(fetch(&mut gk, &pat, &sent.sealed, NOW, 23).expect("pat, by partner.test's CA"), sent.plaintext);
}

#[test]
fn an_unlisted_requester_is_still_recipient_not_listed() {
    let mut gk = partner_gatekeeper(own_rules());
    let sent = send(&mut gk, &alice(), &["pat@partner.test"], 30);
    // Signed as a gateway would (a recipient's client refuses an unlisted message first).
    let impostor = ekg_core::role::Gateway::new(p(), credential(&lc().partner_bob), anchors());
    let msg = impostor.receive(&sent.sealed, NOW).expect("receive");
    let pending = impostor.request_key(&msg, NOW, &mut rng(31)).expect("request");
    assert_eq!(code(gk.handle_release_request(&pending.der, NOW, &mut rng(32))), Some("recipient_not_listed"));
}

#[test]
fn a_rule_without_an_issuer_lets_any_anchor_certify_its_domain_and_none_means_any() {
    let mut open = own_rules();
    open.push(RecipientRule { domain: Some("example.org".into()), issuer: None });
    for rules in [open, Vec::new()] {
        let mut gk = partner_gatekeeper(rules);
        let sent = send(&mut gk, &alice(), &["bob@example.org"], 40);
        let impostor = recipient(&lc().partner_bob);
        assert_eq!(fetch(&mut gk, &impostor, &sent.sealed, NOW, 41).expect("allowed"), sent.plaintext);
    }
}

#[test]
fn recipient_rules_are_checked_like_sender_rules() {
    let mut c = config(ReleasePolicy::Once);
    c.recipients = vec![RecipientRule { domain: None, issuer: None }];
    assert_eq!(code(c.validate()), Some("invalid_configuration"));
    c.recipients = vec![RecipientRule { domain: None, issuer: Some(anchor_id(&lc().partner_org.ca.issued.cert_der)) }];
    let e = c.validate().expect_err("not an anchor");
    assert!(e.detail().starts_with("recipients.issuer"), "{e}");
    c.recipients = vec![RecipientRule { domain: Some("not a domain".into()), issuer: None }];
    assert_eq!(code(c.validate()), Some("invalid_configuration"));
}
