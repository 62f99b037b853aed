//! Revocation from CRLs the operator configures (RFC 5280 section 5), step V6.2 of
//! `docs/protocol.md` §3.0.4.
//!
//! Each CRL is bound, when it is loaded, to the certificate of its issuer (an anchor or an
//! intermediate CA): the issuer's subject must equal the CRL's issuer, the issuer must be a
//! CA allowed to sign CRLs, and the CRL's signature (sha256WithRSAEncryption) must verify
//! with the issuer's key. A CRL applies to a certificate of a path whose issuer name is the
//! CRL's issuer **and** whose issuer on the path has that same key. Only complete CRLs are
//! accepted: version 2 with a nextUpdate, no issuingDistributionPoint, no delta-CRL
//! indicator, no other critical extension and no critical entry extension (an indirect CRL's
//! certificateIssuer), so that a CRL is never read as covering more than it does.
//!
//! For an issuer with a CRL, a certificate is refused when its serial number is listed
//! (`certificate_revoked`), then when the CRL is not current at `now` (`now` before its
//! thisUpdate or after its nextUpdate: `crl_stale`, fail closed). A certificate whose issuer
//! has no CRL configured is not checked. Of several CRLs for one issuer, the one with the
//! latest thisUpdate (then nextUpdate) is kept.

use std::collections::BTreeSet;

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::name::Name;

use crate::crypto::CryptoProvider;
use crate::error::{Rejection, Result, reject};
use crate::time::UnixTime;

/// Largest CRL accepted, in bytes of DER (16 MiB).
pub const MAX_CRL_LEN: usize = 16 * 1024 * 1024;

/// id-ce-issuingDistributionPoint: a CRL limited to part of the issuer's certificates.
const ISSUING_DISTRIBUTION_POINT: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.28");
/// id-ce-deltaCRLIndicator: a delta CRL, not a complete one.
const DELTA_CRL_INDICATOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.27");

/// The CRLs a party checks paths against (none by default).
#[derive(Clone, Debug, Default)]
pub struct Revocation {
    lists: Vec<RevocationList>,
}

/// One loaded CRL, bound to its issuer's key.
#[derive(Clone, Debug)]
pub struct RevocationList {
    issuer: Name,
    issuer_spki: Vec<u8>,
    this_update: UnixTime,
    next_update: UnixTime,
    revoked: BTreeSet<Vec<u8>>,
}

impl RevocationList {
    /// The issuer's name (RFC 4514).
    pub fn issuer(&self) -> String {
        self.issuer.to_string()
    }

    /// When it was issued.
    pub fn this_update(&self) -> UnixTime {
        self.this_update
    }

    /// When it stops being current.
    pub fn next_update(&self) -> UnixTime {
        self.next_update
    }

    /// How many certificates it lists.
    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }
}

impl Revocation {
    /// No CRL: nothing is checked.
    pub fn new() -> Revocation {
        Revocation::default()
    }

    /// Adds the CRL `crl_der` signed by the CA whose certificate is `issuer_der`
    /// (`invalid_configuration` naming the rule it breaks). A CRL for an issuer already
    /// present replaces it if its thisUpdate is later (or equal, with a later nextUpdate),
    /// and is dropped otherwise.
    pub fn add(&mut self, provider: &dyn CryptoProvider, issuer_der: &[u8], crl_der: &[u8]) -> Result<&RevocationList> {
        let list = load(provider, issuer_der, crl_der)?;
        let same = |l: &RevocationList| l.issuer == list.issuer && l.issuer_spki == list.issuer_spki;
        let index = match self.lists.iter().position(same) {
            Some(i) => {
                if let Some(old) = self.lists.get_mut(i)
                    && (list.this_update, list.next_update) > (old.this_update, old.next_update)
                {
                    *old = list;
                }
                i
            }
            None => {
                self.lists.push(list);
                self.lists.len() - 1
            }
        };
        self.lists.get(index).ok_or_else(|| bad("no list"))
    }

    /// The CRLs, one per issuer.
    pub fn lists(&self) -> &[RevocationList] {
        &self.lists
    }

