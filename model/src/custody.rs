//! Storage-key epochs (`docs/protocol.md` §7.1, issue 27 item 2) against an attacker who
//! copies the durable store (a backup) at any moment and, at any moment, obtains every
//! storage key that still exists.
//!
//! One gatekeeper with a clock, on the core's reference store ([`MemoryState`], a value): the
//! sender asks for keys, two listed recipients fetch each key once, the clock ticks. Every
//! decision is the core's own: the issuance and release rounds ([`Round`]), the expiry sweep
//! ([`sweep`]), the epoch of an issuance ([`StorageEpoch::of`], what the gatekeeper's key
//! drawing wraps under) and the epochs whose keys go at a tick ([`done_epochs_before`], what
//! `Gatekeeper::destroy_done_epochs` destroys). The epoch keys themselves are symbolic, as
//! `EpochKeyRing` keeps them: an epoch's key is made on the first wrap in that epoch, and
//! one made again after its destruction is a new random key that does not unwrap what the
//! old one wrapped, so a key is named by (epoch, generation).
//!
//! What any copy of the store holds of a key is its wrapped form from its issuance on, even
//! after the row is deleted (free pages, WAL, older backups): the backup holds every key
//! wrapped before it was taken. The attacker learns a key when its backup holds it and the
//! epoch key it is wrapped under is among those it obtained.
//!
//! Properties (ghost state, never the ledger's word):
//! - [`property::EPOCH_DONE_UNREADABLE`]: no key is learnt from keys obtained at or after the
//!   end of its exposure window, the tick `(floor(t / E) + 1) * E + L + 1` for a key issued
//!   at `t` (epoch length `E`, ticket lifetime `L`): its epoch's last key expired and the
//!   sweep caught up. The bound `docs/protocol.md` §7.1 promises ("at most its epoch plus
//!   the ticket lifetime plus one sweep interval").
//! - [`property::HELD_KEYS_UNWRAP`]: no epoch key is destroyed while a key wrapped under it is
//!   held (a held key must stay releasable).
//! - [`property::DESTROYED_UNREADABLE`]: no key destroyed before the attacker obtained the
//!   storage keys is learnt. Fails, as §7.1 says it must with a time rule: a key released
//!   to every recipient and destroyed early stays readable from an older backup until its
//!   epoch ends.
//! - sometimes: the attacker learns a key still held (the attack is real, so the properties
//!   above are not vacuous); an epoch key is destroyed.

use std::collections::{BTreeMap, BTreeSet};

use ekg_core::ledger::round::{Issue, NoDraw, Release};
use ekg_core::ledger::{
    IssueFacts, IssueRules, KeyDraw, Ledger, LedgerConfig, MemoryState, Record, ReleaseFacts, ReleasePolicy, Requester,
    Round, VerifiedIssue, sweep,
};
use ekg_core::role::done_epochs_before;
use ekg_core::{Error, Rejection, StorageEpoch, UnixTime};
use stateright::{Model, Property};

use crate::symbols::{Addr, CA_A, KeyName, R1, R2, SENDER, Sym};

/// Property names (stable: tests and docs use them).
pub mod property {
    /// Always: no key is learnt from storage keys obtained after its exposure window ended.
    pub const EPOCH_DONE_UNREADABLE: &str = "no key learnt after its epoch is done";
    /// Always: no epoch key is destroyed while a key wrapped under it is held.
    pub const HELD_KEYS_UNWRAP: &str = "no held key loses its epoch key";
    /// Always (fails: §7.1's stated exposure): no key destroyed before the theft is learnt.
    pub const DESTROYED_UNREADABLE: &str = "no key destroyed before the theft is learnt";
    /// Always: no round of the core failed (a record that did not apply, a failed sweep).
    pub const NO_FAILURE: &str = "no model failure";
    /// Sometimes: the attacker learns a key that is still held.
    pub const LEARNS_HELD_KEY: &str = "sometimes the attacker learns a held key";
    /// Sometimes: an epoch key is destroyed.
    pub const EPOCH_DESTROYED: &str = "sometimes an epoch key is destroyed";
}

/// A configuration of the custody model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CustodyConfig {
    /// The release policy of every key.
    pub policy: ReleasePolicy,
    /// The epoch's length `E`, in ticks (`storage_epoch_secs`).
    pub epoch_ticks: u8,
    /// The ticket lifetime `L`, in ticks.
    pub lifetime: u8,
    /// The last tick the clock reaches.
    pub ticks: u8,
    /// Keys the sender asks for, at most.
    pub keys: u8,
}

