//! `[[token_issuer]]`: the OpenID providers whose access tokens a release request may carry
//! (`docs/protocol.md` §12.5, `docs/server.md`), and where their JWK Sets are fetched from.

use std::collections::BTreeMap;
use std::time::Duration;

use ekg_core::access::token::TokenIssuer;
use ekg_core::role::settings::tokens::TokenIssuerForm;
use serde::Deserialize;

use super::{ConfigError, bad};

/// Default and range of `jwks_refresh_secs`: the least time between two fetches of one
/// issuer's key set (an unknown `kid` fetches again at most this often).
pub const JWKS_REFRESH_SECS_DEFAULT: u64 = 60;
/// See [`JWKS_REFRESH_SECS_DEFAULT`].
pub const JWKS_REFRESH_SECS: core::ops::RangeInclusive<u64> = 1..=86_400;
/// Default and range of `jwks_timeout_secs`: the longest one fetch may take, connection and
/// body included.
pub const JWKS_TIMEOUT_SECS_DEFAULT: u64 = 5;
/// See [`JWKS_TIMEOUT_SECS_DEFAULT`].
pub const JWKS_TIMEOUT_SECS: core::ops::RangeInclusive<u64> = 1..=60;
/// Longest `jwks_uri`.
pub const MAX_JWKS_URI_LEN: usize = ekg_core::role::settings::tokens::MAX_URL_LEN;

/// `[[token_issuer]]` as written: the core's issuer form ([`TokenIssuerForm`], its fields
/// checked by the core's one function) and where the issuer's keys are fetched from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenIssuerSection {
    /// The exact `iss` value.
    pub issuer: String,
    /// The `aud` value naming this gatekeeper (default: `gatekeeper.uri`).
    #[serde(default)]
    pub audience: Option<String>,
    /// Where its JWK Set is: `https://`, or `http://` on a loopback address.
    pub jwks_uri: String,
    /// The recipient domains it is trusted for.
    pub domains: Vec<String>,
    /// `[token_issuer.subjects]`: `sub` = address.
    #[serde(default)]
    pub subjects: BTreeMap<String, String>,
    /// The least time between two fetches of its key set.
    #[serde(default = "default_refresh")]
    pub jwks_refresh_secs: u64,
    /// The longest one fetch may take.
    #[serde(default = "default_timeout")]
    pub jwks_timeout_secs: u64,
}

impl TokenIssuerSection {
    /// The core's form of the issuer's fields.
    pub fn form(&self) -> TokenIssuerForm {
        TokenIssuerForm {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            domains: self.domains.clone(),
            subjects: self.subjects.clone(),
        }
    }
}

fn default_refresh() -> u64 {
    JWKS_REFRESH_SECS_DEFAULT
}
fn default_timeout() -> u64 {
    JWKS_TIMEOUT_SECS_DEFAULT
}

/// Where one issuer's keys are fetched from, and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksSource {
    /// The issuer (`iss`).
    pub issuer: String,
    /// Its JWK Set's URL (checked by [`check_jwks_uri`]).
    pub uri: String,
    /// The least time between two fetches.
    pub refresh: Duration,
    /// The longest one fetch may take.
    pub timeout: Duration,
}

/// A JWK Set URL the server may fetch: the core's rule for an issuer's URLs
/// ([`ekg_core::role::settings::tokens::check_url`]).
pub fn check_jwks_uri(uri: &str) -> Result<(), &'static str> {
    ekg_core::role::settings::tokens::check_url(uri)
}

