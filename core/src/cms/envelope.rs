//! Key-transport AuthEnvelopedData: the grant to the sender and each release to a recipient,
//! and the early-binding (S/MIME-style) message used for comparison.
//!
//! AES-256-GCM content encryption; KeyTransRecipientInfo version 0, identified by issuer and
//! serial number, RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 4055, RFC 8017) to the
//! requester's certificate (the seed's "encrypted with the sender's public email signing
//! key"). The EKG profile ([`seal_to`], [`open`]) has exactly one recipient. The building
//! blocks [`seal_to_each`] and [`open_any`] take any number of KeyTransRecipientInfos, as
//! S/MIME (RFC 8551) does: the simulator's early binding (`ekg_sim::smime`) is made of them.

use cms::authenveloped_data::AuthEnvelopedData;
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo, RecipientInfos};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use zeroize::Zeroizing;

use super::{algorithm, content_info, encode_failed, gcm, params_absent_or_null};
use crate::asn1::{oid, strict};
use crate::crypto::pki::Credential;
use crate::crypto::{CryptoProvider, CryptoRng};
use crate::error::{Rejection, Result, reject};
use crate::ids::KEY_LEN;

/// ```asn1
/// RSAES-OAEP-params ::= SEQUENCE {
///   hashAlgorithm [0] HashAlgorithm, maskGenAlgorithm [1] MaskGenAlgorithm }
/// ```
/// (pSourceAlgorithm left at its default, the empty label.)
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct OaepParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    hash: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT")]
    mask_gen: AlgorithmIdentifierOwned,
}

fn oaep_sha256() -> Result<AlgorithmIdentifierOwned> {
    let params = OaepParams {
        hash: algorithm(oid::SHA256, None),
        mask_gen: algorithm(oid::MGF1, Some(Any::encode_from(&algorithm(oid::SHA256, None)).map_err(encode_failed)?)),
    };
    Ok(algorithm(oid::RSAES_OAEP, Some(Any::encode_from(&params).map_err(encode_failed)?)))
}

fn check_oaep_sha256(alg: &AlgorithmIdentifierOwned) -> Result<()> {
    let unsupported =
        || reject(Rejection::UnsupportedAlgorithm, "key transport must be RSAES-OAEP SHA-256/MGF1-SHA-256");
    if alg.oid != oid::RSAES_OAEP {
        return Err(unsupported());
    }
    let params: OaepParams = alg.parameters.as_ref().and_then(|p| p.decode_as().ok()).ok_or_else(unsupported)?;
    let mgf_hash: Option<AlgorithmIdentifierOwned> =
        params.mask_gen.parameters.as_ref().and_then(|p| p.decode_as().ok());
    let ok = params.hash.oid == oid::SHA256
        && params_absent_or_null(&params.hash)
        && params.mask_gen.oid == oid::MGF1
        && matches!(&mgf_hash, Some(h) if h.oid == oid::SHA256 && params_absent_or_null(h));
    if ok { Ok(()) } else { Err(unsupported()) }
}

/// Encrypts `content` (of type `content_type`) to the holder of `recipient` (EKG profile).
pub fn seal_to(
    provider: &dyn CryptoProvider,
    recipient: &Certificate,
    content_type: ObjectIdentifier,
    content: &[u8],
    rng: &mut dyn CryptoRng,
) -> Result<Vec<u8>> {
    seal_to_each(provider, &[recipient], content_type, content, rng)
}

/// Encrypts `content` once, with the content key wrapped to each of `recipients` (one
/// KeyTransRecipientInfo each, in order). Refuses an empty list.
pub fn seal_to_each(
    provider: &dyn CryptoProvider,
    recipients: &[&Certificate],
    content_type: ObjectIdentifier,
    content: &[u8],
    rng: &mut dyn CryptoRng,
) -> Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(reject(Rejection::ProfileViolation, "an envelope needs at least one recipient"));
    }
    let cek = gcm::fresh_cek(provider, rng);
    let infos = wrap_to_each(provider, recipients, cek.as_slice(), rng)?;
    let (eci, mac) = gcm::encrypt(provider, &cek, content_type, content, None, rng)?;
    let aed = AuthEnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: infos,
        auth_encrypted_content_info: eci,
        auth_attrs: None,
        mac,
        unauth_attrs: None,
    };
    content_info(oid::ID_AUTH_ENVELOPED_DATA, &aed)
}

