//! The durable store on SQLite (bundled): one file, one gatekeeper process, any number of
//! request threads, nothing about keys kept in memory.
//!
//! - **Reads** (a key, a request, what is due) run on a pool of read-only connections: WAL
//!   lets them read the last committed state while a write is in flight.
//! - **Writes** are committed in groups: a request's conditional append joins a queue; the
//!   first thread to find no commit in flight takes every append queued so far and writes
//!   them in one `BEGIN IMMEDIATE` transaction, each under a savepoint of its own (an append
//!   whose condition fails is rolled back alone), then one `COMMIT`, so one fsync
//!   (`synchronous = FULL`) for the whole group. Appends that arrive meanwhile form the next
//!   group. Each caller returns only once the group holding its append is committed: a
//!   response still exists only after its own records are durable.
//!
//! Crash points (`docs/server.md`, "Durability"): a crash before a group's commit leaves none
//! of it (SQLite rolls back the WAL's uncommitted frames); after it, all of it. No response
//! of the group has been sent before the commit returned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use ekg_core::UnixTime;
use ekg_core::ledger::{Answered, Batch, Concrete, LedgerConfig, LoadedKey, Record, Store, StoreError, Version};
use ekg_core::{KeyId, RequestId, StoredKey};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::identity::{self, Identity};
use super::plan::{Plan, decode_records, secs};
use super::v2;
use crate::caller::Caller;

mod migrate;
use migrate::migrate;

/// The SQLite store: a handle on one database. Clones share it (its connections and its
/// group commit), one per request thread.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
    /// The client this handle writes for, if any: its appends are dropped, not written, once
    /// it no longer waits (`crate::caller`).
    caller: Option<Caller>,
}

struct Shared {
    path: PathBuf,
    /// The database file's inode at open: a file removed or replaced under a running store
    /// is noticed by [`SqliteStore::probe`].
    inode: u64,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Writer>,
    committed: Condvar,
    /// Groups committed, appends in them (their ratio: appends per fsync), and appends
    /// written (the others' conditions failed).
    groups: AtomicU64,
    appends: AtomicU64,
    written: AtomicU64,
    /// An exclusive lock on the database file for as long as the store is open: one process
    /// per SQLite file (several instances share a PostgreSQL database).
    _lock: std::fs::File,
}

/// Batches per transaction in [`SqliteStore::import`].
pub const IMPORT_CHUNK: usize = 10_000;

/// An append waiting for its group: its ticket, its plan, its caller.
type Queued = (u64, Plan, Option<Caller>);

struct Writer {
    /// The write connection (taken by the thread committing a group).
    conn: Option<Connection>,
    queue: Vec<Queued>,
    results: BTreeMap<u64, Result<bool, StoreError>>,
    next_ticket: u64,
    leading: bool,
}

impl core::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SqliteStore({:?})", self.shared.path)
    }
}

fn err(e: impl core::fmt::Display) -> StoreError {
    StoreError(format!("sqlite: {e}"))
}

fn poisoned() -> StoreError {
    err("a store lock is poisoned")
}

