//! Metrics of one scheme on one workload.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::metered::{OpCounts, Role};

/// Summary statistics of a sample.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Stats {
    /// Sample size.
    pub n: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Stats {
    /// Of `values` (sorted here).
    pub fn of(mut values: Vec<f64>) -> Stats {
        if values.is_empty() {
            return Stats::default();
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let at = |q: f64| values.get(((n as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
        Stats { n: n as u64, mean: values.iter().sum::<f64>() / n as f64, p50: at(0.5), p99: at(0.99), max: at(1.0) }
    }
}

/// What one scheme achieved.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SchemeReport {
    /// `late` (gatekeeper) or `early` (S/MIME-style).
    pub scheme: String,
    /// Messages submitted.
    pub messages: u64,
    /// Messages sent encrypted to every recipient.
    pub messages_encrypted_for_all: u64,
    /// Messages that could not be encrypted for at least one recipient at send time.
    pub messages_not_encrypted_for_some: u64,
    /// Messages that could not be encrypted at all at send time.
    pub messages_not_encrypted: u64,
    /// (message, recipient) pairs.
    pub pairs: u64,
    /// Pairs whose recipient read the plaintext.
    pub pairs_readable: u64,
    /// Pairs whose recipient never reads (workload), excluded from the owed set.
    pub pairs_never_read: u64,
    /// Readable share of the pairs whose recipient reads.
    pub readable_share: f64,
    /// Pairs lost for good, by reason (a rejection code or a named cause).
    pub lost: BTreeMap<String, u64>,
    /// Pairs the protocol owed (reader trusted both ways, sender authorised) but that were
    /// not delivered by the end of the healing phase.
    pub owed_undelivered: u64,
    /// Bytes on the wire, by artifact.
    pub bytes: BTreeMap<String, u64>,
    /// Mean bytes on the wire per message.
    pub bytes_per_message: f64,
    /// RSA operations by party.
    pub ops: BTreeMap<String, OpCounts>,
    /// Requests that reached a gatekeeper.
    pub gatekeeper_requests: u64,
    /// Mean gatekeeper requests per virtual second over the busy period.
    pub gatekeeper_rps_mean: f64,
    /// Busiest virtual second.
    pub gatekeeper_rps_peak: u64,
    /// Submission to sending, virtual seconds.
    pub send_latency_secs: Stats,
    /// Opening a message to reading its plaintext, virtual seconds.
    pub read_latency_secs: Stats,
    /// Every message sent: (submission, latency to sending), virtual ms (late binding only:
    /// early binding sends without a round trip).
    pub send_latency_ms: Vec<(u64, u64)>,
    /// Every read: (when the recipient opened the message, latency to its plaintext), virtual
    /// ms (late binding only: early binding decrypts locally).
    pub read_latency_ms: Vec<(u64, u64)>,
    /// Submission times (virtual ms) of the messages a stolen recipient key exposed, in order.
    pub exposed_submitted_ms: Vec<u64>,
    /// Cost by recipients per message (the workload's list sizes).
    pub by_list_size: BTreeMap<usize, ListCost>,
    /// Keys held by all gatekeepers, sampled: (virtual seconds, keys).
    pub keys_held: Vec<(u64, u64)>,
    /// Largest sample of `keys_held`.
    pub keys_held_peak: u64,
    /// Issue to destruction, virtual seconds.
    pub key_lifetime_secs: Stats,
    /// Keys issued and never used (the sender retried with a new request).
    pub orphan_keys: u64,
    /// Messages whose key the attacker learned with a stolen recipient key.
    pub exposed_messages: u64,
    /// Late binding: every key the gatekeepers issued, with when it was issued and destroyed
    /// (the input of the compromise analysis, `crate::compromise`; not in `report.json`).
    #[serde(skip)]
    pub key_lives: Vec<KeyLife>,
    /// Late binding: stored records of issued keys searched for the key's bytes in the clear,
    /// right after issuance (what a thief of the database alone would read).
    pub db_records_scanned: u64,
    /// Of which held a key's bytes in the clear (0: every key is wrapped).
    pub db_plaintext_keys_found: u64,
    /// Reads that waited for a lost certificate to be reissued.
    pub reads_delayed_by_lost_certificate: u64,
    /// Key fetches by the recipient organisation's gateway, all of which must be refused.
    pub foreign_gateway_attempts: u64,
    /// Labelled traffic (`[labels]`): messages carrying the label, and their pairs read by a
    /// recipient who holds it, read by one who does not, and withheld (refused by the policy).
    pub labelled: LabelledCounts,
    /// Invariant violations.
    pub violations: Vec<String>,
    /// Invariant checks run.
    pub checks: u64,
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end, seconds.
    pub virtual_secs: f64,
    /// Wall time of this scheme's event loop, seconds.
    pub wall_secs: f64,
    /// Of which inside the crypto provider, seconds.
    pub crypto_secs: f64,
    /// Share of the event loop's wall time spent outside the crypto provider.
    pub outside_crypto_share: f64,
}

/// Who read labelled messages.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct LabelledCounts {
    /// Messages carrying the label.
    pub messages: u64,
    /// Their (message, recipient) pairs whose recipient holds the label.
    pub pairs_entitled: u64,
    /// Their pairs whose recipient does not.
    pub pairs_unentitled: u64,
    /// Pairs read by a recipient holding the label.
    pub read_entitled: u64,
    /// Pairs read by a recipient not holding it (early binding cannot withhold them).
    pub read_unentitled: u64,
    /// Pairs refused by the gatekeeper's policy decision (late binding), by any code.
    pub withheld: u64,
}

/// One key's life at its gatekeeper, virtual ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyLife {
    /// The message it was issued for.
    pub msg: usize,
    /// The sender's organisation (whose gatekeeper holds it).
    pub org: usize,
    /// When the gatekeeper recorded its issuance.
    pub issued_ms: u64,
    /// When the gatekeeper's ledger stopped holding it (`None`: still held at the end).
    pub destroyed_ms: Option<u64>,
    /// Whether its message was sealed under it (an orphan key, issued for a retry whose
    /// answer was lost, protects no message).
    pub used: bool,
}

/// What the messages with one number of recipients cost, in all.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct ListCost {
    /// Messages with this many recipients.
    pub messages: u64,
    /// Bytes on the wire for them (every artifact of [`SchemeReport::bytes`]).
    pub bytes: u64,
    /// RSA private-key operations for them, every party.
    pub private_ops: u64,
    /// RSA public-key operations for them, every party.
    pub public_ops: u64,
}

