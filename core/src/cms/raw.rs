//! SignedData as it is on the wire, with its `SET OF` members kept as bytes in X.690 order.
//!
//! DER (X.690 §11.6) orders the elements of a `SET OF` by their encodings, compared as octet
//! strings. The `cms` crate's `SET OF` types sort by a structural comparison instead, which
//! for certificates of equal length is not byte order (its `CertificateChoices::value_cmp`
//! compares the encodings as a `SEQUENCE OF INTEGER`). A correctly ordered request was then
//! refused as `ber_not_der`, and our own output was not always in DER order. Here every
//! `SET OF` whose elements the profile reads (certificates, signed and unsigned attributes,
//! digest algorithms, signer infos) holds [`Element`]s, whose order is byte order: decoding
//! with `der` sorts them, and the strict round trip ([`crate::wire::strict`]) then refuses
//! input that was not already sorted, exactly as X.690 requires.

use cms::content_info::CmsVersion;
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use der::asn1::{OctetString, SetOfVec};
use der::{Decode, DerOrd, Encode, Length, Reader, Sequence, Writer};
use spki::AlgorithmIdentifierOwned;

/// One DER element (tag, length and value) kept as its bytes; ordered as X.690 orders the
/// elements of a `SET OF`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element(pub Vec<u8>);

impl<'a> Decode<'a> for Element {
    type Error = der::Error;

    fn decode<R: Reader<'a>>(reader: &mut R) -> der::Result<Self> {
        Ok(Element(reader.tlv_bytes()?.to_vec()))
    }
}

impl Encode for Element {
    fn encoded_len(&self) -> der::Result<Length> {
        Length::try_from(self.0.len())
    }

    fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(&self.0)
    }
}

impl DerOrd for Element {
    fn der_cmp(&self, other: &Self) -> der::Result<core::cmp::Ordering> {
        // Two distinct complete encodings are never one a zero-padded prefix of the other,
        // so plain lexicographic order is X.690's padded comparison.
        Ok(self.0.cmp(&other.0))
    }
}

/// A `SET OF` kept as bytes in X.690 order.
pub type ElementSet = SetOfVec<Element>;

/// Builds an [`ElementSet`] from encodings in any order (it sorts them).
pub fn element_set(elements: Vec<Vec<u8>>) -> der::Result<ElementSet> {
    SetOfVec::try_from(elements.into_iter().map(Element).collect::<Vec<_>>())
}

/// RFC 5652 §5.1 `SignedData`, its sets as [`ElementSet`]s.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct SignedDataRaw {
    /// `version`.
    pub version: CmsVersion,
    /// `digestAlgorithms`.
    pub digest_algorithms: ElementSet,
    /// `encapContentInfo`.
    pub encap_content_info: EncapsulatedContentInfo,
    /// `certificates [0] IMPLICIT CertificateSet`.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub certificates: Option<ElementSet>,
    /// `crls [1] IMPLICIT RevocationInfoChoices`.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub crls: Option<ElementSet>,
    /// `signerInfos`.
    pub signer_infos: ElementSet,
}

/// RFC 5652 §5.3 `SignerInfo`, its attribute sets as [`ElementSet`]s.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct SignerInfoRaw {
    /// `version`.
    pub version: CmsVersion,
    /// `sid`.
    pub sid: SignerIdentifier,
    /// `digestAlgorithm`.
    pub digest_alg: AlgorithmIdentifierOwned,
    /// `signedAttrs [0] IMPLICIT SignedAttributes`.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true", optional = "true")]
    pub signed_attrs: Option<ElementSet>,
    /// `signatureAlgorithm`.
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// `signature`.
    pub signature: OctetString,
    /// `unsignedAttrs [1] IMPLICIT UnsignedAttributes`.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true", optional = "true")]
    pub unsigned_attrs: Option<ElementSet>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_sort_by_bytes_not_by_structure() {
        // Two INTEGER-like TLVs of equal length whose byte order differs from what a
        // SEQUENCE OF INTEGER comparison of their bytes would give.
        let a = vec![0x30, 0x02, 0x7f, 0x00];
        let b = vec![0x30, 0x02, 0x80, 0x00];
        let set = element_set(vec![b.clone(), a.clone()]).map_err(|e| e.to_string());
        let set = set.unwrap_or_else(|e| panic!("{e}"));
        let order: Vec<_> = set.iter().map(|e| e.0.clone()).collect();
        assert_eq!(order, vec![a.clone(), b.clone()]);
        // Decoding an unsorted SET sorts it: the strict round trip then tells it apart.
        let unsorted = [&[0x31, 0x08][..], &b, &a].concat();
        let decoded = ElementSet::from_der(&unsorted).map_err(|e| e.to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(decoded.to_der().ok(), Some(unsorted));
    }
}
