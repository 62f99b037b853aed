//! The gatekeeper's keys in a PKCS#11 token (`cryptoki`; tested on SoftHSM2): the signing
//! key (CKM_SHA256_RSA_PKCS in the token) and the storage-epoch keys (AES-256 token objects,
//! CKM_AES_KEY_WRAP_PAD, destroyed with C_DestroyObject). The OAEP-SHA256 delivery wrap stays
//! in software: it uses the recipient's public key, and SoftHSM2 has OAEP with SHA-1 only.
//!
//! Sessions: a PKCS#11 session is not thread-safe, and the server has workers. [`Token`]
//! keeps a pool of sessions behind a lock; an operation takes one (or opens one, logged in
//! through the token's shared login state), uses it alone, and puts it back.
//!
//! A one-time key is wrapped by importing it as a session object (not on the token,
//! extractable), wrapping it under the epoch key with C_WrapKey, and destroying the session
//! object; unwrapped by C_UnwrapKey into a session object whose value is read, then
//! destroyed. Its bytes pass through the token's memory, never onto the token.

use std::path::Path;
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use ekg_core::crypto::{CryptoProvider, CryptoRng, PrivateKey};
use ekg_core::role::{StorageKey, StorageKeys, epoch_destroyed, unwrap_by_epoch};
use ekg_core::{KEY_LEN, OneTimeKey, StorageEpoch, StoredKey, WrappedKey};
use ekg_core::{Rejection, Result};
use zeroize::Zeroizing;

/// Most sessions kept open in the pool (more are opened under load and closed after use).
pub const POOL_MAX: usize = 16;

fn failed(what: impl core::fmt::Display) -> ekg_core::Error {
    ekg_core::Error::new(Rejection::CryptoFailure, format!("pkcs11: {what}"))
}

/// One loaded and initialised module per path for the whole process: a module is
/// initialised once per process, and dropping a second handle on it would finalise it under
/// the first one's sessions.
fn module_of(path: &Path) -> Result<Pkcs11> {
    static MODULES: std::sync::OnceLock<Mutex<Vec<(std::path::PathBuf, Pkcs11)>>> = std::sync::OnceLock::new();
    let mut modules = MODULES.get_or_init(Mutex::default).lock().map_err(|_| failed("module lock poisoned"))?;
    if let Some((_, m)) = modules.iter().find(|(p, _)| p == path) {
        return Ok(m.clone());
    }
    let pkcs11 = Pkcs11::new(path).map_err(|e| failed(format_args!("{}: {e}", path.display())))?;
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(failed(format_args!("C_Initialize: {e}"))),
    }
    modules.push((path.to_path_buf(), pkcs11.clone()));
    Ok(pkcs11)
}

/// A logged-in token and its pool of sessions.
pub struct Token {
    pkcs11: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    pool: Mutex<Vec<Session>>,
}

impl core::fmt::Debug for Token {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Token").field("slot", &self.slot).field("pin", &"<redacted>").finish()
    }
}

impl Token {
    /// Loads `module`, finds the token labelled `label` and logs in as the user with `pin`.
    pub fn open(module: &Path, label: &str, pin: &str) -> Result<Arc<Token>> {
        let pkcs11 = module_of(module)?;
        let slot = pkcs11
            .get_slots_with_token()
            .map_err(failed)?
            .into_iter()
            .find(|s| pkcs11.get_token_info(*s).is_ok_and(|i| i.label() == label))
            .ok_or_else(|| failed(format_args!("no token labelled {label:?} in {}", module.display())))?;
        let token = Arc::new(Token { pkcs11, slot, pin: AuthPin::from(pin.to_owned()), pool: Mutex::default() });
        token.with_session(|_| Ok(()))?;
        Ok(token)
    }

