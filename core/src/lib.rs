//! `ekg-core`: the sans-IO core of the Email Key Gatekeeper protocol.
//!
//! # The public surface, in tiers
//! At the root, the names most callers need: the parties ([`Sender`], [`Gatekeeper`],
//! [`Recipient`], [`Gateway`], [`ListAgent`] and their one [`Fetcher`] interface), the
//! gatekeeper's durable state ([`Store`], [`MemoryStore`]), the crypto provider
//! ([`CryptoProvider`]), [`Error`], [`Rejection`] (a stable snake_case code per check) and
//! [`Fault`], [`EmailAddress`], [`UnixTime`], and the identifiers and keys ([`KeyId`],
//! [`CertId`], [`Digest`], [`Nonce`], [`RequestId`], [`OneTimeKey`], [`WrappedKey`],
//! [`StoredKey`], [`StorageEpoch`]). Below them six modules, one tier each:
//! - [`role`]: the parties, their configuration, inputs and outputs, and the gatekeeper's
//!   typed pipeline (verify, decide, commit, build); [`role::planted`], the planted bugs of
//!   the conformance runner's test mode.
//! - [`ledger`]: the gatekeeper's crypto-free decisions, generic over [`ledger::LedgerTypes`]
//!   (so that the model checker runs the same code): [`ledger::Ledger`], its records, the
//!   [`Store`] trait and [`MemoryStore`], the rounds that make a decision durable
//!   ([`ledger::Round`]), the pipeline types [`ledger::Decided`] and [`ledger::Committed`].
//! - [`crypto`]: the [`CryptoProvider`] trait and the providers; [`crypto::pki`], credentials,
//!   trust anchors, path validation and revocation.
//! - [`access`]: attribute-based release (Plasma's half): [`access::policy`] (security
//!   labels, attribute definitions, subject mappings, the release decision; crypto-free) and
//!   [`access::token`] (access tokens at release, V28).
//! - [`audit`]: the issuance log (RFC 9162 Merkle tree), its entries and signed tree heads.
//! - [`wire`]: the one inspection tier: the protocol's [`wire::limits`], the raw structures
//!   of `docs/ekg.asn1`, its OIDs, the CMS building blocks and the readable [`wire::dump`].
//!   For the fixtures' generator, the simulator, the CLI's inspection, benchmarks and tests;
//!   it names each item it exposes, and the strict DER codec and the state machines stay
//!   private.
//!
//! Nothing here opens a socket or a file, reads a clock, spawns a thread or draws ambient
//! randomness: time and RNG are arguments, bytes go in, bytes or a typed [`Error`] come out.

#![forbid(unsafe_code)]

pub mod access;
mod address;
mod asn1;
pub mod audit;
mod cms;
pub mod crypto;
mod error;
mod ids;
pub mod ledger;
mod planted;
pub mod role;
mod time;
pub mod wire;

pub use address::EmailAddress;
pub use crypto::CryptoProvider;
pub use error::{Error, Fault, Rejection, Result};
pub use ids::{
    CertId, Digest, KEY_ID_LEN, KEY_LEN, KeyId, NONCE_LEN, Nonce, OneTimeKey, RequestId, StorageEpoch, StoredKey,
    WrappedKey,
};
pub use ledger::{MemoryStore, Store};
pub use role::{Fetcher, Gatekeeper, Gateway, ListAgent, Recipient, Sender};
pub use time::UnixTime;
