//! The cluster: two gatekeeper instances on one linearizable shared store (the PostgreSQL
//! deployment of `docs/server.md`, "Several instances"), checked exhaustively.
//!
//! Each instance runs the core's own rounds (`ekg_core::ledger::Round`, what every gatekeeper
//! runs on every store): read the key from the store and decide, then append if unchanged, or
//! read and decide again. The two steps of a round are separate actions, so every
//! interleaving of two instances between a read and a write is explored; each request may be
//! delivered several times (duplication, a client's retry) to either instance, or never
//! (loss); either instance may crash between its read and its write.
//!
//! What is checked comes from ghost state the model keeps itself, not from the ledger: every
//! release an instance answered (address and certificate) and every key it issued (and for
//! which request). Two rejected designs are checked too, to show their counterexamples:
//! - [`Design::LocalLedger`]: each instance keeps its own ledger in memory (recovered from the
//!   store at start, like the single-instance SQLite server) and writes unconditionally;
//! - [`Design::ReadThenWrite`]: the state is read from the store before each decision, but the
//!   write does not check that it is unchanged.

use std::collections::BTreeMap;

use ekg_core::ledger::round::{Issue, NoDraw, Release};
use ekg_core::ledger::{
    Answered, Batch, Delivery, IssueFacts, KeyDraw, KeyState, Ledger, LedgerConfig, LoadedKey, Record, ReleaseFacts,
    ReleasePolicy, Requester, Round, Step, Store, StoreError, Version,
};
use ekg_core::{Error, Rejection, UnixTime};
use stateright::{Model, Property};

use crate::symbols::{Addr, CA_A, CA_B, KeyName, SENDER, Sym};

/// bob, listed.
pub const BOB: Addr = 2;
/// carol, listed.
pub const CAROL: Addr = 3;
/// bob's first certificate.
pub const BOB_CERT: Addr = 2;
/// bob's second certificate (same address).
pub const BOB_CERT_2: Addr = 20;
/// carol's certificate.
pub const CAROL_CERT: Addr = 3;
/// The key issued before the run starts, listing bob and carol.
pub const KEY: KeyName = KeyName { boot: 0, seq: 0 };

const NOW: UnixTime = UnixTime(1_000);
const FAR: UnixTime = UnixTime(u64::MAX / 2);

/// How the instances share state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Design {
    /// The server's: read before deciding, commit only if unchanged, else read again.
    Shared,
    /// Rejected: a ledger in each instance's memory, unconditional writes.
    LocalLedger,
    /// Rejected: read before deciding, unconditional write.
    ReadThenWrite,
}

/// A configuration of the cluster model.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The design checked.
    pub design: Design,
    /// The release policy of the key.
    pub policy: ReleasePolicy,
    /// Deliveries per address under `same_certificate`.
    pub max_deliveries: u32,
    /// Deliveries of each request (to either instance), in total: 2 = one duplicate.
    pub copies: u8,
    /// Crashes per instance.
    pub crashes: u8,
}

/// A request in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Req {
    /// A key request from alice (the one request id `(SENDER, 0, 1)`), listing bob.
    Issue,
    /// A release request for [`KEY`] signed with `cert`, for `address`.
    Release {
        /// The certificate.
        cert: Addr,
        /// Its address.
        address: Addr,
    },
}

/// The requests of a run, each deliverable `copies` times.
pub const REQUESTS: [Req; 4] = [
    Req::Issue,
    Req::Release { cert: BOB_CERT, address: BOB },
    Req::Release { cert: BOB_CERT_2, address: BOB },
    Req::Release { cert: CAROL_CERT, address: CAROL },
];

/// One instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Instance {
    /// Its own ledger, recovered from the store at start (the rejected local design only).
    ledger: Option<Ledger<Sym>>,
    /// The request in progress: the core's round between its steps (or, for the local
    /// design, the request read).
    round: Option<InFlight>,
    /// Crashes so far (also its boot: fresh key names survive crashes).
    crashes: u8,
    /// Keys drawn this boot.
    next_seq: u8,
}

