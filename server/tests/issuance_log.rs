//! The service's issuance log (`docs/protocol.md` §10): every issuance and release appends its
//! entry in the store's write of its records, exactly once and in commit order, across a
//! restart, a lost race and refusals; and the log it keeps is one the auditor's checks accept.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::cell::RefCell;

use common::*;
use ekg_core::audit::entry::ticket_hash;
use ekg_core::audit::{EntryKind, Log, LogSalt, TreeHead};
use ekg_core::ledger::{Answered, Batch, Concrete, LedgerConfig, LoadedKey, Store, StoreError};
use ekg_core::role::{Gatekeeper, StorageKey};
use ekg_core::{Digest, KeyId, RequestId};
use ekg_core::{EmailAddress, UnixTime};
use ekg_server::demo::DemoFiles;
use ekg_server::store::{AnyStore, PostgresStore, SqliteStore};

const SALT: [u8; 32] = [5; 32];

fn logged<S: Store<Concrete>>(files: &DemoFiles, store: S) -> Gatekeeper<S> {
    let s = settings(files);
    Gatekeeper::new(p(), s.gatekeeper, s.credential, StorageKey::from_bytes([7; 32]), store)
        .unwrap()
        .with_log(LogSalt::from_bytes(SALT))
}

/// A store that runs `before` once, just before its next append: another gatekeeper's write
/// lands between this one's read and its write (a lost race, made to happen).
struct Racing<S> {
    inner: S,
    before: RefCell<Option<Box<dyn FnOnce()>>>,
}

impl<S: Store<Concrete>> Store<Concrete> for Racing<S> {
    fn load_key(&mut self, key_id: &KeyId) -> Result<LoadedKey<Concrete>, StoreError> {
        self.inner.load_key(key_id)
    }
    fn load_request(&mut self, id: &RequestId) -> Result<Option<Answered<Concrete>>, StoreError> {
        self.inner.load_request(id)
    }
    fn append_if_unchanged(&mut self, batch: &Batch<Concrete>) -> Result<bool, StoreError> {
        if let Some(f) = self.before.borrow_mut().take() {
            f();
        }
        self.inner.append_if_unchanged(batch)
    }
    fn due(&mut self, now: UnixTime, limit: usize) -> Result<Vec<KeyId>, StoreError> {
        self.inner.due(now, limit)
    }
    fn next_deadline(&mut self) -> Result<Option<UnixTime>, StoreError> {
        self.inner.next_deadline()
    }
    fn held_keys(&mut self) -> Result<u64, StoreError> {
        self.inner.held_keys()
    }
    fn live_handle(&mut self) -> Result<Option<ekg_core::StoredKey>, StoreError> {
        self.inner.live_handle()
    }
}

/// What the test expects an entry to say: kind, ticket hash, the address(es) it commits to.
type Expected = (EntryKind, Digest, Vec<EmailAddress>);

#[test]
fn every_issuance_and_release_is_logged_once_in_commit_order_across_a_restart_and_a_lost_race_on_sqlite() {
    let dir = fresh_dir("issuance-log");
    let db = dir.join("ekg.db");
    scenario(&dir, &|| AnyStore::Sqlite(SqliteStore::open(&db, LedgerConfig::default()).unwrap()));
    // The table is append-only: a row is never changed or removed.
    let conn = rusqlite::Connection::open(&db).unwrap();
    for sql in ["DELETE FROM ekg_log", "UPDATE ekg_log SET entry = x'00'"] {
        let e = conn.execute(sql, []).expect_err(sql);
        assert!(e.to_string().contains("append-only"), "{e}");
    }
}

#[test]
fn every_issuance_and_release_is_logged_once_in_commit_order_across_a_restart_and_a_lost_race_on_postgres() {
    let Some(url) = fresh_database("issuance_log") else { return };
    let dir = fresh_dir("issuance-log-pg");
    scenario(&dir, &|| AnyStore::Postgres(PostgresStore::connect(&url, LedgerConfig::default()).unwrap()));
}

