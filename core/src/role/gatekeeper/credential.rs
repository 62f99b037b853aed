//! The gatekeeper's own credential: the certificate it signs tickets and releases with, and
//! the certificates it signed under before (retired), checked against the rules clients
//! apply to it (C1, C2) so that a gatekeeper never issues a ticket every client refuses.
//!
//! Three checks, each failure naming the field and the rule (`invalid_configuration`):
//! - [`check_profile`], without a clock (at [`super::Gatekeeper::new`]): the certificate and
//!   chain fit a ticket (32 KiB), the certificate carries `id-ekg-kp-gatekeeper` and
//!   emailProtection, names the configured URI and an rfc822Name; each retired certificate
//!   names the same URI, carries `id-ekg-kp-gatekeeper`, certifies the key its entry
//!   declares (the current key for a renewal, another key for a rotation), and is neither
//!   the current certificate nor listed twice.
//! - [`check_validity`], at `now`, before each issuance: the certificate and the
//!   intermediates configured with it are valid (a not-yet-valid certificate told apart from
//!   an expired one).
//! - [`check_credential`], at `now` (the reference server runs it at start, in `ekg serve
//!   --check-config` and after reloading its CRLs): the profile, the validity, then the
//!   certificate's path to a configured anchor through those intermediates (V5 to V8 of
//!   `docs/protocol.md` §3.0.4 with the gatekeeper's own anchors and CRLs). It is not run
//!   before each issuance: the anchors do not change while the gatekeeper runs, and the
//!   conformance vectors let a gatekeeper trust other anchors than its own CA's.
//!
//! [`CredentialStatus::expiry_warning`] says when to renew: a ticket is checked by clients
//! against their clock (C1), so a ticket that outlives the certificate that signed it cannot
//! be read after the certificate expires.

use der::Encode;
use x509_cert::Certificate;

use super::config::{GatekeeperConfig, RetiredKey};
use crate::asn1::oid;
use crate::crypto::CryptoProvider;
use crate::crypto::pki::{Credential, Revocation, certificate_uris};
use crate::error::{Rejection, Result, reject};
use crate::ids::CertId;
use crate::time::UnixTime;

/// What [`check_credential`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialStatus {
    /// The certificate's notBefore.
    pub not_before: UnixTime,
    /// The certificate's notAfter.
    pub not_after: UnixTime,
    /// The anchor its path ends at.
    pub anchor: CertId,
    /// The check holds from this time (the path's latest notBefore, CRLs' thisUpdate)...
    pub holds_from: UnixTime,
    /// ... to this time (the path's earliest notAfter, CRLs' nextUpdate).
    pub holds_until: UnixTime,
}

impl CredentialStatus {
    /// Seconds from `now` to the certificate's notAfter (negative once expired).
    pub fn expires_in_secs(&self, now: UnixTime) -> i64 {
        let (a, b) = (i128::from(self.not_after.secs()), i128::from(now.secs()));
        i64::try_from(a - b).unwrap_or(if a > b { i64::MAX } else { i64::MIN })
    }

    /// The last time a ticket can be issued that expires before the certificate does:
    /// notAfter minus the ticket lifetime. Renew before it.
    pub fn renew_by(&self, ticket_lifetime_secs: u64) -> UnixTime {
        UnixTime(self.not_after.secs().saturating_sub(ticket_lifetime_secs))
    }

    /// A warning to log when renewal is due within `margin_secs` (or overdue: tickets issued
    /// now outlive the certificate); `None` otherwise.
    pub fn expiry_warning(&self, now: UnixTime, ticket_lifetime_secs: u64, margin_secs: u64) -> Option<String> {
        let renew_by = self.renew_by(ticket_lifetime_secs);
        if now > renew_by {
            Some(format!(
                "the gatekeeper certificate expires at {}, before tickets issued now (lifetime {ticket_lifetime_secs} s) \
                 expire: clients refuse them once it has expired; renew it now (docs/server.md, Certificates)",
                self.not_after
            ))
        } else if now.plus_secs(margin_secs) > renew_by {
            Some(format!(
                "the gatekeeper certificate expires at {}: renew it before {renew_by} (notAfter minus the ticket \
                 lifetime) so that no ticket outlives it (docs/server.md, Certificates)",
                self.not_after
            ))
        } else {
            None
        }
    }
}