/// A request an instance is working on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum InFlight {
    /// The key request, in the core's issuance round.
    Issue(Round<Sym, Issue<Sym, ()>>),
    /// A release request, in the core's release round.
    Release(Round<Sym, Release<Sym>>, Addr, Addr),
    /// The local design's request, read and not yet decided.
    Local(Req),
}

impl InFlight {
    fn writes_next(&self) -> bool {
        match self {
            InFlight::Issue(r) => r.writes_next(),
            InFlight::Release(r, _, _) => r.writes_next(),
            InFlight::Local(_) => true,
        }
    }
}

/// The shared store: linearizable, one version per key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SharedState {
    keys: BTreeMap<KeyName, (u8, Vec<Record<Sym>>)>,
    requests: BTreeMap<(Addr, u8, u8), KeyName>,
}

/// A state of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClusterState {
    store: SharedState,
    instances: [Instance; 2],
    /// Deliveries left per request of [`REQUESTS`].
    left: [u8; 4],
    /// Ghost: every release answered, as (address, certificate).
    released: Vec<(Addr, Addr)>,
    /// Ghost: every key issued for the key request.
    issued: Vec<KeyName>,
    /// Ghost: commits refused because another instance changed the key first.
    conflicts: u8,
    /// A store record that did not apply, or a round's error (a model failure, never masked).
    failure: Option<String>,
}

/// What an instance does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Instance `0` takes a copy of request `1`, reads what it needs and decides.
    Read(usize, usize),
    /// Instance `0` writes what it decided (if nothing it read changed meanwhile).
    Commit(usize),
    /// Instance `0`'s write lost its race: it reads and decides again.
    Again(usize),
    /// Instance `0` crashes and restarts.
    Crash(usize),
}

/// The cluster model.
#[derive(Clone, Debug)]
pub struct ClusterModel {
    /// Its configuration.
    pub cfg: ClusterConfig,
}

impl ClusterConfig {
    fn ledger_config(&self) -> LedgerConfig {
        LedgerConfig { retention_secs: 0, max_deliveries: self.max_deliveries, request_window_secs: Some(u64::MAX / 4) }
    }

    fn rules(&self) -> Ledger<Sym> {
        Ledger::new(self.ledger_config())
    }

    /// The model.
    pub fn into_model(self) -> ClusterModel {
        ClusterModel { cfg: self }
    }
}

/// The shared store as one instance's connection sees it: a linearizable store (the
/// model's PostgreSQL), or, for the rejected read-then-write design, one that writes without
/// checking anything.
struct Connection<'a> {
    shared: &'a mut SharedState,
    unconditional: bool,
}

impl Store<Sym> for Connection<'_> {
    fn load_key(&mut self, key_id: &KeyName) -> Result<LoadedKey<Sym>, StoreError> {
        let (version, records) = self.shared.keys.get(key_id).cloned().unwrap_or_default();
        Ok(LoadedKey { records, version: Version(u64::from(version)) })
    }

    fn load_request(&mut self, id: &(Addr, u8, u8)) -> Result<Option<Answered<Sym>>, StoreError> {
        match self.shared.requests.get(id).copied() {
            Some(k) => Ok(Some((k, self.load_key(&k)?))),
            None => Ok(None),
        }
    }

    fn append_if_unchanged(&mut self, batch: &Batch<Sym>) -> Result<bool, StoreError> {
        if !self.unconditional {
            for change in &batch.keys {
                let current = self.shared.keys.get(&change.key_id).map_or(0, |k| k.0);
                if Version(u64::from(current)) != change.read {
                    return Ok(false);
                }
            }
            for r in &batch.records {
                if let Record::Issued { request: Some(q), .. } = r
                    && self.shared.requests.contains_key(&q.id)
                {
                    return Ok(false);
                }
            }
        }
        self.shared.write(&batch.records);
        Ok(true)
    }

    fn due(&mut self, _: UnixTime, _: usize) -> Result<Vec<KeyName>, StoreError> {
        Ok(Vec::new())
    }

    fn next_deadline(&mut self) -> Result<Option<UnixTime>, StoreError> {
        Ok(None)
    }

    fn live_handle(&mut self) -> Result<Option<KeyName>, StoreError> {
        Ok(None)
    }

    fn held_keys(&mut self) -> Result<u64, StoreError> {
        Ok(0)
    }
}

