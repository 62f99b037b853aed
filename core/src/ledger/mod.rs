//! The gatekeeper's decision logic: who may get which key, and how often. Crypto-free.
//!
//! # Driving it
//! The ledger never changes by itself. Each `decide_*` method reads the state and returns
//! the [`Record`]s a change would make (or a rejection); the caller then
//! 1. makes the records durable with [`Store::append`] (all or nothing),
//! 2. applies them with [`Ledger::apply`],
//! 3. and only then builds and sends the response.
//!
//! A crash between 1 and 3 leaves a durable record and no response: the release is counted
//! but not delivered. Policy `once` then never serves that recipient again (the draft's
//! promise costs liveness); policy `same_certificate` re-delivers to the same certificate.
//! A crash before 1 leaves nothing: the request can be made again. Recovery replays the
//! store with [`Ledger::recover`]. See `docs/protocol.md`, "Crash-safety contract".
//!
//! The ledger is generic over [`LedgerTypes`] (key ids, addresses, certificate ids, key
//! handles), so that the model checker runs this very code with symbolic values, and a
//! server runs the expensive crypto on many cores around one serial ledger.

mod store;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;

pub use store::{MemoryStore, Store, StoreError};

use crate::error::{Rejection, Result, reject};
use crate::time::UnixTime;

/// The identities and handles the ledger is generic over.
pub trait LedgerTypes: Clone + Debug + PartialEq + Eq + Hash + PartialOrd + Ord {
    /// A key id.
    type KeyId: Clone + Debug + Eq + Ord + Hash;
    /// An address, compared by the profile's rule.
    type Address: Clone + Debug + Eq + Ord + Hash;
    /// One certificate.
    type CertId: Clone + Debug + Eq + Ord + Hash;
    /// The stored key (wrapped under the storage key; a symbol in the model).
    type KeyHandle: Clone + Debug + Eq + Hash;
}

/// The types a deployment uses.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Concrete;

impl LedgerTypes for Concrete {
    type KeyId = crate::ids::KeyId;
    type Address = crate::address::EmailAddress;
    type CertId = crate::ids::CertId;
    type KeyHandle = crate::ids::WrappedKey;
}

/// How releases to one listed address are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReleasePolicy {
    /// The seed: "Recipients are allowed to request the key once and only once." A lost
    /// response loses the key for that recipient.
    Once,
    /// Retry-safe: the first certificate served for an address may fetch again (a lost
    /// response, a second device with the same certificate), up to
    /// [`LedgerConfig::max_deliveries`] times; no other certificate is ever served for that
    /// address.
    SameCertificate,
}

/// Ledger settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LedgerConfig {
    /// How long a key is kept after its last listed recipient was served (for re-delivery
    /// and the sender's gateway). `0`: destroyed at once, as the seed says.
    pub retention_secs: u64,
    /// Deliveries per address under [`ReleasePolicy::SameCertificate`] (first included).
    pub max_deliveries: u32,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig { retention_secs: 0, max_deliveries: 3 }
    }
}

/// What has happened to one listed address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Delivery<C> {
    /// Not yet served.
    Owed,
    /// Served to certificate `cert`, `deliveries` times, first at `at`.
    Released {
        /// The certificate served.
        cert: C,
        /// First release.
        at: UnixTime,
        /// Deliveries so far (1 after the first release).
        deliveries: u32,
    },
}

/// A key the gatekeeper still holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LiveKey<T: LedgerTypes> {
    /// The stored key.
    pub handle: T::KeyHandle,
    /// Who asked for it.
    pub sender: T::Address,
    /// Release policy.
    pub policy: ReleasePolicy,
    /// Issue time.
    pub issued_at: UnixTime,
    /// Ticket expiry.
    pub expires_at: UnixTime,
    /// Every listed address and what it has had.
    pub recipients: BTreeMap<T::Address, Delivery<T::CertId>>,
}

/// Why a key was destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DestroyReason {
    /// Every listed recipient was served (and retention, if any, ended).
    AllReleased,
    /// The ticket expired.
    Expired,
}

/// What is left of a destroyed key until its ticket would have expired.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tombstone {
    /// When it was destroyed.
    pub at: UnixTime,
    /// The ticket's expiry; the tombstone is purged after it.
    pub expires_at: UnixTime,
    /// Why.
    pub reason: DestroyReason,
}

