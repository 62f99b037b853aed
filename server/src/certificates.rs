//! The gatekeeper's certificates as an operator runs them (`docs/server.md`,
//! "Certificates"): the `[[recipient]]` rules, the `[[crl]]` files and the retired
//! certificates of the configuration; the credential check at start and in
//! `--check-config`; and the [`CertificateWatch`], which re-reads the CRL files on a timer
//! (and on [`CertificateWatch::reload`], for SIGHUP), keeps the expiry metrics current and
//! warns ahead of time that the certificate must be renewed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ekg_core::UnixTime;
use ekg_core::crypto::CryptoProvider;
use ekg_core::crypto::pki::Credential;
use ekg_core::crypto::pki::Revocation;
use ekg_core::role::{GatekeeperConfig, GatekeeperCrypto, RetiredCertificate, RetiredKey, check_credential};
use serde::Deserialize;

use crate::config::read::{ConfigError, MAX_FILE_LEN, read_bounded_to};
use crate::metrics::Metrics;
use crate::service::Clock;

/// Most `[[crl]]` entries.
pub const MAX_CRLS: usize = 100;
/// Largest CRL file (the core's bound).
pub const MAX_CRL_FILE_LEN: u64 = ekg_core::crypto::pki::MAX_CRL_LEN as u64;
/// `crl_refresh_secs`' range.
pub const CRL_REFRESH_SECS: core::ops::RangeInclusive<u64> = 10..=86_400;
/// `renewal_warning_days`' range.
pub const RENEWAL_WARNING_DAYS: core::ops::RangeInclusive<u64> = 0..=365;
/// How often the watch recomputes the expiry metrics.
const METRICS_TICK: Duration = Duration::from_secs(60);
/// Least time between two identical warnings in the log.
const WARNING_EVERY_SECS: u64 = 24 * 3600;

/// `[[recipient]]`: which anchor may certify which recipient domain (V25).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientSection {
    /// The recipient's address domain.
    pub domain: Option<String>,
    /// PEM of the anchor the certificate's path must end at (one of `gatekeeper.anchors`).
    pub issuer: Option<PathBuf>,
}

/// `[[crl]]`: a CRL file and the certificate of the CA that signs it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlSection {
    /// The CRL (DER or PEM `X509 CRL`), re-read on every refresh.
    pub file: PathBuf,
    /// PEM of the CA that signs it (an anchor or an intermediate CA).
    pub issuer: PathBuf,
}

/// `[[gatekeeper.retired]]`: a certificate the gatekeeper signed tickets under before.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredSection {
    /// PEM of the retired certificate.
    pub certificate: PathBuf,
    /// `same` (a renewal: the current key) or `previous` (a key rotation).
    #[serde(default = "same")]
    pub key: String,
}

fn same() -> String {
    "same".into()
}

/// What the server keeps of the certificate configuration, to reload the CRLs.
#[derive(Debug, Clone, Default)]
pub struct CertificateSettings {
    /// The CRL files and their issuers, absolute paths.
    pub crls: Vec<(PathBuf, PathBuf)>,
    /// Seconds between two readings of the CRL files.
    pub crl_refresh_secs: u64,
    /// How long before renewal is due to start warning.
    pub renewal_warning_secs: u64,
    /// Notified, the running server re-reads its CRL files at once (what SIGHUP does).
    pub reload: Arc<tokio::sync::Notify>,
}

fn bad<T>(field: &str, rule: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { field: field.to_owned(), rule: rule.into() })
}

fn der_of_pem(path: &Path, field: &str) -> Result<Vec<u8>, ConfigError> {
    let pem = read_bounded_to(path, field, MAX_FILE_LEN)?;
    let (_, der) = der::pem::decode_vec(&pem).or_else(|e| bad(field, format!("{}: PEM: {e}", path.display())))?;
    Ok(der)
}