impl SharedState {
    /// Appends records: each key's version is raised once per append.
    fn write(&mut self, batch: &[Record<Sym>]) {
        let mut raised = Vec::new();
        for r in batch {
            if let Record::Issued { request: Some(q), key_id, .. } = r {
                self.requests.insert(q.id, *key_id);
            }
            let key = self.keys.entry(*r.key_id()).or_default();
            if !raised.contains(r.key_id()) {
                key.0 = key.0.saturating_add(1);
                raised.push(*r.key_id());
            }
            key.1.push(r.clone());
        }
    }

    fn records(&self) -> Vec<Record<Sym>> {
        self.keys.values().flat_map(|k| k.1.iter().cloned()).collect()
    }
}

/// Fresh key names: `(boot, seq)` with a boot per instance and crash.
struct Draw {
    boot: u8,
    seq: u8,
}

impl KeyDraw<Sym> for Draw {
    type Key = ();

    fn draw(&mut self) -> Result<(KeyName, KeyName, ()), Error> {
        let key = KeyName { boot: self.boot, seq: self.seq };
        self.seq = self.seq.saturating_add(1);
        Ok((key, key, ()))
    }
}

fn anchor(cert: Addr) -> Addr {
    if cert == CAROL_CERT { CA_A } else { CA_B }
}

/// The one key request of a run, and a release request's facts.
fn issue_facts(policy: ReleasePolicy) -> IssueFacts<Sym> {
    IssueFacts {
        request: (SENDER, 0, 1),
        request_time: NOW,
        sender: SENDER,
        recipients: vec![BOB],
        policy,
        expires_at: FAR,
        labels: vec![],
    }
}

fn release_facts(cert: Addr, address: Addr) -> ReleaseFacts<Sym> {
    ReleaseFacts {
        key_id: KEY,
        listed: vec![BOB, CAROL],
        expires_at: FAR,
        requester: Requester { cert, addresses: vec![address], anchor: anchor(cert) },
    }
}

impl ClusterModel {
    fn instance(&self, store: &SharedState) -> Result<Instance, Error> {
        let ledger = match self.cfg.design {
            Design::LocalLedger => Some(Ledger::recover(self.cfg.ledger_config(), store.records().iter())?),
            Design::Shared | Design::ReadThenWrite => None,
        };
        Ok(Instance { ledger, round: None, crashes: 0, next_seq: 0 })
    }

    /// Instance `i` takes request `req`: the local design only notes it; the others start the
    /// core's round (read and decide).
    fn read(&self, s: &mut ClusterState, i: usize, req: Req) -> Result<(), Error> {
        let inst = s.instances.get_mut(i).ok_or_else(|| Error::new(Rejection::StorageFailed, "no instance"))?;
        inst.round = Some(match (self.cfg.design, req) {
            (Design::LocalLedger, _) => {
                inst.round = Some(InFlight::Local(req));
                return Ok(());
            }
            (_, Req::Issue) => {
                InFlight::Issue(Round::new(&self.cfg.rules(), Issue::new(issue_facts(self.cfg.policy)), NOW))
            }
            (_, Req::Release { cert, address }) => InFlight::Release(
                Round::new(&self.cfg.rules(), Release::new(release_facts(cert, address)), NOW),
                address,
                cert,
            ),
        });
        self.step(s, i)
    }

