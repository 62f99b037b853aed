//! Late binding: every message goes through its sender organisation's gatekeeper, with
//! `ekg-core`'s own roles and real CMS bytes, on a lossy network with outages and crashes.
//!
//! Clients retry on a timeout with a fresh signed request (doubling the interval up to the
//! scenario's bound); the sender treats `duplicate_request` as "wait". A gatekeeper crash
//! loses the answer to the request being handled (after its record was made durable) and the
//! gatekeeper's memory; the restarted gatekeeper recovers its ledger from the store.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use ekg_core::KeyId;
use ekg_core::ledger::{Concrete, KeyState, MemoryStore};
use ekg_core::role::{Gatekeeper, PendingKeyRequest, PendingRelease, ReceivedMessage};
use ekg_core::{EmailAddress, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sha2::{Digest as _, Sha256};

use crate::draw::Draw;
use crate::error::SimError;
use crate::invariants::{MessageFacts, Observer, Party};
use crate::metered::Role;
use crate::metrics::{Attribution, KeyLife, SchemeReport, Stats};
use crate::queue::Queue;
use crate::scenario::{Plant, Scenario};
use crate::workload::Message;
use crate::workload::mail_copies;
use crate::world::{World, fault_phase_end_ms, ops};

/// Suffix of the loss reason of a recipient whose key had been stolen before it fetched.
const AFTER_THEFT: &str = "_after_key_theft";

/// Attempts after which a client gives up (never reached when the network heals).
const MAX_ATTEMPTS: u32 = 64;

mod client;
mod events;
mod fetch;
mod gatekeepers;
mod issue;

use client::*;
use events::*;

/// One late-binding run.
pub struct LateRun<'a> {
    /// Seed of the message bodies' stream.
    body_seed: u64,
    sc: &'a Scenario,
    w: &'a World,
    msgs: &'a [Message],
    q: Queue<Ev>,
    gks: Vec<GkSlot>,
    net: ChaCha20Rng,
    rng: ChaCha20Rng,
    state: Vec<MsgState>,
    fetches: Vec<Fetch>,
    obs: Observer,
    rep: SchemeReport,
    rps: BTreeMap<u64, u64>,
    trace: Sha256,
    fault_end_ms: u64,
    base: UnixTime,
    pending_work: u64,
    compromised: BTreeMap<usize, (u64, usize)>,
    /// (read start, latency), virtual ms.
    read_latency: Vec<(u64, u64)>,
    /// (submission, latency), virtual ms.
    send_latency: Vec<(u64, u64)>,
    cost: Attribution,
    lifetimes: Vec<f64>,
    issued: u64,
    /// Every key issued, in order, and its index there by key id.
    lives: Vec<KeyLife>,
    life_of: BTreeMap<KeyId, usize>,
    /// Per user, whether it holds the scenario's label (every user when there is none).
    entitled: Vec<bool>,
}

