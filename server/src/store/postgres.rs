//! The store on PostgreSQL: several gatekeeper processes, one database, every piece of
//! single-use state in the database (`docs/server.md`, "Several instances"). The same path as
//! every store: a decision reads its key (one statement), the core decides, and the records
//! are written by one statement, `SELECT ekg_append(...)` (`schema::POSTGRES_V3`), that
//! checks every key's version and every answered request first and writes only if all hold.
//!
//! Under READ COMMITTED (PostgreSQL's default, which this relies on) a concurrent writer of
//! the same key waits for the row lock, then re-checks `version = $read` against the
//! committed row: of two requests that read one version, exactly one writes, and the other
//! reads again and decides again. Answered requests are a primary key: a second answer is a
//! unique violation, and the function returns false having written nothing. No lock is held
//! by this process around a decision: requests on different keys run in parallel, on as many
//! connections as the pool holds. Common path: two round trips per request (read, write).
//!
//! The connection is the `postgres` crate (the synchronous face of `tokio-postgres`, the most
//! used native PostgreSQL client for Rust): the core's `Store` is synchronous and runs on the
//! request's blocking thread, so a synchronous client fits without a second async layer.
//! Statements are prepared once per connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ekg_core::UnixTime;
use ekg_core::ledger::{Answered, Batch, Concrete, LedgerConfig, LoadedKey, Record, Store, StoreError, Version};
use ekg_core::{KeyId, RequestId, StoredKey};
use postgres::{Client, NoTls, Statement};

use super::plan::{Plan, decode_records, secs};
use super::schema;
use super::v2;

/// The PostgreSQL store: a handle on a pool of connections. Clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
    /// The client this handle writes for, if any (`crate::caller`): checked before the
    /// append's round trip. Inside it, the session's statement timeout bounds a stall.
    caller: Option<crate::caller::Caller>,
}

struct Shared {
    config: postgres::Config,
    pool: Mutex<Vec<Conn>>,
    round_trips: AtomicU64,
}

impl core::fmt::Debug for PostgresStore {
    /// The URL may carry a password: only the database name and hosts are shown.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let c = &self.shared.config;
        write!(f, "PostgresStore({:?} on {:?})", c.get_dbname(), c.get_hosts())
    }
}

struct Conn {
    client: Client,
    st: Statements,
}

struct Statements {
    load_key: Statement,
    load_request: Statement,
    append: Statement,
    append_tokens: Statement,
    token_used: Statement,
    due: Statement,
    next_deadline: Statement,
    live_handle: Statement,
    held: Statement,
}

/// Session settings unless the URL gives `options`: a statement waits at most 5 s for a row
/// lock and runs at most 10 s; a transaction idle for 15 s is ended by the server.
pub const SESSION_TIMEOUTS: &str =
    "-c lock_timeout=5000 -c statement_timeout=10000 -c idle_in_transaction_session_timeout=15000";

/// Idle connections kept at most (more are opened under load and closed after use).
const POOL_KEPT: usize = 16;

fn err(e: impl core::fmt::Display) -> StoreError {
    StoreError(format!("postgres: {e}"))
}

/// A client error with what the server or the operating system said (`db error` alone does
/// not tell an operator that the database does not exist).
fn pg(e: postgres::Error) -> StoreError {
    err(pg_detail(&e))
}

