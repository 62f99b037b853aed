//! SignedData as it is on the wire, with its `SET OF` members kept as bytes in X.690 order.
//!
//! DER (X.690 §11.6) orders the elements of a `SET OF` by their encodings, compared as octet
//! strings. The `cms` crate's `SET OF` types sort by a structural comparison instead, which
//! for certificates of equal length is not byte order (its `CertificateChoices::value_cmp`
//! compares the encodings as a `SEQUENCE OF INTEGER`). A correctly ordered request was then
//! refused as `ber_not_der`, and our own output was not always in DER order. Here every
//! `SET OF` whose elements the profile reads (certificates, signed and unsigned attributes,
//! digest algorithms, signer infos) holds [`Element`]s, whose order is byte order: decoding
//! with `der` sorts them, and the strict round trip ([`crate::asn1::strict`]) then refuses
//! input that was not already sorted, exactly as X.690 requires.

use cms::content_info::CmsVersion;
use cms::signed_data::SignerIdentifier;
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, DerOrd, Encode, Header, Length, Reader, Sequence, SliceReader, Tag, TagNumber, Writer};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use crate::asn1::strict;
use crate::error::{Rejection, Result, reject};

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

/// One DER element kept as its bytes, zeroized on drop: the eContent, which in a release is
/// the key delivery (no copy of it is left in freed memory).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretElement(pub Zeroizing<Vec<u8>>);

impl core::fmt::Debug for SecretElement {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretElement(<{} bytes>)", self.0.len())
    }
}

impl<'a> Decode<'a> for SecretElement {
    type Error = der::Error;

    fn decode<R: Reader<'a>>(reader: &mut R) -> der::Result<Self> {
        Ok(SecretElement(Zeroizing::new(reader.tlv_bytes()?.to_vec())))
    }
}

impl Encode for SecretElement {
    fn encoded_len(&self) -> der::Result<Length> {
        Length::try_from(self.0.len())
    }

    fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(&self.0)
    }
}

impl SecretElement {
    /// An OCTET STRING holding `content`, built without an unzeroized copy.
    pub fn octet_string(content: &[u8]) -> der::Result<SecretElement> {
        let header = Header::new(Tag::OctetString, Length::try_from(content.len())?);
        let mut out = Zeroizing::new(Vec::with_capacity(usize::try_from(header.encoded_len()?)? + content.len()));
        header.encode_to_vec(&mut out)?;
        out.extend_from_slice(content);
        Ok(SecretElement(out))
    }

    /// The element's tag and its contents octets.
    pub fn parts(&self) -> der::Result<(Tag, &[u8])> {
        let mut r = SliceReader::new(&self.0)?;
        let header = Header::decode(&mut r)?;
        let value = r.read_slice(header.length())?;
        r.finish()?;
        Ok((header.tag(), value))
    }
}

/// `eContent [0] EXPLICIT OCTET STRING`: the one element inside the `[0]`, kept as a
/// [`SecretElement`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EContent(pub SecretElement);

impl EContent {
    /// An eContent holding `content` as an OCTET STRING.
    pub fn octets(content: &[u8]) -> der::Result<EContent> {
        SecretElement::octet_string(content).map(EContent)
    }

    /// The contents of the OCTET STRING (an error if the element is something else).
    pub fn content(&self) -> der::Result<&[u8]> {
        match self.0.parts()? {
            (Tag::OctetString, value) => Ok(value),
            (tag, _) => Err(tag.unexpected_error(Some(Tag::OctetString)).into()),
        }
    }
}

const EXPLICIT_0: Tag = Tag::ContextSpecific { constructed: true, number: TagNumber(0) };

impl der::FixedTag for EContent {
    const TAG: Tag = EXPLICIT_0;
}

impl<'a> Decode<'a> for EContent {
    type Error = der::Error;

