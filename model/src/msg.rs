//! The model's messages, timers and time.

use ekg_core::UnixTime;

use crate::symbols::{Cert, KeyName};

/// The model's time: tick `t` is second `EPOCH + t`. Without a clock every action happens at
/// tick 0, tickets never expire ([`FAR`]) and retention never ends.
pub(crate) const EPOCH: u64 = 1_000;
pub(crate) const FAR: UnixTime = UnixTime(u64::MAX / 2);
/// A ticket expiry that never comes (no clock).
pub const NEVER: u8 = u8::MAX;

/// The time of tick `tick` ([`NEVER`]: never).
pub(crate) fn time(tick: u8) -> UnixTime {
    if tick == NEVER { FAR } else { UnixTime(EPOCH + u64::from(tick)) }
}

/// Messages. `attempt` distinguishes a client's retries and `message` the sender's messages
/// (fresh nonces in the real protocol); `signer` is the certificate that signed; `to` the
/// certificate a key is encrypted to; `key` is a ticket's key id and `material` the key
/// itself; times are ticks.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    /// A key request for message `message`, signed by `signer` at tick `time`.
    KeyRequest { signer: Cert, message: u8, attempt: u8, time: u8 },
    /// Grant and ticket: the ticket of key id `key` (expiring at tick `expires`, [`NEVER`]
    /// without a clock), the key `material` encrypted to `to`.
    Grant { key: KeyName, material: KeyName, to: Cert, message: u8, attempt: u8, expires: u8 },
    /// The sealed message with its ticket (by mail).
    Mail { key: KeyName },
    /// A release request: `signer` countersigns the ticket of `key`.
    ReleaseRequest { key: KeyName, signer: Cert, attempt: u8 },
    /// A release for the ticket of `key`: the stored key `material` encrypted to `to`.
    /// `destroys` (the ledger destroyed the key with this release) only orders a batch of
    /// responses ([`batch_order`]); no property reads it. `at` is the tick it was decided at
    /// (ghost: property `destr` reads it, no actor does; always 0 without a clock).
    Release { key: KeyName, material: KeyName, to: Cert, attempt: u8, destroys: bool, at: u8 },
    /// A refusal of `signer`'s request `attempt` (for `key`, if a release); the real
    /// gatekeeper answers with a rejection code.
    Refused { key: Option<KeyName>, signer: Cert, attempt: u8 },
}

impl Msg {
    /// The message packed into one integer, injectively (every field is a byte or a flag):
    /// how `reduction::role` describes a recipient's messages.
    pub(crate) fn packed(&self) -> u128 {
        let key = |k: &KeyName| (u128::from(k.boot) << 8) | u128::from(k.seq);
        let (tag, material, key, addr, attempt, flag, extra) = match self {
            Msg::KeyRequest { signer, message, attempt, time } => {
                (0, 0, 0, *signer, *attempt, false, u16::from(*message) << 8 | u16::from(*time))
            }
            Msg::Grant { key: k, material: m, to, message, attempt, expires } => {
                (1, key(m), key(k), *to, *attempt, false, u16::from(*message) << 8 | u16::from(*expires))
            }
            Msg::Mail { key: k } => (2, 0, key(k), 0, 0, false, 0),
            Msg::ReleaseRequest { key: k, signer, attempt } => (3, 0, key(k), *signer, *attempt, false, 0),
            Msg::Release { key: k, material: m, to, attempt, destroys, at } => {
                (4, key(m), key(k), *to, *attempt, *destroys, u16::from(*at))
            }
            Msg::Refused { key: k, signer, attempt } => {
                (5, 0, k.as_ref().map_or(0, key), *signer, *attempt, k.is_some(), 0)
            }
        };
        (tag << 80)
            | (material << 64)
            | (key << 48)
            | (u128::from(addr) << 40)
            | (u128::from(attempt) << 32)
            | (u128::from(flag) << 24)
            | u128::from(extra)
    }
}

/// Timers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// A client retries its request.
    Retry,
    /// The gatekeeper sends responses whose records are durable (crash window after them).
    Respond,
    /// The gatekeeper writes records of responses already sent (the wrong order).
    Persist,
    /// The gatekeeper's store starts failing (its next append fails).
    StoreFault,
    /// The clock advances one tick (the gatekeeper then runs what is due).
    Tick,
}
