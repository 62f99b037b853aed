//! The invariant checkers: an observer outside the gatekeepers that sees every issuance,
//! release and key learned, and checks after each event:
//!
//! - `key_id_reused`: no key id is issued twice (by any gatekeeper);
//! - `key_reused`: no key (its bytes) serves two messages;
//! - `second_release`: at most one release per listed address, as the policy defines it
//!   (`once`: one; `same_certificate`: any number, all to the first certificate served);
//! - `release_to_unlisted`: a recipient release serves only listed addresses;
//! - `gateway_release_to_other`: a gateway release goes only to the sender organisation's
//!   gateway;
//! - `release_after_destruction`: nothing is released once the key was destroyed;
//! - `key_not_destroyed`: a key whose listed addresses were all served is gone from its
//!   gatekeeper's store once the retention (and one sweep interval) has passed, and a key is
//!   gone once its ticket expired (and one sweep interval): checked against the store's
//!   contents at every sweep, not against the ledger's own flags;
//! - `unentitled_read` (late binding, labelled traffic): no recipient lacking a message's
//!   label reads it;
//! - `unauthorised_holder`: only the sender, the listed recipients and the sender
//!   organisation's gateway learn a key. The attacker learning a key through a stolen
//!   recipient key is an *exposure*, counted, not a violation: the protocol cannot tell it
//!   from the recipient.
//!
//! The gatekeepers' own ledgers are checked too (`Ledger::check_invariants`) at every sweep.

use std::collections::{BTreeMap, BTreeSet};

use ekg_core::EmailAddress;
use ekg_core::ledger::{ReleaseKind, ReleasePolicy};
use ekg_core::{CertId, KeyId};

/// Who learns a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Party {
    /// The sending user.
    Sender(usize),
    /// A receiving user.
    Recipient(usize),
    /// An organisation's gateway fetching for outbound mail.
    SenderGateway(usize),
    /// An organisation's gateway, on inbound mail.
    RecipientGateway(usize),
    /// The attacker holding the victim's key.
    Attacker {
        /// The victim user.
        victim: usize,
    },
}

/// What the checker knows of a message.
#[derive(Clone, Copy, Debug)]
pub struct MessageFacts<'a> {
    /// Its index.
    pub id: usize,
    /// The sending user.
    pub sender: usize,
    /// Its organisation.
    pub sender_org: usize,
    /// Listed users.
    pub recipients: &'a [usize],
}

/// A key not yet seen gone: its listed addresses not yet served, and when the last was.
#[derive(Debug)]
struct Due {
    unserved: BTreeSet<EmailAddress>,
    all_served_ms: Option<u64>,
}

/// The observer.
#[derive(Debug)]
pub struct Observer {
    policy: ReleasePolicy,
    key_ids: BTreeMap<KeyId, usize>,
    keys: BTreeMap<[u8; 32], usize>,
    first: BTreeMap<(KeyId, EmailAddress), CertId>,
    destroyed: BTreeSet<KeyId>,
    /// Keys not yet seen gone, with the listed addresses still unserved, the time the last
    /// was served (ms) and the ticket's expiry (ms).
    due: BTreeMap<KeyId, Due>,
    /// When each tracked key must be gone by (ms): its expiry, and once all were served,
    /// that time plus the retention. Only entries already due are looked at.
    deadlines: BTreeSet<(u64, KeyId)>,
    retention_ms: u64,
    knowledge: BTreeSet<(usize, Party)>,
    /// Violations found, as `code: detail`.
    pub violations: Vec<String>,
    /// Messages whose key the attacker learned.
    pub exposed: BTreeSet<usize>,
    /// Checks run.
    pub checks: u64,
}

impl Observer {
    /// An observer for gatekeepers with `policy`.
    pub fn new(policy: ReleasePolicy, retention_ms: u64) -> Observer {
        Observer {
            policy,
            key_ids: BTreeMap::new(),
            keys: BTreeMap::new(),
            first: BTreeMap::new(),
            destroyed: BTreeSet::new(),
            due: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            retention_ms,
            knowledge: BTreeSet::new(),
            violations: Vec::new(),
            exposed: BTreeSet::new(),
            checks: 0,
        }
    }

    fn violation(&mut self, code: &str, detail: String) {
        self.violations.push(format!("{code}: {detail}"));
    }

    /// A gatekeeper issued `key_id` for message `msg`.
    pub fn issued(&mut self, key_id: KeyId, msg: usize, listed: &[EmailAddress], expires_ms: u64) {
        self.checks += 1;
        self.due.insert(key_id, Due { unserved: listed.iter().cloned().collect(), all_served_ms: None });
        self.deadlines.insert((expires_ms, key_id));
        if let Some(other) = self.key_ids.insert(key_id, msg) {
            self.violation("key_id_reused", format!("key id {} for messages {other} and {msg}", hex::encode(key_id.0)));
        }
    }

