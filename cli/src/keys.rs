//! `ekg keys`: key material an operator makes. `storage-key` writes a fresh storage key file
//! (64 hex digits and a newline, mode 0600 from creation; an existing file is never
//! overwritten), the file that `gatekeeper.storage_key` names. `gatekeeper-csr` makes the
//! gatekeeper's key and a certificate signing request with the profile its certificate needs
//! (`docs/server.md`, "Certificates"): `id-ekg-kp-gatekeeper` and emailProtection, the URI
//! and the address as subjectAltNames, digitalSignature and keyEncipherment.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType};
use rsa::pkcs8::EncodePrivateKey;
use zeroize::Zeroizing;

type DynError = Box<dyn std::error::Error>;

/// RSA key sizes offered (the profile accepts 2048 to 8192 bits).
pub const RSA_BITS: [usize; 3] = [2048, 3072, 4096];

/// `ekg keys ...`.
#[derive(Subcommand, Debug)]
pub enum Action {
    /// Write a fresh storage key (32 random bytes from the operating system, as 64 hex digits)
    /// to a new file, mode 0600. Refuses to overwrite an existing file: a storage key
    /// replaced is every stored key lost.
    StorageKey {
        /// The file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Make the gatekeeper's RSA key (PKCS#8 PEM, written 0600) and a CSR (PEM) requesting
    /// the gatekeeper profile: id-ekg-kp-gatekeeper and emailProtection, the URI and the
    /// address as subjectAltNames. A CA signs it (docs/server.md shows the openssl commands).
    GatekeeperCsr {
        /// The gatekeeper's URI (`gatekeeper.uri`; 1 to 512 printable ASCII characters).
        #[arg(long)]
        uri: String,
        /// The gatekeeper's address (an rfc822Name clients require, e.g. ekg@example.com).
        #[arg(long)]
        email: String,
        /// Where to write the private key (must not exist; written 0600).
        #[arg(long)]
        key_out: PathBuf,
        /// Where to write the CSR (must not exist).
        #[arg(long)]
        csr_out: PathBuf,
        /// RSA key size: 2048, 3072 or 4096.
        #[arg(long, default_value_t = 3072)]
        bits: usize,
        /// The subject's commonName (default: the address).
        #[arg(long)]
        common_name: Option<String>,
    },
}

/// Runs `ekg keys`.
pub fn run(action: Action) -> Result<(), DynError> {
    match action {
        Action::StorageKey { out } => {
            let key = ekg_server::demo::fresh_storage_key()?;
            // Every copy in a zeroizing buffer: 64 hex digits and a newline.
            let mut text = zeroize::Zeroizing::new([b'\n'; 65]);
            hex::encode_to_slice(key.as_slice(), text.get_mut(..64).ok_or("buffer")?)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .map_err(|e| format!("{}: {e} (an existing storage key is never overwritten)", out.display()))?;
            f.write_all(text.as_slice())?;
            f.sync_all()?;
            eprintln!(
                "ekg keys: storage key written to {} (mode 0600): back it up apart from the database",
                out.display()
            );
            Ok(())
        }
        Action::GatekeeperCsr { uri, email, key_out, csr_out, bits, common_name } => {
            let cn = common_name.unwrap_or_else(|| email.clone());
            gatekeeper_csr(&uri, &email, &cn, bits, &key_out, &csr_out)?;
            println!("wrote {} (0600) and {}", key_out.display(), csr_out.display());
            println!("have a CA sign the CSR with its extensions (docs/server.md, \"Certificates\")");
            Ok(())
        }
    }
}

/// Makes the key and CSR and writes them (neither file may exist).
pub fn gatekeeper_csr(
    uri: &str,
    email: &str,
    cn: &str,
    bits: usize,
    key_out: &Path,
    csr_out: &Path,
) -> Result<(), DynError> {
    if uri.is_empty() || uri.len() > ekg_core::limits::MAX_URI_LEN || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("--uri: 1 to 512 printable ASCII characters, no space".into());
    }
    ekg_core::EmailAddress::parse(email).map_err(|e| format!("--email: {}", e.detail()))?;
    if !RSA_BITS.contains(&bits) {
        return Err("--bits: 2048, 3072 or 4096".into());
    }
    if cn.is_empty() || cn.len() > 64 {
        return Err("--common-name: 1 to 64 characters".into());
    }
    for p in [key_out, csr_out] {
        if p.exists() {
            return Err(format!("{} exists: not overwritten", p.display()).into());
        }
    }
    let (key_pem, csr_pem) = make(uri, email, cn, bits)?;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(key_out)?;
    f.write_all(key_pem.as_bytes())?;
    f.sync_all()?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(csr_out)?
        .write_all(csr_pem.as_bytes())?;
    Ok(())
}

/// The key (PKCS#8 PEM) and the CSR (PEM).
fn make(uri: &str, email: &str, cn: &str, bits: usize) -> Result<(Zeroizing<String>, String), DynError> {
    let mut rng = crate::client::os_rng()?;
    let key = rsa::PrivateKey::new(&mut rng, bits).map_err(|e| format!("RSA key generation: {e}"))?;
    let pkcs8 = Zeroizing::new(key.to_pkcs8_der().map_err(|e| format!("PKCS#8: {e}"))?.as_bytes().to_vec());
    let pair = KeyPair::try_from(pkcs8.as_slice()).map_err(|e| format!("key: {e}"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![
        SanType::URI(uri.try_into().map_err(|e| format!("--uri: {e}"))?),
        SanType::Rfc822Name(email.try_into().map_err(|e| format!("--email: {e}"))?),
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::EmailProtection,
        ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 99999, 1, 3, 1]),
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    let csr = params.serialize_request(&pair).map_err(|e| format!("CSR: {e}"))?;
    let key_pem = Zeroizing::new(der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &pkcs8)?);
    Ok((key_pem, csr.pem().map_err(|e| format!("CSR PEM: {e}"))?))
}
