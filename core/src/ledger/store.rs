//! Where the gatekeeper's records are durable, and the one way every decision reaches them.
//!
//! The gatekeeper keeps no key state in memory between requests, whatever the store: each
//! decision reads the records of the one key it is about (and, for a key request, the key that
//! answered the same request, V14), the core decides on that view, and the records are
//! appended only if nothing read has changed meanwhile ([`Store::append_if_unchanged`]). If
//! something changed, nothing is written and the decision is read and made again
//! ([`super::round`]). One store, one gatekeeper process or several: the same path.
//!
//! ```text
//! read (load_key / load_request, versions remembered) -> decide_* -> append_if_unchanged
//!        ^----------------------- a key changed meanwhile: read again ------------|
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{KeyState, Ledger, LedgerConfig, LedgerTypes, Record};
use crate::time::UnixTime;

/// Why a store could not read or make records durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

/// A key's version as read: the conditional append writes a key only if it is still at the
/// version read. [`Version::ABSENT`]: the key was not known (and must still not be).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u64);

impl Version {
    /// The version of a key the store does not know.
    pub const ABSENT: Version = Version(0);
}

/// One key as read from a store: its records as durable now, and their version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LoadedKey<T: LedgerTypes> {
    /// The records that rebuild the key's state (empty: not known).
    pub records: Vec<Record<T>>,
    /// The version to write against.
    pub version: Version,
}

impl<T: LedgerTypes> LoadedKey<T> {
    /// A key the store does not know.
    pub fn absent() -> Self {
        LoadedKey { records: Vec::new(), version: Version::ABSENT }
    }
}

/// The key that answered a request, as read.
pub type Answered<T> = (<T as LedgerTypes>::KeyId, LoadedKey<T>);

/// What one key becomes after a batch: for the store's indexes and its condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyChange<T: LedgerTypes> {
    /// The key.
    pub key_id: T::KeyId,
    /// The version the decision read ([`Version::ABSENT`]: the batch issues it).
    pub read: Version,
    /// Its next deadline after the batch (expiry, end of retention, purge); `None`: purged,
    /// nothing of it is left.
    pub deadline: Option<UnixTime>,
    /// Whether it is still held (pending or retained) after the batch.
    pub held: bool,
}

/// A decision's records and the condition they are written under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Batch<T: LedgerTypes> {
    /// The records, in the order decided.
    pub records: Vec<Record<T>>,
    /// Every key the records touch, once, with the version read.
    pub keys: Vec<KeyChange<T>>,
    /// Entries of the issuance log (`crate::audit::LogEntry`, encoded) to append in the same
    /// atomic write, after every entry already logged, in this order: the log holds an entry
    /// exactly when the records it describes are durable (`docs/protocol.md` §10.1).
    pub log: Vec<Vec<u8>>,
    /// The access tokens the batch's release was made with (V28.8): written with the
    /// records, under the condition that none of them is recorded yet.
    pub tokens: Vec<crate::access::token::TokenUse>,
}