/// Reads the `[[crl]]` files: (CRL file, issuer PEM file), absolute paths.
pub fn load_crls(provider: &dyn CryptoProvider, files: &[(PathBuf, PathBuf)]) -> Result<Revocation, ConfigError> {
    if files.len() > MAX_CRLS {
        return bad("crl", format!("at most {MAX_CRLS} CRL files"));
    }
    let mut revocation = Revocation::new();
    for (file, issuer) in files {
        let bytes = read_bounded_to(file, "crl.file", MAX_CRL_FILE_LEN)?;
        let crl = ekg_core::crypto::pki::crl_der(&bytes)
            .or_else(|e| bad("crl.file", format!("{}: {}", file.display(), e.detail())))?;
        let issuer_der = der_of_pem(issuer, "crl.issuer")?;
        revocation.add(provider, &issuer_der, &crl).or_else(|e| {
            bad("crl.file", format!("{} (issuer {}): {}", file.display(), issuer.display(), e.detail()))
        })?;
    }
    Ok(revocation)
}

/// The `[[gatekeeper.retired]]` certificates.
pub fn retired(
    sections: &[RetiredSection],
    at: &dyn Fn(&Path) -> PathBuf,
) -> Result<Vec<RetiredCertificate>, ConfigError> {
    sections
        .iter()
        .map(|r| {
            let key = match r.key.as_str() {
                "same" => RetiredKey::Same,
                "previous" => RetiredKey::Previous,
                _ => return bad("gatekeeper.retired.key", "same (a renewal) or previous (a key rotation)"),
            };
            Ok(RetiredCertificate { der: der_of_pem(&at(&r.certificate), "gatekeeper.retired.certificate")?, key })
        })
        .collect()
}

/// A core refusal of the credential as the field and rule it names (`certificate: ...`,
/// `retired[0]: ...`).
pub fn credential_error(e: &ekg_core::Error) -> ConfigError {
    let detail = e.detail();
    let (field, rule) = detail.split_once(": ").unwrap_or(("certificate", detail));
    ConfigError { field: format!("gatekeeper.{field}"), rule: rule.to_owned() }
}

/// The credential check at `now` (at start and in `--check-config`): every rule of
/// `check_credential`, then the lines to print: the certificate's expiry, the retired
/// certificates that may be removed, the CRLs, a warning when renewal is due.
pub fn check_at(
    provider: &dyn CryptoProvider,
    config: &GatekeeperConfig,
    credential: &Credential,
    settings: &CertificateSettings,
    now: UnixTime,
) -> Result<Vec<String>, ConfigError> {
    let status = check_credential(provider, config, credential, now).map_err(|e| credential_error(&e))?;
    let mut lines = vec![format!(
        "gatekeeper certificate valid to {} (renew before {}: notAfter minus the ticket lifetime)",
        status.not_after,
        status.renew_by(config.ticket_lifetime_secs)
    )];
    for (i, r) in config.retired.iter().enumerate() {
        if let Ok((_, not_after)) = ekg_core::crypto::pki::certificate_validity(&r.der) {
            let last = not_after.plus_secs(config.ticket_lifetime_secs);
            let when = if now > last { "may be removed now" } else { "may be removed after" };
            lines.push(format!("retired certificate {i}: the tickets it signed expire by {last}; {when} {last}"));
        }
    }
    for l in config.anchors.revocation().lists() {
        lines.push(format!("CRL of {}: {} revoked, current to {}", l.issuer(), l.revoked_count(), l.next_update()));
    }
    if config.recipients.is_empty() && config.anchors.ids().len() > 1 {
        lines.push(format!(
            "warning: no [[recipient]] rule: each of the {} anchors may certify every recipient domain",
            config.anchors.ids().len()
        ));
    }
    if let Some(w) = status.expiry_warning(now, config.ticket_lifetime_secs, settings.renewal_warning_secs) {
        lines.push(format!("warning: {w}"));
    }
    Ok(lines)
}

/// Keeps the certificate state current while the server runs: re-reads the CRL files every
/// `crl_refresh_secs` (and on [`CertificateWatch::reload`]), sets the expiry metrics every
/// minute, and logs (standard error) a warning when renewal is due, at most once a day.
pub struct CertificateWatch {
    crypto: Arc<GatekeeperCrypto>,
    provider: &'static dyn CryptoProvider,
    settings: CertificateSettings,
    metrics: Arc<Metrics>,
    clock: Arc<Clock>,
    ticket_lifetime_secs: u64,
    last_warning: Mutex<Option<(String, UnixTime)>>,
}

