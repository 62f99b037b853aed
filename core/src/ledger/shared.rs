//! A store that several gatekeepers share (`docs/server.md`, "Several instances").
//!
//! With one gatekeeper per store, its ledger in memory is the truth and the store only makes
//! it durable. With several, no single-use fact may live in one process's memory: before each
//! decision the gatekeeper reads the state of the keys it is about to decide on from the
//! store into a scratch ledger ([`Ledger::refresh`]), decides with the very same code, and
//! commits with [`Ledger::commit_if_unchanged`]: the store appends the records only if no
//! other gatekeeper changed those keys (or answered that request) since they were read. If one
//! did, nothing is written and the gatekeeper reads again and decides again. A release can
//! thus never be decided on a stale count: the store, not the process, holds single use.
//!
//! ```text
//! refresh (read keys, remember their versions) -> decide_* -> commit_if_unchanged
//!        ^------------------- another gatekeeper changed a key: retry ---------|
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::pipeline::{Committed, Decided};
use super::{KeyState, Ledger, LedgerTypes, Record, Store, StoreError};
use crate::error::{Rejection, Result, reject};
use crate::time::UnixTime;

/// A store several gatekeepers write: reads of one key's state, and a conditional append.
///
/// Contract: [`SharedStore::load_key`] returns the records that rebuild one key's state as
/// durable now, and remembers that key's version. [`SharedStore::append_if_unchanged`]
/// appends a batch atomically if, for every key it touches, the key is still at the version
/// last loaded (a key the batch issues must not exist, a request it records must not be
/// recorded), and returns `false` without writing anything otherwise. It is linearizable:
/// of two conditional appends on one key read at the same version, at most one succeeds.
pub trait SharedStore<T: LedgerTypes> {
    /// The records of `key_id` (empty: not known), its version remembered.
    fn load_key(&mut self, key_id: &T::KeyId) -> core::result::Result<Vec<Record<T>>, StoreError>;
    /// The key that answered request `id` (V14), if one is recorded.
    fn key_of_request(&mut self, id: &T::RequestId) -> core::result::Result<Option<T::KeyId>, StoreError>;
    /// Appends `batch` if the keys it touches are unchanged since loaded; `deadlines` gives
    /// each touched key's next deadline after the batch (`None`: purged).
    fn append_if_unchanged(
        &mut self,
        batch: &[Record<T>],
        deadlines: &[(T::KeyId, Option<UnixTime>)],
    ) -> core::result::Result<bool, StoreError>;
    /// Keys whose deadline is at or before `now`, at most `limit`, earliest first.
    fn due(&mut self, now: UnixTime, limit: usize) -> core::result::Result<Vec<T::KeyId>, StoreError>;
    /// The earliest deadline of any key (`None`: no key is known).
    fn next_deadline(&mut self) -> core::result::Result<Option<UnixTime>, StoreError>;
    /// One live key's handle, if any (to check the storage key at start).
    fn live_handle(&mut self) -> core::result::Result<Option<T::KeyHandle>, StoreError>;
    /// How many keys are held (pending or retained).
    fn held_keys(&mut self) -> core::result::Result<u64, StoreError>;
}

impl<T: LedgerTypes> Ledger<T> {
    /// Forgets everything about `key_id`, then rebuilds its state from `records` (from
    /// [`SharedStore::load_key`]). Fails (`storage_failed`) on records that do not apply.
    pub fn refresh(&mut self, key_id: &T::KeyId, records: &[Record<T>]) -> Result<()> {
        if let Some(state) = self.keys.remove(key_id) {
            self.deadlines.remove(&(state.deadline(), key_id.clone()));
            if !matches!(state, KeyState::Destroyed(_)) {
                self.held -= 1;
            }
            if let Some(r) = state.request() {
                self.requests.remove(&r.id);
            }
        }
        for record in records {
            if record.key_id() != key_id {
                return Err(reject(Rejection::StorageFailed, "a key's records name another key"));
            }
            self.apply(record)?;
        }
        Ok(())
    }

