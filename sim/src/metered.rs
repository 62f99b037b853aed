//! A crypto provider that counts and times every operation, by the party performing it.
//!
//! The simulator sets the acting [`Role`] before each protocol step; the counts give the
//! private- and public-key operations per party, and the time spent inside the provider
//! gives the share of the run spent outside crypto.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use ekg_core::crypto::{CryptoProvider, CryptoRng, GCM_NONCE_LEN, GCM_TAG_LEN, PrivateKey};
use ekg_core::{Digest, KEY_LEN, OneTimeKey, WrappedKey};
use serde::Serialize;
use zeroize::Zeroizing;

/// Who performs an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A sending user's client.
    Sender,
    /// A gatekeeper.
    Gatekeeper,
    /// A receiving user's client.
    Recipient,
    /// The sender organisation's gateway.
    SenderGateway,
    /// The recipient organisation's gateway.
    RecipientGateway,
    /// The attacker (with a stolen recipient key).
    Attacker,
}

impl Role {
    /// Every role, in report order.
    pub const ALL: [Role; 6] =
        [Role::Sender, Role::Gatekeeper, Role::Recipient, Role::SenderGateway, Role::RecipientGateway, Role::Attacker];

    fn index(self) -> usize {
        self as usize
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Role::Sender => "sender",
            Role::Gatekeeper => "gatekeeper",
            Role::Recipient => "recipient",
            Role::SenderGateway => "sender_gateway",
            Role::RecipientGateway => "recipient_gateway",
            Role::Attacker => "attacker",
        }
    }
}

/// Operation kinds counted.
#[derive(Clone, Copy, Debug)]
enum Op {
    Sign,
    Decrypt,
    Verify,
    Encrypt,
}

/// Operation counts of one role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    /// RSA signatures.
    pub sign: u64,
    /// RSA-OAEP decryptions.
    pub decrypt: u64,
    /// RSA signature verifications.
    pub verify: u64,
    /// RSA-OAEP encryptions.
    pub encrypt: u64,
}

impl OpCounts {
    /// Private-key operations.
    pub fn private(&self) -> u64 {
        self.sign + self.decrypt
    }

    /// Public-key operations.
    pub fn public(&self) -> u64 {
        self.verify + self.encrypt
    }
}

/// The shared counters.
#[derive(Debug)]
pub struct Meter {
    role: AtomicU8,
    counts: [[AtomicU64; 4]; 6],
    nanos: AtomicU64,
}

impl Meter {
    fn new() -> Meter {
        Meter { role: AtomicU8::new(0), counts: Default::default(), nanos: AtomicU64::new(0) }
    }

