//! The gatekeeper's keys in a PKCS#11 token (SoftHSM2; issue 27, item 1): the signing key
//! signs tickets and releases in the token, the storage-epoch keys are token objects, and
//! destroying an epoch destroys its object.
//!
//! Needs `EKG_PKCS11_MODULE`, `EKG_PKCS11_TOKEN`, `EKG_PKCS11_PIN` and `SOFTHSM2_CONF`, as
//! `scripts/test` sets them (an initialised token in a temporary directory). Skipped with a
//! message without them, unless `EKG_REQUIRE_PKCS11` is set (CI), where it fails.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use common::*;
use ekg_core::crypto::pki::Credential;
use ekg_core::role::{Gatekeeper, StorageKeys};
use ekg_core::{Rejection, StorageEpoch, UnixTime};
use ekg_server::custody::pkcs11::{Token, TokenEpochKeys, TokenSigningKey};
use ekg_server::demo::DemoFiles;
use ekg_server::store::SqliteStore;

struct Env {
    module: String,
    token: String,
    pin: String,
}

fn env() -> Option<Env> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let module = var("EKG_PKCS11_MODULE").unwrap_or_else(|| "/usr/lib/softhsm/libsofthsm2.so".into());
    match (std::path::Path::new(&module).exists(), var("EKG_PKCS11_TOKEN"), var("EKG_PKCS11_PIN")) {
        (true, Some(token), Some(pin)) => Some(Env { module, token, pin }),
        (present, ..) => {
            let why = if present {
                "EKG_PKCS11_TOKEN and EKG_PKCS11_PIN are not set (scripts/test sets them)"
            } else {
                "no PKCS#11 module (apt-get install softhsm2)"
            };
            assert!(std::env::var_os("EKG_REQUIRE_PKCS11").is_none(), "EKG_REQUIRE_PKCS11 is set and {why}");
            eprintln!("SKIPPED: the PKCS#11 tests: {why}");
            None
        }
    }
}

/// Imports the demo gatekeeper's private key into the token under `label`.
fn import_signing_key(env: &Env, files: &DemoFiles, label: &str) {
    let out = std::process::Command::new("softhsm2-util")
        .args(["--import", &files.pki.join("example.com/gatekeeper.key").to_string_lossy()])
        .args(["--token", &env.token, "--label", label, "--id", &hex::encode(label)])
        .args(["--pin", &env.pin])
        .output()
        .expect("softhsm2-util");
    assert!(out.status.success(), "softhsm2-util --import: {}", String::from_utf8_lossy(&out.stderr));
}

fn wall_clock() -> UnixTime {
    UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
}

#[test]
fn issuance_and_release_with_the_signing_key_and_epoch_keys_in_the_token() {
    let Some(env) = env() else { return };
    let dir = fresh_dir("pkcs11");
    let files = demo(&dir, "");
    let run = format!("{}-{}", std::process::id(), wall_clock().secs());
    let label = format!("ekg-gatekeeper-{run}");
    import_signing_key(&env, &files, &label);
    let token = Token::open(std::path::Path::new(&env.module), &env.token, &env.pin).unwrap();

    let s = settings(&files);
    let software = &s.credential;
    let spki = der::Encode::to_der(software.certificate().tbs_certificate().subject_public_key_info()).unwrap();
    let key = TokenSigningKey::new(Arc::clone(&token), &label, spki).unwrap();
    let credential =
        Credential::with_key(s.provider, software.certificate_der(), software.chain_der(), Box::new(key)).unwrap();
    let prefix = format!("ekg-epoch-{run}-");
    let keys = TokenEpochKeys::new(Arc::clone(&token), prefix.clone(), None);
    let store = SqliteStore::open(&dir.join("ekg.db"), s.gatekeeper.ledger_config()).unwrap();
    let epoch_secs = s.gatekeeper.storage_epoch_secs;
    let mut gk =
        Gatekeeper::new(s.provider, s.gatekeeper, credential, Box::new(keys) as Box<dyn StorageKeys>, store).unwrap();

    // alice gets a key (ticket signed in the token, key wrapped under a token epoch key);
    // bob gets it released (unwrapped in the token, release signed in the token) and reads.
    let now = wall_clock();
    let alice = sender(&files, "alice");
    let mut r = rng(1);
    let mut sealed = Vec::new();
    for i in 0..2 {
        let pending = alice.request_key(&[addr("bob@example.org")], now, &mut r).unwrap();
        let issuance = gk.handle_key_request(&pending.der, now, &mut r).unwrap();
        let key = alice.accept_grant(&pending, &issuance.grant, &issuance.ticket, now, &mut r).unwrap();
        sealed.push(alice.seal(&key, format!("Subject: hsm {i}\r\n\r\nhello\r\n").as_bytes(), &mut r).unwrap());
    }
    let epoch = StorageEpoch::of(now, epoch_secs);
    assert_eq!(gk.crypto().storage_keys().epochs().unwrap(), vec![epoch]);
    let bob = recipient(&files, "example.org", "bob");
    let msg = bob.receive(&sealed[0], now).unwrap();
    let pending = bob.request_release(&msg, now, &mut r).unwrap();
    let release = gk.handle_release_request(&pending.der, now, &mut r).unwrap();
    let key = bob.accept_release(&msg, &pending, &release.der, now, &mut r).unwrap();
    assert_eq!(&bob.open(&msg, &key).unwrap()[..], b"Subject: hsm 0\r\n\r\nhello\r\n");

    // The epoch's object destroyed: the other key is refused, nothing recorded.
    assert_eq!(gk.crypto().storage_keys().destroy_epochs_before(epoch + 1).unwrap(), vec![epoch]);
    assert_eq!(gk.crypto().storage_keys().epochs().unwrap(), Vec::<u64>::new());
    let records = gk.store().records().unwrap().len();
    let msg = bob.receive(&sealed[1], now).unwrap();
    let pending = bob.request_release(&msg, now, &mut r).unwrap();
    let refused = gk.handle_release_request(&pending.der, now, &mut r).unwrap_err();
    assert_eq!(refused.rejection(), Rejection::KeyDestroyed, "{refused}");
    assert_eq!(gk.store().records().unwrap().len(), records);
    let token_keys = TokenEpochKeys::new(token, prefix, None);
    assert!(token_keys.epochs().unwrap().is_empty(), "the object is gone from the token");
}

