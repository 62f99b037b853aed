//! Three gatekeeper instances on one PostgreSQL database (`docs/server.md`, "Several
//! instances"): concurrent duplicates of one release request, of one key request, and two
//! certificates racing for one address, fired at all three at once. The database, not a
//! process, must hold single release and V14.
//!
//! Needs `EKG_TEST_POSTGRES` (a `postgres://` URL of a throwaway cluster: `scripts/test`
//! starts one). Without it the tests say so and pass only when `EKG_REQUIRE_POSTGRES` is not
//! set (`scripts/test` sets it, so CI cannot skip them).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::sync::Barrier;

use common::*;
use ekg_server::config::Database;
use ekg_server::demo::DemoFiles;

/// Concurrent copies of each request, spread over the three instances.
const COPIES: usize = 24;

/// Three instances of the demo gatekeeper (same configuration, credential and storage key)
/// on the database `url`. Keys are retained an hour after their last release (so that a
/// duplicate meets the release count, not a destroyed key), except with `policy` "destroy".
fn three(dir_name: &str, url: &str, policy: &str) -> (DemoFiles, Vec<ekg_server::Running>) {
    let dir = fresh_dir(dir_name);
    let files = demo(&dir, "");
    let text = std::fs::read_to_string(&files.config).unwrap();
    let text = match policy {
        "destroy" => text,
        _ => text.replace("policy = \"once\"", policy).replace("retention_secs = 0", "retention_secs = 3600"),
    };
    assert!(policy == "destroy" || text.contains("retention_secs = 3600"));
    std::fs::write(&files.config, text).unwrap();
    let servers = (0..3)
        .map(|_| {
            let mut s = settings(&files);
            s.database = Database::Postgres(url.to_owned());
            ekg_server::start(s).expect("an instance")
        })
        .collect();
    (files, servers)
}

