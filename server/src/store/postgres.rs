//! The shared store on PostgreSQL: several gatekeeper processes, one database, every piece of
//! single-use state in the database (`docs/server.md`, "Several instances").
//!
//! Each decision reads the key it is about ([`SharedStore::load_key`], one query, the key's
//! `version` remembered), is decided by the core's own code, and is written by one
//! transaction whose first statement is conditional:
//! `UPDATE ekg_keys SET version = version + 1 ... WHERE key_id = $1 AND version = $seen`.
//! Under READ COMMITTED (PostgreSQL's default, all this relies on) a concurrent writer of the
//! same key waits for the row lock, then re-checks the condition against the committed row:
//! of two gatekeepers that read one version, exactly one writes, and the other reads again and
//! decides again. The release itself is conditional too (`... AND deliveries < limit AND
//! (cert IS NULL OR cert = $cert)`), and new keys and answered requests are
//! `INSERT ... ON CONFLICT DO NOTHING` with the row count checked: the database, not a
//! process, holds single release and V14.
//!
//! The connection is the `postgres` crate (the synchronous face of `tokio-postgres`, the
//! most used native PostgreSQL client for Rust): the core's `Store` is synchronous and runs
//! on a blocking thread under the gatekeeper's lock, so a synchronous client fits without a
//! second async layer; sqlx would add compile-time query macros and its own pool for nothing
//! this store needs. Statements are prepared once per connection (one round trip each use).

use std::collections::HashMap;

use ekg_core::UnixTime;
use ekg_core::ids::{KeyId, RequestId, WrappedKey};
use ekg_core::ledger::{Concrete, Record, SharedStore, Store, StoreError};
use postgres::{Client, NoTls, Statement};

use super::rows::{self, KeyRow, RecipientRow, policy_code, reason_code, secs};
use super::schema;

/// The PostgreSQL store.
pub struct PostgresStore {
    config: postgres::Config,
    max_deliveries: i64,
    conn: Option<Conn>,
    /// Versions read by `load_key` since the last append (one decision's keys).
    seen: HashMap<KeyId, i64>,
    round_trips: u64,
}

impl core::fmt::Debug for PostgresStore {
    /// The URL may carry a password: only the database name and hosts are shown.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PostgresStore({:?} on {:?})", self.config.get_dbname(), self.config.get_hosts())
    }
}

struct Conn {
    client: Client,
    st: Statements,
}

struct Statements {
    load_key: Statement,
    key_of_request: Statement,
    insert_key: Statement,
    insert_recipients: Statement,
    insert_request: Statement,
    cas_key: Statement,
    cas_delete: Statement,
    release: Statement,
    destroy_recipients: Statement,
    destroy_key: Statement,
    purge_requests: Statement,
    due: Statement,
    next_deadline: Statement,
    live_handle: Statement,
    held: Statement,
}

/// Session settings unless the URL gives `options`: a statement waits at most 5 s for a row
/// lock and runs at most 10 s; a transaction idle for 15 s is ended by the server.
pub const SESSION_TIMEOUTS: &str =
    "-c lock_timeout=5000 -c statement_timeout=10000 -c idle_in_transaction_session_timeout=15000";

/// Versions remembered at most (a decision needs one or two).
const MAX_SEEN: usize = 64;

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

