//! Rotation of the gatekeeper's signing key on its configuration file, as `ekg keys rotate`,
//! `ekg keys list` and `ekg keys retire` do it (`docs/server.md`, "Rotating the signing key").
//!
//! - [`rotate`]: the new certificate and key (made with `ekg keys next` while the old key is
//!   in service, signed by the CA) are copied into `keys/` beside the configuration under
//!   names of their own (the key 0600; nothing is overwritten), the current certificate is
//!   copied there as a retired one, and the configuration is rewritten: `gatekeeper.
//!   certificate` and `gatekeeper.key` name the new pair, and `[[gatekeeper.retired]]` lists
//!   the old certificate with `key = "previous"` (so do the entries that were renewals of the
//!   old key). The rewritten configuration is loaded and its credential checked before it
//!   replaces the old one in one rename; the old one stays as `NAME.<time>.bak`. A crash
//!   leaves the old configuration or the new one, never a mixture.
//! - [`list`]: the current and retired certificates (serial, key fingerprint, notAfter, and
//!   for a retired one the time the tickets it signed can have expired by: notAfter plus the
//!   ticket lifetime), and the storage epochs whose keys exist.
//! - [`retire`]: drops a retired certificate from the configuration once that time has
//!   passed (`retired_certificate_in_use` before it, unless forced: its outstanding tickets
//!   then become `wrong_gatekeeper`).
//!
//! The configuration is rewritten line by line (comments and order kept): `certificate` and
//! `key` must be plain `name = "value"` lines of `[gatekeeper]`, as `ekg serve --demo` and
//! `docs/server.md` write them; anything else is `config_not_rewritable`.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use der::{Decode, Encode};
use ekg_core::StorageEpoch;
use ekg_core::UnixTime;
use x509_cert::Certificate;

use crate::config::{FileConfig, Settings};

/// The directory, beside the configuration, that rotations write into.
pub const KEYS_DIR: &str = "keys";

/// Why an `ekg keys` operation did nothing: a stable code and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationError {
    /// `invalid_configuration`, `new_credential_invalid`, `same_key`, `key_in_token`,
    /// `config_not_rewritable`, `file_exists`, `retired_certificate_unknown`,
    /// `retired_certificate_in_use` or `io_failed`.
    pub code: &'static str,
    /// The detail.
    pub detail: String,
}

impl core::fmt::Display for RotationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for RotationError {}

fn fail<T>(code: &'static str, detail: impl Into<String>) -> Result<T, RotationError> {
    Err(RotationError { code, detail: detail.into() })
}

fn io(what: &Path) -> impl Fn(std::io::Error) -> RotationError + '_ {
    move |e| RotationError { code: "io_failed", detail: format!("{}: {e}", what.display()) }
}

/// One certificate of the gatekeeper, as [`list`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The file it is read from.
    pub path: PathBuf,
    /// Its serial number, hex.
    pub serial: String,
    /// SHA-256 of its SubjectPublicKeyInfo, hex: the key it certifies.
    pub key_fingerprint: String,
    /// Its notAfter.
    pub not_after: UnixTime,
    /// notAfter plus the ticket lifetime: every ticket it signed has expired by then.
    pub keep_until: UnixTime,
}

/// A storage epoch whose key exists, as [`list`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochInfo {
    /// The epoch's number.
    pub epoch: u64,
    /// The first second of the epoch.
    pub from: UnixTime,
    /// When every key wrapped under it can have expired (its key may be destroyed after).
    pub destroy_after: UnixTime,
    /// `current` (keys issued now are wrapped under it), `holding` (keys of it may still be
    /// owed) or `due` (the expiry sweep destroys it next).
    pub state: &'static str,
}

/// What [`list`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The certificate tickets are signed with now.
    pub current: CertificateInfo,
    /// The certificates of `[[gatekeeper.retired]]`, in the file's order.
    pub retired: Vec<CertificateInfo>,
    /// Whether keys are wrapped per storage epoch (`false`: one storage key for all).
    pub has_epochs: bool,
    /// The storage epochs whose keys exist, oldest first.
    pub epochs: Vec<EpochInfo>,
}

