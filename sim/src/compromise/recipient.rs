//! A stolen recipient private key, late binding against early binding.
//!
//! Early binding: every message encrypted to the victim's certificate, sent before the
//! certificate is revoked, is exposed (the thief is assumed to see the mail, as in
//! `faults.compromised`): those sent before the theft at once, later ones as they are sent.
//! Late binding: the thief fetches, as the victim, the key of every message listing the
//! victim whose key the gatekeeper still holds at or after the theft and before revocation;
//! under `once`, only if the victim had not fetched it first.

use serde::Serialize;

use super::{CompromiseSpec, Inputs, cumulative, end_ms, read_ms, redelivers};

/// Messages a stolen recipient key exposes, per day, each scheme.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecipientExposure {
    /// Messages listing the victim, cumulative per day (by submission).
    pub listing_victim_by_day: Vec<u64>,
    /// Early binding: exposed, cumulative per day (by when the thief can read them).
    pub early_by_day: Vec<u64>,
    /// Late binding: exposed, cumulative per day.
    pub late_by_day: Vec<u64>,
    /// Early binding, in all.
    pub early: u64,
    /// Late binding, in all.
    pub late: u64,
}

/// The recipient analysis.
pub fn analyse(spec: &CompromiseSpec, inputs: &Inputs<'_>, day_end_ms: &[u64]) -> RecipientExposure {
    let theft_ms = spec.recipient.at_secs * 1000;
    let revoked_ms = theft_ms + spec.recipient.revoked_after_secs * 1000;
    let mail = inputs.scenario.network.mail_latency_ms;
    let policy = inputs.scenario.gatekeeper.policy;
    let mut listing = Vec::new();
    let mut early = Vec::new();
    for m in inputs.messages {
        let Some(r) = m.recipients.iter().position(|u| *u == inputs.victim) else { continue };
        listing.push(m.submit_ms);
        if m.cert_found.get(r).copied().unwrap_or(false) && m.submit_ms < revoked_ms {
            early.push(m.submit_ms.max(theft_ms));
        }
    }
    let mut late = Vec::new();
    for l in inputs.lives.iter().filter(|l| l.used) {
        let Some(m) = inputs.messages.get(l.msg) else { continue };
        let Some(r) = m.recipients.iter().position(|u| *u == inputs.victim) else { continue };
        // The thief can fetch from when it holds both the key and the mail, while the key
        // lives and the certificate is valid.
        let from = theft_ms.max(l.issued_ms + mail);
        if from >= end_ms(l) || from >= revoked_ms {
            continue;
        }
        let victim_first = read_ms(m, r, mail).is_some_and(|t| t < from);
        if victim_first && !redelivers(policy) {
            continue;
        }
        late.push(from);
    }
    RecipientExposure {
        listing_victim_by_day: cumulative(&listing, day_end_ms),
        early_by_day: cumulative(&early, day_end_ms),
        late_by_day: cumulative(&late, day_end_ms),
        early: early.len() as u64,
        late: late.len() as u64,
    }
}
