//! Late binding: every message goes through its sender organisation's gatekeeper, with
//! `ekg-core`'s own roles and real CMS bytes, on a lossy network with outages and crashes.
//!
//! Clients retry on a timeout with a fresh signed request (doubling the interval up to the
//! scenario's bound); the sender treats `duplicate_request` as "wait". A gatekeeper crash
//! loses the answer to the request being handled (after its record was made durable) and the
//! gatekeeper's memory; the restarted gatekeeper recovers its ledger from the store.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Instant;

use ekg_core::ids::KeyId;
use ekg_core::ledger::{Concrete, KeyState, MemoryStore, ReleasePolicy};
use ekg_core::role::{Gatekeeper, PendingKeyRequest, PendingRelease, ReceivedMessage};
use ekg_core::{EmailAddress, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sha2::{Digest as _, Sha256};

use crate::SimError;
use crate::draw::Draw;
use crate::invariants::{MessageFacts, Observer, Party};
use crate::metered::Role;
use crate::metrics::{SchemeReport, Stats};
use crate::queue::Queue;
use crate::scenario::{Plant, Scenario};
use crate::workload::Message;
use crate::world::{World, fault_phase_end_ms};

/// Suffix of the loss reason of a recipient whose key had been stolen before it fetched.
const AFTER_THEFT: &str = "_after_key_theft";

/// Attempts after which a client gives up (never reached when the network heals).
const MAX_ATTEMPTS: u32 = 64;

#[derive(Clone, Debug)]
enum Ev {
    Submit(usize),
    SenderRetry(usize, u32),
    KeyRequestAtGk {
        org: usize,
        msg: usize,
        attempt: u32,
        der: Rc<Vec<u8>>,
    },
    IssuanceAtSender {
        msg: usize,
        attempt: u32,
        grant: Rc<Vec<u8>>,
        ticket: Rc<Vec<u8>>,
    },
    RefusalAtSender {
        msg: usize,
        attempt: u32,
        code: &'static str,
    },
    Mail {
        msg: usize,
        rcpt: usize,
    },
    Read {
        msg: usize,
        rcpt: usize,
    },
    FetchStart(usize),
    FetchRetry(usize, u32),
    ReleaseRequestAtGk {
        org: usize,
        fetch: usize,
        attempt: u32,
        der: Rc<Vec<u8>>,
    },
    ReleaseAtClient {
        fetch: usize,
        attempt: u32,
        der: Rc<Vec<u8>>,
    },
    RefusalAtClient {
        fetch: usize,
        attempt: u32,
        code: &'static str,
    },
    /// A gatekeeper's sweep, at its `poll_timeout`.
    Sweep(usize),
    Crash {
        org: usize,
        restart_after_ms: u64,
    },
    CrashNow(usize),
    Restart(usize),
    Outage {
        org: usize,
        down: bool,
    },
    Compromise(usize),
}

impl Ev {
    fn label(&self) -> String {
        match self {
            Ev::Submit(m) => format!("submit {m}"),
            Ev::SenderRetry(m, a) => format!("sender-retry {m} {a}"),
            Ev::KeyRequestAtGk { org, msg, attempt, der } => format!("key-request {org} {msg} {attempt} {}", der.len()),
            Ev::IssuanceAtSender { msg, attempt, grant, ticket } => {
                format!("issuance {msg} {attempt} {} {}", grant.len(), ticket.len())
            }
            Ev::RefusalAtSender { msg, attempt, code } => format!("sender-refused {msg} {attempt} {code}"),
            Ev::Mail { msg, rcpt } => format!("mail {msg} {rcpt}"),
            Ev::Read { msg, rcpt } => format!("read {msg} {rcpt}"),
            Ev::FetchStart(f) => format!("fetch {f}"),
            Ev::FetchRetry(f, a) => format!("fetch-retry {f} {a}"),
            Ev::ReleaseRequestAtGk { org, fetch, attempt, der } => {
                format!("release-request {org} {fetch} {attempt} {}", der.len())
            }
            Ev::ReleaseAtClient { fetch, attempt, der } => format!("release {fetch} {attempt} {}", der.len()),
            Ev::RefusalAtClient { fetch, attempt, code } => format!("fetch-refused {fetch} {attempt} {code}"),
            Ev::Sweep(o) => format!("sweep {o}"),
            Ev::Crash { org, .. } => format!("crash {org}"),
            Ev::CrashNow(o) => format!("crash-now {o}"),
            Ev::Restart(o) => format!("restart {o}"),
            Ev::Outage { org, down } => format!("outage {org} {down}"),
            Ev::Compromise(u) => format!("compromise {u}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Recipient(usize),
    SenderGateway(usize),
    RecipientGateway(usize),
    Attacker(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pair {
    Waiting,
    NeverRead,
    Read,
    Lost(String),
}

struct MsgState {
    attempt: u32,
    pending: Option<PendingKeyRequest>,
    backoff_ms: u64,
    sent_ms: Option<u64>,
    given_up: Option<String>,
    sealed: Option<Rc<Vec<u8>>>,
    /// Where this message's body starts in the body stream (ChaCha20 words): the body is
    /// made when the message is sealed, never held for the whole run.
    body_word: u128,
    /// SHA-256 of the body, once sealed (what a recipient reads must equal it).
    body_digest: Option<[u8; 32]>,
    key_id: Option<KeyId>,
    listed: Vec<EmailAddress>,
    pairs: Vec<Pair>,
    delivered: Vec<bool>,
    expires_ms: u64,
}

struct Fetch {
    msg: usize,
    who: Who,
    rcpt: Option<usize>,
    version: usize,
    attempt: u32,
    backoff_ms: u64,
    started_ms: u64,
    received: Option<ReceivedMessage>,
    pending: Option<PendingRelease>,
    done: bool,
}

struct GkSlot {
    gk: Option<Gatekeeper<MemoryStore<Concrete>>>,
    store: Option<MemoryStore<Concrete>>,
    outage: bool,
    armed: Option<u64>,
    live: BTreeMap<KeyId, u64>,
    /// When this gatekeeper's next sweep is scheduled (ms), if one is: at its
    /// `poll_timeout`, never by a fixed tick.
    sweep_at: Option<u64>,
}

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
    read_latency: Vec<f64>,
    send_latency: Vec<f64>,
    lifetimes: Vec<f64>,
    issued: u64,
}

/// Crypto roles for a fetcher.
fn role_of(who: Who) -> Role {
    match who {
        Who::Recipient(_) => Role::Recipient,
        Who::SenderGateway(_) => Role::SenderGateway,
        Who::RecipientGateway(_) => Role::RecipientGateway,
        Who::Attacker(_) => Role::Attacker,
    }
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
        let policy = if sc.gatekeeper.policy == "once" { ReleasePolicy::Once } else { ReleasePolicy::SameCertificate };
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
            lifetimes: Vec::new(),
            issued: 0,
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
            let outcome = self.handle(ev)?;
            self.trace_line(&format!("{label} -> {outcome}"));
        }
        progress(total, total);
        self.finish(started, crypto_before, &ops_before)
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
                let held = gk.ledger().held_keys();
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
                }
                format!("{} messages targeted", targets.len())
            }
        })
    }

    fn gk_up(&self, org: usize) -> bool {
        self.gks.get(org).is_some_and(|s| s.gk.is_some() && !s.outage)
    }

    fn count_request(&mut self) {
        *self.rps.entry(self.now_ms() / 1000).or_default() += 1;
    }

    fn send_key_request(&mut self, msg: usize) -> Result<String, SimError> {
        let m = self.msg(msg)?;
        let sender = self.w.user(m.sender)?;
        let now = self.now();
        let listed = self.st(msg)?.listed.clone();
        self.w.provider.act_as(Role::Sender);
        let pending = sender
            .versions
            .get(self.version_at(m.sender, self.now_ms()))
            .ok_or_else(|| SimError::Internal("version".into()))?
            .sender
            .request_key(&listed, now, &mut self.rng)
            .map_err(SimError::core)?;
        let der = Rc::new(pending.der.clone());
        self.rep.add_bytes("key_request", der.len());
        let s = self.st(msg)?;
        s.attempt += 1;
        let attempt = s.attempt;
        s.pending = Some(pending);
        let backoff = s.backoff_ms;
        self.transmit(false, Ev::KeyRequestAtGk { org: sender.org, msg, attempt, der });
        self.schedule(backoff, Ev::SenderRetry(msg, attempt));
        Ok(format!("attempt {attempt}"))
    }

    fn gk_key_request(&mut self, org: usize, msg: usize, attempt: u32, der: &[u8]) -> Result<String, SimError> {
        if !self.gk_up(org) {
            return Ok("gatekeeper down".into());
        }
        self.count_request();
        let now = self.now();
        self.w.provider.act_as(Role::Gatekeeper);
        let slot = self.gks.get_mut(org).ok_or_else(|| SimError::Internal("gk".into()))?;
        let Some(gk) = slot.gk.as_mut() else { return Ok("gatekeeper down".into()) };
        let result = gk.handle_key_request(der, now, &mut self.rng);
        let reply = match result {
            Ok(issuance) => {
                slot.live.insert(issuance.key_id, self.q.now_ms());
                self.sample_held();
                self.arm_sweep(org);
                let listed = self.state.get(msg).map(|s| s.listed.clone()).unwrap_or_default();
                let expires_ms = issuance.expires_at.secs().saturating_sub(self.base.secs()).saturating_mul(1000);
                self.obs.issued(issuance.key_id, msg, &listed, expires_ms);
                self.issued += 1;
                self.rep.add_bytes("grant", issuance.grant.len());
                self.rep.add_bytes("ticket", issuance.ticket.len());
                Ev::IssuanceAtSender { msg, attempt, grant: Rc::new(issuance.grant), ticket: Rc::new(issuance.ticket) }
            }
            Err(e) => Ev::RefusalAtSender { msg, attempt, code: e.code() },
        };
        let outcome = match &reply {
            Ev::RefusalAtSender { code, .. } => (*code).to_owned(),
            _ => "issued".to_owned(),
        };
        if self.gks.get(org).is_some_and(|s| s.armed.is_some()) {
            self.crash(org)?;
            return Ok(format!("{outcome}, then crashed before answering"));
        }
        self.transmit(false, reply);
        Ok(outcome)
    }

    fn crash(&mut self, org: usize) -> Result<String, SimError> {
        let volatile = self.sc.plant == Plant::VolatileStore;
        let Some(slot) = self.gks.get_mut(org) else { return Ok("no gatekeeper".into()) };
        let Some(restart_after) = slot.armed.take() else { return Ok("already crashed".into()) };
        if let Some(gk) = slot.gk.take() {
            slot.store = Some(if volatile { MemoryStore::new() } else { gk.into_store() });
        }
        self.schedule(restart_after, Ev::Restart(org));
        Ok("crashed".into())
    }

    fn accept_issuance(&mut self, msg: usize, attempt: u32, grant: &[u8], ticket: &[u8]) -> Result<String, SimError> {
        let now = self.now();
        let now_ms = self.now_ms();
        let m = self.msg(msg)?;
        let s = self.st(msg)?;
        if s.sent_ms.is_some() || s.given_up.is_some() || s.attempt != attempt {
            return Ok("stale answer".into());
        }
        let Some(pending) = s.pending.take() else { return Ok("no request".into()) };
        let body_word = s.body_word;
        let sender = self.w.user(m.sender)?;
        let version =
            sender.versions.get(self.version_at(m.sender, now_ms)).ok_or_else(|| SimError::Internal("v".into()))?;
        self.w.provider.act_as(Role::Sender);
        let key = match version.sender.accept_grant(&pending, grant, ticket, now, &mut self.rng) {
            Ok(k) => k,
            Err(e) => {
                self.st(msg)?.given_up = Some(format!("grant_refused:{}", e.code()));
                return Ok(e.code().to_owned());
            }
        };
        let body = body_at(self.body_seed, body_word, m.size);
        let sealed = version.sender.seal(&key, &body, &mut self.rng).map_err(SimError::core)?;
        let body_digest: [u8; 32] = Sha256::digest(&body).into();
        drop(body);
        let digest: [u8; 32] = Sha256::digest(key.key.expose()).into();
        let facts = self.facts(msg)?;
        self.obs.key_bytes(msg, digest);
        self.obs.learned(&facts, Party::Sender(m.sender));
        let copies = mail_copies(self.w, m);
        self.rep.add_bytes("sealed_message", sealed.len() * copies);
        let lifetime_ms = self.sc.gatekeeper.ticket_lifetime_secs * 1000;
        let s = self.st(msg)?;
        s.sealed = Some(Rc::new(sealed));
        s.body_digest = Some(body_digest);
        s.sent_ms = Some(now_ms);
        s.key_id = Some(key.key_id);
        s.expires_ms = now_ms + lifetime_ms;
        self.send_latency.push((now_ms - m.submit_ms) as f64 / 1000.0);
        let mail = self.sc.network.mail_latency_ms;
        for rcpt in 0..m.recipients.len() {
            self.schedule(mail, Ev::Mail { msg, rcpt });
        }
        if m.gateway_fetch {
            self.start_fetch(msg, Who::SenderGateway(sender.org), None)?;
        }
        for o in &m.foreign_probes {
            let f = self.new_fetch(msg, Who::RecipientGateway(*o), None);
            self.schedule(mail, Ev::FetchStart(f));
        }
        Ok("sent".into())
    }

    fn new_fetch(&mut self, msg: usize, who: Who, rcpt: Option<usize>) -> usize {
        let version = match who {
            Who::Recipient(u) => self.version_at(u, self.now_ms()),
            Who::Attacker(u) => self.compromised.get(&u).map_or(0, |(_, v)| *v),
            _ => 0,
        };
        self.fetches.push(Fetch {
            msg,
            who,
            rcpt,
            version,
            attempt: 0,
            backoff_ms: self.sc.network.timeout_ms,
            started_ms: self.now_ms(),
            received: None,
            pending: None,
            done: false,
        });
        self.fetches.len() - 1
    }

    fn start_fetch(&mut self, msg: usize, who: Who, rcpt: Option<usize>) -> Result<(), SimError> {
        let f = self.new_fetch(msg, who, rcpt);
        self.fetch_attempt(f)?;
        Ok(())
    }

    fn fetch_attempt(&mut self, f: usize) -> Result<String, SimError> {
        let now = self.now();
        let (msg, who, version) = {
            let fe = self.fetch(f)?;
            (fe.msg, fe.who, fe.version)
        };
        if matches!(who, Who::RecipientGateway(_)) {
            self.rep.foreign_gateway_attempts += u64::from(self.fetch(f)?.attempt == 0);
        }
        let sealed =
            self.state.get(msg).and_then(|s| s.sealed.clone()).ok_or_else(|| SimError::Internal("sealed".into()))?;
        let client = client_for(self.w, who, version)?;
        self.w.provider.act_as(role_of(who));
        if self.fetch(f)?.received.is_none() {
            match client.receive(&sealed, now) {
                Ok(r) => self.fetch(f)?.received = Some(r),
                Err(e) => return self.finish_fetch(f, Err(e.code().to_owned())),
            }
        }
        let received = self.fetch(f)?.received.clone().ok_or_else(|| SimError::Internal("received".into()))?;
        let pending = match client.request(&received, now, &mut self.rng) {
            Ok(p) => p,
            Err(e) => return self.finish_fetch(f, Err(e.code().to_owned())),
        };
        let org = self.w.org_by_uri(received.gatekeeper_uri()).ok_or_else(|| SimError::Internal("uri".into()))?;
        let der = Rc::new(pending.der.clone());
        self.rep.add_bytes("release_request", der.len());
        let fe = self.fetch(f)?;
        fe.attempt += 1;
        fe.pending = Some(pending);
        let (attempt, backoff) = (fe.attempt, fe.backoff_ms);
        let cross = self.w.user(self.msg(msg)?.sender)?.org != client_org(self.w, who)?;
        self.transmit(cross, Ev::ReleaseRequestAtGk { org, fetch: f, attempt, der });
        self.schedule(backoff, Ev::FetchRetry(f, attempt));
        Ok(format!("attempt {attempt}"))
    }

    fn gk_release(&mut self, org: usize, f: usize, attempt: u32, der: &[u8]) -> Result<String, SimError> {
        if !self.gk_up(org) {
            return Ok("gatekeeper down".into());
        }
        self.count_request();
        let now = self.now();
        let (msg, who, version) = {
            let fe = self.fetch(f)?;
            (fe.msg, fe.who, fe.version)
        };
        self.w.provider.act_as(Role::Gatekeeper);
        let slot = self.gks.get_mut(org).ok_or_else(|| SimError::Internal("gk".into()))?;
        let Some(gk) = slot.gk.as_mut() else { return Ok("gatekeeper down".into()) };
        let result = gk.handle_release_request(der, now, &mut self.rng);
        let facts = self.facts(msg)?;
        let listed = self.state.get(msg).map(|s| s.listed.clone()).unwrap_or_default();
        let (reply, outcome) = match result {
            Ok(release) => {
                let cert = cert_of(self.w, who, version)?;
                let at_ms = self.q.now_ms();
                self.obs.released(
                    &facts,
                    release.key_id,
                    release.kind,
                    &release.served,
                    &listed,
                    cert,
                    party(who),
                    at_ms,
                );
                self.rep.add_bytes("release", release.der.len());
                // The release may have destroyed the key, or started its retention.
                self.reap(org)?;
                self.arm_sweep(org);
                let outcome = format!("{:?}", release.kind);
                (Ev::ReleaseAtClient { fetch: f, attempt, der: Rc::new(release.der) }, outcome)
            }
            Err(e) => (Ev::RefusalAtClient { fetch: f, attempt, code: e.code() }, e.code().to_owned()),
        };
        if self.gks.get(org).is_some_and(|s| s.armed.is_some()) {
            self.crash(org)?;
            return Ok(format!("{outcome}, then crashed before answering"));
        }
        let cross = self.w.user(self.msg(msg)?.sender)?.org != client_org(self.w, who)?;
        self.transmit(cross, reply);
        Ok(outcome)
    }

    fn accept_release(&mut self, f: usize, attempt: u32, der: &[u8]) -> Result<String, SimError> {
        let (msg, who, version, done, current) = {
            let fe = self.fetch(f)?;
            (fe.msg, fe.who, fe.version, fe.done, fe.attempt)
        };
        if done || current != attempt {
            return Ok("stale answer".into());
        }
        let client = client_for(self.w, who, version)?;
        let (received, pending) = {
            let fe = self.fetch(f)?;
            (fe.received.clone(), fe.pending.clone())
        };
        let (Some(received), Some(pending)) = (received, pending) else { return Ok("no request".into()) };
        self.w.provider.act_as(role_of(who));
        let key = match client.accept(&received, &pending, der, &mut self.rng) {
            Ok(k) => k,
            Err(e) => return self.finish_fetch(f, Err(e.code().to_owned())),
        };
        let plain = match client.open(&received, &key) {
            Ok(p) => p,
            Err(e) => return self.finish_fetch(f, Err(e.code().to_owned())),
        };
        let read: [u8; 32] = Sha256::digest(plain.as_slice()).into();
        let body_ok = self.state.get(msg).is_some_and(|s| s.body_digest == Some(read));
        if !body_ok {
            self.obs.ledger_violation("client", format!("message {msg}: plaintext differs from what was sent"));
        }
        let facts = self.facts(msg)?;
        self.obs.learned(&facts, party(who));
        if self.sc.plant == Plant::LeakToForeignGateway
            && let Who::Recipient(u) = who
        {
            let org = self.w.user(u)?.org;
            if org != facts.sender_org {
                self.obs.learned(&facts, Party::RecipientGateway(org));
            }
        }
        self.finish_fetch(f, Ok(()))
    }

    fn finish_fetch(&mut self, f: usize, outcome: Result<(), String>) -> Result<String, SimError> {
        let now_ms = self.now_ms();
        let fe = self.fetch(f)?;
        fe.done = true;
        let (msg, rcpt, started) = (fe.msg, fe.rcpt, fe.started_ms);
        let text = match &outcome {
            Ok(()) => "key".to_owned(),
            Err(c) => c.clone(),
        };
        if let Some(r) = rcpt {
            match outcome {
                Ok(()) => {
                    self.read_latency.push((now_ms - started) as f64 / 1000.0);
                    if let Some(p) = self.st(msg)?.pairs.get_mut(r) {
                        *p = Pair::Read;
                    }
                }
                Err(code) => {
                    // A recipient whose key was stolen first: the attacker may have used up
                    // its release. Not owed: the gatekeeper cannot tell the two apart.
                    let stolen = match self.fetches.get(f).map(|x| x.who) {
                        Some(Who::Recipient(u)) => self.compromised.get(&u).is_some_and(|(at, _)| *at <= now_ms),
                        _ => false,
                    };
                    let code = if stolen { format!("{code}{AFTER_THEFT}") } else { code };
                    if let Some(p) = self.st(msg)?.pairs.get_mut(r) {
                        *p = Pair::Lost(code);
                    }
                }
            }
        }
        Ok(text)
    }

    /// Schedules `org`'s next sweep at its gatekeeper's `poll_timeout`, if it holds a key
    /// and no earlier sweep is scheduled (tombstone purges change no metric: not swept for).
    fn arm_sweep(&mut self, org: usize) {
        let now_ms = self.now_ms();
        let base = self.base.secs();
        let Some(slot) = self.gks.get_mut(org) else { return };
        let Some(gk) = slot.gk.as_ref() else { return };
        if slot.live.is_empty() {
            return;
        }
        let Some(due) = gk.poll_timeout() else { return };
        let due_ms = due.secs().saturating_sub(base).saturating_mul(1000).max(now_ms);
        if slot.sweep_at.is_none_or(|at| due_ms < at) {
            slot.sweep_at = Some(due_ms);
            self.q.at(due_ms, Ev::Sweep(org));
        }
    }

    /// `org`'s gatekeeper handles what is due now (destruction at expiry and at the end of
    /// retention), then the observer checks that every key past its time is gone from its
    /// store; the next sweep is armed.
    fn sweep(&mut self, org: usize) -> Result<String, SimError> {
        let now = self.now();
        let now_ms = self.now_ms();
        let Some(slot) = self.gks.get_mut(org) else { return Ok("no gatekeeper".into()) };
        if slot.sweep_at != Some(now_ms) {
            return Ok("superseded".into());
        }
        slot.sweep_at = None;
        let Some(gk) = slot.gk.as_mut() else { return Ok("gatekeeper down".into()) };
        self.w.provider.act_as(Role::Gatekeeper);
        let records = gk.handle_timeout(now).map_err(SimError::core)?;
        if let Err(e) = gk.ledger().check_invariants() {
            let name = self.w.orgs.get(org).map(|x| x.domain.clone()).unwrap_or_default();
            self.obs.ledger_violation(&name, e);
        }
        let destroyed = self.reap(org)?;
        // The destruction oracle reads this gatekeeper's store.
        let gks = &self.gks;
        self.obs.check_destruction(now_ms, |k| {
            let slot = gks.get(org)?;
            let gk = slot.gk.as_ref()?;
            let ours = slot.live.contains_key(k) || !gk.store().records_of(k).is_empty();
            ours.then(|| gk.store().records_of(k).iter().any(|r| matches!(r, ekg_core::ledger::Record::Issued { .. })))
        });
        self.arm_sweep(org);
        Ok(format!("{records} records, destroyed {destroyed}"))
    }

    /// Keys `org`'s ledger no longer holds: their lifetimes are recorded, the observer told,
    /// the ledger's invariants checked. Returns how many.
    fn reap(&mut self, org: usize) -> Result<usize, SimError> {
        let now_ms = self.q.now_ms();
        let Some(slot) = self.gks.get_mut(org) else { return Ok(0) };
        let Some(gk) = slot.gk.as_ref() else { return Ok(0) };
        let gone: Vec<KeyId> = slot
            .live
            .keys()
            .filter(|k| !matches!(gk.ledger().state(k), Some(KeyState::Pending(_) | KeyState::Retained { .. })))
            .copied()
            .collect();
        for k in &gone {
            if let Some(at) = slot.live.remove(k) {
                self.lifetimes.push((now_ms - at) as f64 / 1000.0);
            }
            self.obs.destroyed(*k);
        }
        if !gone.is_empty() {
            self.sample_held();
        }
        Ok(gone.len())
    }

    /// Records the keys held by all gatekeepers now (one sample per change, the last of a
    /// second kept: memory follows the keys issued, not the run's length).
    fn sample_held(&mut self) {
        let held: u64 = self.gks.iter().map(|s| s.live.len() as u64).sum();
        let at = self.now_ms() / 1000;
        match self.rep.keys_held.last_mut() {
            Some(last) if last.0 == at => last.1 = held,
            _ => self.rep.keys_held.push((at, held)),
        }
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
                let owed = in_time && self.w.trusts(sender_org, rorg) && self.w.trusts(rorg, sender_org);
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
        rep.violations = std::mem::take(&mut self.obs.violations);
        rep.checks = self.obs.checks;
        rep.read_latency_secs = Stats::of(std::mem::take(&mut self.read_latency));
        rep.send_latency_secs = Stats::of(std::mem::take(&mut self.send_latency));
        rep.key_lifetime_secs = Stats::of(std::mem::take(&mut self.lifetimes));
        rep.finish(&self.rps);
        Ok((rep, self.trace.finalize().into()))
    }
}

