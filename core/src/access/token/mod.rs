//! Access tokens at release (V28, `docs/protocol.md` §12.5): an OAuth 2.0 access token in the
//! JWT profile (RFC 9068), carried in the signed ReleaseRequest, verified against the
//! configured issuer's keys and turned into facts for the subject mappings (§12.2).
//!
//! Sans-IO: the issuer's keys come through [`TokenKeys`], which the service implements (it
//! fetches and caches the JWK Set, [`jwt::parse_jwks`] decodes it); `now` is an argument. The
//! `jti` is not checked here: [`VerifiedToken::used`] is the record the release writes, and
//! the store refuses a second one (V28.8, `token_replayed`).
//!
//! The address a token stands for comes only from the configured subject map, (`iss`, `sub`)
//! → address: an `email` claim is a claim like any other (the "nOAuth" class of bugs).

pub mod jwt;

use std::collections::BTreeMap;

use crate::access::policy::mapping::TokenFacts;
use crate::address::EmailAddress;
use crate::crypto::CryptoProvider;
use crate::error::{Rejection, Result, reject};
use crate::time::UnixTime;

pub use jwt::{Jwt, RsaJwk, parse_jwks};

/// Most token issuers a gatekeeper trusts, domains per issuer, and subjects per issuer.
pub mod limits {
    /// Token issuers.
    pub const ISSUERS_MAX: usize = 100;
    /// Domains per issuer.
    pub const DOMAINS_MAX: usize = 100;
    /// Subjects per issuer.
    pub const SUBJECTS_MAX: usize = 10_000;
}

/// An OpenID provider the gatekeeper trusts for some recipient domains (`[[token_issuer]]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenIssuer {
    /// The exact `iss` value.
    pub issuer: String,
    /// The `aud` value naming this gatekeeper.
    pub audience: String,
    /// The recipient domains it is trusted for (lower case, no subdomains).
    pub domains: Vec<String>,
    /// Its subject map: `sub` → address (each in one of its domains).
    pub subjects: BTreeMap<String, EmailAddress>,
}

impl TokenIssuer {
    /// Refuses an issuer no token could be verified under (`invalid_configuration`, naming
    /// the field): an empty `issuer` or `audience`, no domain or more than
    /// [`limits::DOMAINS_MAX`], more than [`limits::SUBJECTS_MAX`] subjects, a subject
    /// mapped to an address outside its domains.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(reject(Rejection::InvalidConfiguration, format!("token_issuer: {why}")));
        if self.issuer.is_empty() || self.issuer.len() > jwt::MAX_NAME_LEN || self.audience.is_empty() {
            return bad("issuer (1 to 255 octets) and audience are required".into());
        }
        if self.domains.is_empty() || self.domains.len() > limits::DOMAINS_MAX {
            return bad(format!("{}: 1 to {} domains", self.issuer, limits::DOMAINS_MAX));
        }
        if self.subjects.len() > limits::SUBJECTS_MAX {
            return bad(format!("{}: at most {} subjects", self.issuer, limits::SUBJECTS_MAX));
        }
        if let Some((sub, a)) = self.subjects.iter().find(|(_, a)| !self.trusted_for(a)) {
            return bad(format!("{}: subject {sub} maps to {a}, outside its domains", self.issuer));
        }
        Ok(())
    }

    /// Whether the issuer is trusted for this address's domain.
    pub fn trusted_for(&self, address: &EmailAddress) -> bool {
        self.domains.iter().any(|d| address.in_domain(d))
    }
}

/// Where the issuers' keys come from: the service's cache of each issuer's JWK Set.
pub trait TokenKeys: Send + Sync + core::fmt::Debug {
    /// The SubjectPublicKeyInfo of `issuer`'s key `kid`. The implementation may fetch the key
    /// set again for an unknown `kid` (at most once per its interval); `token_key_unknown`
    /// when there is no such key or the set cannot be had.
    fn key(&self, issuer: &str, kid: &str) -> Result<Vec<u8>>;
}

/// No issuer keys: every token is `token_key_unknown` (a gatekeeper without token issuers).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTokenKeys;

impl TokenKeys for NoTokenKeys {
    fn key(&self, issuer: &str, _kid: &str) -> Result<Vec<u8>> {
        Err(reject(Rejection::TokenKeyUnknown, format!("no keys of {issuer}")))
    }
}

/// Fixed key sets by issuer (tests, and a service that loads them from files).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaticTokenKeys(pub BTreeMap<String, Vec<RsaJwk>>);