fn pg_detail(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({}, SQLSTATE {})", db.message(), db.severity(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

const KEY_COLUMNS: &str = "k.version, r.body FROM ekg_key k LEFT JOIN ekg_record r ON r.key_id = k.key_id";

impl Statements {
    fn prepare(c: &mut Client) -> Result<Statements, postgres::Error> {
        Ok(Statements {
            load_key: c.prepare(&format!("SELECT {KEY_COLUMNS} WHERE k.key_id = $1 ORDER BY r.id"))?,
            load_request: c.prepare(
                "SELECT q.key_id, k.version, r.body FROM ekg_request q JOIN ekg_key k ON k.key_id = q.key_id \
                 LEFT JOIN ekg_record r ON r.key_id = q.key_id WHERE q.sender = $1 AND q.nonce = $2 ORDER BY r.id",
            )?,
            append: c.prepare(super::log::POSTGRES_APPEND)?,
            append_tokens: c.prepare(super::token::POSTGRES_APPEND)?,
            token_used: c.prepare(super::token::USED)?,
            due: c.prepare("SELECT key_id FROM ekg_key WHERE deadline <= $1 ORDER BY deadline LIMIT $2")?,
            next_deadline: c.prepare("SELECT MIN(deadline) FROM ekg_key")?,
            live_handle: c.prepare(
                "SELECT r.body FROM ekg_key k JOIN ekg_record r ON r.key_id = k.key_id WHERE k.held ORDER BY r.id LIMIT 1",
            )?,
            held: c.prepare("SELECT COUNT(*) FROM ekg_key WHERE held")?,
        })
    }
}

impl PostgresStore {
    /// Checks the database answers now: a read and an empty call of `ekg_append` (a write
    /// transaction's round trip).
    pub fn probe(&mut self) -> Result<(), StoreError> {
        self.count("SELECT count(*) FROM ekg_schema")?;
        let caller = self.caller.take();
        let written = self.append_if_unchanged(&Batch {
            records: Vec::new(),
            keys: Vec::new(),
            log: Vec::new(),
            tokens: Vec::new(),
        });
        self.caller = caller;
        written.map(|_| ())
    }

    /// The store's identity, if it has one (`super::identity`).
    pub fn identity(&mut self) -> Result<Option<super::identity::Identity>, StoreError> {
        let row = self.with(|c| c.client.query_opt(super::identity::READ, &[]).map_err(pg))?;
        row.map(|r| super::identity::from_row(r.get(0), r.get(1))).transpose()
    }

    /// Sets the identity `store_id` if there is none, else raises its generation; the new
    /// generation (`None`: the database holds another identity).
    pub fn advance_generation(&mut self, store_id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        let id = store_id.as_slice();
        let row = self.run(false, |c| c.client.query_opt(super::identity::ADVANCE, &[&id]).map_err(pg))?;
        Ok(row.map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
    }

    /// Keys held (pending or retained) that answered a request of `sender` (the quota).
    pub fn held_of(&mut self, sender: &str) -> Result<u64, StoreError> {
        let n: i64 = self.with(|c| {
            c.client
                .query_one(
                    "SELECT count(*) FROM ekg_request q JOIN ekg_key k ON k.key_id = q.key_id WHERE q.sender = $1 AND k.held",
                    &[&sender],
                )
                .map(|r| r.get(0))
                .map_err(pg)
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// This handle's appends are sent only while `caller` waits (`None`: always).
    pub fn set_caller(&mut self, caller: Option<crate::caller::Caller>) {
        self.caller = caller;
    }

    /// Connects to `url` (`postgres://user@host:port/db`), migrated to [`schema::VERSION`]
    /// under an advisory lock, so instances starting together migrate once (`config`: the
    /// retention under which a migrated key's deadline is computed).
    pub fn connect(url: &str, config: LedgerConfig) -> Result<PostgresStore, StoreError> {
        let mut pg_config: postgres::Config = url.parse().map_err(|e| err(format!("database URL: {e}")))?;
        if pg_config.get_connect_timeout().is_none() {
            pg_config.connect_timeout(std::time::Duration::from_secs(5));
        }
        // An instance that stalls inside a transaction (paused, cut off) must not hold a key's
        // row lock for long, nor may a statement wait on one for long. A timeout is an error
        // (`storage_failed`, 503, nothing written), not a lost race. The URL's own `options`
        // win.
        if pg_config.get_options().is_none() {
            pg_config.options(SESSION_TIMEOUTS);
        }
        pg_config.keepalives_idle(std::time::Duration::from_secs(30));
        pg_config.tcp_user_timeout(std::time::Duration::from_secs(20));
        pg_config.application_name("ekg-serve");
        let store = PostgresStore {
            shared: Arc::new(Shared {
                config: pg_config,
                pool: Mutex::new(Vec::new()),
                round_trips: AtomicU64::new(0),
            }),
            caller: None,
        };
        let first = store.connect_one(Some(config))?;
        store.give_back(first);
        Ok(store)
    }

    /// Statements sent so far, by every handle (each one round trip).
    pub fn round_trips(&self) -> u64 {
        self.shared.round_trips.load(Ordering::Relaxed)
    }

    /// The schema version of the database.
    pub fn schema_version(&mut self) -> Result<i64, StoreError> {
        self.count("SELECT COALESCE(MAX(version), 0)::BIGINT FROM ekg_schema")
    }

    /// Runs a read-only query returning one BIGINT (tests and checks).
    pub fn count(&mut self, sql: &str) -> Result<i64, StoreError> {
        self.with(|c| c.client.query_one(sql, &[]).map(|r| r.get(0)).map_err(pg))
    }

    /// The issuance log's size (entries appended).
    pub fn log_size(&mut self) -> Result<u64, StoreError> {
        self.count(super::log::SIZE).map(|n| u64::try_from(n).unwrap_or(0))
    }

    /// The issuance log's entries `[start, end)`, at most [`super::log::MAX_RANGE`].
    pub fn log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let (start, end) = super::log::bounds(start, end)?;
        self.with(|c| {
            let rows = c.client.query(super::log::RANGE, &[&start, &end]).map_err(pg)?;
            rows.iter().map(|r| r.try_get(0).map_err(pg)).collect()
        })
    }

    /// Stores a signed head of the log, of `size` entries.
    pub fn put_head(&mut self, size: u64, head: &[u8]) -> Result<(), StoreError> {
        let size = i64::try_from(size).map_err(|_| StoreError("log size out of range".into()))?;
        self.with(|c| c.client.execute(super::log::PUT_HEAD, &[&size, &head]).map(drop).map_err(pg))
    }

    /// The latest signed head, if any.
    pub fn latest_head(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            c.client.query_opt(super::log::LATEST_HEAD, &[]).map_err(pg)?.map(|r| r.try_get(0).map_err(pg)).transpose()
        })
    }

    /// Every record in the database, key by key (checks and tests).
    pub fn records(&mut self) -> Result<Vec<Record<Concrete>>, StoreError> {
        self.with(|c| {
            let rows = c.client.query("SELECT body FROM ekg_record ORDER BY key_id, id", &[]).map_err(pg)?;
            let bodies: Vec<Vec<u8>> = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>().map_err(pg)?;
            decode_records(bodies.iter().map(Vec::as_slice))
        })
    }

    fn connect_one(&self, migrate_with: Option<LedgerConfig>) -> Result<Option<Conn>, StoreError> {
        let c = &self.shared.config;
        let hosts = format!("{:?} port {:?}", c.get_hosts(), c.get_ports());
        let mut client = c.connect(NoTls).map_err(|e| err(format!("{hosts}: {}", pg_detail(&e))))?;
        if let Some(config) = migrate_with {
            migrate(&mut client, config)?;
        }
        let st = Statements::prepare(&mut client).map_err(pg)?;
        Ok(Some(Conn { client, st }))
    }

    fn give_back(&self, conn: Option<Conn>) {
        if let (Some(conn), Ok(mut pool)) = (conn, self.shared.pool.lock())
            && !conn.client.is_closed()
            && pool.len() < POOL_KEPT
        {
            pool.push(conn);
        }
    }

    /// Runs `f` on a pooled connection (a new one if none is idle), counting one round trip.
    /// A connection found broken empties the pool (the server restarted, or an administrator
    /// ended the sessions: the others are broken too); a read on it is tried once more on a
    /// fresh connection, a write is not (it may have committed: `storage_failed`, and the
    /// client's retry reads what is there).
    fn with<R>(&self, f: impl Fn(&mut Conn) -> Result<R, StoreError>) -> Result<R, StoreError> {
        self.run(true, f)
    }

    fn run<R>(&self, read: bool, f: impl Fn(&mut Conn) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let idle = self.shared.pool.lock().map_err(|_| err("the pool lock is poisoned"))?.pop();
        let fresh = idle.is_none();
        let mut conn = match idle {
            Some(c) if !c.client.is_closed() => c,
            _ => self.connect_one(None)?.ok_or_else(|| err("no connection"))?,
        };
        let result = f(&mut conn);
        self.shared.round_trips.fetch_add(1, Ordering::Relaxed);
        if result.is_err() && conn.client.is_closed() {
            if let Ok(mut pool) = self.shared.pool.lock() {
                pool.clear();
            }
            if read && !fresh {
                return self.run(read, f);
            }
            return result;
        }
        self.give_back(Some(conn));
        result
    }
}

fn loaded(rows: &[postgres::Row], first: usize) -> Result<LoadedKey<Concrete>, StoreError> {
    let Some(row) = rows.first() else { return Ok(LoadedKey::absent()) };
    let version: i64 = row.try_get(first).map_err(pg)?;
    let mut bodies = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(b) = r.try_get::<_, Option<Vec<u8>>>(first + 1).map_err(pg)? {
            bodies.push(b);
        }
    }
    Ok(LoadedKey {
        records: decode_records(bodies.iter().map(Vec::as_slice))?,
        version: Version(u64::try_from(version).map_err(|_| err("a negative version"))?),
    })
}

impl Store<Concrete> for PostgresStore {
    fn load_key(&mut self, key_id: &KeyId) -> Result<LoadedKey<Concrete>, StoreError> {
        self.with(|c| loaded(&c.client.query(&c.st.load_key, &[&key_id.as_bytes()]).map_err(pg)?, 0))
    }

    fn load_request(&mut self, id: &RequestId) -> Result<Option<Answered<Concrete>>, StoreError> {
        self.with(|c| {
            let rows =
                c.client.query(&c.st.load_request, &[&id.sender.to_string(), &id.nonce.as_bytes()]).map_err(pg)?;
            let Some(first) = rows.first() else { return Ok(None) };
            let key_id = v2::key_id(&first.try_get::<_, Vec<u8>>(0).map_err(pg)?)?;
            Ok(Some((key_id, loaded(&rows, 1)?)))
        })
    }

    fn append_if_unchanged(&mut self, batch: &Batch<Concrete>) -> Result<bool, StoreError> {
        let plan = Plan::of(batch)?;
        let ids: Vec<&[u8]> = plan.keys.iter().map(|k| k.key_id.as_slice()).collect();
        let read: Vec<i64> = plan.keys.iter().map(|k| k.read).collect();
        let deadline: Vec<i64> = plan.keys.iter().map(|k| k.after.map_or(0, |(d, _)| d)).collect();
        let held: Vec<bool> = plan.keys.iter().map(|k| k.after.is_some_and(|(_, h)| h)).collect();
        let purge: Vec<bool> = plan.keys.iter().map(|k| k.after.is_none()).collect();
        let replace: Vec<bool> = plan.keys.iter().map(|k| k.replace).collect();
        let (mut r_keys, mut r_bodies): (Vec<&[u8]>, Vec<&[u8]>) = (Vec::new(), Vec::new());
        for k in &plan.keys {
            for b in &k.records {
                r_keys.push(&k.key_id);
                r_bodies.push(b);
            }
        }
        let q_senders: Vec<&str> = plan.requests.iter().map(|(s, _, _)| s.as_str()).collect();
        let q_nonces: Vec<&[u8]> = plan.requests.iter().map(|(_, n, _)| n.as_slice()).collect();
        let q_keys: Vec<&[u8]> = plan.requests.iter().map(|(_, _, k)| k.as_slice()).collect();
        let l_entries: Vec<&[u8]> = plan.log.iter().map(Vec::as_slice).collect();
        let t_issuers: Vec<&str> = plan.tokens.iter().map(|(i, _, _)| i.as_str()).collect();
        let t_jtis: Vec<&str> = plan.tokens.iter().map(|(_, j, _)| j.as_str()).collect();
        let t_until: Vec<i64> = plan.tokens.iter().map(|(_, _, u)| *u).collect();
        let caller = self.caller.clone();
        self.run(false, |c| {
            if let Some(caller) = &caller {
                caller.check()?;
            }
            let keys: [&(dyn postgres::types::ToSql + Sync); 11] =
                [&ids, &read, &deadline, &held, &purge, &replace, &r_keys, &r_bodies, &q_senders, &q_nonces, &q_keys];
            // A batch without a token keeps the version-4 statement (no second exception block).
            let row = if plan.tokens.is_empty() {
                let params: Vec<_> = keys.iter().copied().chain([&l_entries as _]).collect();
                c.client.query_one(&c.st.append, &params)
            } else {
                let tokens: [&(dyn postgres::types::ToSql + Sync); 4] = [&t_issuers, &t_jtis, &t_until, &l_entries];
                let params: Vec<_> = keys.iter().copied().chain(tokens).collect();
                c.client.query_one(&c.st.append_tokens, &params)
            }
            .map_err(pg)?;
            row.try_get(0).map_err(pg)
        })
    }

    fn due(&mut self, now: UnixTime, limit: usize) -> Result<Vec<KeyId>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(|c| {
            let rows = c.client.query(&c.st.due, &[&secs(now)?, &limit]).map_err(pg)?;
            rows.iter().map(|r| v2::key_id(&r.try_get::<_, Vec<u8>>(0).map_err(pg)?)).collect()
        })
    }

    fn next_deadline(&mut self) -> Result<Option<UnixTime>, StoreError> {
        self.with(|c| {
            let row = c.client.query_one(&c.st.next_deadline, &[]).map_err(pg)?;
            Ok(row.try_get::<_, Option<i64>>(0).map_err(pg)?.map(v2::time))
        })
    }

    fn held_keys(&mut self) -> Result<u64, StoreError> {
        self.with(|c| {
            let row = c.client.query_one(&c.st.held, &[]).map_err(pg)?;
            Ok(u64::try_from(row.try_get::<_, i64>(0).map_err(pg)?).unwrap_or(0))
        })
    }

    fn live_handle(&mut self) -> Result<Option<StoredKey>, StoreError> {
        let body: Option<Vec<u8>> = self.with(|c| {
            let row = c.client.query_opt(&c.st.live_handle, &[]).map_err(pg)?;
            row.map(|r| r.try_get(0)).transpose().map_err(pg)
        })?;
        match body.map(|b| decode_records([b.as_slice()])).transpose()?.as_deref() {
            Some([Record::Issued { handle, .. }]) => Ok(Some(handle.clone())),
            _ => Ok(None),
        }
    }

    fn token_used(&mut self, used: &ekg_core::access::token::TokenUse) -> Result<bool, StoreError> {
        self.with(|c| {
            let row = c.client.query_one(&c.st.token_used, &[&used.issuer, &used.jti]).map_err(pg)?;
            row.try_get(0).map_err(pg)
        })
    }

    fn purge_tokens(&mut self, now: UnixTime) -> Result<u64, StoreError> {
        let now = secs(now)?;
        self.run(false, |c| c.client.execute(super::token::PURGE, &[&now]).map_err(pg))
    }
}

