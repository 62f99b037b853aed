//! The gatekeeper's issuance log, as an auditor checks it (issue 27, deliverable 4).
//!
//! - [`merkle`]: the RFC 9162 Merkle tree: hashing, roots, inclusion and consistency proofs.
//!
//! Sans-IO like the rest of the core: bytes in, a typed [`crate::Error`] out; `now` and keys
//! are arguments. `docs/protocol.md` §10 describes the log.

pub mod merkle;
