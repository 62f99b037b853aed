//! Crash test: `ekg serve` on a fresh SQLite database, driven by concurrent clients doing
//! issuances and releases over loopback HTTP, killed with SIGKILL at random moments and
//! restarted. At the end, from the clients' side and from the database: no key id or key
//! issued twice; under `once` no address released twice; under `same_certificate` no address
//! served to a second certificate, deliveries within the policy, and every key still owed
//! delivered after the last restart.
//!
//! The same run on a cluster: three `ekg serve` instances on one PostgreSQL database (a
//! throwaway cluster that `scripts/test` starts, `EKG_TEST_POSTGRES`), the clients spread
//! over all three and one instance at a time killed and restarted; the same checks, from the
//! clients and from the database.
//!
//! And a sample with the gatekeeper's signing key and epoch keys in a PKCS#11 token
//! (SoftHSM2, which `scripts/test` sets up: `EKG_PKCS11_*`): a kill may land in the middle of
//! a token session or an epoch key's creation.
//!
//! `EKG_CRASH_KILLS` sets the number of kills per policy (20 in CI; `docs/server.md` reports
//! a run of 500). Bounded in count and time; loopback only.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../server/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use ekg_core::KeyId;
use ekg_core::ledger::{Delivery, KeyState};
use ekg_server::demo::DemoFiles;

const EKG: &str = env!("CARGO_BIN_EXE_ekg");

/// A key issued and seen by its sender.
struct Sent {
    key_id: KeyId,
    key: [u8; 32],
    sealed: Vec<u8>,
}

/// One successful release, as its recipient saw it.
struct Got {
    key_id: KeyId,
    who: &'static str,
    key: [u8; 32],
}

/// (domain, certificate, address): bob has two certificates.
const FETCHERS: [(&str, &str, &str); 3] =
    [("example.org", "bob", "bob"), ("example.org", "bob2", "bob"), ("example.com", "carol", "carol")];

fn address_of(who: &str) -> &'static str {
    FETCHERS.iter().find(|f| f.1 == who).map(|f| f.2).unwrap()
}

/// What the clients saw while the server was being killed; the server is up again.
struct Run {
    store: Store,
    files: DemoFiles,
    /// The instances, up again (one without a cluster).
    servers: Vec<ServeProcess>,
    sent: Vec<Sent>,
    got: Vec<Got>,
    requests: u64,
    kills: usize,
    elapsed: Duration,
}

impl Run {
    /// Asks for the key of `s` as `who` on the restarted server: (status, code, key if 200).
    fn fetch(&self, s: &Sent, who: &str) -> (u16, String, Option<[u8; 32]>) {
        let (domain, name, _) = FETCHERS.iter().find(|f| f.1 == who).unwrap();
        let r = recipient(&self.files, domain, name);
        let now = ekg_server::service::wall_clock();
        let msg = r.receive(&s.sealed, now).unwrap();
        let pending = r.request_release(&msg, now, &mut rng(7)).unwrap();
        let at = &self.servers[s.key_id.as_bytes()[0] as usize % self.servers.len()].addr;
        let (status, body) = post_to(at, "release-request", &pending.der).expect("the server answers");
        let key = (status == 200).then(|| *r.accept_release(&msg, &pending, &body, now, &mut rng(8)).unwrap().expose());
        (status, code(&body), key)
    }

