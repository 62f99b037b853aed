//! Signed tree heads: the gatekeeper's signature on the size and root of its log at a time.
//!
//! A head is a DER `TreeHead` (`docs/ekg.asn1`) signed as a CMS SignedData of the profile
//! (content type `id-ekg-ct-treeHead`), with the same key and certificate as the tickets: so
//! `openssl cms -verify` checks it, and a verifier needs no other key than the one it
//! already trusts for tickets (`docs/protocol.md` §10.3).

use der::asn1::{GeneralizedTime, OctetString};
use der::{Encode, Sequence};

use crate::asn1::{MAX_GATEKEEPER_CERTIFICATES_LEN, oid, strict};
use crate::cms::signed;
use crate::crypto::pki::Credential;
use crate::crypto::{CryptoProvider, CryptoRng};
use crate::error::{Error, Rejection, Result, reject};
use crate::ids::Digest;
use crate::time::UnixTime;

/// Largest signed tree head: the gatekeeper's certificates and 4 KiB for the rest.
pub const MAX_TREE_HEAD_LEN: usize = MAX_GATEKEEPER_CERTIFICATES_LEN + 4096;
/// Largest TreeHead content.
const MAX_TREE_HEAD_CONTENT_LEN: usize = 128;

/// A tree head's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    /// How many entries the tree holds.
    pub tree_size: u64,
    /// Its root (RFC 9162 `MTH`).
    pub root_hash: Digest,
    /// When the gatekeeper signed it (also the SignedData's signing-time).
    pub timestamp: UnixTime,
}

/// ```asn1
/// TreeHead ::= SEQUENCE {
///   version   INTEGER (0),
///   treeSize  INTEGER (0..18446744073709551615),
///   rootHash  OCTET STRING (SIZE (32)),
///   timestamp GeneralizedTime }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct TreeHeadRaw {
    version: u8,
    tree_size: u64,
    root_hash: OctetString,
    timestamp: GeneralizedTime,
}

impl TreeHead {
    /// The DER `TreeHead`.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let raw = TreeHeadRaw {
            version: 0,
            tree_size: self.tree_size,
            root_hash: OctetString::new(self.root_hash.0.to_vec()).map_err(malformed)?,
            timestamp: self.timestamp.to_generalized()?,
        };
        raw.to_der().map_err(malformed)
    }

    /// Decodes a DER `TreeHead` (`tree_head_malformed` for anything else).
    pub fn decode(der: &[u8]) -> Result<TreeHead> {
        let raw: TreeHeadRaw = strict::decode(der, MAX_TREE_HEAD_CONTENT_LEN, "TreeHead")
            .map_err(|e| reject(Rejection::TreeHeadMalformed, e.to_string()))?;
        if raw.version != 0 {
            return Err(reject(Rejection::TreeHeadMalformed, format!("TreeHead version {}", raw.version)));
        }
        let root_hash = Digest::from_slice(raw.root_hash.as_bytes())
            .ok_or_else(|| reject(Rejection::TreeHeadMalformed, "rootHash is not 32 bytes"))?;
        Ok(TreeHead { tree_size: raw.tree_size, root_hash, timestamp: UnixTime::from_generalized(&raw.timestamp) })
    }

    /// Signs the head with the gatekeeper's credential: a SignedData ContentInfo (DER).
    pub fn sign(
        &self,
        provider: &dyn CryptoProvider,
        gatekeeper: &Credential,
        rng: &mut dyn CryptoRng,
    ) -> Result<Vec<u8>> {
        signed::sign(provider, gatekeeper, oid::CT_TREE_HEAD, &self.encode()?, self.timestamp, rng)
    }

    /// Opens a signed head (A2): the SignedData checks of the profile (V1 to V4, with their
    /// codes), a signature that verifies, and a signer whose certificate is byte-equal to one
    /// of `gatekeeper_certificates` (DER); `tree_head_bad_signature` otherwise.
    pub fn open(provider: &dyn CryptoProvider, der: &[u8], gatekeeper_certificates: &[Vec<u8>]) -> Result<TreeHead> {
        let object = signed::open(provider, der, oid::CT_TREE_HEAD, MAX_TREE_HEAD_LEN).map_err(bad_signature)?;
        if !gatekeeper_certificates.contains(&object.signer_der) {
            return Err(reject(Rejection::TreeHeadBadSignature, "signed by a certificate other than the gatekeeper's"));
        }
        let head = TreeHead::decode(&object.content)?;
        if head.timestamp != object.signing_time {
            return Err(reject(Rejection::TreeHeadMalformed, "timestamp differs from the signing-time"));
        }
        Ok(head)
    }
}

/// A signature that does not hold is the head's own code; structural refusals keep theirs.
fn bad_signature(e: Error) -> Error {
    match e.rejection() {
        Rejection::BadSignature | Rejection::DigestMismatch | Rejection::SignerCertificateMissing => {
            reject(Rejection::TreeHeadBadSignature, e.to_string())
        }
        _ => e,
    }
}

fn malformed(e: der::Error) -> Error {
    reject(Rejection::TreeHeadMalformed, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_head_round_trips_and_refuses_other_bytes() {
        let head = TreeHead { tree_size: 1 << 40, root_hash: Digest([9; 32]), timestamp: UnixTime(1_780_000_000) };
        let der = head.encode().unwrap();
        assert_eq!(TreeHead::decode(&der).unwrap(), head);
        for cut in 0..der.len() {
            assert_eq!(TreeHead::decode(&der[..cut]).unwrap_err(), Rejection::TreeHeadMalformed);
        }
        let mut v1 = der.clone();
        v1[4] = 1; // version INTEGER's value octet
        assert_eq!(TreeHead::decode(&v1).unwrap_err(), Rejection::TreeHeadMalformed);
    }
}
