//! A gatekeeper with one command (`ekg serve --demo`), in the manner of Pebble's test mode:
//! the deterministic test PKI of two organisations (example.com runs the gatekeeper; its
//! certificate names the URI the demo listens on), a fresh storage key, a temporary
//! database, and a configuration file, all written into one directory.
//!
//! These are TEST KEYS: every key follows from a public seed (`ekg-testpki`).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ekg_testpki::{Issued, Org, Pki, pem};

use crate::files::write_secret;

/// The seed of the demo PKI.
pub const SEED: u64 = 2026;

/// What the demo wrote.
#[derive(Debug, Clone)]
pub struct DemoFiles {
    /// The directory.
    pub dir: PathBuf,
    /// `pki/`: `DOMAIN/NAME.pem` (certificate and chain), `DOMAIN/NAME.key` (PKCS#8, 0600),
    /// `DOMAIN/ca.pem`, `example.org/ca.crl` (its CRL, empty) and `anchors.pem`.
    pub pki: PathBuf,
    /// The server's configuration.
    pub config: PathBuf,
    /// The clients' configuration (`ekg send`, `ekg read`).
    pub client: PathBuf,
    /// The gatekeeper's URI (`http://ADDR/`).
    pub uri: String,
}

/// Writes `NAME.pem` (certificate and chain) and `NAME.key` (PKCS#8, 0600).
pub fn write_identity(dir: &Path, name: &str, issued: &Issued) -> std::io::Result<()> {
    fs::write(dir.join(format!("{name}.pem")), issued.cert_pem() + &issued.chain_pem())?;
    write_secret(&dir.join(format!("{name}.key")), issued.key_pem().as_bytes())
}

/// Writes an organisation's CA, gatekeeper, gateway and users under `dir/DOMAIN/`.
pub fn write_org(dir: &Path, org: &Org) -> std::io::Result<()> {
    let d = dir.join(&org.domain);
    fs::create_dir_all(&d)?;
    fs::write(d.join("ca.pem"), org.ca.issued.cert_pem())?;
    write_identity(&d, "gatekeeper", &org.gatekeeper)?;
    write_identity(&d, "gateway", &org.gateway)?;
    for (address, issued) in &org.users {
        let local = address.split('@').next().unwrap_or(address);
        write_identity(&d, local, issued)?;
    }
    Ok(())
}

/// Writes the demo's PKI, storage key and configuration into `dir` for a gatekeeper that
/// will listen on `listen` (plain HTTP, loopback). `storage_key` is 32 fresh bytes.
pub fn write(dir: &Path, listen: SocketAddr, storage_key: &[u8; 32], extra_server: &str) -> std::io::Result<DemoFiles> {
    let uri = format!("http://{listen}/");
    let mut pki = Pki::new(SEED);
    let sender = Org::build_with_uri(&mut pki, "example.com", &["alice", "carol"], &uri);
    let recipient = Org::build(&mut pki, "example.org", &["bob", "dave"]);
    // A second certificate for bob (another device): under same_certificate only the first
    // one served may fetch again.
    let bob2 = pki.issue(&recipient.ca, &ekg_testpki::EntitySpec::user("bob@example.org"));
    // Two mailing lists' identities at example.com (docs/protocol.md §13), made after every
    // other certificate so that none of those changed: `team` and `inner`, nested in team.
    let team = pki.issue(&sender.ca, &ekg_testpki::EntitySpec::user("team@example.com"));
    let inner = pki.issue(&sender.ca, &ekg_testpki::EntitySpec::user("inner@example.com"));
    let dir_pki = dir.join("pki");
    fs::create_dir_all(&dir_pki)?;
    write_org(&dir_pki, &sender)?;
    write_org(&dir_pki, &recipient)?;
    write_identity(&dir_pki.join("example.org"), "bob2", &bob2)?;
    write_identity(&dir_pki.join("example.com"), "team", &team)?;
    write_identity(&dir_pki.join("example.com"), "inner", &inner)?;
    fs::write(
        dir_pki.join("example.com").join("team.toml"),
        "address = \"team@example.com\"\nmembers = [\"bob@example.org\", \"carol@example.com\", \"inner@example.com\"]\n",
    )?;
    fs::write(
        dir_pki.join("example.com").join("inner.toml"),
        "address = \"inner@example.com\"\nmembers = [\"dave@example.org\"]\n",
    )?;
    // example.org's CRL (empty; current to 2045): the demo shows the [[crl]] section.
    let crl = ekg_testpki::crl(&recipient.ca, (2025, 1, 1), (2045, 1, 1), &[]);
    fs::write(dir_pki.join("example.org").join("ca.crl"), crl.pem())?;
    let anchors: String = [&sender, &recipient].iter().map(|o| pem("CERTIFICATE", &o.ca.issued.cert_der)).collect();
    fs::write(dir_pki.join("anchors.pem"), anchors)?;
    write_secret(&dir.join("storage.key"), format!("{}\n", hex::encode(storage_key)).as_bytes())?;
    let config = dir.join("ekg.toml");
    let text = format!(
        r#"# ekg serve --demo: example.com's gatekeeper. TEST KEYS (seed {SEED}): never use them for real mail.
[gatekeeper]
uri = "{uri}"
certificate = "pki/example.com/gatekeeper.pem"
key = "pki/example.com/gatekeeper.key"
storage_key = "storage.key"
storage_keys = "storage-keys"
anchors = ["pki/example.com/ca.pem", "pki/example.org/ca.pem"]
policy = "once"
retention_secs = 0
ticket_lifetime_secs = 604800

[[sender]]
domain = "example.com"
issuer = "pki/example.com/ca.pem"

[[gateway]]
address = "gateway@example.com"
issuer = "pki/example.com/ca.pem"

# Each anchor certifies its own organisation's recipients only.
[[recipient]]
domain = "example.com"
issuer = "pki/example.com/ca.pem"

[[recipient]]
domain = "example.org"
issuer = "pki/example.org/ca.pem"

[[crl]]
file = "pki/example.org/ca.crl"
issuer = "pki/example.org/ca.pem"

[server]
listen = "{listen}"
database = "sqlite:ekg.db"
{extra_server}"#
    );
    fs::write(&config, text)?;
    // The clients' configuration (ekg send, ekg read; docs/mail.md).
    let client = dir.join("client.toml");
    let text = format!(
        r#"# ekg send / ekg read with the demo's PKI. TEST KEYS (seed {SEED}).
anchors = ["pki/anchors.pem"]

[gatekeepers]
"example.com" = "{uri}"
"#
    );
    fs::write(&client, text)?;
    Ok(DemoFiles { dir: dir.to_path_buf(), pki: dir_pki, config, client, uri })
}
