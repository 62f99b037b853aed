//! What `ekg send`, `ekg read` and `ekg inspect` share: the client configuration (trust
//! anchors, gatekeepers by domain, extra TLS roots), identities ([`identity`]), and the HTTP
//! binding's client side (`docs/protocol.md` §8): POST the DER, take the `200` body, or turn
//! the problem body into one line with its code.

pub mod identity;
pub mod logged;
pub mod pkcs12;
pub mod token;

use std::path::{Path, PathBuf};

/// The client side of the HTTP binding (requests, bounded reads, refusals): `ekg-binding`'s.
pub use ekg_binding::client::GatekeeperClient;
use ekg_core::crypto::pki::{PathLimits, TrustAnchors};
use ekg_core::crypto::{AwsLc, CryptoProvider};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::Deserialize;

/// The provider the client commands use.
pub fn provider() -> &'static dyn CryptoProvider {
    &AwsLc
}

/// A client command's failure: a stable code and one line for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// The code (a rejection code, a gatekeeper's problem code, or the client's own).
    pub code: String,
    /// The line.
    pub detail: String,
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for ClientError {}

impl From<ekg_core::Error> for ClientError {
    fn from(e: ekg_core::Error) -> Self {
        ClientError { code: e.code().to_owned(), detail: e.detail().to_owned() }
    }
}

impl From<ekg_binding::client::Failure> for ClientError {
    fn from(e: ekg_binding::client::Failure) -> Self {
        ClientError { code: e.code, detail: e.detail }
    }
}

impl From<crate::mail::MailError> for ClientError {
    fn from(e: crate::mail::MailError) -> Self {
        ClientError { code: e.code.to_owned(), detail: e.detail }
    }
}

/// A [`ClientError`] with `code`.
pub fn fail<T>(code: &str, detail: impl Into<String>) -> Result<T, ClientError> {
    Err(ClientError { code: code.to_owned(), detail: detail.into() })
}

/// Largest client configuration file, and largest PEM file it names.
pub const MAX_CONFIG_LEN: u64 = 1024 * 1024;

/// Parses a TOML file the user gave; a refusal is `invalid_configuration` in one line: the
/// file, the line and column, and the parser's message (its multi-line excerpt left out).
pub fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ClientError> {
    toml::from_str(text).or_else(|e: toml::de::Error| {
        let at = e.span().map_or_else(String::new, |span| {
            let before = text.get(..span.start).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(", line {line}, column {column}")
        });
        let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        fail("invalid_configuration", format!("{}{at}: {message}", path.display()))
    })
}

/// Reads at most `limit` bytes of `path` (`-` is standard input); more is `input_too_large`.
pub fn read_input(path: &Path, limit: usize) -> Result<Vec<u8>, ClientError> {
    use std::io::Read;
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let result = if path == Path::new("-") {
        std::io::stdin().lock().take(cap).read_to_end(&mut out)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(cap).read_to_end(&mut out))
    };
    result.or_else(|e| fail("io_error", format!("{}: {e}", path.display())))?;
    if out.len() > limit {
        return fail("input_too_large", format!("{}: larger than {limit} bytes", path.display()));
    }
    Ok(out)
}