/// The body of `size` bytes that starts `word` 32-bit words into the body stream of `seed`:
/// the bytes one sequential stream would have given this message.
fn body_at(seed: u64, word: u128, size: usize) -> Vec<u8> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_word_pos(word);
    let mut body = vec![0u8; size];
    rng.fill_bytes(&mut body);
    body
}

/// Copies of a sealed message on the wire: one per recipient domain (SMTP sends one copy to
/// each destination domain).
pub fn mail_copies(w: &World, m: &Message) -> usize {
    let orgs: BTreeSet<usize> = m.recipients.iter().filter_map(|r| w.users.get(*r).map(|u| u.org)).collect();
    orgs.len().max(1)
}

pub(crate) fn ops(w: &World) -> BTreeMap<Role, crate::metered::OpCounts> {
    Role::ALL.iter().map(|r| (*r, w.provider.counts(*r))).collect()
}

fn party(who: Who) -> Party {
    match who {
        Who::Recipient(u) => Party::Recipient(u),
        Who::SenderGateway(o) => Party::SenderGateway(o),
        Who::RecipientGateway(o) => Party::RecipientGateway(o),
        Who::Attacker(v) => Party::Attacker { victim: v },
    }
}

fn client_org(w: &World, who: Who) -> Result<usize, SimError> {
    Ok(match who {
        Who::Recipient(u) | Who::Attacker(u) => w.user(u)?.org,
        Who::SenderGateway(o) | Who::RecipientGateway(o) => o,
    })
}