    /// One step of instance `i`'s round (read and decide, or write); the ghost records what a
    /// finished round answered. A refusal answers nothing.
    fn step(&self, s: &mut ClusterState, i: usize) -> Result<(), Error> {
        let unconditional = self.cfg.design != Design::Shared;
        let inst = s.instances.get_mut(i).ok_or_else(|| Error::new(Rejection::StorageFailed, "no instance"))?;
        let Some(mut round) = inst.round.take() else { return Ok(()) };
        let writing = round.writes_next();
        let boot = u8::try_from(i).unwrap_or(0) * 16 + inst.crashes + 1;
        let mut store = Connection { shared: &mut s.store, unconditional };
        let done = match &mut round {
            InFlight::Local(req) => {
                let Some(ledger) = inst.ledger.as_mut() else { return Ok(()) };
                let mut draw = Draw { boot, seq: inst.next_seq };
                let answered = local_decision(ledger, &mut store, *req, self.cfg.policy, &mut draw)?;
                inst.next_seq = draw.seq;
                match (answered, *req) {
                    (Some(key), Req::Issue) => s.issued.push(key),
                    (Some(_), Req::Release { cert, address }) => s.released.push((address, cert)),
                    (None, _) => {}
                }
                true
            }
            InFlight::Issue(r) => {
                let mut draw = Draw { boot, seq: inst.next_seq };
                let step = r.step(&mut store, &mut draw);
                inst.next_seq = draw.seq;
                match step {
                    Step::Again => false,
                    Step::Done(Ok(c)) => {
                        s.issued.push(c.payload().key_id);
                        true
                    }
                    Step::Done(Err(e)) => refused_or_failed(e)?,
                }
            }
            InFlight::Release(r, address, cert) => match r.step(&mut store, &mut NoDraw) {
                Step::Again => false,
                Step::Done(Ok(_)) => {
                    s.released.push((*address, *cert));
                    true
                }
                Step::Done(Err(e)) => refused_or_failed(e)?,
            },
        };
        if !done {
            if writing {
                s.conflicts = s.conflicts.saturating_add(1);
            }
            inst.round = Some(round);
        }
        Ok(())
    }
}

/// A round that ended in a refusal is over (`true`); a `storage_failed` (no store of this model
/// fails) is the shared code breaking its own contract: an error.
fn refused_or_failed(e: Error) -> Result<bool, Error> {
    if e.rejection() == Rejection::StorageFailed { Err(e) } else { Ok(true) }
}

/// The rejected local design: decide on the instance's own ledger, write without a
/// condition, apply. The answered key (an issuance's) or `Some` of the key released.
fn local_decision(
    ledger: &mut Ledger<Sym>,
    store: &mut Connection<'_>,
    req: Req,
    policy: ReleasePolicy,
    draw: &mut Draw,
) -> Result<Option<KeyName>, Error> {
    let records = match req {
        Req::Issue => match ledger.decide_issue(issue_facts(policy), draw, NOW) {
            Ok(d) => d.records().to_vec(),
            Err(_) => return Ok(None),
        },
        Req::Release { cert, address } => match ledger.decide_release(&release_facts(cert, address), NOW) {
            Ok(d) => d.records().to_vec(),
            Err(_) => return Ok(None),
        },
    };
    store.shared.write(&records);
    for r in &records {
        ledger.apply(r)?;
    }
    Ok(records.first().map(|r| *r.key_id()))
}

impl Model for ClusterModel {
    type State = ClusterState;
    type Action = Action;

    fn init_states(&self) -> Vec<ClusterState> {
        let mut store = SharedState::default();
        let issued = Record::Issued {
            key_id: KEY,
            handle: KEY,
            sender: SENDER,
            recipients: vec![BOB, CAROL],
            policy: self.cfg.policy,
            issued_at: NOW,
            expires_at: FAR,
            request: None,
            labels: vec![],
        };
        store.keys.insert(KEY, (1, vec![issued]));
        let (a, b) = match (self.instance(&store), self.instance(&store)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return Vec::new(),
        };
        vec![ClusterState {
            store,
            instances: [a, b],
            left: [self.cfg.copies; 4],
            released: Vec::new(),
            issued: Vec::new(),
            conflicts: 0,
            failure: None,
        }]
    }

