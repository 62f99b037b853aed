//! SignedData: build and verify (signature and profile; the certificate path is [`crate::crypto::pki`]'s).

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::signed_data::SignerIdentifier;
use der::asn1::{ObjectIdentifier, OctetString, UtcTime};
use der::{Any, Decode, Encode, Tag};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::time::Time;

use super::raw::{
    EContent, EncapsulatedContentInfoRaw, SignedDataRaw, SignerInfoRaw, content_info_parts, element_set,
    wrap_content_info,
};
use super::{algorithm, attribute, encode_failed, params_absent_or_null, single_attribute};
use crate::asn1::{oid, strict};
use crate::crypto::pki::Credential;
use crate::crypto::{CryptoProvider, CryptoRng};
use crate::error::{Rejection, Result, reject};
use crate::time::UnixTime;
use zeroize::Zeroizing;

/// Most certificates a SignedData may carry.
pub const MAX_CERTIFICATES: usize = 8;

/// A SignedData whose profile, digest and signature were checked. The signer's certificate
/// path is not yet validated: pass [`SignedObject::signer`] and
/// [`SignedObject::certificates`] to [`crate::crypto::pki::TrustAnchors::validate`].
#[derive(Clone, Debug)]
pub struct SignedObject {
    /// The encapsulated content (DER of one of our structures); zeroized on drop (in a
    /// release it is the key delivery).
    pub content: Zeroizing<Vec<u8>>,
    /// The signer's certificate.
    pub signer: Certificate,
    /// The signer's certificate, as carried (DER).
    pub signer_der: Vec<u8>,
    /// The other certificates carried (candidate intermediates).
    pub certificates: Vec<Certificate>,
    /// The same, DER as carried.
    pub certificates_der: Vec<Vec<u8>>,
    /// The signed signing-time attribute.
    pub signing_time: UnixTime,
}

/// Signs `content` (of type `content_type`) as a SignedData ContentInfo. Every `SET OF` is
/// written in X.690 order (by encoding), certificates included.
pub fn sign(
    provider: &dyn CryptoProvider,
    signer: &Credential,
    content_type: ObjectIdentifier,
    content: &[u8],
    signing_time: UnixTime,
    rng: &mut dyn CryptoRng,
) -> Result<Vec<u8>> {
    let mut signed = sign_secret(provider, signer, content_type, content, signing_time, rng)?;
    Ok(core::mem::take(&mut *signed))
}

/// As [`sign`], for a secret `content` (a key delivery): every buffer that holds it is
/// zeroized when dropped, the result included.
pub fn sign_secret(
    provider: &dyn CryptoProvider,
    signer: &Credential,
    content_type: ObjectIdentifier,
    content: &[u8],
    signing_time: UnixTime,
    rng: &mut dyn CryptoRng,
) -> Result<Zeroizing<Vec<u8>>> {
    let digest = provider.sha256(content);
    let time = signing_time_value(signing_time)?;
    let attrs = [
        attribute(oid::ATTR_CONTENT_TYPE, Any::encode_from(&content_type).map_err(encode_failed)?)?,
        attribute(oid::ATTR_MESSAGE_DIGEST, Any::new(Tag::OctetString, digest.0.to_vec()).map_err(encode_failed)?)?,
        attribute(oid::ATTR_SIGNING_TIME, time)?,
    ];
    let signed_attrs =
        element_set(attrs.iter().map(Encode::to_der).collect::<der::Result<_>>().map_err(encode_failed)?)
            .map_err(encode_failed)?;
    // RFC 5652 section 5.4: the signature covers the DER of the attributes as a SET OF.
    let to_sign = signed_attrs.to_der().map_err(encode_failed)?;
    let signature = signer.key().sign_pkcs1_sha256(&to_sign, rng)?;
    let cert = signer.certificate();
    let signer_info = SignerInfoRaw {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate().issuer().clone(),
            serial_number: cert.tbs_certificate().serial_number().clone(),
        }),
        digest_alg: algorithm(oid::SHA256, None),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: algorithm(oid::SHA256_WITH_RSA, Some(Any::null())),
        signature: OctetString::new(signature).map_err(encode_failed)?,
        unsigned_attrs: None,
    };
    let mut certs = vec![signer.certificate_der().to_vec()];
    certs.extend(signer.chain_der().iter().cloned());
    let signed_data = SignedDataRaw {
        version: CmsVersion::V3,
        digest_algorithms: element_set(vec![algorithm(oid::SHA256, None).to_der().map_err(encode_failed)?])
            .map_err(encode_failed)?,
        encap_content_info: EncapsulatedContentInfoRaw {
            econtent_type: content_type,
            econtent: Some(EContent::octets(content).map_err(encode_failed)?),
        },
        certificates: Some(element_set(certs).map_err(encode_failed)?),
        crls: None,
        signer_infos: element_set(vec![signer_info.to_der().map_err(encode_failed)?]).map_err(encode_failed)?,
    };
    // `to_der` writes into a buffer of exactly the encoded length: wrapped at once.
    let inner = Zeroizing::new(signed_data.to_der().map_err(encode_failed)?);
    wrap_content_info(oid::ID_SIGNED_DATA, &inner).map_err(encode_failed)
}