/// Four issuances (a restart after two), a replayed request, releases and refusals, a
/// gateway's fetch, a release that loses its race to another gatekeeper's; then the log, read
/// back after another restart, holds exactly the entries committed, in order, and the
/// auditor's checks accept it.
fn scenario(dir: &std::path::Path, open: &dyn Fn() -> AnyStore) {
    let files = demo(dir, "");
    let mut gk = logged(&files, open());
    let alice = sender(&files, "alice");
    let (bob, dave) = (recipient(&files, "example.org", "bob"), recipient(&files, "example.org", "dave"));
    let gw = gateway(&files, "example.com");
    let now = ekg_server::service::wall_clock();
    let mut want: Vec<Expected> = Vec::new();
    let mut sealed = Vec::new();
    let mut tickets = Vec::new();
    let mut requests = Vec::new();
    // Four issuances, a restart after the second.
    for i in 0..4u64 {
        if i == 2 {
            drop(gk);
            gk = logged(&files, open());
        }
        let to = vec![addr("bob@example.org"), addr("dave@example.org")];
        let pending = alice.request_key(&to, now, &mut rng(i)).unwrap();
        let iss = gk.handle_key_request(&pending.der, now, &mut rng(i)).unwrap();
        want.push((EntryKind::Issue, ticket_hash(&iss.ticket), to));
        let key = alice.accept_grant(&pending, &iss.grant, &iss.ticket, now, &mut rng(i)).unwrap();
        sealed.push(alice.seal(&key, b"logged", &mut rng(i)).unwrap());
        tickets.push(iss.ticket);
        requests.push(pending);
    }
    // The same request again: refused (V14), nothing logged.
    assert_eq!(gk.handle_key_request(&requests[0].der, now, &mut rng(0)).unwrap_err().code(), "duplicate_request");
    let release = |gk: &mut Gatekeeper<AnyStore>, who: &ekg_core::role::Recipient, m: usize, seed: u64| {
        let msg = who.receive(&sealed[m], now).unwrap();
        let pending = who.request_release(&msg, now, &mut rng(seed)).unwrap();
        gk.handle_release_request(&pending.der, now, &mut rng(seed)).map(|r| r.kind).map_err(|e| e.code().to_owned())
    };
    // bob on message 0, bob again (refused), dave, dave again (destroyed): refusals log nothing.
    release(&mut gk, &bob, 0, 10).unwrap();
    want.push((EntryKind::Release, ticket_hash(&tickets[0]), vec![addr("bob@example.org")]));
    assert_eq!(release(&mut gk, &bob, 0, 12), Err("already_released".to_owned()));
    release(&mut gk, &dave, 0, 11).unwrap();
    want.push((EntryKind::Release, ticket_hash(&tickets[0]), vec![addr("dave@example.org")]));
    assert_eq!(release(&mut gk, &dave, 0, 16), Err("key_destroyed".to_owned()));
    // The sender organisation's gateway reads message 1: no record, one entry.
    let msg = gw.receive(&sealed[1], now).unwrap();
    let pending = gw.request_key(&msg, now, &mut rng(13)).unwrap();
    gk.handle_release_request(&pending.der, now, &mut rng(13)).unwrap();
    want.push((EntryKind::Release, ticket_hash(&tickets[1]), vec![addr("gateway@example.com")]));
    // bob's release of message 2 loses its race to dave's (another gatekeeper on the same
    // database writes between bob's read and write): bob's round reads and decides again, and
    // each release is logged once, dave's first.
    let mut other = logged(&files, gk.store().clone());
    let dave_msg = dave.receive(&sealed[2], now).unwrap();
    let dave_pending = dave.request_release(&dave_msg, now, &mut rng(14)).unwrap();
    let mut racing = logged(
        &files,
        Racing {
            inner: gk.store().clone(),
            before: RefCell::new(Some(Box::new(move || {
                other.handle_release_request(&dave_pending.der, now, &mut rng(14)).unwrap();
            }))),
        },
    );
    let bob_msg = bob.receive(&sealed[2], now).unwrap();
    let bob_pending = bob.request_release(&bob_msg, now, &mut rng(15)).unwrap();
    racing.handle_release_request(&bob_pending.der, now, &mut rng(15)).unwrap();
    assert_eq!(racing.races_lost(), 1, "the race was lost once");
    want.push((EntryKind::Release, ticket_hash(&tickets[2]), vec![addr("dave@example.org")]));
    want.push((EntryKind::Release, ticket_hash(&tickets[2]), vec![addr("bob@example.org")]));
    // Another restart: the log is what was committed, nothing more.
    drop((gk, racing));
    let mut store = open();
    let size = store.log_size().unwrap();
    let bytes: Vec<u8> = store.log_entries(0, size).unwrap().concat();
    let log = Log::decode(&bytes).expect("the auditor's A1 accepts the log");
    let salt = LogSalt::from_bytes(SALT);
    let got: Vec<(EntryKind, Digest)> = log.entries().iter().map(|e| (e.kind, e.ticket_hash)).collect();
    assert_eq!(got, want.iter().map(|(k, h, _)| (*k, *h)).collect::<Vec<_>>(), "the log, entry by entry");
    for (entry, (_, _, to)) in log.entries().iter().zip(&want) {
        assert_eq!(entry.address_commitments.len(), to.len());
        for a in to {
            entry.names(&salt, a).expect("the entry commits to its address");
        }
    }
    // A head the gatekeeper signs over it verifies, and every ticket is included (A2 to A4).
    let credential = credential(&files, "example.com", "gatekeeper");
    let head = TreeHead { tree_size: size, root_hash: log.tree().root(), timestamp: now };
    let der = head.sign(p(), &credential, &mut rng(99)).unwrap();
    let opened = TreeHead::open(p(), &der, &[credential.certificate_der().to_vec()]).unwrap();
    log.check_head(&opened).unwrap();
    for t in &tickets {
        log.check_ticket(t, &opened).unwrap();
    }
    // Nothing in the log is a plaintext address.
    assert!(!bytes.windows(11).any(|w| w == b"example.org"));
}

