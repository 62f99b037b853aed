//! A user's identity: certificate, chain and private key, from PEM (one file with the
//! certificates and the key; or the certificates, with the key in `--key` or beside them in
//! the file of the same name ending `.key`) or from PKCS#12 (`.p12`,
//! `.pfx`: PBES2 with PBKDF2 and AES-CBC, and an HMAC-SHA-256 or SHA-1 MAC, as OpenSSL 3
//! writes them; the passphrase is asked on the terminal or read from a file, never taken
//! from the command line). Files holding a private key must be readable by their owner only.

use std::path::{Path, PathBuf};

use ekg_core::crypto::pki::Credential;
use zeroize::Zeroizing;

use super::{ClientError, MAX_CONFIG_LEN, fail, provider, read_input};

/// Where an identity comes from (`--identity`, `--key`, `--passphrase-file`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct IdentityArgs {
    /// Your identity: a PEM file with your certificate, its chain and your PKCS#8 key (or
    /// the certificates only, with --key), or a PKCS#12 file (.p12, .pfx). Files holding a
    /// key must be chmod 600.
    #[arg(long)]
    pub identity: PathBuf,
    /// Your PKCS#8 key (PEM), when --identity holds certificates only.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// A file whose first line is the PKCS#12 passphrase (chmod 600); without it the
    /// passphrase is asked on the terminal. Never on the command line.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

/// Reads a file that holds a secret: it must not be readable by group or others.
fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).or_else(|e| fail("io_error", format!("{}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return fail(
            "identity_readable_by_others",
            format!("{} holds a private key and is readable by group or others: chmod 600 it", path.display()),
        );
    }
    read_input(path, MAX_CONFIG_LEN as usize).map(Zeroizing::new)
}

/// PEM blocks with `label`, in order.
fn pem_blocks(text: &str, label: &str) -> Vec<String> {
    let (begin, end) = (format!("-----BEGIN {label}-----"), format!("-----END {label}-----"));
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&begin) {
        let Some(j) = rest[i..].find(&end) else { break };
        out.push(rest[i..i + j + end.len()].to_owned());
        rest = &rest[i + j + end.len()..];
    }
    out
}

/// Loads the identity.
pub fn load(args: &IdentityArgs) -> Result<Credential, ClientError> {
    // A file that holds a key must be the owner's only; certificates alone may be public.
    let bytes = Zeroizing::new(read_input(&args.identity, MAX_CONFIG_LEN as usize)?);
    let holds_key = bytes.first() == Some(&0x30) || bytes.windows(16).any(|w| w == b"PRIVATE KEY-----");
    let bytes = if holds_key { read_secret(&args.identity)? } else { bytes };
    if bytes.first() == Some(&0x30) {
        return pkcs12(&bytes, &args.identity, args.passphrase_file.as_deref());
    }
    let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
    let certs = pem_blocks(&text, "CERTIFICATE");
    let Some((first, chain)) = certs.split_first() else {
        return fail("invalid_identity", format!("{}: no CERTIFICATE (PEM) and not PKCS#12", args.identity.display()));
    };
    // The key: --key, else in the same file, else beside it with the extension .key.
    let beside = args.identity.with_extension("key");
    let key_file = match &args.key {
        Some(k) => Some(k.clone()),
        None if !text.contains("PRIVATE KEY-----") && beside.exists() => Some(beside),
        None => None,
    };
    let key_text = match &key_file {
        Some(k) => Zeroizing::new(String::from_utf8_lossy(&read_secret(k)?).into_owned()),
        None => text.clone(),
    };
    let keys = Zeroizing::new(pem_blocks(&key_text, "PRIVATE KEY"));
    let Some(key) = keys.first() else {
        let hint = if key_file.is_none() { " (give it with --key FILE)" } else { "" };
        return fail("invalid_identity", format!("no PRIVATE KEY (PKCS#8 PEM){hint}"));
    };
    let key = Zeroizing::new(key.clone());
    Credential::from_pem(provider(), first, &chain.concat(), &key).map_err(ClientError::from)
}

/// The passphrase: the first line of `file`, or asked on the terminal.
fn passphrase(file: Option<&Path>, what: &Path) -> Result<Zeroizing<String>, ClientError> {
    if let Some(f) = file {
        let bytes = read_secret(f)?;
        let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
        return Ok(Zeroizing::new(text.lines().next().unwrap_or("").to_owned()));
    }
    rpassword::prompt_password(format!("Passphrase for {}: ", what.display())).map(Zeroizing::new).or_else(|e| {
        fail("passphrase_required", format!("{}: no terminal to ask on ({e}): use --passphrase-file", what.display()))
    })
}

fn pkcs12(der: &[u8], path: &Path, passphrase_file: Option<&Path>) -> Result<Credential, ClientError> {
    // An empty passphrase first (OpenSSL allows one), then the user's.
    if passphrase_file.is_none()
        && let Ok(p) = super::pkcs12::decode(der, "")
    {
        return Credential::from_der(provider(), &p.certificate, &p.chain, &p.key).map_err(ClientError::from);
    }
    let pass = passphrase(passphrase_file, path)?;
    let p = super::pkcs12::decode(der, &pass)
        .map_err(|e| ClientError { code: e.code.into(), detail: format!("{}: {}", path.display(), e.detail) })?;
    Credential::from_der(provider(), &p.certificate, &p.chain, &p.key).map_err(ClientError::from)
}