/// The issuers for the gatekeeper's V28 (the core's one function over their forms) and the
/// key sets' sources, from the sections; `gatekeeper_uri` is the default audience.
pub fn issuers(
    sections: &[TokenIssuerSection],
    gatekeeper_uri: &str,
) -> Result<(Vec<TokenIssuer>, Vec<JwksSource>), ConfigError> {
    let forms: Vec<TokenIssuerForm> = sections.iter().map(TokenIssuerSection::form).collect();
    let issuers = ekg_core::role::settings::tokens::issuers(&forms, gatekeeper_uri)?;
    let mut sources = Vec::new();
    for s in sections {
        check_jwks_uri(&s.jwks_uri).or_else(|rule| bad("token_issuer.jwks_uri", rule))?;
        if !JWKS_REFRESH_SECS.contains(&s.jwks_refresh_secs) {
            return bad("token_issuer.jwks_refresh_secs", "1 to 86400 seconds");
        }
        if !JWKS_TIMEOUT_SECS.contains(&s.jwks_timeout_secs) {
            return bad("token_issuer.jwks_timeout_secs", "1 to 60 seconds");
        }
        sources.push(JwksSource {
            issuer: s.issuer.clone(),
            uri: s.jwks_uri.clone(),
            refresh: Duration::from_secs(s.jwks_refresh_secs),
            timeout: Duration::from_secs(s.jwks_timeout_secs),
        });
    }
    Ok((issuers, sources))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn jwks_uris_are_https_or_loopback_http() {
        for ok in [
            "https://id.example.org/jwks",
            "https://id.example.org:8443/.well-known/jwks.json?x=1",
            "http://127.0.0.1:4000/jwks",
            "http://[::1]:4000/jwks",
            "http://localhost/jwks",
            "HTTP://127.0.0.1/jwks",
        ] {
            assert_eq!(check_jwks_uri(ok), Ok(()), "{ok}");
        }
        for no in [
            "http://id.example.org/jwks",
            "http://10.0.0.1/jwks",
            "http://127.0.0.1.example.org/jwks",
            "http://localhost.example.org/jwks",
            "http://user@127.0.0.1/jwks",
            "https://user@id.example.org/jwks",
            "https:///jwks",
            "https://id.example.org/jwks#k",
            "ftp://id.example.org/jwks",
            "file:///etc/jwks",
            "127.0.0.1/jwks",
            "https://id.example.org/ jwks",
            "",
        ] {
            assert!(check_jwks_uri(no).is_err(), "{no}");
        }
    }

    fn section(toml_text: &str) -> TokenIssuerSection {
        toml::from_str(toml_text).unwrap()
    }

    const BASE: &str = r#"
        issuer = "https://id.example.org"
        jwks_uri = "https://id.example.org/jwks"
        domains = ["Example.org"]
        [subjects]
        bob-client = "bob@example.org"
    "#;

    #[test]
    fn an_issuer_is_read_with_its_defaults() {
        let (issuers, sources) = issuers(&[section(BASE)], "https://gk.example.com").unwrap();
        assert_eq!(issuers[0].audience, "https://gk.example.com");
        assert_eq!(issuers[0].domains, ["example.org"]);
        assert_eq!(issuers[0].subjects["bob-client"].to_string(), "bob@example.org");
        assert_eq!(sources[0].refresh, Duration::from_secs(JWKS_REFRESH_SECS_DEFAULT));
        assert_eq!(sources[0].timeout, Duration::from_secs(JWKS_TIMEOUT_SECS_DEFAULT));
    }

    #[test]
    fn each_bad_field_is_named() {
        let gk = "https://gk.example.com";
        let field = |text: &str| issuers(&[section(text)], gk).unwrap_err().field;
        let with = |line: &str| format!("{line}\n{BASE}");
        assert_eq!(
            field(&BASE.replace("https://id.example.org/jwks", "http://id.example.org/jwks")),
            "token_issuer.jwks_uri"
        );
        assert_eq!(field(&with("jwks_refresh_secs = 0")), "token_issuer.jwks_refresh_secs");
        let plain_http = "issuer = \"http://id.example.org\"";
        assert_eq!(field(&BASE.replace("issuer = \"https://id.example.org\"", plain_http)), "token_issuer.issuer");
        assert_eq!(field(&with("jwks_timeout_secs = 61")), "token_issuer.jwks_timeout_secs");
        assert_eq!(field(&BASE.replace("[\"Example.org\"]", "[\"not a domain\"]")), "token_issuer.domains");
        assert_eq!(field(&BASE.replace("[\"Example.org\"]", "[]")), "token_issuer");
        assert_eq!(field(&BASE.replace("bob@example.org", "bob@example.net")), "token_issuer");
        assert_eq!(field(&BASE.replace("bob@example.org", "not an address")), "token_issuer.subjects");
        let twice = issuers(&[section(BASE), section(BASE)], gk).unwrap_err();
        assert_eq!(twice.field, "token_issuer.issuer");
        let empty_audience = issuers(&[section(&with("audience = \"\""))], gk).unwrap_err();
        assert_eq!(empty_audience.field, "token_issuer");
    }
}
