//! The stores decide alike: one random sequence of issuances, releases (some with access
//! tokens, some of them replays), refusals, sweeps and crashes driven through the memory
//! store, SQLite and PostgreSQL gives the same answers, the same records and the same tokens
//! recorded in each, after every step. SQLite's group commit keeps single release
//! under concurrency; the schema migrates once, and a database written by the previous
//! release (schema 2, committed under `tests/data/`) migrates to the one durable form with
//! every key's state kept; a schema-4 database migrates to 5 and records tokens.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use ekg_core::access::token::TokenUse;
use ekg_core::ledger::{Concrete, Delivery, KeyState, Ledger, LedgerConfig, MemoryStore, Record, ReleasePolicy, Store};
use ekg_core::role::{Gatekeeper, StorageKey};
use ekg_server::store::{PostgresStore, SqliteStore};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Issue(Vec<usize>),
    /// The same key request again (V14).
    Replay(usize),
    Release {
        message: usize,
        who: usize,
        /// With a token of `bob-client` identified by `j-<n>` (the same `jti` again is a
        /// replay until the sweep forgets it; another recipient's request is refused).
        token: Option<usize>,
    },
    Wait(u64),
    /// Every gatekeeper stops at once and a new one starts on the store.
    Crash,
}

/// The `jti`s the tokens of a run draw from.
const JTIS: usize = 3;

const PEOPLE: [(&str, &str); 4] =
    [("example.org", "bob"), ("example.com", "carol"), ("example.org", "dave"), ("example.org", "bob2")];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::btree_set(0usize..3, 1..4).prop_map(|s| Op::Issue(s.into_iter().collect())),
        1 => (0usize..4).prop_map(Op::Replay),
        6 => (0usize..6, 0usize..4, proptest::option::of(0usize..JTIS)).prop_map(|(message, who, token)| Op::Release { message, who, token }),
        2 => prop_oneof![Just(0u64), Just(1800), Just(3601), Just(7 * 24 * 3600 + 1)].prop_map(Op::Wait),
        1 => Just(Op::Crash),
    ]
}

/// The demo gatekeeper's settings with `policy` (and an hour's retention under
/// `same_certificate`).
/// The gatekeeper trusts the test token issuer (`common::tokens`).
fn gatekeeper<S: Store<Concrete>>(files: &ekg_server::demo::DemoFiles, same_cert: bool, store: S) -> Gatekeeper<S> {
    common::tokens::token_gatekeeper(files, store, |g| {
        if same_cert {
            g.policy = ReleasePolicy::SameCertificate;
            g.ledger.retention_secs = 3600;
        }
    })
}

fn config(same_cert: bool) -> LedgerConfig {
    LedgerConfig { retention_secs: if same_cert { 3600 } else { 0 }, ..LedgerConfig::default() }
}

/// A database of the test cluster emptied for one case (`None`: no cluster).
fn empty_postgres(url: &Option<String>, same_cert: bool) -> Option<PostgresStore> {
    let url = url.as_ref()?;
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "DROP TABLE IF EXISTS ekg_key, ekg_record, ekg_request, ekg_schema, ekg_log, ekg_log_size, ekg_log_head, \
             ekg_token CASCADE",
        )
        .unwrap();
    admin
        .batch_execute("DROP FUNCTION IF EXISTS ekg_append, ekg_append_tokens, ekg_log_append, ekg_log_refuse CASCADE")
        .unwrap();
    Some(PostgresStore::connect(url, config(same_cert)).unwrap())
}