impl Statements {
    fn prepare(c: &mut Client) -> Result<Statements, postgres::Error> {
        Ok(Statements {
            load_key: c.prepare(
                "SELECT k.handle, k.sender, k.policy, k.issued_at, k.expires_at, k.destroyed_at, k.destroy_reason, \
                 k.version, q.sender, q.nonce, q.request_time, r.address, r.cert, r.released_at, r.position, \
                 r.deliveries FROM ekg_keys k LEFT JOIN ekg_requests q ON q.key_id = k.key_id \
                 LEFT JOIN ekg_recipients r ON r.key_id = k.key_id WHERE k.key_id = $1",
            )?,
            key_of_request: c.prepare("SELECT key_id FROM ekg_requests WHERE sender = $1 AND nonce = $2")?,
            insert_key: c.prepare(
                "INSERT INTO ekg_keys (key_id, handle, sender, policy, issued_at, expires_at, version, deadline) \
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7) ON CONFLICT DO NOTHING",
            )?,
            insert_recipients: c.prepare(
                "INSERT INTO ekg_recipients (key_id, position, address) \
                 SELECT $1, t.p, t.a FROM unnest($2::BIGINT[], $3::TEXT[]) AS t (p, a)",
            )?,
            insert_request: c.prepare(
                "INSERT INTO ekg_requests (sender, nonce, request_time, key_id) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            )?,
            cas_key: c.prepare(
                "UPDATE ekg_keys SET version = version + 1, deadline = $3 WHERE key_id = $1 AND version = $2",
            )?,
            cas_delete: c.prepare("DELETE FROM ekg_keys WHERE key_id = $1 AND version = $2")?,
            release: c.prepare(
                "UPDATE ekg_recipients SET cert = COALESCE(cert, $1), released_at = COALESCE(released_at, $2), \
                 deliveries = deliveries + 1 WHERE key_id = $3 AND address = $4 AND (cert IS NULL OR cert = $1) \
                 AND deliveries < (SELECT CASE WHEN k.policy = 1 THEN $5::BIGINT ELSE 1 END FROM ekg_keys k \
                 WHERE k.key_id = $3 AND k.handle IS NOT NULL)",
            )?,
            destroy_recipients: c.prepare("DELETE FROM ekg_recipients WHERE key_id = $1")?,
            destroy_key: c.prepare(
                "UPDATE ekg_keys SET handle = NULL, destroyed_at = $2, destroy_reason = $3, expires_at = $4 \
                 WHERE key_id = $1",
            )?,
            purge_requests: c.prepare("DELETE FROM ekg_requests WHERE key_id = $1")?,
            due: c.prepare("SELECT key_id FROM ekg_keys WHERE deadline <= $1 ORDER BY deadline LIMIT $2")?,
            next_deadline: c.prepare("SELECT MIN(deadline) FROM ekg_keys")?,
            live_handle: c.prepare("SELECT handle FROM ekg_keys WHERE handle IS NOT NULL LIMIT 1")?,
            held: c.prepare("SELECT COUNT(*) FROM ekg_keys WHERE handle IS NOT NULL")?,
        })
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`), migrated to [`schema::VERSION`]
    /// (under an advisory lock, so instances starting together migrate once). Releases under
    /// `same_certificate` are capped at `max_deliveries` by the database too.
    pub fn connect(url: &str, max_deliveries: u32) -> Result<PostgresStore, StoreError> {
        let mut config: postgres::Config = url.parse().map_err(|e| err(format!("database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        // An instance that stalls inside a transaction (paused, cut off) must not hold a key's
        // row lock for long, nor may a statement wait on one for long: every other instance
        // serialises on that lock. A timeout is an error (`storage_failed`, 503, nothing
        // written), not a lost race. The URL's own `options` win.
        if config.get_options().is_none() {
            config.options(SESSION_TIMEOUTS);
        }
        config.keepalives_idle(std::time::Duration::from_secs(30));
        config.tcp_user_timeout(std::time::Duration::from_secs(20));
        config.application_name("ekg-serve");
        let mut store = PostgresStore {
            config,
            max_deliveries: i64::from(max_deliveries),
            conn: None,
            seen: HashMap::new(),
            round_trips: 0,
        };
        store.conn()?;
        Ok(store)
    }

    /// Statements sent so far (each one round trip; `BEGIN` and `COMMIT` included).
    pub fn round_trips(&self) -> u64 {
        self.round_trips
    }

    /// The schema version of the database.
    pub fn schema_version(&mut self) -> Result<i64, StoreError> {
        let c = &mut self.conn()?.client;
        c.query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM ekg_schema", &[]).map(|r| r.get(0)).map_err(pg)
    }

    /// Runs a read-only query returning one BIGINT (tests and checks).
    pub fn count(&mut self, sql: &str) -> Result<i64, StoreError> {
        let c = &mut self.conn()?.client;
        c.query_one(sql, &[]).map(|r| r.get(0)).map_err(pg)
    }

    /// The connection, made (and the statements prepared) if there is none or it broke.
    fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let hosts = format!("{:?} port {:?}", self.config.get_hosts(), self.config.get_ports());
            let mut client = self.config.connect(NoTls).map_err(|e| err(format!("{hosts}: {}", pg_detail(&e))))?;
            migrate(&mut client)?;
            let st = Statements::prepare(&mut client).map_err(pg)?;
            self.conn = Some(Conn { client, st });
        }
        self.conn.as_mut().ok_or_else(|| err("no connection"))
    }

    fn write(
        &mut self,
        batch: &[Record<Concrete>],
        deadlines: &[(KeyId, Option<UnixTime>)],
    ) -> Result<bool, StoreError> {
        let max = self.max_deliveries;
        let seen = std::mem::take(&mut self.seen);
        let mut trips = 0;
        let conn = self.conn()?;
        let written = write_batch(conn, &seen, max, batch, deadlines, &mut trips);
        self.round_trips += trips;
        written
    }
}

/// One transaction: the conditions first, then the records; `false` (rolled back) when a
/// condition fails. `trips` counts the statements sent.
fn write_batch(
    conn: &mut Conn,
    seen: &HashMap<KeyId, i64>,
    max: i64,
    batch: &[Record<Concrete>],
    deadlines: &[(KeyId, Option<UnixTime>)],
    trips: &mut u64,
) -> Result<bool, StoreError> {
    let st = &conn.st;
    *trips += 2;
    let mut tx = conn.client.transaction().map_err(pg)?;
    let issued = |id: &KeyId| batch.iter().any(|r| matches!(r, Record::Issued { key_id, .. } if key_id == id));
    let deadline_of = |id: &KeyId| deadlines.iter().find(|(k, _)| k == id).and_then(|(_, d)| *d).map(secs).transpose();
    // First the conditions on keys that exist: each unchanged since read, or nothing.
    for (key_id, deadline) in deadlines.iter().filter(|(k, _)| !issued(k)) {
        let Some(version) = seen.get(key_id) else { return Ok(false) };
        *trips += 1;
        let n = match deadline {
            Some(t) => tx.execute(&st.cas_key, &[&key_id.as_bytes(), version, &secs(*t)?]),
            None => tx.execute(&st.cas_delete, &[&key_id.as_bytes(), version]),
        }
        .map_err(pg)?;
        if n != 1 {
            return Ok(false);
        }
    }
    for record in batch {
        match record {
            Record::Issued { key_id, handle, sender, recipients, policy, issued_at, expires_at, request } => {
                let id = key_id.as_bytes();
                let deadline = deadline_of(key_id)?;
                *trips += 2;
                let n = tx
                    .execute(
                        &st.insert_key,
                        &[
                            &id,
                            &handle.0.as_slice(),
                            &sender.to_string(),
                            &policy_code(*policy),
                            &secs(*issued_at)?,
                            &secs(*expires_at)?,
                            &deadline,
                        ],
                    )
                    .map_err(pg)?;
                if n != 1 {
                    return Ok(false);
                }
                let positions: Vec<i64> = (0..recipients.len()).map(|i| i64::try_from(i).unwrap_or(i64::MAX)).collect();
                let addresses: Vec<String> = recipients.iter().map(ToString::to_string).collect();
                tx.execute(&st.insert_recipients, &[&id, &positions, &addresses]).map_err(pg)?;
                if let Some(r) = request {
                    *trips += 1;
                    let n = tx
                        .execute(
                            &st.insert_request,
                            &[&r.id.sender.to_string(), &r.id.nonce.as_bytes(), &secs(r.time)?, &id],
                        )
                        .map_err(pg)?;
                    if n != 1 {
                        return Ok(false);
                    }
                }
            }
            Record::Released { key_id, addresses, cert, at } => {
                for address in addresses {
                    *trips += 1;
                    let n = tx
                        .execute(
                            &st.release,
                            &[&cert.as_bytes(), &secs(*at)?, &key_id.as_bytes(), &address.to_string(), &max],
                        )
                        .map_err(pg)?;
                    if n != 1 {
                        return Ok(false);
                    }
                }
            }
            Record::Destroyed { key_id, at, expires_at, reason, .. } => {
                // The request row (V14) stays from the issuance until the purge.
                let id = key_id.as_bytes();
                *trips += 2;
                tx.execute(&st.destroy_recipients, &[&id]).map_err(pg)?;
                let n = tx
                    .execute(&st.destroy_key, &[&id, &secs(*at)?, &reason_code(*reason), &secs(*expires_at)?])
                    .map_err(pg)?;
                if n != 1 {
                    return Ok(false);
                }
            }
            Record::Purged { key_id } => {
                *trips += 1;
                tx.execute(&st.purge_requests, &[&key_id.as_bytes()]).map_err(pg)?;
            }
        }
    }
    tx.commit().map_err(pg).map(|()| true)
}

impl Drop for PostgresStore {
    /// The client runs its own small runtime, which may not be dropped on an async thread
    /// (where a server drops its last reference): close it on a thread of its own, not
    /// waited for.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Detached: a database that no longer answers must not hold up shutdown.
                drop(std::thread::spawn(move || drop(conn)));
            } else {
                drop(conn);
            }
        }
    }
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg)?;
    // One migrating instance at a time; the others wait, then find the work done.
    tx.execute("SELECT pg_advisory_xact_lock(7236916)", &[]).map_err(pg)?;
    tx.batch_execute(schema::SCHEMA_TABLE).map_err(pg)?;
    let have: i64 =
        tx.query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM ekg_schema", &[]).map(|r| r.get(0)).map_err(pg)?;
    if have > schema::VERSION {
        return Err(StoreError(format!("database schema {have} is newer than this build's {}", schema::VERSION)));
    }
    for (v, ddl) in schema::MIGRATIONS.iter().filter(|(v, _)| *v > have) {
        tx.batch_execute(ddl).map_err(pg)?;
        tx.execute("INSERT INTO ekg_schema (version) VALUES ($1)", &[v]).map_err(pg)?;
    }
    tx.commit().map_err(pg)
}

/// One row of `load_key`'s join.
type JoinRow = postgres::Row;

fn key_from_rows(key_id: KeyId, rows: &[JoinRow]) -> Result<(i64, Vec<Record<Concrete>>), StoreError> {
    let Some(first) = rows.first() else { return Ok((0, Vec::new())) };
    let get = |e: postgres::Error| err(e);
    let key = KeyRow {
        key_id,
        handle: first.try_get(0).map_err(get)?,
        sender: first.try_get(1).map_err(get)?,
        policy: first.try_get(2).map_err(get)?,
        issued_at: first.try_get(3).map_err(get)?,
        expires_at: first.try_get(4).map_err(get)?,
        destroyed_at: first.try_get(5).map_err(get)?,
        destroy_reason: first.try_get(6).map_err(get)?,
    };
    let version: i64 = first.try_get(7).map_err(get)?;
    let request = match first.try_get::<_, Option<String>>(8).map_err(get)? {
        Some(sender) => Some((sender, first.try_get(9).map_err(get)?, first.try_get(10).map_err(get)?)),
        None => None,
    };
    let mut recipients = Vec::new();
    for row in rows {
        let Some(address) = row.try_get::<_, Option<String>>(11).map_err(get)? else { continue };
        recipients.push(RecipientRow {
            address,
            cert: row.try_get(12).map_err(get)?,
            released_at: row.try_get(13).map_err(get)?,
            position: row.try_get(14).map_err(get)?,
            deliveries: row.try_get(15).map_err(get)?,
        });
    }
    Ok((version, rows::key_records(key, recipients, request)?))
}

impl SharedStore<Concrete> for PostgresStore {
    fn load_key(&mut self, key_id: &KeyId) -> Result<Vec<Record<Concrete>>, StoreError> {
        // A decision reads one key; versions of reads that led to no write (a refusal) are
        // dropped here so that a flood of refused requests cannot grow the map.
        if self.seen.len() >= MAX_SEEN {
            self.seen.clear();
        }
        let conn = self.conn()?;
        let rows = conn.client.query(&conn.st.load_key, &[&key_id.as_bytes()]).map_err(pg)?;
        self.round_trips += 1;
        let (version, records) = key_from_rows(*key_id, &rows)?;
        self.seen.insert(*key_id, version);
        Ok(records)
    }

    fn key_of_request(&mut self, id: &RequestId) -> Result<Option<KeyId>, StoreError> {
        let conn = self.conn()?;
        let row = conn
            .client
            .query_opt(&conn.st.key_of_request, &[&id.sender.to_string(), &id.nonce.as_bytes()])
            .map_err(pg)?;
        self.round_trips += 1;
        match row {
            Some(r) => rows::key_id(&r.try_get::<_, Vec<u8>>(0).map_err(pg)?).map(Some),
            None => Ok(None),
        }
    }

    fn append_if_unchanged(
        &mut self,
        batch: &[Record<Concrete>],
        deadlines: &[(KeyId, Option<UnixTime>)],
    ) -> Result<bool, StoreError> {
        self.write(batch, deadlines)
    }

    fn due(&mut self, now: UnixTime, limit: usize) -> Result<Vec<KeyId>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.conn()?;
        let rows = conn.client.query(&conn.st.due, &[&secs(now)?, &limit]).map_err(pg)?;
        self.round_trips += 1;
        rows.iter().map(|r| rows::key_id(&r.try_get::<_, Vec<u8>>(0).map_err(pg)?)).collect()
    }

    fn next_deadline(&mut self) -> Result<Option<UnixTime>, StoreError> {
        let conn = self.conn()?;
        let row = conn.client.query_one(&conn.st.next_deadline, &[]).map_err(pg)?;
        self.round_trips += 1;
        Ok(row.try_get::<_, Option<i64>>(0).map_err(pg)?.map(rows::time))
    }

    fn live_handle(&mut self) -> Result<Option<WrappedKey>, StoreError> {
        let conn = self.conn()?;
        let row = conn.client.query_opt(&conn.st.live_handle, &[]).map_err(pg)?;
        self.round_trips += 1;
        match row {
            Some(r) => {
                let h: Vec<u8> = r.try_get(0).map_err(pg)?;
                Ok(Some(WrappedKey(h.try_into().map_err(|_| err("a stored key is not 40 bytes"))?)))
            }
            None => Ok(None),
        }
    }

    fn held_keys(&mut self) -> Result<u64, StoreError> {
        let conn = self.conn()?;
        let row = conn.client.query_one(&conn.st.held, &[]).map_err(pg)?;
        self.round_trips += 1;
        Ok(u64::try_from(row.try_get::<_, i64>(0).map_err(pg)?).unwrap_or(0))
    }
}

impl Store<Concrete> for PostgresStore {
    /// Refused: several gatekeepers write this store, so every write is conditional
    /// ([`SharedStore::append_if_unchanged`]).
    fn append(&mut self, _: &[Record<Concrete>]) -> Result<(), StoreError> {
        Err(err("a shared store takes conditional appends only"))
    }

    /// Refused: a gatekeeper on a shared store reads key by key, never the whole ledger.
    fn load(&self) -> Result<Vec<Record<Concrete>>, StoreError> {
        Err(err("a shared store is read key by key"))
    }

    fn shared(&mut self) -> Option<&mut dyn SharedStore<Concrete>> {
        Some(self)
    }
}