    fn count(&self, op: Op) {
        let role = usize::from(self.role.load(Ordering::Relaxed));
        if let Some(c) = self.counts.get(role).and_then(|r| r.get(op as usize)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn timed<R>(&self, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let r = f();
        self.nanos.fetch_add(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        r
    }
}

/// The metered provider around another.
#[derive(Debug)]
pub struct Metered {
    inner: &'static dyn CryptoProvider,
    meter: &'static Meter,
}

impl Metered {
    /// Wraps `inner`. Leaked: roles hold `&'static dyn CryptoProvider`; one per run.
    pub fn leak(inner: &'static dyn CryptoProvider) -> &'static Metered {
        let meter: &'static Meter = Box::leak(Box::new(Meter::new()));
        Box::leak(Box::new(Metered { inner, meter }))
    }

    /// Attributes the following operations to `role`.
    pub fn act_as(&self, role: Role) {
        self.meter.role.store(role.index() as u8, Ordering::Relaxed);
    }

    /// Counts so far, by role.
    pub fn counts(&self, role: Role) -> OpCounts {
        let load = |op: Op| {
            self.meter
                .counts
                .get(role.index())
                .and_then(|r| r.get(op as usize))
                .map_or(0, |c| c.load(Ordering::Relaxed))
        };
        OpCounts {
            sign: load(Op::Sign),
            decrypt: load(Op::Decrypt),
            verify: load(Op::Verify),
            encrypt: load(Op::Encrypt),
        }
    }

    /// Private- and public-key operations so far, every role.
    pub fn totals(&self) -> (u64, u64) {
        Role::ALL.iter().map(|r| self.counts(*r)).fold((0, 0), |(p, q), c| (p + c.private(), q + c.public()))
    }

    /// Time spent inside the provider so far, seconds (wall clock).
    pub fn crypto_secs(&self) -> f64 {
        self.meter.nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// The wrapped provider's name.
    pub fn inner_name(&self) -> &'static str {
        self.inner.name()
    }
}

#[derive(Debug)]
struct MeteredKey {
    inner: Box<dyn PrivateKey>,
    meter: &'static Meter,
}

impl PrivateKey for MeteredKey {
    fn public_key_spki(&self) -> &[u8] {
        self.inner.public_key_spki()
    }

    fn sign_pkcs1_sha256(&self, message: &[u8], rng: &mut dyn CryptoRng) -> ekg_core::Result<Vec<u8>> {
        self.meter.count(Op::Sign);
        self.meter.timed(|| self.inner.sign_pkcs1_sha256(message, rng))
    }

    fn oaep_sha256_decrypt(&self, ciphertext: &[u8], rng: &mut dyn CryptoRng) -> ekg_core::Result<Zeroizing<Vec<u8>>> {
        self.meter.count(Op::Decrypt);
        self.meter.timed(|| self.inner.oaep_sha256_decrypt(ciphertext, rng))
    }
}

impl CryptoProvider for Metered {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn deterministic(&self) -> bool {
        self.inner.deterministic()
    }

    fn sha256(&self, data: &[u8]) -> Digest {
        self.meter.timed(|| self.inner.sha256(data))
    }

    fn load_private_key(&self, pkcs8_der: &[u8]) -> ekg_core::Result<Box<dyn PrivateKey>> {
        let inner = self.inner.load_private_key(pkcs8_der)?;
        Ok(Box::new(MeteredKey { inner, meter: self.meter }))
    }

    fn verify_pkcs1_sha256(&self, spki_der: &[u8], message: &[u8], signature: &[u8]) -> ekg_core::Result<()> {
        self.meter.count(Op::Verify);
        self.meter.timed(|| self.inner.verify_pkcs1_sha256(spki_der, message, signature))
    }

    fn oaep_sha256_encrypt(
        &self,
        spki_der: &[u8],
        plaintext: &[u8],
        rng: &mut dyn CryptoRng,
    ) -> ekg_core::Result<Vec<u8>> {
        self.meter.count(Op::Encrypt);
        self.meter.timed(|| self.inner.oaep_sha256_encrypt(spki_der, plaintext, rng))
    }

    fn aes256_gcm_seal(
        &self,
        key: &[u8; KEY_LEN],
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> ekg_core::Result<(Vec<u8>, [u8; GCM_TAG_LEN])> {
        self.meter.timed(|| self.inner.aes256_gcm_seal(key, nonce, aad, plaintext))
    }

    fn aes256_gcm_open(
        &self,
        key: &[u8; KEY_LEN],
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; GCM_TAG_LEN],
    ) -> ekg_core::Result<Zeroizing<Vec<u8>>> {
        self.meter.timed(|| self.inner.aes256_gcm_open(key, nonce, aad, ciphertext, tag))
    }

    fn aes256_kw_wrap(&self, kek: &[u8; KEY_LEN], key: &[u8; KEY_LEN]) -> ekg_core::Result<WrappedKey> {
        self.meter.timed(|| self.inner.aes256_kw_wrap(kek, key))
    }

    fn aes256_kw_unwrap(&self, kek: &[u8; KEY_LEN], wrapped: &[u8]) -> ekg_core::Result<OneTimeKey> {
        self.meter.timed(|| self.inner.aes256_kw_unwrap(kek, wrapped))
    }

    fn fill_random(&self, rng: &mut dyn CryptoRng, out: &mut [u8]) {
        self.inner.fill_random(rng, out);
    }
}
