//! The gatekeeper's decision logic: who may get which key, and how often. Crypto-free.
//!
//! # Driving it
//! The ledger is a view: the state of the keys one decision read from the [`Store`], nothing
//! kept between requests. Each `decide_*` method reads the view and returns the [`Record`]s a
//! change would make (or a rejection) in a [`Decided`]; a [`Round`] ([`round`]) reads the
//! view, decides, and makes the records durable with [`Store::append_if_unchanged`] if
//! nothing it read changed meanwhile; only then does a [`Committed`] exist, the one input a
//! response is built from.
//!
//! A crash between the write and the response leaves a durable record and no response: the
//! release is counted but not delivered. Policy `once` then never serves that recipient
//! again (the draft's promise costs liveness); policy `same_certificate` re-delivers to the
//! same certificate. A crash before the write leaves nothing: the request can be made again.
//! See `docs/protocol.md`, "Crash-safety contract".
//!
//! The ledger is generic over [`LedgerTypes`] (key ids, addresses, certificate ids, key
//! handles, request ids), so that the model checker runs this very code, the rounds
//! included, with symbolic values. [`Ledger::recover`] rebuilds the whole state from every
//! record (for checks of a whole store). What is due at a time (expiry, end of retention,
//! purge) is decided per key by [`round::sweep`], from the deadlines the store indexes.

mod codec;
mod decide;
pub mod entitled;
pub mod pipeline;
pub mod round;
mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::hash::Hash;

pub use codec::VERSION as CODEC_VERSION;
pub use decide::{IssueFacts, IssueRules, ReleaseFacts, VerifiedIssue, VerifiedRelease};
pub use entitled::EntitledRelease;
pub use pipeline::{Committed, Decided, Drawn, Granted, KeyDraw};
pub use round::{Round, Step, Swept, View, sweep};
pub use store::{Answered, Batch, KeyChange, LoadedKey, MemoryState, MemoryStore, Store, StoreError, Version};

use crate::access::policy::AttributeValue;
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
    /// What identifies a key request (V14): its sender and nonce, both signed.
    type RequestId: Clone + Debug + Eq + Ord + Hash;
}

/// The types a deployment uses.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Concrete;

impl LedgerTypes for Concrete {
    type KeyId = crate::ids::KeyId;
    type Address = crate::address::EmailAddress;
    type CertId = crate::ids::CertId;
    type KeyHandle = crate::ids::StoredKey;
    type RequestId = crate::ids::RequestId;
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
    /// V14: `Some`: a key request whose id was answered is refused as long as the ledger
    /// remembers it, which is until its key's tombstone is purged, after the ticket's expiry.
    /// The value is the window within which V13 accepts a replay (the gatekeeper's clock
    /// skew); the gatekeeper requires a ticket lifetime of at least twice it, so that the
    /// request is remembered past the last second at which V13 accepts it, whatever its
    /// request time. `None`: the draft's issuance, every delivery of a request issues a key
    /// (model finding F6).
    pub request_window_secs: Option<u64>,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig { retention_secs: 0, max_deliveries: 3, request_window_secs: Some(300) }
    }
}

/// A gateway of the sender's organisation: its address, and the anchor its certificate's
/// path must end at (V22: an address alone does not make a gateway).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GatewayPrincipal<T: LedgerTypes> {
    /// The gateway's address.
    pub address: T::Address,
    /// The anchor (this organisation's CA).
    pub issuer: T::CertId,
}

/// A key request as the ledger keeps it for V14: its id and its request time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestRecord<T: LedgerTypes> {
    /// What identifies it.
    pub id: T::RequestId,
    /// Its signed request time.
    pub time: UnixTime,
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
    /// The request it answered (V14), if recorded.
    pub request: Option<RequestRecord<T>>,
    /// Its security labels (V26 at release; empty: unlabelled).
    pub labels: Vec<AttributeValue>,
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
pub struct Tombstone<T: LedgerTypes> {
    /// When it was destroyed.
    pub at: UnixTime,
    /// The ticket's expiry; the tombstone is purged after it (one second after, at the
    /// earliest: see [`Tombstone::purge_at`]).
    pub expires_at: UnixTime,
    /// Why.
    pub reason: DestroyReason,
    /// The request it answered (kept for V14 until the purge).
    pub request: Option<RequestRecord<T>>,
}

impl<T: LedgerTypes> Tombstone<T> {
    /// When the tombstone is purged: after the ticket's expiry and after its destruction.
    /// Strictly after the expiry, because V13 accepts a request signed up to the skew in the
    /// future, and the gatekeeper's lifetime of at least twice the skew then puts the last
    /// second at which V13 accepts a replay exactly at the expiry: purged at the expiry, V14
    /// would forget the request while V13 still accepts it (a second key for one request,
    /// docs/model.md F8).
    pub fn purge_at(&self) -> UnixTime {
        if crate::planted::is(crate::planted::PlantedBug::PurgedAtDestruction) {
            return self.at;
        }
        self.expires_at.max(self.at).plus_secs(1)
    }
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
    Destroyed(Tombstone<T>),
}

impl<T: LedgerTypes> KeyState<T> {
    /// When something is next due for this key: its expiry, the end of its retention, or
    /// the purge of its tombstone.
    pub fn deadline(&self) -> UnixTime {
        match self {
            KeyState::Pending(k) => k.expires_at,
            KeyState::Retained { key, until } => key.expires_at.min(*until),
            KeyState::Destroyed(t) => t.purge_at(),
        }
    }