/// Every record a store holds, in key order: what the stores must agree on.
fn records_of<S: Store<Concrete>>(
    gk: &mut Gatekeeper<S>,
    all: impl FnOnce(&mut S) -> Vec<Record<Concrete>>,
) -> Vec<Record<Concrete>> {
    all(gk.store_mut())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn memory_sqlite_and_postgres_decide_alike(ops in proptest::collection::vec(op(), 1..40), same_cert in any::<bool>()) {
        let dir = fresh_dir("store-diff");
        let files = demo(&dir, "");
        let db = dir.join("ekg.db");
        let _ = std::fs::remove_file(&db);
        let pg_url = PG_URL.clone();
        let mem_store = MemoryStore::new();
        let mut mem = gatekeeper(&files, same_cert, mem_store.clone());
        let mut sql = Some(gatekeeper(&files, same_cert, SqliteStore::open(&db, config(same_cert)).unwrap()));
        let mut pg = empty_postgres(&pg_url, same_cert).map(|s| gatekeeper(&files, same_cert, s));
        let alice = sender(&files, "alice");
        let mut now = ekg_server::service::wall_clock();
        let mut requests = Vec::new();
        let mut messages = Vec::new();
        let mut seed = 0u64;
        for op in ops {
            seed += 1;
            let sql_gk = sql.as_mut().unwrap();
            // Each store's answer, as (kind or code).
            let answers: Vec<Result<String, String>> = match &op {
                Op::Issue(who) => {
                    let to: Vec<_> = who.iter().map(|i| addr(&format!("{}@{}", PEOPLE[*i].1, PEOPLE[*i].0))).collect();
                    let pending = alice.request_key(&to, now, &mut rng(seed)).unwrap();
                    let mut answers = vec![];
                    let mut issuance = None;
                    for r in [
                        mem.handle_key_request(&pending.der, now, &mut rng(seed)),
                        sql_gk.handle_key_request(&pending.der, now, &mut rng(seed)),
                    ].into_iter().chain(pg.as_mut().map(|g| g.handle_key_request(&pending.der, now, &mut rng(seed)))) {
                        answers.push(r.as_ref().map(|i| format!("{:?}", i.key_id)).map_err(|e| e.code().to_owned()));
                        issuance = issuance.or(r.ok());
                    }
                    if let Some(iss) = issuance {
                        let key = alice.accept_grant(&pending, &iss.grant, &iss.ticket, now, &mut rng(seed)).unwrap();
                        messages.push(alice.seal(&key, b"x", &mut rng(seed)).unwrap());
                    }
                    requests.push(pending);
                    answers
                }
                Op::Replay(i) => {
                    let Some(pending) = requests.get(*i) else { continue };
                    let der = pending.der.clone();
                    [mem.handle_key_request(&der, now, &mut rng(seed)), sql_gk.handle_key_request(&der, now, &mut rng(seed))]
                        .into_iter()
                        .chain(pg.as_mut().map(|g| g.handle_key_request(&der, now, &mut rng(seed))))
                        .map(|r| r.map(|i| format!("{:?}", i.key_id)).map_err(|e| e.code().to_owned()))
                        .collect()
                }
                Op::Release { message, who, token } => {
                    let Some(sealed) = messages.get(*message) else { continue };
                    let (domain, name) = PEOPLE[*who];
                    let r = if name == "bob2" { recipient(&files, domain, "bob2") } else { recipient(&files, domain, name) };
                    let Ok(msg) = r.receive(sealed, now) else { continue };
                    let pending = match token {
                        None => r.request_release(&msg, now, &mut rng(seed)).unwrap(),
                        Some(j) => {
                            let t = common::tokens::token(&files, "bob-client", &format!("j-{j}"), now);
                            r.request_release_with_token(&msg, &t, now, &mut rng(seed)).unwrap()
                        }
                    };
                    [mem.handle_release_request(&pending.der, now, &mut rng(seed)), sql_gk.handle_release_request(&pending.der, now, &mut rng(seed))]
                        .into_iter()
                        .chain(pg.as_mut().map(|g| g.handle_release_request(&pending.der, now, &mut rng(seed))))
                        .map(|r| r.map(|x| format!("{:?} {:?}", x.kind, x.served)).map_err(|e| e.code().to_owned()))
                        .collect()
                }
                Op::Wait(secs) => {
                    now = now.plus_secs(*secs);
                    [mem.handle_timeout(now), sql_gk.handle_timeout(now)]
                        .into_iter()
                        .chain(pg.as_mut().map(|g| g.handle_timeout(now)))
                        .map(|r| r.map(|n| n.to_string()).map_err(|e| e.code().to_owned()))
                        .collect()
                }
                Op::Crash => {
                    mem = gatekeeper(&files, same_cert, mem_store.clone());
                    drop(sql.take());
                    sql = Some(gatekeeper(&files, same_cert, SqliteStore::open(&db, config(same_cert)).unwrap()));
                    if let (Some(url), Some(_)) = (&pg_url, &pg) {
                        pg = Some(gatekeeper(&files, same_cert, PostgresStore::connect(url, config(same_cert)).unwrap()));
                    }
                    continue;
                }
            };
            prop_assert!(answers.windows(2).all(|w| w[0] == w[1]), "{op:?}: the stores answered {answers:?}");
            let want = mem_store.records();
            prop_assert_eq!(&records_of(sql.as_mut().unwrap(), |s| s.records().unwrap()), &want, "SQLite after {:?}", op);
            if let Some(pg) = pg.as_mut() {
                prop_assert_eq!(&records_of(pg, |s| s.records().unwrap()), &want, "PostgreSQL after {:?}", op);
            }
            prop_assert_eq!(Ledger::recover(config(same_cert), want.iter()).unwrap().check_invariants(), Ok(()));
            // And the same tokens recorded (V28.8).
            for j in 0..JTIS {
                let used = TokenUse { issuer: common::tokens::ISS.into(), jti: format!("j-{j}"), keep_until: now };
                let want = mem.store_mut().token_used(&used).unwrap();
                prop_assert_eq!(sql.as_mut().unwrap().store_mut().token_used(&used).unwrap(), want, "SQLite's j-{} after {:?}", j, op);
                if let Some(pg) = pg.as_mut() {
                    prop_assert_eq!(pg.store_mut().token_used(&used).unwrap(), want, "PostgreSQL's j-{} after {:?}", j, op);
                }
            }
        }
    }
}

