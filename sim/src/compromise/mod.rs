//! Compromise, measured (issue 27, deliverable 5): which message keys each stolen secret
//! exposes, day by day, on the workload and the key lives of the scenario's own late-binding
//! run.
//!
//! The mechanisms other work builds (storage-key epochs, the service appending to the
//! issuance log, recipient clients requiring inclusion) are modelled here as parameters
//! (`[compromise]` in a scenario), not by calling their code:
//! - [`storage`]: a stolen database backup taken at B plus the storage key(s) stolen at S,
//!   with one storage key per epoch (an epoch key destroyed once every key wrapped under it
//!   is destroyed or expired) against one storage key for ever; and the database alone;
//! - [`signing`]: a stolen signing key, used until the key is rotated, with the log off, with
//!   recipients requiring inclusion, and with a thief that also signs a forked log;
//! - [`recipient`]: a recipient's private key, late binding against early binding.
//!
//! Every count is of message keys (keys a message was sealed under; orphan keys protect
//! nothing) and cumulative at the end of each day.

mod recipient;
mod signing;
mod storage;
mod table;

use ekg_core::ledger::ReleasePolicy;
use serde::Serialize;

pub use crate::scenario::compromise::{CompromiseSpec, RecipientTheft, SigningTheft};
pub use recipient::RecipientExposure;
pub use signing::{SigningExposure, SigningMode};
pub use storage::{DatabaseExposure, StorageExposure};
pub use table::text;

use crate::metrics::KeyLife;
use crate::scenario::{Plant, Scenario};
use crate::workload::Message;

/// A virtual day, ms.
pub const DAY_MS: u64 = 86_400_000;

/// Everything the compromise analysis measured.
#[derive(Clone, Debug, Serialize)]
pub struct CompromiseReport {
    /// The parameters.
    pub spec: CompromiseSpec,
    /// Keys issued in the late run, and of them message keys (a message sealed under it).
    pub keys_issued: u64,
    /// Message keys issued.
    pub message_keys: u64,
    /// End of each reported day, virtual seconds (the rows of every table).
    pub day_end_secs: Vec<u64>,
    /// Message keys issued by each day's end.
    pub issued_by_day: Vec<u64>,
    /// Message keys the gatekeepers hold at each day's end.
    pub held_by_day: Vec<u64>,
    /// Storage key(s) and a database backup.
    pub storage: StorageExposure,
    /// The database alone.
    pub database: DatabaseExposure,
    /// The signing key.
    pub signing: SigningExposure,
    /// A recipient's private key, both schemes.
    pub recipient: RecipientExposure,
}

/// What the analysis reads of a run.
pub struct Inputs<'a> {
    /// The scenario (gatekeeper settings, network latency, the planted bug).
    pub scenario: &'a Scenario,
    /// The workload.
    pub messages: &'a [Message],
    /// The late run's keys.
    pub lives: &'a [KeyLife],
    /// The victim's user index, for [`recipient`].
    pub victim: usize,
    /// Records searched for a key in the clear, and keys found so (from the late run).
    pub db_scan: (u64, u64),
}

/// Runs every analysis of `spec` on `inputs`.
pub fn analyse(spec: &CompromiseSpec, inputs: &Inputs<'_>) -> CompromiseReport {
    let day_end_ms: Vec<u64> = (1..=u64::from(spec.days)).map(|d| d * DAY_MS).collect();
    let message_lives: Vec<&KeyLife> = inputs.lives.iter().filter(|l| l.used).collect();
    let issued_by_day =
        day_end_ms.iter().map(|t| message_lives.iter().filter(|l| l.issued_ms <= *t).count() as u64).collect();
    let held_by_day =
        day_end_ms.iter().map(|t| message_lives.iter().filter(|l| held_at(l, *t)).count() as u64).collect();
    let plant = inputs.scenario.plant;
    CompromiseReport {
        spec: spec.clone(),
        keys_issued: inputs.lives.len() as u64,
        message_keys: message_lives.len() as u64,
        day_end_secs: day_end_ms.iter().map(|t| t / 1000).collect(),
        issued_by_day,
        held_by_day,
        storage: storage::analyse(spec, inputs.lives, &day_end_ms, plant == Plant::EpochsIgnored),
        database: storage::database(inputs.lives, &day_end_ms, inputs.db_scan),
        signing: signing::analyse(spec, inputs, &day_end_ms, plant == Plant::LogNotConsulted),
        recipient: recipient::analyse(spec, inputs, &day_end_ms),
    }
}

/// Whether the gatekeeper holds `life`'s key at `t_ms` (issued, not yet destroyed).
pub fn held_at(life: &KeyLife, t_ms: u64) -> bool {
    life.issued_ms <= t_ms && life.destroyed_ms.is_none_or(|d| d > t_ms)
}

/// When `life`'s key stops being held: its destruction, or never (still held at the end).
pub fn end_ms(life: &KeyLife) -> u64 {
    life.destroyed_ms.unwrap_or(u64::MAX)
}

/// Whether `bytes` (a stored record) hold `key` in the clear anywhere.
pub fn holds_in_clear(bytes: &[u8], key: &[u8]) -> bool {
    !key.is_empty() && bytes.windows(key.len()).any(|w| w == key)
}

/// When recipient `r` of `m` reads it (delivered after the mail latency), if ever.
pub(crate) fn read_ms(m: &Message, r: usize, mail_latency_ms: u64) -> Option<u64> {
    m.read_after_ms.get(r).copied().flatten().map(|d| m.submit_ms + mail_latency_ms + d)
}

/// Whether a second certificate-holder can still fetch a key its owner already fetched.
pub(crate) fn redelivers(policy: ReleasePolicy) -> bool {
    matches!(policy, ReleasePolicy::SameCertificate)
}

/// A cumulative count at each day's end of events at `times_ms`.
pub(crate) fn cumulative(times_ms: &[u64], day_end_ms: &[u64]) -> Vec<u64> {
    day_end_ms.iter().map(|t| times_ms.iter().filter(|x| **x <= *t).count() as u64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_in_the_clear_is_found_and_a_wrapped_one_is_not() {
        let key = [7u8; 32];
        let mut record = vec![1u8; 10];
        record.extend_from_slice(&key);
        record.extend_from_slice(&[2u8; 5]);
        assert!(holds_in_clear(&record, &key));
        record[20] ^= 1;
        assert!(!holds_in_clear(&record, &key));
    }
}