fn loaded(config: &Path) -> Result<(FileConfig, Settings), RotationError> {
    let invalid =
        |e: crate::config::ConfigError| RotationError { code: "invalid_configuration", detail: e.to_string() };
    let file = FileConfig::read(config).map_err(invalid)?;
    let settings = crate::config::load(config).map_err(invalid)?;
    Ok((file, settings))
}

fn base_dir(config: &Path) -> PathBuf {
    config.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn info(path: PathBuf, der: &[u8], ticket_lifetime_secs: u64) -> Result<CertificateInfo, RotationError> {
    let cert =
        Certificate::from_der(der).or_else(|e| fail("invalid_configuration", format!("{}: {e}", path.display())))?;
    let tbs = cert.tbs_certificate();
    let spki = tbs.subject_public_key_info().to_der().or_else(|e| fail("invalid_configuration", e.to_string()))?;
    let (_, not_after) = ekg_core::crypto::pki::certificate_validity(der)
        .or_else(|e| fail("invalid_configuration", format!("{}: {}", path.display(), e.detail())))?;
    Ok(CertificateInfo {
        path,
        serial: hex::encode(tbs.serial_number().as_bytes()),
        key_fingerprint: hex::encode(ekg_core::crypto::default_provider().sha256(&spki).0),
        not_after,
        keep_until: not_after.plus_secs(ticket_lifetime_secs),
    })
}

/// The gatekeeper's certificates and storage epochs at `now` (`ekg keys list`).
pub fn list(config: &Path, now: UnixTime) -> Result<Listing, RotationError> {
    let (file, settings) = loaded(config)?;
    let dir = base_dir(config);
    let at = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { dir.join(p) };
    let g = &settings.gatekeeper;
    let lifetime = g.ticket_lifetime_secs;
    let current = info(at(&file.gatekeeper.certificate), settings.credential.certificate_der(), lifetime)?;
    let mut retired = Vec::new();
    for (section, r) in file.gatekeeper.retired.iter().zip(&g.retired) {
        retired.push(info(at(&section.certificate), &r.der, lifetime)?);
    }
    let epoch_secs = g.storage_epoch_secs.max(1);
    let now_epoch = StorageEpoch::of(now, epoch_secs);
    let due_before = ekg_core::role::destroyable_before(now, epoch_secs, lifetime);
    let numbers =
        settings.storage_keys.epochs().or_else(|e| fail("io_failed", format!("the storage epochs: {}", e.detail())))?;
    let epochs = numbers
        .into_iter()
        .map(|n| EpochInfo {
            epoch: n,
            from: UnixTime(n.saturating_mul(epoch_secs)),
            destroy_after: UnixTime(n.saturating_add(1).saturating_mul(epoch_secs).saturating_add(lifetime)),
            state: if n == now_epoch {
                "current"
            } else if n < due_before {
                "due"
            } else {
                "holding"
            },
        })
        .collect();
    Ok(Listing { current, retired, has_epochs: settings.storage_keys.has_epochs(), epochs })
}

/// What [`rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The new certificate's copy under `keys/`.
    pub certificate: PathBuf,
    /// The new key's copy under `keys/` (0600).
    pub key: PathBuf,
    /// The old certificate's copy under `keys/`, now listed as retired.
    pub retired: PathBuf,
    /// The configuration as it was before.
    pub backup: PathBuf,
    /// The old key's file: no longer named by the configuration; destroy it once the server
    /// runs on the new key (tickets it signed are checked with the retired certificate).
    pub old_key: PathBuf,
}