impl Drop for Shared {
    /// The client runs its own small runtime, which may not be dropped on an async thread
    /// (where a server drops its last reference): close the pool on a thread of its own, not
    /// waited for.
    fn drop(&mut self) {
        let pool = self.pool.get_mut().map(std::mem::take).unwrap_or_default();
        if pool.is_empty() {
            return;
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            // Detached: a database that no longer answers must not hold up shutdown.
            drop(std::thread::spawn(move || drop(pool)));
        } else {
            drop(pool);
        }
    }
}

fn migrate(client: &mut Client, config: LedgerConfig) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg)?;
    // One migrating instance at a time; the others wait, then find the work done.
    tx.execute("SELECT pg_advisory_xact_lock(7236916)", &[]).map_err(pg)?;
    tx.batch_execute(schema::SCHEMA_TABLE).map_err(pg)?;
    tx.batch_execute(super::identity::TABLE).map_err(pg)?;
    let have: i64 =
        tx.query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM ekg_schema", &[]).map(|r| r.get(0)).map_err(pg)?;
    if have > schema::VERSION {
        return Err(StoreError(format!("database schema {have} is newer than this build's {}", schema::VERSION)));
    }
    for (v, ddl) in schema::LEGACY.iter().filter(|(v, _)| *v > have) {
        tx.batch_execute(ddl).map_err(pg)?;
        tx.execute("INSERT INTO ekg_schema (version) VALUES ($1)", &[v]).map_err(pg)?;
    }
    if have < 3 {
        tx.batch_execute(schema::POSTGRES_V3).map_err(pg)?;
        for records in read_v2(&mut tx)? {
            let m = schema::migrated(records, config)?;
            tx.execute(
                "INSERT INTO ekg_key (key_id, version, deadline, held) VALUES ($1, 1, $2, $3)",
                &[&m.key_id, &m.deadline, &m.held],
            )
            .map_err(pg)?;
            for body in &m.records {
                tx.execute("INSERT INTO ekg_record (key_id, body) VALUES ($1, $2)", &[&m.key_id, body]).map_err(pg)?;
            }
            if let Some((sender, nonce)) = &m.request {
                tx.execute(
                    "INSERT INTO ekg_request (sender, nonce, key_id) VALUES ($1, $2, $3)",
                    &[sender, nonce, &m.key_id],
                )
                .map_err(pg)?;
            }
        }
        tx.batch_execute(schema::DROP_LEGACY).map_err(pg)?;
        tx.execute("INSERT INTO ekg_schema (version) VALUES (3)", &[]).map_err(pg)?;
    }
    if have < 4 {
        tx.batch_execute(super::log::POSTGRES_V4).map_err(pg)?;
        tx.execute("INSERT INTO ekg_schema (version) VALUES (4)", &[]).map_err(pg)?;
    }
    if have < 5 {
        tx.batch_execute(super::token::POSTGRES_V5).map_err(pg)?;
        tx.execute("INSERT INTO ekg_schema (version) VALUES (5)", &[]).map_err(pg)?;
    }
    tx.commit().map_err(pg)
}

