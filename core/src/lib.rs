//! `ekg-core`: the sans-IO core of the Email Key Gatekeeper protocol.
//!
//! # The public surface
//! - [`role`]: the parties ([`role::Sender`], [`role::Gatekeeper`] with its typed pipeline,
//!   [`role::Recipient`], [`role::Gateway`] and their one [`role::Fetcher`] interface), their
//!   configuration, inputs and outputs.
//! - [`ledger`]: the gatekeeper's crypto-free decisions, generic over [`ledger::LedgerTypes`]
//!   (so that the model checker runs the same code): [`ledger::Ledger`], its records, the
//!   [`ledger::Store`] trait and [`ledger::MemoryStore`], the [`ledger::SharedStore`] trait of
//!   a store several gatekeepers share and [`ledger::SharedMemoryStore`], the pipeline types
//!   [`ledger::Decided`] and [`ledger::Committed`].
//! - [`crypto`]: the [`crypto::CryptoProvider`] trait and the providers.
//! - [`pki`]: credentials, trust anchors, validated certificates.
//! - At the root: [`Error`], [`Rejection`] (a stable snake_case code per check) and
//!   [`Fault`]; [`EmailAddress`]; [`UnixTime`].
//! - [`limits`]: every size limit of `docs/protocol.md` §4.4.
//! - [`ids`]: identifiers and keys.
//! - [`policy`]: security labels, attribute definitions, subject mappings and the release
//!   decision over them (crypto-free).
//! - [`token`]: access tokens at release (V28): JWT verification against an issuer's keys,
//!   the facts it gives, the `jti` record.
//! - [`audit`]: the issuance log (RFC 9162 Merkle tree), its entries and signed tree heads.
//!
//! The raw ASN.1 structures, the strict DER decoder, the CMS building blocks and the dump are
//! not part of it: they sit behind [`internal`] (hidden; for the fixtures' generator, the
//! simulator, benchmarks and fuzzers, as rustls does), with no stability promise.
//!
//! Nothing here opens a socket or a file, reads a clock, spawns a thread or draws ambient
//! randomness: time and RNG are arguments, bytes go in, bytes or a typed [`Error`] come out.

#![forbid(unsafe_code)]

mod address;
pub mod audit;
mod cms;
pub mod crypto;
mod error;
pub mod ids;
pub mod ledger;
pub mod pki;
pub mod planted;
pub mod policy;
pub mod role;
mod time;
pub mod token;
mod wire;

pub use address::EmailAddress;
pub use error::{Error, Fault, Rejection, Result};
pub use ids::{CertId, Digest, KeyId, Nonce, OneTimeKey, RequestId, StorageEpoch, StoredKey, WrappedKey};
pub use time::UnixTime;

/// The size limits of `docs/protocol.md` §4.4, in bytes (counts where said).
pub mod limits {
    pub use crate::address::{DOMAIN_MAX, LOCAL_PART_MAX};
    pub use crate::cms::sealed::MAX_SEALED_LEN;
    pub use crate::cms::signed::{MAX_CERTIFICATE_LEN, MAX_CERTIFICATES};
    pub use crate::wire::{
        MAX_ENVELOPE_LEN, MAX_GATEKEEPER_CERTIFICATES_LEN, MAX_KEY_REQUEST_LEN, MAX_RECIPIENTS,
        MAX_RELEASE_REQUEST_LEN, MAX_TICKET_LEN, MAX_URI_LEN,
    };
}

/// Building blocks below the public surface: the CMS profile's pieces, the raw ASN.1 of
/// `docs/ekg.asn1`, strict DER, OIDs and the readable dump. For the fixtures' generator,
/// the simulator, benchmarks and fuzzers; no stability promise.
#[doc(hidden)]
pub mod internal {
    /// The CMS profile: SignedData, key-transport envelopes, the sealed message, raw sets.
    pub mod cms {
        pub use crate::cms::*;
    }
    /// The raw structures of `docs/ekg.asn1`, OIDs, strict DER and the dump.
    pub mod wire {
        pub use crate::wire::*;
    }
}