/// Installs the certificate at `certificate` (PEM, with its chain) and the key at `key`
/// (PKCS#8 PEM, 0600) as the gatekeeper's signing credential, the current certificate
/// retired (see the module documentation). The running server takes it at its next start.
pub fn rotate(config: &Path, certificate: &Path, key: &Path, now: UnixTime) -> Result<Rotated, RotationError> {
    let (file, settings) = loaded(config)?;
    let g = &file.gatekeeper;
    let dir = base_dir(config);
    let at = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { dir.join(p) };
    let Some(old_key) = g.key.as_ref().map(|k| at(k)) else {
        return fail(
            "key_in_token",
            "the signing key is in the PKCS#11 token: make the new key there and change \
             gatekeeper.pkcs11.signing_key and gatekeeper.certificate by hand (docs/server.md)",
        );
    };
    // The new pair: a credential (the key matches the certificate), for another key.
    let new_cert_pem = read_text(certificate, "the new certificate")?;
    let key_pem = crate::config::read_secret(key, "--key")
        .or_else(|e| fail("new_credential_invalid", e.rule))
        .map(|b| zeroize::Zeroizing::new(String::from_utf8_lossy(&b).into_owned()))?;
    let first = ekg_core::crypto::pki::pem_certificates(&new_cert_pem)
        .ok()
        .and_then(|c| c.into_iter().next())
        .map_or_else(|| fail("new_credential_invalid", "the new certificate file holds no certificate"), Ok)?;
    let new_credential = ekg_core::crypto::pki::Credential::from_pem(settings.provider, &new_cert_pem, "", &key_pem)
        .or_else(|e| fail("new_credential_invalid", e.detail().to_owned()))?;
    let old_der = settings.credential.certificate_der().to_vec();
    let spki = |c: &Certificate| c.tbs_certificate().subject_public_key_info().to_der().ok();
    if spki(new_credential.certificate()) == spki(settings.credential.certificate()) {
        return fail(
            "same_key",
            "the new certificate certifies the current key: that is a renewal, listed with key = \"same\" \
             (docs/server.md, \"Certificates\"), not a rotation",
        );
    }
    let lifetime = settings.gatekeeper.ticket_lifetime_secs;
    let new = info(certificate.to_path_buf(), &first, lifetime)?;
    let old = info(at(&g.certificate), &old_der, lifetime)?;

    let keys = dir.join(KEYS_DIR);
    if !keys.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&keys).map_err(io(&keys))?;
    }
    let rel = |name: String| (PathBuf::from(KEYS_DIR).join(&name), keys.join(name));
    let (cert_rel, cert_path) = rel(format!("gatekeeper-{}.pem", new.serial));
    let (key_rel, key_path) = rel(format!("gatekeeper-{}.key", new.serial));
    let (retired_rel, retired_path) = rel(format!("retired-{}.pem", old.serial));
    let mut written = Written::default();
    let result = (|| {
        written.create(&cert_path, new_cert_pem.as_bytes(), 0o644)?;
        written.create(&key_path, key_pem.as_bytes(), 0o600)?;
        written.create(&retired_path, certificate_pem(&old_der).as_bytes(), 0o644)?;
        let text = read_text(config, "the configuration")?;
        let new_text = with_rotation(&text, &cert_rel, &key_rel, &retired_rel)?;
        replace_checked(config, &new_text, now, &mut written)
    })();
    match result {
        Ok(backup) => {
            written.keep();
            Ok(Rotated { certificate: cert_path, key: key_path, retired: retired_path, backup, old_key })
        }
        Err(e) => Err(e),
    }
}

/// What [`retire`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    /// The certificate dropped from the configuration (its file is left where it is).
    pub certificate: CertificateInfo,
    /// The configuration as it was before.
    pub backup: PathBuf,
}

/// Drops the retired certificate whose serial is `serial` (hex, `:` allowed) from the
/// configuration: refused with `retired_certificate_in_use` while tickets it signed may be
/// outstanding (until notAfter plus the ticket lifetime), unless `force`.
pub fn retire(config: &Path, serial: &str, now: UnixTime, force: bool) -> Result<Retired, RotationError> {
    let listing = list(config, now)?;
    let want: String = serial.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    let want = want.trim_start_matches('0');
    let Some(index) = listing.retired.iter().position(|r| r.serial.trim_start_matches('0') == want) else {
        let known: Vec<&str> = listing.retired.iter().map(|r| r.serial.as_str()).collect();
        return fail(
            "retired_certificate_unknown",
            format!("no retired certificate has serial {serial} (retired: {known:?})"),
        );
    };
    let certificate =
        listing.retired.get(index).cloned().map_or_else(|| fail("retired_certificate_unknown", serial), Ok)?;
    if now <= certificate.keep_until && !force {
        return fail(
            "retired_certificate_in_use",
            format!(
                "tickets signed under {} may be outstanding until {} (its notAfter plus the ticket lifetime); \
                 retiring it now makes them unreadable (wrong_gatekeeper): wait, or --force",
                certificate.serial, certificate.keep_until
            ),
        );
    }
    let text = read_text(config, "the configuration")?;
    let new_text = without_retired(&text, index)?;
    let mut written = Written::default();
    let backup = replace_checked(config, &new_text, now, &mut written)?;
    written.keep();
    Ok(Retired { certificate, backup })
}

