//! The crypto provider: every primitive the protocol uses, behind one trait.
//!
//! Protocol code calls only [`CryptoProvider`] and [`PrivateKey`], so a second provider
//! (e.g. on aws-lc-rs) is added without touching it. Providers hold no ambient randomness:
//! every operation that needs random bytes takes the caller's RNG.
//!
//! [`pki`] holds what the protocol does with certificates on top of the provider:
//! credentials, trust anchors, path validation, revocation.

#[cfg(feature = "aws-lc")]
mod awslc;
pub mod pki;
mod rustcrypto;

use core::fmt::Debug;

pub use rand_core::CryptoRng;
use zeroize::Zeroizing;

#[cfg(feature = "aws-lc")]
pub use awslc::AwsLc;
pub use rustcrypto::RustCrypto;

use crate::error::Result;
use crate::ids::{Digest, KEY_LEN, OneTimeKey, WrappedKey};

/// AES-GCM nonce length (RFC 5084 recommends 12).
pub const GCM_NONCE_LEN: usize = 12;
/// AES-GCM tag length used by the profile.
pub const GCM_TAG_LEN: usize = 16;

/// The primitives of the EKG profile: SHA-256, RSA PKCS#1 v1.5-SHA256 signatures,
/// RSA-OAEP-SHA256 key transport, AES-256-GCM, AES-256 key wrap (RFC 3394).
pub trait CryptoProvider: Debug + Send + Sync {
    /// A short name (`rustcrypto`, `aws-lc-rs`).
    fn name(&self) -> &'static str;

    /// Whether every random choice the provider makes comes from the caller's RNG, so that
    /// the same seed gives the same bytes. `false` for a provider that draws from the OS (its
    /// RSA blinding, say): outputs then differ between runs (their lengths do not).
    fn deterministic(&self) -> bool;

    /// SHA-256.
    fn sha256(&self, data: &[u8]) -> Digest;

    /// Parses a PKCS#8 RSA private key.
    fn load_private_key(&self, pkcs8_der: &[u8]) -> Result<Box<dyn PrivateKey>>;

    /// Verifies an RSASSA-PKCS1-v1_5 SHA-256 signature of `message` with the RSA key in
    /// `spki_der` (a SubjectPublicKeyInfo).
    fn verify_pkcs1_sha256(&self, spki_der: &[u8], message: &[u8], signature: &[u8]) -> Result<()>;

    /// RSAES-OAEP (SHA-256, MGF1-SHA-256, empty label) encryption to `spki_der`.
    fn oaep_sha256_encrypt(&self, spki_der: &[u8], plaintext: &[u8], rng: &mut dyn CryptoRng) -> Result<Vec<u8>>;

    /// AES-256-GCM encryption with a detached 16-byte tag: `(ciphertext, tag)`.
    fn aes256_gcm_seal(
        &self,
        key: &[u8; KEY_LEN],
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, [u8; GCM_TAG_LEN])>;

    /// AES-256-GCM decryption; fails with `authentication_failed` on a bad tag.
    fn aes256_gcm_open(
        &self,
        key: &[u8; KEY_LEN],
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; GCM_TAG_LEN],
    ) -> Result<Zeroizing<Vec<u8>>>;

    /// AES-256 key wrap (RFC 3394) of a 32-byte key.
    fn aes256_kw_wrap(&self, kek: &[u8; KEY_LEN], key: &[u8; KEY_LEN]) -> Result<WrappedKey>;

    /// AES-256 key unwrap (RFC 3394); fails with `key_unwrap_failed`.
    fn aes256_kw_unwrap(&self, kek: &[u8; KEY_LEN], wrapped: &[u8]) -> Result<OneTimeKey>;

    /// Fills `out` from the caller's RNG (the provider has no RNG of its own).
    fn fill_random(&self, rng: &mut dyn CryptoRng, out: &mut [u8]) {
        rng.fill_bytes(out);
    }
}

/// An RSA private key loaded by a provider. Its secret never leaves it.
pub trait PrivateKey: Debug + Send + Sync {
    /// The matching public key as SubjectPublicKeyInfo DER.
    fn public_key_spki(&self) -> &[u8];

    /// RSASSA-PKCS1-v1_5 SHA-256 signature of `message` (blinded with `rng`).
    fn sign_pkcs1_sha256(&self, message: &[u8], rng: &mut dyn CryptoRng) -> Result<Vec<u8>>;

    /// RSAES-OAEP-SHA256 decryption (blinded with `rng`); fails with `key_unwrap_failed`.
    fn oaep_sha256_decrypt(&self, ciphertext: &[u8], rng: &mut dyn CryptoRng) -> Result<Zeroizing<Vec<u8>>>;
}

/// Smallest RSA modulus the profile accepts, in bits.
pub const RSA_BITS_MIN: usize = 2048;
/// Largest RSA modulus the profile accepts, in bits.
pub const RSA_BITS_MAX: usize = 8192;

/// The profile's key-size rule, the same for every provider (`unsupported_key`, step V7).
pub(crate) fn check_rsa_bits(bits: usize) -> Result<()> {
    if !(RSA_BITS_MIN..=RSA_BITS_MAX).contains(&bits) {
        return Err(crate::error::reject(
            crate::error::Rejection::UnsupportedKey,
            format!("RSA modulus of {bits} bits"),
        ));
    }
    Ok(())
}

/// The default provider.
pub fn default_provider() -> &'static dyn CryptoProvider {
    &RustCrypto
}
