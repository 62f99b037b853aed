//! The issuance log's table (schema version 4, `docs/protocol.md` §10): one row per entry,
//! `idx` its leaf index (0, 1, 2, ... with no gap), `entry` its encoding (§10.2). Rows are
//! appended only by the write of the records they describe, in the same transaction
//! ([`super::plan::Plan::log`]), and never changed or deleted: triggers refuse an `UPDATE` or
//! a `DELETE`. On PostgreSQL, `ekg_log_size` is the log's one-row counter: an appending
//! transaction takes its row lock, so concurrent appends get consecutive indexes in commit
//! order (and wait for each other's commit: the price of a dense, ordered log).
//! `ekg_log_head` keeps the tree heads the gatekeeper signed, newest last.

/// Version 4 on SQLite.
pub const SQLITE_V4: &str = "
CREATE TABLE ekg_log (
    idx INTEGER PRIMARY KEY,
    entry BLOB NOT NULL
);
CREATE TRIGGER ekg_log_no_update BEFORE UPDATE ON ekg_log
    BEGIN SELECT RAISE(ABORT, 'the issuance log is append-only'); END;
CREATE TRIGGER ekg_log_no_delete BEFORE DELETE ON ekg_log
    BEGIN SELECT RAISE(ABORT, 'the issuance log is append-only'); END;
CREATE TABLE ekg_log_head (
    id INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,
    head BLOB NOT NULL
);
";

/// Appends one entry after the last (inside the append's transaction).
pub const SQLITE_APPEND: &str =
    "INSERT INTO ekg_log (idx, entry) VALUES ((SELECT COALESCE(MAX(idx) + 1, 0) FROM ekg_log), ?1)";

/// Version 4 on PostgreSQL: the table, its counter, and `ekg_log_append`, which the append
/// statement calls after `ekg_append` in the same statement (so the same transaction), only
/// if `ekg_append` wrote.
pub const POSTGRES_V4: &str = "
CREATE TABLE ekg_log (
    idx BIGINT PRIMARY KEY,
    entry BYTEA NOT NULL
);
CREATE TABLE ekg_log_size (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    size BIGINT NOT NULL
);
INSERT INTO ekg_log_size (one, size) VALUES (TRUE, 0);
CREATE TABLE ekg_log_head (
    id BIGSERIAL PRIMARY KEY,
    size BIGINT NOT NULL,
    head BYTEA NOT NULL
);
CREATE FUNCTION ekg_log_refuse() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the issuance log is append-only';
END
$$;
CREATE TRIGGER ekg_log_append_only BEFORE UPDATE OR DELETE ON ekg_log
    FOR EACH ROW EXECUTE FUNCTION ekg_log_refuse();
CREATE FUNCTION ekg_log_append(l_entries BYTEA[]) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    n BIGINT := COALESCE(array_length(l_entries, 1), 0);
    base BIGINT;
BEGIN
    IF n = 0 THEN
        RETURN TRUE;
    END IF;
    UPDATE ekg_log_size SET size = size + n RETURNING size - n INTO base;
    INSERT INTO ekg_log (idx, entry)
        SELECT base + o - 1, e FROM unnest(l_entries) WITH ORDINALITY AS t (e, o);
    RETURN TRUE;
END
$$;
";

/// The append statement on PostgreSQL: the records' conditions and writes, then (only if they
/// were written) the log's entries; one statement, one round trip, one transaction.
pub const POSTGRES_APPEND: &str = "SELECT CASE WHEN ekg_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                                   THEN ekg_log_append($12) ELSE FALSE END";

/// Entries `[start, end)` in order (both engines).
pub const RANGE: &str = "SELECT entry FROM ekg_log WHERE idx >= $1 AND idx < $2 ORDER BY idx";

/// The log's size (both engines).
pub const SIZE: &str = "SELECT COALESCE(MAX(idx) + 1, 0) FROM ekg_log";

/// Stores a signed head (both engines).
pub const PUT_HEAD: &str = "INSERT INTO ekg_log_head (size, head) VALUES ($1, $2)";

/// The latest signed head (both engines).
pub const LATEST_HEAD: &str = "SELECT head FROM ekg_log_head ORDER BY id DESC LIMIT 1";

/// Most entries one read returns (a caller pages through a larger range).
pub const MAX_RANGE: u64 = 1 << 16;

/// A range as stored: `start <= end`, at most [`MAX_RANGE`] entries.
pub fn bounds(start: u64, end: u64) -> Result<(i64, i64), ekg_core::ledger::StoreError> {
    if start > end || end - start > MAX_RANGE {
        return Err(ekg_core::ledger::StoreError(format!("log range {start}..{end}: at most {MAX_RANGE} entries")));
    }
    let at = |v: u64| i64::try_from(v).map_err(|_| ekg_core::ledger::StoreError("log index out of range".into()));
    Ok((at(start)?, at(end)?))
}
