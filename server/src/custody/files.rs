//! Storage-epoch keys in files: one file per epoch in a directory of its own
//! (`gatekeeper.storage_keys`), `epoch-N.key`, 64 hex digits, mode 0600.
//!
//! - **Random, not derived.** An epoch key is 32 bytes from the issuing RNG (seeded by the
//!   operating system). A key derived from a master secret would come back from that secret
//!   after its file is destroyed: destroying the file would destroy nothing.
//! - **Durable before use.** The key is written to a temporary file, fsynced, linked to its
//!   name (a link fails if the name exists: two processes sharing the directory agree on one
//!   key, the loser reads the winner's), and the directory is fsynced, all before the first
//!   key is wrapped under it: a crash cannot lose an epoch key that a durable record needs.
//! - **Destroyed.** Overwritten with zeros, fsynced, unlinked, the directory fsynced. On a
//!   journaling or copy-on-write file system or an SSD the old blocks may survive the
//!   overwrite; the directory belongs on storage that is not backed up with the database
//!   (`docs/server.md`, "Key custody"), and a PKCS#11 token is the stronger custody.
//!
//! Keys are cached in memory after first use (zeroized when dropped); a process that
//! destroys an epoch drops it from its cache.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ekg_core::crypto::{CryptoProvider, CryptoRng};
use ekg_core::role::{StorageKey, StorageKeys, epoch_destroyed, unwrap_by_epoch};
use ekg_core::{KEY_LEN, OneTimeKey, StorageEpoch, StoredKey};
use ekg_core::{Rejection, Result};
use zeroize::Zeroizing;

/// Epoch keys in a directory, and the legacy key (records written before epochs), if any.
pub struct EpochKeyFiles {
    dir: PathBuf,
    legacy: Option<StorageKey>,
    cache: Mutex<BTreeMap<u64, StorageKey>>,
}

impl core::fmt::Debug for EpochKeyFiles {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EpochKeyFiles").field("dir", &self.dir).field("legacy", &self.legacy.is_some()).finish()
    }
}

fn failed(what: impl core::fmt::Display) -> ekg_core::Error {
    ekg_core::Error::new(Rejection::StorageFailed, format!("storage epoch keys: {what}"))
}

impl EpochKeyFiles {
    /// Opens (creating it, mode 0700) the directory `dir`; refuses one readable by group
    /// or others.
    pub fn open(dir: &Path, legacy: Option<StorageKey>) -> std::io::Result<Self> {
        if !dir.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(std::io::Error::other(format!(
                "{} is open to group or others (mode {:o}): chmod 700 it",
                dir.display(),
                mode & 0o777
            )));
        }
        Ok(EpochKeyFiles { dir: dir.to_path_buf(), legacy, cache: Mutex::default() })
    }

    /// The file of epoch `n`.
    pub fn path_of(&self, n: u64) -> PathBuf {
        self.dir.join(format!("epoch-{n}.key"))
    }

    fn read(&self, n: u64) -> Result<Option<StorageKey>> {
        let path = self.path_of(n);
        let text = match std::fs::read(&path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed(format_args!("{}: {e}", path.display()))),
        };
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        let text = core::str::from_utf8(&text).map_err(|_| failed(format_args!("{}: not hex", path.display())))?;
        hex::decode_to_slice(text.trim(), key.as_mut_slice())
            .map_err(|_| failed(format_args!("{}: not 64 hex digits", path.display())))?;
        Ok(Some(StorageKey::from_bytes(*key)))
    }

    /// Writes a fresh key for epoch `n` unless one exists; returns the one that holds.
    fn create(&self, p: &dyn CryptoProvider, n: u64, rng: &mut dyn CryptoRng) -> Result<StorageKey> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        p.fill_random(rng, bytes.as_mut_slice());
        let mut text = Zeroizing::new(hex::encode(bytes.as_slice()));
        text.push('\n');
        let mut suffix = [0u8; 8];
        p.fill_random(rng, &mut suffix);
        let tmp = self.dir.join(format!(".epoch-{n}.{}.tmp", hex::encode(suffix)));
        let io = |e: std::io::Error| failed(format_args!("epoch {n}: {e}"));
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(io)?;
        drop(f);
        let linked = std::fs::hard_link(&tmp, self.path_of(n));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&self.dir).map_err(io)?;
                Ok(StorageKey::from_bytes(*bytes))
            }
            // Another process made it first: use its key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.read(n)?.ok_or_else(|| failed(format_args!("epoch {n}: vanished")))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Overwrites, fsyncs, unlinks the file of epoch `n`.
    fn destroy(&self, n: u64) -> std::io::Result<()> {
        let path = self.path_of(n);
        let mut f = std::fs::OpenOptions::new().write(true).open(&path)?;
        let len = usize::try_from(f.metadata()?.len()).unwrap_or(0).min(4096);
        f.write_all(&vec![0u8; len])?;
        f.sync_all()?;
        drop(f);
        std::fs::remove_file(&path)
    }

    fn listed(&self) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| failed(format_args!("{}: {e}", self.dir.display())))? {
            let entry = entry.map_err(failed)?;
            let name = entry.file_name();
            let Some(n) = name.to_str().and_then(|s| s.strip_prefix("epoch-")?.strip_suffix(".key")?.parse().ok())
            else {
                continue;
            };
            out.push(n);
        }
        out.sort_unstable();
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn poisoned() -> ekg_core::Error {
    failed("the cache's lock is poisoned")
}

impl StorageKeys for EpochKeyFiles {
    fn wrap(&self, p: &dyn CryptoProvider, n: u64, key: &OneTimeKey, rng: &mut dyn CryptoRng) -> Result<StoredKey> {
        let mut cache = self.cache.lock().map_err(|_| poisoned())?;
        let kek = match cache.entry(n) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(match self.read(n)? {
                Some(k) => k,
                None => self.create(p, n, rng)?,
            }),
        };
        Ok(StoredKey { epoch: StorageEpoch::Numbered(n), wrapped: kek.wrap_key(p, key)? })
    }

    fn unwrap(&self, p: &dyn CryptoProvider, stored: &StoredKey) -> Result<OneTimeKey> {
        unwrap_by_epoch(p, self.legacy.as_ref(), stored, |n| {
            let mut cache = self.cache.lock().map_err(|_| poisoned())?;
            let kek = match cache.entry(n) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(self.read(n)?.ok_or_else(|| epoch_destroyed(stored.epoch))?),
            };
            kek.unwrap_key(p, &stored.wrapped)
        })
    }

    fn destroy_epochs_before(&self, before: u64) -> Result<Vec<u64>> {
        let mut cache = self.cache.lock().map_err(|_| poisoned())?;
        let mut gone = Vec::new();
        for n in self.listed()?.into_iter().take_while(|n| *n < before) {
            self.destroy(n).map_err(|e| failed(format_args!("destroying epoch {n}: {e}")))?;
            cache.remove(&n);
            gone.push(n);
        }
        if !gone.is_empty() {
            sync_dir(&self.dir).map_err(failed)?;
        }
        cache.retain(|n, _| *n >= before);
        Ok(gone)
    }

    fn epochs(&self) -> Result<Vec<u64>> {
        self.listed()
    }
}