    fn decode<R: Reader<'a>>(reader: &mut R) -> der::Result<Self> {
        let header = Header::decode(reader)?;
        if header.tag() != EXPLICIT_0 {
            return Err(header.tag().unexpected_error(Some(EXPLICIT_0)).into());
        }
        reader.read_nested(header.length(), |r| {
            let inner = SecretElement::decode(r)?;
            Ok(EContent(inner))
        })
    }
}

impl Encode for EContent {
    fn encoded_len(&self) -> der::Result<Length> {
        let inner = Length::try_from(self.0.0.len())?;
        Header::new(EXPLICIT_0, inner).encoded_len()? + inner
    }

    fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
        Header::new(EXPLICIT_0, Length::try_from(self.0.0.len())?).encode(writer)?;
        writer.write(&self.0.0)
    }
}

/// RFC 5652 §5.2 `EncapsulatedContentInfo`, its eContent an [`EContent`].
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct EncapsulatedContentInfoRaw {
    /// `eContentType`.
    pub econtent_type: ObjectIdentifier,
    /// `eContent [0] EXPLICIT OCTET STRING OPTIONAL`.
    pub econtent: Option<EContent>,
}

/// RFC 5652 §5.1 `SignedData`, its sets as [`ElementSet`]s.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct SignedDataRaw {
    /// `version`.
    pub version: CmsVersion,
    /// `digestAlgorithms`.
    pub digest_algorithms: ElementSet,
    /// `encapContentInfo`.
    pub encap_content_info: EncapsulatedContentInfoRaw,
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

/// A ContentInfo `SEQUENCE { contentType OID, content [0] EXPLICIT ANY }`, read in place:
/// its type and the bytes of the one element inside (nothing is copied, so a secret inside
/// leaves no copy behind). DER: definite minimal lengths, nothing after the value.
pub fn content_info_parts<'a>(der: &'a [u8], max_len: usize, what: &str) -> Result<(ObjectIdentifier, &'a [u8])> {
    if der.len() > max_len {
        return Err(reject(Rejection::InputTooLarge, format!("{what}: {} bytes > {max_len}", der.len())));
    }
    let parts = (|| -> der::Result<(ObjectIdentifier, &'a [u8])> {
        let mut r = SliceReader::new(der)?;
        let parts = r.sequence(|r| {
            let oid = ObjectIdentifier::decode(r)?;
            if !strict::oid_contents_minimal(oid.as_bytes()) {
                return Err(der::Error::from(der::ErrorKind::Value { tag: Tag::ObjectIdentifier }));
            }
            let header = Header::decode(r)?;
            if header.tag() != EXPLICIT_0 {
                return Err(der::Error::from(header.tag().unexpected_error(Some(EXPLICIT_0))));
            }
            let inner = r.read_slice(header.length())?;
            // Exactly one element inside.
            let mut ir = SliceReader::new(inner)?;
            let _ = ir.tlv_bytes()?;
            ir.finish()?;
            Ok((oid, inner))
        })?;
        r.finish()?;
        Ok(parts)
    })();
    parts.map_err(|e| {
        let rejection = if strict::is_ber_not_der(der) { Rejection::BerNotDer } else { Rejection::MalformedDer };
        reject(rejection, format!("{what}: {e}"))
    })
}

/// Wraps one DER element in a ContentInfo of type `content_type`, into a buffer of exactly
/// the right size (zeroized on drop).
pub fn wrap_content_info(content_type: ObjectIdentifier, inner: &[u8]) -> der::Result<Zeroizing<Vec<u8>>> {
    let oid = content_type.to_der()?;
    let explicit = Header::new(EXPLICIT_0, Length::try_from(inner.len())?);
    let body_len = oid.len() + usize::try_from(explicit.encoded_len()?)? + inner.len();
    let outer = Header::new(Tag::Sequence, Length::try_from(body_len)?);
    let mut out = Zeroizing::new(Vec::with_capacity(usize::try_from(outer.encoded_len()?)? + body_len));
    outer.encode_to_vec(&mut out)?;
    out.extend_from_slice(&oid);
    explicit.encode_to_vec(&mut out)?;
    out.extend_from_slice(inner);
    Ok(out)
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
