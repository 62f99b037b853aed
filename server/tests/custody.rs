//! Storage-key epochs on SQLite with epoch key files (issue 27, item 2): a key whose epoch's
//! key was destroyed is unrecoverable from any copy of the database, and is refused, not
//! served, if it is still asked for.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use ekg_core::ledger::Record;
use ekg_core::role::{Gatekeeper, SendKey, StorageKey, StorageKeys};
use ekg_core::{OneTimeKey, Rejection, StorageEpoch, StoredKey, UnixTime};
use ekg_server::custody::EpochKeyFiles;
use ekg_server::demo::DemoFiles;
use ekg_server::store::SqliteStore;

const EPOCH_SECS: u64 = 600;
const LIFETIME_SECS: u64 = 3600;

fn wall_clock() -> UnixTime {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // The start of an epoch, so that the test's times fall where it says.
    UnixTime(secs - secs % EPOCH_SECS)
}

fn gatekeeper(files: &DemoFiles, db: &Path, keys: &Path) -> Gatekeeper<SqliteStore> {
    let mut s = settings(files);
    s.gatekeeper.ticket_lifetime_secs = LIFETIME_SECS;
    s.gatekeeper.storage_epoch_secs = EPOCH_SECS;
    let store = SqliteStore::open(db, s.gatekeeper.ledger_config()).unwrap();
    let keys = EpochKeyFiles::open(keys, None).unwrap();
    Gatekeeper::new(s.provider, s.gatekeeper, s.credential, Box::new(keys) as Box<dyn StorageKeys>, store).unwrap()
}

/// alice asks `gk` for a key for bob at `now`: the key she got.
fn issue(gk: &mut Gatekeeper<SqliteStore>, files: &DemoFiles, now: UnixTime, seed: u64) -> (SendKey, Vec<u8>) {
    let alice = sender(files, "alice");
    let mut r = rng(seed);
    let pending = alice.request_key(&[addr("bob@example.org")], now, &mut r).unwrap();
    let issuance = gk.handle_key_request(&pending.der, now, &mut r).unwrap();
    let key = alice.accept_grant(&pending, &issuance.grant, &issuance.ticket, now, &mut r).unwrap();
    let sealed = alice.seal(&key, b"Subject: epochs\r\n\r\nhello\r\n", &mut r).unwrap();
    (key, sealed)
}

/// A copy of the database (its file and write-ahead log) and of the epoch key directory.
fn backup(db: &Path, keys: &Path, to: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(to.join("keys")).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", db.display()));
        if from.exists() {
            std::fs::copy(&from, to.join(format!("ekg.db{suffix}"))).unwrap();
        }
    }
    for entry in std::fs::read_dir(keys).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join("keys").join(path.file_name().unwrap())).unwrap();
    }
    (to.join("ekg.db"), to.join("keys"))
}

/// Every stored key a copy of the database holds.
fn stored_keys(db: &Path) -> Vec<StoredKey> {
    let store = SqliteStore::open(db, Default::default()).unwrap();
    store
        .records()
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Issued { handle, .. } => Some(handle),
            _ => None,
        })
        .collect()
}

/// What an attacker holding the key files of `keys` can unwrap of `stored`: every key file
/// tried, whatever epoch it is named for.
fn attack(keys: &Path, stored: &StoredKey) -> Option<OneTimeKey> {
    std::fs::read_dir(keys).unwrap().find_map(|entry| {
        let text = std::fs::read_to_string(entry.unwrap().path()).ok()?;
        let bytes = hex::decode(text.trim()).ok()?;
        StorageKey::from_slice(&bytes)?.unwrap_key(p(), &stored.wrapped).ok()
    })
}

