//! A PKCS#12 reader (RFC 7292) for identities, small enough to keep every key copy in
//! `Zeroizing` buffers: the MAC (HMAC over SHA-256 or SHA-1 with the PKCS#12 key derivation,
//! RFC 7292 Appendix B) is checked first, then the safe contents are read, decrypted where
//! encrypted (PBES2: PBKDF2 and AES-CBC, as OpenSSL 3 writes by default; the legacy PBES1
//! ciphers of `openssl pkcs12 -legacy` are refused with a hint).

use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Sequence};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

/// What a PKCS#12 file held.
pub struct Pkcs12Identity {
    /// The end entity's certificate (the one the key belongs to).
    pub certificate: Vec<u8>,
    /// The other certificates.
    pub chain: Vec<Vec<u8>>,
    /// The PKCS#8 key.
    pub key: Zeroizing<Vec<u8>>,
}

/// Why a PKCS#12 file could not be read.
#[derive(Debug)]
pub struct Pkcs12Error {
    /// `invalid_identity`, `wrong_passphrase`, `unsupported_pkcs12`.
    pub code: &'static str,
    /// What.
    pub detail: String,
}

fn bad<T>(code: &'static str, detail: impl Into<String>) -> Result<T, Pkcs12Error> {
    Err(Pkcs12Error { code, detail: detail.into() })
}

fn invalid(e: der::Error) -> Pkcs12Error {
    Pkcs12Error { code: "invalid_identity", detail: format!("PKCS#12: {e}") }
}

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
const SHROUDED_KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const X509_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");

/// `ContentInfo ::= SEQUENCE { contentType, content [0] EXPLICIT ANY OPTIONAL }`.
#[derive(Sequence)]
struct ContentInfo {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    content: Option<Any>,
}

#[derive(Sequence)]
struct DigestInfo {
    algorithm: AlgorithmIdentifierOwned,
    digest: OctetString,
}

#[derive(Sequence)]
struct MacData {
    mac: DigestInfo,
    salt: OctetString,
    #[asn1(default = "one")]
    iterations: u32,
}

fn one() -> u32 {
    1
}

#[derive(Sequence)]
struct Pfx {
    version: u8,
    auth_safe: ContentInfo,
    mac_data: Option<MacData>,
}

#[derive(Sequence)]
struct EncryptedContentInfo {
    content_type: ObjectIdentifier,
    algorithm: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    encrypted: Option<OctetString>,
}

#[derive(Sequence)]
struct EncryptedData {
    version: u8,
    content: EncryptedContentInfo,
}

#[derive(Sequence)]
struct SafeBag {
    bag_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    value: Any,
    attributes: Option<der::asn1::SetOfVec<Any>>,
}

#[derive(Sequence)]
struct CertBag {
    cert_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    value: OctetString,
}

#[derive(Sequence)]
struct EncryptedPrivateKeyInfo {
    algorithm: AlgorithmIdentifierOwned,
    data: OctetString,
}

/// RFC 7292 Appendix B.2: `n` bytes of key material of purpose `id` (3: MAC).
fn kdf<D: Digest>(password: &str, salt: &[u8], id: u8, iterations: u32, n: usize, v: usize) -> Zeroizing<Vec<u8>> {
    // The password as a BMPString with its two-byte terminator.
    let mut bmp = Zeroizing::new(Vec::with_capacity(password.len() * 2 + 2));
    for unit in password.encode_utf16() {
        bmp.extend_from_slice(&unit.to_be_bytes());
    }
    bmp.extend_from_slice(&[0, 0]);
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let len = v * src.len().div_ceil(v);
        src.iter().copied().cycle().take(len).collect()
    };
    let mut i = Zeroizing::new(fill(salt));
    i.extend_from_slice(&Zeroizing::new(fill(&bmp)));
    let d = vec![id; v];
    let mut out = Zeroizing::new(Vec::with_capacity(n));
    while out.len() < n {
        let mut a = Zeroizing::new(D::new().chain_update(&d).chain_update(i.as_slice()).finalize().to_vec());
        for _ in 1..iterations {
            a = Zeroizing::new(D::digest(a.as_slice()).to_vec());
        }
        let take = a.len().min(n - out.len());
        out.extend_from_slice(a.get(..take).unwrap_or_default());
        let b = Zeroizing::new(fill(&a));
        let b = b.get(..v).unwrap_or_default();
        for block in i.chunks_mut(v) {
            // block = (block + b + 1) mod 2^(8v)
            let mut carry = 1u16;
            for (x, y) in block.iter_mut().zip(b).rev() {
                let sum = u16::from(*x) + u16::from(*y) + carry;
                *x = (sum & 0xff) as u8;
                carry = sum >> 8;
            }
        }
    }
    out.truncate(n);
    out
}

fn mac_ok(mac: &MacData, password: &str, data: &[u8]) -> Result<bool, Pkcs12Error> {
    use hmac::{KeyInit, Mac};
    let expected = mac.mac.digest.as_bytes();
    let tag = match mac.mac.algorithm.oid {
        SHA256 => {
            let key = kdf::<sha2::Sha256>(password, mac.salt.as_bytes(), 3, mac.iterations, 32, 64);
            let mut h = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key)
                .map_err(|e| Pkcs12Error { code: "invalid_identity", detail: e.to_string() })?;
            h.update(data);
            h.finalize().into_bytes().to_vec()
        }
        SHA1 => {
            let key = kdf::<sha1::Sha1>(password, mac.salt.as_bytes(), 3, mac.iterations, 20, 64);
            let mut h = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&key)
                .map_err(|e| Pkcs12Error { code: "invalid_identity", detail: e.to_string() })?;
            h.update(data);
            h.finalize().into_bytes().to_vec()
        }
        other => return bad("unsupported_pkcs12", format!("MAC digest {other} (SHA-256 or SHA-1 only)")),
    };
    // Constant time: the tag is compared whole.
    Ok(tag.len() == expected.len() && tag.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
}

