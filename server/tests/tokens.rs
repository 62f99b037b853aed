//! Access tokens at release against a real OpenID provider (`docs/protocol.md` §12.5, V28;
//! npm `oidc-provider`, `tests/oidc`): the server's `[[token_issuer]]`, its JWK Set cache, and
//! V26 on the token's claims, over HTTP, with the demo's SQLite store (the `jti` records, V28.8).
//!
//! Which tokens come from where:
//! - **provider-made** (client credentials, JWT access tokens): the entitled release, each
//!   rule type failing (all_of, any_of, hierarchy: clients with those claims), wrong
//!   audience (a token requested for another resource), replayed `jti` (on SQLite, and at two
//!   instances on one PostgreSQL store at once, when `EKG_TEST_POSTGRES` is set), unbound
//!   token, no issuer configured, and rotation (the provider switches keys; the server
//!   refetches);
//! - **test-signed** (what the provider cannot make on demand): expired and not-yet-valid
//!   (signed with [`oidc::KEY1`], which the provider's JWK Set publishes), wrong issuer, and
//!   unknown `kid` (a key the provider never published).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;
mod oidc;

use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::*;
use ekg_core::access::policy::AttributeValue;
use ekg_server::Running;
use ekg_server::demo::DemoFiles;
use oidc::{AUDIENCE, KEY1, KEY2, Key, Provider, UNPUBLISHED};
use serde_json::json;

/// The rotation test changes the provider's keys: it runs alone.
static KEYS: RwLock<()> = RwLock::new(());

const ATTR: &str = "https://example.com/attr";

/// The labels of every message here: one attribute of each rule type.
fn labels() -> Vec<AttributeValue> {
    ["export/value/itar", "export/value/ear", "project/value/apollo", "level/value/secret"]
        .iter()
        .map(|v| AttributeValue::parse(&format!("{ATTR}/{v}")).unwrap())
        .collect()
}

/// export (all_of), project (any_of), level (hierarchy); example.com's senders hold every
/// value; a token of `issuer` (if any) grants a value per claim.
fn policy(issuer: Option<&str>) -> String {
    let mut s = format!(
        r#"
[[attribute]]
name = "{ATTR}/export"
rule = "all_of"
values = ["itar", "ear"]

[[attribute]]
name = "{ATTR}/project"
rule = "any_of"
values = ["apollo", "gemini"]

[[attribute]]
name = "{ATTR}/level"
rule = "hierarchy"
values = ["secret", "confidential"]

[[mapping]]
domain = "example.com"
grants = ["{ATTR}/export/value/itar", "{ATTR}/export/value/ear", "{ATTR}/project/value/apollo",
          "{ATTR}/level/value/secret"]
"#
    );
    for (claim, value, grant) in [
        ("export", "itar", "export/value/itar"),
        ("export", "ear", "export/value/ear"),
        ("project", "apollo", "project/value/apollo"),
        ("level", "secret", "level/value/secret"),
        ("level", "confidential", "level/value/confidential"),
    ] {
        let Some(issuer) = issuer else { break };
        s.push_str(&format!(
            "\n[[mapping]]\ntoken_issuer = \"{issuer}\"\ngrants = [\"{ATTR}/{grant}\"]\n[mapping.claims]\n{claim} = [\"{value}\"]\n"
        ));
    }
    s
}

fn token_issuer(p: &Provider) -> String {
    let mut s = format!(
        "\n[[token_issuer]]\nissuer = \"{}\"\naudience = \"{AUDIENCE}\"\njwks_uri = \"{}\"\ndomains = [\"example.org\"]\njwks_refresh_secs = 1\n[token_issuer.subjects]\n",
        p.issuer, p.jwks_uri
    );
    for (client, _) in oidc::CLIENTS {
        let who = client.split('-').next().unwrap();
        s.push_str(&format!("\"{client}\" = \"{who}@example.org\"\n"));
    }
    s
}

/// The demo's files with the policy, trusting the provider (or no issuer at all).
fn configured(name: &str, p: &Provider, trust: bool) -> DemoFiles {
    let dir = fresh_dir(name);
    let files = demo(&dir, "");
    let mut config = std::fs::read_to_string(&files.config).unwrap();
    config.push_str(&policy(trust.then_some(p.issuer.as_str())));
    if trust {
        config.push_str(&token_issuer(p));
    }
    std::fs::write(&files.config, config).unwrap();
    files
}

/// A server on [`configured`] files.
fn server(name: &str, p: &Provider, trust: bool) -> (Running, DemoFiles) {
    let files = configured(name, p, trust);
    (start(&files), files)
}