impl ListCost {
    /// Per message: (KiB, private operations, public operations).
    pub fn per_message(&self) -> (f64, f64, f64) {
        let n = self.messages.max(1) as f64;
        (self.bytes as f64 / 1024.0 / n, self.private_ops as f64 / n, self.public_ops as f64 / n)
    }
}

/// Bytes and RSA operations charged to each message: the simulator charges what the totals
/// grew by since the last charge to the message of the step that made them grow.
#[derive(Debug, Default)]
pub struct Attribution {
    per_message: Vec<[u64; 3]>,
    last: [u64; 3],
    /// Bytes, private and public operations of steps that belong to no message (a
    /// gatekeeper's restart, the set-up of a scheme).
    pub unattributed: [u64; 3],
}

impl Attribution {
    /// For `messages` messages, from the totals (bytes, private, public) `now`.
    pub fn new(messages: usize, now: [u64; 3]) -> Attribution {
        Attribution { per_message: vec![[0; 3]; messages], last: now, unattributed: [0; 3] }
    }

    /// Charges what the totals grew by since the last charge to `msg` (`None`: to no message).
    pub fn charge(&mut self, msg: Option<usize>, now: [u64; 3]) {
        let slot = match msg.and_then(|m| self.per_message.get_mut(m)) {
            Some(slot) => slot,
            None => &mut self.unattributed,
        };
        for (s, (n, l)) in slot.iter_mut().zip(now.iter().zip(self.last.iter())) {
            *s += n.saturating_sub(*l);
        }
        self.last = now;
    }

    /// The cost by number of recipients, given each message's recipient count.
    pub fn by_list_size(&self, recipients: impl Iterator<Item = usize>) -> BTreeMap<usize, ListCost> {
        let mut out: BTreeMap<usize, ListCost> = BTreeMap::new();
        for (n, [bytes, private, public]) in recipients.zip(self.per_message.iter()) {
            let c = out.entry(n).or_default();
            c.messages += 1;
            c.bytes += bytes;
            c.private_ops += private;
            c.public_ops += public;
        }
        out
    }
}

impl SchemeReport {
    /// Bytes so far, every artifact.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.values().sum()
    }

    /// Adds `by` bytes under `what`.
    pub fn add_bytes(&mut self, what: &str, by: usize) {
        *self.bytes.entry(what.to_owned()).or_default() += by as u64;
    }

    /// Counts a pair lost for `reason`.
    pub fn lose(&mut self, reason: &str) {
        *self.lost.entry(reason.to_owned()).or_default() += 1;
    }

    /// Records operation counts per role (differences from `before`).
    pub fn set_ops(&mut self, before: &BTreeMap<Role, OpCounts>, after: &BTreeMap<Role, OpCounts>) {
        for role in Role::ALL {
            let (b, a) =
                (before.get(&role).copied().unwrap_or_default(), after.get(&role).copied().unwrap_or_default());
            let d = OpCounts {
                sign: a.sign - b.sign,
                decrypt: a.decrypt - b.decrypt,
                verify: a.verify - b.verify,
                encrypt: a.encrypt - b.encrypt,
            };
            if d != OpCounts::default() {
                self.ops.insert(role.name().to_owned(), d);
            }
        }
    }

    /// Fills the derived fields.
    pub fn finish(&mut self, rps: &BTreeMap<u64, u64>) {
        let readers = self.pairs - self.pairs_never_read;
        self.readable_share = if readers == 0 { 1.0 } else { self.pairs_readable as f64 / readers as f64 };
        let total: u64 = self.bytes.values().sum();
        self.bytes_per_message = if self.messages == 0 { 0.0 } else { total as f64 / self.messages as f64 };
        self.gatekeeper_requests = rps.values().sum();
        self.gatekeeper_rps_peak = rps.values().copied().max().unwrap_or(0);
        if let (Some(first), Some(last)) = (rps.keys().next(), rps.keys().last()) {
            self.gatekeeper_rps_mean = self.gatekeeper_requests as f64 / (last - first + 1) as f64;
        }
        self.keys_held_peak = self.keys_held.iter().map(|(_, k)| *k).max().unwrap_or(0);
        self.outside_crypto_share =
            if self.wall_secs > 0.0 { ((self.wall_secs - self.crypto_secs) / self.wall_secs).max(0.0) } else { 0.0 };
    }
}
