//! Where the gatekeeper's records become durable: every store implements the core's one
//! [`Store`] contract (read a key, append if unchanged), so every store runs the same decision
//! path. [`SqliteStore`] is the embedded default (one process, group commit);
//! [`PostgresStore`] is shared by several instances; `memory` keeps nothing past the process.
//! [`AnyStore`] picks one from the configuration's `database`.

pub mod identity;
mod log;
mod plan;
mod postgres;
pub mod schema;
mod sqlite;
mod token;
mod v2;

use ekg_core::UnixTime;
use ekg_core::ledger::{Answered, Batch, Concrete, LoadedKey, MemoryStore, Record, Store, StoreError};
use ekg_core::{KeyId, RequestId, StoredKey};
pub use log::MAX_RANGE as MAX_LOG_RANGE;
pub use postgres::{PostgresStore, SESSION_TIMEOUTS};
pub use sqlite::SqliteStore;

/// The store a server runs on: a handle; clones share the store (one per request thread).
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// SQLite, one file.
    Sqlite(SqliteStore),
    /// Memory only (`database = "memory"`): nothing survives the process; refused unless
    /// asked for explicitly.
    Memory(MemoryStore<Concrete>),
    /// PostgreSQL, shared by several instances.
    Postgres(PostgresStore),
}

impl AnyStore {
    /// Every record the store holds, key by key (checks and tests; never the request path).
    pub fn records(&mut self) -> Result<Vec<Record<Concrete>>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.records(),
            AnyStore::Memory(s) => Ok(s.records()),
            AnyStore::Postgres(s) => s.records(),
        }
    }

    /// This handle's appends are written only while `caller` waits (`None`: always). The
    /// memory store's appends never wait for a lock or a disk: the service's check before the
    /// work starts is the only one it needs.
    pub fn set_caller(&mut self, caller: Option<crate::caller::Caller>) {
        match self {
            AnyStore::Sqlite(s) => s.set_caller(caller),
            AnyStore::Postgres(s) => s.set_caller(caller),
            AnyStore::Memory(_) => {}
        }
    }

    /// Keys held (pending or retained) that answered a request of `sender`.
    pub fn held_of(&mut self, sender: &ekg_core::EmailAddress) -> Result<u64, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.held_of(&sender.to_string()),
            AnyStore::Postgres(s) => s.held_of(&sender.to_string()),
            AnyStore::Memory(s) => {
                let records = s.records();
                let mut keys: Vec<_> = records
                    .iter()
                    .filter_map(|r| match r {
                        Record::Issued { key_id, sender: of, .. } if of == sender => Some(*key_id),
                        _ => None,
                    })
                    .collect();
                keys.sort();
                keys.dedup();
                let destroyed: std::collections::BTreeSet<_> = records
                    .iter()
                    .filter_map(|r| match r {
                        Record::Destroyed { key_id, .. } | Record::Purged { key_id } => Some(*key_id),
                        _ => None,
                    })
                    .collect();
                Ok(keys.iter().filter(|k| !destroyed.contains(k)).count() as u64)
            }
        }
    }

    /// The issuance log's size: entries appended so far (`docs/protocol.md` §10).
    pub fn log_size(&mut self) -> Result<u64, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.log_size(),
            AnyStore::Postgres(s) => s.log_size(),
            AnyStore::Memory(s) => Ok(s.log().len() as u64),
        }
    }

    /// The issuance log's entries `[start, end)` in order (encoded), at most
    /// [`MAX_LOG_RANGE`]; fewer if the log is shorter.
    pub fn log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.log_entries(start, end),
            AnyStore::Postgres(s) => s.log_entries(start, end),
            AnyStore::Memory(s) => {
                let (a, b) = log::bounds(start, end)?;
                let log = s.log();
                let (a, b) = (usize::try_from(a).unwrap_or(usize::MAX), usize::try_from(b).unwrap_or(usize::MAX));
                Ok(log.get(a.min(log.len())..b.min(log.len())).unwrap_or_default().to_vec())
            }
        }
    }

    /// Stores a signed head of the log, of `size` entries (memory: nothing is kept).
    pub fn put_head(&mut self, size: u64, head: &[u8]) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.put_head(size, head),
            AnyStore::Postgres(s) => s.put_head(size, head),
            AnyStore::Memory(_) => Ok(()),
        }
    }

    /// The latest signed head stored, if any.
    pub fn latest_head(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.latest_head(),
            AnyStore::Postgres(s) => s.latest_head(),
            AnyStore::Memory(_) => Ok(None),
        }
    }

    /// The store's identity (`None`: none yet, or the memory store).
    pub fn identity(&mut self) -> Result<Option<identity::Identity>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.identity(),
            AnyStore::Postgres(s) => s.identity(),
            AnyStore::Memory(_) => Ok(None),
        }
    }

    /// Sets the identity if there is none, else raises its generation ([`identity`]).
    pub fn advance_generation(&mut self, store_id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.advance_generation(store_id),
            AnyStore::Postgres(s) => s.advance_generation(store_id),
            AnyStore::Memory(_) => Err(StoreError("the memory store has no identity".into())),
        }
    }

    /// Checks the store answers now: a read and a write (`/healthz`).
    pub fn probe(&mut self) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.probe(),
            AnyStore::Postgres(s) => s.probe(),
            AnyStore::Memory(_) => Ok(()),
        }
    }

    /// Statements sent to a database server so far (PostgreSQL; 0 otherwise).
    pub fn round_trips(&self) -> u64 {
        match self {
            AnyStore::Postgres(s) => s.round_trips(),
            AnyStore::Sqlite(_) | AnyStore::Memory(_) => 0,
        }
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e,
            AnyStore::Memory($s) => $e,
            AnyStore::Postgres($s) => $e,
        }
    };
}

impl Store<Concrete> for AnyStore {
    fn load_key(&mut self, key_id: &KeyId) -> Result<LoadedKey<Concrete>, StoreError> {
        each!(self, s => s.load_key(key_id))
    }

    fn load_request(&mut self, id: &RequestId) -> Result<Option<Answered<Concrete>>, StoreError> {
        each!(self, s => s.load_request(id))
    }

    fn append_if_unchanged(&mut self, batch: &Batch<Concrete>) -> Result<bool, StoreError> {
        each!(self, s => s.append_if_unchanged(batch))
    }

    fn due(&mut self, now: UnixTime, limit: usize) -> Result<Vec<KeyId>, StoreError> {
        each!(self, s => s.due(now, limit))
    }

    fn next_deadline(&mut self) -> Result<Option<UnixTime>, StoreError> {
        each!(self, s => s.next_deadline())
    }

    fn held_keys(&mut self) -> Result<u64, StoreError> {
        each!(self, s => s.held_keys())
    }

    fn live_handle(&mut self) -> Result<Option<StoredKey>, StoreError> {
        each!(self, s => s.live_handle())
    }

    fn token_used(&mut self, used: &ekg_core::access::token::TokenUse) -> Result<bool, StoreError> {
        each!(self, s => s.token_used(used))
    }

    fn purge_tokens(&mut self, now: UnixTime) -> Result<u64, StoreError> {
        each!(self, s => s.purge_tokens(now))
    }
}
