//! Identifiers, digests and secret keys as newtypes.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a key id in bytes.
pub const KEY_ID_LEN: usize = 16;
/// Length of a request nonce in bytes.
pub const NONCE_LEN: usize = 16;
/// Length of a one-time key (AES-256) in bytes.
pub const KEY_LEN: usize = 32;

/// The gatekeeper's 16-byte identifier of a one-time key. Random, never reused.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

/// A 16-byte request nonce chosen by the client.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nonce(pub [u8; NONCE_LEN]);

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

/// Identity of one certificate: the SHA-256 of its DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CertId(pub [u8; 32]);

macro_rules! hex_debug {
    ($t:ident, $name:literal) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($name, "({})"), self)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0.iter() {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
        impl $t {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }
            /// From a slice of exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map($t)
            }
        }
    };
}
hex_debug!(KeyId, "KeyId");
hex_debug!(Nonce, "Nonce");
hex_debug!(Digest, "Digest");
hex_debug!(CertId, "CertId");

/// What identifies a key request (V14): the sender's address and its nonce, both covered
/// by the sender's signature. Two signatures over the same KeyRequest are one request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId {
    /// The sender.
    pub sender: crate::address::EmailAddress,
    /// Its nonce.
    pub nonce: Nonce,
}

/// A one-time AES-256 key: the key the gatekeeper issues and releases (the sealed message's
/// key-encryption key). Zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct OneTimeKey([u8; KEY_LEN]);

impl OneTimeKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        OneTimeKey(bytes)
    }

    /// From a slice of exactly [`KEY_LEN`] bytes, copied straight into the key (no copy of
    /// the bytes is left behind).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut key = OneTimeKey([0; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return None;
        }
        key.0.copy_from_slice(bytes);
        Some(key)
    }

    /// A key whose bytes `fill` writes in place (no copy of them is left behind).
    pub(crate) fn filled_by(fill: impl FnOnce(&mut [u8])) -> Self {
        let mut key = OneTimeKey([0; KEY_LEN]);
        fill(&mut key.0);
        key
    }

    /// The key bytes: handle with care.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for OneTimeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeKey(<redacted>)")
    }
}

/// A stored key: a [`OneTimeKey`] wrapped (AES key wrap, RFC 3394) under the gatekeeper's
/// storage key. This is all the store ever holds of a key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Zeroize, ZeroizeOnDrop)]
pub struct WrappedKey(pub [u8; KEY_LEN + 8]);

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WrappedKey(<40 bytes>)")
    }
}

/// The storage key a stored key is wrapped under: the single key of the releases before
/// storage-key epochs (`Legacy`), or the key of epoch `n`, which covers the issuance times
/// `[n * storage_epoch_secs, (n + 1) * storage_epoch_secs)` (`docs/protocol.md`, "Key
/// custody"). Destroying an epoch's key destroys every key wrapped under it, in every copy
/// of the store (backups, free pages, WAL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StorageEpoch {
    /// The one storage key of records written before epochs (codec version 1).
    Legacy,
    /// Epoch `n`.
    Numbered(u64),
}

impl StorageEpoch {
    /// The epoch of an issuance at `now`: `floor(now / epoch_secs)` (`epoch_secs` at least 1).
    pub fn of(now: crate::time::UnixTime, epoch_secs: u64) -> u64 {
        now.secs() / epoch_secs.max(1)
    }
}

impl fmt::Display for StorageEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageEpoch::Legacy => f.write_str("legacy"),
            StorageEpoch::Numbered(n) => write!(f, "{n}"),
        }
    }
}

/// What the store holds of a key: the key wrapped under the storage key of an epoch, and
/// that epoch (the ledger's key handle).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoredKey {
    /// The epoch whose storage key wraps it.
    pub epoch: StorageEpoch,
    /// The wrapped key.
    pub wrapped: WrappedKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let k = OneTimeKey::from_bytes([0xAB; KEY_LEN]);
        let s = format!("{k:?}");
        assert!(!s.contains("ab") && !s.contains("AB") && s.contains("redacted"), "{s}");
        assert!(!format!("{:?}", WrappedKey([0xCD; 40])).contains("cd"));
    }

    #[test]
    fn ids_print_as_hex() {
        assert_eq!(KeyId([1; 16]).to_string(), "01".repeat(16));
        assert_eq!(KeyId::from_slice(&[0; 15]), None);
    }
}
