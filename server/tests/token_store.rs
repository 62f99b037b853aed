//! The access tokens' records (V28.8) in the database stores: a token is spent exactly when
//! the release made with it is durable, across a restart and across gatekeepers sharing the
//! store; a refused release spends nothing; a second append of a recorded token is a lost
//! race that writes nothing of its batch; the sweep forgets a token once V28.6 refuses it.
//! SQLite always, PostgreSQL when the test cluster is there (`EKG_TEST_POSTGRES`).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::cell::Cell;

use common::tokens::{LIFETIME, token, token_gatekeeper};
use common::*;
use ekg_core::UnixTime;
use ekg_core::access::token::TokenUse;
use ekg_core::ledger::{Answered, Batch, Concrete, LedgerConfig, LoadedKey, Store, StoreError};
use ekg_core::role::Gatekeeper;
use ekg_core::{KeyId, RequestId, StoredKey};
use ekg_server::demo::DemoFiles;
use ekg_server::store::{PostgresStore, SqliteStore};

/// A store whose first answer to [`Store::token_used`] is "not recorded": the window in which
/// another gatekeeper records the token between this one's read and its write.
struct ReadTooEarly<S> {
    inner: S,
    lied: Cell<bool>,
}

impl<S: Store<Concrete>> Store<Concrete> for ReadTooEarly<S> {
    fn load_key(&mut self, key_id: &KeyId) -> Result<LoadedKey<Concrete>, StoreError> {
        self.inner.load_key(key_id)
    }
    fn load_request(&mut self, id: &RequestId) -> Result<Option<Answered<Concrete>>, StoreError> {
        self.inner.load_request(id)
    }
    fn append_if_unchanged(&mut self, batch: &Batch<Concrete>) -> Result<bool, StoreError> {
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
    fn live_handle(&mut self) -> Result<Option<StoredKey>, StoreError> {
        self.inner.live_handle()
    }
    fn token_used(&mut self, used: &TokenUse) -> Result<bool, StoreError> {
        if !self.lied.replace(true) {
            return Ok(false);
        }
        self.inner.token_used(used)
    }
    fn purge_tokens(&mut self, now: UnixTime) -> Result<u64, StoreError> {
        self.inner.purge_tokens(now)
    }
}

/// One engine under test: its token rows, counted with plain SQL.
trait Engine: Store<Concrete> + Clone + Sized {
    fn token_rows(&mut self) -> i64;
}

impl Engine for SqliteStore {
    fn token_rows(&mut self) -> i64 {
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM ekg_token", [], |r| r.get(0)).unwrap())).unwrap()
    }
}

impl Engine for PostgresStore {
    fn token_rows(&mut self) -> i64 {
        self.count("SELECT COUNT(*) FROM ekg_token").unwrap()
    }
}

/// A sealed message from alice to bob, issued by `gk`, as bob received it.
fn message_to_bob<S: Store<Concrete>>(
    files: &DemoFiles,
    gk: &mut Gatekeeper<S>,
    now: UnixTime,
    seed: u64,
) -> ekg_core::role::ReceivedMessage {
    let alice = sender(files, "alice");
    let pending = alice.request_key(&[addr("bob@example.org")], now, &mut rng(seed)).unwrap();
    let iss = gk.handle_key_request(&pending.der, now, &mut rng(seed)).unwrap();
    let key = alice.accept_grant(&pending, &iss.grant, &iss.ticket, now, &mut rng(seed)).unwrap();
    let sealed = alice.seal(&key, b"token", &mut rng(seed)).unwrap();
    recipient(files, "example.org", "bob").receive(&sealed, now).unwrap()
}

/// bob's release of `msg` with `token`: `None` if served, else the code.
fn release<S: Store<Concrete>>(
    files: &DemoFiles,
    gk: &mut Gatekeeper<S>,
    msg: &ekg_core::role::ReceivedMessage,
    token: &str,
    now: UnixTime,
    seed: u64,
) -> Option<String> {
    let bob = recipient(files, "example.org", "bob");
    let pending = bob.request_release_with_token(msg, token, now, &mut rng(seed)).unwrap();
    gk.handle_release_request(&pending.der, now, &mut rng(seed)).err().map(|e| e.code().to_owned())
}

/// The whole life of a token on one engine; `reopen` is a restart (or another instance).
fn spent_with_its_release<S: Engine>(files: &DemoFiles, first: S, reopen: impl Fn(S) -> S) {
    let now = ekg_server::service::wall_clock();
    let skew = settings(files).gatekeeper.max_clock_skew_secs;
    let mut gk = token_gatekeeper(files, first, |_| {});
    let (one, two, three) = (
        message_to_bob(files, &mut gk, now, 1),
        message_to_bob(files, &mut gk, now, 2),
        message_to_bob(files, &mut gk, now, 3),
    );
    let t1 = token(files, "bob-client", "j-1", now);
    assert_eq!(release(files, &mut gk, &one, &t1, now, 10), None);
    assert_eq!(gk.store_mut().token_rows(), 1);
    // After a restart (or at another instance): the token is spent.
    let store = gk.store().clone();
    drop(gk);
    let mut gk = token_gatekeeper(files, reopen(store), |_| {});
    assert_eq!(release(files, &mut gk, &two, &t1, now, 11).as_deref(), Some("token_replayed"));
    // A refused release spends nothing: `one`'s only recipient was served, its key is gone;
    // the token then serves `two`.
    let t2 = token(files, "bob-client", "j-2", now);
    assert_eq!(release(files, &mut gk, &one, &t2, now, 12).as_deref(), Some("key_destroyed"));
    assert_eq!(gk.store_mut().token_rows(), 1);
    assert_eq!(release(files, &mut gk, &two, &t2, now, 13), None);
    // A gatekeeper that read "not recorded" just before another recorded it: its append is a
    // lost race that writes nothing (`three` stays owed), it reads again and refuses.
    let racing = ReadTooEarly { inner: gk.store().clone(), lied: Cell::new(false) };
    let mut late = token_gatekeeper(files, racing, |_| {});
    assert_eq!(release(files, &mut late, &three, &t2, now, 14).as_deref(), Some("token_replayed"));
    assert!(late.store_mut().lied.get(), "the racing read happened");
    assert_eq!(gk.store_mut().token_rows(), 2);
    let t3 = token(files, "bob-client", "j-3", now);
    assert_eq!(release(files, &mut gk, &three, &t3, now, 15), None, "three was still owed");
    // The sweep keeps a token while V28.6 accepts it, and forgets it after.
    let until = now.plus_secs(LIFETIME + skew);
    gk.handle_timeout(UnixTime(until.secs() - 1)).unwrap();
    assert_eq!(gk.store_mut().token_rows(), 3);
    gk.handle_timeout(until).unwrap();
    assert_eq!(gk.store_mut().token_rows(), 0);
}

#[test]
fn sqlite_spends_a_token_with_its_release_and_only_then() {
    let dir = fresh_dir("token-sqlite");
    let files = demo(&dir, "");
    let db = dir.join("ekg.db");
    let config = LedgerConfig::default();
    let store = SqliteStore::open(&db, config).unwrap();
    spent_with_its_release(&files, store, |s| {
        drop(s);
        SqliteStore::open(&db, config).unwrap()
    });
}

#[test]
fn postgres_spends_a_token_with_its_release_and_only_then() {
    let Some(url) = fresh_database("tokens") else { return };
    let dir = fresh_dir("token-postgres");
    let files = demo(&dir, "");
    let config = LedgerConfig::default();
    let store = PostgresStore::connect(&url, config).unwrap();
    // Another instance: its own pool of connections on the same database.
    spent_with_its_release(&files, store, |s| {
        drop(s);
        PostgresStore::connect(&url, config).unwrap()
    });
}

/// Directly on the store: a batch recording a token recorded already is not written.
#[test]
fn a_second_append_of_a_token_is_refused_by_the_store() {
    let dir = fresh_dir("token-append");
    let mut stores: Vec<Box<dyn Store<Concrete>>> =
        vec![Box::new(SqliteStore::open(&dir.join("ekg.db"), LedgerConfig::default()).unwrap())];
    if let Some(url) = fresh_database("token_append") {
        stores.push(Box::new(PostgresStore::connect(&url, LedgerConfig::default()).unwrap()));
    }
    for mut store in stores {
        let used = TokenUse { issuer: "https://id.example.org".into(), jti: "j".into(), keep_until: UnixTime(10) };
        let batch = |t: Vec<TokenUse>| Batch { records: Vec::new(), keys: Vec::new(), log: Vec::new(), tokens: t };
        assert!(!store.token_used(&used).unwrap());
        assert!(store.append_if_unchanged(&batch(vec![used.clone()])).unwrap());
        assert!(store.token_used(&used).unwrap());
        assert!(!store.append_if_unchanged(&batch(vec![used.clone()])).unwrap(), "the same (issuer, jti) again");
        // Another issuer's token of the same jti is another token.
        let other = TokenUse { issuer: "https://other.example.org".into(), ..used.clone() };
        assert!(store.append_if_unchanged(&batch(vec![other.clone()])).unwrap());
        assert_eq!(store.purge_tokens(UnixTime(9)).unwrap(), 0);
        assert_eq!(store.purge_tokens(UnixTime(10)).unwrap(), 2);
        assert!(!store.token_used(&other).unwrap());
    }
}
