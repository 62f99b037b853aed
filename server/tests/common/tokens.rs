//! Access tokens for the store tests (V28): one issuer trusted for example.org whose subject
//! `bob-client` is bob@example.org, its RSA key, and JWTs signed with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use ekg_core::UnixTime;
use ekg_core::access::token::jwt::b64url;
use ekg_core::access::token::{RsaJwk, StaticTokenKeys, TokenIssuer};
use ekg_core::crypto::PrivateKey;
use ekg_core::ledger::{Concrete, Store};
use ekg_core::role::{Gatekeeper, StorageKey};
use ekg_server::demo::DemoFiles;

use super::{addr, p, rng, settings};

/// The issuer.
pub const ISS: &str = "https://id.example.org";

/// How long a token lives (`exp - iat`).
pub const LIFETIME: u64 = 600;

fn issuer_key() -> Box<dyn PrivateKey> {
    // Made once per test process: an RSA key generation per token would dominate the tests.
    static PKCS8: std::sync::OnceLock<zeroize::Zeroizing<Vec<u8>>> = std::sync::OnceLock::new();
    p().load_private_key(PKCS8.get_or_init(|| ekg_testpki::rsa_key_from_seed(28))).unwrap()
}

/// The demo gatekeeper on `store`, trusting [`ISS`] for example.org (`bob-client` is bob),
/// with `adjust` applied to its configuration first.
pub fn token_gatekeeper<S: Store<Concrete>>(
    files: &DemoFiles,
    store: S,
    adjust: impl FnOnce(&mut ekg_core::role::GatekeeperConfig),
) -> Gatekeeper<S> {
    let mut s = settings(files);
    s.gatekeeper.token_issuers = vec![TokenIssuer {
        issuer: ISS.into(),
        audience: s.gatekeeper.uri.clone(),
        domains: vec!["example.org".into()],
        subjects: BTreeMap::from([("bob-client".to_owned(), addr("bob@example.org"))]),
    }];
    adjust(&mut s.gatekeeper);
    let gk = Gatekeeper::new(p(), s.gatekeeper, s.credential, StorageKey::from_bytes([7; 32]), store).unwrap();
    let keys = BTreeMap::from([(
        ISS.to_owned(),
        vec![RsaJwk { kid: "k1".into(), spki_der: issuer_key().public_key_spki().to_vec() }],
    )]);
    gk.crypto().set_token_keys(Arc::new(StaticTokenKeys(keys)));
    gk
}

/// A token of [`ISS`] for `sub`, identified by `jti`, issued at `now` for [`LIFETIME`]
/// seconds, for the gatekeeper of `files`.
pub fn token(files: &DemoFiles, sub: &str, jti: &str, now: UnixTime) -> String {
    let aud = settings(files).gatekeeper.uri;
    let header = serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"});
    let payload = serde_json::json!({"iss": ISS, "sub": sub, "aud": aud, "jti": jti,
                                     "iat": now.secs(), "exp": now.secs() + LIFETIME});
    let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(payload.to_string().as_bytes()));
    let sig = issuer_key().sign_pkcs1_sha256(input.as_bytes(), &mut rng(9)).unwrap();
    format!("{input}.{}", b64url(&sig))
}
