//! SignedData: build and verify (signature and profile; the certificate path is [`crate::pki`]'s).

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Any, Decode, Encode, Tag, Tagged};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::time::Time;

use super::{algorithm, attribute, content_info, encode_failed, params_absent_or_null, single_attribute};
use crate::crypto::{CryptoProvider, CryptoRng};
use crate::error::{Rejection, Result, reject};
use crate::ids::Digest;
use crate::pki::Credential;
use crate::time::UnixTime;
use crate::wire::{ContentInfo, oid, strict};

/// Most certificates a SignedData may carry.
pub const MAX_CERTIFICATES: usize = 8;

/// A SignedData whose profile, digest and signature were checked. The signer's certificate
/// path is not yet validated: pass [`SignedObject::signer`] and
/// [`SignedObject::certificates`] to [`crate::pki::TrustAnchors::validate`].
#[derive(Clone, Debug)]
pub struct SignedObject {
    /// The encapsulated content (DER of one of our structures).
    pub content: Vec<u8>,
    /// The signer's certificate.
    pub signer: Certificate,
    /// The other certificates carried (candidate intermediates).
    pub certificates: Vec<Certificate>,
    /// The signed signing-time attribute.
    pub signing_time: UnixTime,
    /// SHA-256 of the whole ContentInfo DER.
    pub digest: Digest,
}

