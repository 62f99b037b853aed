//! The server's configuration file (TOML), every field checked at start with an error that
//! names the field and the rule (`docs/server.md`, "Configuration"). Relative paths are
//! relative to the configuration file's directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use crate::tls::TlsFiles;

use ekg_core::crypto::CryptoProvider;
use ekg_core::crypto::pki::{Credential, TrustAnchors, provider_cert_id};
use ekg_core::role::{GatekeeperConfig, GatekeeperSettings, GatewayPrincipal, SenderRule, StorageKey, StorageKeys};
use ekg_core::{EmailAddress, KEY_LEN};
use serde::Deserialize;
use zeroize::Zeroizing;

mod attributes;
mod database;
mod listen;
pub(crate) mod read;
mod server;
pub mod tokens;

pub use database::Database;
pub use listen::{is_private, plain_http_allowed};
pub use read::{ConfigError, MAX_FILE_LEN, read_bounded, read_bounded_to, read_secret};
use read::{bad, text};
pub use server::{
    DEFAULT_MAX_HELD_PER_SENDER, DEFAULT_REQUEST_DEADLINE_SECS, MAX_HELD_PER_SENDER, ServerSection, WORKERS_PER_CORE,
};

/// Most trust anchor files.
pub const MAX_ANCHOR_FILES: usize = 100;
/// Most worker threads.
pub const MAX_WORKERS: usize = 256;
/// Most concurrent connections.
pub const MAX_CONNECTIONS: usize = 100_000;
/// Most requests on one connection.
pub const MAX_REQUESTS_PER_CONNECTION: u32 = 1_000_000;
/// Longest timeout of any kind, seconds.
pub const MAX_TIMEOUT_SECS: u64 = 3600;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[gatekeeper]`.
    pub gatekeeper: GatekeeperSection,
    /// `[[sender]]`: who may ask for keys.
    #[serde(default, rename = "sender")]
    pub senders: Vec<SenderSection>,
    /// `[[gateway]]`: this organisation's gateways.
    #[serde(default, rename = "gateway")]
    pub gateways: Vec<GatewaySection>,
    /// `[[recipient]]`: which anchors may certify which recipient domains.
    #[serde(default, rename = "recipient")]
    pub recipients: Vec<crate::certificates::RecipientSection>,
    /// `[[crl]]`: CRL files and the CAs that sign them.
    #[serde(default, rename = "crl")]
    pub crls: Vec<crate::certificates::CrlSection>,
    /// `[[attribute]]`: attribute definitions for labelled keys (`docs/protocol.md` §12.2).
    #[serde(default, rename = "attribute")]
    pub attributes: Vec<ekg_core::role::settings::attributes::AttributeForm>,
    /// `[[mapping]]`: subject mappings from certificate facts to entitlements.
    #[serde(default, rename = "mapping")]
    pub mappings: Vec<attributes::MappingSection>,
    /// `[[token_issuer]]`: OpenID providers whose access tokens releases may carry (§12.5).
    #[serde(default, rename = "token_issuer")]
    pub token_issuers: Vec<tokens::TokenIssuerSection>,
    /// `[server]`.
    #[serde(default)]
    pub server: ServerSection,
}

/// `[gatekeeper]`: the gatekeeper's files and keys, and the protocol's settings.
#[derive(Debug, Deserialize)]
pub struct GatekeeperSection {
    /// The gatekeeper's URI (its certificate names it; every ticket carries it).
    pub uri: String,
    /// PEM: the gatekeeper's certificate, then its intermediates, if any.
    pub certificate: PathBuf,
    /// PEM PKCS#8: its private key (mode 0600 or stricter); not with `pkcs11.signing_key`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// `[gatekeeper.pkcs11]`: keys in a PKCS#11 token.
    #[serde(default)]
    pub pkcs11: Option<crate::custody::Pkcs11Section>,
    /// The path of the single storage key's file of the releases before storage epochs: 64
    /// hex digits (mode 0600 or stricter). With `storage_keys`, it unwraps the keys stored
    /// before epochs; alone, every key is wrapped under it (no epochs: no forward secrecy).
    #[serde(default)]
    pub storage_key: Option<PathBuf>,
    /// The directory of the storage-epoch keys (mode 0700, created if absent): each key is
    /// wrapped under the key of its issuance's epoch, destroyed once every key of the epoch
    /// can have expired.
    #[serde(default)]
    pub storage_keys: Option<PathBuf>,
    /// PEM files of the trust anchors (the federation's CAs).
    pub anchors: Vec<PathBuf>,
    /// `aws-lc-rs` (default) or `rustcrypto`.
    #[serde(default = "default_provider")]
    pub provider: String,
    /// `[[gatekeeper.retired]]`: certificates it signed tickets under before (renewals).
    #[serde(default)]
    pub retired: Vec<crate::certificates::RetiredSection>,
    /// Days before renewal is due (notAfter minus the ticket lifetime) to start warning.
    #[serde(default = "default_renewal_warning_days")]
    pub renewal_warning_days: u64,
    /// Seconds between two readings of the `[[crl]]` files.
    #[serde(default = "default_crl_refresh")]
    pub crl_refresh_secs: u64,
    /// The issuance log's salt file (64 hex digits, mode 0600 or stricter): with it, every
    /// issuance and release appends an entry to the log (`docs/protocol.md` §10).
    #[serde(default)]
    pub log_salt: Option<PathBuf>,
    /// Seconds between two tree heads signed by the timer (1 to 86400; a head is signed only
    /// if the log grew).
    #[serde(default = "default_head_interval")]
    pub log_head_interval_secs: u64,
    /// The protocol's settings (`policy`, `retention_secs`, `max_deliveries`,
    /// `ticket_lifetime_secs`, `max_recipients`, `max_clock_skew_secs`, `max_path_len`,
    /// `storage_epoch_secs`): the core's one form, with its defaults.
    #[serde(flatten)]
    pub protocol: GatekeeperSettings,
    /// Any other key: refused by [`FileConfig::read`] (serde cannot deny unknown fields beside
    /// a flattened form, so they are collected here).
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

fn default_head_interval() -> u64 {
    crate::log::DEFAULT_HEAD_INTERVAL_SECS
}

/// `[[sender]]`: a sender rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderSection {
    /// The sender's domain.
    pub domain: Option<String>,
    /// PEM of the anchor the sender's certificate must chain to (one of `anchors`).
    pub issuer: Option<PathBuf>,
}

/// `[[gateway]]`: a gateway principal.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// Its address.
    pub address: String,
    /// PEM of the anchor its certificate must chain to.
    pub issuer: PathBuf,
}

fn default_renewal_warning_days() -> u64 {
    14
}
fn default_crl_refresh() -> u64 {
    300
}
fn default_provider() -> String {
    "aws-lc-rs".into()
}
/// A configuration that holds: everything the server needs, loaded and checked.
#[derive(Debug)]
pub struct Settings {
    /// The crypto provider.
    pub provider: &'static dyn CryptoProvider,
    /// The gatekeeper's configuration.
    pub gatekeeper: GatekeeperConfig,
    /// Its credential.
    pub credential: Credential,
    /// The storage keys (epoch keys, the legacy key, or both).
    pub storage_keys: Box<dyn StorageKeys>,
    /// Listen address.
    pub listen: SocketAddr,
    /// TLS, if any.
    pub tls: Option<TlsFiles>,
    /// The store.
    pub database: Database,
    /// Worker threads.
    pub workers: usize,
    /// Whether plain HTTP on a private address is intended (behind a TLS proxy).
    pub allow_plain_http: bool,
    /// The connection layer's caps and timeouts.
    pub limits: crate::listener::ConnectionLimits,
    /// Body read timeout.
    pub body_timeout: std::time::Duration,
    /// Shutdown grace.
    pub shutdown_grace: std::time::Duration,
    /// The longest a protocol request may take once its body is read.
    pub request_deadline: std::time::Duration,
    /// Most keys held for one sender (0: no quota).
    pub max_held_per_sender: u64,
    /// The store's identity file (`None`: the memory store has none).
    pub store_identity: Option<PathBuf>,
    /// Whether to take the database as found (`ekg serve --adopt-store`).
    pub adopt_store: bool,
    /// How often the store's generation is advanced while the server runs.
    pub store_generation: std::time::Duration,
    /// The service's clock (the wall clock; tests move it forward).
    pub clock: std::sync::Arc<crate::service::Clock>,
    /// The CRL files to re-read, and the renewal warning.
    pub certificates: crate::certificates::CertificateSettings,
    /// The issuance log's salt, if the gatekeeper keeps a log.
    pub log_salt: Option<ekg_core::audit::LogSalt>,
    /// Seconds between two signed heads of the log.
    pub log_head_interval_secs: u64,
    /// Where the token issuers' JWK Sets are fetched from (one per `[[token_issuer]]`).
    pub jwks: Vec<tokens::JwksSource>,
}

impl FileConfig {
    /// Parses the file at `path` (at most 1 MiB).
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let bytes = read_bounded(path, "config")?;
        let s = text(&bytes, "config")?;
        let file: FileConfig = toml::from_str(&s).map_err(|e| {
            protocol_error(&s).unwrap_or_else(|| ConfigError { field: "config".into(), rule: e.to_string() })
        })?;
        if let Some(key) = file.gatekeeper.unknown.keys().next() {
            return bad("config", format!("unknown field `{key}` in [gatekeeper]"));
        }
        Ok(file)
    }

    /// Checks every field and loads what they name; `dir` is the base of relative paths.
    pub fn settings(&self, dir: &Path) -> Result<Settings, ConfigError> {
        let g = &self.gatekeeper;
        let at = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { dir.join(p) };
        let provider: &'static dyn CryptoProvider = match g.provider.as_str() {
            "aws-lc-rs" => &ekg_core::crypto::AwsLc,
            "rustcrypto" => &ekg_core::crypto::RustCrypto,
            _ => return bad("gatekeeper.provider", "aws-lc-rs or rustcrypto"),
        };
        if g.anchors.is_empty() || g.anchors.len() > MAX_ANCHOR_FILES {
            return bad("gatekeeper.anchors", format!("1 to {MAX_ANCHOR_FILES} PEM files"));
        }
        let mut anchor_pem = String::new();
        for a in &g.anchors {
            let pem = text(&read_bounded(&at(a), "gatekeeper.anchors")?, "gatekeeper.anchors")?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return bad("gatekeeper.anchors", format!("{}: no CERTIFICATE block", a.display()));
            }
            anchor_pem.push_str(&pem);
            anchor_pem.push('\n');
        }
        let crl_files: Vec<(PathBuf, PathBuf)> = self.crls.iter().map(|c| (at(&c.file), at(&c.issuer))).collect();
        let anchors = TrustAnchors::from_pem(provider, &anchor_pem, g.protocol.path_limits())
            .or_else(|e| bad("gatekeeper.anchors", e.detail().to_owned()))?
            .with_revocation(crate::certificates::load_crls(provider, &crl_files)?);
        let anchor_id = |field: &str, p: &Path| -> Result<ekg_core::CertId, ConfigError> {
            let pem = text(&read_bounded(&at(p), field)?, field)?;
            let (_, der) = der::pem::decode_vec(pem.as_bytes()).or_else(|e| bad(field, format!("PEM: {e}")))?;
            let id = provider_cert_id(provider, &der);
            if !anchors.ids().contains(&id) {
                return bad(field, format!("{} is not one of gatekeeper.anchors", p.display()));
            }
            Ok(id)
        };
        let mut senders = Vec::new();
        for s in &self.senders {
            let issuer = s.issuer.as_deref().map(|p| anchor_id("sender.issuer", p)).transpose()?;
            senders.push(SenderRule { domain: s.domain.clone(), issuer });
        }
        let mut gateways = Vec::new();
        for gw in &self.gateways {
            let address = EmailAddress::parse(&gw.address).or_else(|_| bad("gateway.address", "an address"))?;
            gateways.push(GatewayPrincipal { address, issuer: anchor_id("gateway.issuer", &gw.issuer)? });
        }
        let mut recipients = Vec::new();
        for r in &self.recipients {
            let issuer = r.issuer.as_deref().map(|p| anchor_id("recipient.issuer", p)).transpose()?;
            recipients.push(ekg_core::role::RecipientRule { domain: r.domain.clone(), issuer });
        }
        let (token_issuers, jwks) = tokens::issuers(&self.token_issuers, &g.uri)?;
        let issuer_names: Vec<&str> = token_issuers.iter().map(|i| i.issuer.as_str()).collect();
        let attributes = attributes::policy(&self.attributes, &self.mappings, &anchor_id, &issuer_names)?;
        let mut config = g.protocol.configure(g.uri.clone(), anchors);
        config.attributes = attributes;
        config.token_issuers = token_issuers;
        config.recipients = recipients;
        config.retired = crate::certificates::retired(&g.retired, &at)?;
        config.senders = senders;
        config.gateways = gateways;
        // The core's own ranges, with the field in their message.
        config.validate().or_else(|e| {
            let detail = e.detail().to_owned();
            let (field, rule) = detail.split_once(": ").unwrap_or(("gatekeeper", detail.as_str()));
            bad(&format!("gatekeeper.{field}"), rule)
        })?;
        let cert_pem = text(&read_bounded(&at(&g.certificate), "gatekeeper.certificate")?, "gatekeeper.certificate")?;
        let (first, chain) = split_first_pem(&cert_pem);
        let token = g.pkcs11.as_ref().map(|s| s.open(at)).transpose()?;
        let in_token = match (&g.pkcs11, &token) {
            (Some(s), Some(t)) => s.credential(t, provider, &first, &chain)?,
            _ => None,
        };
        let credential = match (in_token, &g.key) {
            (Some(c), None) => c,
            (Some(_), Some(_)) => return bad("gatekeeper.key", "not with gatekeeper.pkcs11.signing_key (one key)"),
            (None, None) => return bad("gatekeeper.key", "a PKCS#8 file, or gatekeeper.pkcs11.signing_key"),
            (None, Some(key)) => {
                let key_pem = read_secret(&at(key), "gatekeeper.key")?;
                let key_pem = Zeroizing::new(text(&key_pem, "gatekeeper.key")?);
                Credential::from_pem(provider, &first, &chain, &key_pem)
                    .or_else(|e| bad("gatekeeper.certificate", e.detail().to_owned()))?
            }
        };
        // The rules clients apply to it that need no clock; those that do run at start.
        ekg_core::role::check_profile(&config, &credential).map_err(|e| crate::certificates::credential_error(&e))?;
        if !crate::certificates::RENEWAL_WARNING_DAYS.contains(&g.renewal_warning_days) {
            return bad("gatekeeper.renewal_warning_days", "0 to 365");
        }
        if !crate::certificates::CRL_REFRESH_SECS.contains(&g.crl_refresh_secs) {
            return bad("gatekeeper.crl_refresh_secs", "10 to 86400 seconds");
        }
        let certificates = crate::certificates::CertificateSettings {
            crls: crl_files,
            crl_refresh_secs: g.crl_refresh_secs,
            renewal_warning_secs: g.renewal_warning_days * 24 * 3600,
            reload: std::sync::Arc::default(),
        };
        let legacy = match &g.storage_key {
            Some(path) => Some(storage_key(&read_storage_key(&at(path), path)?)?),
            None => None,
        };
        let storage_keys: Box<dyn StorageKeys> = match (&g.storage_keys, legacy) {
            (Some(_), _) if g.pkcs11.as_ref().is_some_and(|s| s.storage_key_prefix.is_some()) => {
                return bad("gatekeeper.storage_keys", "not with gatekeeper.pkcs11.storage_key_prefix (one place)");
            }
            (None, legacy) if g.pkcs11.as_ref().is_some_and(|s| s.storage_key_prefix.is_some()) => {
                match (&g.pkcs11, &token) {
                    (Some(s), Some(t)) => s
                        .storage_keys(t, legacy)?
                        .map_or_else(|| bad("gatekeeper.pkcs11.storage_key_prefix", "a label prefix"), Ok)?,
                    _ => return bad("gatekeeper.pkcs11", "the token did not open"),
                }
            }
            (Some(dir), legacy) => Box::new(
                crate::custody::EpochKeyFiles::open(&at(dir), legacy)
                    .or_else(|e| bad("gatekeeper.storage_keys", e.to_string()))?,
            ),
            (None, Some(key)) => Box::new(key),
            (None, None) => {
                return bad(
                    "gatekeeper.storage_keys",
                    "a directory for the storage-epoch keys (or storage_key, the single key of earlier releases)",
                );
            }
        };
        if !crate::log::HEAD_INTERVAL_SECS.contains(&g.log_head_interval_secs) {
            return bad("gatekeeper.log_head_interval_secs", "1 to 86400 seconds");
        }
        let log_salt =
            g.log_salt.as_ref().map(|p| log_salt(&read_secret(&at(p), "gatekeeper.log_salt")?)).transpose()?;

        let s = &self.server;
        let listen: SocketAddr = s.listen.parse().or_else(|_| bad("server.listen", "an IP address and port"))?;
        let tls = match (&s.tls_cert, &s.tls_key) {
            (Some(c), Some(k)) => Some(TlsFiles { cert: at(c), key: at(k) }),
            (None, None) => None,
            _ => return bad("server.tls_cert", "tls_cert and tls_key go together"),
        };
        if let Some(files) = &tls {
            crate::tls::acceptor(files)?;
        }
        plain_http_allowed(listen, tls.is_some(), s.allow_plain_http).or_else(|rule| bad("server.listen", rule))?;
        let database = Database::parse(&s.database, &at, listen).or_else(|rule| bad("server.database", rule))?;
        let store_identity = match (&database, &s.store_identity) {
            (Database::Memory, _) => None,
            (_, Some(p)) => Some(at(p)),
            // Beside the storage key (or the epoch keys' directory): kept with the gatekeeper's
            // secrets, not the database.
            (_, None) => match (&g.storage_key, &g.storage_keys) {
                (Some(key), _) => Some(at(key).with_extension("store-identity")),
                (None, Some(dir)) => Some(at(dir).with_extension("store-identity")),
                (None, None) => {
                    return bad("server.store_identity", "a path (no storage key file to put it beside)");
                }
            },
        };
        if !(1..=MAX_TIMEOUT_SECS).contains(&s.store_generation_secs) {
            return bad("server.store_generation_secs", format!("1 to {MAX_TIMEOUT_SECS} seconds"));
        }
        if s.workers > MAX_WORKERS {
            return bad("server.workers", format!("0 ({WORKERS_PER_CORE} per core) to {MAX_WORKERS}"));
        }
        let workers = if s.workers == 0 {
            WORKERS_PER_CORE * std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            s.workers
        };
        if !(1..=MAX_CONNECTIONS).contains(&s.max_connections) {
            return bad("server.max_connections", format!("1 to {MAX_CONNECTIONS}"));
        }
        if !(1..=s.max_connections).contains(&s.max_connections_per_client) {
            return bad("server.max_connections_per_client", "1 to server.max_connections");
        }
        if !(1..=MAX_REQUESTS_PER_CONNECTION).contains(&s.max_requests_per_connection) {
            return bad("server.max_requests_per_connection", format!("1 to {MAX_REQUESTS_PER_CONNECTION}"));
        }
        for (field, v) in [
            ("server.header_timeout_secs", s.header_timeout_secs),
            ("server.idle_timeout_secs", s.idle_timeout_secs),
            ("server.write_timeout_secs", s.write_timeout_secs),
            ("server.body_timeout_secs", s.body_timeout_secs),
            ("server.shutdown_grace_secs", s.shutdown_grace_secs),
            ("server.request_deadline_secs", s.request_deadline_secs),
        ] {
            if !(1..=MAX_TIMEOUT_SECS).contains(&v) {
                return bad(field, format!("1 to {MAX_TIMEOUT_SECS} seconds"));
            }
        }
        if s.max_held_per_sender > MAX_HELD_PER_SENDER {
            return bad("server.max_held_per_sender", format!("0 (no quota) to {MAX_HELD_PER_SENDER}"));
        }
        Ok(Settings {
            provider,
            gatekeeper: config,
            credential,
            storage_keys,
            listen,
            tls,
            database,
            workers,
            allow_plain_http: s.allow_plain_http,
            limits: crate::listener::ConnectionLimits {
                max_connections: s.max_connections,
                max_connections_per_client: s.max_connections_per_client,
                max_requests_per_connection: s.max_requests_per_connection,
                idle_timeout: std::time::Duration::from_secs(s.idle_timeout_secs),
                header_timeout: std::time::Duration::from_secs(s.header_timeout_secs),
                write_timeout: std::time::Duration::from_secs(s.write_timeout_secs),
            },
            body_timeout: std::time::Duration::from_secs(s.body_timeout_secs),
            shutdown_grace: std::time::Duration::from_secs(s.shutdown_grace_secs),
            request_deadline: std::time::Duration::from_secs(s.request_deadline_secs),
            max_held_per_sender: s.max_held_per_sender,
            store_identity,
            adopt_store: false,
            store_generation: std::time::Duration::from_secs(s.store_generation_secs),
            clock: std::sync::Arc::default(),
            certificates,
            log_salt,
            log_head_interval_secs: g.log_head_interval_secs,
            jwks,
        })
    }
}

/// The `[gatekeeper]` key whose value the protocol's form refuses, named, with the form's
/// rule: a flattened form's error carries no position, so each of the section's keys is read
/// alone into the form (a key the form does not have is the server's, not its).
fn protocol_error(text: &str) -> Option<ConfigError> {
    let file: toml::Table = toml::from_str(text).ok()?;
    let section = file.get("gatekeeper")?.as_table()?;
    section.iter().find_map(|(key, value)| {
        let alone = toml::Table::from_iter([(key.clone(), value.clone())]);
        match GatekeeperSettings::deserialize(alone) {
            Err(e) if !e.message().starts_with("unknown field") => {
                Some(ConfigError { field: format!("gatekeeper.{key}"), rule: e.message().to_owned() })
            }
            _ => None,
        }
    })
}

/// The first PEM block (the certificate) and the rest (its chain).
fn split_first_pem(pem: &str) -> (String, String) {
    const END: &str = "-----END CERTIFICATE-----";
    match pem.find(END) {
        Some(i) => {
            let cut = i + END.len();
            (pem[..cut].to_owned(), pem[cut..].to_owned())
        }
        None => (pem.to_owned(), String::new()),
    }
}

/// The storage key's file. The field is a path: a value that looks like the key itself (32
/// or more hex digits and nothing else) is refused without being repeated in the error.
fn read_storage_key(path: &Path, as_written: &Path) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    const FIELD: &str = "gatekeeper.storage_key";
    let written = as_written.to_string_lossy();
    let looks_like_a_key = written.len() >= 32 && written.trim().chars().all(|c| c.is_ascii_hexdigit());
    if looks_like_a_key && !path.exists() {
        return bad(
            FIELD,
            "the path of a file holding the key (64 hex digits, mode 0600), not the key itself; \
             make one with `ekg keys storage-key --out FILE`",
        );
    }
    read_secret(path, FIELD)
}

/// 64 hex digits (surrounding white space ignored).
fn storage_key(bytes: &[u8]) -> Result<StorageKey, ConfigError> {
    let text = std::str::from_utf8(bytes).or_else(|_| bad("gatekeeper.storage_key", "64 hex digits"))?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    hex::decode_to_slice(text.trim(), key.as_mut_slice())
        .or_else(|_| bad("gatekeeper.storage_key", "64 hex digits"))?;
    StorageKey::from_slice(key.as_slice()).map_or_else(|| bad("gatekeeper.storage_key", "64 hex digits"), Ok)
}

/// The log salt: 64 hex digits (surrounding white space ignored).
fn log_salt(bytes: &[u8]) -> Result<ekg_core::audit::LogSalt, ConfigError> {
    const FIELD: &str = "gatekeeper.log_salt";
    let text = std::str::from_utf8(bytes).or_else(|_| bad(FIELD, "64 hex digits"))?;
    let mut salt = Zeroizing::new([0u8; ekg_core::audit::entry::LOG_SALT_LEN]);
    hex::decode_to_slice(text.trim(), salt.as_mut_slice()).or_else(|_| bad(FIELD, "64 hex digits"))?;
    Ok(ekg_core::audit::LogSalt::from_bytes(*salt))
}

/// Reads and checks the configuration at `path`.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let file = FileConfig::read(path)?;
    let dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    file.settings(&dir)
}
