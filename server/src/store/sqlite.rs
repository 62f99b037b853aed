//! The durable store on SQLite (bundled): WAL, `synchronous = FULL`, one `BEGIN IMMEDIATE`
//! transaction per batch of records, committed (and so fsynced) before `append` returns.
//!
//! Crash points (`docs/server.md`, "Durability"): a crash before the commit leaves none of
//! the batch (SQLite's rollback of the WAL); after it, all of it. The gatekeeper builds a
//! response only after `append` returned, so no response exists for a batch that is not
//! durable.

use std::path::Path;

use ekg_core::ids::KeyId;
use ekg_core::ledger::{Concrete, Record, RequestRecord, Store, StoreError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::rows::{self, KeyRow, RecipientRow, RequestRow, policy_code, reason_code, secs};
use super::schema;

/// The SQLite store.
pub struct SqliteStore {
    conn: Connection,
    /// An exclusive lock on the database file for as long as the store is open: the ledger
    /// lives in this process's memory, so a second gatekeeper on the same file is refused.
    _lock: Option<std::fs::File>,
}

impl core::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SqliteStore({:?})", self.conn.path())
    }
}

fn err(e: impl core::fmt::Display) -> StoreError {
    StoreError(format!("sqlite: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, migrated to [`schema::VERSION`].
    /// Refuses a database written by a newer schema.
    /// A new database file is created readable by its owner only (0600); SQLite gives its
    /// WAL and shared-memory files the same mode.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(format!("{}: {e}", path.display())))?;
        }
        let lock = std::fs::File::open(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(err(format!(
                    "{}: another gatekeeper has this database open (the SQLite store serves one instance; \
                     several instances share a PostgreSQL database)",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(err(format!("{}: lock: {e}", path.display()))),
        }
        let conn = Connection::open(path).map_err(err)?;
        SqliteStore::with(conn, Some(lock))
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        SqliteStore::with(Connection::open_in_memory().map_err(err)?, None)
    }

    fn with(mut conn: Connection, lock: Option<std::fs::File>) -> Result<SqliteStore, StoreError> {
        // WAL: readers never block the writer; FULL: every commit is fsynced.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        migrate(&mut conn)?;
        Ok(SqliteStore { conn, _lock: lock })
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        version(&self.conn)
    }

    /// How many keys the database holds, live and destroyed (for checks and metrics).
    pub fn counts(&self) -> Result<(u64, u64), StoreError> {
        let live: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM ekg_keys WHERE handle IS NOT NULL", [], |r| r.get(0))
            .map_err(err)?;
        let gone: i64 =
            self.conn.query_row("SELECT COUNT(*) FROM ekg_keys WHERE handle IS NULL", [], |r| r.get(0)).map_err(err)?;
        Ok((u64::try_from(live).unwrap_or(0), u64::try_from(gone).unwrap_or(0)))
    }

    /// The connection (read-only checks in tests and the crash test).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("SELECT COALESCE(MAX(version), 0) FROM ekg_schema", [], |r| r.get(0)).map_err(err)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(schema::SCHEMA_TABLE).map_err(err)?;
    let have = version(conn)?;
    if have > schema::VERSION {
        return Err(StoreError(format!("database schema {have} is newer than this build's {}", schema::VERSION)));
    }
    for (v, ddl) in schema::MIGRATIONS.iter().filter(|(v, _)| *v > have) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        tx.execute_batch(ddl).map_err(err)?;
        tx.execute("INSERT INTO ekg_schema (version) VALUES (?1)", params![v]).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

impl Store<Concrete> for SqliteStore {
    fn append(&mut self, batch: &[Record<Concrete>]) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        for record in batch {
            match record {
                Record::Issued { key_id, handle, sender, recipients, policy, issued_at, expires_at, request } => {
                    tx.execute(
                        "INSERT INTO ekg_keys (key_id, handle, sender, policy, issued_at, expires_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            key_id.as_bytes(),
                            handle.0.as_slice(),
                            sender.to_string(),
                            policy_code(*policy),
                            secs(*issued_at)?,
                            secs(*expires_at)?
                        ],
                    )
                    .map_err(err)?;
                    for (i, address) in recipients.iter().enumerate() {
                        tx.execute(
                            "INSERT INTO ekg_recipients (key_id, position, address) VALUES (?1, ?2, ?3)",
                            params![key_id.as_bytes(), i64::try_from(i).unwrap_or(i64::MAX), address.to_string()],
                        )
                        .map_err(err)?;
                    }
                    if let Some(r) = request {
                        insert_request(&tx, key_id, r)?;
                    }
                }
                Record::Released { key_id, addresses, cert, at } => {
                    for address in addresses {
                        let n = tx
                            .execute(
                                "UPDATE ekg_recipients SET cert = COALESCE(cert, ?1), \
                                 released_at = COALESCE(released_at, ?2), deliveries = deliveries + 1 \
                                 WHERE key_id = ?3 AND address = ?4 AND (cert IS NULL OR cert = ?1)",
                                params![cert.as_bytes(), secs(*at)?, key_id.as_bytes(), address.to_string()],
                            )
                            .map_err(err)?;
                        if n != 1 {
                            return Err(StoreError(format!("release of {key_id} to {address} does not apply")));
                        }
                    }
                }
                Record::Destroyed { key_id, at, expires_at, reason, request } => {
                    // The key and its recipients go; the row stays as the tombstone.
                    tx.execute("DELETE FROM ekg_recipients WHERE key_id = ?1", params![key_id.as_bytes()])
                        .map_err(err)?;
                    let n = tx
                        .execute(
                            "UPDATE ekg_keys SET handle = NULL, destroyed_at = ?1, destroy_reason = ?2, expires_at = ?3 \
                             WHERE key_id = ?4",
                            params![secs(*at)?, reason_code(*reason), secs(*expires_at)?, key_id.as_bytes()],
                        )
                        .map_err(err)?;
                    if n == 0 {
                        tx.execute(
                            "INSERT INTO ekg_keys (key_id, handle, sender, policy, issued_at, expires_at, destroyed_at, \
                             destroy_reason) VALUES (?1, NULL, '', 0, ?2, ?3, ?2, ?4)",
                            params![key_id.as_bytes(), secs(*at)?, secs(*expires_at)?, reason_code(*reason)],
                        )
                        .map_err(err)?;
                    }
                    if let Some(r) = request {
                        let known: Option<i64> = tx
                            .query_row(
                                "SELECT 1 FROM ekg_requests WHERE key_id = ?1",
                                params![key_id.as_bytes()],
                                |row| row.get(0),
                            )
                            .optional()
                            .map_err(err)?;
                        if known.is_none() {
                            insert_request(&tx, key_id, r)?;
                        }
                    }
                }
                Record::Purged { key_id } => {
                    tx.execute("DELETE FROM ekg_requests WHERE key_id = ?1", params![key_id.as_bytes()])
                        .map_err(err)?;
                    tx.execute("DELETE FROM ekg_recipients WHERE key_id = ?1", params![key_id.as_bytes()])
                        .map_err(err)?;
                    tx.execute("DELETE FROM ekg_keys WHERE key_id = ?1", params![key_id.as_bytes()]).map_err(err)?;
                }
            }
        }
        tx.commit().map_err(err)
    }

    fn load(&self) -> Result<Vec<Record<Concrete>>, StoreError> {
        let mut out = Vec::new();
        let mut keys = self
            .conn
            .prepare(
                "SELECT key_id, handle, sender, policy, issued_at, expires_at, destroyed_at, destroy_reason \
                 FROM ekg_keys ORDER BY issued_at, key_id",
            )
            .map_err(err)?;
        let rows = keys
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .map_err(err)?;
        for row in rows {
            let (id, handle, sender, policy, issued_at, expires_at, destroyed_at, destroy_reason) = row.map_err(err)?;
            let key_id = rows::key_id(&id)?;
            let key = KeyRow { key_id, handle, sender, policy, issued_at, expires_at, destroyed_at, destroy_reason };
            let recipients = self.recipients_of(&key_id)?;
            let request = self.request_of(&key_id)?;
            out.extend(rows::key_records(key, recipients, request)?);
        }
        Ok(out)
    }
}

impl SqliteStore {
    fn recipients_of(&self, key_id: &KeyId) -> Result<Vec<RecipientRow>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT address, cert, released_at, position, deliveries FROM ekg_recipients WHERE key_id = ?1",
            )
            .map_err(err)?;
        let rows = q
            .query_map(params![key_id.as_bytes()], |r| {
                Ok(RecipientRow {
                    address: r.get(0)?,
                    cert: r.get(1)?,
                    released_at: r.get(2)?,
                    position: r.get(3)?,
                    deliveries: r.get(4)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    fn request_of(&self, key_id: &KeyId) -> Result<Option<RequestRow>, StoreError> {
        self.conn
            .prepare_cached("SELECT sender, nonce, request_time FROM ekg_requests WHERE key_id = ?1")
            .map_err(err)?
            .query_row(params![key_id.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(err)
    }
}

fn insert_request(
    tx: &rusqlite::Transaction<'_>,
    key_id: &KeyId,
    r: &RequestRecord<Concrete>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO ekg_requests (sender, nonce, request_time, key_id) VALUES (?1, ?2, ?3, ?4)",
        params![r.id.sender.to_string(), r.id.nonce.as_bytes(), secs(r.time)?, key_id.as_bytes()],
    )
    .map_err(err)?;
    Ok(())
}