#[test]
fn the_token_is_shared_by_threads_through_its_session_pool() {
    let Some(env) = env() else { return };
    let token = Token::open(std::path::Path::new(&env.module), &env.token, &env.pin).unwrap();
    let keys = Arc::new(TokenEpochKeys::new(token, format!("ekg-threads-{}-", std::process::id()), None));
    let p = p();
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let keys = Arc::clone(&keys);
            std::thread::spawn(move || {
                let mut r = rng(t);
                for i in 0..25u8 {
                    let key = ekg_core::OneTimeKey::from_bytes([i; 32]);
                    let stored = keys.wrap(p, 7, &key, &mut r).unwrap();
                    assert_eq!(keys.unwrap(p, &stored).unwrap(), key);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(keys.epochs().unwrap(), vec![7], "one key for the epoch, whichever thread made it");
    keys.destroy_epochs_before(8).unwrap();
}

#[test]
fn the_server_configured_with_gatekeeper_pkcs11_issues_and_releases_over_http() {
    let Some(env) = env() else { return };
    let dir = fresh_dir("pkcs11-config");
    let files = demo(&dir, "");
    let run = format!("{}-{}", std::process::id(), wall_clock().secs());
    let label = format!("ekg-served-{run}");
    import_signing_key(&env, &files, &label);
    let pin = dir.join("token.pin");
    ekg_server::files::write_secret(&pin, format!("{}\n", env.pin).as_bytes()).unwrap();
    let text = std::fs::read_to_string(&files.config).unwrap();
    let text = text
        .replace("key = \"pki/example.com/gatekeeper.key\"\n", "")
        .replace("storage_keys = \"storage-keys\"\n", "")
        .replacen(
            "\n[[sender]]",
            &format!(
                "\n[gatekeeper.pkcs11]\nmodule = {:?}\ntoken = {:?}\npin_file = \"token.pin\"\nsigning_key = {label:?}\n\
                 storage_key_prefix = \"ekg-served-epoch-{run}-\"\n\n[[sender]]",
                env.module, env.token
            ),
            1,
        );
    std::fs::write(&files.config, text).unwrap();
    let server = start(&files);
    let (sealed, plaintext) = send(&server, &files, &["bob@example.org"], 1);
    let bob = recipient(&files, "example.org", "bob");
    assert_eq!(fetch(&server, &bob, &sealed, 2).unwrap(), plaintext);
    // Its one recipient served, the key is gone (policy once, no retention).
    assert_eq!(fetch(&server, &bob, &sealed, 3).unwrap_err().1, "key_destroyed");
    server.stop().unwrap();
    assert!(!dir.join("storage-keys").exists(), "no epoch key file: the epoch keys are in the token");
}