/// alice sends a labelled message to bob and dave: the sealed message.
fn send(server: &Running, files: &DemoFiles, seed: u64) -> Vec<u8> {
    let alice = sender(files, "alice");
    let mut r = rng(seed);
    let now = now(server);
    let to = [addr("bob@example.org"), addr("dave@example.org")];
    let pending = alice.request_labelled_key(&to, &labels(), now, &mut r).unwrap();
    let (status, _, body) = post(server, "key-request", &pending.der);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (grant, ticket) = ekg_core::role::decode_issuance_response(&body).unwrap();
    let key = alice.accept_grant(&pending, &grant, &ticket, now, &mut r).unwrap();
    alice.seal(&key, b"Subject: export\r\n\r\ncontrolled\r\n", &mut r).unwrap()
}

/// `who`'s signed release request for `sealed`, carrying `token`.
fn release_request(server: &Running, files: &DemoFiles, who: &str, sealed: &[u8], token: &str, seed: u64) -> Vec<u8> {
    let r = recipient(files, "example.org", who);
    let now = now(server);
    let msg = r.receive(sealed, now).unwrap();
    r.request_release_with_token(&msg, token, now, &mut rng(seed)).unwrap().der
}

/// `who` (at example.org) asks for the key with `token`: `Ok(())` or the refusal's code.
fn release(server: &Running, files: &DemoFiles, who: &str, sealed: &[u8], token: Option<&str>) -> Result<(), String> {
    let r = recipient(files, "example.org", who);
    let mut g = rng(u64::from(who.len() as u32) ^ sealed.len() as u64);
    let now = now(server);
    let msg = r.receive(sealed, now).unwrap();
    let pending = match token {
        Some(t) => r.request_release_with_token(&msg, t, now, &mut g).unwrap(),
        None => r.request_release(&msg, now, &mut g).unwrap(),
    };
    let (status, _, body) = post(server, "release-request", &pending.der);
    if status != 200 {
        return Err(code(&body));
    }
    let key = r.accept_release(&msg, &pending, &body, now, &mut g).unwrap();
    assert_eq!(&r.open(&msg, &key).unwrap()[..], b"Subject: export\r\n\r\ncontrolled\r\n");
    Ok(())
}

fn refused(r: Result<(), String>) -> String {
    r.expect_err("refused")
}

/// A token signed by the test with `key`: bob-all's claims, `iss` the provider, `aud` the
/// gatekeeper, valid from `iat` for ten minutes, with `overrides` applied.
fn test_signed(key: Key, iat: u64, overrides: serde_json::Value) -> String {
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": key.0});
    let issuer = oidc::provider().unwrap().issuer.clone();
    let mut payload = json!({"iss": issuer, "sub": "bob-all", "aud": AUDIENCE, "iat": iat, "exp": iat + 600,
        "jti": format!("test-{iat}-{}", overrides), "export": ["itar", "ear"], "project": ["apollo"],
        "level": ["secret"]});
    for (k, v) in overrides.as_object().unwrap() {
        payload[k] = v.clone();
    }
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload.to_string()));
    let private = p().load_private_key(&ekg_testpki::rsa_key_from_seed(key.1)).unwrap();
    let sig = private.sign_pkcs1_sha256(input.as_bytes(), &mut rng(key.1)).unwrap();
    format!("{input}.{}", B64.encode(sig))
}

#[test]
fn a_labelled_key_is_released_with_an_entitling_token_and_refused_by_each_rule_without() {
    let Some(p) = oidc::provider() else { return };
    let _keys = KEYS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (s, files) = server("tokens-rules", p, true);
    let sealed = send(&s, &files, 1);
    // The certificate alone holds nothing at example.org.
    assert!(refused(release(&s, &files, "bob", &sealed, None)).starts_with("entitlement_"));
    for (client, code) in [
        ("bob-itar-only", "entitlement_all_of_unmet"),
        ("bob-other-project", "entitlement_any_of_unmet"),
        ("bob-confidential", "entitlement_hierarchy_unmet"),
    ] {
        assert_eq!(refused(release(&s, &files, "bob", &sealed, Some(&p.token(client, None)))), code, "{client}");
    }
    // A refusal records nothing: bob is still owed, and an entitling token serves.
    release(&s, &files, "bob", &sealed, Some(&p.token("bob-all", None))).unwrap();
}

#[test]
fn a_token_is_spent_once_and_serves_only_its_subject() {
    let Some(p) = oidc::provider() else { return };
    let _keys = KEYS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (s, files) = server("tokens-replay", p, true);
    let (one, two) = (send(&s, &files, 2), send(&s, &files, 3));
    let bobs = p.token("bob-all", None);
    // Unbound: bob's token in dave's request (a token taken from bob's request) maps to an
    // address dave's certificate does not hold.
    assert_eq!(refused(release(&s, &files, "dave", &one, Some(&bobs))), "token_unbound");
    release(&s, &files, "bob", &one, Some(&bobs)).unwrap();
    // Replayed: the same token for another key.
    assert_eq!(refused(release(&s, &files, "bob", &two, Some(&bobs))), "token_replayed");
    release(&s, &files, "bob", &two, Some(&p.token("bob-all", None))).unwrap();
    release(&s, &files, "dave", &two, Some(&p.token("dave-all", None))).unwrap();
}

