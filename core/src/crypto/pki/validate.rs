//! Path validation and the identity rules (see the module documentation of [`super`]).

use der::asn1::ObjectIdentifier;
use der::{Encode, oid::AssociatedOid};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, NameConstraints, SubjectAltName,
    SubjectKeyIdentifier,
};

use super::constraints::Constraints;
use super::fields::{addresses, signature_holds, uris};
use super::revocation::Revocation;
use super::{TrustAnchors, provider_cert_id};
use crate::address::EmailAddress;
use crate::asn1::oid;
use crate::crypto::CryptoProvider;
use crate::error::{Rejection, Result, reject};
use crate::ids::CertId;
use crate::time::UnixTime;

/// Bounds on a certification path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathLimits {
    /// Most certificates from the end entity to the anchor, both included.
    pub max_path_len: usize,
}

impl Default for PathLimits {
    fn default() -> Self {
        PathLimits { max_path_len: 4 }
    }
}

/// An end-entity certificate with a valid path to an anchor at `now`.
#[derive(Debug, Clone)]
pub struct ValidatedCertificate {
    /// The certificate.
    pub certificate: Certificate,
    /// SHA-256 of its DER.
    pub id: CertId,
    /// Its rfc822Name addresses (at least one).
    pub addresses: Vec<EmailAddress>,
    /// Its uniformResourceIdentifier subjectAltNames.
    pub uris: Vec<String>,
    /// Whether its extended key usage holds id-ekg-kp-gatekeeper.
    pub is_gatekeeper: bool,
    /// The anchor the path ends at.
    pub anchor: CertId,
    /// Its SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// The result holds from this time (the latest notBefore on the path, anchor included,
    /// and thisUpdate of the CRLs consulted)...
    pub valid_from: UnixTime,
    /// ... to this time (the earliest notAfter, and nextUpdate of the CRLs consulted).
    pub valid_until: UnixTime,
}

const PROCESSED: &[ObjectIdentifier] = &[
    BasicConstraints::OID,
    NameConstraints::OID,
    KeyUsage::OID,
    ExtendedKeyUsage::OID,
    SubjectAltName::OID,
    SubjectKeyIdentifier::OID,
    AuthorityKeyIdentifier::OID,
];

impl TrustAnchors {
    /// Validates `end_entity` with `candidates` as possible intermediates, at `now`, against
    /// the anchors' own CRLs ([`TrustAnchors::with_revocation`]).
    ///
    /// Steps, in order (each a rejection code): V5 a path by name and signature to an anchor
    /// (`untrusted_certificate`, `chain_too_long`); V6 every certificate of it valid at `now`
    /// (`certificate_not_yet_valid`, `certificate_expired`), then not revoked by a configured
    /// CRL that is current (`certificate_revoked`, `crl_stale`); V7 issuers are CAs within
    /// their path length, the end entity's key usage and extended key usage allow email
    /// signing, no unprocessed critical extension (`key_usage_not_allowed`,
    /// `extended_key_usage_not_allowed`, `unknown_critical_extension`), every name within the
    /// nameConstraints above it, the anchor's included (`name_not_permitted`); V8 the end
    /// entity names at least one email address (`certificate_has_no_email`).
    pub fn validate(
        &self,
        provider: &dyn CryptoProvider,
        end_entity: &Certificate,
        candidates: &[Certificate],
        now: UnixTime,
    ) -> Result<ValidatedCertificate> {
        self.validate_with(provider, end_entity, candidates, &self.revocation, now)
    }

