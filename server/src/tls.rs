//! TLS: the server's certificate chain and key, read with the configuration's bounds (each
//! file at most 1 MiB, the key readable by its owner only) and checked when the
//! configuration is, so `ekg serve --check-config` catches a bad pair before it serves.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::config::{ConfigError, TlsFiles, read_bounded, read_secret};

fn bad(field: &str, rule: String) -> ConfigError {
    ConfigError { field: field.into(), rule }
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
