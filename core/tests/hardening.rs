//! What an independent implementation and a fuzzer found (issue 11), each observation as a
//! test that failed before its fix.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use der::asn1::{GeneralizedTime, Ia5String, OctetString, SetOfVec};
use der::{Any, DateTime, Decode, Encode, Tag};
use ekg_core::crypto::pki::{PathLimits, TrustAnchors};
use ekg_core::ledger::{LedgerConfig, MemoryStore, ReleasePolicy};
use ekg_core::role::{Gatekeeper, Recipient, Sender, StorageKey};
use ekg_core::wire::raw::{Element, SignedDataRaw, SignerInfoRaw, element_set};
use ekg_core::wire::signed;
use ekg_core::wire::{ContentInfo, KeyRequest, oid};
use ekg_core::{Rejection, UnixTime};

/// Edits the SignedData (and its one SignerInfo) of a signed request, re-encoding in DER.
fn edit(der: &[u8], f: impl FnOnce(&mut SignedDataRaw, &mut SignerInfoRaw)) -> Vec<u8> {
    let ci = ContentInfo::from_der(der).expect("content info");
    let mut sd: SignedDataRaw = ci.content.decode_as().expect("signed data");
    let mut si = SignerInfoRaw::from_der(&sd.signer_infos.iter().next().expect("signer").0).expect("signer info");
    f(&mut sd, &mut si);
    sd.signer_infos = element_set(vec![si.to_der().expect("der")]).expect("set");
    ContentInfo { content_type: oid::ID_SIGNED_DATA, content: Any::encode_from(&sd).expect("any") }
        .to_der()
        .expect("der")
}

fn key_request(
    signer: &ekg_testpki::Issued,
    sender: &str,
    to: &[&str],
    time: UnixTime,
    signed_at: UnixTime,
) -> Vec<u8> {
    let req = KeyRequest {
        version: 0,
        sender: Ia5String::new(sender).expect("ia5"),
        recipients: to.iter().map(|r| Ia5String::new(r).expect("ia5")).collect(),
        nonce: OctetString::new(vec![0x5a; 16]).expect("nonce"),
        request_time: GeneralizedTime::from_date_time(
            DateTime::from_unix_duration(std::time::Duration::from_secs(time.0)).expect("time"),
        ),
        labels: None,
        expansion: None,
    };
    signed::sign(p(), &credential(signer), oid::CT_KEY_REQUEST, &req.to_der().expect("der"), signed_at, &mut rng(3))
        .expect("sign")
}

fn alice_request() -> Vec<u8> {
    key_request(fed().sender_org.user("alice@example.com"), "alice@example.com", &["bob@example.org"], NOW, NOW)
}

/// Hands `der` to the gatekeeper with a fresh RNG each time (so that a second issuance would
/// draw a new key id, not collide with the first).
fn issue(gk: &mut Gk, der: &[u8]) -> Result<(), &'static str> {
    static DRAWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);
    let seed = DRAWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    gk.handle_key_request(der, NOW, &mut rng(seed)).map(|_| ()).map_err(|e| e.code())
}

// ------------------------------------------------------------------ item 1: V14

