//! The cluster: two gatekeeper instances on one linearizable shared store (the PostgreSQL
//! deployment of `docs/server.md`, "Several instances"), checked exhaustively.
//!
//! Each instance runs the core's own shared-store path: [`Ledger::refresh`] from the store,
//! `decide_issue` / `decide_release`, [`Ledger::commit_if_unchanged`]. Reading and committing
//! are separate steps, so every interleaving of two instances between them is explored; each
//! request may be delivered several times (duplication, a client's retry) to either instance,
//! or never (loss); either instance may crash between its read and its commit.
//!
//! What is checked comes from ghost state the model keeps itself, not from the ledger: every
//! release an instance answered (address and certificate) and every key it issued (and for
//! which request). Two rejected designs are checked too, to show their counterexamples:
//! - [`Design::LocalLedger`]: each instance keeps its own ledger in memory (recovered from the
//!   store at start, like the single-instance SQLite server) and writes unconditionally;
//! - [`Design::ReadThenWrite`]: the state is read from the store before each decision, but the
//!   write does not check that it is unchanged.

use std::collections::BTreeMap;

use ekg_core::ledger::{
    Delivery, KeyDraw, KeyState, Ledger, LedgerConfig, Record, ReleaseFacts, ReleasePolicy, Requester, SharedStore,
    Store, StoreError,
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
    /// Its ledger: a scratch read from the store (shared designs) or its own (local).
    ledger: Ledger<Sym>,
    /// Versions it read (shared designs).
    seen: BTreeMap<KeyName, u8>,
    /// The request read and not yet committed.
    step: Option<Req>,
    /// Crashes so far (also its boot: fresh key names survive crashes).
    crashes: u8,
    /// Keys drawn this boot.
    next_seq: u8,
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
    /// A store record that did not apply, or a commit error (a model failure, never masked).
    failure: Option<String>,
}

/// What an instance does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Instance `0` takes a copy of request `1` and reads what it needs.
    Read(usize, usize),
    /// Instance `0` decides and commits what it read.
    Commit(usize),
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

    fn empty_ledger(&self) -> Ledger<Sym> {
        Ledger::new(self.ledger_config())
    }

    /// The model.
    pub fn into_model(self) -> ClusterModel {
        ClusterModel { cfg: self }
    }
}

/// The store as one instance sees it: the shared state and that instance's versions read.
struct View<'a> {
    shared: &'a mut SharedState,
    seen: &'a mut BTreeMap<KeyName, u8>,
    /// Commit without checking versions (the rejected designs).
    unconditional: bool,
}

impl SharedStore<Sym> for View<'_> {
    fn load_key(&mut self, key_id: &KeyName) -> Result<Vec<Record<Sym>>, StoreError> {
        let (version, records) = self.shared.keys.get(key_id).cloned().unwrap_or_default();
        self.seen.insert(*key_id, version);
        Ok(records)
    }

    fn key_of_request(&mut self, id: &(Addr, u8, u8)) -> Result<Option<KeyName>, StoreError> {
        Ok(self.shared.requests.get(id).copied())
    }

    fn append_if_unchanged(
        &mut self,
        batch: &[Record<Sym>],
        _: &[(KeyName, Option<UnixTime>)],
    ) -> Result<bool, StoreError> {
        if !self.unconditional {
            for r in batch {
                let current = self.shared.keys.get(r.key_id()).map(|k| k.0);
                let unchanged = match r {
                    Record::Issued { request, .. } => {
                        current.is_none() && request.as_ref().is_none_or(|q| !self.shared.requests.contains_key(&q.id))
                    }
                    _ => current.is_some() && self.seen.get(r.key_id()).copied() == current,
                };
                if !unchanged {
                    return Ok(false);
                }
            }
        }
        self.write(batch);
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

impl View<'_> {
    fn write(&mut self, batch: &[Record<Sym>]) {
        for r in batch {
            if let Record::Issued { request: Some(q), key_id, .. } = r {
                self.shared.requests.insert(q.id, *key_id);
            }
            let key = self.shared.keys.entry(*r.key_id()).or_default();
            key.0 = key.0.saturating_add(1);
            key.1.push(r.clone());
        }
    }
}

