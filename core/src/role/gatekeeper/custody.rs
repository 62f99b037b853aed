//! Custody of the storage keys: who wraps a one-time key for the store, unwraps it for a
//! release, and destroys the key of a storage epoch (`docs/protocol.md`, "Key custody").
//!
//! The core decides *which* epoch a key belongs to ([`StorageEpoch::of`] the issuance time)
//! and *when* an epoch's key may go ([`destroyable_before`]); a [`StorageKeys`] does the
//! operations, wherever its keys live: [`StorageKey`] (one key, no epochs: the releases
//! before epochs, the simulator and the vectors), [`EpochKeyRing`] (epoch keys in memory),
//! and the server's files and PKCS#11 token (crate `ekg-server`). The core does no I/O: an
//! implementation that does (files, a token) is the caller's.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::config::StorageKey;
use crate::crypto::{CryptoProvider, CryptoRng};
use crate::error::{Rejection, Result, reject};
use crate::ids::{KEY_LEN, OneTimeKey, StorageEpoch, StoredKey};
use crate::ledger::round::storage_failed;
use crate::ledger::{LedgerTypes, Store};
use crate::time::UnixTime;

/// The gatekeeper's storage keys, whatever holds them. Shared by every worker thread.
pub trait StorageKeys: Send + Sync + core::fmt::Debug {
    /// Wraps `key` under the storage key of `epoch` (creating that key, from `rng`, if it
    /// does not exist yet: durably, before it wraps anything). An implementation without
    /// epochs wraps under its one key and says so in the [`StoredKey`].
    fn wrap(
        &self,
        provider: &dyn CryptoProvider,
        epoch: u64,
        key: &OneTimeKey,
        rng: &mut dyn CryptoRng,
    ) -> Result<StoredKey>;

    /// Unwraps a stored key: `key_destroyed` if its epoch's key was destroyed (the key
    /// cannot be had from anywhere any more), `key_unwrap_failed` if it does not unwrap.
    fn unwrap(&self, provider: &dyn CryptoProvider, stored: &StoredKey) -> Result<OneTimeKey>;

    /// Destroys the key of every epoch before `epoch`; returns the epochs destroyed.
    fn destroy_epochs_before(&self, epoch: u64) -> Result<Vec<u64>>;

    /// The epochs whose keys exist, oldest first.
    fn epochs(&self) -> Result<Vec<u64>>;

    /// Whether keys are wrapped per epoch (`false`: one key for all).
    fn has_epochs(&self) -> bool {
        true
    }
}

/// The refusal of a key whose epoch's key is gone: from the requester's side the key was
/// destroyed (V23), which is what happened to it.
pub fn epoch_destroyed(epoch: StorageEpoch) -> crate::error::Error {
    reject(
        Rejection::KeyDestroyed,
        format!("the storage key of epoch {epoch} was destroyed: no key wrapped under it can be unwrapped"),
    )
}

/// Unwraps `stored` by its epoch: a key stored before epochs under `legacy` (`key_destroyed`
/// if there is none any more), a key of epoch `n` through `numbered(n)`. The dispatch every
/// [`StorageKeys`] with epochs starts its `unwrap` with, wherever its epoch keys live.
pub fn unwrap_by_epoch(
    p: &dyn CryptoProvider,
    legacy: Option<&StorageKey>,
    stored: &StoredKey,
    numbered: impl FnOnce(u64) -> Result<OneTimeKey>,
) -> Result<OneTimeKey> {
    match stored.epoch {
        StorageEpoch::Legacy => legacy.ok_or_else(|| epoch_destroyed(stored.epoch))?.unwrap(p, stored),
        StorageEpoch::Numbered(n) => numbered(n),
    }
}

/// The first epoch whose key may still wrap a held key at `now`: every epoch before it may
/// be destroyed once the expiry sweep has caught up. A key of epoch `e` was issued before
/// `(e + 1) * epoch_secs` and expires at most `ticket_lifetime_secs` later; the sweep
/// destroys it at its expiry. So epoch `e` is done when `(e + 1) * epoch_secs +
/// ticket_lifetime_secs < now`.
pub fn destroyable_before(now: UnixTime, epoch_secs: u64, ticket_lifetime_secs: u64) -> u64 {
    let epoch_secs = epoch_secs.max(1);
    now.secs().saturating_sub(ticket_lifetime_secs).saturating_sub(1) / epoch_secs
}

/// The epoch before which every storage key goes at `now`: [`destroyable_before`] once the
/// sweep has caught up, `None` while a key in `store` is due at `now` (an expired key not yet
/// destroyed may be of an older epoch). What
/// [`Gatekeeper::destroy_done_epochs`](super::Gatekeeper::destroy_done_epochs) destroys, and
/// what the model checker runs on every tick (`model/src/custody.rs`).
pub fn done_epochs_before<T: LedgerTypes, S: Store<T> + ?Sized>(
    store: &mut S,
    now: UnixTime,
    epoch_secs: u64,
    ticket_lifetime_secs: u64,
) -> Result<Option<u64>> {
    if !store.due(now, 1).map_err(storage_failed)?.is_empty() {
        return Ok(None);
    }
    Ok(Some(destroyable_before(now, epoch_secs, ticket_lifetime_secs)))
}

/// One key for every epoch: the releases before epochs (records of codec version 1), and
/// the simulator, the demo and the vectors. Destroys nothing: it has no epochs.
impl StorageKeys for StorageKey {
    fn wrap(&self, p: &dyn CryptoProvider, _: u64, key: &OneTimeKey, _: &mut dyn CryptoRng) -> Result<StoredKey> {
        Ok(StoredKey { epoch: StorageEpoch::Legacy, wrapped: p.aes256_kw_wrap(self.bytes(), key.expose())? })
    }