    /// As [`TrustAnchors::validate`], with the CRLs of `revocation` instead of the anchors'
    /// own (a gatekeeper reloads its CRLs while its anchors stay).
    pub fn validate_with(
        &self,
        provider: &dyn CryptoProvider,
        end_entity: &Certificate,
        candidates: &[Certificate],
        revocation: &Revocation,
        now: UnixTime,
    ) -> Result<ValidatedCertificate> {
        // V5: build the path.
        let mut path: Vec<&Certificate> = vec![end_entity];
        let anchor = loop {
            if path.len() >= self.limits.max_path_len
                && !crate::planted::is(crate::planted::PlantedBug::ChainLengthUnbounded)
            {
                return Err(reject(
                    Rejection::ChainTooLong,
                    format!("more than {} certificates", self.limits.max_path_len),
                ));
            }
            let current = path.last().copied().unwrap_or(end_entity);
            let issuer = current.tbs_certificate().issuer();
            if let Some(a) = self.anchors.iter().find(|a| {
                a.certificate.tbs_certificate().subject() == issuer && signed_by(provider, current, &a.spki_der)
            }) {
                break a;
            }
            let next = candidates.iter().find(|c| {
                c.tbs_certificate().subject() == issuer
                    && !path.contains(c)
                    && spki(c).is_some_and(|s| signed_by(provider, current, &s))
            });
            match next {
                Some(c) => path.push(c),
                None => return Err(reject(Rejection::UntrustedCertificate, "no path to a trust anchor")),
            }
        };
        // V6.1: validity at now, anchor included; not yet valid and expired told apart.
        let (mut valid_from, mut valid_until) = (UnixTime(0), UnixTime(u64::MAX));
        for cert in path.iter().copied().chain(core::iter::once(&anchor.certificate)) {
            let v = cert.tbs_certificate().validity();
            let (from, to) = (UnixTime::from_x509(&v.not_before), UnixTime::from_x509(&v.not_after));
            let subject = || cert.tbs_certificate().subject().to_string();
            if now < from && !crate::planted::is(crate::planted::PlantedBug::NotYetValidAccepted) {
                return Err(reject(
                    Rejection::CertificateNotYetValid,
                    format!("{} is valid from {from} (notBefore), now is {now}", subject()),
                ));
            }
            if (now > to || (now == to && crate::planted::is(crate::planted::PlantedBug::CertificateExpiryExclusive)))
                && !crate::planted::is(crate::planted::PlantedBug::CertificateExpiryUnchecked)
            {
                return Err(reject(
                    Rejection::CertificateExpired,
                    format!("{} was valid to {to} (notAfter), now is {now}", subject()),
                ));
            }
            valid_from = valid_from.max(from);
            valid_until = valid_until.min(to);
        }
        // V6.2: revocation, end entity first (the anchor is trusted as configured); a result
        // holds only while every CRL consulted is current.
        for (i, cert) in path.iter().enumerate() {
            let issuer = path.get(i + 1).copied().unwrap_or(&anchor.certificate);
            if crate::planted::is(crate::planted::PlantedBug::RevocationUnchecked) {
                continue;
            }
            if let Some((this_update, next_update)) = revocation.check(cert, issuer, now)? {
                valid_from = valid_from.max(this_update);
                valid_until = valid_until.min(next_update);
            }
        }
        // V7: issuers are CAs within their path length; nothing critical left unprocessed.
        for (depth, cert) in path.iter().enumerate() {
            if !crate::planted::is(crate::planted::PlantedBug::CriticalExtensionsIgnored) {
                check_critical(cert)?;
            }
            if depth == 0 {
                continue;
            }
            let bc = extension::<BasicConstraints>(cert)?;
            let Some(bc) = bc.filter(|b| b.ca || crate::planted::is(crate::planted::PlantedBug::IssuerNotCaAccepted))
            else {
                return Err(reject(Rejection::KeyUsageNotAllowed, "issuer is not a CA"));
            };
            if let Some(len) = bc.path_len_constraint
                && depth - 1 > usize::from(len)
            {
                return Err(reject(Rejection::ChainTooLong, "pathLenConstraint exceeded"));
            }
            if extension::<KeyUsage>(cert)?.is_some_and(|ku| !ku.key_cert_sign()) {
                return Err(reject(Rejection::KeyUsageNotAllowed, "issuer lacks keyCertSign"));
            }
        }
        if extension::<KeyUsage>(end_entity)?.is_some_and(|ku| !ku.digital_signature()) {
            return Err(reject(Rejection::KeyUsageNotAllowed, "end entity lacks digitalSignature"));
        }
        let eku = extension::<ExtendedKeyUsage>(end_entity)?;
        if eku.as_ref().is_some_and(|e| !e.0.contains(&oid::KP_EMAIL_PROTECTION))
            && !crate::planted::is(crate::planted::PlantedBug::EmailEkuUnchecked)
        {
            return Err(reject(Rejection::ExtendedKeyUsageNotAllowed, "no emailProtection"));
        }
        // V7.4: name constraints, each issuer's (then the anchor's) over every certificate
        // below it, nearest issuer first.
        for depth in 1..path.len() {
            if let Some(nc) = Constraints::of(path.get(depth).copied().unwrap_or(end_entity))? {
                for below in path.iter().take(depth) {
                    nc.check(below)?;
                }
            }
        }
        if let Some(nc) = &anchor.constraints {
            for below in &path {
                nc.check(below)?;
            }
        }
        // V8: the identity.
        let addresses = addresses(end_entity);
        if addresses.is_empty() {
            return Err(reject(Rejection::CertificateHasNoEmail, "no rfc822Name subjectAltName"));
        }
        let spki_der = spki(end_entity).ok_or_else(|| reject(Rejection::MalformedDer, "public key"))?;
        let der = end_entity.to_der().map_err(|_| reject(Rejection::MalformedDer, "certificate"))?;
        Ok(ValidatedCertificate {
            certificate: end_entity.clone(),
            id: provider_cert_id(provider, &der),
            addresses,
            uris: uris(end_entity),
            is_gatekeeper: eku.is_some_and(|e| e.0.contains(&oid::KP_GATEKEEPER)),
            anchor: anchor.id,
            spki_der,
            valid_from,
            valid_until,
        })
    }
}

fn spki(cert: &Certificate) -> Option<Vec<u8>> {
    cert.tbs_certificate().subject_public_key_info().to_der().ok()
}

fn signed_by(provider: &dyn CryptoProvider, cert: &Certificate, issuer_spki: &[u8]) -> bool {
    let (Ok(tbs), Some(sig)) = (cert.tbs_certificate().to_der(), cert.signature().as_bytes()) else {
        return false;
    };
    signature_holds(provider, cert.signature_algorithm(), cert.tbs_certificate().signature(), &tbs, sig, issuer_spki)
}

fn extension<'a, T: der::Decode<'a> + AssociatedOid>(cert: &'a Certificate) -> Result<Option<T>> {
    cert.tbs_certificate()
        .get_extension::<T>()
        .map(|o| o.map(|(_, v)| v))
        .map_err(|e| reject(Rejection::MalformedDer, format!("extension {}: {e}", T::OID)))
}

fn check_critical(cert: &Certificate) -> Result<()> {
    for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
        if ext.critical && !PROCESSED.contains(&ext.extn_id) {
            return Err(reject(Rejection::UnknownCriticalExtension, ext.extn_id.to_string()));
        }
    }
    Ok(())
}