    /// Runs `f` on a session of its own.
    ///
    /// One call at a time per process: SoftHSM 2.6.1 was seen to invalidate a session
    /// object's handle (`CKR_OBJECT_HANDLE_INVALID` on C_GetAttributeValue right after
    /// C_UnwrapKey) when sessions of several threads create and destroy session objects at
    /// once (`server/tests/pkcs11.rs` failed one run in two); serialised, it did not in 10.
    pub fn with_session<R>(&self, f: impl FnOnce(&Session) -> cryptoki::error::Result<R>) -> Result<R> {
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _one = ONE_AT_A_TIME.lock().map_err(|_| failed("the token lock is poisoned"))?;
        let pooled = self.pool.lock().map_err(|_| failed("the session pool's lock is poisoned"))?.pop();
        let session = match pooled {
            Some(s) => s,
            None => {
                let s = self.pkcs11.open_rw_session(self.slot).map_err(failed)?;
                match s.login(UserType::User, Some(&self.pin)) {
                    Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                    Err(e) => return Err(failed(format_args!("C_Login: {e}"))),
                }
                s
            }
        };
        let out = f(&session).map_err(failed);
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() < POOL_MAX
        {
            pool.push(session);
        }
        out
    }

    fn find(session: &Session, class: ObjectClass, label: &str) -> cryptoki::error::Result<Option<ObjectHandle>> {
        Ok(session
            .find_objects(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())])?
            .first()
            .copied())
    }
}

/// The storage-epoch keys as AES-256 objects of a token, labelled `PREFIX` and the epoch
/// number; and the legacy key (software), if any.
#[derive(Debug)]
pub struct TokenEpochKeys {
    token: Arc<Token>,
    prefix: String,
    legacy: Option<StorageKey>,
    /// Serialises the creation of epoch keys within this process.
    creating: Mutex<()>,
}

impl TokenEpochKeys {
    /// Epoch keys labelled `prefix` and the epoch number in `token`.
    pub fn new(token: Arc<Token>, prefix: impl Into<String>, legacy: Option<StorageKey>) -> Self {
        TokenEpochKeys { token, prefix: prefix.into(), legacy, creating: Mutex::default() }
    }

    fn label(&self, n: u64) -> String {
        format!("{}{n}", self.prefix)
    }

    fn epoch_key(&self, session: &Session, n: u64, create: bool) -> cryptoki::error::Result<Option<ObjectHandle>> {
        let label = self.label(n);
        if let Some(k) = Token::find(session, ObjectClass::SECRET_KEY, &label)? {
            return Ok(Some(k));
        }
        if !create {
            return Ok(None);
        }
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen((KEY_LEN as u64).into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Label(label.into_bytes()),
        ];
        session.generate_key(&Mechanism::AesKeyGen, &template).map(Some)
    }
}

