//! Properties over random inputs: mutated and truncated DER is never accepted and never
//! panics; random recipient sets and request orders through the real gatekeeper (real
//! crypto) never give two releases to one address nor two keys or key ids alike.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use ekg_core::ledger::{ReleaseKind, ReleasePolicy};
use ekg_core::role::Recipient;
use proptest::prelude::*;

/// The artifacts of one flow, built once.
struct Flow {
    request: Vec<u8>,
    ticket: Vec<u8>,
    grant: Vec<u8>,
    sealed: Vec<u8>,
    release_request: Vec<u8>,
    release: Vec<u8>,
}

fn flow() -> &'static Flow {
    static FLOW: std::sync::OnceLock<Flow> = std::sync::OnceLock::new();
    FLOW.get_or_init(|| {
        let mut gk = gatekeeper(ReleasePolicy::SameCertificate);
        let sent = send(&mut gk, &alice(), &["bob@example.org"], 600);
        let bob = bob();
        let msg = bob.receive(&sent.sealed, NOW).expect("receive");
        let pending = bob.request_release(&msg, NOW, &mut rng(601)).expect("request");
        let release = gk.handle_release_request(&pending.der, NOW, &mut rng(602)).expect("release");
        Flow {
            request: sent.request,
            ticket: sent.ticket,
            grant: sent.grant,
            sealed: sent.sealed,
            release_request: pending.der,
            release: release.der,
        }
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Truncate { at: usize },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
    Overwrite { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        1 => any::<usize>().prop_map(|at| Mutation::Remove { at }),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
    ]
}

fn apply(original: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = original.to_vec();
    let n = b.len();
    match m {
        Mutation::Flip { at, bit } => b[at % n] ^= 1 << bit,
        Mutation::Truncate { at } => b.truncate(at % n),
        Mutation::Insert { at, byte } => b.insert(at % (n + 1), *byte),
        Mutation::Remove { at } => {
            b.remove(at % n);
        }
        Mutation::Overwrite { at, bytes } => {
            for (i, x) in bytes.iter().enumerate() {
                let j = (at + i) % n;
                b[j] = *x;
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn mutated_key_requests_are_rejected(m in mutation()) {
        let f = flow();
        let bad = apply(&f.request, &m);
        prop_assume!(bad != f.request);
        let mut gk = gatekeeper(ReleasePolicy::Once);
        prop_assert!(gk.handle_key_request(&bad, NOW, &mut rng(1)).is_err());
    }

    #[test]
    fn mutated_release_requests_are_rejected(m in mutation()) {
        let f = flow();
        let bad = apply(&f.release_request, &m);
        prop_assume!(bad != f.release_request);
        let mut gk = gatekeeper(ReleasePolicy::Once);
        prop_assert!(gk.handle_release_request(&bad, NOW, &mut rng(1)).is_err());
    }

    #[test]
    fn mutated_sealed_messages_never_panic_and_never_open(m in mutation()) {
        let f = flow();
        let bad = apply(&f.sealed, &m);
        prop_assume!(bad != f.sealed);
        if let Ok(msg) = bob().receive(&bad, NOW) {
            prop_assert!(bob().open(&msg, sealed_key()).is_err());
        }
    }

    #[test]
    fn mutated_grants_and_tickets_are_rejected_by_the_sender(m in mutation(), which in any::<bool>()) {
        let f = flow();
        let sender = alice();
        // The sender's pending request is rebuilt from the same seed as in flow().
        let pending = sender.request_key(&[addr("bob@example.org")], NOW, &mut rng(600)).expect("request");
        prop_assert_eq!(&pending.der, &f.request);
        let (grant, ticket) = if which { (apply(&f.grant, &m), f.ticket.clone()) } else { (f.grant.clone(), apply(&f.ticket, &m)) };
        prop_assume!(grant != f.grant || ticket != f.ticket);
        prop_assert!(sender.accept_grant(&pending, &grant, &ticket, NOW, &mut rng(2)).is_err());
    }

    #[test]
    fn mutated_releases_are_rejected_by_the_recipient(m in mutation()) {
        let f = flow();
        let bad = apply(&f.release, &m);
        prop_assume!(bad != f.release);
        let bob = bob();
        let msg = bob.receive(&f.sealed, NOW).expect("receive");
        let pending = bob.request_release(&msg, NOW, &mut rng(601)).expect("request");
        prop_assert_eq!(&pending.der, &f.release_request);
        prop_assert!(bob.accept_release(&msg, &pending, &bad, NOW, &mut rng(3)).is_err());
    }
}

fn sealed_key() -> &'static ekg_core::OneTimeKey {
    static KEY: std::sync::OnceLock<ekg_core::OneTimeKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let f = flow();
        let bob = bob();
        let msg = bob.receive(&f.sealed, NOW).expect("receive");
        let pending = bob.request_release(&msg, NOW, &mut rng(601)).expect("request");
        bob.accept_release(&msg, &pending, &f.release, NOW, &mut rng(4)).expect("key")
    })
}

#[test]
fn mutated_sealed_messages_do_not_open() {
    // Single-bit flips of the sealed message: refused at parse, at the ticket, or at
    // decryption. (Every byte before the attached ticket's end of header; sampled after.)
    let f = flow();
    let bob = bob();
    let key = sealed_key();
    let mut accepted = Vec::new();
    for at in (0..f.sealed.len()).filter(|i| *i < 600 || i % 97 == 0) {
        let mut bad = f.sealed.clone();
        bad[at] ^= 0x04;
        if bob.receive(&bad, NOW).is_ok_and(|m| bob.open(&m, key).is_ok()) {
            accepted.push(at);
        }
    }
    assert!(accepted.is_empty(), "flips accepted at {accepted:?}");
}

#[derive(Debug, Clone)]
enum Step {
    Send { to: BTreeSet<usize> },
    Fetch { message: usize, who: usize },
}

const POOL: [&str; 3] = ["bob@example.org", "carol@example.com", "dave@example.org"];

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            1 => proptest::collection::btree_set(0usize..3, 1..=3).prop_map(|to| Step::Send { to }),
            3 => (0usize..3, 0usize..5).prop_map(|(message, who)| Step::Fetch { message, who }),
        ],
        1..10,
    )
}