/// Read connections kept open at most (more are opened under load and closed after use).
const READERS_KEPT: usize = 16;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, migrated to [`super::schema::VERSION`]
    /// (`config`: the retention under which a migrated key's deadline is computed). Refuses a
    /// database written by a newer schema, and a file another process has open.
    /// A new database file is created readable by its owner only (0600); SQLite gives its
    /// WAL and shared-memory files the same mode.
    pub fn open(path: &Path, config: LedgerConfig) -> Result<SqliteStore, StoreError> {
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
        let mut conn = Connection::open(path).map_err(err)?;
        // WAL: readers never block the writer; FULL: every commit is fsynced.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        migrate(&mut conn, config)?;
        let writer =
            Writer { conn: Some(conn), queue: Vec::new(), results: BTreeMap::new(), next_ticket: 0, leading: false };
        let inode = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(path).map_err(|e| err(format!("{}: {e}", path.display())))?.ino()
        };
        let shared = Shared {
            path: path.to_owned(),
            inode,
            readers: Mutex::new(Vec::new()),
            writer: Mutex::new(writer),
            committed: Condvar::new(),
            groups: AtomicU64::new(0),
            appends: AtomicU64::new(0),
            written: AtomicU64::new(0),
            _lock: lock,
        };
        Ok(SqliteStore { shared: Arc::new(shared), caller: None })
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(version)
    }

    /// Groups committed (each one fsync), the appends they held, and those written (the
    /// others' conditions failed: read and decided again).
    pub fn commit_counts(&self) -> (u64, u64, u64) {
        let s = &self.shared;
        (s.groups.load(Ordering::Relaxed), s.appends.load(Ordering::Relaxed), s.written.load(Ordering::Relaxed))
    }

    /// Runs `f` on a read connection (read-only checks in tests and the crash test too).
    pub fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let conn = self.shared.readers.lock().map_err(|_| poisoned())?.pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let c = Connection::open_with_flags(&self.shared.path, flags).map_err(err)?;
                c.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
                c
            }
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.shared.readers.lock()
            && pool.len() < READERS_KEPT
        {
            pool.push(conn);
        }
        result
    }

    /// Every record in the database, key by key (checks and tests; the gatekeeper never
    /// reads the whole store).
    pub fn records(&self) -> Result<Vec<Record<Concrete>>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare("SELECT body FROM ekg_record ORDER BY key_id, id").map_err(err)?;
            let bodies: Vec<Vec<u8>> =
                q.query_map([], |r| r.get(0)).map_err(err)?.collect::<Result<_, _>>().map_err(err)?;
            decode_records(bodies.iter().map(Vec::as_slice))
        })
    }

    /// Appends `batches` in transactions of [`IMPORT_CHUNK`] batches each, under the same
    /// conditions as an append (a batch whose condition fails is skipped); the number
    /// written. For loading a store in bulk before a measurement (`ekg load --prefill`) or a
    /// migration: it takes the write connection, so appends wait meanwhile.
    pub fn import(&self, batches: impl IntoIterator<Item = Batch<Concrete>>) -> Result<u64, StoreError> {
        let mut w = self.shared.writer.lock().map_err(|_| poisoned())?;
        let conn = w.conn.as_mut().ok_or_else(|| err("the write connection is busy"))?;
        let mut written = 0u64;
        let mut batches = batches.into_iter().peekable();
        while batches.peek().is_some() {
            let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
            for batch in batches.by_ref().take(IMPORT_CHUNK) {
                let plan = Plan::of(&batch)?;
                let sp = tx.savepoint().map_err(err)?;
                if write_plan(&sp, &plan)? {
                    sp.commit().map_err(err)?;
                    written += 1;
                }
            }
            tx.commit().map_err(err)?;
        }
        Ok(written)
    }

    /// Checks the store answers now: its file is still the one opened (not removed or
    /// replaced), a read, and an empty write through the group commit (`BEGIN IMMEDIATE` and
    /// `COMMIT`: the write lock is obtainable).
    pub fn probe(&self) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt;
        let path = &self.shared.path;
        match std::fs::metadata(path) {
            Ok(m) if m.ino() == self.shared.inode => {}
            Ok(_) => return Err(err(format!("{}: the database file was replaced while open", path.display()))),
            Err(e) => return Err(err(format!("{}: the database file is gone while open: {e}", path.display()))),
        }
        self.read(version)?;
        self.append(Plan { keys: Vec::new(), requests: Vec::new(), log: Vec::new(), tokens: Vec::new() }).map(|_| ())
    }

    /// The issuance log's size (entries appended).
    pub fn log_size(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 = c.query_row(super::log::SIZE, [], |r| r.get(0)).map_err(err)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    /// The issuance log's entries `[start, end)`, at most [`super::log::MAX_RANGE`].
    pub fn log_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let (start, end) = super::log::bounds(start, end)?;
        self.read(|c| {
            let mut q = c.prepare_cached(super::log::RANGE).map_err(err)?;
            q.query_map(params![start, end], |r| r.get(0)).map_err(err)?.collect::<Result<_, _>>().map_err(err)
        })
    }

    /// Stores a signed head of the log, of `size` entries (on the write connection).
    pub fn put_head(&self, size: u64, head: &[u8]) -> Result<(), StoreError> {
        let size = i64::try_from(size).map_err(|_| err("log size out of range"))?;
        self.on_writer(|c| c.execute(super::log::PUT_HEAD, params![size, head]).map(drop).map_err(err))
    }

    /// Runs `f` on the write connection between groups (one statement, its own transaction).
    fn on_writer<R>(&self, f: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut w = self.shared.writer.lock().map_err(|_| poisoned())?;
        // Between groups: the connection is back in its place whenever the lock is held and no
        // group is being written.
        while w.leading {
            w = self.shared.committed.wait(w).map_err(|_| poisoned())?;
        }
        let conn = w.conn.as_mut().ok_or_else(|| err("the write connection is busy"))?;
        f(conn)
    }

    /// The latest signed head, if any.
    pub fn latest_head(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| c.query_row(super::log::LATEST_HEAD, [], |r| r.get(0)).optional().map_err(err))
    }

    /// The store's identity, if it has one (`super::identity`).
    pub fn identity(&self) -> Result<Option<Identity>, StoreError> {
        self.read(|c| {
            let row = c.query_row(identity::READ, [], |r| Ok((r.get(0)?, r.get(1)?))).optional().map_err(err)?;
            row.map(|(id, generation)| identity::from_row(id, generation)).transpose()
        })
    }

    /// Sets the identity `store_id` if there is none, else raises its generation; the new
    /// generation (`None`: the database holds another identity). On a connection of its own,
    /// waiting for the group commit's transaction like any writer.
    pub fn advance_generation(&self, store_id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        let conn = Connection::open(&self.shared.path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        let g: Option<i64> =
            conn.query_row(identity::ADVANCE, params![store_id.as_slice()], |r| r.get(0)).optional().map_err(err)?;
        Ok(g.map(|g| u64::try_from(g).unwrap_or(0)))
    }

    /// Keys held (pending or retained) that answered a request of `sender` (the quota).
    pub fn held_of(&self, sender: &str) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 =
                c.prepare_cached(HELD_OF).and_then(|mut s| s.query_row(params![sender], |r| r.get(0))).map_err(err)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    /// This handle's appends are written only while `caller` waits (`None`: always).
    pub fn set_caller(&mut self, caller: Option<Caller>) {
        self.caller = caller;
    }

    fn append(&self, plan: Plan) -> Result<bool, StoreError> {
        let shared = &self.shared;
        let mut w = shared.writer.lock().map_err(|_| poisoned())?;
        let ticket = w.next_ticket;
        w.next_ticket += 1;
        w.queue.push((ticket, plan, self.caller.clone()));
        loop {
            if let Some(result) = w.results.remove(&ticket) {
                return result;
            }
            if w.leading {
                w = shared.committed.wait(w).map_err(|_| poisoned())?;
                continue;
            }
            // No commit in flight: this thread commits every append queued so far.
            let group = std::mem::take(&mut w.queue);
            let Some(mut conn) = w.conn.take() else { return Err(err("the write connection is gone")) };
            w.leading = true;
            drop(w);
            let size = group.len() as u64;
            let results = write_group(&mut conn, group);
            let written = results.iter().filter(|(_, r)| matches!(r, Ok(true))).count() as u64;
            shared.written.fetch_add(written, Ordering::Relaxed);
            w = shared.writer.lock().map_err(|_| poisoned())?;
            w.conn = Some(conn);
            w.leading = false;
            w.results.extend(results);
            shared.groups.fetch_add(1, Ordering::Relaxed);
            shared.appends.fetch_add(size, Ordering::Relaxed);
            shared.committed.notify_all();
        }
    }
}