    /// The certificates each (key, address) was seen released to.
    fn certificates(&self) -> BTreeMap<(KeyId, &'static str), BTreeSet<&'static str>> {
        let mut certs: BTreeMap<(KeyId, &str), BTreeSet<&str>> = BTreeMap::new();
        for g in &self.got {
            certs.entry((g.key_id, address_of(g.who))).or_default().insert(g.who);
        }
        certs
    }

    /// The store, after every instance is stopped: (rows over `max` deliveries, live keys).
    fn stop_and_read_store(mut self, max: u32) -> (i64, u64) {
        for server in &mut self.servers {
            server.child.kill().unwrap();
            server.child.wait().unwrap();
        }
        // The store read back through the core's own codec and ledger: every key's records
        // replay, and no address was delivered to more often than the policy allows.
        let config = ekg_core::ledger::LedgerConfig::default();
        let records = match &self.store {
            Store::Sqlite(dir) => ekg_server::store::SqliteStore::open(&dir.join("ekg.db"), config).unwrap().records(),
            Store::Postgres(url) => ekg_server::store::PostgresStore::connect(url, config).unwrap().records(),
        }
        .unwrap();
        let ledger = ekg_core::ledger::Ledger::recover(config, records.iter()).expect("the store replays");
        let over = ledger
            .keys()
            .filter_map(|(_, s)| match s {
                KeyState::Pending(k) | KeyState::Retained { key: k, .. } => Some(k),
                KeyState::Destroyed(_) => None,
            })
            .flat_map(|k| k.recipients.values())
            .filter(|d| matches!(d, Delivery::Released { deliveries, .. } if *deliveries > max))
            .count();
        (i64::try_from(over).unwrap(), u64::try_from(ledger.held_keys()).unwrap())
    }
}

/// Where the instances keep their records.
enum Store {
    /// One instance on SQLite in this directory.
    Sqlite(std::path::PathBuf),
    /// Three instances on this PostgreSQL database.
    Postgres(String),
}

fn kills() -> usize {
    std::env::var("EKG_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20)
}

/// Starts the server with `policy` and `retention` (seconds), drives it with two senders and two fetchers while
/// killing it `kills` times at random moments (50 to 450 ms apart), restarts it a last time.
/// With `cluster` (a PostgreSQL URL), three instances share it and each kill hits one of them.
fn drive(name: &str, policy: &str, retention: u64, kills: usize, cluster: Option<String>) -> Run {
    drive_with(name, policy, retention, kills, cluster, None)
}

/// A PKCS#11 token as `scripts/test` sets it up.
struct Token {
    module: String,
    label: String,
    pin: String,
}

/// The token from `EKG_PKCS11_*`, or None (the test is skipped, unless `EKG_REQUIRE_PKCS11`).
fn token() -> Option<Token> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let module = var("EKG_PKCS11_MODULE").unwrap_or_else(|| "/usr/lib/softhsm/libsofthsm2.so".into());
    match (std::path::Path::new(&module).exists(), var("EKG_PKCS11_TOKEN"), var("EKG_PKCS11_PIN")) {
        (true, Some(label), Some(pin)) => Some(Token { module, label, pin }),
        _ => {
            assert!(std::env::var_os("EKG_REQUIRE_PKCS11").is_none(), "EKG_REQUIRE_PKCS11 is set and no token");
            eprintln!("SKIPPED: the crash test on a PKCS#11 token (scripts/test sets EKG_PKCS11_*)");
            None
        }
    }
}

/// The demo's configuration with its signing key imported into `token` and its epoch keys
/// made there (labels unique to this run).
fn in_token(dir: &std::path::Path, files: &DemoFiles, text: &str, token: &Token) -> String {
    let run = format!("{}-{}", std::process::id(), ekg_server::service::wall_clock().secs());
    let label = format!("ekg-crash-{run}");
    let out = std::process::Command::new("softhsm2-util")
        .args(["--import", &files.pki.join("example.com/gatekeeper.key").to_string_lossy()])
        .args(["--token", &token.label, "--label", &label, "--id", &hex::encode(&label)])
        .args(["--pin", &token.pin])
        .output()
        .expect("softhsm2-util");
    assert!(out.status.success(), "softhsm2-util --import: {}", String::from_utf8_lossy(&out.stderr));
    ekg_server::files::write_secret(&dir.join("token.pin"), format!("{}\n", token.pin).as_bytes()).unwrap();
    let text =
        text.replace("key = \"pki/example.com/gatekeeper.key\"\n", "").replace("storage_keys = \"storage-keys\"\n", "");
    let section = format!(
        "\n[gatekeeper.pkcs11]\nmodule = {:?}\ntoken = {:?}\npin_file = \"token.pin\"\nsigning_key = {label:?}\n\
         storage_key_prefix = \"ekg-crash-epoch-{run}-\"\n\n[[sender]]",
        token.module, token.label
    );
    let edited = text.replacen("\n[[sender]]", &section, 1);
    assert!(
        edited.contains("[gatekeeper.pkcs11]") && !edited.contains("gatekeeper.key"),
        "the demo configuration changed"
    );
    edited
}

fn drive_with(
    name: &str,
    policy: &str,
    retention: u64,
    kills: usize,
    cluster: Option<String>,
    token: Option<&Token>,
) -> Run {
    let dir = fresh_dir(name);
    let files = demo(&dir, "");
    let mut text = std::fs::read_to_string(&files.config)
        .unwrap()
        .replace("policy = \"once\"", policy)
        .replace("retention_secs = 0", &format!("retention_secs = {retention}"));
    if let Some(token) = token {
        text = in_token(&dir, &files, &text, token);
    }
    if let Some(url) = &cluster {
        text = text.replace("database = \"sqlite:ekg.db\"", &format!("database = \"{url}\""));
        assert!(text.contains(url.as_str()), "the demo configuration names its database");
    }
    std::fs::write(&files.config, text).unwrap();
    let instances = if cluster.is_some() { 3 } else { 1 };
    let ports: Vec<u16> = (0..instances).map(|_| free_port()).collect();
    let ats: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let servers: Vec<Mutex<ServeProcess>> =
        ports.iter().map(|p| Mutex::new(spawn_serve(EKG, &files.config, *p))).collect();
    let sent: Mutex<Vec<Sent>> = Mutex::default();
    let got: Mutex<Vec<Got>> = Mutex::default();
    let stop = AtomicBool::new(false);
    let requests = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (files, sent, got, stop, requests, ats) = (&files, &sent, &got, &stop, &requests, &ats);
            s.spawn(move || {
                let alice = sender(files, "alice");
                let recipients: Vec<_> = FETCHERS.iter().map(|(d, n, _)| recipient(files, d, n)).collect();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let seed = t * 1_000_000 + i;
                    let mut r = rng(seed);
                    let now = ekg_server::service::wall_clock();
                    let at = &ats[(seed as usize / 3) % ats.len()];
                    if t < 2 {
                        let to = [addr("bob@example.org"), addr("carol@example.com")];
                        let pending = alice.request_key(&to, now, &mut r).unwrap();
                        requests.fetch_add(1, Ordering::Relaxed);
                        if let Some((200, body)) = post_to(at, "key-request", &pending.der) {
                            let (grant, ticket) = ekg_core::role::decode_issuance_response(&body).unwrap();
                            let key = alice.accept_grant(&pending, &grant, &ticket, now, &mut r).expect("grant");
                            let sealed = alice.seal(&key, b"crash test", &mut r).unwrap();
                            sent.lock().unwrap().push(Sent { key_id: key.key_id, key: *key.key.expose(), sealed });
                        }
                        continue;
                    }
                    let pick = {
                        let sent = sent.lock().unwrap();
                        let k = (seed as usize).wrapping_mul(7919) % sent.len().max(1);
                        sent.get(k).map(|s| (s.key_id, s.sealed.clone()))
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
                        let key = who.accept_release(&msg, &pending, &body, now, &mut r).expect("release");
                        got.lock().unwrap().push(Got { key_id, who: FETCHERS[w].1, key: *key.expose() });
                    }
                }
            });
        }
        let mut pause = rng(99);
        for _ in 0..kills {
            let wait = 50 + rand_core::Rng::next_u64(&mut pause) % 400;
            std::thread::sleep(Duration::from_millis(wait));
            let victim = (wait as usize) % servers.len();
            let mut s = servers[victim].lock().unwrap();
            s.child.kill().expect("SIGKILL");
            s.child.wait().unwrap();
            *s = spawn_serve(EKG, &files.config, ports[victim]);
        }
        stop.store(true, Ordering::Relaxed);
    });
    let run = Run {
        store: match cluster {
            Some(url) => Store::Postgres(url),
            None => Store::Sqlite(dir),
        },
        files,
        servers: servers.into_iter().map(|s| s.into_inner().unwrap()).collect(),
        sent: sent.into_inner().unwrap(),
        got: got.into_inner().unwrap(),
        requests: requests.into_inner(),
        kills,
        elapsed: started.elapsed(),
    };
    // Under either policy: no key id and no key issued twice; every release carried the
    // sender's key.
    let ids: BTreeSet<_> = run.sent.iter().map(|s| s.key_id).collect();
    let keys: BTreeSet<_> = run.sent.iter().map(|s| s.key).collect();
    assert_eq!((ids.len(), keys.len()), (run.sent.len(), run.sent.len()), "a key id or key issued twice");
    let by_id: BTreeMap<_, _> = run.sent.iter().map(|s| (s.key_id, s)).collect();
    for g in &run.got {
        assert_eq!(by_id.get(&g.key_id).map(|s| s.key), Some(g.key), "a release carried another key");
    }
    assert!(!run.sent.is_empty() && !run.got.is_empty(), "the clients did no work");
    run
}