/// Every key of a version-2 database, as records.
fn read_v2(tx: &mut postgres::Transaction<'_>) -> Result<Vec<Vec<Record<Concrete>>>, StoreError> {
    let keys = tx
        .query(
            "SELECT key_id, handle, sender, policy, issued_at, expires_at, destroyed_at, destroy_reason \
             FROM ekg_keys ORDER BY issued_at, key_id",
            &[],
        )
        .map_err(pg)?;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let raw: Vec<u8> = k.try_get(0).map_err(pg)?;
        let key = v2::KeyRow {
            key_id: v2::key_id(&raw)?,
            handle: k.try_get(1).map_err(pg)?,
            sender: k.try_get(2).map_err(pg)?,
            policy: k.try_get(3).map_err(pg)?,
            issued_at: k.try_get(4).map_err(pg)?,
            expires_at: k.try_get(5).map_err(pg)?,
            destroyed_at: k.try_get(6).map_err(pg)?,
            destroy_reason: k.try_get(7).map_err(pg)?,
        };
        let mut recipients = Vec::new();
        for r in tx
            .query(
                "SELECT address, cert, released_at, position, deliveries FROM ekg_recipients WHERE key_id = $1",
                &[&raw],
            )
            .map_err(pg)?
        {
            recipients.push(v2::RecipientRow {
                address: r.try_get(0).map_err(pg)?,
                cert: r.try_get(1).map_err(pg)?,
                released_at: r.try_get(2).map_err(pg)?,
                position: r.try_get(3).map_err(pg)?,
                deliveries: r.try_get(4).map_err(pg)?,
            });
        }
        let request = match tx
            .query_opt("SELECT sender, nonce, request_time FROM ekg_requests WHERE key_id = $1", &[&raw])
            .map_err(pg)?
        {
            Some(r) => Some((r.try_get(0).map_err(pg)?, r.try_get(1).map_err(pg)?, r.try_get(2).map_err(pg)?)),
            None => None,
        };
        out.push(v2::key_records(key, recipients, request)?);
    }
    Ok(out)
}