/// One group: one transaction, a savepoint per append, one commit. A failed commit fails
/// every append that would have been written.
/// An append whose caller has left by the time the group holds the write lock is not
/// written (`crate::caller`).
fn write_group(conn: &mut Connection, group: Vec<Queued>) -> Vec<(u64, Result<bool, StoreError>)> {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let e = err(e);
            return group.into_iter().map(|(t, _, _)| (t, Err(e.clone()))).collect();
        }
    };
    let mut results = Vec::with_capacity(group.len());
    for (ticket, plan, caller) in group {
        if let Some(Err(e)) = caller.as_ref().map(Caller::check) {
            results.push((ticket, Err(e)));
            continue;
        }
        let outcome = match tx.savepoint() {
            Err(e) => Err(err(e)),
            Ok(sp) => match write_plan(&sp, &plan) {
                Ok(true) => sp.commit().map(|()| true).map_err(err),
                // Dropping the savepoint rolls back what this append wrote.
                Ok(false) => Ok(false),
                Err(e) => Err(e),
            },
        };
        results.push((ticket, outcome));
    }
    if let Err(e) = tx.commit() {
        let e = err(e);
        for (_, r) in &mut results {
            if matches!(r, Ok(true)) {
                *r = Err(e.clone());
            }
        }
    }
    results
}

