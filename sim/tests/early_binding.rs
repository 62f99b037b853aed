//! The early-binding envelope (one KeyTransRecipientInfo per recipient) used by the
//! simulator and the benches for the comparison with the gatekeeper.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use ekg_core::crypto::pki::Credential;
use ekg_core::crypto::{CryptoProvider, default_provider};
use ekg_core::wire::oid;
use ekg_sim::smime as envelope;
use ekg_testpki::{Federation, Issued};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn p() -> &'static dyn CryptoProvider {
    default_provider()
}

fn fed() -> &'static Federation {
    Federation::shared()
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn credential(i: &Issued) -> Credential {
    Credential::from_der(p(), &i.cert_der, &i.chain_der, &i.key_pkcs8).expect("credential")
}

#[test]
fn every_listed_recipient_opens_and_nobody_else() {
    let fed = fed();
    let bob = credential(fed.recipient_org.user("bob@example.org"));
    let dave = credential(fed.recipient_org.user("dave@example.org"));
    let carol = credential(fed.sender_org.user("carol@example.com"));
    let body = b"Subject: early\r\n\r\nwrapped to each recipient at send time\r\n";
    let der = envelope::seal_to_all(p(), &[bob.certificate(), dave.certificate()], oid::ID_DATA, body, &mut rng(1))
        .expect("seal");
    for who in [&bob, &dave] {
        let (ct, content) = envelope::open_as_one_of(p(), &der, who, 1 << 20, &mut rng(2)).expect("open");
        assert_eq!(ct, oid::ID_DATA);
        assert_eq!(content.as_slice(), body);
    }
    let err = envelope::open_as_one_of(p(), &der, &carol, 1 << 20, &mut rng(3)).unwrap_err();
    assert_eq!(err.code(), "not_for_this_recipient");
    // The EKG profile's own opener refuses a multi-recipient envelope.
    let err = ekg_core::wire::envelope::open(p(), &der, &bob, 1 << 20, &mut rng(4)).unwrap_err();
    assert_eq!(err.code(), "profile_violation");
}

#[test]
fn size_grows_by_one_recipient_info_per_recipient() {
    let fed = fed();
    let bob = credential(fed.recipient_org.user("bob@example.org"));
    let one = envelope::seal_to_all(p(), &[bob.certificate()], oid::ID_DATA, b"x", &mut rng(5)).expect("one");
    let two = envelope::seal_to_all(p(), &[bob.certificate(), bob.certificate()], oid::ID_DATA, b"x", &mut rng(6))
        .expect("two");
    // A KTRI is the 256-byte wrapped key plus identifiers and algorithm parameters.
    let per = two.len() - one.len();
    assert!((256..600).contains(&per), "one recipient info is {per} bytes");
    let err = envelope::seal_to_all(p(), &[], oid::ID_DATA, b"x", &mut rng(7)).unwrap_err();
    assert_eq!(err.code(), "profile_violation");
}

#[test]
fn tampered_ciphertext_is_refused() {
    let fed = fed();
    let bob = credential(fed.recipient_org.user("bob@example.org"));
    let mut der = envelope::seal_to_all(p(), &[bob.certificate()], oid::ID_DATA, &[0u8; 64], &mut rng(8)).unwrap();
    let n = der.len();
    der[n - 20] ^= 1; // inside the tag
    let err = envelope::open_as_one_of(p(), &der, &bob, 1 << 20, &mut rng(9)).unwrap_err();
    assert_eq!(err.code(), "authentication_failed");
}