/// The clients that may ask: the listed pool, a second certificate for bob, and the
/// recipient organisation's gateway (never to be served).
fn clients() -> Vec<(Option<&'static str>, &'static ekg_testpki::Issued)> {
    let f = fed();
    vec![
        (Some("bob@example.org"), f.recipient_org.user("bob@example.org")),
        (Some("carol@example.com"), f.sender_org.user("carol@example.com")),
        (Some("dave@example.org"), f.recipient_org.user("dave@example.org")),
        (Some("bob@example.org"), &f.misfits.bob_second),
        (None, &f.recipient_org.gateway),
    ]
}

fn key_of(grant: &[u8], seed: u64) -> Vec<u8> {
    use der::Decode;
    let alice = credential(fed().sender_org.user("alice@example.com"));
    let (_, content) = ekg_core::wire::envelope::open(p(), grant, &alice, 1 << 16, &mut rng(seed)).expect("grant");
    ekg_core::wire::KeyDelivery::from_der(&content).expect("delivery").key.0.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Random recipient sets and request orders, real crypto end to end.
    #[test]
    fn random_flows_never_release_twice_nor_reuse_keys(steps in steps(), same_cert in any::<bool>()) {
        let policy = if same_cert { ReleasePolicy::SameCertificate } else { ReleasePolicy::Once };
        let mut gk = gatekeeper(policy);
        let clients = clients();
        let mut messages: Vec<(Vec<u8>, BTreeSet<usize>)> = Vec::new();
        let mut key_ids = BTreeSet::new();
        let mut keys = BTreeSet::new();
        // (message, address) -> certificates served.
        let mut served: BTreeMap<(usize, &str), BTreeSet<Vec<u8>>> = BTreeMap::new();
        let mut firsts: BTreeMap<(usize, &str), u32> = BTreeMap::new();
        for (n, step) in steps.into_iter().enumerate() {
            let seed = 10_000 + n as u64;
            match step {
                Step::Send { to } => {
                    let list: Vec<&str> = to.iter().map(|i| POOL[*i]).collect();
                    let sent = send(&mut gk, &alice(), &list, seed);
                    let t = ekg_core::role::Ticket::open(p(), &sent.ticket).expect("ticket");
                    prop_assert!(key_ids.insert(t.key_id), "key id reused");
                    prop_assert!(keys.insert(key_of(&sent.grant, seed)), "key reused");
                    messages.push((sent.sealed, to));
                }
                Step::Fetch { message, who } => {
                    if messages.is_empty() {
                        continue;
                    }
                    let idx = message % messages.len();
                    let (address, issued) = clients[who];
                    let client = Recipient::new(p(), credential(issued), anchors());
                    // Read the ticket as a gateway would, so that unlisted clients still ask.
                    let msg = ekg_core::role::Gateway::new(p(), credential(issued), anchors()).receive(&messages[idx].0, NOW).expect("receive");
                    let pending = client.request_release(&msg, NOW, &mut rng(seed)).expect("request");
                    if let Ok(release) = gk.handle_release_request(&pending.der, NOW, &mut rng(seed + 1)) {
                        let address = address.expect("only listed addresses are served");
                        prop_assert!(release.kind != ReleaseKind::Gateway);
                        client.accept_release(&msg, &pending, &release.der, NOW, &mut rng(seed + 2)).expect("accept");
                        served.entry((idx, address)).or_default().insert(issued.cert_der.clone());
                        if release.kind == ReleaseKind::First {
                            *firsts.entry((idx, address)).or_default() += 1;
                        }
                    }
                }
            }
            prop_assert_eq!(ledger(&gk).check_invariants(), Ok(()));
        }
        for ((m, a), certs) in &served {
            prop_assert_eq!(certs.len(), 1, "message {} address {} served to {} certificates", m, a, certs.len());
        }
        for ((m, a), n) in &firsts {
            prop_assert_eq!(*n, 1, "message {} address {} had {} first releases", m, a, n);
        }
    }
}