fn cert_of(w: &World, who: Who, version: usize) -> Result<ekg_core::ids::CertId, SimError> {
    Ok(match who {
        Who::Recipient(u) | Who::Attacker(u) => {
            w.user(u)?.versions.get(version).ok_or_else(|| SimError::Internal("version".into()))?.cert_id
        }
        Who::SenderGateway(o) | Who::RecipientGateway(o) => w.org(o)?.gateway_cert,
    })
}

/// A recipient or a gateway: the same four steps.
enum Client<'w> {
    Recipient(&'w ekg_core::role::Recipient),
    Gateway(&'w ekg_core::role::Gateway),
}

fn client_for(w: &World, who: Who, version: usize) -> Result<Client<'_>, SimError> {
    Ok(match who {
        Who::Recipient(u) | Who::Attacker(u) => Client::Recipient(
            &w.user(u)?.versions.get(version).ok_or_else(|| SimError::Internal("version".into()))?.recipient,
        ),
        Who::SenderGateway(o) | Who::RecipientGateway(o) => Client::Gateway(&w.org(o)?.gateway),
    })
}

impl Client<'_> {
    fn receive(&self, sealed: &[u8], now: UnixTime) -> ekg_core::Result<ReceivedMessage> {
        match self {
            Client::Recipient(r) => r.receive(sealed, now),
            Client::Gateway(g) => g.receive(sealed, now),
        }
    }

    fn request(
        &self,
        m: &ReceivedMessage,
        now: UnixTime,
        rng: &mut dyn ekg_core::crypto::CryptoRng,
    ) -> ekg_core::Result<PendingRelease> {
        match self {
            Client::Recipient(r) => r.request_release(m, now, rng),
            Client::Gateway(g) => g.request_key(m, now, rng),
        }
    }

    fn accept(
        &self,
        m: &ReceivedMessage,
        p: &PendingRelease,
        der: &[u8],
        rng: &mut dyn ekg_core::crypto::CryptoRng,
    ) -> ekg_core::Result<ekg_core::ids::OneTimeKey> {
        match self {
            Client::Recipient(r) => r.accept_release(m, p, der, rng),
            Client::Gateway(g) => g.accept_key(m, p, der, rng),
        }
    }

    fn open(
        &self,
        m: &ReceivedMessage,
        key: &ekg_core::ids::OneTimeKey,
    ) -> ekg_core::Result<zeroize::Zeroizing<Vec<u8>>> {
        match self {
            Client::Recipient(r) => r.open(m, key),
            Client::Gateway(g) => g.open(m, key),
        }
    }
}
