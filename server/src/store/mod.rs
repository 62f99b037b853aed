//! Where the gatekeeper's records become durable. [`SqliteStore`] is the embedded default;
//! [`AnyStore`] picks one from the configuration's `database`.

mod postgres;
pub mod rows;
pub mod schema;
mod sqlite;

use ekg_core::ledger::{Concrete, MemoryStore, Record, SharedStore, Store, StoreError};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The store a server runs on.
#[derive(Debug)]
pub enum AnyStore {
    /// SQLite, one file.
    Sqlite(SqliteStore),
    /// Memory only (`database = "memory"`): nothing survives the process; refused unless
    /// asked for explicitly, and never for more than one instance.
    Memory(MemoryStore<Concrete>),
    /// PostgreSQL, shared by several instances.
    Postgres(Box<PostgresStore>),
}

impl Store<Concrete> for AnyStore {
    fn append(&mut self, batch: &[Record<Concrete>]) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.append(batch),
            AnyStore::Memory(s) => s.append(batch),
            AnyStore::Postgres(s) => s.append(batch),
        }
    }

    fn load(&self) -> Result<Vec<Record<Concrete>>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.load(),
            AnyStore::Memory(s) => s.load(),
            AnyStore::Postgres(s) => s.load(),
        }
    }

    fn shared(&mut self) -> Option<&mut dyn SharedStore<Concrete>> {
        match self {
            AnyStore::Postgres(s) => Some(s.as_mut()),
            AnyStore::Sqlite(_) | AnyStore::Memory(_) => None,
        }
    }
}