    fn unwrap(&self, p: &dyn CryptoProvider, stored: &StoredKey) -> Result<OneTimeKey> {
        match stored.epoch {
            StorageEpoch::Legacy => p.aes256_kw_unwrap(self.bytes(), &stored.wrapped.0),
            epoch => Err(reject(
                Rejection::InvalidConfiguration,
                format!("storage_keys: a stored key is of epoch {epoch} and no epoch keys are configured"),
            )),
        }
    }

    fn destroy_epochs_before(&self, _: u64) -> Result<Vec<u64>> {
        Ok(Vec::new())
    }

    fn epochs(&self) -> Result<Vec<u64>> {
        Ok(Vec::new())
    }

    fn has_epochs(&self) -> bool {
        false
    }
}

impl From<StorageKey> for Box<dyn StorageKeys> {
    fn from(key: StorageKey) -> Self {
        Box::new(key)
    }
}

/// Epoch keys in memory (random, drawn from the issuing RNG on first use), with the legacy
/// key if there is one: nothing survives the process, so it suits tests and one-process
/// runs; the server keeps the same keys in files or a token.
#[derive(Debug, Default)]
pub struct EpochKeyRing {
    legacy: Option<StorageKey>,
    epochs: Mutex<BTreeMap<u64, StorageKey>>,
}

impl EpochKeyRing {
    /// An empty ring; `legacy` unwraps the records written before epochs.
    pub fn new(legacy: Option<StorageKey>) -> Self {
        EpochKeyRing { legacy, epochs: Mutex::default() }
    }
}

fn poisoned() -> crate::error::Error {
    reject(Rejection::CryptoFailure, "the epoch key ring's lock is poisoned")
}

impl StorageKeys for EpochKeyRing {
    fn wrap(&self, p: &dyn CryptoProvider, epoch: u64, key: &OneTimeKey, rng: &mut dyn CryptoRng) -> Result<StoredKey> {
        let mut epochs = self.epochs.lock().map_err(|_| poisoned())?;
        let kek = epochs.entry(epoch).or_insert_with(|| {
            let mut bytes = zeroize::Zeroizing::new([0u8; KEY_LEN]);
            p.fill_random(rng, bytes.as_mut_slice());
            StorageKey::from_bytes(*bytes)
        });
        Ok(StoredKey { epoch: StorageEpoch::Numbered(epoch), wrapped: p.aes256_kw_wrap(kek.bytes(), key.expose())? })
    }

    fn unwrap(&self, p: &dyn CryptoProvider, stored: &StoredKey) -> Result<OneTimeKey> {
        unwrap_by_epoch(p, self.legacy.as_ref(), stored, |n| {
            let epochs = self.epochs.lock().map_err(|_| poisoned())?;
            let kek = epochs.get(&n).ok_or_else(|| epoch_destroyed(stored.epoch))?;
            p.aes256_kw_unwrap(kek.bytes(), &stored.wrapped.0)
        })
    }

    fn destroy_epochs_before(&self, epoch: u64) -> Result<Vec<u64>> {
        let mut epochs = self.epochs.lock().map_err(|_| poisoned())?;
        let kept = epochs.split_off(&epoch);
        let gone = core::mem::replace(&mut *epochs, kept);
        Ok(gone.into_keys().collect())
    }

    fn epochs(&self) -> Result<Vec<u64>> {
        Ok(self.epochs.lock().map_err(|_| poisoned())?.keys().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_is_done_once_its_last_key_can_have_expired() {
        // Epoch 0 covers [0, 100); its last key expires at most at 99 + 50 = 149.
        assert_eq!(destroyable_before(UnixTime(150), 100, 50), 0);
        assert_eq!(destroyable_before(UnixTime(151), 100, 50), 1);
        assert_eq!(destroyable_before(UnixTime(250), 100, 50), 1);
        assert_eq!(destroyable_before(UnixTime(251), 100, 50), 2);
        assert_eq!(destroyable_before(UnixTime(10), 100, 50), 0);
    }

    #[test]
    fn a_destroyed_epoch_refuses_its_keys_and_spares_the_others() {
        use rand_core::SeedableRng;
        let p = crate::crypto::default_provider();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let ring = EpochKeyRing::new(None);
        let (a, b) = (OneTimeKey::from_bytes([1; KEY_LEN]), OneTimeKey::from_bytes([2; KEY_LEN]));
        let (wa, wb) = (ring.wrap(p, 1, &a, &mut rng).expect("wrap"), ring.wrap(p, 2, &b, &mut rng).expect("wrap"));
        assert_eq!(wa.epoch, StorageEpoch::Numbered(1));
        assert_ne!(wa.wrapped, ring.wrap(p, 2, &a, &mut rng).expect("wrap").wrapped, "one key per epoch");
        assert_eq!(ring.destroy_epochs_before(2).expect("destroy"), vec![1]);
        assert_eq!(ring.epochs().expect("epochs"), vec![2]);
        assert_eq!(ring.unwrap(p, &wa).map_err(|e| e.rejection()), Err(Rejection::KeyDestroyed));
        assert_eq!(ring.unwrap(p, &wb).expect("unwrap"), b);
        let legacy = StoredKey { epoch: StorageEpoch::Legacy, wrapped: wa.wrapped.clone() };
        assert_eq!(ring.unwrap(p, &legacy).map_err(|e| e.rejection()), Err(Rejection::KeyDestroyed));
    }
}