    /// The sender of `msg` holds a key whose SHA-256 is `digest`.
    pub fn key_bytes(&mut self, msg: usize, digest: [u8; 32]) {
        self.checks += 1;
        if let Some(other) = self.keys.insert(digest, msg)
            && other != msg
        {
            self.violation("key_reused", format!("one key for messages {other} and {msg}"));
        }
    }

    /// A gatekeeper released `key_id` of `m` to `cert` (held by `party`), serving `served`.
    #[allow(clippy::too_many_arguments)]
    pub fn released(
        &mut self,
        m: &MessageFacts<'_>,
        key_id: KeyId,
        kind: ReleaseKind,
        served: &[EmailAddress],
        listed: &[EmailAddress],
        cert: CertId,
        party: Party,
        at_ms: u64,
    ) {
        self.checks += 1;
        if let Some(due) = self.due.get_mut(&key_id)
            && kind != ReleaseKind::Gateway
        {
            for a in served {
                due.unserved.remove(a);
            }
            if due.unserved.is_empty() && due.all_served_ms.is_none() {
                due.all_served_ms = Some(at_ms);
                self.deadlines.insert((at_ms.saturating_add(self.retention_ms), key_id));
            }
        }
        if self.destroyed.contains(&key_id) {
            self.violation("release_after_destruction", format!("message {}", m.id));
        }
        match kind {
            ReleaseKind::Gateway => {
                if party != Party::SenderGateway(m.sender_org) {
                    self.violation("gateway_release_to_other", format!("message {} to {party:?}", m.id));
                }
            }
            ReleaseKind::First | ReleaseKind::Redelivery => {
                for a in served {
                    if !listed.contains(a) {
                        self.violation("release_to_unlisted", format!("message {} to {a}", m.id));
                        continue;
                    }
                    match self.first.get(&(key_id, a.clone())) {
                        None => {
                            self.first.insert((key_id, a.clone()), cert);
                        }
                        Some(c) if self.policy == ReleasePolicy::SameCertificate && *c == cert => {}
                        Some(_) => {
                            let d = format!("message {} to {a} under {:?}", m.id, self.policy);
                            self.violation("second_release", d);
                        }
                    }
                }
            }
        }
    }

    /// `party` now holds the key of `m`.
    pub fn learned(&mut self, m: &MessageFacts<'_>, party: Party) {
        self.checks += 1;
        let allowed = match party {
            Party::Sender(u) => u == m.sender,
            Party::Recipient(u) => m.recipients.contains(&u),
            Party::SenderGateway(o) => o == m.sender_org,
            Party::RecipientGateway(_) => false,
            Party::Attacker { victim } => {
                if m.recipients.contains(&victim) {
                    self.exposed.insert(m.id);
                    true
                } else {
                    false
                }
            }
        };
        if !allowed {
            self.violation("unauthorised_holder", format!("message {} key held by {party:?}", m.id));
        }
        self.knowledge.insert((m.id, party));
    }

    /// The gatekeeper destroyed `key_id`.
    pub fn destroyed(&mut self, key_id: KeyId) {
        self.destroyed.insert(key_id);
    }

    /// Whether `key_id` is known destroyed.
    pub fn is_destroyed(&self, key_id: &KeyId) -> bool {
        self.destroyed.contains(key_id)
    }

    /// At a sweep at `now_ms`: every key past its destruction time (all served plus the
    /// retention, or its expiry) must be gone from its store, as `held` says (`None`: not
    /// this sweep's gatekeeper, looked at by its own). Keys seen gone are no longer tracked.
    pub fn check_destruction(&mut self, now_ms: u64, mut held: impl FnMut(&KeyId) -> Option<bool>) {
        self.checks += 1;
        let due: Vec<(u64, KeyId)> = self.deadlines.range(..=(now_ms, KeyId([0xff; 16]))).copied().collect();
        for (at, key_id) in due {
            if !self.due.contains_key(&key_id) {
                self.deadlines.remove(&(at, key_id));
                continue;
            }
            match held(&key_id) {
                None => {}
                Some(false) => {
                    self.deadlines.remove(&(at, key_id));
                    self.due.remove(&key_id);
                }
                Some(true) => {
                    self.deadlines.remove(&(at, key_id));
                    self.due.remove(&key_id);
                    let key = hex::encode(key_id.0);
                    self.violation("key_not_destroyed", format!("key {key} still in the store at {now_ms} ms"));
                }
            }
        }
    }

    /// A recipient who does not hold the label of message `msg` read it (late binding: the
    /// gatekeeper's policy must have withheld the key).
    pub fn unentitled_read(&mut self, msg: usize, user: usize) {
        self.violation("unentitled_read", format!("message {msg} read by user {user}, who lacks its label"));
    }

