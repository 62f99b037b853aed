//! Attribute-based release, the access half of the protocol (`docs/protocol.md` §12):
//! - [`policy`]: security labels, attribute definitions, subject mappings and the release
//!   decision over them (crypto-free);
//! - [`token`]: access tokens at release (V28): JWT verification against an issuer's keys,
//!   the facts it gives, the `jti` record.

pub mod policy;
pub mod token;