/// Where the gatekeeper makes its records durable, read key by key.
///
/// Contract:
/// - [`Store::load_key`] returns the records that rebuild one key's state as durable now,
///   and their version; [`Store::load_request`] the same for the key that answered a request
///   (V14), if one is recorded.
/// - [`Store::append_if_unchanged`] appends a batch atomically, and returns `Ok(true)` only
///   once every record of it would survive a crash, if for every key it touches the key is
///   still at the version read ([`Version::ABSENT`]: still unknown) and no request an
///   `Issued` record of it answers is recorded; otherwise it writes nothing and returns
///   `Ok(false)`. The batch's log entries are appended in the same atomic write, after every
///   entry appended before (the log's leaf indexes are dense and never reused). It is
///   linearizable: of two appends conditioned on one key's version, at most
///   one succeeds.
/// - A store may compact: a `Destroyed` record replaces the key's earlier records (the key
///   itself is gone from the store), and `Purged` removes the key and its request.
/// - Reads return only what was durable: never a record of an append that has not returned
///   `Ok(true)`.
///
/// Methods take `&mut self`: one value per caller (a connection, a handle on a shared pool);
/// a store shared between threads hands each its own.
pub trait Store<T: LedgerTypes> {
    /// One key's records and version.
    fn load_key(&mut self, key_id: &T::KeyId) -> Result<LoadedKey<T>, StoreError>;
    /// The key that answered request `id` (V14) with its records and version, if one is
    /// recorded.
    fn load_request(&mut self, id: &T::RequestId) -> Result<Option<Answered<T>>, StoreError>;
    /// Appends `batch` if nothing it was decided on changed since read (see the contract).
    fn append_if_unchanged(&mut self, batch: &Batch<T>) -> Result<bool, StoreError>;
    /// Keys whose deadline is at or before `now`, at most `limit`, earliest first.
    fn due(&mut self, now: UnixTime, limit: usize) -> Result<Vec<T::KeyId>, StoreError>;
    /// The earliest deadline of any key (`None`: no key is known).
    fn next_deadline(&mut self) -> Result<Option<UnixTime>, StoreError>;
    /// How many keys are held (pending or retained).
    fn held_keys(&mut self) -> Result<u64, StoreError>;
    /// One held key's stored form, if any (to check the storage key at start).
    fn live_handle(&mut self) -> Result<Option<T::KeyHandle>, StoreError>;
    /// Whether the token's (issuer, `jti`) is recorded (V28.8). A store that does not
    /// record tokens says so, and a release with a token fails (`storage_failed`) rather
    /// than accept a replay.
    fn token_used(&mut self, used: &crate::access::token::TokenUse) -> Result<bool, StoreError> {
        let _ = used;
        Err(StoreError("this store does not record access tokens".into()))
    }
    /// Forgets the recorded tokens whose `keep_until` is at or before `now` (V28.6 refuses
    /// them from then on); how many. Run by the sweep.
    fn purge_tokens(&mut self, now: UnixTime) -> Result<u64, StoreError> {
        let _ = now;
        Ok(0)
    }
}

/// A linearizable store in memory (one lock): the reference for what a database store must
/// do, the simulator's and the tests' store, and `database = "memory"`. Clones share the
/// store (as the connections of several gatekeepers share a database); clone the
/// [`MemoryStore::snapshot`] instead to keep a copy of the disk (a crash that keeps it).
#[derive(Clone, Debug)]
pub struct MemoryStore<T: LedgerTypes> {
    inner: Arc<Mutex<MemoryState<T>>>,
}

impl<T: LedgerTypes> Default for MemoryStore<T> {
    fn default() -> Self {
        MemoryStore::new()
    }
}

/// What a [`MemoryStore`] holds: every key's records, version and deadline, and the request
/// index. A value: compare, clone and hash it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemoryState<T: LedgerTypes> {
    keys: BTreeMap<T::KeyId, MemoryKey<T>>,
    requests: BTreeMap<T::RequestId, T::KeyId>,
    failing: bool,
    appends: u64,
    log: Vec<Vec<u8>>,
    /// Recorded tokens: (issuer, jti) → until when.
    tokens: BTreeMap<(String, String), UnixTime>,
}