#[test]
fn v14_no_unsigned_edit_of_an_answered_request_gets_a_new_key() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let original = alice_request();
    assert_eq!(issue(&mut gk, &original), Ok(()));
    let bob_cert = Element(fed().recipient_org.user("bob@example.org").cert_der.clone());
    let variants: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "signature algorithm sha256WithRSAEncryption -> rsaEncryption",
            edit(&original, |_, si| si.signature_algorithm.oid = oid::RSA_ENCRYPTION),
            "duplicate_request",
        ),
        (
            "signature algorithm parameters NULL -> absent",
            edit(&original, |_, si| si.signature_algorithm.parameters = None),
            "duplicate_request",
        ),
        (
            "digest algorithm parameters absent -> NULL",
            edit(&original, |_, si| si.digest_alg.parameters = Some(Any::null())),
            "duplicate_request",
        ),
        (
            "an extra digestAlgorithms entry",
            edit(&original, |sd, _| {
                let mut v: Vec<Vec<u8>> = sd.digest_algorithms.iter().map(|e| e.0.clone()).collect();
                v.push(
                    ekg_core::wire::raw::Element(vec![
                        0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
                    ])
                    .0,
                );
                sd.digest_algorithms = element_set(v).expect("set");
            }),
            "profile_violation",
        ),
        (
            "an extra certificate",
            edit(&original, |sd, _| {
                let mut v: Vec<Vec<u8>> = sd.certificates.iter().flat_map(|s| s.iter()).map(|e| e.0.clone()).collect();
                v.push(bob_cert.0.clone());
                sd.certificates = Some(element_set(v).expect("set"));
            }),
            "duplicate_request",
        ),
        (
            "an added unsigned attribute",
            edit(&original, |_, si| {
                let attr = x509_cert::attr::Attribute {
                    oid: oid::ATTR_SIGNING_TIME,
                    values: SetOfVec::try_from(vec![Any::new(Tag::UtcTime, b"260601000000Z".to_vec()).expect("t")])
                        .expect("set"),
                };
                si.unsigned_attrs = Some(element_set(vec![attr.to_der().expect("der")]).expect("set"));
            }),
            "profile_violation",
        ),
        (
            "the same content signed again one second later",
            key_request(
                fed().sender_org.user("alice@example.com"),
                "alice@example.com",
                &["bob@example.org"],
                NOW,
                NOW.plus_secs(1),
            ),
            "duplicate_request",
        ),
    ];
    for (what, der, want) in variants {
        assert_ne!(der, original, "{what}: the edit changed nothing");
        assert_eq!(issue(&mut gk, &der), Err(want), "{what}");
    }
    assert_eq!(ledger(&gk).keys().count(), 1, "one request, one key");
}

#[test]
fn v14_no_single_byte_mutation_of_an_answered_request_is_answered() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let original = alice_request();
    assert_eq!(issue(&mut gk, &original), Ok(()));
    // Every byte with three masks, and every value of each byte of the fields no signature
    // covers (the SignerInfo's digest and signature algorithm identifiers).
    let ci = ContentInfo::from_der(&original).expect("ci");
    let sd: SignedDataRaw = ci.content.decode_as().expect("sd");
    let si = SignerInfoRaw::from_der(&sd.signer_infos.iter().next().expect("si").0).expect("si");
    let find = |n: &[u8]| original.windows(n.len()).rposition(|w| w == n).expect("field");
    let mut unsigned = Vec::new();
    for field in [si.digest_alg.to_der().expect("der"), si.signature_algorithm.to_der().expect("der")] {
        let at = find(&field);
        unsigned.extend(at..at + field.len());
    }
    let mut mutants = Vec::new();
    for i in 0..original.len() {
        let masks: Vec<u8> = if unsigned.contains(&i) { (1..=255).collect() } else { vec![0x01, 0x80, 0xff] };
        mutants.extend(masks.into_iter().map(|x| (i, x)));
    }
    let mut refused = std::collections::BTreeMap::<&str, usize>::new();
    for (i, x) in mutants {
        let mut m = original.clone();
        m[i] ^= x;
        match issue(&mut gk, &m) {
            Ok(()) => panic!("byte {i} ^ {x:#04x}: a mutant of an answered request was issued a key"),
            Err(code) => *refused.entry(code).or_default() += 1,
        }
    }
    assert_eq!(ledger(&gk).keys().count(), 1);
    assert!(refused.get("duplicate_request").is_some_and(|n| *n > 0), "{refused:?}");
}

// ------------------------------------------------------------------ item 2: SET OF order

/// alice's request carrying `certs` (each a DER certificate) in X.690 order.
fn with_certificates(certs: &[&[u8]]) -> Vec<u8> {
    edit(&alice_request(), |sd, _| {
        sd.certificates = Some(element_set(certs.iter().map(|c| c.to_vec()).collect()).expect("set"))
    })
}