fn signing_time_value(t: UnixTime) -> Result<Any> {
    let dt = t.to_der_datetime()?;
    // RFC 5652 section 11.3: UTCTime for 1950..2049, GeneralizedTime otherwise.
    let time = if dt.year() < 2050 {
        Time::UtcTime(UtcTime::from_date_time(dt).map_err(encode_failed)?)
    } else {
        Time::GeneralTime(der::asn1::GeneralizedTime::from_date_time(dt))
    };
    Any::encode_from(&time).map_err(encode_failed)
}

/// Parses and checks a SignedData ContentInfo of our profile whose eContentType must be
/// `expected`. The checks and their order are `docs/protocol.md` §3.0.3 (V1 to V4).
pub fn open(
    provider: &dyn CryptoProvider,
    der: &[u8],
    expected: ObjectIdentifier,
    max_len: usize,
) -> Result<SignedObject> {
    open_with(provider, der, expected, max_len, true)
}

/// As [`open`]; with `verify` false every check but the RSA signature itself is made. Only for
/// bytes whose signature is already known good (the gatekeeper's own tickets, recognised by
/// their SHA-256).
pub(crate) fn open_with(
    provider: &dyn CryptoProvider,
    der: &[u8],
    expected: ObjectIdentifier,
    max_len: usize,
    verify: bool,
) -> Result<SignedObject> {
    // V1: DER, within the size limit (read in place: nothing inside is copied).
    let (content_type, inner) = content_info_parts(der, max_len, "ContentInfo")?;
    // V2: the profile.
    if content_type != oid::ID_SIGNED_DATA {
        return Err(reject(Rejection::UnexpectedContentType, format!("{content_type} is not SignedData")));
    }
    let sd: SignedDataRaw = strict::decode(inner, max_len, "SignedData")?;
    if sd.version != CmsVersion::V3 {
        return Err(reject(Rejection::UnsupportedVersion, "SignedData version must be 3"));
    }
    if sd.encap_content_info.econtent_type != expected {
        return Err(reject(
            Rejection::UnexpectedContentType,
            format!("eContentType {} where {} was expected", sd.encap_content_info.econtent_type, expected),
        ));
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| reject(Rejection::ProfileViolation, "detached content"))?;
    let (tag, value) = econtent.0.parts().map_err(|_| reject(Rejection::MalformedDer, "eContent"))?;
    if tag != Tag::OctetString {
        return Err(reject(Rejection::MalformedDer, "eContent is not an OCTET STRING"));
    }
    let content = Zeroizing::new(value.to_vec());
    if sd.crls.is_some() {
        return Err(reject(Rejection::ProfileViolation, "CRLs are not carried in this profile"));
    }
    // digestAlgorithms names the one signer's one digest: exactly {id-sha256}.
    let mut digests = sd.digest_algorithms.iter();
    let (Some(digest_alg), None) = (digests.next(), digests.next()) else {
        return Err(reject(Rejection::ProfileViolation, "digestAlgorithms must hold exactly one algorithm"));
    };
    let digest_alg: AlgorithmIdentifierOwned = strict::decode(&digest_alg.0, max_len, "digestAlgorithms")?;
    if digest_alg.oid != oid::SHA256 || !params_absent_or_null(&digest_alg) {
        return Err(reject(Rejection::UnsupportedAlgorithm, format!("digestAlgorithms {}", digest_alg.oid)));
    }
    let mut signers = sd.signer_infos.iter();
    let (Some(si), None) = (signers.next(), signers.next()) else {
        return Err(reject(Rejection::ProfileViolation, "exactly one SignerInfo is required"));
    };
    let si: SignerInfoRaw = strict::decode(&si.0, max_len, "SignerInfo")?;
    if si.digest_alg.oid != oid::SHA256 || !params_absent_or_null(&si.digest_alg) {
        return Err(reject(Rejection::UnsupportedAlgorithm, format!("digest {}", si.digest_alg.oid)));
    }
    let sig_ok = matches!(si.signature_algorithm.oid, o if o == oid::SHA256_WITH_RSA || o == oid::RSA_ENCRYPTION);
    if !sig_ok || !params_absent_or_null(&si.signature_algorithm) {
        return Err(reject(Rejection::UnsupportedAlgorithm, format!("signature {}", si.signature_algorithm.oid)));
    }
    // No signature covers unsigned attributes: the profile has none.
    if si.unsigned_attrs.is_some() {
        return Err(reject(Rejection::ProfileViolation, "unsigned attributes are not allowed"));
    }
    // V3: the signed attributes.
    let attr_set =
        si.signed_attrs.as_ref().ok_or_else(|| reject(Rejection::ProfileViolation, "no signed attributes"))?;
    let attrs = attr_set
        .iter()
        .map(|a| strict::decode::<Attribute>(&a.0, max_len, "signed attribute"))
        .collect::<Result<Vec<_>>>()?;
    let ct = single_attribute(&attrs, &oid::ATTR_CONTENT_TYPE, "signed")?
        .ok_or_else(|| reject(Rejection::ProfileViolation, "no content-type attribute"))?;
    if ct.decode_as::<ObjectIdentifier>().ok() != Some(expected) {
        return Err(reject(Rejection::ContentTypeMismatch, "content-type attribute"));
    }
    let md = single_attribute(&attrs, &oid::ATTR_MESSAGE_DIGEST, "signed")?
        .ok_or_else(|| reject(Rejection::ProfileViolation, "no message-digest attribute"))?;
    let md = md.decode_as::<OctetString>().map_err(|_| reject(Rejection::MalformedDer, "message-digest"))?;
    if md.as_bytes() != provider.sha256(&content).as_bytes()
        && !crate::planted::is(crate::planted::PlantedBug::DigestUnchecked)
    {
        return Err(reject(Rejection::DigestMismatch, "message-digest attribute"));
    }
    let st = single_attribute(&attrs, &oid::ATTR_SIGNING_TIME, "signed")?
        .ok_or_else(|| reject(Rejection::ProfileViolation, "no signing-time attribute"))?;
    let signing_time = signing_time_of(st)?;
    // V4: the signer's certificate, then the signature.
    let mut certs = Vec::new();
    for element in sd.certificates.iter().flat_map(|s| s.iter()) {
        // CertificateChoices: only the plain X.509 certificate (a SEQUENCE) is in the profile.
        if element.0.first() != Some(&0x30) {
            return Err(reject(Rejection::ProfileViolation, "non-X.509 certificate"));
        }
        if certs.len()
            == MAX_CERTIFICATES + usize::from(crate::planted::is(crate::planted::PlantedBug::CertificatesPlusOne))
        {
            return Err(reject(Rejection::ProfileViolation, format!("more than {MAX_CERTIFICATES} certificates")));
        }
        certs.push(element);
    }
    let position = certs.iter().position(|c| identifies(&si.sid, &c.0)).ok_or_else(|| {
        reject(Rejection::SignerCertificateMissing, "no carried certificate matches the signer identifier")
    })?;
    let signer_der = certs.remove(position).0.clone();
    let expected_version = match si.sid {
        SignerIdentifier::IssuerAndSerialNumber(_) => CmsVersion::V1,
        SignerIdentifier::SubjectKeyIdentifier(_) => CmsVersion::V3,
    };
    if si.version != expected_version {
        return Err(reject(Rejection::UnsupportedVersion, "SignerInfo version does not match its sid"));
    }
    let signer = certificate(&signer_der)?;
    if verify {
        let spki = signer.tbs_certificate().subject_public_key_info().to_der().map_err(encode_failed)?;
        let signed_bytes = attr_set.to_der().map_err(encode_failed)?;
        provider.verify_pkcs1_sha256(&spki, &signed_bytes, si.signature.as_bytes())?;
    }
    let certificates = certs.iter().map(|c| certificate(&c.0)).collect::<Result<Vec<_>>>()?;
    let certificates_der = certs.into_iter().map(|c| c.0.clone()).collect();
    Ok(SignedObject { content, signer, signer_der, certificates, certificates_der, signing_time })
}