/// Writes `bytes` whole to `path` (`-`: standard output), or nothing: a file is written
/// under a temporary name (0600) and renamed.
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    use std::io::Write;
    let io = |e: std::io::Error| ClientError { code: "io_error".into(), detail: format!("{}: {e}", path.display()) };
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        return out.write_all(bytes).and_then(|()| out.flush()).map_err(io);
    }
    let tmp = path.with_extension(format!("ekg-{}.tmp", std::process::id()));
    let written = ekg_server::files::write_secret(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// What `ekg send`, `ekg read` and `ekg list-agent` are all asked: who you are, and the
/// client configuration, whose trust anchors `--anchors` replaces.
#[derive(clap::Args, Debug)]
pub struct ClientFlags {
    /// The identity.
    #[command(flatten)]
    pub identity: identity::IdentityArgs,
    /// The client configuration (TOML: anchors, gatekeepers by domain, TLS roots).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Trust anchors (PEM), instead of the configuration's.
    #[arg(long)]
    pub anchors: Vec<PathBuf>,
}

/// The client configuration file (TOML; `docs/mail.md`).
///
/// Where a flag and the file say the same thing, the flag decides, and only these methods
/// combine them: [`anchors`](Self::anchors) (`--anchors` replaces the file's list),
/// [`gatekeeper`](Self::gatekeeper) (`--gatekeeper` replaces the file's entry for the
/// domain), [`token_command`](Self::token_command) (`--token-command` replaces the file's);
/// [`require_log`](Self::require_log) is on when either the flag or the file turns it on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// PEM files of the trust anchors (the federation's CAs).
    #[serde(default)]
    pub anchors: Vec<PathBuf>,
    /// PEM files of extra roots for `https` gatekeepers (besides the public web roots).
    #[serde(default)]
    pub tls_roots: Vec<PathBuf>,
    /// The gatekeeper URI of each sender domain.
    #[serde(default)]
    pub gatekeepers: std::collections::BTreeMap<String, String>,
    /// `ekg read` refuses a ticket its gatekeeper's issuance log does not hold, as
    /// `--require-log` does (`docs/mail.md`).
    #[serde(default)]
    pub require_log: bool,
    /// `ekg read` runs this command (`sh -c`) and puts what it prints, an access token, in
    /// the release request, as `--token-command` does (`docs/mail.md`).
    #[serde(default)]
    pub token_command: Option<String>,
    /// The directory relative paths start from (the file's).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl ClientConfig {
    /// Reads `path`, or the empty configuration.
    pub fn load(path: Option<&Path>) -> Result<ClientConfig, ClientError> {
        let Some(path) = path else { return Ok(ClientConfig::default()) };
        let bytes = read_input(path, MAX_CONFIG_LEN as usize)?;
        let text = String::from_utf8(bytes).or_else(|_| fail("invalid_configuration", "not UTF-8"))?;
        let mut c: ClientConfig = parse_toml(path, &text)?;
        c.dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok(c)
    }

    fn at(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.dir.join(p) }
    }

    /// The trust anchors: `--anchors` files if given, else the configuration's.
    pub fn anchors(&self, flag: &[PathBuf]) -> Result<TrustAnchors, ClientError> {
        let files: Vec<PathBuf> =
            if flag.is_empty() { self.anchors.iter().map(|p| self.at(p)).collect() } else { flag.to_vec() };
        if files.is_empty() {
            return fail("invalid_configuration", "no trust anchors: give --anchors FILE or a --config with anchors");
        }
        let mut pem = String::new();
        for f in &files {
            let bytes = read_input(f, MAX_CONFIG_LEN as usize)?;
            pem.push_str(&String::from_utf8_lossy(&bytes));
            pem.push('\n');
        }
        Ok(TrustAnchors::from_pem(provider(), &pem, PathLimits::default())?)
    }

    /// The gatekeeper URI for `domain`: `--gatekeeper` if given, else the configuration's
    /// for the domain (`no_gatekeeper` if neither).
    pub fn gatekeeper(&self, flag: Option<&str>, domain: &str) -> Result<String, ClientError> {
        if let Some(uri) = flag {
            return Ok(uri.to_owned());
        }
        match self.gatekeepers.iter().find(|(d, _)| d.eq_ignore_ascii_case(domain)) {
            Some((_, uri)) => Ok(uri.clone()),
            None => {
                fail("no_gatekeeper", format!("no --gatekeeper and no gatekeeper for {domain} in the configuration"))
            }
        }
    }

    /// Whether tickets must be in their gatekeeper's log: `--require-log` or the file's
    /// `require_log = true`.
    pub fn require_log(&self, flag: bool) -> bool {
        flag || self.require_log
    }

    /// The access token command: `--token-command` if given, else the file's.
    pub fn token_command<'a>(&'a self, flag: Option<&'a str>) -> Option<&'a str> {
        flag.or(self.token_command.as_deref())
    }

    /// The HTTP client: public web roots and the configured extra roots, TLS by aws-lc-rs.
    pub fn http(&self) -> Result<GatekeeperClient, ClientError> {
        let mut extra = Vec::new();
        for f in &self.tls_roots {
            let bytes = read_input(&self.at(f), MAX_CONFIG_LEN as usize)?;
            for item in ureq::tls::parse_pem(&bytes) {
                if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
                    extra.push(c.to_owned());
                }
            }
        }
        Ok(GatekeeperClient::new(extra))
    }
}

/// An RNG seeded from the operating system (every protocol random value comes from it).
pub fn os_rng() -> Result<ChaCha20Rng, ClientError> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice()).or_else(|e| fail("crypto_failure", format!("OS RNG: {e}")))?;
    Ok(ChaCha20Rng::from_seed(*seed))
}

/// The wall clock.
pub fn now() -> ekg_core::UnixTime {
    ekg_server::service::wall_clock()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_wins_over_the_configuration_and_require_log_is_either() {
        let file = ClientConfig {
            gatekeepers: [("example.com".to_owned(), "https://file/".to_owned())].into(),
            require_log: true,
            token_command: Some("file-cmd".to_owned()),
            ..ClientConfig::default()
        };
        assert_eq!(file.gatekeeper(Some("https://flag/"), "example.com").unwrap(), "https://flag/");
        assert_eq!(file.gatekeeper(None, "EXAMPLE.com").unwrap(), "https://file/");
        assert_eq!(file.gatekeeper(None, "example.org").unwrap_err().code, "no_gatekeeper");
        assert_eq!(file.token_command(Some("flag-cmd")), Some("flag-cmd"));
        assert_eq!(file.token_command(None), Some("file-cmd"));
        assert!(file.require_log(false));
        let empty = ClientConfig::default();
        assert!(empty.require_log(true) && !empty.require_log(false));
        assert_eq!(empty.token_command(None), None);
    }
}