const SAME_CERTIFICATE: &str = "policy = \"same_certificate\"\nmax_deliveries = 100";

#[test]
fn under_same_certificate_no_second_certificate_and_every_owed_key_delivered() {
    check_same_certificate(
        "crash test (same_certificate)",
        drive("crash-same", SAME_CERTIFICATE, 86400, kills(), None),
    );
}

#[test]
fn three_instances_on_postgres_under_same_certificate() {
    let Some(url) = fresh_database("crash_same") else { return };
    let run = drive("cluster-same", SAME_CERTIFICATE, 86400, kills(), Some(url));
    check_same_certificate("cluster crash test, 3 instances on PostgreSQL (same_certificate)", run);
}

#[test]
fn under_once_no_address_is_released_twice() {
    check_once("crash test (once)", drive("crash-once", "policy = \"once\"", 86400, kills(), None));
}

#[test]
fn under_once_with_the_keys_in_a_pkcs11_token() {
    let Some(token) = token() else { return };
    let run = drive_with("crash-token", "policy = \"once\"", 86400, kills(), None, Some(&token));
    check_once("crash test (once), signing and epoch keys in SoftHSM2", run);
}

#[test]
fn three_instances_on_postgres_under_once() {
    let Some(url) = fresh_database("crash_once") else { return };
    let run = drive("cluster-once", "policy = \"once\"", 86400, kills(), Some(url));
    check_once("cluster crash test, 3 instances on PostgreSQL (once)", run);
}

