//! The gatekeeper itself: its configuration, its crypto provider, its threads, its cache of
//! certificate paths.

use super::*;

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
