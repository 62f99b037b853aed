//! CMS profile violations, crafted by editing a valid SignedData and re-signing it with the
//! same key, so that only the property under test is wrong.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use cms::content_info::CmsVersion;
use cms::signed_data::{SignedData, SignerInfo};
use common::*;
use der::asn1::{ObjectIdentifier, SetOfVec};
use der::{Any, Decode, Encode};
use ekg_core::ledger::ReleasePolicy;
use ekg_core::wire::signed;
use ekg_core::wire::{ContentInfo, oid};
use x509_cert::attr::Attribute;

fn valid_request() -> Vec<u8> {
    alice().request_key(&[addr("bob@example.org")], NOW, &mut rng(700)).expect("request").der
}

/// Parses `der`, lets `edit` change the SignedData, re-signs the (possibly edited) signed
/// attributes with alice's key, and re-encodes.
fn craft(der: &[u8], edit: impl FnOnce(&mut SignedData)) -> Vec<u8> {
    let ci = ContentInfo::from_der(der).expect("ci");
    let mut sd: SignedData = ci.content.decode_as().expect("sd");
    edit(&mut sd);
    let alice = credential(fed().sender_org.user("alice@example.com"));
    let mut infos: Vec<SignerInfo> = sd.signer_infos.0.iter().cloned().collect();
    for si in &mut infos {
        if let Some(attrs) = &si.signed_attrs {
            let sig = alice.key().sign_pkcs1_sha256(&attrs.to_der().expect("attrs"), &mut rng(701)).expect("sign");
            si.signature = der::asn1::OctetString::new(sig).expect("sig");
        }
    }
    sd.signer_infos = cms::signed_data::SignerInfos::try_from(infos).expect("infos");
    ContentInfo { content_type: ci.content_type, content: Any::encode_from(&sd).expect("any") }.to_der().expect("der")
}

fn issue(der: &[u8]) -> Option<&'static str> {
    code(gatekeeper(ReleasePolicy::Once).handle_key_request(der, NOW, &mut rng(702)))
}

fn set_attr(si: &mut SignerInfo, attr_oid: ObjectIdentifier, value: Any) {
    let attrs = si.signed_attrs.as_ref().expect("attrs");
    let mut v: Vec<Attribute> = attrs.iter().filter(|a| a.oid != attr_oid).cloned().collect();
    let mut values = SetOfVec::new();
    values.insert(value).expect("value");
    v.push(Attribute { oid: attr_oid, values });
    si.signed_attrs = Some(SetOfVec::try_from(v).expect("set"));
}

fn first_signer(sd: &mut SignedData) -> SignerInfo {
    sd.signer_infos.0.iter().next().cloned().expect("signer")
}

fn replace_signer(sd: &mut SignedData, si: SignerInfo) {
    sd.signer_infos = cms::signed_data::SignerInfos::try_from(vec![si]).expect("infos");
}

#[test]
fn re_signing_an_unchanged_request_keeps_it_valid() {
    assert_eq!(issue(&craft(&valid_request(), |_| {})), None);
}

#[test]
fn v2_wrong_signed_data_version_is_unsupported() {
    assert_eq!(issue(&craft(&valid_request(), |sd| sd.version = CmsVersion::V1)), Some("unsupported_version"));
}

#[test]
fn v2_signer_info_version_must_match_its_identifier() {
    let der = craft(&valid_request(), |sd| {
        let mut si = first_signer(sd);
        si.version = CmsVersion::V3;
        replace_signer(sd, si);
    });
    assert_eq!(issue(&der), Some("unsupported_version"));
}

#[test]
fn v2_other_digest_or_signature_algorithms_are_unsupported() {
    let sha1 = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
    let der = craft(&valid_request(), |sd| {
        let mut si = first_signer(sd);
        si.digest_alg.oid = sha1;
        replace_signer(sd, si);
    });
    assert_eq!(issue(&der), Some("unsupported_algorithm"));
    let pss = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
    let der = craft(&valid_request(), |sd| {
        let mut si = first_signer(sd);
        si.signature_algorithm.oid = pss;
        replace_signer(sd, si);
    });
    assert_eq!(issue(&der), Some("unsupported_algorithm"));
}

#[test]
fn v2_two_signers_detached_content_or_crls_violate_the_profile() {
    let der = craft(&valid_request(), |sd| {
        let mut si = first_signer(sd);
        let other = {
            let mut o = si.clone();
            o.version = CmsVersion::V1;
            o
        };
        si.unsigned_attrs = None;
        let mut two = vec![si, other];
        two[1].digest_alg.parameters = Some(Any::null());
        sd.signer_infos = cms::signed_data::SignerInfos::try_from(two).expect("two");
    });
    assert_eq!(issue(&der), Some("profile_violation"));
    let der = craft(&valid_request(), |sd| sd.encap_content_info.econtent = None);
    assert_eq!(issue(&der), Some("profile_violation"));
    let der = craft(&valid_request(), |sd| {
        sd.crls = Some(cms::revocation::RevocationInfoChoices(SetOfVec::new()));
    });
    assert_eq!(issue(&der), Some("profile_violation"));
}

#[test]
fn v2_missing_signed_attributes_violate_the_profile() {
    let der = craft(&valid_request(), |sd| {
        let mut si = first_signer(sd);
        let attrs = si.signed_attrs.take().expect("attrs");
        let kept: Vec<Attribute> = attrs.iter().filter(|a| a.oid != oid::ATTR_SIGNING_TIME).cloned().collect();
        si.signed_attrs = Some(SetOfVec::try_from(kept).expect("set"));
        replace_signer(sd, si);
    });
    assert_eq!(issue(&der), Some("profile_violation"));
}

#[test]
fn v3_a_content_type_attribute_that_differs_is_rejected() {
    let der = craft(&valid_request(), |sd| {
        let mut si = first_signer(sd);
        set_attr(&mut si, oid::ATTR_CONTENT_TYPE, Any::encode_from(&oid::CT_TICKET).expect("oid"));
        replace_signer(sd, si);
    });
    assert_eq!(issue(&der), Some("content_type_mismatch"));
}

#[test]
fn v2_a_request_under_another_content_type_is_unexpected() {
    let der = craft(&valid_request(), |sd| {
        sd.encap_content_info.econtent_type = oid::CT_RELEASE_REQUEST;
        let mut si = first_signer(sd);
        set_attr(&mut si, oid::ATTR_CONTENT_TYPE, Any::encode_from(&oid::CT_RELEASE_REQUEST).expect("oid"));
        replace_signer(sd, si);
    });
    assert_eq!(issue(&der), Some("unexpected_content_type"));
    // And the same bytes are a well-formed release request as far as SignedData goes.
    assert!(signed::open(p(), &der, oid::CT_RELEASE_REQUEST, 1 << 20).is_ok());
}

#[test]
fn v7_rsa_keys_below_2048_bits_are_unsupported() {
    // A 1024-bit key: refused when loaded, and its signatures refused when verified.
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let key = rsa::PrivateKey::new(&mut rng(703), 1024).expect("key");
    let pkcs8 = key.to_pkcs8_der().expect("pkcs8");
    assert_eq!(code(p().load_private_key(pkcs8.as_bytes())), Some("unsupported_key"));
    let spki = key.to_public_key().to_public_key_der().expect("spki");
    let sig = key.pkcs1v15_sign::<sha2::Sha256>(b"m").expect("sig");
    assert_eq!(code(p().verify_pkcs1_sha256(spki.as_bytes(), b"m", &sig)), Some("unsupported_key"));
}