impl StorageKeys for TokenEpochKeys {
    fn wrap(&self, _: &dyn CryptoProvider, n: u64, key: &OneTimeKey, _: &mut dyn CryptoRng) -> Result<StoredKey> {
        let _creating = self.creating.lock().map_err(|_| failed("lock poisoned"))?;
        let wrapped = self.token.with_session(|s| {
            let kek = self.epoch_key(s, n, true)?.ok_or(P11Error::NullFunctionPointer)?;
            let object = s.create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Value(key.expose().to_vec()),
            ])?;
            let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, kek, object);
            s.destroy_object(object)?;
            wrapped
        })?;
        let wrapped: [u8; KEY_LEN + 8] =
            wrapped.try_into().map_err(|w: Vec<u8>| failed(format_args!("a wrapped key of {} bytes", w.len())))?;
        Ok(StoredKey { epoch: StorageEpoch::Numbered(n), wrapped: WrappedKey(wrapped) })
    }

    fn unwrap(&self, p: &dyn CryptoProvider, stored: &StoredKey) -> Result<OneTimeKey> {
        unwrap_by_epoch(p, self.legacy.as_ref(), stored, |n| {
            let value = self.token.with_session(|s| {
                let Some(kek) = self.epoch_key(s, n, false)? else { return Ok(None) };
                let template = [
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Token(false),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                ];
                let object = match s.unwrap_key(&Mechanism::AesKeyWrapPad, kek, &stored.wrapped.0, &template) {
                    Ok(o) => o,
                    Err(P11Error::Pkcs11(RvError::WrappedKeyInvalid | RvError::EncryptedDataInvalid, _)) => {
                        return Ok(Some(None));
                    }
                    Err(e) => return Err(e),
                };
                let attributes = s.get_attributes(object, &[AttributeType::Value]);
                s.destroy_object(object)?;
                let value = attributes?.into_iter().find_map(|a| match a {
                    Attribute::Value(v) => Some(Zeroizing::new(v)),
                    _ => None,
                });
                Ok(Some(value))
            })?;
            match value {
                None => Err(epoch_destroyed(stored.epoch)),
                Some(None) => Err(ekg_core::Error::new(Rejection::KeyUnwrapFailed, "the stored key does not unwrap")),
                Some(Some(v)) => OneTimeKey::from_slice(&v).ok_or_else(|| failed("an unwrapped key is not 32 bytes")),
            }
        })
    }

    fn destroy_epochs_before(&self, before: u64) -> Result<Vec<u64>> {
        let listed = self.epochs()?;
        let mut gone = Vec::new();
        for n in listed.into_iter().take_while(|n| *n < before) {
            self.token.with_session(|s| match self.epoch_key(s, n, false)? {
                Some(k) => s.destroy_object(k),
                None => Ok(()),
            })?;
            gone.push(n);
        }
        Ok(gone)
    }

    fn epochs(&self) -> Result<Vec<u64>> {
        let labels = self.token.with_session(|s| {
            let objects = s.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])?;
            let mut labels = Vec::new();
            for o in objects {
                for a in s.get_attributes(o, &[AttributeType::Label])? {
                    if let Attribute::Label(l) = a {
                        labels.push(l);
                    }
                }
            }
            Ok(labels)
        })?;
        let mut out: Vec<u64> = labels
            .iter()
            .filter_map(|l| core::str::from_utf8(l).ok()?.strip_prefix(self.prefix.as_str())?.parse().ok())
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// The gatekeeper's signing key as an RSA private key object of a token: RSASSA-PKCS1-v1_5
/// with SHA-256 computed in the token.
pub struct TokenSigningKey {
    token: Arc<Token>,
    label: String,
    spki: Vec<u8>,
}

impl core::fmt::Debug for TokenSigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokenSigningKey").field("label", &self.label).finish()
    }
}

impl TokenSigningKey {
    /// The private key labelled `label`, whose public key is `spki` (the certificate's: the
    /// credential refuses a key that does not match it).
    pub fn new(token: Arc<Token>, label: &str, spki: Vec<u8>) -> Result<Self> {
        token
            .with_session(|s| Token::find(s, ObjectClass::PRIVATE_KEY, label))?
            .ok_or_else(|| failed(format_args!("no private key labelled {label:?} in the token")))?;
        Ok(TokenSigningKey { token, label: label.to_owned(), spki })
    }
}

impl PrivateKey for TokenSigningKey {
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn sign_pkcs1_sha256(&self, message: &[u8], _: &mut dyn CryptoRng) -> Result<Vec<u8>> {
        self.token.with_session(|s| {
            let key = Token::find(s, ObjectClass::PRIVATE_KEY, &self.label)?.ok_or(P11Error::NullFunctionPointer)?;
            s.sign(&Mechanism::Sha256RsaPkcs, key, message)
        })
    }

    fn oaep_sha256_decrypt(&self, _: &[u8], _: &mut dyn CryptoRng) -> Result<Zeroizing<Vec<u8>>> {
        Err(failed("the gatekeeper's token key does not decrypt (nothing is encrypted to a gatekeeper)"))
    }
}
