use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use der::Decode;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};

use super::*;
use crate::crypto::{PrivateKey, default_provider};

const ISS: &str = "https://id.example.org";
const AUD: &str = "https://ekg.example.com/";
const NOW: u64 = 1_800_000_000;
const SKEW: u64 = 300;

fn addr(a: &str) -> EmailAddress {
    EmailAddress::parse(a).expect("address")
}

fn key(seed: u64) -> Box<dyn PrivateKey> {
    default_provider().load_private_key(&ekg_testpki::rsa_key_from_seed(seed)).expect("key")
}

/// The JWK of a key, as a provider would publish it.
fn jwk(key: &dyn PrivateKey, kid: &str) -> Value {
    let info = spki::SubjectPublicKeyInfoRef::try_from(key.public_key_spki()).expect("spki");
    let rsa = jwt::RsaPublicKey::from_der(info.subject_public_key.raw_bytes()).expect("rsa");
    json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
           "n": B64.encode(rsa.modulus.as_bytes()), "e": B64.encode(rsa.public_exponent.as_bytes())})
}

fn sign(key: &dyn PrivateKey, header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload.to_string()));
    let sig = key.sign_pkcs1_sha256(input.as_bytes(), &mut ChaCha20Rng::seed_from_u64(1)).expect("sign");
    format!("{input}.{}", B64.encode(sig))
}

fn header() -> Value {
    json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"})
}

fn payload() -> Value {
    json!({"iss": ISS, "sub": "bob-client", "aud": AUD, "jti": "j-1", "iat": NOW - 10, "exp": NOW + 600,
           "clearance": "secret", "groups": ["itar", "eu"], "email": "carol@example.org"})
}

struct Setup {
    key: Box<dyn PrivateKey>,
    keys: StaticTokenKeys,
    issuers: Vec<TokenIssuer>,
}

fn setup() -> Setup {
    let key = key(11);
    let jwks = json!({"keys": [jwk(key.as_ref(), "k1")]}).to_string();
    let keys = StaticTokenKeys(BTreeMap::from([(ISS.to_owned(), parse_jwks(jwks.as_bytes()).expect("jwks"))]));
    let issuers = vec![TokenIssuer {
        issuer: ISS.into(),
        audience: AUD.into(),
        domains: vec!["example.org".into()],
        subjects: BTreeMap::from([
            ("bob-client".to_owned(), addr("bob@example.org")),
            ("carol-client".to_owned(), addr("carol@example.org")),
        ]),
    }];
    Setup { key, keys, issuers }
}

fn check(s: &Setup, token: &str, listed: &[&str]) -> Result<VerifiedToken> {
    let listed: Vec<EmailAddress> = listed.iter().map(|a| addr(a)).collect();
    let context = TokenContext { issuers: &s.issuers, listed: &listed, skew_secs: SKEW, max_lifetime_secs: 86_400 };
    verify(default_provider(), token, &context, &s.keys, UnixTime(NOW))
}

