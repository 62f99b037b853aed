//! `ekg-core`: the sans-IO core of the Email Key Gatekeeper protocol.
//!
//! Crate map (one concern per module):
//! - [`wire`]: our DER structures (key request, ticket, release request, key delivery), the
//!   OIDs of the private arc, strict DER decoding and a readable dump.
//! - [`cms`]: the narrow CMS profile: SignedData, key-transport AuthEnvelopedData (grant,
//!   release) and the KEK-keyed AuthEnvelopedData of the sealed message.
//! - [`pki`]: certificates, credentials, trust anchors, path validation, identity rules.
//! - [`crypto`]: the provider trait and the default RustCrypto provider.
//! - [`ledger`]: the gatekeeper's crypto-free decision logic (who may get which key, once),
//!   generic over identities and key handles, plus records and the [`ledger::Store`] trait.
//! - [`role`]: sender, gatekeeper, recipient and gateway.
//!
//! Nothing here opens a socket or a file, reads a clock, spawns a thread or draws ambient
//! randomness: time and RNG are arguments, bytes go in, bytes or a typed [`Error`] come out.

#![forbid(unsafe_code)]

pub mod address;
pub mod cms;
pub mod crypto;
pub mod error;
pub mod ids;
pub mod ledger;
pub mod pki;
pub mod role;
pub mod time;
pub mod wire;

pub use address::EmailAddress;
pub use error::{Error, Fault, Rejection, Result};
pub use ids::{CertId, Digest, KeyId, Nonce, OneTimeKey, WrappedKey};
pub use time::UnixTime;