    fn actions(&self, s: &ClusterState, actions: &mut Vec<Action>) {
        if s.failure.is_some() {
            return;
        }
        for (i, inst) in s.instances.iter().enumerate() {
            if let Some(round) = &inst.round {
                actions.push(if round.writes_next() { Action::Commit(i) } else { Action::Again(i) });
            } else {
                for (r, left) in s.left.iter().enumerate() {
                    if *left > 0 {
                        actions.push(Action::Read(i, r));
                    }
                }
            }
            if inst.crashes < self.cfg.crashes {
                actions.push(Action::Crash(i));
            }
        }
    }

    fn next_state(&self, last: &ClusterState, action: Action) -> Option<ClusterState> {
        let mut s = last.clone();
        let result = match action {
            Action::Read(i, r) => {
                let left = s.left.get_mut(r)?;
                *left = left.checked_sub(1)?;
                self.read(&mut s, i, *REQUESTS.get(r)?)
            }
            Action::Commit(i) | Action::Again(i) => self.step(&mut s, i),
            Action::Crash(i) => {
                let crashes = s.instances.get(i)?.crashes.saturating_add(1);
                match self.instance(&s.store) {
                    Ok(mut fresh) => {
                        fresh.crashes = crashes;
                        *s.instances.get_mut(i)? = fresh;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = result {
            s.failure = Some(format!("{}: {}", e.code(), e.detail()));
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("no model failure", |_, s: &ClusterState| s.failure.is_none()),
            Property::always("single release", |m: &ClusterModel, s: &ClusterState| single_release(m, s)),
            Property::always("one key per request", |_, s: &ClusterState| s.issued.len() <= 1),
            Property::always("destroyed once all released", |_, s: &ClusterState| destroyed_once_all_released(s)),
            Property::always("store replays", |m: &ClusterModel, s: &ClusterState| store_replays(m, s)),
            Property::sometimes("both listed served", |_, s: &ClusterState| {
                s.released.iter().any(|r| r.0 == BOB) && s.released.iter().any(|r| r.0 == CAROL)
            }),
            Property::sometimes("a commit lost a race", |_, s: &ClusterState| s.conflicts > 0),
        ]
    }
}

/// From the ghost releases alone: under `once` at most one release per address; under
/// `same_certificate` one certificate per address and at most `max_deliveries` releases.
fn single_release(m: &ClusterModel, s: &ClusterState) -> bool {
    [BOB, CAROL].iter().all(|a| {
        let to: Vec<Addr> = s.released.iter().filter(|r| r.0 == *a).map(|r| r.1).collect();
        match m.cfg.policy {
            ReleasePolicy::Once => to.len() <= 1,
            ReleasePolicy::SameCertificate => {
                to.windows(2).all(|w| w.first() == w.get(1))
                    && u32::try_from(to.len()).unwrap_or(u32::MAX) <= m.cfg.max_deliveries
            }
        }
    })
}

/// Once the ghost has seen both listed addresses served, the store holds the key destroyed
/// (retention 0: destroyed by the commit of the last release).
fn destroyed_once_all_released(s: &ClusterState) -> bool {
    let both = s.released.iter().any(|r| r.0 == BOB) && s.released.iter().any(|r| r.0 == CAROL);
    !both || matches!(replay(s).map(|l| l.state(&KEY).cloned()), Some(Some(KeyState::Destroyed(_))))
}

fn replay(s: &ClusterState) -> Option<Ledger<Sym>> {
    let cfg = LedgerConfig { retention_secs: 0, max_deliveries: 100, request_window_secs: Some(u64::MAX / 4) };
    Ledger::recover(cfg, s.store.records().iter()).ok()
}

/// The store's records replay into a ledger whose deliveries match the policy.
fn store_replays(m: &ClusterModel, s: &ClusterState) -> bool {
    let Some(ledger) = replay(s) else { return false };
    match ledger.state(&KEY) {
        Some(KeyState::Pending(k) | KeyState::Retained { key: k, .. }) => k.recipients.values().all(|d| match d {
            Delivery::Owed => true,
            Delivery::Released { deliveries, .. } => match m.cfg.policy {
                ReleasePolicy::Once => *deliveries <= 1,
                ReleasePolicy::SameCertificate => *deliveries <= m.cfg.max_deliveries,
            },
        }),
        _ => true,
    }
}
