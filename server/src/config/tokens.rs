//! `[[token_issuer]]`: the OpenID providers whose access tokens a release request may carry
//! (`docs/protocol.md` §12.5, `docs/server.md`), and where their JWK Sets are fetched from.

use std::collections::BTreeMap;
use std::time::Duration;

use ekg_core::EmailAddress;
use ekg_core::access::token::TokenIssuer;
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
pub const MAX_JWKS_URI_LEN: usize = 2048;

/// `[[token_issuer]]` as written.
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

/// A JWK Set URL the server may fetch, or an issuer it may trust: `https://HOST...`, or
/// `http://` to a loopback host
/// (`127.0.0.1`, `[::1]`, `localhost`: tests and a provider on the same machine). No user
/// information, no fragment, printable ASCII.
pub fn check_jwks_uri(uri: &str) -> Result<(), &'static str> {
    const RULE: &str = "an https:// URL, or http:// on 127.0.0.1, [::1] or localhost";
    if uri.is_empty() || uri.len() > MAX_JWKS_URI_LEN || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RULE);
    }
    let (scheme, rest) = uri.split_once("://").ok_or(RULE)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || uri.contains('#') {
        return Err(RULE);
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    match scheme.to_ascii_lowercase().as_str() {
        "https" if !host.is_empty() => Ok(()),
        "http" if matches!(host.to_ascii_lowercase().as_str(), "127.0.0.1" | "::1" | "localhost") => Ok(()),
        _ => Err(RULE),
    }
}

/// The issuers for the gatekeeper's V28 and the key sets' sources, from the sections;
/// `gatekeeper_uri` is the default audience.
pub fn issuers(
    sections: &[TokenIssuerSection],
    gatekeeper_uri: &str,
) -> Result<(Vec<TokenIssuer>, Vec<JwksSource>), ConfigError> {
    if sections.len() > ekg_core::access::token::limits::ISSUERS_MAX {
        return bad("token_issuer", format!("at most {}", ekg_core::access::token::limits::ISSUERS_MAX));
    }
    let (mut issuers, mut sources) = (Vec::new(), Vec::new());
    for s in sections {
        if issuers.iter().any(|i: &TokenIssuer| i.issuer == s.issuer) {
            return bad("token_issuer.issuer", format!("{} is configured twice", s.issuer));
        }
        // The issuer is a URL too (`docs/protocol.md` §12.5.2): https, or http on loopback.
        check_jwks_uri(&s.issuer).or_else(|rule| bad("token_issuer.issuer", rule))?;
        check_jwks_uri(&s.jwks_uri).or_else(|rule| bad("token_issuer.jwks_uri", rule))?;
        if !JWKS_REFRESH_SECS.contains(&s.jwks_refresh_secs) {
            return bad("token_issuer.jwks_refresh_secs", "1 to 86400 seconds");
        }
        if !JWKS_TIMEOUT_SECS.contains(&s.jwks_timeout_secs) {
            return bad("token_issuer.jwks_timeout_secs", "1 to 60 seconds");
        }
        let mut domains = Vec::new();
        for d in &s.domains {
            if EmailAddress::parse(&format!("x@{d}")).is_err() {
                return bad("token_issuer.domains", format!("{d}: a domain of LDH labels"));
            }
            domains.push(d.to_ascii_lowercase());
        }
        let mut subjects = BTreeMap::new();
        for (sub, address) in &s.subjects {
            if sub.is_empty() || sub.len() > ekg_core::access::token::jwt::MAX_NAME_LEN {
                return bad("token_issuer.subjects", "each sub is 1 to 255 octets");
            }
            let a = EmailAddress::parse(address)
                .or_else(|_| bad("token_issuer.subjects", format!("{sub}: {address} is not an address")))?;
            subjects.insert(sub.clone(), a);
        }
        let issuer = TokenIssuer {
            issuer: s.issuer.clone(),
            audience: s.audience.clone().unwrap_or_else(|| gatekeeper_uri.to_owned()),
            domains,
            subjects,
        };
        issuer.validate().or_else(|e| {
            let detail = e.detail().to_owned();
            bad("token_issuer", detail.strip_prefix("token_issuer: ").unwrap_or(&detail))
        })?;
        sources.push(JwksSource {
            issuer: s.issuer.clone(),
            uri: s.jwks_uri.clone(),
            refresh: Duration::from_secs(s.jwks_refresh_secs),
            timeout: Duration::from_secs(s.jwks_timeout_secs),
        });
        issuers.push(issuer);
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