/// One append's conditions and writes (`false`: a condition failed).
fn write_plan(c: &Connection, plan: &Plan) -> Result<bool, StoreError> {
    for k in &plan.keys {
        let n = match (k.read, k.after) {
            (0, Some((deadline, held))) => c
                .prepare_cached(
                    "INSERT INTO ekg_key (key_id, version, deadline, held) VALUES (?1, 1, ?2, ?3) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![k.key_id, deadline, held]))
                .map_err(err)?,
            (0, None) => return Err(err("a new key purged in the batch that issues it")),
            (read, None) => {
                let n = c
                    .prepare_cached("DELETE FROM ekg_key WHERE key_id = ?1 AND version = ?2")
                    .and_then(|mut s| s.execute(params![k.key_id, read]))
                    .map_err(err)?;
                c.prepare_cached("DELETE FROM ekg_request WHERE key_id = ?1")
                    .and_then(|mut s| s.execute(params![k.key_id]))
                    .map_err(err)?;
                n
            }
            (read, Some((deadline, held))) => c
                .prepare_cached(
                    "UPDATE ekg_key SET version = version + 1, deadline = ?3, held = ?4 WHERE key_id = ?1 AND version = ?2",
                )
                .and_then(|mut s| s.execute(params![k.key_id, read, deadline, held]))
                .map_err(err)?,
        };
        if n != 1 {
            return Ok(false);
        }
        if k.replace || k.after.is_none() {
            c.prepare_cached("DELETE FROM ekg_record WHERE key_id = ?1")
                .and_then(|mut s| s.execute(params![k.key_id]))
                .map_err(err)?;
        }
        let mut insert = c.prepare_cached("INSERT INTO ekg_record (key_id, body) VALUES (?1, ?2)").map_err(err)?;
        for body in &k.records {
            insert.execute(params![k.key_id, body]).map_err(err)?;
        }
    }
    let mut insert = c
        .prepare_cached("INSERT INTO ekg_request (sender, nonce, key_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
        .map_err(err)?;
    for (sender, nonce, key_id) in &plan.requests {
        if insert.execute(params![sender, nonce, key_id]).map_err(err)? != 1 {
            return Ok(false);
        }
    }
    let mut record = c.prepare_cached(super::token::SQLITE_INSERT).map_err(err)?;
    for (issuer, jti, keep_until) in &plan.tokens {
        if record.execute(params![issuer, jti, keep_until]).map_err(err)? != 1 {
            return Ok(false);
        }
    }
    let mut append = c.prepare_cached(super::log::SQLITE_APPEND).map_err(err)?;
    for entry in &plan.log {
        append.execute(params![entry]).map_err(err)?;
    }
    Ok(true)
}

const LOAD_KEY: &str = "SELECT k.version, r.body FROM ekg_key k LEFT JOIN ekg_record r ON r.key_id = k.key_id \
                        WHERE k.key_id = ?1 ORDER BY r.id";
const HELD_OF: &str =
    "SELECT COUNT(*) FROM ekg_request q JOIN ekg_key k ON k.key_id = q.key_id WHERE q.sender = ?1 AND k.held = 1";

const LOAD_REQUEST: &str = "SELECT q.key_id, k.version, r.body FROM ekg_request q JOIN ekg_key k ON k.key_id = q.key_id \
                            LEFT JOIN ekg_record r ON r.key_id = q.key_id WHERE q.sender = ?1 AND q.nonce = ?2 ORDER BY r.id";

fn loaded(version: Option<i64>, bodies: &[Vec<u8>]) -> Result<LoadedKey<Concrete>, StoreError> {
    let Some(version) = version else { return Ok(LoadedKey::absent()) };
    Ok(LoadedKey {
        records: decode_records(bodies.iter().map(Vec::as_slice))?,
        version: Version(u64::try_from(version).map_err(|_| err("a negative version"))?),
    })
}

impl Store<Concrete> for SqliteStore {
    fn load_key(&mut self, key_id: &KeyId) -> Result<LoadedKey<Concrete>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare_cached(LOAD_KEY).map_err(err)?;
            let mut rows = q.query(params![key_id.as_bytes()]).map_err(err)?;
            let (mut version, mut bodies) = (None, Vec::new());
            while let Some(row) = rows.next().map_err(err)? {
                version = Some(row.get::<_, i64>(0).map_err(err)?);
                if let Some(body) = row.get::<_, Option<Vec<u8>>>(1).map_err(err)? {
                    bodies.push(body);
                }
            }
            loaded(version, &bodies)
        })
    }

    fn load_request(&mut self, id: &RequestId) -> Result<Option<Answered<Concrete>>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare_cached(LOAD_REQUEST).map_err(err)?;
            let mut rows = q.query(params![id.sender.to_string(), id.nonce.as_bytes()]).map_err(err)?;
            let (mut key, mut version, mut bodies) = (None, None, Vec::new());
            while let Some(row) = rows.next().map_err(err)? {
                key = Some(row.get::<_, Vec<u8>>(0).map_err(err)?);
                version = Some(row.get::<_, i64>(1).map_err(err)?);
                if let Some(body) = row.get::<_, Option<Vec<u8>>>(2).map_err(err)? {
                    bodies.push(body);
                }
            }
            match key {
                None => Ok(None),
                Some(k) => Ok(Some((v2::key_id(&k)?, loaded(version, &bodies)?))),
            }
        })
    }

    fn append_if_unchanged(&mut self, batch: &Batch<Concrete>) -> Result<bool, StoreError> {
        let plan = Plan::of(batch)?;
        self.append(plan)
    }

    fn due(&mut self, now: UnixTime, limit: usize) -> Result<Vec<KeyId>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            let mut q = c
                .prepare_cached("SELECT key_id FROM ekg_key WHERE deadline <= ?1 ORDER BY deadline LIMIT ?2")
                .map_err(err)?;
            let ids: Vec<Vec<u8>> = q
                .query_map(params![secs(now)?, limit], |r| r.get(0))
                .map_err(err)?
                .collect::<Result<_, _>>()
                .map_err(err)?;
            ids.iter().map(|id| v2::key_id(id)).collect()
        })
    }

    fn next_deadline(&mut self) -> Result<Option<UnixTime>, StoreError> {
        self.read(|c| {
            let t: Option<i64> = c.query_row("SELECT MIN(deadline) FROM ekg_key", [], |r| r.get(0)).map_err(err)?;
            Ok(t.map(v2::time))
        })
    }

    fn held_keys(&mut self) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM ekg_key WHERE held = 1", [], |r| r.get(0)).map_err(err)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn live_handle(&mut self) -> Result<Option<StoredKey>, StoreError> {
        let body: Option<Vec<u8>> = self.read(|c| {
            c.query_row(
                "SELECT r.body FROM ekg_key k JOIN ekg_record r ON r.key_id = k.key_id WHERE k.held = 1 ORDER BY r.id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)
        })?;
        match body.map(|b| decode_records([b.as_slice()])).transpose()?.as_deref() {
            Some([Record::Issued { handle, .. }]) => Ok(Some(handle.clone())),
            _ => Ok(None),
        }
    }

    fn token_used(&mut self, used: &ekg_core::access::token::TokenUse) -> Result<bool, StoreError> {
        self.read(|c| {
            c.prepare_cached(super::token::USED)
                .and_then(|mut s| s.query_row(params![used.issuer, used.jti], |r| r.get(0)))
                .map_err(err)
        })
    }

    fn purge_tokens(&mut self, now: UnixTime) -> Result<u64, StoreError> {
        let now = secs(now)?;
        self.on_writer(|c| c.execute(super::token::PURGE, params![now]).map(|n| n as u64).map_err(err))
    }
}

fn version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("SELECT COALESCE(MAX(version), 0) FROM ekg_schema", [], |r| r.get(0)).map_err(err)
}