fn get_bytes(server: &ekg_server::Running, path: &str) -> (u16, String, Vec<u8>) {
    let mut r = agent().get(url(server, path)).call().unwrap();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (r.status().as_u16(), ct, r.body_mut().read_to_vec().unwrap())
}

/// alice asks for a key over HTTP: the ticket.
fn issue(server: &ekg_server::Running, files: &DemoFiles, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let alice = sender(files, "alice");
    let now = now(server);
    let pending = alice.request_key(&[addr("bob@example.org")], now, &mut rng(seed)).unwrap();
    let (status, _, body) = post(server, "key-request", &pending.der);
    assert_eq!(status, 200);
    let (grant, ticket) = ekg_core::role::decode_issuance_response(&body).unwrap();
    let key = alice.accept_grant(&pending, &grant, &ticket, now, &mut rng(seed)).unwrap();
    (ticket, alice.seal(&key, b"over http", &mut rng(seed)).unwrap())
}

#[test]
fn the_server_serves_signed_heads_inclusion_and_consistency_proofs_that_verify() {
    use ekg_core::audit::{check_consistency, merkle};
    let dir = fresh_dir("issuance-log-http");
    let files = demo(&dir, "");
    ekg_server::files::write_secret(&dir.join("log.salt"), hex::encode(SALT).as_bytes()).unwrap();
    let config = std::fs::read_to_string(&files.config).unwrap();
    std::fs::write(&files.config, config.replacen("[gatekeeper]\n", "[gatekeeper]\nlog_salt = \"log.salt\"\n", 1))
        .unwrap();
    let server = start(&files);
    let cert = vec![credential(&files, "example.com", "gatekeeper").certificate_der().to_vec()];
    let (t0, sealed) = issue(&server, &files, 1);
    let (t1, _) = issue(&server, &files, 2);
    fetch(&server, &recipient(&files, "example.org", "bob"), &sealed, 3).unwrap();
    // The latest head: signed on the first ask, over the 3 entries.
    let (status, ct, der) = get_bytes(&server, "log/head");
    assert_eq!((status, ct.as_str()), (200, "application/cms"));
    let head1 = TreeHead::open(p(), &der, &cert).unwrap();
    assert_eq!(head1.tree_size, 3);
    // t1's inclusion proof leads to that head's root.
    let inclusion = |t: &[u8]| {
        let (status, ct, body) =
            get_bytes(&server, &format!("log/inclusion?ticket={}", hex::encode(ticket_hash(t).as_bytes())));
        assert_eq!((status, ct.as_str()), (200, "application/json"), "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let entry = hex::decode(v["entry"].as_str().unwrap()).unwrap();
        let proof: Vec<Digest> = v["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| Digest::from_slice(&hex::decode(h.as_str().unwrap()).unwrap()).unwrap())
            .collect();
        let head = TreeHead::open(p(), &hex::decode(v["head"].as_str().unwrap()).unwrap(), &cert).unwrap();
        let (e, _) = ekg_core::audit::LogEntry::decode_prefix(&entry).unwrap();
        assert_eq!((e.kind, e.ticket_hash), (EntryKind::Issue, ticket_hash(t)));
        let index = v["leaf_index"].as_u64().unwrap();
        assert_eq!(v["tree_size"].as_u64().unwrap(), head.tree_size);
        merkle::verify_inclusion(
            index,
            head.tree_size,
            merkle::leaf_hash(&entry).as_bytes(),
            &proof,
            head.root_hash.as_bytes(),
        )
        .expect("the served proof verifies");
        head
    };
    assert_eq!(inclusion(&t1), head1);
    // A ticket issued after the head: a new head is signed on demand.
    let (t2, _) = issue(&server, &files, 4);
    let head2 = inclusion(&t2);
    assert_eq!(head2.tree_size, 4);
    assert_eq!(inclusion(&t0), head2);
    // The two heads are of one log: the served consistency proof verifies.
    let (status, _, body) = get_bytes(&server, "log/consistency?first=3&second=4");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let proof: Vec<Digest> = v["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Digest::from_slice(&hex::decode(h.as_str().unwrap()).unwrap()).unwrap())
        .collect();
    check_consistency(&head1, &head2, &proof).unwrap();
    // The auditor's checks over the served log, both heads and every ticket (as
    // `ekg audit verify` runs them).
    let (status, ct, bytes) = get_bytes(&server, "log/entries?start=0&end=4");
    assert_eq!((status, ct.as_str()), (200, "application/octet-stream"));
    let log = Log::decode(&bytes).unwrap();
    log.check_heads(&head1, &head2).unwrap();
    log.check_head(&head2).unwrap();
    for t in [&t0, &t1, &t2] {
        log.check_ticket(t, &head2).unwrap();
    }
    // Bad input: problem+json with a stable code.
    for (path, status, want) in [
        ("log/inclusion?ticket=zz", 400, "log_query_invalid"),
        ("log/inclusion", 400, "log_query_invalid"),
        (&*format!("log/inclusion?ticket={}", "00".repeat(32)), 403, "ticket_not_logged"),
        ("log/consistency?first=0&second=1", 400, "log_query_invalid"),
        ("log/consistency?first=2&second=99", 400, "log_query_invalid"),
        ("log/consistency?first=x&second=1", 400, "log_query_invalid"),
        ("log/entries?start=5&end=1", 400, "log_query_invalid"),
        ("log/entries?start=0&end=70000", 400, "log_query_invalid"),
        ("log/nothing", 404, "not_found"),
    ] {
        let (s, ct, body) = get_bytes(&server, path);
        assert_eq!((s, ct.as_str(), code(&body).as_str()), (status, "application/problem+json", want), "{path}");
    }
    // After a restart the latest head is the stored one.
    server.stop().unwrap();
    let server = start(&files);
    let (_, _, der) = get_bytes(&server, "log/head");
    assert_eq!(TreeHead::open(p(), &der, &cert).unwrap(), head2);
}

/// The demo's configuration with the log on, and `extra` in `[gatekeeper]`.
fn with_log(dir: &std::path::Path, files: &DemoFiles, extra: &str) {
    ekg_server::files::write_secret(&dir.join("log.salt"), hex::encode(SALT).as_bytes()).unwrap();
    let config = std::fs::read_to_string(&files.config).unwrap();
    let section = format!("[gatekeeper]\nlog_salt = \"log.salt\"\n{extra}");
    std::fs::write(&files.config, config.replacen("[gatekeeper]\n", &section, 1)).unwrap();
}

#[test]
fn the_timer_signs_and_stores_a_head_once_the_log_grew_and_the_interval_is_bounded() {
    let dir = fresh_dir("issuance-log-timer");
    let files = demo(&dir, "");
    with_log(&dir, &files, "log_head_interval_secs = 1\n");
    let server = start(&files);
    issue(&server, &files, 1);
    let db =
        rusqlite::Connection::open_with_flags(dir.join("ekg.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let heads = || -> Vec<i64> {
        let mut q = db.prepare("SELECT size FROM ekg_log_head ORDER BY id").unwrap();
        q.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    // Nobody asks for a head: the timer signs one within a few sweeps (bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while heads().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(heads().first(), Some(&1), "a head of the one entry, signed by the timer");
    // An unchanged log is not signed again.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(heads(), [1]);
    server.stop().unwrap();
    for bad in ["0", "86401"] {
        let files = demo(&dir, "");
        with_log(&dir, &files, &format!("log_head_interval_secs = {bad}\n"));
        let e = ekg_server::config::load(&files.config).expect_err(bad);
        assert!(e.to_string().contains("gatekeeper.log_head_interval_secs"), "{e}");
    }
}