/// One KeyTransRecipientInfo per recipient, in order, each wrapping `cek` to its certificate.
fn wrap_to_each(
    provider: &dyn CryptoProvider,
    recipients: &[&Certificate],
    cek: &[u8],
    rng: &mut dyn CryptoRng,
) -> Result<RecipientInfos> {
    let key_enc_alg = oaep_sha256()?;
    let mut infos = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let spki = recipient.tbs_certificate().subject_public_key_info().to_der().map_err(encode_failed)?;
        let wrapped = provider.oaep_sha256_encrypt(&spki, cek, rng)?;
        infos.push(RecipientInfo::Ktri(KeyTransRecipientInfo {
            version: CmsVersion::V0,
            rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: recipient.tbs_certificate().issuer().clone(),
                serial_number: recipient.tbs_certificate().serial_number().clone(),
            }),
            key_enc_alg: key_enc_alg.clone(),
            enc_key: OctetString::new(wrapped).map_err(encode_failed)?,
        }));
    }
    RecipientInfos::try_from(infos).map_err(encode_failed)
}

/// RFC 2634 §4's mail list agent on an envelope of [`seal_to_each`]: the content key is
/// unwrapped with the KeyTransRecipientInfo that names `me` (`not_for_this_recipient` when
/// none does) and wrapped to each of `recipients`, whose KeyTransRecipientInfos replace every
/// previous one. The encrypted content and its tag are kept byte for byte: the content is not
/// encrypted again (and not decrypted: the agent holds the key, not the plaintext). Refuses an
/// empty list (`profile_violation`).
pub fn readdress_to_each(
    provider: &dyn CryptoProvider,
    der: &[u8],
    me: &Credential,
    recipients: &[&Certificate],
    max_len: usize,
    rng: &mut dyn CryptoRng,
) -> Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(reject(Rejection::ProfileViolation, "an envelope needs at least one recipient"));
    }
    let (content_type, inner) = super::raw::content_info_parts(der, max_len, "ContentInfo")?;
    if content_type != oid::ID_AUTH_ENVELOPED_DATA {
        return Err(reject(Rejection::UnexpectedContentType, format!("{content_type} is not AuthEnvelopedData")));
    }
    let mut aed: AuthEnvelopedData = strict::decode(inner, max_len, "AuthEnvelopedData")?;
    let ktri = aed
        .recip_infos
        .0
        .iter()
        .find_map(|info| match info {
            RecipientInfo::Ktri(k) if identifies(&k.rid, me.certificate()) => Some(k),
            _ => None,
        })
        .ok_or_else(|| reject(Rejection::NotForThisRecipient, "no recipient info names our certificate"))?;
    check_oaep_sha256(&ktri.key_enc_alg)?;
    let cek = me.key().oaep_sha256_decrypt(ktri.enc_key.as_bytes(), rng)?;
    if cek.len() != KEY_LEN {
        return Err(reject(Rejection::KeyUnwrapFailed, "content key must be 32 bytes"));
    }
    aed.recip_infos = wrap_to_each(provider, recipients, cek.as_slice(), rng)?;
    content_info(oid::ID_AUTH_ENVELOPED_DATA, &aed)
}

/// Decrypts an envelope addressed to `me` (EKG profile: exactly one recipient); returns the
/// content type and the content.
pub fn open(
    provider: &dyn CryptoProvider,
    der: &[u8],
    me: &Credential,
    max_len: usize,
    rng: &mut dyn CryptoRng,
) -> Result<(ObjectIdentifier, Zeroizing<Vec<u8>>)> {
    open_with(provider, der, me, max_len, false, rng)
}