impl CustodyConfig {
    /// The CI configuration: epochs of 2 ticks, lifetime 2, 6 ticks, 2 keys: an epoch ends
    /// (tick 5) while a key of a later epoch is held.
    pub fn small(policy: ReleasePolicy) -> Self {
        CustodyConfig { policy, epoch_ticks: 2, lifetime: 2, ticks: 6, keys: 2 }
    }

    /// A name for tables: `once/epochs2+lifetime2+ticks6+keys2`.
    pub fn name(&self) -> String {
        let policy = match self.policy {
            ReleasePolicy::Once => "once",
            ReleasePolicy::SameCertificate => "same-cert",
        };
        let (e, l, t, k) = (self.epoch_ticks, self.lifetime, self.ticks, self.keys);
        format!("{policy}/epochs{e}+lifetime{l}+ticks{t}+keys{k}")
    }

    /// The model.
    pub fn into_model(self) -> CustodyModel {
        CustodyModel { cfg: self }
    }

    fn ledger_config(&self) -> LedgerConfig {
        let retention_secs = match self.policy {
            ReleasePolicy::Once => 0,
            ReleasePolicy::SameCertificate => 1,
        };
        LedgerConfig { retention_secs, max_deliveries: 2, request_window_secs: Some(0) }
    }

    fn rules(&self) -> Ledger<Sym> {
        Ledger::new(self.ledger_config())
    }

    /// The tick from which a key issued at `issued` can no longer be learnt: the end of its
    /// issuance period (its epoch) plus the lifetime plus one tick (the sweep). Plain
    /// arithmetic on the configuration, independent of the core's.
    pub fn exposure_ends(&self, issued: u8) -> u16 {
        let e = u16::from(self.epoch_ticks.max(1));
        (u16::from(issued) / e + 1) * e + u16::from(self.lifetime) + 1
    }
}

/// A key as wrapped for the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wrapped {
    /// The key (its id names it too).
    pub key: KeyName,
    /// The tick it was issued at.
    pub issued: u8,
    /// Its ticket's expiry.
    pub expires: u8,
    /// The epoch it is wrapped under.
    pub epoch: u64,
    /// Which key of that epoch (1 for the first made).
    pub generation: u8,
}

/// The attacker's theft of the storage keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Theft {
    /// The tick it happened at.
    pub at: u8,
    /// The epoch keys that existed then: epoch, generation.
    pub keys: BTreeMap<u64, u8>,
    /// Ghost: the keys destroyed by then.
    pub destroyed: BTreeSet<KeyName>,
}

/// A state of the custody model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CustodyState {
    /// The gatekeeper's clock.
    pub now: u8,
    /// The durable store (the core's reference store).
    pub store: MemoryState<Sym>,
    /// The epoch keys that exist: epoch, generation.
    pub ring: BTreeMap<u64, u8>,
    /// Epoch keys made so far, per epoch.
    pub made: BTreeMap<u64, u8>,
    /// Every key wrapped, in issuance order: what copies of the store hold of it.
    pub wrapped: Vec<Wrapped>,
    /// The fetches made: (key, listed address).
    pub fetched: BTreeSet<(KeyName, Addr)>,
    /// Ghost: the tick each key was destroyed at (read from the store's records).
    pub destroyed: BTreeMap<KeyName, u8>,
    /// Epoch keys destroyed so far.
    pub epochs_destroyed: u8,
    /// The attacker's backup: how many keys of `wrapped` it holds.
    pub backup: Option<usize>,
    /// What the attacker obtained with the storage keys.
    pub stolen: Option<Theft>,
    /// A core round that failed (never masked).
    pub failure: Option<String>,
}

impl CustodyState {
    /// The keys the attacker can read: in its backup, wrapped under an epoch key it holds.
    pub fn learnt(&self) -> Vec<Wrapped> {
        let (Some(held), Some(theft)) = (self.backup, &self.stolen) else { return Vec::new() };
        let in_backup = self.wrapped.iter().take(held);
        in_backup.filter(|w| theft.keys.get(&w.epoch) == Some(&w.generation)).copied().collect()
    }

    /// Whether the attacker obtained the storage keys after `key` was destroyed.
    fn destroyed_before_theft(&self, key: &KeyName) -> bool {
        self.stolen.as_ref().is_some_and(|t| t.destroyed.contains(key))
    }

