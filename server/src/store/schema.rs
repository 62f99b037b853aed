//! One schema description for every database store (SQLite here, PostgreSQL for several
//! instances): the DDL uses the types both engines read the same way (`BIGINT`, `TEXT`,
//! `BYTEA`), and the migrations are a numbered list applied in order, each once.
//!
//! Tables (`docs/server.md`, "Durability"):
//! - `ekg_keys`: one row per key id the gatekeeper knows; `handle` is the key wrapped under
//!   the storage key (AES key wrap), `NULL` once the key is destroyed (the row is then the
//!   tombstone, until the purge deletes it).
//! - `ekg_recipients`: one row per listed address of a live key, with the certificate
//!   served, the first release and the deliveries so far.
//! - `ekg_requests`: the answered key requests (V14), by (sender, nonce): the primary key
//!   is what makes a request answered once, even across instances.
//! - `ekg_schema`: the migrations applied.
//!
//! Migration 2 adds what several gatekeepers sharing one database need (the PostgreSQL
//! store keeps them; the SQLite store, one process only, leaves their defaults):
//! - `ekg_keys.version`: raised by every change to the key; a change is written only if the
//!   version is still the one read before deciding (`UPDATE ... WHERE version = $seen`);
//! - `ekg_keys.deadline`: the key's next expiry, end of retention or purge, for the sweep.

/// The migrations, in order: `(version, statements)`.
pub const MIGRATIONS: &[(i64, &str)] = &[
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

/// The schema version this build writes.
pub const VERSION: i64 = 2;

/// `ekg_schema`, made before any migration.
pub const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS ekg_schema (version BIGINT NOT NULL)";
