//! The narrow CMS (RFC 5652) profile of EKG.
//!
//! - [`signed`]: SignedData with one signer, content attached, signed attributes
//!   content-type, message-digest and signing-time, SHA-256 with RSA PKCS#1 v1.5. Used for the
//!   key request, the ticket, the release request, and the key delivery inside a release.
//! - [`envelope`]: AuthEnvelopedData (RFC 5083) with AES-256-GCM and one
//!   KeyTransRecipientInfo RSA-OAEP-SHA256 to the requester's certificate. Used for the grant
//!   and for each release.
//! - [`sealed`]: the sealed message, AuthEnvelopedData AES-256-GCM with one
//!   KEKRecipientInfo (id-aes256-wrap) keyed by the gatekeeper key id, the ticket digest
//!   authenticated and the ticket attached.

pub mod envelope;
mod gcm;
pub mod raw;
pub mod sealed;
pub mod signed;

use der::asn1::{Ia5String, ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tagged};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;

use crate::asn1::ContentInfo;
use crate::error::{Rejection, Result, reject};

/// Wraps a CMS content in a ContentInfo and encodes it.
pub(crate) fn content_info<T: Encode>(content_type: ObjectIdentifier, content: &T) -> Result<Vec<u8>> {
    let any = Any::from_der(&content.to_der().map_err(encode_failed)?).map_err(encode_failed)?;
    ContentInfo { content_type, content: any }.to_der().map_err(encode_failed)
}

pub(crate) fn encode_failed(e: der::Error) -> crate::error::Error {
    reject(Rejection::CryptoFailure, format!("encoding failed: {e}"))
}

pub(crate) fn ia5(s: &str) -> Result<Ia5String> {
    Ia5String::new(s).map_err(|_| reject(Rejection::InvalidAddress, "not IA5"))
}

pub(crate) fn octets(b: &[u8]) -> Result<OctetString> {
    OctetString::new(b).map_err(encode_failed)
}

pub(crate) fn algorithm(oid: ObjectIdentifier, parameters: Option<Any>) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid, parameters }
}

pub(crate) fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(encode_failed)?;
    Ok(Attribute { oid, values })
}

/// Finds the one value of attribute `oid`; refuses duplicates and multi-valued attributes.
pub(crate) fn single_attribute<'a>(
    attrs: &'a [Attribute],
    oid: &ObjectIdentifier,
    what: &str,
) -> Result<Option<&'a Any>> {
    let mut found = None;
    for attr in attrs.iter().filter(|a| &a.oid == oid) {
        if found.is_some() || attr.values.len() != 1 {
            return Err(reject(Rejection::ProfileViolation, format!("{what}: attribute {oid} repeated")));
        }
        found = attr.values.iter().next();
    }
    Ok(found)
}

/// Whether algorithm parameters are absent or NULL.
pub(crate) fn params_absent_or_null(alg: &AlgorithmIdentifierOwned) -> bool {
    match &alg.parameters {
        None => true,
        Some(p) => p.tag() == der::Tag::Null && p.value().is_empty(),
    }
}
