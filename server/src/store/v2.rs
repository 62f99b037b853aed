//! The rows of schema version 2 (the tables `ekg_keys`, `ekg_recipients`, `ekg_requests` of
//! the releases before the one durable form) read back as ledger records: what migration 3
//! needs, and nothing else uses. What a key's rows meant does not depend on the engine.

use ekg_core::ledger::{Concrete, DestroyReason, Record, ReleasePolicy, RequestRecord, StoreError};
use ekg_core::{CertId, KeyId, Nonce, RequestId, StorageEpoch, StoredKey, WrappedKey};
use ekg_core::{EmailAddress, UnixTime};

/// An `ekg_keys` row.
#[derive(Debug)]
pub struct KeyRow {
    /// `key_id`.
    pub key_id: KeyId,
    /// `handle` (`NULL` once destroyed).
    pub handle: Option<Vec<u8>>,
    /// `sender`.
    pub sender: String,
    /// `policy`.
    pub policy: i64,
    /// `issued_at`.
    pub issued_at: i64,
    /// `expires_at`.
    pub expires_at: i64,
    /// `destroyed_at`.
    pub destroyed_at: Option<i64>,
    /// `destroy_reason`.
    pub destroy_reason: Option<i64>,
}

/// An `ekg_recipients` row.
#[derive(Debug)]
pub struct RecipientRow {
    /// `address`.
    pub address: String,
    /// `cert` (`NULL` while owed).
    pub cert: Option<Vec<u8>>,
    /// `released_at` (`NULL` while owed).
    pub released_at: Option<i64>,
    /// `position` in the ticket's list.
    pub position: i64,
    /// `deliveries`.
    pub deliveries: i64,
}

/// An `ekg_requests` row: sender, nonce, request time.
pub type RequestRow = (String, Vec<u8>, i64);

/// The records that rebuild one key's state from its rows: `Issued` then each delivery in
/// the order first made, or the tombstone's `Destroyed`.
pub fn key_records(
    key: KeyRow,
    mut recipients: Vec<RecipientRow>,
    request: Option<RequestRow>,
) -> Result<Vec<Record<Concrete>>, StoreError> {
    let key_id = key.key_id;
    let request = match request {
        Some((sender, nonce, t)) => {
            let nonce = Nonce::from_slice(&nonce).ok_or_else(|| StoreError("a nonce is not 16 bytes".into()))?;
            Some(RequestRecord { id: RequestId { sender: address(&sender)?, nonce }, time: time(t) })
        }
        None => None,
    };
    let mut out = Vec::new();
    match (key.handle, key.destroyed_at) {
        (Some(handle), None) => {
            let wrapped = WrappedKey(handle.try_into().map_err(|_| StoreError("a stored key is not 40 bytes".into()))?);
            // Schema 2 predates storage epochs: its keys are wrapped under the one storage key.
            let handle = StoredKey { epoch: StorageEpoch::Legacy, wrapped };
            recipients.sort_by_key(|r| r.position);
            out.push(Record::Issued {
                key_id,
                handle,
                sender: address(&key.sender)?,
                recipients: recipients.iter().map(|r| address(&r.address)).collect::<Result<_, _>>()?,
                policy: policy(key.policy),
                issued_at: time(key.issued_at),
                expires_at: time(key.expires_at),
                request,
                // Schema version 2 predates labels.
                labels: Vec::new(),
            });
            let mut released: Vec<_> = recipients.into_iter().filter(|r| r.cert.is_some()).collect();
            released.sort_by_key(|r| (r.released_at, r.position));
            for r in released {
                let Some(cert) = r.cert else { continue };
                let cert = CertId(cert.try_into().map_err(|_| StoreError("a certificate id is not 32 bytes".into()))?);
                let addresses = vec![address(&r.address)?];
                let at = time(r.released_at.unwrap_or(0));
                for _ in 0..r.deliveries {
                    out.push(Record::Released { key_id, addresses: addresses.clone(), cert, at });
                }
            }
        }
        (_, Some(at)) => out.push(Record::Destroyed {
            key_id,
            at: time(at),
            expires_at: time(key.expires_at),
            reason: if key.destroy_reason == Some(1) { DestroyReason::Expired } else { DestroyReason::AllReleased },
            request,
        }),
        (None, None) => return Err(StoreError(format!("key {key_id} has neither a key nor a tombstone"))),
    }
    Ok(out)
}

/// A key id column.
pub fn key_id(bytes: &[u8]) -> Result<KeyId, StoreError> {
    KeyId::from_slice(bytes).ok_or_else(|| StoreError("a key id is not 16 bytes".into()))
}

/// A stored time.
pub fn time(v: i64) -> UnixTime {
    UnixTime(u64::try_from(v).unwrap_or(0))
}

fn policy(code: i64) -> ReleasePolicy {
    if code == 1 { ReleasePolicy::SameCertificate } else { ReleasePolicy::Once }
}

/// A stored address.
pub fn address(s: &str) -> Result<EmailAddress, StoreError> {
    EmailAddress::parse(s).map_err(|e| StoreError(format!("stored address {s:?}: {e}")))
}
