//! Access tokens at release end to end (`docs/protocol.md` §12.5): V28 in the gatekeeper, the
//! token's claims as entitlements for a labelled key (V26), the `jti` recorded with the
//! release in the store (V28.8), across gatekeepers sharing it.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::*;
use der::Encode;
use ekg_core::access::policy::{
    AttributeDefinition, AttributeName, AttributeValue, Condition, Policy, Rule, SubjectMapping,
};
use ekg_core::access::token::{RsaJwk, StaticTokenKeys, TokenIssuer};
use ekg_core::crypto::PrivateKey;
use ekg_core::ledger::{MemoryStore, ReleasePolicy};
use ekg_core::wire::{self, signed};
use serde_json::json;

const ISS: &str = "https://id.example.org";

fn itar() -> AttributeValue {
    AttributeValue::parse("https://example.com/attr/export/value/itar").unwrap()
}

/// export (all_of itar) is granted by a token of ISS whose `clearance` claim is `itar`, and
/// to the sender organisation's CA (so alice may label).
fn token_config() -> ekg_core::role::GatekeeperConfig {
    let mut c = config(ReleasePolicy::Once);
    let org_ca = anchor_id(&fed().sender_org.ca.issued.cert_der);
    c.attributes = Policy::new(
        vec![AttributeDefinition {
            name: AttributeName::parse("https://example.com/attr/export").unwrap(),
            rule: Rule::AllOf,
            values: vec![itar()],
        }],
        vec![
            SubjectMapping { conditions: vec![Condition::Anchor(org_ca)], grants: vec![itar()] },
            SubjectMapping {
                conditions: vec![
                    Condition::TokenIssuer(ISS.into()),
                    Condition::Claim { name: "clearance".into(), values: vec!["itar".into()] },
                ],
                grants: vec![itar()],
            },
        ],
    )
    .unwrap();
    c.token_issuers = vec![TokenIssuer {
        issuer: ISS.into(),
        audience: c.uri.clone(),
        domains: vec!["example.org".into()],
        subjects: BTreeMap::from([
            ("bob-client".to_owned(), addr("bob@example.org")),
            ("dave-client".to_owned(), addr("dave@example.org")),
        ]),
    }];
    c
}

fn issuer_key() -> Box<dyn PrivateKey> {
    p().load_private_key(&ekg_testpki::rsa_key_from_seed(28)).unwrap()
}

fn token_gatekeeper(store: MemoryStore<ekg_core::ledger::Concrete>) -> Gk {
    let gk = gatekeeper_with(token_config(), store);
    let keys = BTreeMap::from([(
        ISS.to_owned(),
        vec![RsaJwk { kid: "k1".into(), spki_der: issuer_key().public_key_spki().to_vec() }],
    )]);
    gk.crypto().set_token_keys(Arc::new(StaticTokenKeys(keys)));
    gk
}

fn token(sub: &str, jti: &str, clearance: &str) -> String {
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"});
    let aud = token_config().uri;
    let payload = json!({"iss": ISS, "sub": sub, "aud": aud, "jti": jti, "iat": NOW.secs() - 5,
                         "exp": NOW.secs() + 600, "clearance": clearance});
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload.to_string()));
    let sig = issuer_key().sign_pkcs1_sha256(input.as_bytes(), &mut rng(9)).unwrap();
    format!("{input}.{}", B64.encode(sig))
}

/// `who`'s release request over `ticket`, carrying `token`.
fn release_request(who: &str, ticket: &[u8], token: Option<&str>, seed: u64) -> Vec<u8> {
    let rr = wire::ReleaseRequest {
        version: 0,
        ticket: <wire::ContentInfo as der::Decode>::from_der(ticket).unwrap(),
        nonce: der::asn1::OctetString::new(seed.to_be_bytes().repeat(2)).unwrap(),
        request_time: der::asn1::GeneralizedTime::from_unix_duration(core::time::Duration::from_secs(NOW.secs()))
            .unwrap(),
        access_token: token.map(|t| der::asn1::Ia5String::new(t).unwrap()),
    };
    let cred = credential(fed().recipient_org.user(who));
    signed::sign(p(), &cred, wire::oid::CT_RELEASE_REQUEST, &rr.to_der().unwrap(), NOW, &mut rng(seed)).unwrap()
}

fn labelled(gk: &mut Gk, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let to = [addr("bob@example.org"), addr("dave@example.org")];
    let pending = alice().request_labelled_key(&to, &[itar()], NOW, &mut r).unwrap();
    gk.handle_key_request(&pending.der, NOW, &mut r).unwrap().ticket
}

fn release(gk: &mut Gk, who: &str, ticket: &[u8], token: Option<&str>, seed: u64) -> Option<&'static str> {
    code(gk.handle_release_request(&release_request(who, ticket, token, seed), NOW, &mut rng(seed)))
}

#[test]
fn a_labelled_key_is_released_with_an_entitling_token_and_refused_without() {
    let mut gk = token_gatekeeper(MemoryStore::new());
    let ticket = labelled(&mut gk, 1);
    assert_eq!(release(&mut gk, "bob@example.org", &ticket, None, 2), Some("entitlement_all_of_unmet"));
    let lacking = token("bob-client", "j-lacking", "none");
    assert_eq!(release(&mut gk, "bob@example.org", &ticket, Some(&lacking), 3), Some("entitlement_all_of_unmet"));
    // The refusal recorded nothing: the same token is not spent, the address still owed.
    let entitled = token("bob-client", "j-bob", "itar");
    assert_eq!(release(&mut gk, "bob@example.org", &ticket, Some(&entitled), 4), None);
}

#[test]
fn a_token_moved_into_another_party_s_request_is_unbound() {
    let mut gk = token_gatekeeper(MemoryStore::new());
    let ticket = labelled(&mut gk, 5);
    let bobs = token("bob-client", "j-bob", "itar");
    assert_eq!(release(&mut gk, "dave@example.org", &ticket, Some(&bobs), 6), Some("token_unbound"));
}

#[test]
fn a_token_is_spent_by_its_release_even_at_another_gatekeeper_on_the_same_store() {
    let store = MemoryStore::new();
    let mut first = token_gatekeeper(store.clone());
    let mut second = token_gatekeeper(store.clone());
    let (one, two) = (labelled(&mut first, 7), labelled(&mut first, 8));
    let t = token("bob-client", "j-once", "itar");
    assert_eq!(release(&mut first, "bob@example.org", &one, Some(&t), 9), None);
    // The same token for another key, at the other gatekeeper: replayed.
    assert_eq!(release(&mut second, "bob@example.org", &two, Some(&t), 10), Some("token_replayed"));
    // A fresh token serves.
    let fresh = token("bob-client", "j-twice", "itar");
    assert_eq!(release(&mut second, "bob@example.org", &two, Some(&fresh), 11), None);
}