    /// Whether no CRL is configured.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// V6.2 for `cert`, whose issuer on the path is `issuer`: `Some((thisUpdate,
    /// nextUpdate))` of the CRL that cleared it, `None` if its issuer has no CRL.
    pub(crate) fn check(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        now: UnixTime,
    ) -> Result<Option<(UnixTime, UnixTime)>> {
        let tbs = cert.tbs_certificate();
        let Ok(issuer_spki) = issuer.tbs_certificate().subject_public_key_info().to_der() else {
            return Ok(None);
        };
        let Some(list) = self.lists.iter().find(|l| &l.issuer == tbs.issuer() && l.issuer_spki == issuer_spki) else {
            return Ok(None);
        };
        if list.revoked.contains(tbs.serial_number().as_bytes()) {
            return Err(reject(
                Rejection::CertificateRevoked,
                format!("serial {} is on the CRL of {}", tbs.serial_number(), list.issuer),
            ));
        }
        if now < list.this_update || now > list.next_update {
            return Err(reject(
                Rejection::CrlStale,
                format!(
                    "the CRL of {} is current from {} to {}, now is {now}",
                    list.issuer, list.this_update, list.next_update
                ),
            ));
        }
        Ok(Some((list.this_update, list.next_update)))
    }
}

/// A CRL file's DER: PEM (`X509 CRL`) or DER as given (`invalid_configuration` otherwise).
pub fn crl_der(bytes: &[u8]) -> Result<Vec<u8>> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let (label, der) = der::pem::decode_vec(bytes).map_err(|e| bad(&format!("neither DER nor PEM ({e})")))?;
    if label != "X509 CRL" {
        return Err(bad(&format!("PEM label {label}, expected X509 CRL")));
    }
    Ok(der)
}

fn bad(rule: &str) -> crate::error::Error {
    reject(Rejection::InvalidConfiguration, format!("CRL: {rule}"))
}

fn load(provider: &dyn CryptoProvider, issuer_der: &[u8], crl_der: &[u8]) -> Result<RevocationList> {
    if crl_der.len() > MAX_CRL_LEN {
        return Err(bad("larger than 16 MiB"));
    }
    let crl = <CertificateList>::from_der(crl_der).map_err(|e| bad(&format!("does not decode: {e}")))?;
    let issuer = Certificate::from_der(issuer_der).map_err(|e| bad(&format!("issuer certificate: {e}")))?;
    let tbs = &crl.tbs_cert_list;
    if tbs.version != x509_cert::Version::V2 {
        return Err(bad("not a version 2 CRL"));
    }
    if &tbs.issuer != issuer.tbs_certificate().subject() {
        return Err(bad(&format!("issued by {}, not by {}", tbs.issuer, issuer.tbs_certificate().subject())));
    }
    let is_ca = matches!(issuer.tbs_certificate().get_extension::<BasicConstraints>(), Ok(Some((_, b))) if b.ca);
    let crl_sign = match issuer.tbs_certificate().get_extension::<KeyUsage>() {
        Ok(Some((_, ku))) => ku.crl_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    if !is_ca || !crl_sign {
        return Err(bad("its issuer is not a CA allowed to sign CRLs (cA and, with key usage, cRLSign)"));
    }
    let issuer_spki =
        issuer.tbs_certificate().subject_public_key_info().to_der().map_err(|e| bad(&format!("issuer key: {e}")))?;
    let tbs_der = tbs.to_der().map_err(|e| bad(&format!("{e}")))?;
    let signature = crl.signature.as_bytes().unwrap_or_default();
    if !super::fields::signature_holds(
        provider,
        &crl.signature_algorithm,
        &tbs.signature,
        &tbs_der,
        signature,
        &issuer_spki,
    ) {
        return Err(bad("its signature does not verify with the issuer's key (sha256WithRSAEncryption)"));
    }
    let this_update = UnixTime::from_x509(&tbs.this_update);
    let next_update = tbs.next_update.as_ref().map(UnixTime::from_x509).ok_or_else(|| bad("no nextUpdate"))?;
    if next_update <= this_update {
        return Err(bad("nextUpdate is not after thisUpdate"));
    }
    for e in tbs.crl_extensions.iter().flatten() {
        if e.extn_id == ISSUING_DISTRIBUTION_POINT || e.extn_id == DELTA_CRL_INDICATOR {
            return Err(bad(&format!("extension {} (not a complete CRL of its issuer)", e.extn_id)));
        }
        if e.critical {
            return Err(bad(&format!("unknown critical extension {}", e.extn_id)));
        }
    }
    let mut revoked = BTreeSet::new();
    for entry in tbs.revoked_certificates.iter().flatten() {
        if let Some(e) = entry.crl_entry_extensions.iter().flatten().find(|e| e.critical) {
            return Err(bad(&format!("critical entry extension {} (an indirect CRL?)", e.extn_id)));
        }
        revoked.insert(entry.serial_number.as_bytes().to_vec());
    }
    Ok(RevocationList { issuer: tbs.issuer.clone(), issuer_spki, this_update, next_update, revoked })
}
