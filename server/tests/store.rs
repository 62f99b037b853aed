//! The SQLite store gives back what the gatekeeper wrote: after any sequence of issuances,
//! releases and timeouts, the ledger recovered from SQLite is the ledger recovered from the
//! reference MemoryStore, and the live one; and the schema migrates once.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use ekg_core::ledger::{Concrete, Ledger, MemoryStore, Store};
use ekg_core::role::{Gatekeeper, StorageKey};
use ekg_server::store::SqliteStore;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Issue(Vec<usize>),
    Release { message: usize, who: usize },
    Wait(u64),
}

const PEOPLE: [(&str, &str); 3] = [("example.org", "bob"), ("example.com", "carol"), ("example.org", "dave")];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        proptest::collection::btree_set(0usize..3, 1..4).prop_map(|s| Op::Issue(s.into_iter().collect())),
        (0usize..6, 0usize..3).prop_map(|(message, who)| Op::Release { message, who }),
        prop_oneof![Just(0u64), Just(3600), Just(7 * 24 * 3600 + 1)].prop_map(Op::Wait),
    ]
}

fn recovered<S: Store<Concrete>>(gk: &Gatekeeper<S>) -> Ledger<Concrete> {
    let live = gk.ledger();
    Ledger::recover(*live.config(), gk.store().load().unwrap().iter()).unwrap().with_gateways(live.gateways().to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn sqlite_recovers_the_same_ledger_as_memory(ops in proptest::collection::vec(op(), 1..24), same_cert in any::<bool>()) {
        let dir = fresh_dir("store-prop");
        let files = demo(&dir, "");
        fn make<S: Store<Concrete>>(files: &ekg_server::demo::DemoFiles, same_cert: bool, store: S) -> Gatekeeper<S> {
            let mut s = settings(files);
            if same_cert {
                s.gatekeeper.policy = ekg_core::ledger::ReleasePolicy::SameCertificate;
                s.gatekeeper.ledger.retention_secs = 600;
            }
            Gatekeeper::new(p(), s.gatekeeper, s.credential, StorageKey::from_bytes([7; 32]), store).unwrap()
        }
        let mut mem = make(&files, same_cert, MemoryStore::new());
        let mut sql = make(&files, same_cert, SqliteStore::in_memory().unwrap());
        let alice = sender(&files, "alice");
        let mut now = ekg_server::service::wall_clock();
        let mut messages = Vec::new();
        let mut seed = 0u64;
        for op in ops {
            seed += 1;
            match op {
                Op::Issue(who) => {
                    let to: Vec<_> = who.iter().map(|i| addr(&format!("{}@{}", PEOPLE[*i].1, PEOPLE[*i].0))).collect();
                    let pending = alice.request_key(&to, now, &mut rng(seed)).unwrap();
                    let a = mem.handle_key_request(&pending.der, now, &mut rng(seed));
                    let b = sql.handle_key_request(&pending.der, now, &mut rng(seed));
                    prop_assert_eq!(a.is_ok(), b.is_ok());
                    if let Ok(iss) = b {
                        let key = alice.accept_grant(&pending, &iss.grant, &iss.ticket, now, &mut rng(seed)).unwrap();
                        messages.push(alice.seal(&key, b"x", &mut rng(seed)).unwrap());
                    }
                }
                Op::Release { message, who } => {
                    let Some(sealed) = messages.get(message) else { continue };
                    let r = recipient(&files, PEOPLE[who].0, PEOPLE[who].1);
                    let Ok(msg) = r.receive(sealed, now) else { continue };
                    let pending = r.request_release(&msg, now, &mut rng(seed)).unwrap();
                    let a = mem.handle_release_request(&pending.der, now, &mut rng(seed)).map(|x| x.kind);
                    let b = sql.handle_release_request(&pending.der, now, &mut rng(seed)).map(|x| x.kind);
                    prop_assert_eq!(a.map_err(|e| e.code()), b.map_err(|e| e.code()));
                }
                Op::Wait(secs) => {
                    now = now.plus_secs(secs);
                    prop_assert_eq!(mem.handle_timeout(now).unwrap(), sql.handle_timeout(now).unwrap());
                }
            }
            prop_assert_eq!(sql.ledger(), mem.ledger());
            prop_assert_eq!(&recovered(&sql), sql.ledger());
            prop_assert_eq!(&recovered(&mem), mem.ledger());
        }
    }
}

#[test]
fn the_schema_migrates_once_and_a_newer_one_is_refused() {
    let dir = fresh_dir("schema");
    let path = dir.join("ekg.db");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), ekg_server::store::schema::VERSION);
    // The database and its WAL are the owner's only.
    use std::os::unix::fs::PermissionsExt;
    for file in ["ekg.db", "ekg.db-wal"] {
        let mode = std::fs::metadata(dir.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    // One gatekeeper per SQLite file: a second one is refused while the first has it open.
    let e = SqliteStore::open(&path).expect_err("a second instance on one SQLite file");
    assert!(e.0.contains("another gatekeeper has this database open"), "{}", e.0);
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let rows: i64 = store.connection().query_row("SELECT COUNT(*) FROM ekg_schema", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, ekg_server::store::schema::MIGRATIONS.len() as i64, "each migration is applied once");
    store.connection().execute("INSERT INTO ekg_schema (version) VALUES (99)", []).unwrap();
    drop(store);
    let e = SqliteStore::open(&path).expect_err("a newer schema");
    assert!(e.0.contains("newer"), "{}", e.0);
}
