//! A second provider on `aws-lc-rs` (feature `aws-lc`): AWS-LC's RSA is about 10x faster at
//! signing than `rsa` 0.10 on this machine class (`../shared/notes/crypto-performance.md`).
//!
//! Difference from the default provider: AWS-LC draws OAEP padding and RSA blinding from its
//! own generator, not from the caller's RNG. Outputs stay valid and interoperable, but runs
//! are not reproducible from a seed; use [`super::RustCrypto`] where they must be.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce as AeadNonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrap};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

use super::{CryptoProvider, CryptoRng, GCM_NONCE_LEN, GCM_TAG_LEN, PrivateKey};
use crate::error::{Rejection, Result, reject};
use crate::ids::{Digest, KEY_LEN, OneTimeKey, WrappedKey};

/// The aws-lc-rs provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsLc;

impl CryptoProvider for AwsLc {
    /// aws-lc-rs blinds RSA signatures with its own `SystemRandom`: not deterministic.
    fn deterministic(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "aws-lc-rs"
    }

    fn sha256(&self, data: &[u8]) -> Digest {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Digest(out)
    }

    fn load_private_key(&self, pkcs8_der: &[u8]) -> Result<Box<dyn PrivateKey>> {
        let signing = RsaKeyPair::from_pkcs8(pkcs8_der)
            .map_err(|e| reject(Rejection::InvalidConfiguration, format!("private key: {e}")))?;
        super::check_rsa_bits(signing.public_modulus_len() * 8)?;
        let decrypting = PrivateDecryptingKey::from_pkcs8(pkcs8_der)
            .map_err(|e| reject(Rejection::InvalidConfiguration, format!("private key: {e}")))?;
        let decrypting = OaepPrivateDecryptingKey::new(decrypting)
            .map_err(|_| reject(Rejection::InvalidConfiguration, "private key: not usable for OAEP"))?;
        let spki = signing
            .public_key()
            .as_der()
            .map_err(|_| reject(Rejection::InvalidConfiguration, "public key"))?
            .as_ref()
            .to_vec();
        Ok(Box::new(AwsLcKey { signing, decrypting, spki }))
    }