static PG_URL: std::sync::LazyLock<Option<String>> = std::sync::LazyLock::new(|| fresh_database("differential"));

/// Concurrent releases of one address under `once` on SQLite: each thread its own gatekeeper
/// on the one store (as the server runs them), all at once; exactly one is served, and the
/// concurrent issuances around them are committed in fewer groups than appends.
#[test]
fn sqlite_group_commit_serves_one_of_many_racing_releases() {
    let dir = fresh_dir("store-race");
    let files = demo(&dir, "");
    let store = SqliteStore::open(&dir.join("ekg.db"), LedgerConfig::default()).unwrap();
    let mut gk = gatekeeper(&files, false, store.clone());
    let alice = sender(&files, "alice");
    let now = ekg_server::service::wall_clock();
    let pending = alice.request_key(&[addr("bob@example.org"), addr("carol@example.com")], now, &mut rng(1)).unwrap();
    let iss = gk.handle_key_request(&pending.der, now, &mut rng(1)).unwrap();
    let key = alice.accept_grant(&pending, &iss.grant, &iss.ticket, now, &mut rng(1)).unwrap();
    let sealed = alice.seal(&key, b"race", &mut rng(1)).unwrap();
    let bob = recipient(&files, "example.org", "bob");
    let msg = bob.receive(&sealed, now).unwrap();
    const THREADS: u64 = 8;
    let barrier = std::sync::Barrier::new(THREADS as usize);
    let outcomes: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let mut mine = gk.clone();
                let (bob, msg, alice, barrier) = (&bob, &msg, &alice, &barrier);
                s.spawn(move || {
                    let release = bob.request_release(msg, now, &mut rng(100 + t)).unwrap();
                    let issue = alice.request_key(&[addr("dave@example.org")], now, &mut rng(200 + t)).unwrap();
                    barrier.wait();
                    mine.handle_key_request(&issue.der, now, &mut rng(300 + t)).unwrap();
                    mine.handle_release_request(&release.der, now, &mut rng(400 + t))
                        .map(drop)
                        .map_err(|e| e.code().to_owned())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let served = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(served, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o.is_ok() || o.as_ref().err().map(String::as_str) == Some("already_released")));
    let (groups, appends, written) = store.commit_counts();
    println!("group commit: {appends} appends ({written} written) in {groups} groups");
    assert_eq!(written, 1 + THREADS + 1, "the first issuance, every racing issuance, one release");
    assert!(groups <= appends);
    let ledger = Ledger::recover(LedgerConfig::default(), store.records().unwrap().iter()).unwrap();
    let bob_deliveries: Vec<u32> = ledger
        .keys()
        .filter_map(|(_, s)| match s {
            KeyState::Pending(k) => k.recipients.get(&addr("bob@example.org")).cloned(),
            _ => None,
        })
        .filter_map(|d| match d {
            Delivery::Released { deliveries, .. } => Some(deliveries),
            Delivery::Owed => None,
        })
        .collect();
    assert_eq!(bob_deliveries, [1]);
}

#[test]
fn the_schema_migrates_once_and_a_newer_one_is_refused() {
    let dir = fresh_dir("schema");
    let path = dir.join("ekg.db");
    let store = SqliteStore::open(&path, LedgerConfig::default()).unwrap();
    assert_eq!(store.schema_version().unwrap(), ekg_server::store::schema::VERSION);
    // The database and its WAL are the owner's only.
    use std::os::unix::fs::PermissionsExt;
    for file in ["ekg.db", "ekg.db-wal"] {
        let mode = std::fs::metadata(dir.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    // One gatekeeper per SQLite file: a second one is refused while the first has it open.
    let e = SqliteStore::open(&path, LedgerConfig::default()).expect_err("a second instance on one SQLite file");
    assert!(e.0.contains("another gatekeeper has this database open"), "{}", e.0);
    drop(store);
    let store = SqliteStore::open(&path, LedgerConfig::default()).unwrap();
    let versions: Vec<i64> = store
        .read(|c| {
            let mut q = c.prepare("SELECT version FROM ekg_schema ORDER BY version").unwrap();
            Ok(q.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect())
        })
        .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5], "each migration is applied once");
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO ekg_schema (version) VALUES (99)", []).unwrap();
    drop(conn);
    let e = SqliteStore::open(&path, LedgerConfig::default()).expect_err("a newer schema");
    assert!(e.0.contains("newer"), "{}", e.0);
}

/// One key as schema 2 held it, read with plain SQL (independently of the migration): its
/// handle (`None`: destroyed) and, per listed address, (certificate, deliveries).
#[derive(Debug, PartialEq)]
struct OldKey {
    live: bool,
    deliveries: BTreeMap<String, (Option<Vec<u8>>, i64)>,
    request: bool,
}

fn old_sqlite(path: &Path) -> BTreeMap<Vec<u8>, OldKey> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut keys = BTreeMap::new();
    let mut q = c.prepare("SELECT key_id, handle IS NOT NULL FROM ekg_keys").unwrap();
    for row in q.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, bool>(1)?))).unwrap() {
        let (id, live) = row.unwrap();
        let mut d = c.prepare("SELECT address, cert, deliveries FROM ekg_recipients WHERE key_id = ?1").unwrap();
        let deliveries = d
            .query_map([&id], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let request: i64 =
            c.query_row("SELECT COUNT(*) FROM ekg_requests WHERE key_id = ?1", [&id], |r| r.get(0)).unwrap();
        keys.insert(id, OldKey { live, deliveries, request: request == 1 });
    }
    keys
}

