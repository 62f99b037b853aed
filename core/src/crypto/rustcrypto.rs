//! The default provider on RustCrypto crates: `rsa` 0.10, `aes-gcm` 0.11, `aes-kw` 0.3,
//! `sha2` 0.11.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce as GcmNonce, Tag};
use aes_kw::KwAes256;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::{CryptoProvider, CryptoRng, GCM_NONCE_LEN, GCM_TAG_LEN, PrivateKey};
use crate::error::{Rejection, Result, reject};
use crate::ids::{Digest, KEY_LEN, OneTimeKey, WrappedKey};

/// RustCrypto provider (pure Rust, no C).
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCrypto;

fn public_key(spki_der: &[u8]) -> Result<rsa::PublicKey> {
    let key = rsa::PublicKey::from_public_key_der(spki_der)
        .map_err(|e| reject(Rejection::UnsupportedKey, format!("not an RSA public key: {e}")))?;
    super::check_rsa_bits(rsa::traits::PublicKeyParts::size(&key) * 8)?;
    Ok(key)
}

impl CryptoProvider for RustCrypto {
    fn deterministic(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "rustcrypto"
    }

    fn sha256(&self, data: &[u8]) -> Digest {
        Digest(Sha256::digest(data).into())
    }

    fn load_private_key(&self, pkcs8_der: &[u8]) -> Result<Box<dyn PrivateKey>> {
        let key = rsa::PrivateKey::from_pkcs8_der(pkcs8_der)
            .map_err(|e| reject(Rejection::InvalidConfiguration, format!("private key: {e}")))?;
        super::check_rsa_bits(rsa::traits::PublicKeyParts::size(&key) * 8)?;
        let spki = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| reject(Rejection::InvalidConfiguration, format!("public key: {e}")))?
            .into_vec();
        Ok(Box::new(RustCryptoKey { key, spki }))
    }

    fn verify_pkcs1_sha256(&self, spki_der: &[u8], message: &[u8], signature: &[u8]) -> Result<()> {
        public_key(spki_der)?
            .pkcs1v15_verify::<Sha256>(message, signature)
            .map_err(|_| reject(Rejection::BadSignature, "RSA PKCS#1 v1.5 SHA-256"))
    }

    fn oaep_sha256_encrypt(&self, spki_der: &[u8], plaintext: &[u8], rng: &mut dyn CryptoRng) -> Result<Vec<u8>> {
        public_key(spki_der)?
            .oaep_encrypt_with_rng::<Sha256, _>(rng, plaintext)
            .map_err(|e| reject(Rejection::CryptoFailure, format!("OAEP encrypt: {e}")))
    }

    fn aes256_gcm_seal(
        &self,
        key: &[u8; KEY_LEN],
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, [u8; GCM_TAG_LEN])> {
        let cipher = Aes256Gcm::new(key.into());
        let mut buf = plaintext.to_vec();
        let tag = cipher
            .encrypt_inout_detached(&GcmNonce::from(*nonce), aad, buf.as_mut_slice().into())
            .map_err(|_| reject(Rejection::CryptoFailure, "AES-GCM seal"))?;
        Ok((buf, tag.into()))
    }

    fn aes256_gcm_open(
        &self,
        key: &[u8; KEY_LEN],
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; GCM_TAG_LEN],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let cipher = Aes256Gcm::new(key.into());
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        cipher
            .decrypt_inout_detached(&GcmNonce::from(*nonce), aad, buf.as_mut_slice().into(), &Tag::from(*tag))
            .map_err(|_| reject(Rejection::AuthenticationFailed, "AES-GCM tag"))?;
        Ok(buf)
    }

    fn aes256_kw_wrap(&self, kek: &[u8; KEY_LEN], key: &[u8; KEY_LEN]) -> Result<WrappedKey> {
        let kw = KwAes256::new(kek.into());
        let mut out = [0u8; KEY_LEN + 8];
        kw.wrap_key(key, &mut out).map_err(|e| reject(Rejection::CryptoFailure, format!("key wrap: {e}")))?;
        Ok(WrappedKey(out))
    }

    fn aes256_kw_unwrap(&self, kek: &[u8; KEY_LEN], wrapped: &[u8]) -> Result<OneTimeKey> {
        if wrapped.len() != KEY_LEN + 8 {
            return Err(reject(Rejection::KeyUnwrapFailed, "wrapped key length"));
        }
        let kw = KwAes256::new(kek.into());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        kw.unwrap_key(wrapped, out.as_mut_slice())
            .map_err(|_| reject(Rejection::KeyUnwrapFailed, "AES key wrap integrity check"))?;
        Ok(OneTimeKey::from_bytes(*out))
    }
}

struct RustCryptoKey {
    key: rsa::PrivateKey,
    spki: Vec<u8>,
}

impl core::fmt::Debug for RustCryptoKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RsaPrivateKey(<redacted>)")
    }
}

impl PrivateKey for RustCryptoKey {
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn sign_pkcs1_sha256(&self, message: &[u8], rng: &mut dyn CryptoRng) -> Result<Vec<u8>> {
        self.key
            .pkcs1v15_sign_with_rng::<Sha256, _>(rng, message)
            .map_err(|e| reject(Rejection::CryptoFailure, format!("sign: {e}")))
    }

    fn oaep_sha256_decrypt(&self, ciphertext: &[u8], rng: &mut dyn CryptoRng) -> Result<Zeroizing<Vec<u8>>> {
        self.key
            .oaep_decrypt_with_rng::<Sha256, _>(rng, ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| reject(Rejection::KeyUnwrapFailed, "RSA-OAEP decryption"))
    }
}