    fn verify_pkcs1_sha256(&self, spki_der: &[u8], message: &[u8], sig: &[u8]) -> Result<()> {
        let key = PublicEncryptingKey::from_der(spki_der)
            .map_err(|e| reject(Rejection::UnsupportedKey, format!("not an RSA public key: {e}")))?;
        super::check_rsa_bits(key.key_size_bits())?;
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, spki_der)
            .verify(message, sig)
            .map_err(|_| reject(Rejection::BadSignature, "RSA PKCS#1 v1.5 SHA-256"))
    }

    fn oaep_sha256_encrypt(&self, spki_der: &[u8], plaintext: &[u8], _rng: &mut dyn CryptoRng) -> Result<Vec<u8>> {
        let key = PublicEncryptingKey::from_der(spki_der)
            .map_err(|e| reject(Rejection::UnsupportedKey, format!("not an RSA public key: {e}")))?;
        super::check_rsa_bits(key.key_size_bits())?;
        let key = OaepPublicEncryptingKey::new(key).map_err(|_| reject(Rejection::CryptoFailure, "OAEP key"))?;
        let mut out = vec![0u8; key.ciphertext_size()];
        let n = key
            .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
            .map_err(|_| reject(Rejection::CryptoFailure, "OAEP encrypt"))?
            .len();
        out.truncate(n);
        Ok(out)
    }

    fn aes256_gcm_seal(
        &self,
        key: &[u8; KEY_LEN],
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, [u8; GCM_TAG_LEN])> {
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, key).map_err(|_| reject(Rejection::CryptoFailure, "AES key"))?,
        );
        let mut buf = plaintext.to_vec();
        let tag = key
            .seal_in_place_separate_tag(AeadNonce::assume_unique_for_key(*nonce), Aad::from(aad), &mut buf)
            .map_err(|_| reject(Rejection::CryptoFailure, "AES-GCM seal"))?;
        let mut t = [0u8; GCM_TAG_LEN];
        t.copy_from_slice(tag.as_ref());
        Ok((buf, t))
    }

    fn aes256_gcm_open(
        &self,
        key: &[u8; KEY_LEN],
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; GCM_TAG_LEN],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, key).map_err(|_| reject(Rejection::CryptoFailure, "AES key"))?,
        );
        let mut buf = Zeroizing::new(Vec::with_capacity(ciphertext.len() + GCM_TAG_LEN));
        buf.extend_from_slice(ciphertext);
        buf.extend_from_slice(tag);
        let n = key
            .open_in_place(AeadNonce::assume_unique_for_key(*nonce), Aad::from(aad), &mut buf)
            .map_err(|_| reject(Rejection::AuthenticationFailed, "AES-GCM tag"))?
            .len();
        buf.truncate(n);
        Ok(buf)
    }

    fn aes256_kw_wrap(&self, kek: &[u8; KEY_LEN], key: &[u8; KEY_LEN]) -> Result<WrappedKey> {
        let kek = AesKek::new(&AES_256, kek).map_err(|_| reject(Rejection::CryptoFailure, "KEK"))?;
        let mut out = [0u8; KEY_LEN + 8];
        kek.wrap(key, &mut out).map_err(|_| reject(Rejection::CryptoFailure, "key wrap"))?;
        Ok(WrappedKey(out))
    }

    fn aes256_kw_unwrap(&self, kek: &[u8; KEY_LEN], wrapped: &[u8]) -> Result<OneTimeKey> {
        if wrapped.len() != KEY_LEN + 8 {
            return Err(reject(Rejection::KeyUnwrapFailed, "wrapped key length"));
        }
        let kek = AesKek::new(&AES_256, kek).map_err(|_| reject(Rejection::CryptoFailure, "KEK"))?;
        let mut out = Zeroizing::new([0u8; KEY_LEN + 8]);
        let n = kek
            .unwrap(wrapped, out.as_mut_slice())
            .map_err(|_| reject(Rejection::KeyUnwrapFailed, "AES key wrap integrity check"))?
            .len();
        let key: [u8; KEY_LEN] = out
            .get(..n)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| reject(Rejection::KeyUnwrapFailed, "unwrapped length"))?;
        Ok(OneTimeKey::from_bytes(key))
    }
}

struct AwsLcKey {
    signing: RsaKeyPair,
    decrypting: OaepPrivateDecryptingKey,
    spki: Vec<u8>,
}

impl core::fmt::Debug for AwsLcKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AwsLcRsaKey(<redacted>)")
    }
}

impl PrivateKey for AwsLcKey {
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn sign_pkcs1_sha256(&self, message: &[u8], _rng: &mut dyn CryptoRng) -> Result<Vec<u8>> {
        let mut sig = vec![0u8; self.signing.public_modulus_len()];
        // aws-lc-rs takes no caller RNG for RSA signing: the one place an OS RNG is drawn
        // (`CryptoProvider::deterministic` says so).
        #[allow(clippy::disallowed_methods)]
        let os_rng = SystemRandom::new();
        self.signing
            .sign(&signature::RSA_PKCS1_SHA256, &os_rng, message, &mut sig)
            .map_err(|_| reject(Rejection::CryptoFailure, "sign"))?;
        Ok(sig)
    }

    fn oaep_sha256_decrypt(&self, ciphertext: &[u8], _rng: &mut dyn CryptoRng) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; self.decrypting.min_output_size()]);
        let n = self
            .decrypting
            .decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, None)
            .map_err(|_| reject(Rejection::KeyUnwrapFailed, "RSA-OAEP decryption"))?
            .len();
        out.truncate(n);
        Ok(out)
    }
}