    /// Forgets every key: the scratch ledger of a gatekeeper on a shared store starts each
    /// decision from nothing, so that nothing stale can be decided on.
    pub fn clear(&mut self) {
        *self = Ledger::new(self.config).with_gateways(std::mem::take(&mut self.gateways));
    }

    /// Makes `decided`'s records durable in a shared store if the keys they touch are
    /// unchanged since [`Ledger::refresh`], then applies them. `Ok(None)`: another gatekeeper
    /// changed one first; nothing was written or applied (refresh and decide again).
    pub fn commit_if_unchanged<S: SharedStore<T> + ?Sized, P>(
        &mut self,
        store: &mut S,
        decided: Decided<T, P>,
    ) -> Result<Option<Committed<P>>> {
        if decided.records().is_empty() {
            return self.commit(&mut NoStore, decided).map(Some);
        }
        // The deadlines after the batch, from a copy (the scratch ledger holds a key or two).
        let mut after = self.clone();
        for r in decided.records() {
            after.apply(r)?;
        }
        let mut deadlines: Vec<(T::KeyId, Option<UnixTime>)> = Vec::new();
        for r in decided.records() {
            let id = r.key_id();
            if !deadlines.iter().any(|(k, _)| k == id) {
                deadlines.push((id.clone(), after.state(id).map(KeyState::deadline)));
            }
        }
        let appended = store
            .append_if_unchanged(decided.records(), &deadlines)
            .map_err(|e| reject(Rejection::StorageFailed, e.0))?;
        if !appended {
            return Ok(None);
        }
        self.commit(&mut NoStore, decided).map(Some)
    }
}

/// What [`Ledger::commit`] appends to once a shared store has the records: nothing more.
struct NoStore;

impl<T: LedgerTypes> Store<T> for NoStore {
    fn append(&mut self, _: &[Record<T>]) -> core::result::Result<(), StoreError> {
        Ok(())
    }

    fn load(&self) -> core::result::Result<Vec<Record<T>>, StoreError> {
        Ok(Vec::new())
    }
}

/// A linearizable shared store in memory (one lock): for tests of several gatekeepers in one
/// process, and the reference for what a database store must do. Clones share the store;
/// each clone remembers its own loaded versions, as each gatekeeper's connection does.
#[derive(Clone, Debug)]
pub struct SharedMemoryStore<T: LedgerTypes> {
    inner: Arc<Mutex<Shared<T>>>,
    seen: BTreeMap<T::KeyId, u64>,
}

#[derive(Debug)]
struct Shared<T: LedgerTypes> {
    keys: BTreeMap<T::KeyId, SharedKey<T>>,
    requests: BTreeMap<T::RequestId, T::KeyId>,
    appends: u64,
}

#[derive(Debug)]
struct SharedKey<T: LedgerTypes> {
    version: u64,
    records: Vec<Record<T>>,
    deadline: Option<UnixTime>,
}

impl<T: LedgerTypes> Default for SharedMemoryStore<T> {
    fn default() -> Self {
        let shared = Shared { keys: BTreeMap::new(), requests: BTreeMap::new(), appends: 0 };
        SharedMemoryStore { inner: Arc::new(Mutex::new(shared)), seen: BTreeMap::new() }
    }
}

fn poisoned() -> StoreError {
    StoreError("shared store lock poisoned".into())
}

impl<T: LedgerTypes> SharedMemoryStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Successful appends so far, by every clone.
    pub fn appends(&self) -> u64 {
        self.inner.lock().map_or(0, |s| s.appends)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Shared<T>) -> R) -> core::result::Result<R, StoreError> {
        let mut shared = self.inner.lock().map_err(|_| poisoned())?;
        Ok(f(&mut shared))
    }
}

impl<T: LedgerTypes> SharedStore<T> for SharedMemoryStore<T> {
    fn load_key(&mut self, key_id: &T::KeyId) -> core::result::Result<Vec<Record<T>>, StoreError> {
        let (version, records) =
            self.with(|s| s.keys.get(key_id).map_or((0, Vec::new()), |k| (k.version, k.records.clone())))?;
        self.seen.insert(key_id.clone(), version);
        Ok(records)
    }