impl Store<Sym> for View<'_> {
    /// The unconditional write of the rejected designs.
    fn append(&mut self, batch: &[Record<Sym>]) -> Result<(), StoreError> {
        self.write(batch);
        Ok(())
    }

    fn load(&self) -> Result<Vec<Record<Sym>>, StoreError> {
        Ok(self.shared.keys.values().flat_map(|k| k.1.iter().cloned()).collect())
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

impl ClusterModel {
    fn instance(&self, store: &SharedState) -> Result<Instance, Error> {
        let ledger = match self.cfg.design {
            Design::LocalLedger => {
                let records: Vec<Record<Sym>> = store.keys.values().flat_map(|k| k.1.iter().cloned()).collect();
                Ledger::recover(self.cfg.ledger_config(), records.iter())?
            }
            Design::Shared | Design::ReadThenWrite => self.cfg.empty_ledger(),
        };
        Ok(Instance { ledger, seen: BTreeMap::new(), step: None, crashes: 0, next_seq: 0 })
    }

    fn read(&self, s: &mut ClusterState, i: usize, req: Req) -> Result<(), Error> {
        let design = self.cfg.design;
        let inst = s.instances.get_mut(i).ok_or_else(|| Error::new(Rejection::StorageFailed, "no instance"))?;
        inst.step = Some(req);
        if design == Design::LocalLedger {
            return Ok(());
        }
        inst.ledger.clear();
        inst.seen.clear();
        let mut view = View { shared: &mut s.store, seen: &mut inst.seen, unconditional: false };
        let key = match req {
            Req::Issue => {
                view.key_of_request(&(SENDER, 0, 1)).map_err(|e| Error::new(Rejection::StorageFailed, e.0))?
            }
            Req::Release { .. } => Some(KEY),
        };
        if let Some(key) = key {
            let records = view.load_key(&key).map_err(|e| Error::new(Rejection::StorageFailed, e.0))?;
            inst.ledger.refresh(&key, &records)?;
        }
        Ok(())
    }

    /// Decides and commits instance `i`'s request; a refusal answers nothing.
    fn commit(&self, s: &mut ClusterState, i: usize) -> Result<(), Error> {
        let design = self.cfg.design;
        let policy = self.cfg.policy;
        let inst = s.instances.get_mut(i).ok_or_else(|| Error::new(Rejection::StorageFailed, "no instance"))?;
        let Some(req) = inst.step.take() else { return Ok(()) };
        let boot = u8::try_from(i).unwrap_or(0) * 16 + inst.crashes + 1;
        let mut view = View { shared: &mut s.store, seen: &mut inst.seen, unconditional: design != Design::Shared };
        match req {
            Req::Issue => {
                let facts = ekg_core::ledger::IssueFacts {
                    request: (SENDER, 0, 1),
                    request_time: NOW,
                    sender: SENDER,
                    recipients: vec![BOB],
                    policy,
                    expires_at: FAR,
                };
                let mut draw = Draw { boot, seq: inst.next_seq };
                let decided = match inst.ledger.decide_issue(facts, &mut draw, NOW) {
                    Ok(d) => d,
                    Err(_) => return Ok(()),
                };
                inst.next_seq = draw.seq;
                let key = decided.payload().key_id;
                if commit(&mut inst.ledger, &mut view, design, decided)? {
                    s.issued.push(key);
                } else {
                    s.conflicts = s.conflicts.saturating_add(1);
                }
            }
            Req::Release { cert, address } => {
                let facts = ReleaseFacts {
                    key_id: KEY,
                    listed: vec![BOB, CAROL],
                    expires_at: FAR,
                    requester: Requester { cert, addresses: vec![address], anchor: anchor(cert) },
                };
                let decided = match inst.ledger.decide_release(&facts, NOW) {
                    Ok(d) => d,
                    Err(_) => return Ok(()),
                };
                if commit(&mut inst.ledger, &mut view, design, decided)? {
                    s.released.push((address, cert));
                } else {
                    s.conflicts = s.conflicts.saturating_add(1);
                }
            }
        }
        Ok(())
    }
}

/// Commits per design: `false` when the shared store refused (another instance was first).
fn commit<P>(
    ledger: &mut Ledger<Sym>,
    view: &mut View<'_>,
    design: Design,
    decided: ekg_core::ledger::Decided<Sym, P>,
) -> Result<bool, Error> {
    match design {
        Design::Shared => Ok(ledger.commit_if_unchanged(view, decided)?.is_some()),
        Design::LocalLedger | Design::ReadThenWrite => ledger.commit(view, decided).map(|_| true),
    }
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
            if inst.step.is_some() {
                actions.push(Action::Commit(i));
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
            Action::Commit(i) => self.commit(&mut s, i),
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
    let records: Vec<Record<Sym>> = s.store.keys.values().flat_map(|k| k.1.iter().cloned()).collect();
    Ledger::recover(cfg, records.iter()).ok()
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
