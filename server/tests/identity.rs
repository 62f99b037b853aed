//! A store that is not the gatekeeper's own is refused at start (issue 25, item 6;
//! `docs/server.md`, "Store identity"): a missing or empty database, another gatekeeper's,
//! one restored from an older copy; unless the operator adopts it explicitly.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use ekg_server::store::identity::{Identity, read_file, write_file};

fn identity_file(files: &ekg_server::demo::DemoFiles) -> PathBuf {
    files.dir.join("storage.store-identity")
}

fn database(files: &ekg_server::demo::DemoFiles) -> PathBuf {
    files.dir.join("ekg.db")
}

fn start_with(files: &ekg_server::demo::DemoFiles, adopt: bool) -> Result<ekg_server::Running, String> {
    let mut s = settings(files);
    s.adopt_store = adopt;
    s.store_generation = Duration::from_secs(3600);
    ekg_server::start(s).map_err(|e| e.to_string())
}

fn run_once(files: &ekg_server::demo::DemoFiles) {
    start_with(files, false).expect("start").stop().unwrap();
}

/// The database's files (the WAL and shared memory too: SQLite removes them at a clean close).
fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn refusal(r: Result<ekg_server::Running, String>) -> String {
    match r {
        Ok(running) => {
            running.stop().unwrap();
            panic!("the server started on a store that is not its own")
        }
        Err(e) => e,
    }
}

#[test]
fn a_new_store_gets_an_identity_and_every_start_advances_its_generation() {
    let dir = fresh_dir("identity-new");
    let files = demo(&dir, "");
    assert_eq!(read_file(&identity_file(&files)).unwrap(), None);
    run_once(&files);
    let first = read_file(&identity_file(&files)).unwrap().expect("an identity file");
    assert_eq!(first.generation, 1);
    run_once(&files);
    let second = read_file(&identity_file(&files)).unwrap().unwrap();
    assert_eq!((second.store_id, second.generation), (first.store_id, 2));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(identity_file(&files)).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_missing_or_empty_database_is_refused_unless_adopted() {
    let dir = fresh_dir("identity-missing");
    let files = demo(&dir, "");
    run_once(&files);
    let known = read_file(&identity_file(&files)).unwrap().unwrap();

    remove_database(&database(&files));
    let e = refusal(start_with(&files, false));
    assert!(e.starts_with("store_missing: "), "{e}");
    assert!(!database(&files).exists(), "no empty database is created in the lost one's place");

    std::fs::write(database(&files), b"").unwrap();
    let e = refusal(start_with(&files, false));
    assert!(e.starts_with("store_missing: "), "{e}");

    start_with(&files, true).expect("adopted").stop().unwrap();
    let adopted = read_file(&identity_file(&files)).unwrap().unwrap();
    assert_ne!(adopted.store_id, known.store_id, "a new store, with an identity of its own");
    run_once(&files);
}

#[test]
fn another_gatekeepers_database_is_refused() {
    let (a, b) = (fresh_dir("identity-ours"), fresh_dir("identity-theirs"));
    let (ours, theirs) = (demo(&a, ""), demo(&b, ""));
    run_once(&ours);
    run_once(&theirs);
    remove_database(&database(&ours));
    std::fs::copy(database(&theirs), database(&ours)).unwrap();
    let e = refusal(start_with(&ours, false));
    assert!(e.starts_with("store_replaced: ") && e.contains("another gatekeeper's database"), "{e}");
}

#[test]
fn a_database_without_an_identity_is_refused_once_the_gatekeeper_has_one() {
    let (a, b) = (fresh_dir("identity-kept"), fresh_dir("identity-blank"));
    let (ours, blank) = (demo(&a, ""), demo(&b, ""));
    run_once(&ours);
    // A database of this schema that never had an identity (a build before it, or emptied).
    let path = database(&blank);
    ekg_server::store::SqliteStore::open(&path, ekg_core::ledger::LedgerConfig::default()).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("DELETE FROM ekg_store", []).unwrap();
    drop(conn);
    remove_database(&database(&ours));
    std::fs::copy(&path, database(&ours)).unwrap();
    let e = refusal(start_with(&ours, false));
    assert!(e.starts_with("store_replaced: ") && e.contains("holds no store identity"), "{e}");

    // With no identity file either (the first start of a build that has them), it is taken.
    std::fs::remove_file(identity_file(&ours)).unwrap();
    run_once(&ours);
    assert_eq!(read_file(&identity_file(&ours)).unwrap().unwrap().generation, 1);
}

#[test]
fn a_database_restored_from_an_older_copy_is_refused_unless_adopted() {
    let dir = fresh_dir("identity-rollback");
    let files = demo(&dir, "");
    let server = start_with(&files, false).unwrap();
    let (bob_sealed, _) = send(&server, &files, &["bob@example.org"], 1);
    server.stop().unwrap();
    let backup = dir.join("backup.db");
    std::fs::copy(database(&files), &backup).unwrap();

    // Bob reads his message after the backup: under `once`, his key is released and gone.
    let server = start_with(&files, false).unwrap();
    fetch(&server, &recipient(&files, "example.org", "bob"), &bob_sealed, 2).expect("bob's release");
    server.stop().unwrap();

    remove_database(&database(&files));
    std::fs::copy(&backup, database(&files)).unwrap();
    let e = refusal(start_with(&files, false));
    assert!(e.starts_with("store_rolled_back: "), "{e}");

    // Adopted on purpose: the restored copy is served, and says what it lost (bob's key again).
    let server = start_with(&files, true).expect("adopted");
    fetch(&server, &recipient(&files, "example.org", "bob"), &bob_sealed, 3).expect("the backup still owed bob");
    server.stop().unwrap();
    run_once(&files);
}

#[test]
fn a_database_ahead_of_the_file_is_taken_and_the_generation_advances_while_running() {
    let dir = fresh_dir("identity-ahead");
    let files = demo(&dir, "");
    run_once(&files);
    run_once(&files);
    // A crash between the database's advance and the file's (or another instance's advance).
    let known = read_file(&identity_file(&files)).unwrap().unwrap();
    write_file(&identity_file(&files), Identity { generation: 1, ..known }).unwrap();
    let mut s = settings(&files);
    s.store_generation = Duration::from_secs(1);
    let server = ekg_server::start(s).expect("a database ahead of its file is taken");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = 0;
    while Instant::now() < deadline {
        seen = read_file(&identity_file(&files)).unwrap().unwrap().generation;
        if seen >= 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    server.stop().unwrap();
    assert!(seen >= 5, "the generation advances every second while the server runs (saw {seen})");
}