#[test]
fn tokens_outside_their_audience_issuer_key_or_time_are_refused() {
    let Some(p) = oidc::provider() else { return };
    let _keys = KEYS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (s, files) = server("tokens-bad", p, true);
    let sealed = send(&s, &files, 4);
    let t = now(&s).secs();
    let skew = 300;
    let other = p.token("bob-all", Some("https://other.example.com/ekg"));
    for (what, token, code) in [
        ("provider-made, another audience", other, "token_audience"),
        ("test-signed, another issuer", test_signed(KEY1, t, json!({"iss": "https://id.example.net"})), "token_issuer"),
        ("test-signed, a kid never published", test_signed(UNPUBLISHED, t, json!({})), "token_key_unknown"),
        ("test-signed, expired beyond the skew", test_signed(KEY1, t - 600 - skew - 1, json!({})), "token_expired"),
        ("test-signed, issued beyond the skew", test_signed(KEY1, t + skew + 60, json!({})), "token_not_yet_valid"),
        (
            "test-signed, nbf beyond the skew",
            test_signed(KEY1, t, json!({"nbf": t + skew + 60})),
            "token_not_yet_valid",
        ),
        (
            "another audience, signed",
            test_signed(KEY1, t, json!({"aud": "https://other.example.com/ekg"})),
            "token_audience",
        ),
    ] {
        assert_eq!(refused(release(&s, &files, "bob", &sealed, Some(&token))), code, "{what}");
    }
    // The same test signing, inside the bounds, serves: the refusals above are the claims'.
    release(&s, &files, "bob", &sealed, Some(&test_signed(KEY1, t - 60, json!({})))).unwrap();
}

#[test]
fn without_a_token_issuer_a_token_is_refused() {
    let Some(p) = oidc::provider() else { return };
    let _keys = KEYS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (s, files) = server("tokens-none", p, false);
    let sealed = send(&s, &files, 5);
    assert_eq!(refused(release(&s, &files, "bob", &sealed, Some(&p.token("bob-all", None)))), "token_issuer");
}

#[test]
fn the_server_follows_the_provider_s_key_rotation() {
    let Some(p) = oidc::provider() else { return };
    let _keys = KEYS.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (s, files) = server("tokens-rotation", p, true);
    let (one, two) = (send(&s, &files, 6), send(&s, &files, 7));
    release(&s, &files, "bob", &one, Some(&p.token("bob-all", None))).unwrap();
    // The provider rotates: k2 signs, k1 is no longer published.
    p.rotate(&[KEY2]);
    let rotated = p.token("bob-all", None);
    assert!(String::from_utf8(B64.decode(rotated.split('.').next().unwrap()).unwrap()).unwrap().contains("\"k2\""));
    // Past the refresh interval (1 s), the unknown kid makes the server fetch the set again.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let outcome = release(&s, &files, "bob", &two, Some(&rotated));
    // A token under the dropped key: unknown now (the fetch just made is within the interval).
    let old = test_signed(KEY1, now(&s).secs(), json!({"sub": "dave-all", "jti": "after-rotation"}));
    let old_outcome = release(&s, &files, "dave", &two, Some(&old));
    p.rotate(&[KEY1]);
    outcome.unwrap();
    assert_eq!(refused(old_outcome), "token_key_unknown");
}

#[test]
fn a_token_is_spent_once_across_instances_on_one_postgresql_store() {
    let Some(p) = oidc::provider() else { return };
    let Some(url) = fresh_database("tokens") else { return };
    let _keys = KEYS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let files = configured("tokens-pg", p, true);
    let servers: Vec<Running> = (0..2)
        .map(|_| {
            let mut s = settings(&files);
            s.database = ekg_server::config::Database::Postgres(url.clone());
            ekg_server::start(s).expect("an instance")
        })
        .collect();
    for round in 0..3u64 {
        let (one, two) = (send(&servers[0], &files, 10 + 2 * round), send(&servers[1], &files, 11 + 2 * round));
        // One token in two requests for two keys, sent at once, one to each instance.
        let t = p.token("bob-all", None);
        let requests = [
            release_request(&servers[0], &files, "bob", &one, &t, 20 + round),
            release_request(&servers[1], &files, "bob", &two, &t, 30 + round),
        ];
        let barrier = std::sync::Barrier::new(2);
        let outcomes: Vec<(u16, String)> = std::thread::scope(|scope| {
            let handles: Vec<_> = requests
                .iter()
                .zip(&servers)
                .map(|(der, server)| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        let (status, _, body) = post(server, "release-request", der);
                        (status, if status == 200 { String::new() } else { code(&body) })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let served = outcomes.iter().filter(|(s, _)| *s == 200).count();
        let replayed = outcomes.iter().filter(|o| **o == (409, "token_replayed".to_owned())).count();
        assert_eq!((served, replayed), (1, 1), "round {round}: {outcomes:?}");
    }
}
