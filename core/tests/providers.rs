//! The two providers cross-checked (feature `aws-lc`): each verifies and opens what the
//! other produced, primitive by primitive and across a whole flow.

#![cfg(feature = "aws-lc")]
// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use ekg_core::crypto::pki::{Credential, PathLimits, TrustAnchors};
use ekg_core::crypto::{AwsLc, CryptoProvider, RustCrypto};
use ekg_core::ledger::{MemoryStore, ReleasePolicy};
use ekg_core::role::{Gatekeeper, Recipient, Sender, StorageKey};

static AWS: AwsLc = AwsLc;
static RC: RustCrypto = RustCrypto;

fn pair() -> [(&'static dyn CryptoProvider, &'static dyn CryptoProvider); 2] {
    [(&AWS, &RC), (&RC, &AWS)]
}

#[test]
fn each_provider_reads_what_the_other_made() {
    let alice = fed().sender_org.user("alice@example.com");
    for (a, b) in pair() {
        assert_eq!(a.sha256(b"ekg"), b.sha256(b"ekg"));
        let ka = a.load_private_key(&alice.key_pkcs8).expect("key a");
        let kb = b.load_private_key(&alice.key_pkcs8).expect("key b");
        assert_eq!(ka.public_key_spki(), kb.public_key_spki());
        let spki = ka.public_key_spki().to_vec();
        let sig = ka.sign_pkcs1_sha256(b"message", &mut rng(1)).expect("sign");
        b.verify_pkcs1_sha256(&spki, b"message", &sig).expect("verify across");
        assert_eq!(code(b.verify_pkcs1_sha256(&spki, b"other", &sig)), Some("bad_signature"));
        let ct = a.oaep_sha256_encrypt(&spki, &[7; 32], &mut rng(2)).expect("oaep");
        assert_eq!(kb.oaep_sha256_decrypt(&ct, &mut rng(3)).expect("oaep across").as_slice(), &[7; 32]);
        let (c, tag) = a.aes256_gcm_seal(&[1; 32], &[2; 12], b"aad", b"plain").expect("seal");
        assert_eq!(b.aes256_gcm_open(&[1; 32], &[2; 12], b"aad", &c, &tag).expect("open across").as_slice(), b"plain");
        assert_eq!(code(b.aes256_gcm_open(&[1; 32], &[2; 12], b"AAD", &c, &tag)), Some("authentication_failed"));
        let w = a.aes256_kw_wrap(&[4; 32], &[5; 32]).expect("wrap");
        assert_eq!(b.aes256_kw_unwrap(&[4; 32], &w.0).expect("unwrap across").expose(), &[5; 32]);
        assert_eq!(code(b.aes256_kw_unwrap(&[3; 32], &w.0)), Some("key_unwrap_failed"));
    }
}

#[test]
fn a_flow_with_the_gatekeeper_on_one_provider_and_the_clients_on_the_other() {
    let f = fed();
    for (gk_p, client_p) in pair() {
        let cred = |p: &'static dyn CryptoProvider, i: &ekg_testpki::Issued| {
            Credential::from_der(p, &i.cert_der, &i.chain_der, &i.key_pkcs8).expect("credential")
        };
        let anchors = |p: &'static dyn CryptoProvider| {
            TrustAnchors::from_der(p, &f.anchors(), PathLimits::default()).expect("anchors")
        };
        let mut cfg = config(ReleasePolicy::Once);
        cfg.anchors = anchors(gk_p);
        let mut gk = Gatekeeper::new(
            gk_p,
            cfg,
            cred(gk_p, &f.sender_org.gatekeeper),
            StorageKey::from_bytes([9; 32]),
            MemoryStore::new(),
        )
        .expect("gatekeeper");
        let sender = Sender::new(
            client_p,
            cred(client_p, f.sender_org.user("alice@example.com")),
            anchors(client_p),
            f.sender_org.gatekeeper_uri(),
        )
        .expect("sender");
        let pending = sender.request_key(&[addr("bob@example.org")], NOW, &mut rng(10)).expect("request");
        let issuance = gk.handle_key_request(&pending.der, NOW, &mut rng(11)).expect("issue");
        let key = sender.accept_grant(&pending, &issuance.grant, &issuance.ticket, NOW, &mut rng(12)).expect("grant");
        let sealed = sender.seal(&key, b"cross-provider", &mut rng(13)).expect("seal");
        let bob = Recipient::new(client_p, cred(client_p, f.recipient_org.user("bob@example.org")), anchors(client_p));
        let msg = bob.receive(&sealed, NOW).expect("receive");
        let req = bob.request_release(&msg, NOW, &mut rng(14)).expect("release request");
        let release = gk.handle_release_request(&req.der, NOW, &mut rng(15)).expect("release");
        let k = bob.accept_release(&msg, &req, &release.der, NOW, &mut rng(16)).expect("accept");
        assert_eq!(
            bob.open(&msg, &k).expect("open").as_slice(),
            b"cross-provider",
            "{} gatekeeper, {} clients",
            gk_p.name(),
            client_p.name()
        );
    }
}
