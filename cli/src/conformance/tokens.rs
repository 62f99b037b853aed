//! `ekg conformance server --token-command CMD`: the real-token probes' source
//! (`docs/conformance.md` §2.5). The command prints a fresh access token for bob@example.org's
//! client of an OpenID provider at each run (`sh -c CMD`, as `ekg read --token-command`: at
//! most 30 s and 8 KiB, the token never printed). The issuer's JWK Set is fetched as the
//! issuer serves it: from `--token-jwks`, else through OpenID discovery
//! (`{iss}/.well-known/openid-configuration`, its `jwks_uri`), where `iss` is the first
//! token's (read, not verified: the gatekeeper under test verifies).

use std::io::Read;
use std::time::Duration;

use ekg_core::access::token::jwt::{Jwt, MAX_JWKS_LEN, parse_jwks};
use ekg_fixtures::conformance::TokenSource;
use serde_json::Value;

use crate::client::token;

/// Longest wait for the provider's discovery document or key set.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest discovery document read.
const MAX_DISCOVERY_LEN: u64 = 64 * 1024;

/// The real-token probes' flags (`server` and `planted`).
#[derive(clap::Args, Debug)]
pub struct TokenFlags {
    /// Also run the real-token probes (docs/conformance.md §2.5): `sh -c CMD` prints a fresh
    /// access token of an OpenID provider for bob@example.org's client at each run (at most
    /// 30 s and 8 KiB). The provider's issuer, subject and audience are read from its first
    /// token, its keys fetched by OpenID discovery.
    #[arg(long, value_name = "CMD")]
    pub token_command: Option<String>,
    /// The provider's JWK Set URL, instead of OpenID discovery from the token's issuer.
    #[arg(long, requires = "token_command", value_name = "URL")]
    pub token_jwks: Option<String>,
    /// A claim the command's tokens carry, NAME=VALUE: the probes' entitling mapping requires
    /// it beside the issuer (default: the issuer alone).
    #[arg(long, requires = "token_command", value_name = "NAME=VALUE")]
    pub token_claim: Option<String>,
}

impl TokenFlags {
    /// The provider the flags name (`None`: no `--token-command`).
    pub fn provider(&self) -> Result<Option<Provider>, String> {
        let claim = self.token_claim.as_deref().map(parse_claim).transpose()?;
        self.token_command.as_deref().map(|cmd| Provider::new(cmd, self.token_jwks.as_deref(), claim)).transpose()
    }
}

/// What `--token-command`, `--token-jwks` and `--token-claim` give the probes.
pub struct Provider {
    command: String,
    claim: Option<(String, String)>,
    jwks: Value,
}

/// `NAME=VALUE` of `--token-claim`.
fn parse_claim(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() && name.len() <= 256 && value.len() <= 1024 => {
            Ok((name.to_owned(), value.to_owned()))
        }
        _ => Err(format!("--token-claim {text}: NAME=VALUE (a claim of 1 to 256 and a value of 1 to 1024 characters)")),
    }
}

impl Provider {
    /// Runs the command once, finds the issuer's keys.
    pub fn new(command: &str, jwks_uri: Option<&str>, claim: Option<(String, String)>) -> Result<Provider, String> {
        let first = token::run(command).map_err(|e| format!("--token-command: {e}"))?;
        let jwt =
            Jwt::decode(&first).map_err(|e| format!("--token-command printed no JWT access token ({})", e.code()))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(FETCH_TIMEOUT))
            .max_redirects(0)
            .http_status_as_error(true)
            .build()
            .into();
        let jwks_uri = match jwks_uri {
            Some(u) => u.to_owned(),
            None => {
                let url = format!("{}/.well-known/openid-configuration", jwt.issuer.trim_end_matches('/'));
                let doc: Value = serde_json::from_slice(&fetch(&agent, &url, MAX_DISCOVERY_LEN)?)
                    .map_err(|e| format!("{url}: not JSON ({e}); give the key set with --token-jwks"))?;
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{url}: no jwks_uri; give the key set with --token-jwks"))?
                    .to_owned()
            }
        };
        let bytes = fetch(&agent, &jwks_uri, MAX_JWKS_LEN as u64)?;
        parse_jwks(&bytes).map_err(|e| format!("{jwks_uri}: not a JWK Set of RSA keys ({})", e.detail()))?;
        let jwks = serde_json::from_slice(&bytes).map_err(|e| format!("{jwks_uri}: {e}"))?;
        Ok(Provider { command: command.to_owned(), claim, jwks })
    }

    /// Runs `probes` with a source of fresh tokens from the command.
    pub fn with_source<T>(&self, probes: impl FnOnce(&mut TokenSource<'_>) -> T) -> T {
        let command = self.command.clone();
        let mut next = move || token::run(&command).map(|t| t.to_string()).map_err(|e| e.to_string());
        let mut source = TokenSource {
            next: &mut next,
            jwks: self.jwks.clone(),
            claim: self.claim.clone(),
            now: crate::client::now(),
        };
        probes(&mut source)
    }
}

/// GETs `url`, at most `max` octets.
fn fetch(agent: &ureq::Agent, url: &str, max: u64) -> Result<Vec<u8>, String> {
    let mut answer = agent.get(url).call().map_err(|e| format!("{url}: {e}"))?;
    let mut body = Vec::new();
    answer.body_mut().as_reader().take(max + 1).read_to_end(&mut body).map_err(|e| format!("{url}: {e}"))?;
    if body.len() as u64 > max {
        return Err(format!("{url}: over {max} octets"));
    }
    Ok(body)
}
