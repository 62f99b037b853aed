//! Crash test: `ekg serve` on a fresh SQLite database, driven by concurrent clients doing
//! issuances and releases over loopback HTTP, killed with SIGKILL at random moments and
//! restarted. At the end, from the clients' side and from the database: no address released
//! to a second certificate, no key id or key issued twice, deliveries within the policy, and
//! every key still owed delivered after the last restart.
//!
//! `EKG_CRASH_KILLS` sets the number of kills (20 in CI; `docs/server.md` reports a run of
//! 500). Bounded in count and time; loopback only.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../server/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ekg_core::KeyId;

/// A key issued and seen by its sender.
struct Sent {
    key_id: KeyId,
    key: [u8; 32],
    sealed: Vec<u8>,
}

/// One successful release, as its recipient saw it.
#[derive(Debug, Clone)]
struct Got {
    key_id: KeyId,
    who: &'static str,
    key: [u8; 32],
}

const FETCHERS: [(&str, &str, &str); 3] =
    [("example.org", "bob", "bob"), ("example.org", "bob2", "bob"), ("example.com", "carol", "carol")];

#[test]
fn sigkill_at_random_moments_never_releases_twice_or_loses_an_owed_key() {
    let kills: usize = std::env::var("EKG_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = fresh_dir("crash");
    let files = demo(&dir, "");
    // Policy same_certificate with a day's retention: a release lost in a crash is delivered
    // again to the same certificate, never to another one.
    let text = std::fs::read_to_string(&files.config).unwrap();
    let text = text
        .replace("policy = \"once\"", "policy = \"same_certificate\"\nmax_deliveries = 100")
        .replace("retention_secs = 0", "retention_secs = 86400");
    std::fs::write(&files.config, text).unwrap();
    let port = free_port();
    let server_addr = format!("127.0.0.1:{port}");
    let server = Arc::new(Mutex::new(spawn_serve(env!("CARGO_BIN_EXE_ekg"), &files.config, port)));
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|s| {
        // Two senders and two fetchers.
        for t in 0..4u64 {
            let (files, sent, got, stop, requests, at) = (&files, &sent, &got, &stop, &requests, &server_addr);
            s.spawn(move || {
                let alice = sender(files, "alice");
                let recipients: Vec<_> = FETCHERS.iter().map(|(d, n, _)| recipient(files, d, n)).collect();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let seed = t * 1_000_000 + i;
                    let mut r = rng(seed);
                    let now = ekg_server::service::wall_clock();
                    if t < 2 {
                        let pending = alice
                            .request_key(&[addr("bob@example.org"), addr("carol@example.com")], now, &mut r)
                            .unwrap();
                        requests.fetch_add(1, Ordering::Relaxed);
                        if let Some((200, body)) = post_to(at, "key-request", &pending.der) {
                            let (grant, ticket) = ekg_core::role::decode_issuance_response(&body).unwrap();
                            let key = alice.accept_grant(&pending, &grant, &ticket, now, &mut r).expect("grant");
                            let sealed = alice.seal(&key, b"crash test", &mut r).unwrap();
                            sent.lock().unwrap().push(Sent { key_id: key.key_id, key: *key.key.expose(), sealed });
                        }
                    } else {
                        let pick = {
                            let sent = sent.lock().unwrap();
                            if sent.is_empty() {
                                None
                            } else {
                                let k = (seed as usize * 7919) % sent.len();
                                Some((sent[k].key_id, sent[k].sealed.clone()))
                            }
                        };
                        let Some((key_id, sealed)) = pick else {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        };
                        let w = (seed as usize) % FETCHERS.len();
                        let who = &recipients[w];
                        let msg = who.receive(&sealed, now).unwrap();
                        let pending = who.request_release(&msg, now, &mut r).unwrap();
                        requests.fetch_add(1, Ordering::Relaxed);
                        if let Some((200, body)) = post_to(at, "release-request", &pending.der) {
                            let key = who.accept_release(&msg, &pending, &body, &mut r).expect("release");
                            got.lock().unwrap().push(Got { key_id, who: FETCHERS[w].1, key: *key.expose() });
                        }
                    }
                }
            });
        }
        // The killer.
        let mut pause = rng(99);
        for _ in 0..kills {
            let wait = 50 + rand_core::Rng::next_u64(&mut pause) % 400;
            std::thread::sleep(Duration::from_millis(wait));
            let mut s = server.lock().unwrap();
            s.child.kill().expect("SIGKILL");
            s.child.wait().unwrap();
            *s = spawn_serve(env!("CARGO_BIN_EXE_ekg"), &files.config, port);
        }
        stop.store(true, Ordering::Relaxed);
    });
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let got = std::mem::take(&mut *got.lock().unwrap());

    // No key id and no key issued twice.
    let ids: BTreeSet<_> = sent.iter().map(|s| s.key_id).collect();
    let keys: BTreeSet<_> = sent.iter().map(|s| s.key).collect();
    assert_eq!((ids.len(), keys.len()), (sent.len(), sent.len()), "a key id or key issued twice");
    // Every release carried the sender's key; per address, one certificate only.
    let by_id: BTreeMap<_, _> = sent.iter().map(|s| (s.key_id, s)).collect();
    let mut certs: BTreeMap<(KeyId, &str), BTreeSet<&str>> = BTreeMap::new();
    for g in &got {
        if let Some(s) = by_id.get(&g.key_id) {
            assert_eq!(s.key, g.key, "a release carried another key");
        }
        let address = FETCHERS.iter().find(|f| f.1 == g.who).map(|f| f.2).unwrap();
        certs.entry((g.key_id, address)).or_default().insert(g.who);
    }
    for ((key, address), who) in &certs {
        assert_eq!(who.len(), 1, "{address} of {key} was released to two certificates: {who:?}");
    }
    // After the last restart, every key still owed is delivered: each listed address, to
    // its first-served certificate. When no client saw a release for bob's address, the
    // gatekeeper may still have committed one whose response the crash lost: then bob's
    // first certificate is refused `released_to_other_certificate` and the other one served.
    let server = Arc::try_unwrap(server).ok().unwrap().into_inner().unwrap();
    let mut owed_delivered = 0;
    let mut lost_responses = 0;
    for s in &sent {
        for address in ["bob", "carol"] {
            let seen = certs.get(&(s.key_id, address)).and_then(|w| w.iter().next().copied());
            let candidates: Vec<&str> = match seen {
                Some(who) => vec![who],
                None => FETCHERS.iter().filter(|f| f.2 == address).map(|f| f.1).collect(),
            };
            let mut served = None;
            for (i, who) in candidates.iter().enumerate() {
                let (domain, name, _) = FETCHERS.iter().find(|f| f.1 == *who).unwrap();
                let r = recipient(&files, domain, name);
                let now = ekg_server::service::wall_clock();
                let msg = r.receive(&s.sealed, now).unwrap();
                let pending = r.request_release(&msg, now, &mut rng(7)).unwrap();
                let (status, body) =
                    post_to(&server.addr, "release-request", &pending.der).expect("the server answers");
                if status == 409 && common::code(&body) == "released_to_other_certificate" && i + 1 < candidates.len() {
                    continue;
                }
                assert_eq!(status, 200, "{address} of {} to {who}: {}", s.key_id, String::from_utf8_lossy(&body));
                assert_eq!(*r.accept_release(&msg, &pending, &body, &mut rng(8)).unwrap().expose(), s.key);
                served = Some(i);
                break;
            }
            if served.is_some_and(|i| i > 0) {
                lost_responses += 1;
            }
            assert!(served.is_some(), "{address} of {} was owed and not delivered", s.key_id);
            owed_delivered += 1;
        }
    }
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // The database agrees: no recipient row has two certificates or more deliveries than
    // allowed, every key row holds a key or is a tombstone.
    let store = ekg_server::store::SqliteStore::open(&dir.join("ekg.db")).unwrap();
    let over: i64 = store
        .connection()
        .query_row("SELECT COUNT(*) FROM ekg_recipients WHERE deliveries > 100", [], |r| r.get(0))
        .unwrap();
    assert_eq!(over, 0);
    let (live, _) = store.counts().unwrap();
    assert!(live as usize >= sent.len(), "a key the sender holds is gone from the store");
    println!(
        "crash test: {kills} kills in {:.1} s, {} requests, {} keys issued and seen, {} releases seen, {} owed keys delivered after the last restart ({} to the certificate whose release response a crash lost)",
        started.elapsed().as_secs_f64(),
        requests.load(Ordering::Relaxed),
        sent.len(),
        got.len(),
        owed_delivered,
        lost_responses
    );
}
