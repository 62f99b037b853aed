//! The access-token issuers in one form (`docs/protocol.md` §12.5): the server's
//! `[[token_issuer]]` (which also says where the issuer's keys are fetched from) and a
//! vector's `tokenIssuers` (which carries the keys inline) share these fields, checked and
//! turned into the core's [`TokenIssuer`]s by one function, [`issuers`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::SettingsError;
use crate::EmailAddress;
use crate::access::token::{TokenIssuer, jwt, limits};

/// Longest issuer or key-set URL.
pub const MAX_URL_LEN: usize = 2048;

/// A token issuer as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct TokenIssuerForm {
    /// The exact `iss` value: an `https://` URL, or `http://` on a loopback host.
    pub issuer: String,
    /// The `aud` value naming this gatekeeper (default: the gatekeeper's URI).
    #[serde(default)]
    pub audience: Option<String>,
    /// The recipient domains it is trusted for.
    pub domains: Vec<String>,
    /// `sub` = the address it maps to.
    #[serde(default)]
    pub subjects: BTreeMap<String, String>,
}

/// An issuer or key-set URL the gatekeeper may trust or fetch: `https://HOST...`, or
/// `http://` to a loopback host (`127.0.0.1`, `[::1]`, `localhost`: tests and a provider on
/// the same machine). No user information, no fragment, printable ASCII.
pub fn check_url(uri: &str) -> Result<(), &'static str> {
    const RULE: &str = "an https:// URL, or http:// on 127.0.0.1, [::1] or localhost";
    if uri.is_empty() || uri.len() > MAX_URL_LEN || !uri.bytes().all(|b| b.is_ascii_graphic()) {
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

/// The issuers of `forms`, every rule checked once (errors name the server file's fields:
/// `token_issuer.issuer`, `token_issuer.domains`, ...); `default_audience` (the gatekeeper's
/// URI) is the audience of a form that names none. Domains are kept lower-cased.
pub fn issuers<'a>(
    forms: impl IntoIterator<Item = &'a TokenIssuerForm>,
    default_audience: &str,
) -> Result<Vec<TokenIssuer>, SettingsError> {
    let bad = |field: &str, rule: String| SettingsError::new(field, rule);
    let mut issuers: Vec<TokenIssuer> = Vec::new();
    for f in forms {
        if issuers.len() == limits::ISSUERS_MAX {
            return Err(bad("token_issuer", format!("at most {}", limits::ISSUERS_MAX)));
        }
        if issuers.iter().any(|i| i.issuer == f.issuer) {
            return Err(bad("token_issuer.issuer", format!("{} is configured twice", f.issuer)));
        }
        check_url(&f.issuer).map_err(|rule| bad("token_issuer.issuer", rule.to_owned()))?;
        let mut domains = Vec::new();
        for d in &f.domains {
            if EmailAddress::parse(&format!("x@{d}")).is_err() {
                return Err(bad("token_issuer.domains", format!("{d}: a domain of LDH labels")));
            }
            domains.push(d.to_ascii_lowercase());
        }
        let mut subjects = BTreeMap::new();
        for (sub, address) in &f.subjects {
            if sub.is_empty() || sub.len() > jwt::MAX_NAME_LEN {
                return Err(bad("token_issuer.subjects", "each sub is 1 to 255 octets".into()));
            }
            let Ok(a) = EmailAddress::parse(address) else {
                return Err(bad("token_issuer.subjects", format!("{sub}: {address} is not an address")));
            };
            subjects.insert(sub.clone(), a);
        }
        let issuer = TokenIssuer {
            issuer: f.issuer.clone(),
            audience: f.audience.clone().unwrap_or_else(|| default_audience.to_owned()),
            domains,
            subjects,
        };
        issuer.validate().map_err(|e| {
            let detail = e.detail();
            SettingsError::new("token_issuer", detail.strip_prefix("token_issuer: ").unwrap_or(detail))
        })?;
        issuers.push(issuer);
    }
    Ok(issuers)
}
