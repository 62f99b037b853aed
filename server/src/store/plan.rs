//! A batch as a database writes it: per key, the condition (the version read), the records in
//! the core's durable form (`ekg_core::ledger::Record::encode`), whether they replace the
//! key's earlier records (a destruction compacts the key to its tombstone) and the key's index
//! columns after the batch; and the requests the batch answers (V14's index). No protocol rule
//! is here: what the records mean is the core's; this only says where the bytes go.

use ekg_core::ledger::{Batch, Concrete, Record, StoreError};

/// One key's part of a batch.
#[derive(Debug)]
pub struct KeyWrite {
    /// The key id.
    pub key_id: Vec<u8>,
    /// The version read (`0`: the key must not exist; the batch issues it).
    pub read: i64,
    /// The key's index columns after the batch: deadline (seconds) and whether it is held;
    /// `None`: the key is purged (its row, records and request go).
    pub after: Option<(i64, bool)>,
    /// The key's earlier records are deleted first (a destruction: only the tombstone stays).
    pub replace: bool,
    /// The records to append, encoded, in the order decided.
    pub records: Vec<Vec<u8>>,
}

/// A request the batch answers: `(sender, nonce, key id)`, unique by (sender, nonce).
pub type RequestWrite = (String, Vec<u8>, Vec<u8>);

/// A whole batch.
#[derive(Debug)]
pub struct Plan {
    /// Every key the batch touches, once.
    pub keys: Vec<KeyWrite>,
    /// The requests answered.
    pub requests: Vec<RequestWrite>,
    /// The issuance log's entries, appended after the log's last in the same transaction,
    /// only if every condition held (`super::log`).
    pub log: Vec<Vec<u8>>,
    /// The access tokens the batch's release was made with: `(issuer, jti, keep_until)`,
    /// written only if none is recorded yet (`super::token`).
    pub tokens: Vec<TokenWrite>,
}

/// A token use as stored: `(issuer, jti, keep_until)`, unique by (issuer, jti).
pub type TokenWrite = (String, String, i64);

/// A time as stored.
pub fn secs(t: ekg_core::UnixTime) -> Result<i64, StoreError> {
    i64::try_from(t.secs()).map_err(|_| StoreError("time out of range".into()))
}

/// A version as stored.
pub fn version(v: ekg_core::ledger::Version) -> Result<i64, StoreError> {
    i64::try_from(v.0).map_err(|_| StoreError("version out of range".into()))
}

impl Plan {
    /// The plan of `batch`.
    pub fn of(batch: &Batch<Concrete>) -> Result<Plan, StoreError> {
        let mut keys = Vec::with_capacity(batch.keys.len());
        for change in &batch.keys {
            let mine: Vec<&Record<Concrete>> = batch.records.iter().filter(|r| r.key_id() == &change.key_id).collect();
            // A destruction replaces what came before it: keep it and what follows.
            let last_destroyed = mine.iter().rposition(|r| matches!(r, Record::Destroyed { .. }));
            let kept = match last_destroyed {
                Some(i) => mine.get(i..).unwrap_or_default(),
                None => &mine[..],
            };
            let after = match change.deadline {
                None => None,
                Some(t) => Some((secs(t)?, change.held)),
            };
            // A purged key leaves nothing, not even its `Purged` record.
            let records = if after.is_some() { kept.iter().map(|r| r.encode()).collect() } else { Vec::new() };
            keys.push(KeyWrite {
                key_id: change.key_id.as_bytes().to_vec(),
                read: version(change.read)?,
                after,
                replace: last_destroyed.is_some(),
                records,
            });
        }
        let requests = batch
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Issued { key_id, request: Some(q), .. } => {
                    Some((q.id.sender.to_string(), q.id.nonce.as_bytes().to_vec(), key_id.as_bytes().to_vec()))
                }
                _ => None,
            })
            .collect();
        let tokens = batch
            .tokens
            .iter()
            .map(|t| Ok((t.issuer.clone(), t.jti.clone(), secs(t.keep_until)?)))
            .collect::<Result<_, _>>()?;
        Ok(Plan { keys, requests, log: batch.log.clone(), tokens })
    }
}

/// One key's records from their durable forms, in order.
pub fn decode_records<'a>(bodies: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<Record<Concrete>>, StoreError> {
    bodies.into_iter().map(|b| Record::decode(b).map_err(|e| StoreError(e.detail().to_owned()))).collect()
}
