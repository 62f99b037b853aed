//! The typed pipeline, rustls-style: each stage consumes the previous one's type.
//!
//! ```text
//! verify (crypto) -> read, decide_* -> Decided -> append_if_unchanged -> Committed -> build (crypto)
//! ```
//!
//! A [`Decided`] is made only by the ledger's `decide_*` methods and a [`Committed`] only by a
//! [`super::Round`] once the store has made the decided records durable
//! ([`super::Store::append_if_unchanged`]): a response, built from a `Committed`, cannot exist
//! without its durable record.
//!
//! ```compile_fail
//! // A Committed cannot be made but by `commit`: its fields are private and it has no
//! // public constructor.
//! let forged = ekg_core::ledger::Committed { payload: () };
//! ```
//!
//! ```compile_fail
//! // Nor can a Decided (so no records can be committed that the ledger did not decide).
//! let forged: ekg_core::ledger::Decided<ekg_core::ledger::Concrete, ()> =
//!     ekg_core::ledger::Decided { records: vec![], payload: () };
//! ```

use super::{LedgerTypes, Record, ReleaseKind};
use crate::error::Result;
use crate::time::UnixTime;

/// Fresh key material: a key id, the key as stored (its handle), and the key itself for the
/// grant. The gatekeeper draws from its RNG and wraps under its storage key; the model
/// checker draws fresh symbols.
pub trait KeyDraw<T: LedgerTypes> {
    /// The key as the grant needs it (a secret for a real gatekeeper).
    type Key;
    /// Draws a fresh key.
    fn draw(&mut self) -> Result<(T::KeyId, T::KeyHandle, Self::Key)>;
}

/// Records a decision would make, and what its response needs. Made only by the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[must_use = "a decision does nothing until it is committed"]
pub struct Decided<T: LedgerTypes, P> {
    records: Vec<Record<T>>,
    payload: P,
}

impl<T: LedgerTypes, P> Decided<T, P> {
    pub(super) fn new(records: Vec<Record<T>>, payload: P) -> Self {
        Decided { records, payload }
    }

    /// The records to make durable.
    pub fn records(&self) -> &[Record<T>] {
        &self.records
    }

    /// What the response will need.
    pub fn payload(&self) -> &P {
        &self.payload
    }

    pub(super) fn into_parts(self) -> (Vec<Record<T>>, P) {
        (self.records, self.payload)
    }

    pub(super) fn into_payload(self) -> P {
        self.payload
    }

    /// The same records, with what the response needs turned by `f` (a role adds what it
    /// verified to the ledger's payload; the records cannot change).
    pub fn map<Q>(self, f: impl FnOnce(P) -> Q) -> Decided<T, Q> {
        Decided { records: self.records, payload: f(self.payload) }
    }
}

/// A decision whose records are durable and applied: the only input a response is built
/// from. Made only by a [`Round`](super::Round) once it has written the records.
#[derive(Debug)]
pub struct Committed<P> {
    payload: P,
}

impl<P> Committed<P> {
    pub(super) fn new(payload: P) -> Self {
        Committed { payload }
    }

    /// What the response needs.
    pub fn payload(&self) -> &P {
        &self.payload
    }

    /// The same commitment, with what the response needs turned by `f` (a role adds what it
    /// verified).
    pub fn map<Q>(self, f: impl FnOnce(P) -> Q) -> Committed<Q> {
        Committed { payload: f(self.payload) }
    }

    /// Takes the payload (the decision stays committed: its records are durable).
    pub fn into_payload(self) -> P {
        self.payload
    }
}

/// An issuance decided: the drawn key and the ticket's one expiry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Drawn<T: LedgerTypes, K> {
    /// The key id.
    pub key_id: T::KeyId,
    /// The key.
    pub key: K,
    /// The ticket's expiry (computed once, recorded and written into the ticket).
    pub expires_at: UnixTime,
}

/// A release decided: the stored key, the addresses served and the kind of delivery.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Granted<T: LedgerTypes> {
    /// The key to deliver, as stored.
    pub handle: T::KeyHandle,
    /// The listed addresses served (empty for a gateway).
    pub served: Vec<T::Address>,
    /// First release, re-delivery or gateway.
    pub kind: ReleaseKind,
}
