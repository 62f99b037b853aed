//! The token issuers' JWK Sets (V28.3, `docs/protocol.md` §12.5.3): fetched at start and
//! again when a token names an unknown `kid` (key rotation), at most once per issuer per
//! `jwks_refresh_secs`; each fetch bounded in time (`jwks_timeout_secs`) and size
//! ([`MAX_JWKS_LEN`]), no redirects, no proxy. One cache for all of the server's workers.
//!
//! A key set that cannot be fetched never fails a request any other way than
//! `token_key_unknown`: the keys fetched before stay in use.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ekg_core::access::token::jwt::MAX_JWKS_LEN;
use ekg_core::access::token::{RsaJwk, TokenKeys, parse_jwks};
use ekg_core::{Error, Rejection};

use crate::config::tokens::JwksSource;

/// What is known of one issuer's key set.
#[derive(Debug, Default)]
struct Held {
    /// The keys of the last fetch that succeeded.
    keys: Vec<RsaJwk>,
    /// When the last fetch was tried (successful or not).
    tried: Option<Instant>,
    /// Why the last fetch failed, if it did.
    failure: Option<String>,
}

#[derive(Debug)]
struct Issuer {
    source: JwksSource,
    agent: ureq::Agent,
    held: Mutex<Held>,
}

/// Every configured issuer's key set, shared by the workers ([`TokenKeys`] for the
/// gatekeeper).
#[derive(Debug, Default)]
pub struct JwksCache {
    issuers: BTreeMap<String, Issuer>,
}

/// The HTTP client for one issuer: its timeout over the whole exchange, no redirects (a
/// redirect could leave the https/loopback rule), no proxy, web PKI roots for https.
fn agent(source: &JwksSource) -> ureq::Agent {
    let crypto = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::WebPki)
        .unversioned_rustls_crypto_provider(crypto)
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(source.timeout))
        .max_redirects(0)
        .proxy(None)
        .tls_config(tls)
        .build()
        .into()
}

/// One fetch of a JWK Set: `200` and at most [`MAX_JWKS_LEN`] octets of a set
/// [`parse_jwks`] takes.
fn fetch(agent: &ureq::Agent, uri: &str) -> Result<Vec<RsaJwk>, String> {
    let mut answer = agent
        .get(uri)
        .header("Accept", "application/jwk-set+json, application/json")
        .call()
        .map_err(|e| format!("{uri}: {e}"))?;
    let status = answer.status().as_u16();
    if status != 200 {
        return Err(format!("{uri}: HTTP {status}"));
    }
    let body = answer
        .body_mut()
        .with_config()
        .limit(MAX_JWKS_LEN as u64)
        .read_to_vec()
        .map_err(|e| format!("{uri}: reading the key set: {e}"))?;
    parse_jwks(&body).map_err(|e| format!("{uri}: {}", e.detail()))
}

impl JwksCache {
    /// A cache for `sources`, nothing fetched yet.
    pub fn new(sources: Vec<JwksSource>) -> JwksCache {
        let issuers = sources
            .into_iter()
            .map(|source| {
                let agent = agent(&source);
                (source.issuer.clone(), Issuer { source, agent, held: Mutex::default() })
            })
            .collect();
        JwksCache { issuers }
    }

    /// Fetches every issuer's key set (at start); the failures, one line each (the server
    /// starts anyway: those issuers' tokens are `token_key_unknown` until a fetch succeeds).
    pub fn fetch_all(&self, now: Instant) -> Vec<String> {
        let mut failures = Vec::new();
        for issuer in self.issuers.values() {
            if let Ok(mut held) = issuer.held.lock() {
                refresh(issuer, &mut held, now);
                if let Some(f) = &held.failure {
                    failures.push(format!("token issuer {}: {f}", issuer.source.issuer));
                }
            }
        }
        failures
    }

    /// [`TokenKeys::key`] at `now`: the key if held; else, if the issuer's last fetch was
    /// tried `jwks_refresh_secs` or more before `now` (or never), a fetch, then the key if
    /// the new set has it.
    pub fn key_at(&self, issuer: &str, kid: &str, now: Instant) -> ekg_core::Result<Vec<u8>> {
        let unknown = |why: String| Error::new(Rejection::TokenKeyUnknown, why);
        let i = self.issuers.get(issuer).ok_or_else(|| unknown(format!("no key set for {issuer}")))?;
        let mut held = i.held.lock().map_err(|_| unknown("the key cache is unavailable".into()))?;
        let find = |held: &Held| held.keys.iter().find(|k| k.kid == kid).map(|k| k.spki_der.clone());
        if let Some(key) = find(&held) {
            return Ok(key);
        }
        let due = held.tried.is_none_or(|t| now.saturating_duration_since(t) >= i.source.refresh);
        if due {
            refresh(i, &mut held, now);
        }
        find(&held).ok_or_else(|| match (&held.failure, due) {
            (Some(f), true) => unknown(format!("{issuer}: no key {kid}; fetching the key set failed: {f}")),
            (_, true) => unknown(format!("{issuer}: no key {kid} in the key set fetched now")),
            (_, false) => unknown(format!(
                "{issuer}: no key {kid} (the key set is fetched again at most once per {}s)",
                i.source.refresh.as_secs()
            )),
        })
    }
}

/// Fetches `issuer`'s set into `held`; a failure keeps the keys held before.
fn refresh(issuer: &Issuer, held: &mut Held, now: Instant) {
    held.tried = Some(now);
    match fetch(&issuer.agent, &issuer.source.uri) {
        Ok(keys) => {
            tracing::info!(issuer = %issuer.source.issuer, keys = keys.len(), "token issuer key set fetched");
            held.keys = keys;
            held.failure = None;
        }
        Err(why) => {
            tracing::warn!(issuer = %issuer.source.issuer, %why, "token issuer key set not fetched");
            held.failure = Some(why);
        }
    }
}

impl TokenKeys for JwksCache {
    fn key(&self, issuer: &str, kid: &str) -> ekg_core::Result<Vec<u8>> {
        self.key_at(issuer, kid, Instant::now())
    }
}

#[cfg(test)]
mod tests;
