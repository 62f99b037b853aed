//! The schema of every database store (SQLite, PostgreSQL) and its migrations.
//!
//! Version 3 keeps each key's records in the core's one durable form
//! (`ekg_core::ledger::Record::encode`) and indexes only what a store must find or condition on
//! (`docs/server.md`, "Durability"):
//! - `ekg_key`: one row per key id known: `version` (raised by every change; a change is
//!   written only if the version is still the one read before deciding), `deadline` (the
//!   key's next expiry, end of retention or purge: the sweep's index) and `held` (pending or
//!   retained: the count of keys held);
//! - `ekg_record`: the key's records, in the order decided (a destruction replaces them with
//!   the tombstone; the purge deletes them);
//! - `ekg_request`: the answered key requests (V14), by (sender, nonce): the primary key is
//!   what answers a request once, across instances too;
//! - `ekg_schema`: the migrations applied.
//!
//! Version 4 adds the issuance log's append-only table, `ekg_log` (`super::log`).
//! Version 5 adds the access tokens releases were made with, `ekg_token` (`super::token`).
//!
//! Versions 1 and 2 (tables `ekg_keys`, `ekg_recipients`, `ekg_requests`, one column per
//! field) are created on a new database and converted by migration 3, which reads every key's
//! rows back as records ([`super::v2`]), writes them in the durable form, and drops the old
//! tables, in one transaction.

use ekg_core::ledger::{Concrete, KeyState, Ledger, LedgerConfig, Record, StoreError};

/// The schema version this build writes.
pub const VERSION: i64 = 5;

/// `ekg_schema`, made before any migration.
pub const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS ekg_schema (version BIGINT NOT NULL)";

/// Versions 1 and 2, for both engines (types both read the same way).
pub const LEGACY: &[(i64, &str)] = &[
    (
        1,
        "
CREATE TABLE ekg_keys (
    key_id BYTEA PRIMARY KEY,
    handle BYTEA,
    sender TEXT NOT NULL,
    policy BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    destroyed_at BIGINT,
    destroy_reason BIGINT
);
CREATE TABLE ekg_recipients (
    key_id BYTEA NOT NULL REFERENCES ekg_keys (key_id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    address TEXT NOT NULL,
    cert BYTEA,
    released_at BIGINT,
    deliveries BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, address)
);
CREATE TABLE ekg_requests (
    sender TEXT NOT NULL,
    nonce BYTEA NOT NULL,
    request_time BIGINT NOT NULL,
    key_id BYTEA NOT NULL,
    PRIMARY KEY (sender, nonce)
);
CREATE INDEX ekg_requests_key ON ekg_requests (key_id);
",
    ),
    (
        2,
        "
ALTER TABLE ekg_keys ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ekg_keys ADD COLUMN deadline BIGINT;
CREATE INDEX ekg_keys_deadline ON ekg_keys (deadline);
",
    ),
];