/// Signs `content` (of type `content_type`) as a SignedData ContentInfo.
pub fn sign(
    provider: &dyn CryptoProvider,
    signer: &Credential,
    content_type: ObjectIdentifier,
    content: &[u8],
    signing_time: UnixTime,
    rng: &mut dyn CryptoRng,
) -> Result<Vec<u8>> {
    let digest = provider.sha256(content);
    let null = Some(Any::null());
    let time = signing_time_value(signing_time)?;
    let signed_attrs = SetOfVec::try_from(vec![
        attribute(oid::ATTR_CONTENT_TYPE, Any::encode_from(&content_type).map_err(encode_failed)?)?,
        attribute(oid::ATTR_MESSAGE_DIGEST, Any::new(Tag::OctetString, digest.0.to_vec()).map_err(encode_failed)?)?,
        attribute(oid::ATTR_SIGNING_TIME, time)?,
    ])
    .map_err(encode_failed)?;
    // RFC 5652 section 5.4: the signature covers the DER of the attributes as a SET OF.
    let to_sign = signed_attrs.to_der().map_err(encode_failed)?;
    let signature = signer.key().sign_pkcs1_sha256(&to_sign, rng)?;
    let cert = signer.certificate();
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate().issuer().clone(),
            serial_number: cert.tbs_certificate().serial_number().clone(),
        }),
        digest_alg: algorithm(oid::SHA256, None),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: algorithm(oid::SHA256_WITH_RSA, null),
        signature: OctetString::new(signature).map_err(encode_failed)?,
        unsigned_attrs: None,
    };
    let mut certs = vec![CertificateChoices::Certificate(cert.clone())];
    certs.extend(signer.chain().iter().cloned().map(CertificateChoices::Certificate));
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms.insert(algorithm(oid::SHA256, None)).map_err(encode_failed)?;
    let signed_data = SignedData {
        version: CmsVersion::V3,
        digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: content_type,
            econtent: Some(Any::new(Tag::OctetString, content.to_vec()).map_err(encode_failed)?),
        },
        certificates: Some(CertificateSet::try_from(certs).map_err(encode_failed)?),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info]).map_err(encode_failed)?,
    };
    content_info(oid::ID_SIGNED_DATA, &signed_data)
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
/// `expected`: DER only; one signer; content attached; SHA-256; RSA PKCS#1 v1.5; signed
/// content-type, message-digest and signing-time; the signer's certificate carried.
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
    let ci: ContentInfo = strict::decode(der, max_len, "ContentInfo")?;
    if ci.content_type != oid::ID_SIGNED_DATA {
        return Err(reject(Rejection::UnexpectedContentType, format!("{} is not SignedData", ci.content_type)));
    }
    let inner = ci.content.to_der().map_err(encode_failed)?;
    let sd: SignedData = strict::decode(&inner, max_len, "SignedData")?;
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
    if econtent.tag() != Tag::OctetString {
        return Err(reject(Rejection::MalformedDer, "eContent is not an OCTET STRING"));
    }
    let content = econtent.value().to_vec();
    if sd.crls.is_some() {
        return Err(reject(Rejection::ProfileViolation, "CRLs are not carried in this profile"));
    }
    if !sd.digest_algorithms.iter().any(|a| a.oid == oid::SHA256) {
        return Err(reject(Rejection::UnsupportedAlgorithm, "digestAlgorithms lacks SHA-256"));
    }
    let mut signers = sd.signer_infos.0.iter();
    let (Some(si), None) = (signers.next(), signers.next()) else {
        return Err(reject(Rejection::ProfileViolation, "exactly one SignerInfo is required"));
    };
    if si.digest_alg.oid != oid::SHA256 || !params_absent_or_null(&si.digest_alg) {
        return Err(reject(Rejection::UnsupportedAlgorithm, format!("digest {}", si.digest_alg.oid)));
    }
    let sig_ok = matches!(si.signature_algorithm.oid, o if o == oid::SHA256_WITH_RSA || o == oid::RSA_ENCRYPTION);
    if !sig_ok || !params_absent_or_null(&si.signature_algorithm) {
        return Err(reject(Rejection::UnsupportedAlgorithm, format!("signature {}", si.signature_algorithm.oid)));
    }
    let attrs = si.signed_attrs.as_ref().ok_or_else(|| reject(Rejection::ProfileViolation, "no signed attributes"))?;
    let ct = single_attribute(attrs, &oid::ATTR_CONTENT_TYPE, "signed")?
        .ok_or_else(|| reject(Rejection::ProfileViolation, "no content-type attribute"))?;
    if ct.decode_as::<ObjectIdentifier>().ok() != Some(expected) {
        return Err(reject(Rejection::ContentTypeMismatch, "content-type attribute"));
    }
    let md = single_attribute(attrs, &oid::ATTR_MESSAGE_DIGEST, "signed")?
        .ok_or_else(|| reject(Rejection::ProfileViolation, "no message-digest attribute"))?;
    let md = md.decode_as::<OctetString>().map_err(|_| reject(Rejection::MalformedDer, "message-digest"))?;
    if md.as_bytes() != provider.sha256(&content).as_bytes() {
        return Err(reject(Rejection::DigestMismatch, "message-digest attribute"));
    }
    let st = single_attribute(attrs, &oid::ATTR_SIGNING_TIME, "signed")?
        .ok_or_else(|| reject(Rejection::ProfileViolation, "no signing-time attribute"))?;
    let st = Time::from_der(&st.to_der().map_err(encode_failed)?)
        .map_err(|_| reject(Rejection::MalformedDer, "signing-time"))?;
    let mut certs = Vec::new();
    for choice in sd.certificates.iter().flat_map(|s| s.0.iter()) {
        match choice {
            CertificateChoices::Certificate(c) => certs.push(c.clone()),
            CertificateChoices::Other(_) => return Err(reject(Rejection::ProfileViolation, "non-X.509 certificate")),
        }
    }
    if certs.len() > MAX_CERTIFICATES {
        return Err(reject(Rejection::ProfileViolation, format!("{} certificates > {MAX_CERTIFICATES}", certs.len())));
    }
    let position = certs.iter().position(|c| identifies(&si.sid, c)).ok_or_else(|| {
        reject(Rejection::SignerCertificateMissing, "no carried certificate matches the signer identifier")
    })?;
    let signer = certs.remove(position);
    let expected_version = match si.sid {
        SignerIdentifier::IssuerAndSerialNumber(_) => CmsVersion::V1,
        SignerIdentifier::SubjectKeyIdentifier(_) => CmsVersion::V3,
    };
    if si.version != expected_version {
        return Err(reject(Rejection::UnsupportedVersion, "SignerInfo version does not match its sid"));
    }
    if verify {
        let spki = signer.tbs_certificate().subject_public_key_info().to_der().map_err(encode_failed)?;
        let signed_bytes = attrs.to_der().map_err(encode_failed)?;
        provider.verify_pkcs1_sha256(&spki, &signed_bytes, si.signature.as_bytes())?;
    }
    Ok(SignedObject {
        content,
        signer,
        certificates: certs,
        signing_time: UnixTime::from_x509(&st),
        digest: provider.sha256(der),
    })
}

fn identifies(sid: &SignerIdentifier, cert: &Certificate) -> bool {
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