/// The same facts, from the migrated records through the core's ledger.
fn migrated(records: &[Record<Concrete>], config: LedgerConfig) -> BTreeMap<Vec<u8>, OldKey> {
    let ledger = Ledger::recover(config, records.iter()).unwrap();
    ledger
        .keys()
        .map(|(id, state)| {
            let key = match state {
                KeyState::Pending(k) | KeyState::Retained { key: k, .. } => OldKey {
                    live: true,
                    deliveries: k
                        .recipients
                        .iter()
                        .map(|(a, d)| {
                            let v = match d {
                                Delivery::Owed => (None, 0),
                                Delivery::Released { cert, deliveries, .. } => {
                                    (Some(cert.0.to_vec()), i64::from(*deliveries))
                                }
                            };
                            (a.to_string(), v)
                        })
                        .collect(),
                    request: k.request.is_some(),
                },
                KeyState::Destroyed(t) => {
                    OldKey { live: false, deliveries: BTreeMap::new(), request: t.request.is_some() }
                }
            };
            (id.as_bytes().to_vec(), key)
        })
        .collect()
}

#[test]
fn a_sqlite_database_of_the_previous_release_migrates_with_every_key_kept() {
    let dir = fresh_dir("migrate-sqlite");
    let path = dir.join("ekg.db");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/schema-v2.sqlite"), &path).unwrap();
    let before = old_sqlite(&path);
    assert_eq!(before.len(), 25, "the fixture: 25 keys (pending, retained with re-deliveries, destroyed)");
    // Written under `same_certificate` with a day's retention (its last run's configuration).
    let config = LedgerConfig { retention_secs: 86_400, ..LedgerConfig::default() };
    let mut store = SqliteStore::open(&path, config).unwrap();
    assert_eq!(store.schema_version().unwrap(), ekg_server::store::schema::VERSION);
    let records = store.records().unwrap();
    assert_eq!(migrated(&records, config), before, "every key's state survives the migration");
    // Each answered request is still refused as a duplicate (V14), and the indexes are filled:
    // every held key's deadline is its expiry or its end of retention, never 0.
    for r in &records {
        if let Record::Issued { request: Some(q), key_id, .. } = r {
            assert_eq!(store.load_request(&q.id).unwrap().map(|(k, _)| k), Some(*key_id));
        }
    }
    let first = store.next_deadline().unwrap().unwrap();
    assert!(first.secs() > 1_700_000_000, "{first:?}");
    assert_eq!(store.held_keys().unwrap() as usize, before.values().filter(|k| k.live).count());
    // The storage key of the previous release still unwraps what it wrapped.
    let key = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/schema-v2.storage.key"))
        .unwrap();
    let key = StorageKey::from_slice(&hex::decode(key.trim()).unwrap()).unwrap();
    let files = demo(&fresh_dir("migrate-sqlite-demo"), "");
    let s = settings(&files);
    Gatekeeper::new(p(), s.gatekeeper, s.credential, key, store)
        .expect("the old storage key unwraps the migrated keys");
}