/// The state of one key id. A closed set: a key is owed, retained or gone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyState<T: LedgerTypes> {
    /// At least one listed address is owed the key.
    Pending(LiveKey<T>),
    /// Every listed address was served; kept until `until` for re-delivery and the gateway.
    Retained {
        /// The key.
        key: LiveKey<T>,
        /// End of retention.
        until: UnixTime,
    },
    /// Destroyed: the key material is gone.
    Destroyed(Tombstone),
}

/// A state change. The caller makes it durable before acting on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Record<T: LedgerTypes> {
    /// A key was issued.
    Issued {
        /// Its id.
        key_id: T::KeyId,
        /// The stored key.
        handle: T::KeyHandle,
        /// The sender.
        sender: T::Address,
        /// The listed recipients (distinct).
        recipients: Vec<T::Address>,
        /// Release policy.
        policy: ReleasePolicy,
        /// Issue time.
        issued_at: UnixTime,
        /// Ticket expiry.
        expires_at: UnixTime,
    },
    /// The key was released (or re-delivered) to `cert` for `addresses`.
    Released {
        /// The key.
        key_id: T::KeyId,
        /// The listed addresses this release serves.
        addresses: Vec<T::Address>,
        /// The certificate served.
        cert: T::CertId,
        /// When.
        at: UnixTime,
    },
    /// The key was destroyed.
    Destroyed {
        /// The key.
        key_id: T::KeyId,
        /// When.
        at: UnixTime,
        /// Its ticket's expiry (the tombstone lives until then).
        expires_at: UnixTime,
        /// Why.
        reason: DestroyReason,
    },
    /// The tombstone was dropped.
    Purged {
        /// The key.
        key_id: T::KeyId,
    },
}

impl<T: LedgerTypes> Record<T> {
    /// The key the record is about.
    pub fn key_id(&self) -> &T::KeyId {
        match self {
            Record::Issued { key_id, .. }
            | Record::Released { key_id, .. }
            | Record::Destroyed { key_id, .. }
            | Record::Purged { key_id } => key_id,
        }
    }
}

/// Who asks for a key, as the crypto layer verified it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requester<T: LedgerTypes> {
    /// The requester's certificate.
    pub cert: T::CertId,
    /// The addresses in that certificate.
    pub addresses: Vec<T::Address>,
    /// A configured gateway of the sender's organisation (served without counting).
    pub is_gateway: bool,
}

/// What a release serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseKind {
    /// At least one address had not been served before.
    First,
    /// Every address served was served before, to the same certificate.
    Redelivery,
    /// The sender organisation's gateway: not a recipient release.
    Gateway,
}

/// A positive release decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseDecision<T: LedgerTypes> {
    /// Records to make durable, then apply, before responding (may be empty for a gateway).
    pub records: Vec<Record<T>>,
    /// The key to deliver.
    pub handle: T::KeyHandle,
    /// The listed addresses served (empty for a gateway).
    pub served: Vec<T::Address>,
    /// What kind of delivery.
    pub kind: ReleaseKind,
}

/// A request to issue a key, verified by the crypto layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueRequest<T: LedgerTypes> {
    /// A fresh id.
    pub key_id: T::KeyId,
    /// The fresh key, as stored.
    pub handle: T::KeyHandle,
    /// The sender.
    pub sender: T::Address,
    /// The recipients.
    pub recipients: Vec<T::Address>,
    /// Release policy.
    pub policy: ReleasePolicy,
    /// Ticket expiry.
    pub expires_at: UnixTime,
}

/// The ledger: every key id the gatekeeper knows and its state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ledger<T: LedgerTypes> {
    config: LedgerConfig,
    keys: BTreeMap<T::KeyId, KeyState<T>>,
}

impl<T: LedgerTypes> Ledger<T> {
    /// An empty ledger.
    pub fn new(config: LedgerConfig) -> Self {
        Ledger { config, keys: BTreeMap::new() }
    }