/// A carried certificate, in DER.
fn certificate(der: &[u8]) -> Result<Certificate> {
    strict::decode(der, MAX_CERTIFICATE_LEN, "certificate")
}

/// Largest certificate accepted inside a SignedData, in bytes.
pub const MAX_CERTIFICATE_LEN: usize = 16 * 1024;

/// The signing-time value: RFC 5652 §11.3 makes UTCTime mandatory for 1950 to 2049 and
/// GeneralizedTime for other years; any other form is refused (`profile_violation`).
fn signing_time_of(value: &Any) -> Result<UnixTime> {
    let time = Time::from_der(&value.to_der().map_err(encode_failed)?)
        .map_err(|_| reject(Rejection::MalformedDer, "signing-time"))?;
    if let Time::GeneralTime(g) = &time {
        let year = g.to_date_time().year();
        if (1950..2050).contains(&year) {
            return Err(reject(Rejection::ProfileViolation, "signing-time before 2050 must be UTCTime"));
        }
    }
    Ok(UnixTime::from_x509(&time))
}

/// Whether `sid` names the certificate whose DER is `cert` (compared on the parsed fields,
/// before the certificate is decoded strictly).
fn identifies(sid: &SignerIdentifier, cert: &[u8]) -> bool {
    let Ok(cert) = Certificate::from_der(cert) else { return false };
    let tbs = cert.tbs_certificate();
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            isn.issuer == *tbs.issuer() && isn.serial_number == *tbs.serial_number()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            matches!(tbs.get_extension::<SubjectKeyIdentifier>(), Ok(Some((_, s))) if s == *ski)
        }
    }
}
