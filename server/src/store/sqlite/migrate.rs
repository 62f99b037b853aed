//! The SQLite store's migrations: each schema version applied in a transaction of its own,
//! a version-2 database read back as records and written in the version-3 tables.

use ekg_core::ledger::{Concrete, LedgerConfig, Record, StoreError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{err, version};
use crate::store::identity;
use crate::store::{schema, v2};

/// Applies every migration not yet applied, each in a transaction of its own.
pub(super) fn migrate(conn: &mut Connection, config: LedgerConfig) -> Result<(), StoreError> {
    conn.execute_batch(schema::SCHEMA_TABLE).map_err(err)?;
    conn.execute_batch(identity::TABLE).map_err(err)?;
    let have = version(conn)?;
    if have > schema::VERSION {
        return Err(StoreError(format!("database schema {have} is newer than this build's {}", schema::VERSION)));
    }
    for (v, ddl) in schema::LEGACY.iter().filter(|(v, _)| *v > have) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        tx.execute_batch(ddl).map_err(err)?;
        tx.execute("INSERT INTO ekg_schema (version) VALUES (?1)", params![v]).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    if have < 3 {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        tx.execute_batch(schema::SQLITE_V3).map_err(err)?;
        for records in read_v2(&tx)? {
            let m = schema::migrated(records, config)?;
            tx.execute(
                "INSERT INTO ekg_key (key_id, version, deadline, held) VALUES (?1, 1, ?2, ?3)",
                params![m.key_id, m.deadline, m.held],
            )
            .map_err(err)?;
            for body in &m.records {
                tx.execute("INSERT INTO ekg_record (key_id, body) VALUES (?1, ?2)", params![m.key_id, body])
                    .map_err(err)?;
            }
            if let Some((sender, nonce)) = &m.request {
                tx.execute(
                    "INSERT INTO ekg_request (sender, nonce, key_id) VALUES (?1, ?2, ?3)",
                    params![sender, nonce, m.key_id],
                )
                .map_err(err)?;
            }
        }
        tx.execute_batch(schema::DROP_LEGACY).map_err(err)?;
        tx.execute("INSERT INTO ekg_schema (version) VALUES (3)", []).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    if have < 4 {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        tx.execute_batch(crate::store::log::SQLITE_V4).map_err(err)?;
        tx.execute("INSERT INTO ekg_schema (version) VALUES (4)", []).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    if have < 5 {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        tx.execute_batch(crate::store::token::SQLITE_V5).map_err(err)?;
        tx.execute("INSERT INTO ekg_schema (version) VALUES (5)", []).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

/// Every key of a version-2 database, as records.
fn read_v2(c: &Connection) -> Result<Vec<Vec<Record<Concrete>>>, StoreError> {
    let mut keys = c
        .prepare(
            "SELECT key_id, handle, sender, policy, issued_at, expires_at, destroyed_at, destroy_reason \
             FROM ekg_keys ORDER BY issued_at, key_id",
        )
        .map_err(err)?;
    let rows = keys
        .query_map([], |r| {
            let raw: Vec<u8> = r.get(0)?;
            Ok((raw, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)))
        })
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let mut out = Vec::with_capacity(rows.len());
    for (raw, (handle, sender, policy, issued_at, expires_at, destroyed_at, destroy_reason)) in rows {
        let key = v2::KeyRow {
            key_id: v2::key_id(&raw)?,
            handle,
            sender,
            policy,
            issued_at,
            expires_at,
            destroyed_at,
            destroy_reason,
        };
        let recipients = c
            .prepare("SELECT address, cert, released_at, position, deliveries FROM ekg_recipients WHERE key_id = ?1")
            .map_err(err)?
            .query_map(params![raw], |r| {
                Ok(v2::RecipientRow {
                    address: r.get(0)?,
                    cert: r.get(1)?,
                    released_at: r.get(2)?,
                    position: r.get(3)?,
                    deliveries: r.get(4)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let request = c
            .query_row("SELECT sender, nonce, request_time FROM ekg_requests WHERE key_id = ?1", params![raw], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(err)?;
        out.push(v2::key_records(key, recipients, request)?);
    }
    Ok(out)
}