impl<T: LedgerTypes> Default for MemoryState<T> {
    fn default() -> Self {
        MemoryState {
            keys: BTreeMap::new(),
            requests: BTreeMap::new(),
            failing: false,
            appends: 0,
            log: Vec::new(),
            tokens: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct MemoryKey<T: LedgerTypes> {
    version: Version,
    records: Vec<Record<T>>,
    deadline: UnixTime,
    held: bool,
}

fn poisoned() -> StoreError {
    StoreError("memory store lock poisoned".into())
}

impl<T: LedgerTypes> MemoryStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore { inner: Arc::new(Mutex::new(MemoryState::default())) }
    }

    /// A store holding `state` (a snapshot taken earlier: the disk after a crash).
    pub fn from_snapshot(state: MemoryState<T>) -> Self {
        MemoryStore { inner: Arc::new(Mutex::new(state)) }
    }

    /// A copy of what the store holds now.
    pub fn snapshot(&self) -> MemoryState<T> {
        self.inner.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Puts `records` (any number of keys, each key's in the order they were decided) into
    /// the store as if they had been appended: a test's or a vector's starting state. The
    /// keys' deadlines follow `config`. Fails (`storage_failed`) on records that do not apply
    /// to one another, or on a key the store already holds.
    pub fn import(&self, config: LedgerConfig, records: &[Record<T>]) -> crate::error::Result<()> {
        let ledger = Ledger::recover(config, records.iter())?;
        let mut s = self
            .inner
            .lock()
            .map_err(|_| crate::error::reject(crate::error::Rejection::StorageFailed, "lock poisoned"))?;
        for (key_id, state) in ledger.keys() {
            if s.keys.contains_key(key_id) {
                return Err(crate::error::reject(crate::error::Rejection::StorageFailed, "a key imported twice"));
            }
            let mut mine: Vec<Record<T>> = records.iter().filter(|r| r.key_id() == key_id).cloned().collect();
            if let Some(i) = mine.iter().rposition(|r| matches!(r, Record::Destroyed { .. })) {
                mine.drain(..i);
            }
            let held = !matches!(state, KeyState::Destroyed(_));
            s.keys.insert(
                key_id.clone(),
                MemoryKey { version: Version(1), records: mine, deadline: state.deadline(), held },
            );
            for r in records.iter().filter(|r| r.key_id() == key_id) {
                if let Record::Issued { request: Some(q), .. } | Record::Destroyed { request: Some(q), .. } = r {
                    s.requests.insert(q.id.clone(), key_id.clone());
                }
            }
        }
        Ok(())
    }

    /// Makes every later append fail (to test that nothing is answered without a record).
    pub fn set_failing(&self, failing: bool) {
        if let Ok(mut s) = self.inner.lock() {
            s.failing = failing;
        }
    }

    /// Successful appends so far, by every clone.
    pub fn appends(&self) -> u64 {
        self.inner.lock().map_or(0, |s| s.appends)
    }

    /// The state of one key as its records rebuild it under `config` (`None`: not known).
    pub fn state_of(&self, config: LedgerConfig, key_id: &T::KeyId) -> crate::error::Result<Option<KeyState<T>>> {
        let records = self.records_of(key_id);
        Ok(Ledger::recover(config, records.iter())?.state(key_id).cloned())
    }

    /// The whole state every record rebuilds under `config`, and its invariants checked (for
    /// tests, the simulator and the model checker: the gatekeeper never reads it all).
    pub fn ledger(&self, config: LedgerConfig) -> crate::error::Result<Ledger<T>> {
        Ledger::recover(config, self.records().iter())
    }

    /// The issuance log's entries, oldest first (encoded).
    pub fn log(&self) -> Vec<Vec<u8>> {
        self.inner.lock().map(|s| s.log.clone()).unwrap_or_default()
    }

    /// Records held for one key.
    pub fn records_of(&self, key_id: &T::KeyId) -> Vec<Record<T>> {
        self.inner.lock().ok().and_then(|s| s.keys.get(key_id).map(|k| k.records.clone())).unwrap_or_default()
    }

    /// Every record held, key by key (for recovery checks and dumps).
    pub fn records(&self) -> Vec<Record<T>> {
        self.inner.lock().map(|s| s.records()).unwrap_or_default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut MemoryState<T>) -> R) -> Result<R, StoreError> {
        let mut s = self.inner.lock().map_err(|_| poisoned())?;
        Ok(f(&mut s))
    }
}

impl<T: LedgerTypes> MemoryState<T> {
    /// Every record held, key by key.
    pub fn records(&self) -> Vec<Record<T>> {
        self.keys.values().flat_map(|k| k.records.iter().cloned()).collect()
    }

    /// Successful appends so far.
    pub fn appends(&self) -> u64 {
        self.appends
    }

    /// The issuance log's entries, oldest first (encoded).
    pub fn log(&self) -> &[Vec<u8>] {
        &self.log
    }

    /// Whether appends fail.
    pub fn failing(&self) -> bool {
        self.failing
    }

    /// Makes appends fail, or succeed again.
    pub fn set_failing(&mut self, failing: bool) {
        self.failing = failing;
    }

    fn loaded(&self, key_id: &T::KeyId) -> LoadedKey<T> {
        self.keys
            .get(key_id)
            .map_or_else(LoadedKey::absent, |k| LoadedKey { records: k.records.clone(), version: k.version })
    }

    /// [`Store::load_key`] on the value.
    pub fn load_key(&self, key_id: &T::KeyId) -> LoadedKey<T> {
        self.loaded(key_id)
    }

    /// [`Store::load_request`] on the value.
    pub fn load_request(&self, id: &T::RequestId) -> Option<Answered<T>> {
        self.requests.get(id).map(|k| (k.clone(), self.loaded(k)))
    }

    /// [`Store::append_if_unchanged`] on the value.
    pub fn append_if_unchanged(&mut self, batch: &Batch<T>) -> Result<bool, StoreError> {
        if self.failing {
            return Err(StoreError("the store is failing".into()));
        }
        // Every condition first: all or nothing.
        for change in &batch.keys {
            let now = self.keys.get(&change.key_id).map_or(Version::ABSENT, |k| k.version);
            if now != change.read {
                return Ok(false);
            }
        }
        for r in &batch.records {
            if let Record::Issued { request: Some(q), .. } = r
                && self.requests.contains_key(&q.id)
            {
                return Ok(false);
            }
        }
        if batch.tokens.iter().any(|t| self.tokens.contains_key(&(t.issuer.clone(), t.jti.clone()))) {
            return Ok(false);
        }
        for t in &batch.tokens {
            self.tokens.insert((t.issuer.clone(), t.jti.clone()), t.keep_until);
        }
        for r in &batch.records {
            let id = r.key_id().clone();
            match r {
                Record::Destroyed { request: Some(_), .. }
                    if crate::planted::is(crate::planted::PlantedBug::V14ForgottenAtDestruction) =>
                {
                    self.requests.retain(|_, k| *k != id);
                }
                Record::Issued { request: Some(q), .. } | Record::Destroyed { request: Some(q), .. } => {
                    self.requests.insert(q.id.clone(), id.clone());
                }
                Record::Purged { .. } => self.requests.retain(|_, k| *k != id),
                _ => {}
            }
            let key = self.keys.entry(id).or_insert_with(|| MemoryKey {
                version: Version::ABSENT,
                records: Vec::new(),
                deadline: UnixTime(0),
                held: false,
            });
            match r {
                Record::Destroyed { .. } if !crate::planted::is(crate::planted::PlantedBug::DestroyedMaterialKept) => {
                    key.records = vec![r.clone()];
                }
                _ => key.records.push(r.clone()),
            }
        }
        for change in &batch.keys {
            match change.deadline {
                None => {
                    self.keys.remove(&change.key_id);
                }
                Some(t) => {
                    if let Some(k) = self.keys.get_mut(&change.key_id) {
                        k.version = Version(k.version.0.wrapping_add(1).max(1));
                        k.deadline = t;
                        k.held = change.held;
                    }
                }
            }
        }
        self.log.extend(batch.log.iter().cloned());
        self.appends += 1;
        Ok(true)
    }

    /// [`Store::token_used`] on the value.
    pub fn token_used(&self, used: &crate::access::token::TokenUse) -> bool {
        self.tokens.contains_key(&(used.issuer.clone(), used.jti.clone()))
    }

    /// Forgets the tokens whose time has passed (V28.6 refuses them anyway); how many.
    pub fn purge_tokens(&mut self, now: UnixTime) -> usize {
        let before = self.tokens.len();
        self.tokens.retain(|_, until| *until > now);
        before - self.tokens.len()
    }

    /// [`Store::due`] on the value.
    pub fn due(&self, now: UnixTime, limit: usize) -> Vec<T::KeyId> {
        let mut due: Vec<(UnixTime, &T::KeyId)> =
            self.keys.iter().filter(|(_, k)| k.deadline <= now).map(|(id, k)| (k.deadline, id)).collect();
        due.sort();
        due.into_iter().take(limit).map(|(_, id)| id.clone()).collect()
    }

    /// [`Store::next_deadline`] on the value.
    pub fn next_deadline(&self) -> Option<UnixTime> {
        self.keys.values().map(|k| k.deadline).min()
    }

    /// [`Store::held_keys`] on the value.
    pub fn held_keys(&self) -> u64 {
        u64::try_from(self.keys.values().filter(|k| k.held).count()).unwrap_or(u64::MAX)
    }

    /// [`Store::live_handle`] on the value.
    pub fn live_handle(&self) -> Option<T::KeyHandle> {
        self.keys.values().filter(|k| k.held).find_map(|k| match k.records.first() {
            Some(Record::Issued { handle, .. }) => Some(handle.clone()),
            _ => None,
        })
    }
}

impl<T: LedgerTypes> Store<T> for MemoryState<T> {
    fn load_key(&mut self, key_id: &T::KeyId) -> Result<LoadedKey<T>, StoreError> {
        Ok(MemoryState::load_key(self, key_id))
    }

    fn load_request(&mut self, id: &T::RequestId) -> Result<Option<Answered<T>>, StoreError> {
        Ok(MemoryState::load_request(self, id))
    }

    fn append_if_unchanged(&mut self, batch: &Batch<T>) -> Result<bool, StoreError> {
        MemoryState::append_if_unchanged(self, batch)
    }

    fn due(&mut self, now: UnixTime, limit: usize) -> Result<Vec<T::KeyId>, StoreError> {
        Ok(MemoryState::due(self, now, limit))
    }

    fn next_deadline(&mut self) -> Result<Option<UnixTime>, StoreError> {
        Ok(MemoryState::next_deadline(self))
    }

    fn held_keys(&mut self) -> Result<u64, StoreError> {
        Ok(MemoryState::held_keys(self))
    }

    fn live_handle(&mut self) -> Result<Option<T::KeyHandle>, StoreError> {
        Ok(MemoryState::live_handle(self))
    }

    fn token_used(&mut self, used: &crate::access::token::TokenUse) -> Result<bool, StoreError> {
        Ok(MemoryState::token_used(self, used))
    }

    fn purge_tokens(&mut self, now: UnixTime) -> Result<u64, StoreError> {
        Ok(MemoryState::purge_tokens(self, now) as u64)
    }
}

impl<T: LedgerTypes> Store<T> for MemoryStore<T> {
    fn load_key(&mut self, key_id: &T::KeyId) -> Result<LoadedKey<T>, StoreError> {
        self.with(|s| MemoryState::load_key(s, key_id))
    }

    fn load_request(&mut self, id: &T::RequestId) -> Result<Option<Answered<T>>, StoreError> {
        self.with(|s| MemoryState::load_request(s, id))
    }

    fn append_if_unchanged(&mut self, batch: &Batch<T>) -> Result<bool, StoreError> {
        self.with(|s| MemoryState::append_if_unchanged(s, batch))?
    }

    fn due(&mut self, now: UnixTime, limit: usize) -> Result<Vec<T::KeyId>, StoreError> {
        self.with(|s| MemoryState::due(s, now, limit))
    }

    fn next_deadline(&mut self) -> Result<Option<UnixTime>, StoreError> {
        self.with(|s| MemoryState::next_deadline(s))
    }

    fn held_keys(&mut self) -> Result<u64, StoreError> {
        self.with(|s| MemoryState::held_keys(s))
    }

    fn live_handle(&mut self) -> Result<Option<T::KeyHandle>, StoreError> {
        self.with(|s| MemoryState::live_handle(s))
    }

    fn token_used(&mut self, used: &crate::access::token::TokenUse) -> Result<bool, StoreError> {
        self.with(|s| MemoryState::token_used(s, used))
    }

    fn purge_tokens(&mut self, now: UnixTime) -> Result<u64, StoreError> {
        self.with(|s| MemoryState::purge_tokens(s, now) as u64)
    }
}