    fn request(&self) -> Option<&RequestRecord<T>> {
        match self {
            KeyState::Pending(k) | KeyState::Retained { key: k, .. } => k.request.as_ref(),
            KeyState::Destroyed(t) => t.request.as_ref(),
        }
    }
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
        /// The request it answers (V14; `None` in records that predate it).
        request: Option<RequestRecord<T>>,
        /// The request's security labels (`docs/protocol.md` §11; empty: unlabelled, and in
        /// records that predate labels).
        labels: Vec<AttributeValue>,
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
        /// The request the key answered, kept for V14 until the purge (a store that
        /// compacts a destroyed key to this record alone loses nothing V14 needs).
        request: Option<RequestRecord<T>>,
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
    /// The anchor its certificate's path ends at.
    pub anchor: T::CertId,
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

/// The ledger: every key id the gatekeeper knows and its state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ledger<T: LedgerTypes> {
    config: LedgerConfig,
    gateways: Vec<GatewayPrincipal<T>>,
    keys: BTreeMap<T::KeyId, KeyState<T>>,
    /// V14: requests answered, with their request time and key, until their key is purged.
    requests: BTreeMap<T::RequestId, (UnixTime, T::KeyId)>,
    /// Every key's next deadline ([`KeyState::deadline`]), in time order.
    deadlines: BTreeSet<(UnixTime, T::KeyId)>,
    /// How many keys are pending or retained (kept by `apply`).
    held: usize,
}

impl<T: LedgerTypes> Ledger<T> {
    /// An empty ledger.
    pub fn new(config: LedgerConfig) -> Self {
        Ledger {
            config,
            gateways: Vec::new(),
            keys: BTreeMap::new(),
            requests: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            held: 0,
        }
    }

    /// This organisation's gateway principals (V22).
    pub fn with_gateways(mut self, gateways: Vec<GatewayPrincipal<T>>) -> Self {
        self.gateways = gateways;
        self
    }

    /// The gateway principals.
    pub fn gateways(&self) -> &[GatewayPrincipal<T>] {
        &self.gateways
    }

    /// The same configuration and gateways, no key: a view's starting point.
    pub fn emptied(&self) -> Self {
        Ledger::new(self.config).with_gateways(self.gateways.clone())
    }

    /// Forgets everything about `key_id`, then rebuilds its state from `records` (one key's,
    /// as a store returns them). Fails (`storage_failed`) on records that do not apply.
    pub fn refresh(&mut self, key_id: &T::KeyId, records: &[Record<T>]) -> Result<()> {
        if let Some(state) = self.keys.remove(key_id) {
            self.deadlines.remove(&(state.deadline(), key_id.clone()));
            if !matches!(state, KeyState::Destroyed(_)) {
                self.held -= 1;
            }
            if let Some(r) = state.request() {
                self.requests.remove(&r.id);
            }
        }
        for record in records {
            self.apply(record)?;
        }
        Ok(())
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
        self.held
    }

    /// Applies a durable record. Fails (`storage_failed`) on a record that does not fit the
    /// state: a corrupt or reordered log.
    pub fn apply(&mut self, record: &Record<T>) -> Result<()> {
        let corrupt = |why: &str| reject(Rejection::StorageFailed, format!("record does not apply: {why}"));
        let key_id = record.key_id();
        let before = self.keys.get(key_id).map(KeyState::deadline);
        let was_held = self.keys.get(key_id).is_some_and(|s| !matches!(s, KeyState::Destroyed(_)));
        match record {
            Record::Issued { key_id, handle, sender, recipients, policy, issued_at, expires_at, request, labels } => {
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
                    request: request.clone(),
                    labels: labels.clone(),
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
            Record::Destroyed { key_id, at, expires_at, reason, request } => {
                // The request the key answered: from the record, or from the live key (a
                // record of an older store may lack it).
                let request = request.clone().or_else(|| self.keys.get(key_id).and_then(|s| s.request().cloned()));
                let tombstone = Tombstone { at: *at, expires_at: *expires_at, reason: *reason, request };
                self.keys.insert(key_id.clone(), KeyState::Destroyed(tombstone));
            }
            Record::Purged { key_id } => {
                if let Some(r) = self.keys.remove(key_id).as_ref().and_then(KeyState::request) {
                    self.requests.remove(&r.id);
                }
            }
        }
        // Keep the indexes: the key's deadline, the request it answered, the count held.
        let is_held = self.keys.get(key_id).is_some_and(|s| !matches!(s, KeyState::Destroyed(_)));
        self.held = self.held + usize::from(is_held) - usize::from(was_held);
        if let Some(t) = before {
            self.deadlines.remove(&(t, key_id.clone()));
        }
        if let Some(state) = self.keys.get(key_id) {
            self.deadlines.insert((state.deadline(), key_id.clone()));
            if let Some(r) = state.request() {
                self.requests.insert(r.id.clone(), (r.time, key_id.clone()));
            }
        }
        Ok(())
    }

    /// Checks the ledger's own invariants (for tests, the model checker and the simulator).
    pub fn check_invariants(&self) -> core::result::Result<(), String> {
        if self.held != self.keys.values().filter(|k| !matches!(k, KeyState::Destroyed(_))).count() {
            return Err("the count of held keys differs from the keys".into());
        }
        if self.deadlines.len() != self.keys.len()
            || self.keys.iter().any(|(id, s)| !self.deadlines.contains(&(s.deadline(), id.clone())))
        {
            return Err("the deadline index differs from the keys".into());
        }
        for (id, state) in &self.keys {
            if let Some(r) = state.request()
                && self.requests.get(&r.id).is_none_or(|(_, k)| k != id)
            {
                return Err(format!("{id:?}: its request is not indexed"));
            }
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