fn pbes2_decrypt(
    algorithm: &AlgorithmIdentifierOwned,
    password: &str,
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Pkcs12Error> {
    if algorithm.oid != PBES2 {
        return bad(
            "unsupported_pkcs12",
            format!("encryption {} (PBES2 only: re-export with OpenSSL 3 without -legacy)", algorithm.oid),
        );
    }
    let alg_der = algorithm.to_der().map_err(invalid)?;
    let scheme = pkcs5::EncryptionScheme::try_from(alg_der.as_slice()).map_err(invalid)?;
    let mut buf = Zeroizing::new(data.to_vec());
    let len = scheme
        .decrypt_in_place(password, &mut buf)
        .map_err(|e| Pkcs12Error { code: "wrong_passphrase", detail: format!("decryption failed: {e}") })?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// Reads `der` with `password`.
pub fn decode(der: &[u8], password: &str) -> Result<Pkcs12Identity, Pkcs12Error> {
    let pfx = Pfx::from_der(der).map_err(invalid)?;
    if pfx.version != 3 || pfx.auth_safe.content_type != ID_DATA {
        return bad("invalid_identity", "PKCS#12: not a version 3 PFX with id-data content");
    }
    let content =
        pfx.auth_safe.content.ok_or_else(|| Pkcs12Error { code: "invalid_identity", detail: "no content".into() })?;
    let safe = OctetString::from_der(&content.to_der().map_err(invalid)?).map_err(invalid)?;
    match &pfx.mac_data {
        Some(mac) if !mac_ok(mac, password, safe.as_bytes())? => {
            return bad("wrong_passphrase", "the MAC does not verify: wrong passphrase, or a damaged file");
        }
        Some(_) => {}
        None => return bad("unsupported_pkcs12", "no MAC (public-key integrity mode is not supported)"),
    }
    let infos: Vec<ContentInfo> = Vec::from_der(safe.as_bytes()).map_err(invalid)?;
    let (mut certs, mut keys) = (Vec::new(), Vec::<Zeroizing<Vec<u8>>>::new());
    for info in infos {
        let inner =
            info.content.ok_or_else(|| Pkcs12Error { code: "invalid_identity", detail: "empty safe".into() })?;
        let bags_der: Zeroizing<Vec<u8>> = match info.content_type {
            ID_DATA => Zeroizing::new(
                OctetString::from_der(&inner.to_der().map_err(invalid)?).map_err(invalid)?.into_bytes().into_vec(),
            ),
            ID_ENCRYPTED_DATA => {
                let enc = EncryptedData::from_der(&inner.to_der().map_err(invalid)?).map_err(invalid)?;
                let data = enc.content.encrypted.ok_or_else(|| Pkcs12Error {
                    code: "invalid_identity",
                    detail: "encrypted safe without content".into(),
                })?;
                pbes2_decrypt(&enc.content.algorithm, password, data.as_bytes())?
            }
            other => return bad("unsupported_pkcs12", format!("safe of type {other}")),
        };
        let bags: Vec<SafeBag> = Vec::from_der(&bags_der).map_err(invalid)?;
        for bag in bags {
            let value = Zeroizing::new(bag.value.to_der().map_err(invalid)?);
            match bag.bag_id {
                CERT_BAG => {
                    let cert = CertBag::from_der(&value).map_err(invalid)?;
                    if cert.cert_id == X509_CERTIFICATE {
                        certs.push(cert.value.into_bytes().into_vec());
                    }
                }
                SHROUDED_KEY_BAG => {
                    let epki = EncryptedPrivateKeyInfo::from_der(&value).map_err(invalid)?;
                    keys.push(pbes2_decrypt(&epki.algorithm, password, epki.data.as_bytes())?);
                }
                KEY_BAG => keys.push(value),
                _ => {}
            }
        }
    }
    let (Some(key), 1) = (keys.pop(), keys.len() + 1) else {
        return bad("invalid_identity", "PKCS#12: exactly one private key expected");
    };
    // The end entity is the certificate whose public key is the key's.
    let spki = super::provider()
        .load_private_key(&key)
        .map_err(|e| Pkcs12Error { code: "invalid_identity", detail: e.detail().to_owned() })?
        .public_key_spki()
        .to_vec();
    let position = certs.iter().position(|c| {
        x509_cert::Certificate::from_der(c)
            .ok()
            .and_then(|c| c.tbs_certificate().subject_public_key_info().to_der().ok())
            .is_some_and(|s| s == spki)
    });
    let Some(position) = position else {
        return bad("invalid_identity", "PKCS#12: no certificate for the private key");
    };
    let certificate = certs.remove(position);
    Ok(Pkcs12Identity { certificate, chain: certs, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7292 Appendix B.2 with SHA-1 against a known answer (OpenSSL's PKCS12_key_gen
    /// for password "smeg", salt 0A58CF64530D823F, id 1, 1 iteration, 24 bytes).
    #[test]
    fn the_key_derivation_matches_openssl() {
        let salt = [0x0a, 0x58, 0xcf, 0x64, 0x53, 0x0d, 0x82, 0x3f];
        let k = kdf::<sha1::Sha1>("smeg", &salt, 1, 1, 24, 64);
        assert_eq!(hex::encode(k.as_slice()), "8aaae6297b6cb04642ab5b077851284eb7128f1a2a7fbca3");
    }
}
