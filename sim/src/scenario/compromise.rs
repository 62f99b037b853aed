//! `[compromise]` in a scenario file: what is stolen, when, and the mechanisms that limit it.

use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// The compromise analysis' parameters (every time in virtual seconds from the run's start).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CompromiseSpec {
    /// Days reported (one row each).
    pub days: u32,
    /// Storage-key epoch length: each key is wrapped under its epoch's storage key, which is
    /// destroyed once its epoch has ended and every key wrapped under it is destroyed.
    pub epoch_secs: u64,
    /// When the database backup the thief obtains was taken.
    pub backup_at_secs: u64,
    /// Whether a backup holds the rows of keys already destroyed when it was taken (SQLite
    /// free pages, PostgreSQL's WAL, an earlier backup): deleting a row is not destroying a key.
    pub backup_keeps_deleted_rows: bool,
    /// The signing key.
    pub signing: SigningTheft,
    /// A recipient's private key.
    pub recipient: RecipientTheft,
}

/// A stolen signing key.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SigningTheft {
    /// When it is stolen.
    pub at_secs: u64,
    /// When the operator rotates it (new key pair, old certificate revoked) without having
    /// detected anything, after the theft.
    pub rotation_after_secs: u64,
    /// Share of key requests the thief answers itself (it must sit on the path between
    /// senders and the gatekeeper): each sender seals under a key the thief chose.
    pub intercept_share: f64,
    /// Interval between the gatekeeper's signed tree heads: a recipient requiring inclusion
    /// refuses (and reports) a ticket still missing from the next head.
    pub heads_every_secs: u64,
    /// Interval at which an auditor compares the heads recipients were shown with the log's.
    pub audit_every_secs: u64,
    /// From the first detection to the rotation of the key.
    pub response_secs: u64,
}

/// A stolen recipient private key.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientTheft {
    /// The victim's address (a user of the scenario).
    pub user: String,
    /// When it is stolen.
    pub at_secs: u64,
    /// When its certificate is revoked, after the theft.
    pub revoked_after_secs: u64,
}

/// Longest analysis: a year of days.
const MAX_DAYS: u32 = 366;
/// Longest span of any time here: ten years (sums of them cannot overflow).
const MAX_SECS: u64 = 10 * 366 * 86_400;

impl CompromiseSpec {
    /// Refuses a value out of range (`scenario_invalid`).
    pub fn check(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::Scenario(format!("compromise: {m}")));
        if !(1..=MAX_DAYS).contains(&self.days) {
            return bad(format!("days must be 1 to {MAX_DAYS}"));
        }
        if self.epoch_secs == 0 {
            return bad("epoch_secs must be at least 1".into());
        }
        let s = &self.signing;
        if !(0.0..=1.0).contains(&s.intercept_share) {
            return bad("signing.intercept_share must be within 0 to 1".into());
        }
        if s.heads_every_secs == 0 || s.audit_every_secs == 0 {
            return bad("signing.heads_every_secs and audit_every_secs must be at least 1".into());
        }
        let times = [
            ("epoch_secs", self.epoch_secs),
            ("backup_at_secs", self.backup_at_secs),
            ("signing.at_secs", s.at_secs),
            ("signing.rotation_after_secs", s.rotation_after_secs),
            ("signing.heads_every_secs", s.heads_every_secs),
            ("signing.audit_every_secs", s.audit_every_secs),
            ("signing.response_secs", s.response_secs),
            ("recipient.at_secs", self.recipient.at_secs),
            ("recipient.revoked_after_secs", self.recipient.revoked_after_secs),
        ];
        for (name, v) in times {
            if v > MAX_SECS {
                return bad(format!("{name} must be at most {MAX_SECS}"));
            }
        }
        Ok(())
    }
}
