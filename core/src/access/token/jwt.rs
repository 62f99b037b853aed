//! The compact JWS of a JWT access token (RFC 7515 §7.1, RFC 9068) and RSA keys of a JWK Set
//! (RFC 7517): decoding only, every bound of `docs/protocol.md` §12.5.3 V28.1. Crypto-free:
//! the signature is verified by the caller with the crypto provider.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use der::Encode;
use serde_json::{Map, Value};

use crate::error::{Rejection, Result, reject};

/// Largest decoded header or payload, in octets.
pub const MAX_PART_LEN: usize = 8192;
/// Longest `iss`, `sub`, `jti` or `kid`, in octets.
pub const MAX_NAME_LEN: usize = 255;
/// Most audiences in `aud`.
pub const MAX_AUDIENCES: usize = 16;
/// Largest JWK Set accepted, in octets, and most keys in it.
pub const MAX_JWKS_LEN: usize = 256 * 1024;
/// Most keys of a JWK Set kept.
pub const MAX_JWKS_KEYS: usize = 64;

/// A decoded JWT access token, its signature not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwt {
    /// The header's `kid`.
    pub kid: String,
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `jti`.
    pub jti: String,
    /// `aud`, as a list.
    pub audiences: Vec<String>,
    /// `exp`, Unix seconds.
    pub expires: u64,
    /// `iat`, Unix seconds.
    pub issued_at: u64,
    /// `nbf`, Unix seconds, if present.
    pub not_before: Option<u64>,
    /// Every claim but `iss` and `sub`, as its string values (a string; each string, number or
    /// boolean of an array; a number or boolean as its JSON text). Objects are left out.
    pub claims: BTreeMap<String, Vec<String>>,
    /// What the signature covers: the first two parts and the dot between them.
    pub signing_input: Vec<u8>,
    /// The signature's octets.
    pub signature: Vec<u8>,
}

fn invalid(why: impl Into<String>) -> crate::error::Error {
    reject(Rejection::TokenInvalid, why)
}

fn part(text: &str, what: &str) -> Result<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid(format!("{what}: not base64url without padding")))?;
    if bytes.len() > MAX_PART_LEN {
        return Err(invalid(format!("{what}: over {MAX_PART_LEN} octets")));
    }
    Ok(bytes)
}

fn object(bytes: &[u8], what: &str) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(invalid(format!("{what}: not a JSON object"))),
    }
}

fn name(map: &Map<String, Value>, key: &str) -> Result<String> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_NAME_LEN => Ok(s.clone()),
        _ => Err(invalid(format!("{key}: a string of 1 to {MAX_NAME_LEN} octets is required"))),
    }
}

fn seconds(map: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| invalid(format!("{key}: not a non-negative integer"))),
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Number(n) => vec![n.to_string()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Array(items) => items.iter().filter(|v| !v.is_array() && !v.is_object()).flat_map(strings).collect(),
        Value::Null | Value::Object(_) => Vec::new(),
    }
}

impl Jwt {
    /// V28.1: decodes a compact JWS access token: three base64url parts, header and payload
    /// JSON objects of at most [`MAX_PART_LEN`] octets, `alg` `RS256`, `typ` `at+jwt` (or
    /// `application/at+jwt`), a `kid`; `iss`, `sub`, `jti` strings, `exp` and `iat`, `nbf` if
    /// present, non-negative integers, `aud` a string or 1 to [`MAX_AUDIENCES`] strings
    /// (`token_invalid` otherwise).
    pub fn decode(token: &str) -> Result<Jwt> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("not three dot-separated parts"));
        };
        let header = object(&part(h, "header")?, "header")?;
        let payload = object(&part(p, "payload")?, "payload")?;
        let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid("signature: not base64url without padding"))?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(invalid("alg: only RS256"));
        }
        let typ = header.get("typ").and_then(Value::as_str).map(str::to_ascii_lowercase);
        if !matches!(typ.as_deref(), Some("at+jwt" | "application/at+jwt")) {
            return Err(invalid("typ: at+jwt (RFC 9068 §2.1)"));
        }
        let kid = name(&header, "kid")?;
        let audiences = match payload.get("aud") {
            Some(Value::String(a)) if !a.is_empty() => vec![a.clone()],
            Some(Value::Array(list))
                if (1..=MAX_AUDIENCES).contains(&list.len())
                    && list.iter().all(|a| a.as_str().is_some_and(|s| !s.is_empty())) =>
            {
                list.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            _ => return Err(invalid(format!("aud: a string or 1 to {MAX_AUDIENCES} strings"))),
        };
        let required = |key: &str| seconds(&payload, key)?.ok_or_else(|| invalid(format!("{key} is required")));
        let claims = payload
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "iss" | "sub"))
            .map(|(k, v)| (k.clone(), strings(v)))
            .collect();
        Ok(Jwt {
            kid,
            issuer: name(&payload, "iss")?,
            subject: name(&payload, "sub")?,
            jti: name(&payload, "jti")?,
            audiences,
            expires: required("exp")?,
            issued_at: required("iat")?,
            not_before: seconds(&payload, "nbf")?,
            claims,
            signing_input: format!("{h}.{p}").into_bytes(),
            signature,
        })
    }
}

