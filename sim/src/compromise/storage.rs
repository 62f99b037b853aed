//! A stolen database backup with the storage key(s), and the database alone.
//!
//! A backup taken at B holds the wrapped key of every key issued by B whose row it holds:
//! those still held at B, and (`backup_keeps_deleted_rows`) those already destroyed. A key in
//! it is exposed to whoever also holds the storage key it is wrapped under. With one storage
//! key for ever, that key never goes: every key in the backup is exposed, whenever the storage
//! key is stolen. With epochs, a key is wrapped under its epoch's key (the epoch of its
//! issuance), destroyed once the epoch has ended and every key wrapped under it is destroyed;
//! a storage-key theft at S ≥ B finds only the epoch keys not yet destroyed at S.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{CompromiseSpec, end_ms, held_at};
use crate::metrics::KeyLife;

/// Message keys exposed by a backup and the storage key(s), per day.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StorageExposure {
    /// Backup and storage keys both stolen at each day's end, epochs of `epoch_secs`.
    pub same_day_epochs: Vec<u64>,
    /// The same with one storage key for ever.
    pub same_day_forever: Vec<u64>,
    /// The backup of `backup_at_secs`, storage keys stolen at each day's end (`None`
    /// before the backup was taken), epochs.
    pub later_epochs: Vec<Option<u64>>,
    /// The same with one storage key for ever.
    pub later_forever: Vec<Option<u64>>,
    /// Epoch keys made.
    pub epochs: u64,
    /// Epoch keys destroyed by the end of the run.
    pub epochs_destroyed: u64,
}

/// The database alone (no storage key): what its bytes hold of any key.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DatabaseExposure {
    /// Records of issued keys searched for the key in the clear (the late run, right after
    /// each issuance).
    pub records_scanned: u64,
    /// Keys found in the clear in them.
    pub keys_found_in_clear: u64,
    /// Wrapped message keys a copy of the database holds at each day's end (the rows of
    /// keys still held).
    pub wrapped_by_day: Vec<u64>,
}

/// The storage analysis. `epochs_ignored` is a planted bug: every key under one storage key
/// that is never destroyed, whatever `epoch_secs` says.
pub fn analyse(spec: &CompromiseSpec, lives: &[KeyLife], day_end_ms: &[u64], epochs_ignored: bool) -> StorageExposure {
    let epoch_ms = spec.epoch_secs.saturating_mul(1000);
    // Each epoch key's destruction: the end of its epoch or of its last key, whichever is later
    // (orphan keys count: they are wrapped under it too).
    let mut epoch_end: BTreeMap<u64, u64> = BTreeMap::new();
    for l in lives {
        let e = l.issued_ms / epoch_ms;
        let closes = (e + 1).saturating_mul(epoch_ms);
        let end = epoch_end.entry(e).or_insert(closes);
        *end = (*end).max(end_ms(l));
    }
    let destroyed_at = |l: &KeyLife| -> u64 {
        if epochs_ignored {
            return u64::MAX;
        }
        epoch_end.get(&(l.issued_ms / epoch_ms)).copied().unwrap_or(u64::MAX)
    };
    let in_backup = |l: &KeyLife, b: u64| l.issued_ms <= b && (spec.backup_keeps_deleted_rows || held_at(l, b));
    let message: Vec<&KeyLife> = lives.iter().filter(|l| l.used).collect();
    let exposed = |b: u64, s: u64, epochs: bool| -> u64 {
        message.iter().filter(|l| in_backup(l, b) && (!epochs || destroyed_at(l) > s)).count() as u64
    };
    let b = spec.backup_at_secs.saturating_mul(1000);
    let later = |epochs: bool| -> Vec<Option<u64>> {
        day_end_ms.iter().map(|s| (*s >= b).then(|| exposed(b, *s, epochs))).collect()
    };
    StorageExposure {
        same_day_epochs: day_end_ms.iter().map(|t| exposed(*t, *t, true)).collect(),
        same_day_forever: day_end_ms.iter().map(|t| exposed(*t, *t, false)).collect(),
        later_epochs: later(true),
        later_forever: later(false),
        epochs: epoch_end.len() as u64,
        epochs_destroyed: if epochs_ignored { 0 } else { epoch_end.values().filter(|e| **e < u64::MAX).count() as u64 },
    }
}

/// The database alone: the late run's scan, and the wrapped keys a copy holds each day.
pub fn database(lives: &[KeyLife], day_end_ms: &[u64], (scanned, found): (u64, u64)) -> DatabaseExposure {
    let held = |t: u64| lives.iter().filter(|l| l.used && held_at(l, t)).count() as u64;
    DatabaseExposure {
        records_scanned: scanned,
        keys_found_in_clear: found,
        wrapped_by_day: day_end_ms.iter().map(|t| held(*t)).collect(),
    }
}