/// Decrypts an envelope with any number of recipients, using the KeyTransRecipientInfo that
/// names `me` (`not_for_this_recipient` when none does).
pub fn open_any(
    provider: &dyn CryptoProvider,
    der: &[u8],
    me: &Credential,
    max_len: usize,
    rng: &mut dyn CryptoRng,
) -> Result<(ObjectIdentifier, Zeroizing<Vec<u8>>)> {
    open_with(provider, der, me, max_len, true, rng)
}

fn open_with(
    provider: &dyn CryptoProvider,
    der: &[u8],
    me: &Credential,
    max_len: usize,
    many: bool,
    rng: &mut dyn CryptoRng,
) -> Result<(ObjectIdentifier, Zeroizing<Vec<u8>>)> {
    let (content_type, inner) = super::raw::content_info_parts(der, max_len, "ContentInfo")?;
    if content_type != oid::ID_AUTH_ENVELOPED_DATA {
        return Err(reject(Rejection::UnexpectedContentType, format!("{content_type} is not AuthEnvelopedData")));
    }
    let aed: AuthEnvelopedData = strict::decode(inner, max_len, "AuthEnvelopedData")?;
    if aed.version != CmsVersion::V0 || aed.originator_info.is_some() {
        return Err(reject(Rejection::UnsupportedVersion, "AuthEnvelopedData version 0 without originatorInfo"));
    }
    let ktri = if many {
        let mut ours = aed.recip_infos.0.iter().filter_map(|info| match info {
            RecipientInfo::Ktri(k) if identifies(&k.rid, me.certificate()) => Some(k),
            _ => None,
        });
        ours.next().ok_or_else(|| reject(Rejection::NotForThisRecipient, "no recipient info names our certificate"))?
    } else {
        let mut infos = aed.recip_infos.0.iter();
        let (Some(RecipientInfo::Ktri(ktri)), None) = (infos.next(), infos.next()) else {
            return Err(reject(Rejection::ProfileViolation, "exactly one KeyTransRecipientInfo is required"));
        };
        if !identifies(&ktri.rid, me.certificate()) {
            return Err(reject(Rejection::NotForThisRecipient, "recipient identifier names another certificate"));
        }
        ktri
    };
    // RFC 5652 6.2.1: the version follows the recipient identifier (found by the mutation
    // proptest: the field is not authenticated, and a wrong value went unnoticed).
    let version = match ktri.rid {
        RecipientIdentifier::IssuerAndSerialNumber(_) => CmsVersion::V0,
        RecipientIdentifier::SubjectKeyIdentifier(_) => CmsVersion::V2,
    };
    if ktri.version != version {
        return Err(reject(Rejection::UnsupportedVersion, "KeyTransRecipientInfo version does not match its rid"));
    }
    check_oaep_sha256(&ktri.key_enc_alg)?;
    gcm::check_algorithm(&aed.auth_encrypted_content_info)?;
    let cek = me.key().oaep_sha256_decrypt(ktri.enc_key.as_bytes(), rng)?;
    let cek: &[u8; KEY_LEN] =
        cek.as_slice().try_into().map_err(|_| reject(Rejection::KeyUnwrapFailed, "content key must be 32 bytes"))?;
    let content = gcm::decrypt(provider, cek, &aed.auth_encrypted_content_info, aed.auth_attrs.as_ref(), &aed.mac)?;
    Ok((aed.auth_encrypted_content_info.content_type, content))
}

fn identifies(rid: &RecipientIdentifier, cert: &Certificate) -> bool {
    let tbs = cert.tbs_certificate();
    match rid {
        RecipientIdentifier::IssuerAndSerialNumber(isn) => {
            isn.issuer == *tbs.issuer() && isn.serial_number == *tbs.serial_number()
        }
        RecipientIdentifier::SubjectKeyIdentifier(ski) => {
            matches!(tbs.get_extension::<SubjectKeyIdentifier>(), Ok(Some((_, s))) if s == *ski)
        }
    }
}