/// POSTs `body` to `path` on every instance in turn, `COPIES` times at once; the statuses
/// and problem codes.
fn fire(servers: &[ekg_server::Running], path: &str, bodies: &[Vec<u8>]) -> Vec<(u16, String)> {
    let barrier = Barrier::new(bodies.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let (server, barrier) = (&servers[i % servers.len()], &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let (status, _, body) = post(server, path, body);
                    (status, if status == 200 { String::new() } else { code(&body) })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn count(outcomes: &[(u16, String)], status: u16, code: &str) -> usize {
    outcomes.iter().filter(|(s, c)| *s == status && c == code).count()
}

/// One sealed message for bob from alice through instance 0, and bob's release request.
fn bob_release_request(files: &DemoFiles, servers: &[ekg_server::Running], seed: u64) -> Vec<u8> {
    let (sealed, _) = send(&servers[0], files, &["bob@example.org"], seed);
    let bob = recipient(files, "example.org", "bob");
    let now = now(&servers[0]);
    let msg = bob.receive(&sealed, now).unwrap();
    bob.request_release(&msg, now, &mut rng(seed + 1)).unwrap().der
}

#[test]
fn under_once_concurrent_duplicates_at_three_instances_release_once() {
    let Some(url) = fresh_database("once") else { return };
    let (files, servers) = three("pg-once", &url, "policy = \"once\"");
    let mut totals = (0, 0);
    for round in 0..3u64 {
        let req = bob_release_request(&files, &servers, 100 + round);
        let outcomes = fire(&servers, "release-request", &vec![req; COPIES]);
        let released = count(&outcomes, 200, "");
        let refused = count(&outcomes, 409, "already_released");
        assert_eq!((released, refused), (1, COPIES - 1), "round {round}: {outcomes:?}");
        totals = (totals.0 + released, totals.1 + refused);
    }
    eprintln!("postgres once: 3 rounds x {COPIES} concurrent copies at 3 instances: {totals:?} (released, refused)");
}

#[test]
fn under_same_certificate_concurrent_duplicates_stop_at_max_deliveries_and_one_certificate() {
    let Some(url) = fresh_database("samecert") else { return };
    let (files, servers) = three("pg-same", &url, "policy = \"same_certificate\"\nmax_deliveries = 3");
    let req = bob_release_request(&files, &servers, 200);
    let outcomes = fire(&servers, "release-request", &vec![req; COPIES]);
    assert_eq!((count(&outcomes, 200, ""), count(&outcomes, 409, "redelivery_limit")), (3, COPIES - 3), "{outcomes:?}");
    // bob's two certificates race for a fresh key: one certificate only is ever served.
    let (sealed, _) = send(&servers[0], &files, &["bob@example.org"], 300);
    let now = now(&servers[0]);
    let mut bodies = Vec::new();
    for (i, name) in ["bob", "bob2"].iter().cycle().take(COPIES).enumerate() {
        let who = recipient(&files, "example.org", name);
        let msg = who.receive(&sealed, now).unwrap();
        bodies.push(who.request_release(&msg, now, &mut rng(400 + i as u64)).unwrap().der);
    }
    let outcomes = fire(&servers, "release-request", &bodies);
    let served: Vec<usize> = (0..COPIES).filter(|i| outcomes[*i].0 == 200).collect();
    assert!(!served.is_empty() && served.len() <= 3, "{outcomes:?}");
    assert!(served.iter().all(|i| i % 2 == served[0] % 2), "two certificates served: {outcomes:?}");
    let other = count(&outcomes, 409, "released_to_other_certificate");
    assert_eq!(served.len() + other + count(&outcomes, 409, "redelivery_limit"), COPIES, "{outcomes:?}");
    eprintln!("postgres same_certificate: {} served to one certificate, {other} refused to the other", served.len());
}

#[test]
fn concurrent_duplicate_key_requests_at_three_instances_issue_one_key() {
    let Some(url) = fresh_database("issue") else { return };
    let (files, servers) = three("pg-issue", &url, "policy = \"once\"");
    let alice = sender(&files, "alice");
    for round in 0..3u64 {
        let pending = alice.request_key(&[addr("bob@example.org")], now(&servers[0]), &mut rng(500 + round)).unwrap();
        let outcomes = fire(&servers, "key-request", &vec![pending.der; COPIES]);
        assert_eq!(
            (count(&outcomes, 200, ""), count(&outcomes, 409, "duplicate_request")),
            (1, COPIES - 1),
            "round {round}: {outcomes:?}"
        );
    }
    let mut db = ekg_server::store::PostgresStore::connect(&url, ekg_core::ledger::LedgerConfig::default()).unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM ekg_key").unwrap(), 3, "one key per request");
    assert_eq!(db.schema_version().unwrap(), ekg_server::store::schema::VERSION);
}

#[test]
fn a_released_key_is_destroyed_and_its_tombstone_refuses_at_every_instance() {
    let Some(url) = fresh_database("destroy") else { return };
    let (files, servers) = three("pg-destroy", &url, "destroy");
    let (sealed, plaintext) = send(&servers[1], &files, &["bob@example.org"], 600);
    let bob = recipient(&files, "example.org", "bob");
    assert_eq!(fetch(&servers[2], &bob, &sealed, 601).unwrap(), plaintext);
    for (i, server) in servers.iter().enumerate() {
        let got = fetch(server, &bob, &sealed, 602 + i as u64);
        assert_eq!(got, Err((410, "key_destroyed".into())), "instance {i}");
    }
    let mut db = ekg_server::store::PostgresStore::connect(&url, ekg_core::ledger::LedgerConfig::default()).unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM ekg_key WHERE held").unwrap(), 0, "the key is gone");
    let records = db.records().unwrap();
    assert!(
        matches!(records.as_slice(), [ekg_core::ledger::Record::Destroyed { .. }]),
        "only its tombstone stays: {records:?}"
    );
}

#[test]
fn a_dropped_database_connection_is_a_503_then_the_instance_reconnects_and_nothing_is_lost() {
    let Some(url) = fresh_database("reconnect") else { return };
    let (files, servers) = three("pg-reconnect", &url, "policy = \"once\"");
    let server = &servers[0];
    let (sealed, plaintext) = send(server, &files, &["bob@example.org"], 700);
    // The database administrator kills every connection to this database.
    let db = url.rsplit('/').next().unwrap().to_owned();
    let mut admin = postgres::Client::connect(&std::env::var("EKG_TEST_POSTGRES").unwrap(), postgres::NoTls).unwrap();
    let killed: i64 = admin
        .query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .unwrap()
        .get(0);
    assert!(killed >= 3, "each instance had a connection: {killed}");
    // bob asks: either the instance noticed the broken connection first (a 503, nothing was
    // written, the same request may be sent again), or it reconnected before; then released.
    let bob = recipient(&files, "example.org", "bob");
    let now = now(server);
    let msg = bob.receive(&sealed, now).unwrap();
    let pending = bob.request_release(&msg, now, &mut rng(701)).unwrap();
    let mut statuses = Vec::new();
    let body = loop {
        let (status, _, body) = post(server, "release-request", &pending.der);
        statuses.push(status);
        if status == 200 {
            break body;
        }
        assert_eq!((status, code(&body).as_str()), (503, "storage_failed"), "{statuses:?}");
        assert!(statuses.len() < 3, "no reconnection: {statuses:?}");
    };
    let key = bob.accept_release(&msg, &pending, &body, now, &mut rng(702)).unwrap();
    assert_eq!(bob.open(&msg, &key).unwrap().to_vec(), plaintext);
    // The other instances reconnect too (a request or their sweep meets the broken
    // connection first: one 503 at most), and know the key was released.
    let mut other = Vec::new();
    for seed in 703..706 {
        other.push(fetch(&servers[1], &bob, &sealed, seed));
        if other.last() != Some(&Err((503, "storage_failed".into()))) {
            break;
        }
    }
    assert_eq!(other.last(), Some(&Err((409, "already_released".into()))), "{other:?}");
    let healthy = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        get(&servers[2], "/healthz").0 == 200
    });
    assert!(healthy, "the third instance stays unhealthy");
    eprintln!("postgres reconnect: statuses {statuses:?}, the other instance {other:?}");
}

#[test]
fn an_instance_with_another_storage_key_records_no_release_it_cannot_deliver() {
    let Some(url) = fresh_database("storagekey") else { return };
    let (files, servers) = three("pg-storagekey", &url, "policy = \"once\"");
    // A fourth instance, misconfigured with another storage key, started while the database
    // holds no key (so the check at start has nothing to try).
    let mut s = settings(&files);
    s.database = Database::Postgres(url.clone());
    s.storage_keys = Box::new(ekg_core::role::StorageKey::from_bytes([8; 32]));
    let wrong = ekg_server::start(s).expect("an empty database has no key to check");
    let (sealed, plaintext) = send(&servers[0], &files, &["bob@example.org"], 800);
    // It refuses before recording anything: bob's only release is not used up.
    let bob = recipient(&files, "example.org", "bob");
    assert_eq!(fetch(&wrong, &bob, &sealed, 801), Err((500, "invalid_configuration".into())));
    assert_eq!(fetch(&servers[1], &bob, &sealed, 802).unwrap(), plaintext, "the release was not used up");
    // Restarted now, with a key in the database, it is refused at start.
    drop(wrong);
    let mut s = settings(&files);
    s.database = Database::Postgres(url);
    s.storage_keys = Box::new(ekg_core::role::StorageKey::from_bytes([8; 32]));
    let e = ekg_server::start(s).expect_err("a live key that does not unwrap");
    assert!(e.to_string().contains("storage_key"), "{e}");
}
