//! Durable storage of ledger records.

use std::collections::BTreeMap;

use super::{LedgerTypes, Record};

/// Why a store could not make records durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

/// Where the gatekeeper makes its records durable.
///
/// Contract: [`Store::append`] returns `Ok` only once every record of the batch would
/// survive a crash, and a batch is all-or-nothing. [`Store::load`] returns what a recovery
/// must replay, in order. A store may compact (drop what a `Destroyed` record supersedes,
/// in particular the key itself) as long as replaying what it returns gives the same ledger.
pub trait Store<T: LedgerTypes> {
    /// Makes `batch` durable, atomically.
    fn append(&mut self, batch: &[Record<T>]) -> Result<(), StoreError>;
    /// The records to replay on recovery.
    fn load(&self) -> Result<Vec<Record<T>>, StoreError>;
    /// The store as several gatekeepers share it, if it is one ([`super::SharedStore`]):
    /// then the gatekeeper keeps no state between decisions and commits conditionally.
    fn shared(&mut self) -> Option<&mut dyn super::SharedStore<T>> {
        None
    }
}

/// An in-memory store: durable for as long as the value lives (clone it to model a crash
/// that keeps the disk). Destroying a key drops its records, so the wrapped key is gone
/// from the store too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryStore<T: LedgerTypes> {
    per_key: BTreeMap<T::KeyId, Vec<Record<T>>>,
    failing: bool,
    appends: u64,
}

impl<T: LedgerTypes> Default for MemoryStore<T> {
    fn default() -> Self {
        MemoryStore { per_key: BTreeMap::new(), failing: false, appends: 0 }
    }
}

impl<T: LedgerTypes> MemoryStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later append fail (to test that nothing is answered without a record).
    pub fn set_failing(&mut self, failing: bool) {
        self.failing = failing;
    }

    /// Successful appends so far.
    pub fn appends(&self) -> u64 {
        self.appends
    }

    /// Records held for one key.
    pub fn records_of(&self, key_id: &T::KeyId) -> &[Record<T>] {
        self.per_key.get(key_id).map(Vec::as_slice).unwrap_or_default()
    }
}

impl<T: LedgerTypes> Store<T> for MemoryStore<T> {
    fn append(&mut self, batch: &[Record<T>]) -> Result<(), StoreError> {
        if self.failing {
            return Err(StoreError("store is failing".into()));
        }
        for record in batch {
            let key_id = record.key_id().clone();
            match record {
                Record::Destroyed { .. } => {
                    self.per_key.insert(key_id, vec![record.clone()]);
                }
                Record::Purged { .. } => {
                    self.per_key.remove(&key_id);
                }
                _ => self.per_key.entry(key_id).or_default().push(record.clone()),
            }
        }
        self.appends += 1;
        Ok(())
    }

    fn load(&self) -> Result<Vec<Record<T>>, StoreError> {
        Ok(self.per_key.values().flatten().cloned().collect())
    }
}