/// Swaps two equal-length elements in place (so that every length stays right).
fn swap(der: &[u8], a: &[u8], b: &[u8]) -> Vec<u8> {
    assert_eq!(a.len(), b.len());
    let find = |n: &[u8]| der.windows(n.len()).position(|w| w == n).expect("certificate");
    let (i, j) = (find(a), find(b));
    let mut out = der.to_vec();
    out[i..i + a.len()].copy_from_slice(b);
    out[j..j + b.len()].copy_from_slice(a);
    out
}

#[test]
fn certificates_in_x690_order_are_accepted_and_any_other_order_is_ber() {
    let f = fed();
    let alice = &f.sender_org.user("alice@example.com").cert_der;
    let bob = &f.recipient_org.user("bob@example.org").cert_der;
    let expired = &f.misfits.expired.cert_der;
    assert_eq!(bob.len(), expired.len(), "the case needs two certificates of equal length");
    let sorted = with_certificates(&[alice, bob, expired]);
    let mut gk = gatekeeper(ReleasePolicy::Once);
    assert_eq!(issue(&mut gk, &sorted), Ok(()), "X.690 order is DER");
    let unsorted = swap(&sorted, bob, expired);
    let mut gk = gatekeeper(ReleasePolicy::Once);
    assert_eq!(issue(&mut gk, &unsorted), Err("ber_not_der"));
}

#[test]
fn a_chain_is_carried_in_x690_order_not_path_order() {
    // erin's request, signed by us: its two certificates are in byte order.
    let erin = &fed().misfits.via_intermediate;
    let der = key_request(erin, "erin@example.com", &["bob@example.org"], NOW, NOW);
    let ci = ContentInfo::from_der(&der).expect("ci");
    let sd: SignedDataRaw = ci.content.decode_as().expect("sd");
    let carried: Vec<&[u8]> = sd.certificates.iter().flat_map(|s| s.iter()).map(|e| e.0.as_slice()).collect();
    let mut sorted = carried.clone();
    sorted.sort();
    assert_eq!(carried, sorted);
    let mut gk = gatekeeper(ReleasePolicy::Once);
    assert_eq!(issue(&mut gk, &der), Ok(()));
}

#[test]
fn signed_attributes_in_x690_order_are_what_is_signed() {
    // The three signed attributes as produced are in byte order, and the signature covers
    // exactly that SET OF.
    let der = alice_request();
    let ci = ContentInfo::from_der(&der).expect("ci");
    let sd: SignedDataRaw = ci.content.decode_as().expect("sd");
    let si = SignerInfoRaw::from_der(&sd.signer_infos.iter().next().expect("si").0).expect("si");
    let attrs: Vec<&[u8]> = si.signed_attrs.iter().flat_map(|s| s.iter()).map(|e| e.0.as_slice()).collect();
    let mut sorted = attrs.clone();
    sorted.sort();
    assert_eq!(attrs, sorted);
}

// ------------------------------------------------------------------ item 3: configuration

#[test]
fn every_configuration_field_out_of_range_is_refused_naming_the_field() {
    type Edit = Box<dyn Fn(&mut ekg_core::role::GatekeeperConfig)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("ticket_lifetime_secs", Box::new(|c| c.ticket_lifetime_secs = u64::MAX)),
        ("ticket_lifetime_secs", Box::new(|c| c.ticket_lifetime_secs = 0)),
        (
            "max_deliveries",
            Box::new(|c| c.ledger = LedgerConfig { retention_secs: 0, max_deliveries: 0, request_window_secs: None }),
        ),
        ("max_clock_skew_secs", Box::new(|c| c.max_clock_skew_secs = u64::MAX)),
        ("max_recipients", Box::new(|c| c.max_recipients = 0)),
        ("max_recipients", Box::new(|c| c.max_recipients = 1001)),
        ("retention_secs", Box::new(|c| c.ledger.retention_secs = 365 * 24 * 3600)),
        ("uri", Box::new(|c| c.uri = String::new())),
        ("senders", Box::new(|c| c.senders.clear())),
        (
            "max_path_len",
            Box::new(|c| {
                c.anchors =
                    TrustAnchors::from_der(p(), &fed().anchors(), PathLimits { max_path_len: 1 }).expect("anchors")
            }),
        ),
        ("anchors", Box::new(|c| c.anchors = TrustAnchors::default())),
    ];
    for (field, set) in cases {
        let mut c = config(ReleasePolicy::Once);
        set(&mut c);
        let e = Gatekeeper::new(
            p(),
            c,
            credential(&fed().sender_org.gatekeeper),
            StorageKey::from_bytes([7; 32]),
            MemoryStore::new(),
        )
        .err()
        .unwrap_or_else(|| panic!("{field}: accepted"));
        assert_eq!(e.rejection(), Rejection::InvalidConfiguration, "{field}");
        assert!(e.detail().starts_with(field), "{field}: {}", e.detail());
    }
}