/// Found by `mutated_key_requests_are_rejected` (saved in properties.proptest-regressions): a
/// certificate whose unsigned outer signatureAlgorithm differs from the signed one in its TBS
/// (here NULL parameters turned into another tag) must not validate (RFC 5280 4.1.1.2).
#[test]
fn a_certificate_whose_outer_signature_algorithm_differs_is_refused() {
    let f = flow();
    // sha256WithRSAEncryption, NULL, then the certificate's signature BIT STRING.
    let pattern = hex::decode("300d06092a864886f70d01010b0500038201").unwrap();
    let at = f.request.windows(pattern.len()).position(|w| w == pattern.as_slice()).unwrap() + 13;
    let mut bad = f.request.clone();
    assert_eq!(bad[at], 0x05);
    bad[at] = 0x01;
    let mut gk = gatekeeper(ReleasePolicy::Once);
    assert_eq!(code(gk.handle_key_request(&bad, NOW, &mut rng(1))), Some("untrusted_certificate"));
}

/// Found by `mutated_releases_are_rejected_by_the_recipient` (saved in
/// properties.proptest-regressions): a release whose KeyTransRecipientInfo version is 1 opened.
/// RFC 5652 6.2.1 fixes it by the recipient identifier: 0 for issuerAndSerialNumber.
#[test]
fn a_release_with_a_wrong_recipient_info_version_is_refused() {
    let f = flow();
    // AuthEnvelopedData version 0, RecipientInfos SET, KTRI SEQUENCE, KTRI version 0.
    let pattern = hex::decode("0201003182").unwrap();
    let set = f.release.windows(pattern.len()).position(|w| w == pattern.as_slice()).unwrap() + 5;
    let at = set + 2 + 4 + 2; // past the SET length, the KTRI SEQUENCE header, INTEGER tag and length
    let mut bad = f.release.clone();
    assert_eq!(&bad[at - 2..=at], &[0x02, 0x01, 0x00]);
    bad[at] = 0x01;
    let bob = bob();
    let msg = bob.receive(&f.sealed, NOW).unwrap();
    let pending = bob.request_release(&msg, NOW, &mut rng(601)).unwrap();
    assert_eq!(code(bob.accept_release(&msg, &pending, &bad, NOW, &mut rng(3))), Some("unsupported_version"));
}
