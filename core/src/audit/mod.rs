//! The gatekeeper's issuance log, as an auditor checks it (issue 27, deliverable 4).
//!
//! - [`merkle`]: the RFC 9162 Merkle tree: hashing, roots, inclusion and consistency proofs.
//! - [`entry`]: log entries, their binary encoding, the log file, keyed address commitments.
//! - [`head`]: signed tree heads (a CMS SignedData of the gatekeeper).
//! - [`verify`]: the auditor's checks A1 to A6 over a whole log.
//!
//! Sans-IO like the rest of the core: bytes in, a typed [`crate::Error`] out; `now` and keys
//! are arguments. `docs/protocol.md` §10 describes the log.

pub mod entry;
pub mod head;
pub mod merkle;
pub mod verify;

pub use entry::{EntryKind, LogEntry, LogSalt};
pub use head::TreeHead;
pub use merkle::Tree;
pub use verify::{Inclusion, Log, check_consistency};
