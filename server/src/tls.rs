//! TLS: the server's certificate chain and key, read with the configuration's bounds (each
//! file at most 1 MiB, the key readable by its owner only) and checked when the
//! configuration is, so `ekg serve --check-config` catches a bad pair before it serves.

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::config::read::{ConfigError, read_bounded, read_secret};

fn bad(field: &str, rule: String) -> ConfigError {
    ConfigError { field: field.into(), rule }
}

/// TLS files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Key, PEM.
    pub key: PathBuf,
}

/// The rustls acceptor of `files` (TLS 1.2 and 1.3, aws-lc-rs, no client certificates).
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ConfigError> {
    let cert_pem = read_bounded(&files.cert, "server.tls_cert")?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("server.tls_cert", format!("{}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(bad("server.tls_cert", format!("{}: no CERTIFICATE block", files.cert.display())));
    }
    let key_pem = read_secret(&files.key, "server.tls_key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| bad("server.tls_key", format!("{}: {e}", files.key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| bad("server.tls_key", format!("does not fit server.tls_cert: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A TLS acceptor that SIGHUP can replace: the files are read again and, if they hold, new
/// connections use them; connections already open keep theirs. A pair that does not hold
/// leaves the current one in place.
#[derive(Clone)]
pub struct Reloadable {
    files: TlsFiles,
    current: Arc<std::sync::RwLock<TlsAcceptor>>,
}

impl core::fmt::Debug for Reloadable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Reloadable({})", self.files.cert.display())
    }
}

impl Reloadable {
    /// Reads `files` (as [`acceptor`]).
    pub fn new(files: TlsFiles) -> Result<Reloadable, ConfigError> {
        let acceptor = acceptor(&files)?;
        Ok(Reloadable { files, current: Arc::new(std::sync::RwLock::new(acceptor)) })
    }

    /// The acceptor for a new connection.
    pub fn current(&self) -> TlsAcceptor {
        match self.current.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl crate::Reload for Reloadable {
    fn name(&self) -> String {
        format!("tls ({})", self.files.cert.display())
    }

    fn reload(&self) -> Result<(), String> {
        let fresh = acceptor(&self.files).map_err(|e| e.to_string())?;
        match self.current.write() {
            Ok(mut a) => *a = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }
}