    fn held(&self, key: &KeyName) -> bool {
        let records = self.store.load_key(key).records;
        records.iter().any(|r| matches!(r, Record::Issued { .. }))
            && !records.iter().any(|r| matches!(r, Record::Destroyed { .. }))
    }
}

/// What happens next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CustodyAction {
    /// The sender asks for a key.
    Issue,
    /// A listed recipient fetches a key (once).
    Fetch(KeyName, Addr),
    /// The clock advances: the sweep, then the epochs that are done.
    Tick,
    /// The attacker copies the store.
    Backup,
    /// The attacker obtains every storage key that exists.
    Steal,
}

/// The custody model.
#[derive(Clone, Debug)]
pub struct CustodyModel {
    /// Its configuration.
    pub cfg: CustodyConfig,
}

fn time(tick: u8) -> UnixTime {
    UnixTime(u64::from(tick))
}

fn tick_of(t: UnixTime) -> u8 {
    u8::try_from(t.secs()).unwrap_or(u8::MAX)
}

/// The sender's key request `n`, as verification established it.
struct KeyRequest {
    n: u8,
    now: u8,
}

impl VerifiedIssue<Sym> for KeyRequest {
    fn request_id(&self) -> (Addr, u8, u8) {
        (SENDER, self.n, 0)
    }

    fn request_time(&self) -> UnixTime {
        time(self.now)
    }

    fn sender(&self) -> Addr {
        SENDER
    }

    fn recipients(&self) -> Vec<Addr> {
        vec![R1, R2]
    }
}

/// Fresh key names: key `n` is `(0, n)`.
struct Names(u8);

impl KeyDraw<Sym> for Names {
    type Key = ();

    fn draw(&mut self) -> Result<(KeyName, KeyName, ()), Error> {
        let key = KeyName { boot: 0, seq: self.0 };
        Ok((key, key, ()))
    }
}

impl CustodyModel {
    /// The sender's next key: the core's issuance round, then the key wrapped under the
    /// storage key of the epoch of `now` (made if that epoch has none).
    fn issue(&self, s: &mut CustodyState) -> Result<(), Error> {
        let n = u8::try_from(s.wrapped.len()).unwrap_or(u8::MAX);
        let rules = IssueRules { policy: self.cfg.policy, ticket_lifetime_secs: u64::from(self.cfg.lifetime) };
        let facts = IssueFacts::of(&KeyRequest { n, now: s.now }, rules, time(s.now));
        let committed = Round::new(&self.cfg.rules(), Issue::new(facts), time(s.now)).run(&mut s.store, &mut Names(n));
        let drawn = committed?.into_payload();
        let epoch = StorageEpoch::of(time(s.now), u64::from(self.cfg.epoch_ticks));
        let generation = match s.ring.get(&epoch) {
            Some(g) => *g,
            None => {
                let made = s.made.entry(epoch).or_insert(0);
                *made = made.saturating_add(1);
                s.ring.insert(epoch, *made);
                *made
            }
        };
        let expires = tick_of(drawn.expires_at);
        s.wrapped.push(Wrapped { key: drawn.key_id, issued: s.now, expires, epoch, generation });
        Ok(())
    }

    /// `address` fetches `key`: refused if its epoch key is gone (`key_destroyed`, before
    /// anything is recorded, as the gatekeeper's release checks the unwrap), else the core's
    /// release round. A refusal is an answer; only `storage_failed` is a failure.
    fn fetch(&self, s: &mut CustodyState, key: KeyName, address: Addr) -> Result<(), Error> {
        s.fetched.insert((key, address));
        let Some(w) = s.wrapped.iter().find(|w| w.key == key).copied() else { return Ok(()) };
        if s.ring.get(&w.epoch) != Some(&w.generation) {
            return Ok(());
        }
        let facts = ReleaseFacts {
            key_id: key,
            listed: vec![R1, R2],
            expires_at: time(w.expires),
            requester: Requester { cert: address, addresses: vec![address], anchor: CA_A },
        };
        match Round::new(&self.cfg.rules(), Release::new(facts), time(s.now)).run(&mut s.store, &mut NoDraw) {
            Err(e) if e.rejection() == Rejection::StorageFailed => Err(e),
            _ => Ok(()),
        }
    }