    /// A violation found by a gatekeeper's own ledger check.
    pub fn ledger_violation(&mut self, org: &str, detail: String) {
        self.violation("ledger_invariant", format!("{org}: {detail}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn each_violation_is_caught() {
        let facts = MessageFacts { id: 0, sender: 0, sender_org: 0, recipients: &[1, 2] };
        let listed = [addr("u1@a.example"), addr("u2@b.example")];
        let (k, c1, c2) = (KeyId([1; 16]), CertId([1; 32]), CertId([2; 32]));

        let mut o = Observer::new(ReleasePolicy::SameCertificate, 0);
        o.issued(k, 0, &listed, 1_000_000);
        o.key_bytes(0, [9; 32]);
        o.released(&facts, k, ReleaseKind::First, &listed[..1], &listed, c1, Party::Recipient(1), 0);
        o.released(&facts, k, ReleaseKind::Redelivery, &listed[..1], &listed, c1, Party::Recipient(1), 0);
        o.learned(&facts, Party::Recipient(1));
        o.learned(&facts, Party::SenderGateway(0));
        o.learned(&facts, Party::Attacker { victim: 2 });
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.exposed.len(), 1);

        o.issued(k, 1, &listed, 1_000_000);
        o.key_bytes(1, [9; 32]);
        o.released(&facts, k, ReleaseKind::First, &listed[..1], &listed, c2, Party::Recipient(1), 0);
        o.released(&facts, k, ReleaseKind::First, &[addr("x@c.example")], &listed, c2, Party::Recipient(3), 0);
        o.released(&facts, k, ReleaseKind::Gateway, &[], &listed, c2, Party::RecipientGateway(1), 0);
        o.learned(&facts, Party::RecipientGateway(1));
        o.learned(&facts, Party::Attacker { victim: 7 });
        o.destroyed(k);
        o.released(&facts, k, ReleaseKind::Redelivery, &listed[..1], &listed, c1, Party::Recipient(1), 0);
        let codes: Vec<&str> = o.violations.iter().filter_map(|v| v.split(':').next()).collect();
        assert_eq!(
            codes,
            [
                "key_id_reused",
                "key_reused",
                "second_release",
                "release_to_unlisted",
                "gateway_release_to_other",
                "unauthorised_holder",
                "unauthorised_holder",
                "release_after_destruction",
            ]
        );
    }

    #[test]
    fn once_allows_no_redelivery() {
        let facts = MessageFacts { id: 0, sender: 0, sender_org: 0, recipients: &[1] };
        let listed = [addr("u1@a.example")];
        let (k, c1) = (KeyId([1; 16]), CertId([1; 32]));
        let mut o = Observer::new(ReleasePolicy::Once, 0);
        o.released(&facts, k, ReleaseKind::First, &listed, &listed, c1, Party::Recipient(1), 0);
        assert!(o.violations.is_empty());
        o.released(&facts, k, ReleaseKind::Redelivery, &listed, &listed, c1, Party::Recipient(1), 0);
        assert_eq!(o.violations.len(), 1);
    }

    #[test]
    fn a_key_left_in_the_store_past_its_time_is_caught() {
        let facts = MessageFacts { id: 0, sender: 0, sender_org: 0, recipients: &[1, 2] };
        let listed = [addr("u1@a.example"), addr("u2@b.example")];
        let (k, c1) = (KeyId([1; 16]), CertId([1; 32]));
        let mut o = Observer::new(ReleasePolicy::Once, 60_000);
        o.issued(k, 0, &listed, 100_000);
        o.released(&facts, k, ReleaseKind::First, &listed[..1], &listed, c1, Party::Recipient(1), 1_000);
        // One address still owed: no deadline but the expiry.
        o.check_destruction(50_000, |_| Some(true));
        assert!(o.violations.is_empty());
        o.released(&facts, k, ReleaseKind::First, &listed[1..], &listed, c1, Party::Recipient(2), 2_000);
        // All served at 2 s: due at 2 s + the retention of 60 s.
        o.check_destruction(61_000, |_| Some(true));
        assert!(o.violations.is_empty());
        o.check_destruction(62_000, |_| Some(true));
        assert_eq!(o.violations.len(), 1, "{:?}", o.violations);
        assert!(o.violations[0].starts_with("key_not_destroyed"));
        // Expiry alone, and a key seen gone is not tracked again.
        let k2 = KeyId([2; 16]);
        o.issued(k2, 1, &listed, 10_000);
        o.check_destruction(10_000, |_| Some(false));
        o.check_destruction(20_000, |_| Some(true));
        assert_eq!(o.violations.len(), 1, "{:?}", o.violations);
        // Another gatekeeper's key waits for its own sweep.
        let k3 = KeyId([3; 16]);
        o.issued(k3, 2, &listed, 10_000);
        o.check_destruction(11_000, |_| None);
        assert_eq!(o.violations.len(), 1, "{:?}", o.violations);
        o.check_destruction(11_000, |k| Some(*k == k3));
        assert_eq!(o.violations.len(), 2, "{:?}", o.violations);
    }
}
