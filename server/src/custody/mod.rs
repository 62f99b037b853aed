//! The gatekeeper's key custody in the service: where the storage-epoch keys live
//! (`docs/server.md`, "Key custody"). The core decides which epoch a key belongs to and
//! when an epoch's key may go ([`ekg_core::role::StorageKeys`]); this module keeps the keys.

pub mod files;

pub use files::EpochKeyFiles;