impl core::fmt::Debug for CertificateWatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CertificateWatch")
    }
}

impl CertificateWatch {
    /// A watch over `crypto`'s credential and CRLs.
    pub fn new(
        crypto: Arc<GatekeeperCrypto>,
        provider: &'static dyn CryptoProvider,
        settings: CertificateSettings,
        metrics: Arc<Metrics>,
        clock: Arc<Clock>,
    ) -> CertificateWatch {
        let ticket_lifetime_secs = crypto.config().ticket_lifetime_secs;
        CertificateWatch {
            crypto,
            provider,
            settings,
            metrics,
            clock,
            ticket_lifetime_secs,
            last_warning: Mutex::default(),
        }
    }

    /// Re-reads every CRL file and puts the new set in force (the server's SIGHUP). If a file
    /// does not load, nothing changes (the CRLs in force stay until they are stale: fail
    /// closed) and the error is returned. Then checks the credential again.
    pub fn reload(&self) -> Result<usize, ConfigError> {
        let revocation = load_crls(self.provider, &self.settings.crls)?;
        let n = revocation.lists().len();
        self.crypto.reload_revocation(revocation);
        self.observe();
        Ok(n)
    }

    /// Sets the metrics from the credential and the CRLs in force at the clock's `now`, and
    /// logs a warning when renewal is due or the credential no longer holds.
    pub fn observe(&self) {
        let now = self.clock.now();
        match self.crypto.check_credential(now) {
            Ok(status) => {
                self.metrics.gatekeeper_certificate_expiry.set(status.expires_in_secs(now));
                if let Some(w) =
                    status.expiry_warning(now, self.ticket_lifetime_secs, self.settings.renewal_warning_secs)
                {
                    self.warn(&w, now);
                }
            }
            Err(e) => {
                let c = credential_error(&e);
                self.warn(&format!("{}: {} (no key is issued until it holds)", c.field, c.rule), now);
                let not_after = self.crypto.credential().certificate().tbs_certificate().validity().not_after;
                let left = i128::from(not_after.to_unix_duration().as_secs()) - i128::from(now.secs());
                self.metrics.gatekeeper_certificate_expiry.set(i64::try_from(left).unwrap_or(i64::MIN));
            }
        }
        for l in self.crypto.revocation().lists() {
            let left = i128::from(l.next_update().secs()) - i128::from(now.secs());
            let labels = crate::metrics::IssuerLabels { issuer: l.issuer() };
            self.metrics.crl_next_update.get_or_create(&labels).set(i64::try_from(left).unwrap_or(i64::MIN));
        }
    }

    fn warn(&self, line: &str, now: UnixTime) {
        let Ok(mut last) = self.last_warning.lock() else { return };
        let repeat = last.as_ref().is_some_and(|(l, at)| l == line && now.secs() < at.secs() + WARNING_EVERY_SECS);
        if !repeat {
            eprintln!("ekg serve: warning: {line}");
            *last = Some((line.to_owned(), now));
        }
    }

    /// Runs until `stop`: the metrics every minute, the CRL files every `crl_refresh_secs`
    /// and whenever [`CertificateSettings::reload`] is notified.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let refresh = Duration::from_secs(self.settings.crl_refresh_secs.max(1));
        let tick = METRICS_TICK.min(refresh);
        let mut since_refresh = Duration::ZERO;
        loop {
            let asked = tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(tick) => false,
                () = self.settings.reload.notified() => true,
            };
            since_refresh += tick;
            let watch = Arc::clone(&self);
            let reread = asked || since_refresh >= refresh;
            if reread {
                since_refresh = Duration::ZERO;
            }
            let _ = tokio::task::spawn_blocking(move || {
                if reread {
                    if let Err(e) = watch.reload() {
                        eprintln!("ekg serve: warning: CRLs not reloaded, the previous ones stay in force: {e}");
                    }
                } else {
                    watch.observe();
                }
            })
            .await;
        }
    }
}