/// Version 3's tables on SQLite.
pub const SQLITE_V3: &str = "
CREATE TABLE ekg_key (
    key_id BLOB PRIMARY KEY,
    version INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    held INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX ekg_key_deadline ON ekg_key (deadline);
CREATE INDEX ekg_key_held ON ekg_key (held) WHERE held = 1;
CREATE TABLE ekg_record (
    id INTEGER PRIMARY KEY,
    key_id BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX ekg_record_key ON ekg_record (key_id, id);
CREATE TABLE ekg_request (
    sender TEXT NOT NULL,
    nonce BLOB NOT NULL,
    key_id BLOB NOT NULL,
    PRIMARY KEY (sender, nonce)
) WITHOUT ROWID;
CREATE INDEX ekg_request_key ON ekg_request (key_id);
";

/// Version 3's tables on PostgreSQL, and the one function that writes a batch in one
/// statement (one round trip): every condition, then every write, all or nothing. It holds no
/// protocol rule: conditions are versions and unique requests; what to write comes decided.
pub const POSTGRES_V3: &str = "
CREATE TABLE ekg_key (
    key_id BYTEA PRIMARY KEY,
    version BIGINT NOT NULL,
    deadline BIGINT NOT NULL,
    held BOOLEAN NOT NULL
);
CREATE INDEX ekg_key_deadline ON ekg_key (deadline);
CREATE INDEX ekg_key_held ON ekg_key (held) WHERE held;
CREATE TABLE ekg_record (
    id BIGSERIAL PRIMARY KEY,
    key_id BYTEA NOT NULL,
    body BYTEA NOT NULL
);
CREATE INDEX ekg_record_key ON ekg_record (key_id, id);
CREATE TABLE ekg_request (
    sender TEXT NOT NULL,
    nonce BYTEA NOT NULL,
    key_id BYTEA NOT NULL,
    PRIMARY KEY (sender, nonce)
);
CREATE INDEX ekg_request_key ON ekg_request (key_id);
CREATE FUNCTION ekg_append(
    k_ids BYTEA[], k_read BIGINT[], k_deadline BIGINT[], k_held BOOLEAN[], k_purge BOOLEAN[],
    k_replace BOOLEAN[], r_keys BYTEA[], r_bodies BYTEA[],
    q_senders TEXT[], q_nonces BYTEA[], q_keys BYTEA[]
) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    i INTEGER;
    n BIGINT;
BEGIN
    FOR i IN 1 .. COALESCE(array_length(k_ids, 1), 0) LOOP
        IF k_read[i] = 0 THEN
            INSERT INTO ekg_key (key_id, version, deadline, held)
                VALUES (k_ids[i], 1, k_deadline[i], k_held[i]) ON CONFLICT DO NOTHING;
        ELSIF k_purge[i] THEN
            DELETE FROM ekg_key WHERE key_id = k_ids[i] AND version = k_read[i];
        ELSE
            UPDATE ekg_key SET version = version + 1, deadline = k_deadline[i], held = k_held[i]
                WHERE key_id = k_ids[i] AND version = k_read[i];
        END IF;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> 1 THEN
            RAISE EXCEPTION 'changed' USING ERRCODE = 'EKG01';
        END IF;
        IF k_purge[i] THEN
            DELETE FROM ekg_record WHERE key_id = k_ids[i];
            DELETE FROM ekg_request WHERE key_id = k_ids[i];
        ELSIF k_replace[i] THEN
            DELETE FROM ekg_record WHERE key_id = k_ids[i];
        END IF;
    END LOOP;
    INSERT INTO ekg_record (key_id, body)
        SELECT k, b FROM unnest(r_keys, r_bodies) WITH ORDINALITY AS t (k, b, o) ORDER BY o;
    INSERT INTO ekg_request (sender, nonce, key_id) SELECT * FROM unnest(q_senders, q_nonces, q_keys);
    RETURN TRUE;
EXCEPTION WHEN unique_violation OR SQLSTATE 'EKG01' THEN
    RETURN FALSE;
END
$$;
";

/// The tables of versions 1 and 2, dropped once converted.
pub const DROP_LEGACY: &str = "DROP TABLE ekg_recipients; DROP TABLE ekg_requests; DROP TABLE ekg_keys;";

/// A key converted by migration 3: its records (as the durable form writes them), deadline
/// and whether it is held, under `config` (retention decides a retained key's deadline).
#[derive(Debug)]
pub struct Migrated {
    /// The key id.
    pub key_id: Vec<u8>,
    /// The records, encoded.
    pub records: Vec<Vec<u8>>,
    /// The next deadline, seconds.
    pub deadline: i64,
    /// Pending or retained.
    pub held: bool,
    /// The request it answered: (sender, nonce).
    pub request: Option<(String, Vec<u8>)>,
}

/// Converts one key's records read from version 2.
pub fn migrated(records: Vec<Record<Concrete>>, config: LedgerConfig) -> Result<Migrated, StoreError> {
    let Some(first) = records.first() else { return Err(StoreError("a key with no records".into())) };
    let key_id = *first.key_id();
    let ledger =
        Ledger::recover(config, records.iter()).map_err(|e| StoreError(format!("migration: {}", e.detail())))?;
    let state = ledger.state(&key_id).ok_or_else(|| StoreError("migration: a key without a state".into()))?;
    let deadline = super::plan::secs(state.deadline())?;
    let held = !matches!(state, KeyState::Destroyed(_));
    let request = records.iter().find_map(|r| match r {
        Record::Issued { request: Some(q), .. } | Record::Destroyed { request: Some(q), .. } => {
            Some((q.id.sender.to_string(), q.id.nonce.as_bytes().to_vec()))
        }
        _ => None,
    });
    Ok(Migrated {
        key_id: key_id.as_bytes().to_vec(),
        records: records.iter().map(Record::encode).collect(),
        deadline,
        held,
        request,
    })
}
