//! The access tokens' table (schema version 5, `docs/protocol.md` §12.5, V28.8): one row per
//! token a release was made with, `(issuer, jti)` its primary key, `keep_until` (seconds) when
//! it may be forgotten (its `exp` plus the skew: V28.6 refuses the token from then on).
//!
//! A row is written only by the append of the release made with the token, in the same
//! transaction, under the condition that no row of that `(issuer, jti)` exists: a release and
//! its token's use are durable together or not at all, and the primary key decides between
//! two gatekeepers sharing the database (the second append is a lost race; the gatekeeper
//! reads again and answers `token_replayed`). The sweep deletes the rows past `keep_until`.

/// Version 5 on SQLite.
pub const SQLITE_V5: &str = "
CREATE TABLE ekg_token (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    keep_until INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
) WITHOUT ROWID;
CREATE INDEX ekg_token_keep ON ekg_token (keep_until);
";

/// Records one token use (SQLite): changes no row if it is recorded already.
pub const SQLITE_INSERT: &str =
    "INSERT INTO ekg_token (issuer, jti, keep_until) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";

/// Version 5 on PostgreSQL: the table, and `ekg_append_tokens`, which writes a batch that
/// records tokens: `ekg_append`'s conditions and writes, then the tokens, then the log's
/// entries, all inside one exception block, so a token recorded meanwhile (a unique
/// violation, possibly after waiting for the other instance's commit) undoes the whole
/// batch and returns false. Batches without a token keep the version-4 statement.
pub const POSTGRES_V5: &str = "
CREATE TABLE ekg_token (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    keep_until BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX ekg_token_keep ON ekg_token (keep_until);
CREATE FUNCTION ekg_append_tokens(
    k_ids BYTEA[], k_read BIGINT[], k_deadline BIGINT[], k_held BOOLEAN[], k_purge BOOLEAN[],
    k_replace BOOLEAN[], r_keys BYTEA[], r_bodies BYTEA[],
    q_senders TEXT[], q_nonces BYTEA[], q_keys BYTEA[],
    t_issuers TEXT[], t_jtis TEXT[], t_until BIGINT[], l_entries BYTEA[]
) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ekg_append(k_ids, k_read, k_deadline, k_held, k_purge, k_replace, r_keys, r_bodies,
                      q_senders, q_nonces, q_keys) THEN
        RETURN FALSE;
    END IF;
    INSERT INTO ekg_token (issuer, jti, keep_until) SELECT * FROM unnest(t_issuers, t_jtis, t_until);
    PERFORM ekg_log_append(l_entries);
    RETURN TRUE;
EXCEPTION WHEN unique_violation THEN
    RETURN FALSE;
END
$$;
";

/// The append statement on PostgreSQL for a batch that records tokens.
pub const POSTGRES_APPEND: &str =
    "SELECT ekg_append_tokens($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// Whether a token is recorded (both engines).
pub const USED: &str = "SELECT EXISTS (SELECT 1 FROM ekg_token WHERE issuer = $1 AND jti = $2)";

/// Forgets the rows past their time (both engines).
pub const PURGE: &str = "DELETE FROM ekg_token WHERE keep_until <= $1";