/// base64url without padding (RFC 7515 §2), as a JWT's parts and a JWK's numbers are written
/// (for issuers in tests and vectors; the gatekeeper only decodes).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One RSA signing key of a JWK Set, as a SubjectPublicKeyInfo the crypto provider takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaJwk {
    /// Its `kid`.
    pub kid: String,
    /// The key, SubjectPublicKeyInfo DER (rsaEncryption).
    pub spki_der: Vec<u8>,
}

#[derive(der::Sequence)]
pub(crate) struct RsaPublicKey<'a> {
    pub(crate) modulus: der::asn1::UintRef<'a>,
    pub(crate) public_exponent: der::asn1::UintRef<'a>,
}

/// The usable keys of a JWK Set (RFC 7517 §5): `kty` `RSA` with a `kid`, `use` absent or
/// `sig`, `alg` absent or `RS256`, a modulus of 2048 to 8192 bits; other keys are skipped.
/// At most [`MAX_JWKS_LEN`] octets and [`MAX_JWKS_KEYS`] usable keys (`token_key_unknown`
/// for a set that is not JSON or over the bounds: no key of it can be trusted).
pub fn parse_jwks(json: &[u8]) -> Result<Vec<RsaJwk>> {
    let bad = |why: &str| reject(Rejection::TokenKeyUnknown, format!("key set: {why}"));
    if json.len() > MAX_JWKS_LEN {
        return Err(bad("over 256 KiB"));
    }
    let set: Value = serde_json::from_slice(json).map_err(|_| bad("not JSON"))?;
    let keys = set.get("keys").and_then(Value::as_array).ok_or_else(|| bad("no keys array"))?;
    let mut out = Vec::new();
    for key in keys {
        let field = |k: &str| key.get(k).and_then(Value::as_str);
        if field("kty") != Some("RSA")
            || !matches!(field("use"), None | Some("sig"))
            || !matches!(field("alg"), None | Some("RS256"))
        {
            continue;
        }
        let (Some(kid), Some(n), Some(e)) = (field("kid"), field("n"), field("e")) else { continue };
        let (Ok(n), Ok(e)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(e)) else { continue };
        if kid.is_empty() || kid.len() > MAX_NAME_LEN || out.iter().any(|k: &RsaJwk| k.kid == kid) {
            continue;
        }
        let Some(spki_der) = spki(&n, &e) else { continue };
        if out.len() == MAX_JWKS_KEYS {
            return Err(bad("over 64 usable keys"));
        }
        out.push(RsaJwk { kid: kid.to_owned(), spki_der });
    }
    Ok(out)
}

/// The SubjectPublicKeyInfo of an RSA key (modulus 2048 to 8192 bits, exponent 3 to 2^32-1
/// and odd), or `None`.
fn spki(n: &[u8], e: &[u8]) -> Option<Vec<u8>> {
    let n = n.get(n.iter().position(|b| *b != 0)?..)?;
    let bits = n.len() * 8 - n.first()?.leading_zeros() as usize;
    let e = e.get(e.iter().position(|b| *b != 0)?..)?;
    if !(2048..=8192).contains(&bits) || e.len() > 4 || e.last().is_none_or(|b| b & 1 == 0) || e == [1] {
        return None;
    }
    let key =
        RsaPublicKey { modulus: der::asn1::UintRef::new(n).ok()?, public_exponent: der::asn1::UintRef::new(e).ok()? }
            .to_der()
            .ok()?;
    let info = spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::RSA_ENCRYPTION,
            parameters: Some(der::asn1::Any::null()),
        },
        subject_public_key: der::asn1::BitString::from_bytes(&key).ok()?,
    };
    info.to_der().ok()
}