impl<'a> LateRun<'a> {
    /// Prepares a run.
    pub fn new(
        sc: &'a Scenario,
        w: &'a World,
        msgs: &'a [Message],
        net_seed: u64,
        crypto_seed: u64,
        base: UnixTime,
    ) -> Result<LateRun<'a>, SimError> {
        let mut gks = Vec::new();
        for o in 0..w.orgs.len() {
            gks.push(GkSlot {
                gk: Some(w.gatekeeper(o, sc, MemoryStore::new())?),
                store: None,
                outage: false,
                armed: None,
                live: BTreeMap::new(),
                sweep_at: None,
            });
        }
        let mut state = Vec::with_capacity(msgs.len());
        let mut body_word = 0u128;
        for m in msgs {
            let listed =
                m.recipients.iter().map(|r| w.user(*r).map(|u| u.address.clone())).collect::<Result<Vec<_>, _>>()?;
            state.push(MsgState {
                attempt: 0,
                pending: None,
                backoff_ms: sc.network.timeout_ms,
                sent_ms: None,
                given_up: None,
                sealed: None,
                body_word,
                body_digest: None,
                key_id: None,
                listed,
                pairs: vec![Pair::Waiting; m.recipients.len()],
                delivered: vec![false; m.recipients.len()],
                expires_ms: u64::MAX,
            });
            // The stream yields whole 32-bit words: a body of n bytes uses ceil(n / 4).
            body_word += (m.size as u128).div_ceil(4);
        }
        let policy = sc.gatekeeper.policy;
        let entitled = w
            .users
            .iter()
            .map(|u| w.labels.as_ref().is_none_or(|(label, p)| crate::labels::holds(p, label, &u.address)))
            .collect();
        Ok(LateRun {
            sc,
            w,
            msgs,
            q: Queue::default(),
            gks,
            net: ChaCha20Rng::seed_from_u64(net_seed),
            rng: ChaCha20Rng::seed_from_u64(crypto_seed),
            body_seed: crypto_seed ^ 0x5eed,
            state,
            fetches: Vec::new(),
            obs: Observer::new(policy, sc.gatekeeper.retention_secs * 1000),
            rep: SchemeReport { scheme: "late".into(), messages: msgs.len() as u64, ..Default::default() },
            rps: BTreeMap::new(),
            trace: Sha256::new(),
            fault_end_ms: fault_phase_end_ms(sc),
            base,
            pending_work: 0,
            compromised: BTreeMap::new(),
            read_latency: Vec::new(),
            send_latency: Vec::new(),
            cost: Attribution::default(),
            lifetimes: Vec::new(),
            issued: 0,
            lives: Vec::new(),
            life_of: BTreeMap::new(),
            entitled,
        })
    }

    fn now_ms(&self) -> u64 {
        self.q.now_ms()
    }

    fn now(&self) -> UnixTime {
        self.base.plus_secs(self.now_ms() / 1000)
    }

    fn schedule(&mut self, delay_ms: u64, ev: Ev) {
        if !matches!(ev, Ev::Sweep(_)) {
            self.pending_work += 1;
        }
        self.q.after(delay_ms, ev);
    }

    fn faulty(&self) -> bool {
        self.now_ms() < self.fault_end_ms
    }

    /// Sends a client-gatekeeper message: latency, then loss and duplication in the fault
    /// phase.
    fn transmit(&mut self, cross_org: bool, ev: Ev) {
        let latency = if cross_org { self.sc.network.cross_org_latency_ms } else { self.sc.network.latency_ms };
        if self.faulty() && self.net.chance(self.sc.faults.loss) {
            self.trace_line(&format!("lost {}", ev.label()));
            return;
        }
        if self.faulty() && self.net.chance(self.sc.faults.duplication) {
            let extra = self.net.below(latency.max(1));
            self.schedule(latency + 1 + extra, ev.clone());
        }
        self.schedule(latency, ev);
    }

    fn trace_line(&mut self, line: &str) {
        self.trace.update(self.now_ms().to_be_bytes());
        self.trace.update(line.as_bytes());
        self.trace.update([b'\n']);
    }

    fn facts(&self, msg: usize) -> Result<MessageFacts<'a>, SimError> {
        let m = self.msgs.get(msg).ok_or_else(|| SimError::Internal("message".into()))?;
        let sender_org = self.w.user(m.sender)?.org;
        Ok(MessageFacts { id: m.id, sender: m.sender, sender_org, recipients: &m.recipients })
    }

    fn msg(&self, msg: usize) -> Result<&'a Message, SimError> {
        self.msgs.get(msg).ok_or_else(|| SimError::Internal("message".into()))
    }

    fn st(&mut self, msg: usize) -> Result<&mut MsgState, SimError> {
        self.state.get_mut(msg).ok_or_else(|| SimError::Internal("message state".into()))
    }

    fn fetch(&mut self, f: usize) -> Result<&mut Fetch, SimError> {
        self.fetches.get_mut(f).ok_or_else(|| SimError::Internal("fetch".into()))
    }

    fn version_at(&self, user: usize, at_ms: u64) -> usize {
        match self.w.users.get(user).and_then(|u| u.rotates_at_ms) {
            Some(t) if at_ms >= t => 1,
            _ => 0,
        }
    }

    /// Runs to the end; `progress(done, total)` is called now and then.
    pub fn run(mut self, progress: &mut dyn FnMut(u64, u64)) -> Result<(SchemeReport, [u8; 32]), SimError> {
        let started = Instant::now();
        let crypto_before = self.w.provider.crypto_secs();
        let ops_before = ops(self.w);
        self.cost = Attribution::new(self.msgs.len(), self.totals());
        for m in self.msgs {
            self.pending_work += 1;
            self.q.at(m.submit_ms, Ev::Submit(m.id));
        }
        for o in &self.sc.faults.outages {
            if let Some(org) = self.w.orgs.iter().position(|x| x.domain == o.org) {
                self.pending_work += 2;
                self.q.at(o.at_secs * 1000, Ev::Outage { org, down: true });
                self.q.at((o.at_secs + o.for_secs) * 1000, Ev::Outage { org, down: false });
            }
        }
        for c in &self.sc.faults.crashes {
            if let Some(org) = self.w.orgs.iter().position(|x| x.domain == c.org) {
                self.pending_work += 1;
                self.q.at(c.at_secs * 1000, Ev::Crash { org, restart_after_ms: c.restart_after_secs * 1000 });
            }
        }
        for c in &self.sc.faults.compromised {
            let a = EmailAddress::parse(&c.user).map_err(SimError::core)?;
            if let Some(u) = self.w.by_address.get(&a) {
                self.pending_work += 1;
                self.q.at(c.at_secs * 1000, Ev::Compromise(*u));
            }
        }
        let total = self.msgs.len() as u64;
        let mut submitted = 0u64;
        while let Some((_, ev)) = self.q.pop() {
            if !matches!(ev, Ev::Sweep(_)) {
                self.pending_work = self.pending_work.saturating_sub(1);
            }
            if matches!(ev, Ev::Submit(_)) {
                submitted += 1;
            }
            self.rep.events += 1;
            if self.rep.events.is_multiple_of(512) {
                progress(submitted, total);
            }
            let label = ev.label();
            let msg = self.message_of(&ev);
            let outcome = self.handle(ev)?;
            self.charge(msg);
            self.trace_line(&format!("{label} -> {outcome}"));
        }
        progress(total, total);
        self.finish(started, crypto_before, &ops_before)
    }

    /// Bytes on the wire and RSA (private, public) operations so far.
    fn totals(&self) -> [u64; 3] {
        let (private, public) = self.w.provider.totals();
        [self.rep.total_bytes(), private, public]
    }

    /// Charges what was spent since the last charge to message `msg`.
    fn charge(&mut self, msg: Option<usize>) {
        let now = self.totals();
        self.cost.charge(msg, now);
    }

    /// The message an event belongs to (`None`: a gatekeeper's own events, a compromise).
    fn message_of(&self, ev: &Ev) -> Option<usize> {
        let of_fetch = |f: &usize| self.fetches.get(*f).map(|x| x.msg);
        match ev {
            Ev::Submit(m) | Ev::SenderRetry(m, _) => Some(*m),
            Ev::KeyRequestAtGk { msg, .. }
            | Ev::IssuanceAtSender { msg, .. }
            | Ev::RefusalAtSender { msg, .. }
            | Ev::Mail { msg, .. }
            | Ev::Read { msg, .. } => Some(*msg),
            Ev::FetchStart(f) | Ev::FetchRetry(f, _) => of_fetch(f),
            Ev::ReleaseRequestAtGk { fetch, .. }
            | Ev::ReleaseAtClient { fetch, .. }
            | Ev::RefusalAtClient { fetch, .. } => of_fetch(fetch),
            Ev::Sweep(_)
            | Ev::Crash { .. }
            | Ev::CrashNow(_)
            | Ev::Restart(_)
            | Ev::Outage { .. }
            | Ev::Compromise(_) => None,
        }
    }

    fn handle(&mut self, ev: Ev) -> Result<String, SimError> {
        Ok(match ev {
            Ev::Submit(m) => self.send_key_request(m)?,
            Ev::SenderRetry(m, attempt) => {
                let sc = self.sc;
                let s = self.st(m)?;
                if s.sent_ms.is_some() || s.given_up.is_some() || s.attempt != attempt {
                    return Ok("stale".into());
                }
                if attempt >= MAX_ATTEMPTS {
                    s.given_up = Some("sender_gave_up".into());
                    return Ok("gave up".into());
                }
                s.backoff_ms = (s.backoff_ms * 2).min(sc.network.max_backoff_ms);
                self.send_key_request(m)?
            }
            Ev::KeyRequestAtGk { org, msg, attempt, der } => self.gk_key_request(org, msg, attempt, &der)?,
            Ev::IssuanceAtSender { msg, attempt, grant, ticket } => {
                self.accept_issuance(msg, attempt, &grant, &ticket)?
            }
            Ev::RefusalAtSender { msg, attempt, code } => {
                let s = self.st(msg)?;
                if s.sent_ms.is_some() || s.attempt != attempt || code == "duplicate_request" {
                    return Ok("ignored".into());
                }
                s.given_up = Some(format!("send_refused:{code}"));
                code.to_owned()
            }
            Ev::Mail { msg, rcpt } => {
                let m = self.msg(msg)?;
                let user = *m.recipients.get(rcpt).ok_or_else(|| SimError::Internal("rcpt".into()))?;
                if let Some(d) = self.st(msg)?.delivered.get_mut(rcpt) {
                    *d = true;
                }
                match m.read_after_ms.get(rcpt).copied().flatten() {
                    Some(after) => self.schedule(after, Ev::Read { msg, rcpt }),
                    None => {
                        if let Some(p) = self.st(msg)?.pairs.get_mut(rcpt) {
                            *p = Pair::NeverRead;
                        }
                    }
                }
                if let Some((at, _)) = self.compromised.get(&user)
                    && *at <= self.now_ms()
                {
                    self.start_fetch(msg, Who::Attacker(user), None)?;
                }
                "delivered".into()
            }
            Ev::Read { msg, rcpt } => {
                let user = *self.msg(msg)?.recipients.get(rcpt).ok_or_else(|| SimError::Internal("rcpt".into()))?;
                // A recipient whose certificate was lost reads once its new one is issued.
                let u = self.w.user(user)?;
                if let (Some(lost_at), Some(reissued)) = (u.rotates_at_ms, u.reissued_at_ms)
                    && (lost_at..reissued).contains(&self.now_ms())
                {
                    let wait = reissued - self.now_ms();
                    self.rep.reads_delayed_by_lost_certificate += 1;
                    self.schedule(wait, Ev::Read { msg, rcpt });
                    return Ok("waits for its new certificate".into());
                }
                self.start_fetch(msg, Who::Recipient(user), Some(rcpt))?;
                "reading".into()
            }
            Ev::FetchStart(f) => self.fetch_attempt(f)?,
            Ev::FetchRetry(f, attempt) => {
                let sc = self.sc;
                let fe = self.fetch(f)?;
                if fe.done || fe.attempt != attempt {
                    return Ok("stale".into());
                }
                if attempt >= MAX_ATTEMPTS {
                    return self.finish_fetch(f, Err("client_gave_up".into()));
                }
                fe.backoff_ms = (fe.backoff_ms * 2).min(sc.network.max_backoff_ms);
                self.fetch_attempt(f)?
            }
            Ev::ReleaseRequestAtGk { org, fetch, attempt, der } => self.gk_release(org, fetch, attempt, &der)?,
            Ev::ReleaseAtClient { fetch, attempt, der } => self.accept_release(fetch, attempt, &der)?,
            Ev::RefusalAtClient { fetch, attempt, code } => {
                let fe = self.fetch(fetch)?;
                if fe.done || fe.attempt != attempt {
                    return Ok("ignored".into());
                }
                self.finish_fetch(fetch, Err(code.to_owned()))?
            }
            Ev::Sweep(org) => self.sweep(org)?,
            Ev::Crash { org, restart_after_ms } => {
                if let Some(slot) = self.gks.get_mut(org) {
                    slot.armed = Some(restart_after_ms);
                }
                self.schedule(1000, Ev::CrashNow(org));
                "armed".into()
            }
            Ev::CrashNow(org) => self.crash(org)?,
            Ev::Restart(org) => {
                let store = self.gks.get_mut(org).and_then(|s| s.store.take()).unwrap_or_default();
                let gk = self.w.gatekeeper(org, self.sc, store)?;
                let held = gk.store().ledger(*gk.rules().config()).map_err(SimError::core)?.held_keys();
                if let Some(slot) = self.gks.get_mut(org) {
                    slot.gk = Some(gk);
                }
                // What fell due while it was down is due now.
                self.reap(org)?;
                self.arm_sweep(org);
                format!("recovered {held} keys")
            }
            Ev::Outage { org, down } => {
                if let Some(slot) = self.gks.get_mut(org) {
                    slot.outage = down;
                }
                "ok".into()
            }
            Ev::Compromise(user) => {
                let version = self.version_at(user, self.now_ms());
                self.compromised.insert(user, (self.now_ms(), version));
                let mut targets = Vec::new();
                for (i, m) in self.msgs.iter().enumerate() {
                    for (r, u) in m.recipients.iter().enumerate() {
                        if *u == user && self.state.get(i).is_some_and(|s| s.delivered.get(r) == Some(&true)) {
                            targets.push(i);
                        }
                    }
                }
                for m in &targets {
                    self.start_fetch(*m, Who::Attacker(user), None)?;
                    self.charge(Some(*m));
                }
                format!("{} messages targeted", targets.len())
            }
        })
    }

    fn finish(
        mut self,
        started: Instant,
        crypto_before: f64,
        ops_before: &BTreeMap<Role, crate::metered::OpCounts>,
    ) -> Result<(SchemeReport, [u8; 32]), SimError> {
        let mut rep = std::mem::take(&mut self.rep);
        rep.wall_secs = started.elapsed().as_secs_f64();
        rep.crypto_secs = self.w.provider.crypto_secs() - crypto_before;
        rep.set_ops(ops_before, &ops(self.w));
        rep.virtual_secs = self.q.now_ms() as f64 / 1000.0;
        for (i, s) in self.state.iter().enumerate() {
            let m = self.msgs.get(i).ok_or_else(|| SimError::Internal("message".into()))?;
            let sender_org = self.w.user(m.sender)?.org;
            rep.labelled.messages += u64::from(m.labelled);
            if s.sent_ms.is_some() {
                rep.messages_encrypted_for_all += 1;
            } else {
                rep.messages_not_encrypted += 1;
                rep.messages_not_encrypted_for_some += 1;
            }
            for (r, pair) in s.pairs.iter().enumerate() {
                rep.pairs += 1;
                let user = *m.recipients.get(r).ok_or_else(|| SimError::Internal("rcpt".into()))?;
                let rorg = self.w.user(user)?.org;
                let reads = m.read_after_ms.get(r).copied().flatten();
                // Owed: the recipient reads before the ticket expires, and each side trusts
                // the other's CA (the gatekeeper the recipient, the recipient the gatekeeper).
                let in_time = reads.is_some_and(|after| {
                    s.sent_ms.is_none_or(|sent| sent + self.sc.network.mail_latency_ms + after < s.expires_ms)
                });
                let entitled = self.entitled.get(user).copied().unwrap_or(false);
                // A labelled message is owed only to a recipient holding its label.
                let owed = in_time
                    && self.w.trusts(sender_org, rorg)
                    && self.w.trusts(rorg, sender_org)
                    && (!m.labelled || entitled);
                if m.labelled {
                    let l = &mut rep.labelled;
                    *(if entitled { &mut l.pairs_entitled } else { &mut l.pairs_unentitled }) += 1;
                    match pair {
                        Pair::Read => *(if entitled { &mut l.read_entitled } else { &mut l.read_unentitled }) += 1,
                        Pair::Lost(code) if code.starts_with("entitlement_") => l.withheld += 1,
                        _ => {}
                    }
                }
                match pair {
                    Pair::Read => rep.pairs_readable += 1,
                    Pair::NeverRead => {
                        rep.pairs_never_read += 1;
                    }
                    Pair::Lost(code) => {
                        rep.lose(code);
                        rep.owed_undelivered += u64::from(owed && !code.ends_with(AFTER_THEFT));
                    }
                    Pair::Waiting => {
                        if reads.is_none() {
                            rep.pairs_never_read += 1;
                        } else {
                            rep.lose(s.given_up.as_deref().unwrap_or("never_sent"));
                            rep.owed_undelivered += u64::from(owed);
                        }
                    }
                }
            }
        }
        let sent = self.state.iter().filter(|s| s.sent_ms.is_some()).count() as u64;
        rep.orphan_keys = self.issued.saturating_sub(sent);
        rep.exposed_messages = self.obs.exposed.len() as u64;
        rep.exposed_submitted_ms =
            self.obs.exposed.iter().filter_map(|m| self.msgs.get(*m)).map(|m| m.submit_ms).collect();
        rep.exposed_submitted_ms.sort_unstable();
        rep.violations = std::mem::take(&mut self.obs.violations);
        rep.checks = self.obs.checks;
        let secs = |v: &[(u64, u64)]| v.iter().map(|(_, l)| *l as f64 / 1000.0).collect::<Vec<f64>>();
        rep.read_latency_secs = Stats::of(secs(&self.read_latency));
        rep.send_latency_secs = Stats::of(secs(&self.send_latency));
        rep.read_latency_ms = std::mem::take(&mut self.read_latency);
        rep.send_latency_ms = std::mem::take(&mut self.send_latency);
        rep.by_list_size = self.cost.by_list_size(self.msgs.iter().map(|m| m.recipients.len()));
        rep.key_lifetime_secs = Stats::of(std::mem::take(&mut self.lifetimes));
        let mut lives = std::mem::take(&mut self.lives);
        for (i, l) in lives.iter_mut().enumerate() {
            let sealed_under = self.state.get(l.msg).and_then(|s| s.key_id);
            l.used = sealed_under.and_then(|k| self.life_of.get(&k)) == Some(&i);
        }
        rep.key_lives = lives;
        rep.finish(&self.rps);
        Ok((rep, self.trace.finalize().into()))
    }
}
