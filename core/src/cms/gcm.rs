//! AES-256-GCM content encryption shared by the envelopes (RFC 5083, RFC 5084).

use cms::enveloped_data::EncryptedContentInfo;
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Encode, Sequence};
use x509_cert::attr::Attribute;
use zeroize::Zeroizing;

use super::{algorithm, encode_failed};
use crate::asn1::oid;
use crate::crypto::{CryptoProvider, CryptoRng, GCM_NONCE_LEN, GCM_TAG_LEN};
use crate::error::{Rejection, Result, reject};
use crate::ids::KEY_LEN;

/// ```asn1
/// GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct GcmParameters {
    nonce: OctetString,
    icv_len: Option<u8>,
}

/// A fresh content-encryption key.
pub(crate) fn fresh_cek(provider: &dyn CryptoProvider, rng: &mut dyn CryptoRng) -> Zeroizing<[u8; KEY_LEN]> {
    let mut cek = Zeroizing::new([0u8; KEY_LEN]);
    provider.fill_random(rng, cek.as_mut_slice());
    cek
}

/// Encrypts `content`; the authenticated attributes, if any, are the additional data.
pub(crate) fn encrypt(
    provider: &dyn CryptoProvider,
    cek: &[u8; KEY_LEN],
    content_type: ObjectIdentifier,
    content: &[u8],
    auth_attrs: Option<&SetOfVec<Attribute>>,
    rng: &mut dyn CryptoRng,
) -> Result<(EncryptedContentInfo, OctetString)> {
    let mut nonce = [0u8; GCM_NONCE_LEN];
    provider.fill_random(rng, &mut nonce);
    let aad = match auth_attrs {
        Some(a) => a.to_der().map_err(encode_failed)?,
        None => Vec::new(),
    };
    let (ciphertext, tag) = provider.aes256_gcm_seal(cek, &nonce, &aad, content)?;
    let params = GcmParameters {
        nonce: OctetString::new(nonce.to_vec()).map_err(encode_failed)?,
        icv_len: Some(GCM_TAG_LEN as u8),
    };
    let eci = EncryptedContentInfo {
        content_type,
        content_enc_alg: algorithm(oid::AES256_GCM, Some(Any::encode_from(&params).map_err(encode_failed)?)),
        encrypted_content: Some(OctetString::new(ciphertext).map_err(encode_failed)?),
    };
    Ok((eci, OctetString::new(tag.to_vec()).map_err(encode_failed)?))
}

/// Decrypts and authenticates.
pub(crate) fn decrypt(
    provider: &dyn CryptoProvider,
    cek: &[u8; KEY_LEN],
    eci: &EncryptedContentInfo,
    auth_attrs: Option<&SetOfVec<Attribute>>,
    mac: &OctetString,
) -> Result<Zeroizing<Vec<u8>>> {
    let nonce = check_algorithm(eci)?;
    let ciphertext =
        eci.encrypted_content.as_ref().ok_or_else(|| reject(Rejection::ProfileViolation, "no encrypted content"))?;
    let tag: [u8; GCM_TAG_LEN] =
        mac.as_bytes().try_into().map_err(|_| reject(Rejection::ProfileViolation, "mac must be 16 bytes"))?;
    let aad = match auth_attrs {
        Some(a) => a.to_der().map_err(encode_failed)?,
        None => Vec::new(),
    };
    provider.aes256_gcm_open(cek, &nonce, &aad, ciphertext.as_bytes(), &tag)
}

/// Checks the content-encryption algorithm is AES-256-GCM, 12-byte nonce, 16-byte tag.
pub(crate) fn check_algorithm(eci: &EncryptedContentInfo) -> Result<[u8; GCM_NONCE_LEN]> {
    let alg = &eci.content_enc_alg;
    if alg.oid != oid::AES256_GCM {
        return Err(reject(Rejection::UnsupportedAlgorithm, format!("content encryption {}", alg.oid)));
    }
    let params: GcmParameters = alg
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as().ok())
        .ok_or_else(|| reject(Rejection::MalformedDer, "GCMParameters"))?;
    if params.icv_len != Some(GCM_TAG_LEN as u8) {
        return Err(reject(Rejection::UnsupportedAlgorithm, "GCM tag length must be 16"));
    }
    params
        .nonce
        .as_bytes()
        .try_into()
        .map_err(|_| reject(Rejection::UnsupportedAlgorithm, "GCM nonce must be 12 bytes"))
}