/// The credential's rules that need no clock (see the module documentation).
pub fn check_profile(config: &GatekeeperConfig, credential: &Credential) -> Result<()> {
    let bad = |field: &str, rule: String| Err(reject(Rejection::InvalidConfiguration, format!("{field}: {rule}")));
    // Its certificates ride in every ticket and release (docs/protocol.md §4.4).
    let chain_len =
        credential.chain_der().iter().map(Vec::len).fold(credential.certificate_der().len(), usize::saturating_add);
    if chain_len > crate::asn1::MAX_GATEKEEPER_CERTIFICATES_LEN {
        return bad(
            "certificate",
            format!("the certificate and its chain must total at most 32 KiB ({chain_len} bytes)"),
        );
    }
    if !credential.has_extended_key_usage(&oid::KP_GATEKEEPER) {
        return bad(
            "certificate",
            format!("must carry extended key usage id-ekg-kp-gatekeeper ({})", oid::KP_GATEKEEPER),
        );
    }
    // C1 validates the ticket's signer as an S/MIME certificate (V7, V8).
    if !credential.has_extended_key_usage(&oid::KP_EMAIL_PROTECTION) {
        return bad(
            "certificate",
            "must carry extended key usage emailProtection beside id-ekg-kp-gatekeeper (clients check it, C1)".into(),
        );
    }
    if !credential.uris().contains(&config.uri) {
        return bad(
            "certificate",
            format!(
                "must name uri {} as a uniformResourceIdentifier subjectAltName (it names {:?})",
                config.uri,
                credential.uris()
            ),
        );
    }
    if credential.addresses().is_empty() {
        return bad(
            "certificate",
            "must name an address as an rfc822Name subjectAltName (clients check it, C1)".into(),
        );
    }
    let spki = credential.certificate().tbs_certificate().subject_public_key_info().to_der().ok();
    for (i, retired) in config.retired.iter().enumerate() {
        let field = format!("retired[{i}]");
        let Ok(cert) = <Certificate as der::Decode>::from_der(&retired.der) else {
            return bad(&field, "not a DER certificate".into());
        };
        if retired.der == credential.certificate_der() {
            return bad(&field, "is the current certificate: list only the certificates it replaced".into());
        }
        if config.retired.iter().take(i).any(|r| r.der == retired.der) {
            return bad(&field, "listed twice".into());
        }
        if !crate::crypto::pki::certificate_has_extended_key_usage(&cert, &oid::KP_GATEKEEPER) {
            return bad(&field, "must carry extended key usage id-ekg-kp-gatekeeper".into());
        }
        if !certificate_uris(&cert).contains(&config.uri) {
            return bad(&field, format!("must name uri {}: a retired certificate is this gatekeeper's", config.uri));
        }
        let same_key = cert.tbs_certificate().subject_public_key_info().to_der().ok() == spki;
        match (retired.key, same_key) {
            (RetiredKey::Same, false) => {
                return bad(&field, "certifies another key than the current one: declare it a key rotation".into());
            }
            (RetiredKey::Previous, true) => {
                return bad(&field, "certifies the current key: declare it a renewal (the same key)".into());
            }
            _ => {}
        }
    }
    Ok(())
}

/// The credential's certificate and the intermediates configured with it are valid at
/// `now`; the window in which that holds (the latest notBefore, the earliest notAfter).
pub(super) fn check_validity(credential: &Credential, now: UnixTime) -> Result<(UnixTime, UnixTime)> {
    let (mut from, mut until) = (UnixTime(0), UnixTime(u64::MAX));
    for (i, cert) in core::iter::once(credential.certificate()).chain(credential.chain()).enumerate() {
        let what = if i == 0 { "certificate".to_owned() } else { format!("certificate: intermediate {i}") };
        let v = cert.tbs_certificate().validity();
        let (not_before, not_after) = (UnixTime::from_x509(&v.not_before), UnixTime::from_x509(&v.not_after));
        if now < not_before {
            return Err(reject(
                Rejection::InvalidConfiguration,
                format!("{what}: not valid yet (valid from {not_before}, its notBefore; now is {now})"),
            ));
        }
        if now > not_after {
            return Err(reject(
                Rejection::InvalidConfiguration,
                format!("{what}: expired (valid to {not_after}, its notAfter; now is {now})"),
            ));
        }
        from = from.max(not_before);
        until = until.min(not_after);
    }
    Ok((from, until))
}

/// Every rule on the gatekeeper's credential at `now`, with the anchors and CRLs of
/// `config` (see the module documentation).
pub fn check_credential(
    provider: &dyn CryptoProvider,
    config: &GatekeeperConfig,
    credential: &Credential,
    now: UnixTime,
) -> Result<CredentialStatus> {
    check_with(provider, config, credential, config.anchors.revocation(), now)
}

/// [`check_credential`] with the CRLs of `revocation`.
pub(super) fn check_with(
    provider: &dyn CryptoProvider,
    config: &GatekeeperConfig,
    credential: &Credential,
    revocation: &Revocation,
    now: UnixTime,
) -> Result<CredentialStatus> {
    check_profile(config, credential)?;
    check_validity(credential, now)?;
    let validated = config
        .anchors
        .validate_with(provider, credential.certificate(), credential.chain(), revocation, now)
        .map_err(|e| {
            let rule = match e.rejection() {
                Rejection::CertificateNotYetValid => "not valid yet",
                Rejection::CertificateExpired => "expired",
                Rejection::UntrustedCertificate | Rejection::ChainTooLong => {
                    "must chain to one of the anchors through the intermediates that follow it in its file"
                }
                Rejection::CertificateRevoked => "revoked",
                Rejection::CrlStale => "its revocation status is unknown (a CRL on its path is not current)",
                _ => "must pass the path rules clients apply (docs/protocol.md §3.0.4)",
            };
            reject(Rejection::InvalidConfiguration, format!("certificate: {rule} ({e})"))
        })?;
    let validity = credential.certificate().tbs_certificate().validity();
    Ok(CredentialStatus {
        not_before: UnixTime::from_x509(&validity.not_before),
        not_after: UnixTime::from_x509(&validity.not_after),
        anchor: validated.anchor,
        holds_from: validated.valid_from,
        holds_until: validated.valid_until,
    })
}
