//! A stolen signing key.
//!
//! With the gatekeeper's signing key the thief can sign grants' tickets, releases and tree
//! heads. It cannot obtain a key the gatekeeper holds: the ledger serves only addresses it
//! recorded at issuance (`Ledger::decide_release`), whatever a ticket lists, and keys are
//! wrapped under the storage key. What it can do is answer key requests itself, from the
//! path between senders and the gatekeeper: the sender seals under a key the thief chose and
//! a ticket the thief signed. It does so for a share of the key requests made from the theft
//! until the key is rotated (the old certificate revoked), which happens at the scheduled
//! rotation or `response_secs` after the first detection, whichever is first.
//!
//! Detection, three ways:
//! - `log_off`: no log, or recipients that do not check it: nothing detects a forgery;
//! - `inclusion_required`: a recipient refuses a ticket still missing from the next signed
//!   head after it reads (`heads_every_secs`), and reports it;
//! - `forked_log`: the thief also signs heads of a log of its own holding its tickets, so
//!   recipients' inclusion checks pass; an auditor comparing the heads recipients were shown
//!   with the gatekeeper's (every `audit_every_secs`) finds the fork (`log_fork`).

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::Serialize;

use super::{CompromiseSpec, Inputs, cumulative, read_ms};
use crate::draw::{Draw, derive_seed};

/// The three detection set-ups, on the same intercepted requests.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SigningExposure {
    /// Messages whose key request the thief would answer if its key were valid then (drawn
    /// once per message with `intercept_share`, whatever the set-up).
    pub interceptable: u64,
    /// No log consulted.
    pub log_off: SigningMode,
    /// Recipients require inclusion in a signed head.
    pub inclusion_required: SigningMode,
    /// Recipients require inclusion; the thief signs a forked log; an auditor compares heads.
    pub forked_log: SigningMode,
}

/// One detection set-up's outcome.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SigningMode {
    /// When the key stops working (rotation), virtual seconds.
    pub window_end_secs: u64,
    /// The first detection, virtual seconds (`None`: never).
    pub first_detection_secs: Option<u64>,
    /// Message keys the thief chose (forged tickets), cumulative per day.
    pub forged_by_day: Vec<u64>,
    /// Forged tickets detected, cumulative per day.
    pub detected_by_day: Vec<u64>,
    /// Forged tickets in all.
    pub forged: u64,
    /// Forged tickets detected by the end of the last day.
    pub detected: u64,
}

/// The signing analysis. `log_not_consulted` is a planted bug: recipients skip the inclusion
/// check (and so never report a forgery, nor show the auditor a head).
pub fn analyse(
    spec: &CompromiseSpec,
    inputs: &Inputs<'_>,
    day_end_ms: &[u64],
    log_not_consulted: bool,
) -> SigningExposure {
    let s = &spec.signing;
    let mut rng = ChaCha20Rng::seed_from_u64(derive_seed(inputs.scenario.seed, "compromise-signing"));
    // One draw per message, in order: every set-up sees the same requests intercepted.
    let intercepted: Vec<bool> = inputs.messages.iter().map(|_| rng.chance(s.intercept_share)).collect();
    let theft_ms = s.at_secs * 1000;
    let rotation_ms = theft_ms + s.rotation_after_secs * 1000;
    let mail = inputs.scenario.network.mail_latency_ms;
    // Candidates: intercepted requests while the key is valid at the latest.
    let candidates: Vec<(u64, Option<u64>)> = inputs
        .messages
        .iter()
        .zip(&intercepted)
        .filter(|(m, i)| **i && m.submit_ms >= theft_ms && m.submit_ms < rotation_ms)
        .map(|(m, _)| (m.submit_ms, (0..m.recipients.len()).filter_map(|r| read_ms(m, r, mail)).min()))
        .collect();
    let heads_ms = s.heads_every_secs * 1000;
    let audit_ms = s.audit_every_secs * 1000;
    let mode = |detect: &dyn Fn(Option<u64>) -> Option<u64>| -> SigningMode {
        let first = candidates.iter().filter_map(|(_, r)| detect(*r)).min();
        let end = first.map_or(rotation_ms, |f| rotation_ms.min(f.saturating_add(s.response_secs * 1000)));
        let forged: Vec<&(u64, Option<u64>)> = candidates.iter().filter(|(at, _)| *at < end).collect();
        let forged_at: Vec<u64> = forged.iter().map(|(at, _)| *at).collect();
        let detected_at: Vec<u64> = forged.iter().filter_map(|(_, r)| detect(*r)).collect();
        let last = day_end_ms.last().copied().unwrap_or(0);
        SigningMode {
            window_end_secs: end / 1000,
            first_detection_secs: first.map(|f| f / 1000),
            forged_by_day: cumulative(&forged_at, day_end_ms),
            detected_by_day: cumulative(&detected_at, day_end_ms),
            forged: forged_at.len() as u64,
            detected: detected_at.iter().filter(|d| **d <= last).count() as u64,
        }
    };
    let never = |_: Option<u64>| None;
    // A recipient reading a forged ticket refuses it once the next head still lacks it.
    let inclusion = |first_read: Option<u64>| first_read.map(|r| (r / heads_ms + 1) * heads_ms);
    // The forked head a recipient was shown reaches the auditor at its next comparison.
    let audit = |first_read: Option<u64>| first_read.map(|r| (r / audit_ms + 1) * audit_ms);
    SigningExposure {
        interceptable: intercepted.iter().filter(|i| **i).count() as u64,
        log_off: mode(&never),
        inclusion_required: if log_not_consulted { mode(&never) } else { mode(&inclusion) },
        forked_log: if log_not_consulted { mode(&never) } else { mode(&audit) },
    }
}