    /// Rebuilds the ledger from durable records, in the order they were appended.
    pub fn recover<'a>(config: LedgerConfig, records: impl IntoIterator<Item = &'a Record<T>>) -> Result<Self>
    where
        T: 'a,
    {
        let mut ledger = Ledger::new(config);
        for record in records {
            ledger.apply(record)?;
        }
        Ok(ledger)
    }

    /// The configuration.
    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    /// The state of one key.
    pub fn state(&self, key_id: &T::KeyId) -> Option<&KeyState<T>> {
        self.keys.get(key_id)
    }

    /// Every key and its state.
    pub fn keys(&self) -> impl Iterator<Item = (&T::KeyId, &KeyState<T>)> {
        self.keys.iter()
    }

    /// How many keys are still held (pending or retained).
    pub fn held_keys(&self) -> usize {
        self.keys.values().filter(|k| !matches!(k, KeyState::Destroyed(_))).count()
    }

    /// Step V23 (issue side): a fresh key id; the recipient list non-empty and distinct.
    pub fn decide_issue(&self, request: IssueRequest<T>, now: UnixTime) -> Result<Record<T>> {
        if self.keys.contains_key(&request.key_id) {
            return Err(reject(Rejection::KeyIdCollision, "key id already known"));
        }
        if request.recipients.is_empty() {
            return Err(Rejection::NoRecipients.into());
        }
        let mut seen = std::collections::BTreeSet::new();
        if !request.recipients.iter().all(|r| seen.insert(r)) {
            return Err(Rejection::DuplicateRecipient.into());
        }
        Ok(Record::Issued {
            key_id: request.key_id,
            handle: request.handle,
            sender: request.sender,
            recipients: request.recipients,
            policy: request.policy,
            issued_at: now,
            expires_at: request.expires_at,
        })
    }

    /// Steps V21 to V24: may `requester` have key `key_id` at `now`?
    pub fn decide_release(
        &self,
        key_id: &T::KeyId,
        requester: &Requester<T>,
        now: UnixTime,
    ) -> Result<ReleaseDecision<T>> {
        let (key, retained) = match self.keys.get(key_id) {
            None => return Err(Rejection::KeyUnknown.into()),
            Some(KeyState::Destroyed(_)) => return Err(Rejection::KeyDestroyed.into()),
            Some(KeyState::Pending(key)) => (key, None),
            Some(KeyState::Retained { key, until }) => (key, Some(*until)),
        };
        if now >= key.expires_at {
            return Err(Rejection::TicketExpired.into());
        }
        if retained.is_some_and(|until| now >= until) {
            return Err(reject(Rejection::KeyDestroyed, "retention ended"));
        }
        if requester.is_gateway {
            return Ok(ReleaseDecision {
                records: vec![],
                handle: key.handle.clone(),
                served: vec![],
                kind: ReleaseKind::Gateway,
            });
        }
        let mut served = Vec::new();
        let mut first = false;
        let mut refusal = None;
        for address in &requester.addresses {
            let Some(delivery) = key.recipients.get(address) else { continue };
            let outcome = match (delivery, key.policy) {
                (Delivery::Owed, _) => Ok(true),
                (Delivery::Released { .. }, ReleasePolicy::Once) => Err(Rejection::AlreadyReleased),
                (Delivery::Released { cert, .. }, ReleasePolicy::SameCertificate) if *cert != requester.cert => {
                    Err(Rejection::ReleasedToOtherCertificate)
                }
                (Delivery::Released { deliveries, .. }, ReleasePolicy::SameCertificate) => {
                    if *deliveries >= self.config.max_deliveries { Err(Rejection::RedeliveryLimit) } else { Ok(false) }
                }
            };
            match outcome {
                Ok(is_first) => {
                    first |= is_first;
                    served.push(address.clone());
                }
                Err(r) => refusal = refusal.or(Some(r)),
            }
        }
        if served.is_empty() {
            return Err(refusal.unwrap_or(Rejection::RecipientNotListed).into());
        }
        let mut records = vec![Record::Released {
            key_id: key_id.clone(),
            addresses: served.clone(),
            cert: requester.cert.clone(),
            at: now,
        }];
        let complete = key.recipients.iter().all(|(a, d)| !matches!(d, Delivery::Owed) || served.contains(a));
        if complete && retained.is_none() && self.config.retention_secs == 0 {
            records.push(Record::Destroyed {
                key_id: key_id.clone(),
                at: now,
                expires_at: key.expires_at,
                reason: DestroyReason::AllReleased,
            });
        }
        let kind = if first { ReleaseKind::First } else { ReleaseKind::Redelivery };
        Ok(ReleaseDecision { records, handle: key.handle.clone(), served, kind })
    }

    /// Destruction at expiry and at the end of retention, and purging of tombstones.
    pub fn decide_expiry(&self, now: UnixTime) -> Vec<Record<T>> {
        let mut records = Vec::new();
        for (key_id, state) in &self.keys {
            let key_id = key_id.clone();
            match state {
                KeyState::Pending(key) | KeyState::Retained { key, .. } if now >= key.expires_at => {
                    records.push(Record::Destroyed {
                        key_id,
                        at: now,
                        expires_at: key.expires_at,
                        reason: DestroyReason::Expired,
                    });
                }
                KeyState::Retained { key, until } if now >= *until => {
                    records.push(Record::Destroyed {
                        key_id,
                        at: now,
                        expires_at: key.expires_at,
                        reason: DestroyReason::AllReleased,
                    });
                }
                KeyState::Destroyed(t) if now >= t.expires_at && now > t.at => records.push(Record::Purged { key_id }),
                _ => {}
            }
        }
        records
    }

    /// Applies a durable record. Fails (`storage_failed`) on a record that does not fit the
    /// state: a corrupt or reordered log.
    pub fn apply(&mut self, record: &Record<T>) -> Result<()> {
        let corrupt = |why: &str| reject(Rejection::StorageFailed, format!("record does not apply: {why}"));
        match record {
            Record::Issued { key_id, handle, sender, recipients, policy, issued_at, expires_at } => {
                if self.keys.contains_key(key_id) {
                    return Err(corrupt("key id issued twice"));
                }
                let recipients = recipients.iter().map(|r| (r.clone(), Delivery::Owed)).collect();
                let key = LiveKey {
                    handle: handle.clone(),
                    sender: sender.clone(),
                    policy: *policy,
                    issued_at: *issued_at,
                    expires_at: *expires_at,
                    recipients,
                };
                self.keys.insert(key_id.clone(), KeyState::Pending(key));
            }
            Record::Released { key_id, addresses, cert, at } => {
                let retention = self.config.retention_secs;
                let state = self.keys.get_mut(key_id).ok_or_else(|| corrupt("release of an unknown key"))?;
                let key = match state {
                    KeyState::Pending(key) | KeyState::Retained { key, .. } => key,
                    KeyState::Destroyed(_) => return Err(corrupt("release of a destroyed key")),
                };
                for address in addresses {
                    let delivery =
                        key.recipients.get_mut(address).ok_or_else(|| corrupt("release to an unlisted address"))?;
                    *delivery = match delivery {
                        Delivery::Owed => Delivery::Released { cert: cert.clone(), at: *at, deliveries: 1 },
                        Delivery::Released { cert: c, at: first, deliveries } if c == cert => {
                            Delivery::Released { cert: c.clone(), at: *first, deliveries: deliveries.saturating_add(1) }
                        }
                        Delivery::Released { .. } => return Err(corrupt("second certificate for an address")),
                    };
                }
                if let KeyState::Pending(key) = state
                    && key.recipients.values().all(|d| !matches!(d, Delivery::Owed))
                {
                    let key = key.clone();
                    *state = KeyState::Retained { key, until: at.plus_secs(retention) };
                }
            }
            Record::Destroyed { key_id, at, expires_at, reason } => {
                self.keys.insert(
                    key_id.clone(),
                    KeyState::Destroyed(Tombstone { at: *at, expires_at: *expires_at, reason: *reason }),
                );
            }
            Record::Purged { key_id } => {
                self.keys.remove(key_id);
            }
        }
        Ok(())
    }

    /// Checks the ledger's own invariants (for tests, the model checker and the simulator).
    pub fn check_invariants(&self) -> core::result::Result<(), String> {
        for (id, state) in &self.keys {
            match state {
                KeyState::Pending(k) if !k.recipients.values().any(|d| matches!(d, Delivery::Owed)) => {
                    return Err(format!("{id:?} pending with nothing owed"));
                }
                KeyState::Retained { key, .. } if key.recipients.values().any(|d| matches!(d, Delivery::Owed)) => {
                    return Err(format!("{id:?} retained while something is owed"));
                }
                KeyState::Pending(k) | KeyState::Retained { key: k, .. } => {
                    for d in k.recipients.values() {
                        if let Delivery::Released { deliveries, .. } = d {
                            let max = match k.policy {
                                ReleasePolicy::Once => 1,
                                ReleasePolicy::SameCertificate => self.config.max_deliveries,
                            };
                            if *deliveries > max {
                                return Err(format!("{id:?} delivered {deliveries} times to one address"));
                            }
                        }
                    }
                }
                KeyState::Destroyed(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
