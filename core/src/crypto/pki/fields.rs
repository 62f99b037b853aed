//! What the PKI checks read off a certificate or a CRL: its names, its extended key usages,
//! whether its signature holds. A leaf: path validation, name constraints and revocation all
//! read through it.

use der::asn1::ObjectIdentifier;
use x509_cert::AlgorithmIdentifier as AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};

use crate::address::EmailAddress;
use crate::asn1::oid;
use crate::crypto::CryptoProvider;

/// Whether a certificate's or CRL's signature holds: the outer algorithm is
/// sha256WithRSAEncryption with parameters absent or NULL and equal to the signed one, and
/// RSASSA-PKCS1-v1_5-SHA256 over the signed part verifies with `issuer_spki`.
pub(super) fn signature_holds(
    provider: &dyn CryptoProvider,
    outer: &AlgorithmIdentifierOwned,
    signed: &AlgorithmIdentifierOwned,
    tbs_der: &[u8],
    signature: &[u8],
    issuer_spki: &[u8],
) -> bool {
    // RFC 5280 4.1.1.2: the unsigned signatureAlgorithm must equal the signed one in the TBS
    // (found by the mutation proptest: a flipped byte in its NULL parameters went unnoticed).
    if outer.oid != oid::SHA256_WITH_RSA || outer != signed {
        return false;
    }
    if outer.parameters.as_ref().is_some_and(|p| der::Tagged::tag(p) != der::Tag::Null || !p.value().is_empty()) {
        return false;
    }
    provider.verify_pkcs1_sha256(issuer_spki, tbs_der, signature).is_ok()
}

pub(super) fn san(cert: &Certificate) -> Vec<GeneralName> {
    match cert.tbs_certificate().get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => san.0,
        _ => Vec::new(),
    }
}

/// The uniformResourceIdentifier subjectAltNames of `cert`.
pub(crate) fn uris(cert: &Certificate) -> Vec<String> {
    san(cert)
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
            _ => None,
        })
        .collect()
}

/// Whether `cert`'s extended key usage lists `purpose`.
pub(crate) fn has_extended_key_usage(cert: &Certificate, purpose: &ObjectIdentifier) -> bool {
    matches!(cert.tbs_certificate().get_extension::<ExtendedKeyUsage>(), Ok(Some((_, e))) if e.0.contains(purpose))
}

/// The rfc822Name subjectAltNames of `cert` that are valid addresses.
pub(crate) fn addresses(cert: &Certificate) -> Vec<EmailAddress> {
    san(cert)
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::Rfc822Name(s) => EmailAddress::parse(s.as_ref()).ok(),
            _ => None,
        })
        .collect()
}
