//! The gatekeeper's key custody in the service: where the storage-epoch keys live
//! (`docs/server.md`, "Key custody"). The core decides which epoch a key belongs to and
//! when an epoch's key may go ([`ekg_core::role::StorageKeys`]); this module keeps the keys.

pub mod files;
pub mod pkcs11;
pub mod rotation;

pub use files::EpochKeyFiles;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ekg_core::crypto::CryptoProvider;
use ekg_core::crypto::pki::Credential;
use ekg_core::role::{StorageKey, StorageKeys};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::read::ConfigError;

/// `[gatekeeper.pkcs11]`: the gatekeeper's keys in a PKCS#11 token (`docs/server.md`, "Key
/// custody").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Section {
    /// The PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// A file (0600) holding the user PIN; or
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// the name of an environment variable holding it.
    #[serde(default)]
    pub pin_env: Option<String>,
    /// The label of the signing key's private key object (else `gatekeeper.key`, a file).
    #[serde(default)]
    pub signing_key: Option<String>,
    /// The label prefix of the storage-epoch keys (else `gatekeeper.storage_keys`, files).
    #[serde(default)]
    pub storage_key_prefix: Option<String>,
}

fn bad<T>(field: &str, rule: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { field: format!("gatekeeper.pkcs11.{field}"), rule: rule.into() })
}

impl Pkcs11Section {
    /// Logs in to the token.
    pub fn open(&self, at: impl Fn(&Path) -> PathBuf) -> Result<Arc<pkcs11::Token>, ConfigError> {
        let pin = match (&self.pin_file, &self.pin_env) {
            (Some(f), None) => {
                let bytes = crate::config::read::read_secret(&at(f), "gatekeeper.pkcs11.pin_file")?;
                Zeroizing::new(String::from_utf8_lossy(&bytes).trim().to_owned())
            }
            (None, Some(var)) => match std::env::var(var) {
                Ok(v) => Zeroizing::new(v),
                Err(_) => return bad("pin_env", format!("the environment variable {var} is not set")),
            },
            _ => return bad("pin_file", "one of pin_file and pin_env"),
        };
        if self.token.is_empty() || self.token.len() > 32 {
            return bad("token", "a token label of 1 to 32 bytes");
        }
        pkcs11::Token::open(&at(&self.module), &self.token, &pin).or_else(|e| bad("module", e.detail().to_owned()))
    }

    /// The credential with the token's signing key, if `signing_key` is set.
    pub fn credential(
        &self,
        token: &Arc<pkcs11::Token>,
        provider: &dyn CryptoProvider,
        certificate_pem: &str,
        chain_pem: &str,
    ) -> Result<Option<Credential>, ConfigError> {
        let Some(label) = &self.signing_key else { return Ok(None) };
        let certificate = ekg_core::crypto::pki::pem_certificates(certificate_pem)
            .ok()
            .and_then(|c| c.into_iter().next())
            .map_or_else(|| bad("signing_key", "gatekeeper.certificate holds no certificate"), Ok)?;
        let chain = ekg_core::crypto::pki::pem_certificates(chain_pem)
            .or_else(|e| bad("signing_key", e.detail().to_owned()))?;
        let spki = <x509_cert::Certificate as der::Decode>::from_der(&certificate)
            .ok()
            .and_then(|c| der::Encode::to_der(c.tbs_certificate().subject_public_key_info()).ok())
            .map_or_else(|| bad("signing_key", "gatekeeper.certificate is not a certificate"), Ok)?;
        let key = pkcs11::TokenSigningKey::new(Arc::clone(token), label, spki)
            .or_else(|e| bad("signing_key", e.detail().to_owned()))?;
        Credential::with_key(provider, &certificate, &chain, Box::new(key))
            .map(Some)
            .or_else(|e| bad("signing_key", e.detail().to_owned()))
    }

    /// The storage-epoch keys in the token, if `storage_key_prefix` is set.
    pub fn storage_keys(
        &self,
        token: &Arc<pkcs11::Token>,
        legacy: Option<StorageKey>,
    ) -> Result<Option<Box<dyn StorageKeys>>, ConfigError> {
        match &self.storage_key_prefix {
            None => Ok(None),
            Some(p) if p.is_empty() || p.len() > 64 => bad("storage_key_prefix", "1 to 64 bytes"),
            Some(p) => Ok(Some(Box::new(pkcs11::TokenEpochKeys::new(Arc::clone(token), p.clone(), legacy)))),
        }
    }
}
