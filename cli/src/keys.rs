//! `ekg keys`: key material an operator makes. `storage-key` writes a fresh storage key file
//! (64 hex digits and a newline, mode 0600 from creation; an existing file is never
//! overwritten), the file that `gatekeeper.storage_key` names. `gatekeeper-csr` makes the
//! gatekeeper's key and a certificate signing request with the profile its certificate needs
//! (`docs/server.md`, "Certificates"): `id-ekg-kp-gatekeeper` and emailProtection, the URI
//! and the address as subjectAltNames, digitalSignature and keyEncipherment.
//!
//! Rotating the signing key (`docs/server.md`, "Rotating the signing key"): `next` makes
//! the new key and its CSR beside a configuration while the old key is in service; `rotate`
//! installs the signed certificate and the key and retires the old certificate; `list` shows
//! the certificates and the storage epochs; `retire` drops a retired certificate once every
//! ticket it signed has expired. The work is `ekg_server::custody::rotation`'s.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use ekg_server::custody::rotation;
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType};
use rsa::pkcs8::EncodePrivateKey;
use std::os::unix::fs::DirBuilderExt;
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
    /// Make the next signing key while the current one is in service: `keys/next-N.key`
    /// (0600) and `keys/next-N.csr` beside the configuration, for the URI and the address of
    /// the current certificate. A CA signs the CSR; then `ekg keys rotate`.
    Next {
        /// The server's configuration.
        #[arg(long)]
        config: PathBuf,
        /// RSA key size: 2048, 3072 or 4096.
        #[arg(long, default_value_t = 3072)]
        bits: usize,
    },
    /// Install a new signing certificate and key: both copied into `keys/` beside the
    /// configuration (the key 0600), the current certificate retired (`key = "previous"`),
    /// the configuration checked and replaced in one rename (the old one kept as `.bak`).
    /// Restart the server to use it.
    Rotate {
        /// The server's configuration.
        #[arg(long)]
        config: PathBuf,
        /// The new certificate (PEM, with its intermediates).
        #[arg(long)]
        certificate: PathBuf,
        /// The new key (PKCS#8 PEM, chmod 600), e.g. from `ekg keys next`.
        #[arg(long)]
        key: PathBuf,
    },
    /// Show the current and retired certificates (serial, key fingerprint, notAfter, the time
    /// a retired one may be dropped) and the storage epochs whose keys exist.
    List {
        /// The server's configuration.
        #[arg(long)]
        config: PathBuf,
    },
    /// Drop a retired certificate from the configuration once every ticket it signed has
    /// expired (notAfter plus the ticket lifetime); refused before (`retired_certificate_in_use`).
    Retire {
        /// The server's configuration.
        #[arg(long)]
        config: PathBuf,
        /// The retired certificate's serial number (hex, as `ekg keys list` shows it).
        #[arg(long)]
        serial: String,
        /// Drop it though tickets it signed may be outstanding: they become unreadable.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `ekg keys`.
pub fn run(action: Action) -> Result<(), DynError> {
    match action {
        Action::StorageKey { out } => {
            let key = ekg_server::files::fresh_storage_key()?;
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
        Action::Next { config, bits } => next(&config, bits),
        Action::Rotate { config, certificate, key } => {
            let done = rotation::rotate(&config, &certificate, &key, wall_clock())?;
            println!("signing certificate: {}", done.certificate.display());
            println!("signing key:         {} (0600)", done.key.display());
            println!("retired certificate: {} (key = \"previous\")", done.retired.display());
            println!("previous configuration kept as {}", done.backup.display());
            println!("restart the server to sign with the new key; then destroy {}", done.old_key.display());
            Ok(())
        }
        Action::List { config } => {
            let now = wall_clock();
            let l = rotation::list(&config, now)?;
            println!("now {now}");
            let line = |role: &str, c: &rotation::CertificateInfo, keep: String| {
                println!(
                    "{role:8} serial {}  key sha256:{}  notAfter {}{keep}\n         {}",
                    c.serial,
                    c.key_fingerprint,
                    c.not_after,
                    c.path.display()
                );
            };
            line("current", &l.current, String::new());
            for r in &l.retired {
                let when = if now > r.keep_until { "may be retired now" } else { "keep" };
                line("retired", r, format!("  keep until {} ({when})", r.keep_until));
            }
            if !l.has_epochs {
                println!("storage epochs: none (one storage key for every key: gatekeeper.storage_key alone)");
            } else if l.epochs.is_empty() {
                println!("storage epochs: no epoch key yet (the first issuance makes one)");
            }
            for e in &l.epochs {
                println!(
                    "epoch {:>10}  from {}  {:8} its keys expire by {}",
                    e.epoch, e.from, e.state, e.destroy_after
                );
            }
            Ok(())
        }
        Action::Retire { config, serial, force } => {
            let done = rotation::retire(&config, &serial, wall_clock(), force)?;
            println!(
                "retired certificate {} dropped from {} (its file {} is left in place)",
                done.certificate.serial,
                config.display(),
                done.certificate.path.display()
            );
            println!("previous configuration kept as {}; restart the server", done.backup.display());
            Ok(())
        }
    }
}

fn wall_clock() -> ekg_core::UnixTime {
    ekg_server::service::wall_clock()
}

/// `ekg keys next`: a key and CSR for the current certificate's URI and address, in `keys/`.
fn next(config: &Path, bits: usize) -> Result<(), DynError> {
    let settings = ekg_server::config::load(config)?;
    let uri = settings.gatekeeper.uri.clone();
    let email = settings
        .credential
        .addresses()
        .first()
        .map(ToString::to_string)
        .ok_or("the current certificate names no address")?;
    let dir = config.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).join(rotation::KEYS_DIR);
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    }
    let n = (1..=1000).find(|n| !dir.join(format!("next-{n}.key")).exists()).ok_or("keys/: 1000 next keys already")?;
    let (key_out, csr_out) = (dir.join(format!("next-{n}.key")), dir.join(format!("next-{n}.csr")));
    gatekeeper_csr(&uri, &email, &email, bits, &key_out, &csr_out)?;
    println!("wrote {} (0600) and {} for {uri} and {email}", key_out.display(), csr_out.display());
    println!(
        "have the CA sign the CSR, then: ekg keys rotate --config {} --certificate CERT.pem --key {}",
        config.display(),
        key_out.display()
    );
    Ok(())
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
    if uri.is_empty() || uri.len() > ekg_core::wire::limits::MAX_URI_LEN || !uri.bytes().all(|b| b.is_ascii_graphic()) {
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
