//! Certificates: credentials, trust anchors, path validation and the identity rules.
//!
//! Identity rules (docs/protocol.md, "Identity rules"):
//! - an end entity's addresses are its rfc822Name subjectAltNames (RFC 5280 section
//!   4.2.1.6), compared by [`EmailAddress`]'s rule;
//! - extended key usage absent, or containing id-kp-emailProtection;
//! - key usage absent, or containing digitalSignature;
//! - every certificate of the path valid at `now`;
//! - issuers: basicConstraints cA, keyCertSign when key usage is present, pathLenConstraint;
//! - at most [`PathLimits::max_path_len`] certificates from end entity to anchor (inclusive);
//! - no critical extension outside the set this module processes;
//! - every name within the nameConstraints above it, an anchor's included (`constraints`);
//! - not revoked by a configured CRL, which must be current ([`Revocation`]);
//! - RSA keys of 2048 to 8192 bits; certificate signatures sha256WithRSAEncryption.

mod constraints;
mod fields;
mod revocation;
mod validate;

use std::sync::Arc;

use der::{Decode, Encode};
use x509_cert::Certificate;

pub use revocation::{MAX_CRL_LEN, Revocation, RevocationList, crl_der};
pub use validate::{PathLimits, ValidatedCertificate};

use crate::address::EmailAddress;
use crate::crypto::{CryptoProvider, PrivateKey};
use crate::error::{Rejection, Result, reject};
use crate::ids::CertId;

/// A certificate, its issuing chain (without the anchor) and its private key: what a party
/// signs and decrypts with.
#[derive(Debug)]
pub struct Credential {
    certificate: Certificate,
    certificate_der: Vec<u8>,
    chain: Vec<Certificate>,
    chain_der: Vec<Vec<u8>>,
    key: Box<dyn PrivateKey>,
    id: CertId,
}

impl Credential {
    /// From DER certificate, DER intermediates (nearest first) and a PKCS#8 DER key.
    /// Refuses a key that does not match the certificate.
    pub fn from_der(
        provider: &dyn CryptoProvider,
        certificate_der: &[u8],
        chain_der: &[Vec<u8>],
        pkcs8_der: &[u8],
    ) -> Result<Credential> {
        Credential::with_key(provider, certificate_der, chain_der, provider.load_private_key(pkcs8_der)?)
    }

    /// As [`Credential::from_der`] with a key held elsewhere (a PKCS#11 token): it must
    /// certify `key`'s public key.
    pub fn with_key(
        provider: &dyn CryptoProvider,
        certificate_der: &[u8],
        chain_der: &[Vec<u8>],
        key: Box<dyn PrivateKey>,
    ) -> Result<Credential> {
        let certificate = parse_certificate(certificate_der)?;
        let chain = chain_der.iter().map(|c| parse_certificate(c)).collect::<Result<Vec<_>>>()?;
        let spki = certificate.tbs_certificate().subject_public_key_info().to_der().map_err(config)?;
        if spki != key.public_key_spki() {
            return Err(reject(Rejection::InvalidConfiguration, "private key does not match the certificate"));
        }
        Ok(Credential {
            id: provider_cert_id(provider, certificate_der),
            certificate,
            certificate_der: certificate_der.to_vec(),
            chain,
            chain_der: chain_der.to_vec(),
            key,
        })
    }

    /// From PEM: a certificate, optional intermediates (concatenated PEM) and a PKCS#8 key.
    pub fn from_pem(
        provider: &dyn CryptoProvider,
        certificate_pem: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<Credential> {
        let cert = pem_certificates(certificate_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| reject(Rejection::InvalidConfiguration, "no certificate"))?;
        let chain = pem_certificates(chain_pem)?;
        let (label, key) = der::pem::decode_vec(key_pem.as_bytes())
            .map_err(|e| reject(Rejection::InvalidConfiguration, format!("key PEM: {e}")))?;
        if label != "PRIVATE KEY" {
            return Err(reject(Rejection::InvalidConfiguration, format!("expected PRIVATE KEY, got {label}")));
        }
        let key = zeroize::Zeroizing::new(key);
        Credential::from_der(provider, &cert, &chain, &key)
    }

    /// The certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The certificate's DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// Intermediates, nearest first.
    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }

    /// Intermediates as DER, nearest first.
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain_der
    }

    /// The private key.
    pub fn key(&self) -> &dyn PrivateKey {
        self.key.as_ref()
    }

    /// SHA-256 of the certificate's DER.
    pub fn id(&self) -> CertId {
        self.id
    }

    /// The certificate's rfc822Name addresses.
    pub fn addresses(&self) -> Vec<EmailAddress> {
        fields::addresses(&self.certificate)
    }

    /// The certificate's uniformResourceIdentifier names.
    pub fn uris(&self) -> Vec<String> {
        fields::uris(&self.certificate)
    }

    /// Whether the certificate's extended key usage lists `purpose`.
    pub fn has_extended_key_usage(&self, purpose: &der::asn1::ObjectIdentifier) -> bool {
        fields::has_extended_key_usage(&self.certificate, purpose)
    }
}