#[test]
fn a_postgres_database_of_the_previous_release_migrates_with_every_key_kept() {
    let Some(url) = fresh_database("migrate") else { return };
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin.batch_execute(include_str!("data/schema-v2.postgres.sql")).unwrap();
    let before: BTreeMap<Vec<u8>, (bool, i64)> = admin
        .query("SELECT key_id, handle IS NOT NULL, (SELECT COALESCE(SUM(deliveries), 0) FROM ekg_recipients r WHERE r.key_id = k.key_id)::BIGINT FROM ekg_keys k", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    assert_eq!(before.len(), 3);
    let config = LedgerConfig::default();
    let mut store = PostgresStore::connect(&url, config).unwrap();
    assert_eq!(store.schema_version().unwrap(), ekg_server::store::schema::VERSION);
    let after: BTreeMap<Vec<u8>, (bool, i64)> = migrated(&store.records().unwrap(), config)
        .into_iter()
        .map(|(k, v)| (k, (v.live, v.deliveries.values().map(|d| d.1).sum())))
        .collect();
    assert_eq!(after, before);
    let tables: i64 = admin
        .query_one("SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN ('ekg_keys', 'ekg_recipients', 'ekg_requests')", &[])
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "the old tables are gone");
}

/// Schema 4 (before the token table) to 5: a database holding keys and a release opens,
/// keeps every record, and records tokens from then on. The schema-4 database is this build's
/// with version 5's additions undone by `downgrade` (migration 5 only creates `ekg_token`, its
/// index and, on PostgreSQL, `ekg_append_tokens`; the other tables are written as schema 4
/// wrote them).
fn schema_4_migrates_and_records_tokens<S: Store<Concrete>>(
    name: &str,
    open: impl Fn() -> S,
    downgrade: impl FnOnce(),
    all: impl Fn(&mut S) -> (i64, Vec<Record<Concrete>>),
) {
    use common::tokens::{token, token_gatekeeper};
    let files = demo(&fresh_dir(name), "");
    let now = ekg_server::service::wall_clock();
    let alice = sender(&files, "alice");
    let bob = recipient(&files, "example.org", "bob");
    let mut messages = Vec::new();
    {
        let mut gk = gatekeeper(&files, false, open());
        for seed in 1..=3 {
            let to = [addr("bob@example.org"), addr("carol@example.com")];
            let pending = alice.request_key(&to, now, &mut rng(seed)).unwrap();
            let iss = gk.handle_key_request(&pending.der, now, &mut rng(seed)).unwrap();
            let key = alice.accept_grant(&pending, &iss.grant, &iss.ticket, now, &mut rng(seed)).unwrap();
            messages.push(bob.receive(&alice.seal(&key, b"v4", &mut rng(seed)).unwrap(), now).unwrap());
        }
        let pending = bob.request_release(&messages[0], now, &mut rng(9)).unwrap();
        gk.handle_release_request(&pending.der, now, &mut rng(9)).unwrap();
    }
    downgrade();
    let mut store = open();
    let (version, records) = all(&mut store);
    assert_eq!(version, 5);
    assert_eq!(records.len(), 4, "three issuances and a release survive");
    let mut gk = token_gatekeeper(&files, store, |_| {});
    let t = token(&files, "bob-client", "j-v4", now);
    let with = |m: &ekg_core::role::ReceivedMessage, seed| {
        bob.request_release_with_token(m, &t, now, &mut rng(seed)).unwrap().der
    };
    gk.handle_release_request(&with(&messages[1], 10), now, &mut rng(10)).unwrap();
    let e = gk.handle_release_request(&with(&messages[2], 11), now, &mut rng(11)).unwrap_err();
    assert_eq!(e.code(), "token_replayed");
}

#[test]
fn a_sqlite_database_of_schema_4_migrates_and_records_tokens() {
    let path = fresh_dir("migrate-v4-db").join("ekg.db");
    schema_4_migrates_and_records_tokens(
        "migrate-v4-sqlite",
        || SqliteStore::open(&path, LedgerConfig::default()).unwrap(),
        || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch("DROP TABLE ekg_token; DELETE FROM ekg_schema WHERE version = 5;").unwrap();
        },
        |s| (s.schema_version().unwrap(), s.records().unwrap()),
    );
}

#[test]
fn a_postgres_database_of_schema_4_migrates_and_records_tokens() {
    let Some(url) = fresh_database("migrate_v4") else { return };
    schema_4_migrates_and_records_tokens(
        "migrate-v4-postgres",
        || PostgresStore::connect(&url, LedgerConfig::default()).unwrap(),
        || {
            let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            admin
                .batch_execute(
                    "DROP FUNCTION ekg_append_tokens; DROP TABLE ekg_token; DELETE FROM ekg_schema WHERE version = 5;",
                )
                .unwrap();
        },
        |s| (s.schema_version().unwrap(), s.records().unwrap()),
    );
}