/// The certificate as PEM.
fn certificate_pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap_or_default()
}

fn read_text(path: &Path, what: &str) -> Result<String, RotationError> {
    let bytes = crate::config::read_bounded(path, what).or_else(|e| fail("io_failed", e.rule))?;
    String::from_utf8(bytes).or_else(|_| fail("io_failed", format!("{}: not UTF-8", path.display())))
}

/// Files this operation created: removed again if it fails.
#[derive(Default)]
struct Written(Vec<PathBuf>);

impl Written {
    /// Creates `path` with `bytes` (it must not exist, unless with these very bytes).
    fn create(&mut self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), RotationError> {
        if path.exists() {
            if std::fs::read(path).map_err(io(path))? == bytes {
                return Ok(());
            }
            return fail("file_exists", format!("{} exists: not overwritten", path.display()));
        }
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(io(path))?;
        self.0.push(path.to_path_buf());
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io(path))
    }

    fn keep(&mut self) {
        self.0.clear();
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        for p in self.0.drain(..) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Replaces the configuration with `text` once it loads and its credential holds at `now`:
/// written beside it, fsynced, the old one copied to a backup, renamed over it. Returns the
/// backup's path.
fn replace_checked(config: &Path, text: &str, now: UnixTime, written: &mut Written) -> Result<PathBuf, RotationError> {
    let name = config.file_name().map_or_else(|| "ekg.toml".into(), |n| n.to_string_lossy().into_owned());
    let dir = base_dir(config);
    let mode = std::fs::metadata(config).map_err(io(config))?.permissions().mode() & 0o777;
    let stamp = now.to_rfc3339().replace([':', '-'], "");
    let tmp = dir.join(format!(".{name}.{stamp}.new"));
    let _ = std::fs::remove_file(&tmp);
    written.create(&tmp, text.as_bytes(), mode)?;
    let settings = crate::config::load(&tmp)
        .or_else(|e| fail("invalid_configuration", format!("the rewritten configuration does not load: {e}")))?;
    crate::certificates::check_at(
        settings.provider,
        &settings.gatekeeper,
        &settings.credential,
        &settings.certificates,
        now,
    )
    .or_else(|e| fail("new_credential_invalid", format!("the rewritten configuration: {e}")))?;
    drop(settings);
    // A name of its own: two operations within one second keep both backups.
    let backup = (1..=100)
        .map(|n| dir.join(if n == 1 { format!("{name}.{stamp}.bak") } else { format!("{name}.{stamp}-{n}.bak") }))
        .find(|p| !p.exists())
        .map_or_else(|| fail("file_exists", format!("100 backups of {name} at {stamp}")), Ok)?;
    written.create(&backup, &std::fs::read(config).map_err(io(config))?, mode)?;
    std::fs::rename(&tmp, config).map_err(io(config))?;
    std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(io(&dir))?;
    Ok(backup)
}

/// A line's table header (`[gatekeeper]`, `[[gatekeeper.retired]]`), if it is one.
fn header(line: &str) -> Option<&str> {
    let t = line.trim();
    t.starts_with('[').then(|| t.split('#').next().unwrap_or(t).trim())
}

/// A line's key (`certificate` in `certificate = "x"`), if it is a plain key/value line.
fn key_of(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with('#') || t.starts_with('[') {
        return None;
    }
    t.split_once('=').map(|(k, _)| k.trim())
}

fn quoted(path: &Path) -> String {
    let s = path.to_string_lossy();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

const RETIRED: &str = "[[gatekeeper.retired]]";

/// The configuration's text with the new pair in `[gatekeeper]`, every retired entry a
/// `previous` key, and the old certificate appended as retired.
fn with_rotation(text: &str, cert: &Path, key: &Path, retired: &Path) -> Result<String, RotationError> {
    let mut out = String::with_capacity(text.len() + 128);
    let (mut table, mut certs, mut keys) = (String::new(), 0, 0);
    for line in text.lines() {
        if let Some(h) = header(line) {
            table = h.to_owned();
            out.push_str(line);
            out.push('\n');
            if table == RETIRED {
                out.push_str("key = \"previous\"\n");
            }
            continue;
        }
        match (table.as_str(), key_of(line)) {
            ("[gatekeeper]", Some("certificate")) => {
                certs += 1;
                out.push_str(&format!("certificate = {}\n", quoted(cert)));
            }
            ("[gatekeeper]", Some("key")) => {
                keys += 1;
                out.push_str(&format!("key = {}\n", quoted(key)));
            }
            (RETIRED, Some("key")) => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if (certs, keys) != (1, 1) {
        return fail(
            "config_not_rewritable",
            "[gatekeeper] must hold one `certificate = \"...\"` line and one `key = \"...\"` line",
        );
    }
    out.push_str(&format!("\n{RETIRED}\ncertificate = {}\nkey = \"previous\"\n", quoted(retired)));
    Ok(out)
}

/// The configuration's text without its `index`th `[[gatekeeper.retired]]` entry.
fn without_retired(text: &str, index: usize) -> Result<String, RotationError> {
    let mut out = String::with_capacity(text.len());
    let (mut seen, mut skipping, mut dropped) = (0usize, false, false);
    for line in text.lines() {
        if let Some(h) = header(line) {
            skipping = h == RETIRED && seen == index;
            if h == RETIRED {
                seen += 1;
            }
            dropped |= skipping;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !dropped {
        return fail("config_not_rewritable", format!("no [[gatekeeper.retired]] entry number {index} in the file"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "# demo\n[gatekeeper]\nuri = \"u\"\ncertificate = \"pki/gk.pem\"\nkey = \"pki/gk.key\" # file\n\n\
                          [[gatekeeper.retired]]\ncertificate = \"old.pem\"\nkey = \"same\"\n\n[server]\nlisten = \"x\"\n";

    #[test]
    fn the_rewrite_names_the_new_pair_and_retires_the_old_certificate() {
        let out =
            with_rotation(CONFIG, Path::new("keys/a.pem"), Path::new("keys/a.key"), Path::new("keys/r.pem")).unwrap();
        let parsed: toml::Value = toml::from_str(&out).unwrap();
        let g = &parsed["gatekeeper"];
        assert_eq!(g["certificate"].as_str(), Some("keys/a.pem"));
        assert_eq!(g["key"].as_str(), Some("keys/a.key"));
        let retired = g["retired"].as_array().unwrap();
        assert_eq!(retired.len(), 2);
        assert_eq!(retired[0]["certificate"].as_str(), Some("old.pem"));
        assert_eq!(retired[0]["key"].as_str(), Some("previous"), "a renewal of the old key is a previous key now");
        assert_eq!(retired[1]["certificate"].as_str(), Some("keys/r.pem"));
        assert_eq!(retired[1]["key"].as_str(), Some("previous"));
        assert_eq!(parsed["server"]["listen"].as_str(), Some("x"));
        assert!(out.starts_with("# demo\n"), "comments are kept");
    }

    #[test]
    fn retiring_drops_one_entry_and_keeps_the_rest() {
        let out = without_retired(CONFIG, 0).unwrap();
        let parsed: toml::Value = toml::from_str(&out).unwrap();
        assert!(parsed["gatekeeper"].get("retired").is_none());
        assert_eq!(parsed["server"]["listen"].as_str(), Some("x"));
        assert_eq!(without_retired(CONFIG, 1).unwrap_err().code, "config_not_rewritable");
    }

    #[test]
    fn a_configuration_without_plain_lines_is_not_rewritten() {
        let inline = "[gatekeeper]\nuri = \"u\"\n\"certificate\" = \"a\"\n";
        let e = with_rotation(inline, Path::new("a"), Path::new("b"), Path::new("c")).unwrap_err();
        assert_eq!(e.code, "config_not_rewritable");
    }
}