#[test]
fn a_request_dated_1970_is_refused_by_the_bounded_skew() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let old = key_request(
        fed().sender_org.user("alice@example.com"),
        "alice@example.com",
        &["bob@example.org"],
        UnixTime(0),
        NOW,
    );
    assert_eq!(issue(&mut gk, &old), Err("request_time_skew"));
}

#[test]
fn a_wrong_storage_key_is_refused_at_start_not_at_the_first_release() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    send(&mut gk, &alice(), &["bob@example.org"], 30);
    let store = gk.into_store();
    let e = Gatekeeper::new(
        p(),
        config(ReleasePolicy::Once),
        credential(&fed().sender_org.gatekeeper),
        StorageKey::from_bytes([8; 32]),
        store,
    )
    .expect_err("a wrong storage key");
    assert_eq!(e.rejection(), Rejection::InvalidConfiguration);
}

// ------------------------------------------------------------------ item 4: intermediates

#[test]
fn a_gatekeeper_certified_by_an_intermediate_ca_serves_clients() {
    let mut gk = Gatekeeper::new(
        p(),
        config(ReleasePolicy::Once),
        credential(&fed().misfits.gatekeeper_via_intermediate),
        StorageKey::from_bytes([7; 32]),
        MemoryStore::new(),
    )
    .expect("gatekeeper under an intermediate");
    let alice: Sender = alice();
    let sent = send(&mut gk, &alice, &["bob@example.org"], 40);
    let bob: Recipient = bob();
    assert_eq!(fetch(&mut gk, &bob, &sent.sealed, NOW, 41).expect("bob reads"), sent.plaintext);
}

// ------------------------------------------------------------------ item 5: check order

#[test]
fn v9_runs_before_v12_and_v11_before_v12() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let alice = fed().sender_org.user("alice@example.com");
    let r =
        key_request(alice, "alice@example.com", &["bob@example.org", "bob@example.org", "not an address"], NOW, NOW);
    assert_eq!(issue(&mut gk, &r), Err("invalid_address"));
    let dave = fed().recipient_org.user("dave@example.org");
    let r = key_request(dave, "dave@example.org", &["bob@example.org", "bob@example.org"], NOW, NOW);
    assert_eq!(issue(&mut gk, &r), Err("sender_not_recognised"));
}

#[test]
fn a_generalized_time_signing_time_before_2050_is_a_profile_violation() {
    let original = alice_request();
    let der = edit(&original, |_, si| {
        let mut v: Vec<Vec<u8>> = Vec::new();
        for e in si.signed_attrs.iter().flat_map(|s| s.iter()) {
            let a = x509_cert::attr::Attribute::from_der(&e.0).expect("attr");
            if a.oid == oid::ATTR_SIGNING_TIME {
                let t = Any::new(Tag::GeneralizedTime, b"20260601000000Z".to_vec()).expect("t");
                let a = x509_cert::attr::Attribute { oid: a.oid, values: SetOfVec::try_from(vec![t]).expect("set") };
                v.push(a.to_der().expect("der"));
            } else {
                v.push(e.0.clone());
            }
        }
        si.signed_attrs = Some(element_set(v).expect("set"));
    });
    let mut gk = gatekeeper(ReleasePolicy::Once);
    // Checked before the signature (which no longer verifies): the profile comes first.
    assert_eq!(issue(&mut gk, &der), Err("profile_violation"));
}