fn code(r: Result<VerifiedToken>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// The token with one payload field replaced (`Value::Null`: removed), signed by the key.
fn with(s: &Setup, field: &str, value: Value) -> String {
    let mut p = payload();
    match value {
        Value::Null => p.as_object_mut().map(|o| o.remove(field)),
        v => p.as_object_mut().map(|o| o.insert(field.to_owned(), v)),
    };
    sign(s.key.as_ref(), &header(), &p)
}

#[test]
fn a_valid_token_gives_its_facts_the_mapped_address_and_its_jti_record() {
    let s = setup();
    let v = check(&s, &sign(s.key.as_ref(), &header(), &payload()), &["bob@example.org"]).expect("valid");
    assert_eq!(v.address, addr("bob@example.org"));
    assert_eq!((v.facts.issuer.as_str(), v.facts.subject.as_str()), (ISS, "bob-client"));
    assert_eq!(v.facts.claims["clearance"], vec!["secret".to_owned()]);
    assert_eq!(v.facts.claims["groups"], vec!["itar".to_owned(), "eu".to_owned()]);
    assert_eq!(v.used, TokenUse { issuer: ISS.into(), jti: "j-1".into(), keep_until: UnixTime(NOW + 600 + SKEW) });
}

#[test]
fn form_signature_issuer_and_key_failures_have_their_codes() {
    let s = setup();
    let good = sign(s.key.as_ref(), &header(), &payload());
    let (head, rest) = good.split_once('.').expect("parts");
    let (_, sig) = rest.split_once('.').expect("parts");
    let forged = format!("{head}.{}.{sig}", B64.encode(with_sub("carol-client").to_string()));
    assert_eq!(code(check(&s, &forged, &["carol@example.org"])), "token_invalid");
    assert_eq!(code(check(&s, "a.b", &["bob@example.org"])), "token_invalid");
    let none = sign(s.key.as_ref(), &json!({"alg": "none", "typ": "at+jwt", "kid": "k1"}), &payload());
    assert_eq!(code(check(&s, &none, &["bob@example.org"])), "token_invalid");
    let id_token = sign(s.key.as_ref(), &json!({"alg": "RS256", "typ": "JWT", "kid": "k1"}), &payload());
    assert_eq!(code(check(&s, &id_token, &["bob@example.org"])), "token_invalid");
    assert_eq!(code(check(&s, &with(&s, "jti", Value::Null), &["bob@example.org"])), "token_invalid");
    let other_issuer = with(&s, "iss", json!("https://evil.example.net"));
    assert_eq!(code(check(&s, &other_issuer, &["bob@example.org"])), "token_issuer");
    // The issuer is trusted for example.org only: not for a listed address elsewhere.
    assert_eq!(code(check(&s, &good, &["bob@example.com"])), "token_issuer");
    let unknown_kid = sign(s.key.as_ref(), &json!({"alg": "RS256", "typ": "at+jwt", "kid": "k2"}), &payload());
    assert_eq!(code(check(&s, &unknown_kid, &["bob@example.org"])), "token_key_unknown");
    // Signed by another key under the known kid.
    let other = key(12);
    assert_eq!(code(check(&s, &sign(other.as_ref(), &header(), &payload()), &["bob@example.org"])), "token_invalid");
}

fn with_sub(sub: &str) -> Value {
    let mut p = payload();
    p["sub"] = json!(sub);
    p
}

#[test]
fn audience_and_time_are_checked_with_the_skew_at_the_bounds() {
    let s = setup();
    let bob = ["bob@example.org"];
    assert_eq!(code(check(&s, &with(&s, "aud", json!("https://other.example/")), &bob)), "token_audience");
    assert_eq!(code(check(&s, &with(&s, "aud", json!(["x", AUD])), &bob)), "ok");
    assert_eq!(code(check(&s, &with(&s, "exp", json!(NOW - SKEW)), &bob)), "token_expired");
    assert_eq!(code(check(&s, &with(&s, "exp", json!(NOW - SKEW + 1)), &bob)), "ok");
    assert_eq!(code(check(&s, &with(&s, "nbf", json!(NOW + SKEW + 1)), &bob)), "token_not_yet_valid");
    assert_eq!(code(check(&s, &with(&s, "nbf", json!(NOW + SKEW)), &bob)), "ok");
    assert_eq!(code(check(&s, &with(&s, "iat", json!(NOW + SKEW + 1)), &bob)), "token_not_yet_valid");
    let long = {
        let mut p = payload();
        p["iat"] = json!(NOW - 10);
        p["exp"] = json!(NOW - 10 + 86_401);
        sign(s.key.as_ref(), &header(), &p)
    };
    assert_eq!(code(check(&s, &long, &bob)), "token_invalid");
}

#[test]
fn the_address_comes_from_the_subject_map_never_from_an_email_claim() {
    let s = setup();
    // Bob's token (its email claim says carol) moved into Carol's request: unbound.
    let bobs = sign(s.key.as_ref(), &header(), &payload());
    assert_eq!(code(check(&s, &bobs, &["carol@example.org"])), "token_unbound");
    // An unmapped subject whose email claim names the listed address: unbound (nOAuth).
    let unmapped = sign(s.key.as_ref(), &header(), &with_sub("mallory-client"));
    assert_eq!(code(check(&s, &unmapped, &["carol@example.org"])), "token_unbound");
    // With both listed, only the mapped address is the token's.
    let v = check(&s, &bobs, &["carol@example.org", "bob@example.org"]).expect("valid");
    assert_eq!(v.address, addr("bob@example.org"));
}

#[test]
fn a_key_set_keeps_only_usable_rsa_signing_keys() {
    let good = key(11);
    let mut weak = jwk(good.as_ref(), "weak");
    weak["n"] = json!(B64.encode([0xC5u8; 128])); // 1024 bits
    let mut enc = jwk(good.as_ref(), "enc");
    enc["use"] = json!("enc");
    let mut ps = jwk(good.as_ref(), "ps");
    ps["alg"] = json!("PS256");
    let ec = json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"});
    let set = json!({"keys": [weak, enc, ps, ec, jwk(good.as_ref(), "k1"), jwk(good.as_ref(), "k1")]});
    let keys = parse_jwks(set.to_string().as_bytes()).expect("jwks");
    assert_eq!(keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["k1"]);
    assert_eq!(keys[0].spki_der, good.public_key_spki());
    assert_eq!(parse_jwks(b"not json").map_err(|e| e.code()), Err("token_key_unknown"));
}

#[test]
fn an_issuer_mapping_a_subject_outside_its_domains_is_refused_at_start() {
    let mut s = setup();
    assert!(s.issuers[0].validate().is_ok());
    s.issuers[0].subjects.insert("x".into(), addr("x@example.com"));
    assert_eq!(s.issuers[0].validate().map_err(|e| e.code()), Err("invalid_configuration"));
}