fn check_same_certificate(title: &str, run: Run) {
    let certs = run.certificates();
    for ((key, address), who) in &certs {
        assert_eq!(who.len(), 1, "{address} of {key} was released to two certificates: {who:?}");
    }
    // After the last restart, every key still owed is delivered: each listed address, to its
    // first-served certificate. When no client saw a release for bob's address, the server
    // may still have committed one whose response the crash lost: then bob's first
    // certificate is refused `released_to_other_certificate` and the other one served.
    let (mut owed, mut lost_responses) = (0, 0);
    for s in &run.sent {
        for address in ["bob", "carol"] {
            let candidates: Vec<&str> = match certs.get(&(s.key_id, address)) {
                Some(who) => who.iter().copied().collect(),
                None => FETCHERS.iter().filter(|f| f.2 == address).map(|f| f.1).collect(),
            };
            let mut served = None;
            for (i, who) in candidates.iter().enumerate() {
                let (status, code, key) = run.fetch(s, who);
                if code == "released_to_other_certificate" && i + 1 < candidates.len() {
                    continue;
                }
                assert_eq!(status, 200, "{address} of {} to {who}: {code}", s.key_id);
                assert_eq!(key, Some(s.key));
                served = Some(i);
                break;
            }
            assert!(served.is_some(), "{address} of {} was owed and not delivered", s.key_id);
            lost_responses += usize::from(served.is_some_and(|i| i > 0));
            owed += 1;
        }
    }
    let (sent, got, requests, kills, elapsed) = (run.sent.len(), run.got.len(), run.requests, run.kills, run.elapsed);
    let (over, live) = run.stop_and_read_store(100);
    assert_eq!(over, 0, "a recipient was delivered more than max_deliveries times");
    assert!(live as usize >= sent, "a key the sender holds is gone from the store");
    println!(
        "{title}: {kills} kills in {:.1} s, {requests} requests, {sent} keys issued and seen, \
         {got} releases seen, {owed} owed deliveries made after the last restart ({lost_responses} to the \
         certificate whose release response a crash lost)",
        elapsed.as_secs_f64()
    );
}

fn check_once(title: &str, run: Run) {
    let mut seen: BTreeMap<(KeyId, &str), usize> = BTreeMap::new();
    for g in &run.got {
        *seen.entry((g.key_id, address_of(g.who))).or_default() += 1;
    }
    for ((key, address), n) in &seen {
        assert_eq!(*n, 1, "{address} of {key} was released {n} times under once");
    }
    // After the last restart: an address seen released is refused; one not seen is either
    // released now (200, the right key) or refused because a crash lost the response of its
    // committed release; then, either way, refused.
    let (mut released_now, mut lost_responses) = (0, 0);
    for s in &run.sent {
        for (address, who) in [("bob", "bob2"), ("carol", "carol")] {
            let (status, code, key) = run.fetch(s, who);
            if seen.contains_key(&(s.key_id, address)) {
                assert_eq!((status, code.as_str()), (409, "already_released"), "{address} of {}", s.key_id);
                continue;
            }
            match status {
                200 => {
                    assert_eq!(key, Some(s.key));
                    released_now += 1;
                }
                409 if code == "already_released" => lost_responses += 1,
                _ => panic!("{address} of {}: {status} {code}", s.key_id),
            }
            // Again, for bob with his other certificate.
            let again = if address == "bob" { "bob" } else { who };
            let (status, code, _) = run.fetch(s, again);
            assert_eq!((status, code.as_str()), (409, "already_released"), "{address} of {} again", s.key_id);
        }
    }
    let (sent, got, requests, kills, elapsed) = (run.sent.len(), run.got.len(), run.requests, run.kills, run.elapsed);
    let (over, live) = run.stop_and_read_store(1);
    assert_eq!(over, 0, "a recipient row records two deliveries under once");
    assert!(live as usize >= sent, "a key the sender holds is gone from the store");
    println!(
        "{title}: {kills} kills in {:.1} s, {requests} requests, {sent} keys issued and seen, {got} \
         releases seen, {released_now} releases made after the last restart, {lost_responses} refused because a \
         crash lost the response of the committed release",
        elapsed.as_secs_f64()
    );
}