#[test]
fn a_destroyed_epoch_is_unrecoverable_from_backups_before_and_after() {
    let dir = fresh_dir("custody-backup");
    let files = demo(&dir, "");
    let (db, keys) = (dir.join("ekg.db"), dir.join("epochs"));
    let mut gk = gatekeeper(&files, &db, &keys);
    let t0 = wall_clock();
    // a in epoch e, b two epochs later: b is still held when e's last key has expired.
    let (a, _) = issue(&mut gk, &files, t0.plus_secs(10), 1);
    let (b, b_sealed) = issue(&mut gk, &files, t0.plus_secs(2 * EPOCH_SECS + 10), 2);
    let e = StorageEpoch::of(t0, EPOCH_SECS);
    assert_eq!(gk.crypto().storage_keys().epochs().unwrap(), vec![e, e + 2]);
    let (before_db, before_keys) = backup(&db, &keys, &dir.join("before"));

    // a expires at t0 + 10 + lifetime; epoch e ends at t0 + EPOCH_SECS, its last possible key
    // expiring at t0 + EPOCH_SECS - 1 + lifetime. Past both, the sweep destroys a, then e.
    let later = t0.plus_secs(EPOCH_SECS + LIFETIME_SECS + 1);
    assert_eq!(gk.crypto().storage_keys().epochs().unwrap(), vec![e, e + 2], "nothing destroyed early");
    gk.handle_timeout(later).unwrap();
    assert_eq!(gk.crypto().storage_keys().epochs().unwrap(), vec![e + 2], "epoch {e} destroyed");
    let (after_db, after_keys) = backup(&db, &keys, &dir.join("after"));

    // The before-backup with its own keys yields a's key: the attack below can succeed.
    let a_stored: Vec<StoredKey> =
        stored_keys(&before_db).into_iter().filter(|k| k.epoch == StorageEpoch::Numbered(e)).collect();
    assert_eq!(a_stored.len(), 1);
    assert_eq!(attack(&before_keys, &a_stored[0]).as_ref(), Some(&a.key));

    // With the surviving keys, no key of epoch e unwraps, from either copy of the database;
    // b's key still does.
    for copy in [&before_db, &after_db] {
        for stored in stored_keys(copy) {
            let got = attack(&after_keys, &stored);
            if stored.epoch == StorageEpoch::Numbered(e) {
                assert_eq!(got, None, "a key of the destroyed epoch unwrapped from {}", copy.display());
            } else {
                assert_eq!(got.as_ref(), Some(&b.key));
            }
        }
    }
    for stored in &a_stored {
        assert_eq!(attack(&after_keys, stored), None, "a's key from the before-backup");
    }

    // b is released as ever.
    let bob = recipient(&files, "example.org", "bob");
    let now = t0.plus_secs(EPOCH_SECS + LIFETIME_SECS + 5);
    let msg = bob.receive(&b_sealed, now).unwrap();
    let mut r = rng(3);
    let pending = bob.request_release(&msg, now, &mut r).unwrap();
    let release = gk.handle_release_request(&pending.der, now, &mut r).unwrap();
    assert_eq!(bob.accept_release(&msg, &pending, &release.der, now, &mut r).unwrap(), b.key);
}

#[test]
fn a_held_key_whose_epoch_key_is_gone_is_refused_and_nothing_is_recorded() {
    let dir = fresh_dir("custody-gone");
    let files = demo(&dir, "");
    let (db, keys) = (dir.join("ekg.db"), dir.join("epochs"));
    let mut gk = gatekeeper(&files, &db, &keys);
    let t0 = wall_clock();
    let (_, sealed) = issue(&mut gk, &files, t0.plus_secs(10), 1);
    let e = StorageEpoch::of(t0, EPOCH_SECS);
    // As if a lifetime had been shortened since: the epoch's key goes while a key is held.
    assert_eq!(gk.crypto().storage_keys().destroy_epochs_before(e + 1).unwrap(), vec![e]);
    assert!(!keys.join(format!("epoch-{e}.key")).exists());
    let records = gk.store().records().unwrap().len();

    let bob = recipient(&files, "example.org", "bob");
    let now = t0.plus_secs(20);
    let msg = bob.receive(&sealed, now).unwrap();
    let mut r = rng(3);
    let pending = bob.request_release(&msg, now, &mut r).unwrap();
    let refused = gk.handle_release_request(&pending.der, now, &mut r).unwrap_err();
    assert_eq!(refused.rejection(), Rejection::KeyDestroyed, "{refused}");
    assert!(refused.detail().contains(&format!("epoch {e}")), "{refused}");
    assert_eq!(gk.store().records().unwrap().len(), records, "the refused release used nothing up");
    // A restart on that store is not refused for it (the key expires and is swept).
    drop(gk);
    let _ = gatekeeper(&files, &db, &keys);
}

#[test]
fn an_epoch_key_file_is_0600_in_a_0700_directory_and_an_open_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = fresh_dir("custody-modes");
    let files = demo(&dir, "");
    let (db, keys) = (dir.join("ekg.db"), dir.join("epochs"));
    let mut gk = gatekeeper(&files, &db, &keys);
    issue(&mut gk, &files, wall_clock(), 1);
    assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o700);
    let files_in: Vec<_> = std::fs::read_dir(&keys).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files_in.len(), 1, "one epoch key, no temporary file left: {files_in:?}");
    assert_eq!(std::fs::metadata(&files_in[0]).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = EpochKeyFiles::open(&keys, None).unwrap_err();
    assert!(e.to_string().contains("chmod 700"), "{e}");
}