    /// The clock advances: the core's sweep, then every epoch before
    /// [`done_epochs_before`] loses its key.
    fn tick(&self, s: &mut CustodyState) -> Result<(), Error> {
        s.now = s.now.saturating_add(1);
        let now = time(s.now);
        let swept = sweep(&self.cfg.rules(), &mut s.store, now)?;
        if let Some(e) = swept.failed.into_iter().next() {
            return Err(e);
        }
        let (epoch_secs, lifetime_secs) = (u64::from(self.cfg.epoch_ticks), u64::from(self.cfg.lifetime));
        if let Some(before) = done_epochs_before(&mut s.store, now, epoch_secs, lifetime_secs)? {
            let kept = s.ring.split_off(&before);
            let gone = std::mem::replace(&mut s.ring, kept);
            s.epochs_destroyed = s.epochs_destroyed.saturating_add(u8::try_from(gone.len()).unwrap_or(u8::MAX));
        }
        Ok(())
    }

    /// Ghost: the tick of every destruction the store now records (read at every step, so
    /// before any purge removes it).
    fn note_destructions(s: &mut CustodyState) {
        for w in &s.wrapped {
            if s.destroyed.contains_key(&w.key) {
                continue;
            }
            let records = s.store.load_key(&w.key).records;
            if let Some(at) = records.iter().find_map(|r| match r {
                Record::Destroyed { at, .. } => Some(*at),
                _ => None,
            }) {
                s.destroyed.insert(w.key, tick_of(at));
            }
        }
    }
}

impl Model for CustodyModel {
    type State = CustodyState;
    type Action = CustodyAction;

    fn init_states(&self) -> Vec<CustodyState> {
        vec![CustodyState {
            now: 0,
            store: MemoryState::default(),
            ring: BTreeMap::new(),
            made: BTreeMap::new(),
            wrapped: Vec::new(),
            fetched: BTreeSet::new(),
            destroyed: BTreeMap::new(),
            epochs_destroyed: 0,
            backup: None,
            stolen: None,
            failure: None,
        }]
    }

    fn actions(&self, s: &CustodyState, actions: &mut Vec<CustodyAction>) {
        if s.failure.is_some() {
            return;
        }
        if s.wrapped.len() < usize::from(self.cfg.keys) {
            actions.push(CustodyAction::Issue);
        }
        for w in &s.wrapped {
            for a in [R1, R2] {
                if !s.fetched.contains(&(w.key, a)) {
                    actions.push(CustodyAction::Fetch(w.key, a));
                }
            }
        }
        if s.now < self.cfg.ticks {
            actions.push(CustodyAction::Tick);
        }
        if s.backup.is_none() {
            actions.push(CustodyAction::Backup);
        }
        if s.stolen.is_none() {
            actions.push(CustodyAction::Steal);
        }
    }

    fn next_state(&self, last: &CustodyState, action: CustodyAction) -> Option<CustodyState> {
        let mut s = last.clone();
        let result = match action {
            CustodyAction::Issue => self.issue(&mut s),
            CustodyAction::Fetch(key, address) => self.fetch(&mut s, key, address),
            CustodyAction::Tick => self.tick(&mut s),
            CustodyAction::Backup => {
                s.backup = Some(s.wrapped.len());
                Ok(())
            }
            CustodyAction::Steal => {
                let destroyed = s.destroyed.keys().copied().collect();
                s.stolen = Some(Theft { at: s.now, keys: s.ring.clone(), destroyed });
                Ok(())
            }
        };
        if let Err(e) = result {
            s.failure = Some(format!("{}: {}", e.code(), e.detail()));
        }
        CustodyModel::note_destructions(&mut s);
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(property::EPOCH_DONE_UNREADABLE, |m: &CustodyModel, s: &CustodyState| {
                let at = s.stolen.as_ref().map_or(0, |t| u16::from(t.at));
                s.learnt().iter().all(|w| at < m.cfg.exposure_ends(w.issued))
            }),
            Property::always(property::HELD_KEYS_UNWRAP, |_, s: &CustodyState| {
                s.wrapped.iter().filter(|w| s.held(&w.key)).all(|w| s.ring.get(&w.epoch) == Some(&w.generation))
            }),
            Property::always(property::DESTROYED_UNREADABLE, |_, s: &CustodyState| {
                s.learnt().iter().all(|w| !s.destroyed_before_theft(&w.key))
            }),
            Property::always(property::NO_FAILURE, |_, s: &CustodyState| s.failure.is_none()),
            Property::sometimes(property::LEARNS_HELD_KEY, |_, s: &CustodyState| {
                s.learnt().iter().any(|w| !s.destroyed_before_theft(&w.key))
            }),
            Property::sometimes(property::EPOCH_DESTROYED, |_, s: &CustodyState| s.epochs_destroyed > 0),
        ]
    }
}