    fn key_of_request(&mut self, id: &T::RequestId) -> core::result::Result<Option<T::KeyId>, StoreError> {
        self.with(|s| s.requests.get(id).cloned())
    }

    fn append_if_unchanged(
        &mut self,
        batch: &[Record<T>],
        deadlines: &[(T::KeyId, Option<UnixTime>)],
    ) -> core::result::Result<bool, StoreError> {
        let seen = &self.seen;
        self.with(|s| {
            // Check every condition first: all or nothing.
            let issued_here =
                |id: &T::KeyId| batch.iter().any(|o| matches!(o, Record::Issued { key_id, .. } if key_id == id));
            for r in batch {
                let unchanged = match r {
                    Record::Issued { key_id, request, .. } => {
                        !s.keys.contains_key(key_id) && request.as_ref().is_none_or(|q| !s.requests.contains_key(&q.id))
                    }
                    _ if issued_here(r.key_id()) => true,
                    _ => s.keys.get(r.key_id()).is_some_and(|k| seen.get(r.key_id()) == Some(&k.version)),
                };
                if !unchanged {
                    return false;
                }
            }
            for r in batch {
                let id = r.key_id().clone();
                match r {
                    Record::Issued { request: Some(q), .. } => {
                        s.requests.insert(q.id.clone(), id.clone());
                    }
                    Record::Destroyed { request: Some(q), .. } => {
                        s.requests.insert(q.id.clone(), id.clone());
                    }
                    Record::Purged { .. } => s.requests.retain(|_, k| *k != id),
                    _ => {}
                }
                let key =
                    s.keys.entry(id.clone()).or_insert(SharedKey { version: 0, records: Vec::new(), deadline: None });
                match r {
                    Record::Destroyed { .. } => key.records = vec![r.clone()],
                    _ => key.records.push(r.clone()),
                }
            }
            for (id, deadline) in deadlines {
                match deadline {
                    None => {
                        s.keys.remove(id);
                    }
                    Some(t) => {
                        if let Some(k) = s.keys.get_mut(id) {
                            k.version += 1;
                            k.deadline = Some(*t);
                        }
                    }
                }
            }
            s.appends += 1;
            true
        })
    }

    fn due(&mut self, now: UnixTime, limit: usize) -> core::result::Result<Vec<T::KeyId>, StoreError> {
        self.with(|s| {
            let mut due: Vec<(UnixTime, T::KeyId)> =
                s.keys.iter().filter_map(|(id, k)| k.deadline.filter(|t| *t <= now).map(|t| (t, id.clone()))).collect();
            due.sort();
            due.into_iter().take(limit).map(|(_, id)| id).collect()
        })
    }

    fn next_deadline(&mut self) -> core::result::Result<Option<UnixTime>, StoreError> {
        self.with(|s| s.keys.values().filter_map(|k| k.deadline).min())
    }

    fn live_handle(&mut self) -> core::result::Result<Option<T::KeyHandle>, StoreError> {
        self.with(|s| {
            s.keys.values().find_map(|k| match k.records.first() {
                Some(Record::Issued { handle, .. }) => Some(handle.clone()),
                _ => None,
            })
        })
    }

    fn held_keys(&mut self) -> core::result::Result<u64, StoreError> {
        self.with(|s| {
            let held = s.keys.values().filter(|k| matches!(k.records.first(), Some(Record::Issued { .. }))).count();
            u64::try_from(held).unwrap_or(u64::MAX)
        })
    }
}

impl<T: LedgerTypes> Store<T> for SharedMemoryStore<T> {
    /// Refused: a shared store takes conditional appends only
    /// ([`Ledger::commit_if_unchanged`]), so that no caller can release on a stale state.
    fn append(&mut self, _: &[Record<T>]) -> core::result::Result<(), StoreError> {
        Err(StoreError("a shared store takes conditional appends only".into()))
    }

    fn load(&self) -> core::result::Result<Vec<Record<T>>, StoreError> {
        self.with(|s| s.keys.values().flat_map(|k| k.records.iter().cloned()).collect())
    }

    fn shared(&mut self) -> Option<&mut dyn SharedStore<T>> {
        Some(self)
    }
}