impl TokenKeys for StaticTokenKeys {
    fn key(&self, issuer: &str, kid: &str) -> Result<Vec<u8>> {
        self.0
            .get(issuer)
            .and_then(|keys| keys.iter().find(|k| k.kid == kid))
            .map(|k| k.spki_der.clone())
            .ok_or_else(|| reject(Rejection::TokenKeyUnknown, format!("{issuer} has no key {kid}")))
    }
}

/// The record a release made with a token writes (V28.8): the token's issuer and `jti`, kept
/// until `keep_until` (its `exp` plus the skew: after that, V28.6 refuses the token anyway).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenUse {
    /// `iss`.
    pub issuer: String,
    /// `jti`.
    pub jti: String,
    /// Until when it must be remembered.
    pub keep_until: UnixTime,
}

/// A token whose checks V28.1 to V28.7 passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Its issuer, subject and claims, for the subject mappings.
    pub facts: TokenFacts,
    /// The listed address its subject maps to: the only one served for this request.
    pub address: EmailAddress,
    /// The record the release writes with its own (V28.8).
    pub used: TokenUse,
}

/// What V28 checks a token against.
#[derive(Clone, Copy, Debug)]
pub struct TokenContext<'a> {
    /// The configured issuers.
    pub issuers: &'a [TokenIssuer],
    /// The requester's certificate's addresses that are listed in the ticket (after V25).
    pub listed: &'a [EmailAddress],
    /// The gatekeeper's clock skew (V13's), the leeway on `exp`, `nbf` and `iat`.
    pub skew_secs: u64,
    /// The longest lifetime (`exp` - `iat`) accepted: the ticket lifetime.
    pub max_lifetime_secs: u64,
}

/// V28.1 to V28.7 in order (`docs/protocol.md` §12.5.3): form, issuer, key, signature,
/// audience, time, subject. The first failure is the answer.
pub fn verify(
    provider: &dyn CryptoProvider,
    token: &str,
    context: &TokenContext<'_>,
    keys: &dyn TokenKeys,
    now: UnixTime,
) -> Result<VerifiedToken> {
    // V28.1: form.
    let jwt = Jwt::decode(token)?;
    // V28.2: an issuer configured for a listed domain of the certificate.
    let issuer = context
        .issuers
        .iter()
        .find(|i| i.issuer == jwt.issuer && context.listed.iter().any(|a| i.trusted_for(a)))
        .ok_or_else(|| reject(Rejection::TokenIssuer, format!("{} is not trusted for a listed domain", jwt.issuer)))?;
    // V28.3, V28.4: the key by kid, then the signature.
    let key = keys.key(&issuer.issuer, &jwt.kid)?;
    provider
        .verify_pkcs1_sha256(&key, &jwt.signing_input, &jwt.signature)
        .map_err(|e| reject(Rejection::TokenInvalid, format!("signature: {}", e.detail())))?;
    // V28.5: the audience names this gatekeeper.
    if !jwt.audiences.contains(&issuer.audience)
        && !crate::planted::is(crate::planted::PlantedBug::TokenAudienceUnchecked)
    {
        return Err(reject(Rejection::TokenAudience, format!("aud does not name {}", issuer.audience)));
    }
    // V28.6: time, with the skew as leeway.
    let (now_s, skew) = (now.secs(), context.skew_secs);
    if now_s >= jwt.expires.saturating_add(skew) {
        return Err(reject(Rejection::TokenExpired, format!("exp {}, now {now_s}", jwt.expires)));
    }
    let future = |t: u64| t > now_s.saturating_add(skew);
    if future(jwt.issued_at) || jwt.not_before.is_some_and(future) {
        return Err(reject(Rejection::TokenNotYetValid, format!("iat {} or nbf after now {now_s}", jwt.issued_at)));
    }
    if jwt.expires.saturating_sub(jwt.issued_at) > context.max_lifetime_secs {
        return Err(reject(Rejection::TokenInvalid, "lifetime over the ticket lifetime"));
    }
    // V28.7: (iss, sub) -> a listed address of the certificate.
    let address =
        issuer.subjects.get(&jwt.subject).filter(|a| context.listed.contains(a)).cloned().ok_or_else(|| {
            reject(Rejection::TokenUnbound, "the subject maps to no listed address of the certificate")
        })?;
    let used = TokenUse {
        issuer: jwt.issuer.clone(),
        jti: jwt.jti.clone(),
        keep_until: UnixTime(jwt.expires.saturating_add(skew)),
    };
    let facts = TokenFacts { issuer: jwt.issuer, subject: jwt.subject, claims: jwt.claims };
    Ok(VerifiedToken { facts, address, used })
}

#[cfg(test)]
mod tests;