/// The configured trust anchors (self-signed roots), the rules to reach them, and the CRLs
/// paths are checked against.
///
/// An anchor's nameConstraints extension, when it has one, binds every path that ends at it
/// (the operator relies on it: RFC 5280 leaves applying an anchor's constraints to the
/// relying party, and this profile does). An anchor whose critical nameConstraints hold a
/// name form that is not checked is refused when loaded (`invalid_configuration`).
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    anchors: Vec<Anchor>,
    limits: PathLimits,
    revocation: Arc<Revocation>,
}

#[derive(Debug, Clone)]
struct Anchor {
    certificate: Certificate,
    spki_der: Vec<u8>,
    id: CertId,
    constraints: Option<constraints::Constraints>,
}

impl TrustAnchors {
    /// Anchors from DER certificates.
    pub fn from_der(provider: &dyn CryptoProvider, anchors: &[Vec<u8>], limits: PathLimits) -> Result<TrustAnchors> {
        let anchors = anchors
            .iter()
            .map(|der| {
                let certificate = parse_certificate(der)?;
                let spki_der = certificate.tbs_certificate().subject_public_key_info().to_der().map_err(config)?;
                let subject = certificate.tbs_certificate().subject().to_string();
                let constraints = constraints::Constraints::of(&certificate).map_err(|e| {
                    reject(Rejection::InvalidConfiguration, format!("anchor {subject}: {}", e.detail()))
                })?;
                if let Some(form) = constraints.as_ref().and_then(constraints::Constraints::unsupported) {
                    return Err(reject(
                        Rejection::InvalidConfiguration,
                        format!(
                            "anchor {subject}: its critical nameConstraints constrain {form}, which is not checked"
                        ),
                    ));
                }
                Ok(Anchor { certificate, spki_der, id: provider_cert_id(provider, der), constraints })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TrustAnchors { anchors, limits, revocation: Arc::default() })
    }

    /// The same anchors, checking paths against `revocation`'s CRLs.
    pub fn with_revocation(mut self, revocation: Revocation) -> TrustAnchors {
        self.revocation = Arc::new(revocation);
        self
    }

    /// The CRLs paths are checked against.
    pub fn revocation(&self) -> &Revocation {
        &self.revocation
    }

    /// The anchors' certificates as DER, in order.
    pub fn certificates_der(&self) -> Vec<Vec<u8>> {
        self.anchors.iter().filter_map(|a| a.certificate.to_der().ok()).collect()
    }

    /// Anchors from concatenated PEM.
    pub fn from_pem(provider: &dyn CryptoProvider, pem: &str, limits: PathLimits) -> Result<TrustAnchors> {
        TrustAnchors::from_der(provider, &pem_certificates(pem)?, limits)
    }

    /// The ids of the anchors, in order.
    pub fn ids(&self) -> Vec<CertId> {
        self.anchors.iter().map(|a| a.id).collect()
    }

    /// The path limits.
    pub fn limits(&self) -> &PathLimits {
        &self.limits
    }
}

fn config(e: der::Error) -> crate::error::Error {
    reject(Rejection::InvalidConfiguration, format!("certificate or key: {e}"))
}

fn parse_certificate(der: &[u8]) -> Result<Certificate> {
    Certificate::from_der(der).map_err(config)
}

/// The DER of every CERTIFICATE block of `pem`, in order.
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>> {
    let certs = Certificate::load_pem_chain(pem.as_bytes()).map_err(config)?;
    certs.iter().map(|c| c.to_der().map_err(config)).collect()
}

/// A certificate's rfc822Name addresses (subjectAltName), without validating it (for
/// display: `ekg inspect`).
pub fn certificate_addresses(cert: &Certificate) -> Vec<EmailAddress> {
    fields::addresses(cert)
}

/// A certificate's uniformResourceIdentifier names (subjectAltName), without validating it.
pub fn certificate_uris(cert: &Certificate) -> Vec<String> {
    fields::uris(cert)
}

/// The validity (notBefore, notAfter) of a DER certificate, without validating it
/// (`invalid_configuration` if it does not decode).
pub fn certificate_validity(der: &[u8]) -> Result<(crate::time::UnixTime, crate::time::UnixTime)> {
    let cert = parse_certificate(der)?;
    let v = cert.tbs_certificate().validity();
    Ok((crate::time::UnixTime::from_x509(&v.not_before), crate::time::UnixTime::from_x509(&v.not_after)))
}

/// Whether a certificate's extended key usage lists `purpose`, without validating it.
pub fn certificate_has_extended_key_usage(cert: &Certificate, purpose: &der::asn1::ObjectIdentifier) -> bool {
    fields::has_extended_key_usage(cert, purpose)
}

/// SHA-256 of a certificate's DER.
pub fn provider_cert_id(provider: &dyn CryptoProvider, certificate_der: &[u8]) -> CertId {
    CertId(provider.sha256(certificate_der).0)
}
