//! One decision over a [`Store`]: read, decide, append if unchanged; read and decide again if
//! another request changed a key meanwhile. The one path every gatekeeper runs, whatever its
//! store and however many processes share it, and the one the model checker drives.
//!
//! # Driving it
//! A [`Round`] is a small state machine, quinn-style: [`Round::step`] does one step and says
//! whether the round is over.
//! 1. **read and decide**: the round reads what its decision needs (the key of a release or
//!    an expiry; for an issuance the key that answered the same request, V14) into a view, and
//!    the ledger decides on that view ([`Ledger::decide_issue`], [`Ledger::decide_release`],
//!    [`Ledger::decide_expiry`]). A refusal ends the round.
//! 2. **write**: the decided records are appended if every key read is unchanged
//!    ([`Store::append_if_unchanged`]). Appended: the round ends with a [`Committed`], the only
//!    input a response is built from. Not appended: back to 1, at most [`ATTEMPTS`] times.
//!
//! A server runs both steps at once ([`Round::run`]); the model checker runs them as separate
//! transitions, so that every interleaving of two gatekeepers between a read and a write is
//! explored on this very code.
//!
//! A lost race never draws a second key for one request: the key drawn for the first attempt
//! is reused by the next ones.

use std::collections::BTreeMap;

use super::pipeline::{Committed, Decided, Drawn, Granted, KeyDraw};
use super::store::{Batch, KeyChange, LoadedKey, Store, StoreError, Version};
use super::{IssueFacts, KeyState, Ledger, LedgerTypes, Record, ReleaseFacts};
use crate::error::{Error, Rejection, Result, reject};
use crate::time::UnixTime;

/// Reads, decisions and writes per request before giving up (`storage_failed`: the client
/// retries later): each further attempt means another request changed the same key first.
pub const ATTEMPTS: u32 = 16;

/// Keys swept per [`sweep`] call.
pub const SWEEP_LIMIT: usize = 256;

/// What one round decides: an issuance, a release, or what is due for one key.
pub trait Decision<T: LedgerTypes> {
    /// What the response needs.
    type Payload;
    /// The key an issuance draws (`()` for the other decisions, which draw nothing).
    type Key;
    /// Reads what the decision needs into `view`.
    fn read<S: Store<T> + ?Sized>(&self, store: &mut S, view: &mut View<T>) -> Result<()>;
    /// Decides on `view`.
    fn decide(
        &mut self,
        view: &View<T>,
        draw: &mut dyn KeyDraw<T, Key = Self::Key>,
        now: UnixTime,
    ) -> Result<Decided<T, Self::Payload>>;
    /// The issuance-log entries (encoded) that `decided` appends in its batch: none unless
    /// the gatekeeper keeps a log (`crate::audit`).
    fn log(&self, decided: &Decided<T, Self::Payload>) -> Result<Vec<Vec<u8>>> {
        let _ = decided;
        Ok(Vec::new())
    }

    /// The access tokens `decided` was made with, recorded in its batch (V28.8): none but a
    /// release with a token.
    fn tokens(&self) -> Vec<crate::access::token::TokenUse> {
        Vec::new()
    }

    /// The decision lost its race: `decided` was not written (an issuance keeps its key for
    /// the next attempt).
    fn lost(&mut self, decided: Decided<T, Self::Payload>) {
        drop(decided);
    }
}

/// The keys a decision read and their versions: the condition of its write.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct View<T: LedgerTypes> {
    ledger: Ledger<T>,
    read: BTreeMap<T::KeyId, Version>,
}

impl<T: LedgerTypes> View<T> {
    /// An empty view under `rules` (the ledger's configuration and gateways; its keys are
    /// not read).
    pub fn new(rules: &Ledger<T>) -> Self {
        View { ledger: rules.emptied(), read: BTreeMap::new() }
    }

    /// Adds one key as read from the store. Fails (`storage_failed`) on records that do not
    /// apply or name another key.
    pub fn load(&mut self, key_id: &T::KeyId, loaded: LoadedKey<T>) -> Result<()> {
        for record in &loaded.records {
            if record.key_id() != key_id {
                return Err(reject(Rejection::StorageFailed, "a key's records name another key"));
            }
        }
        self.ledger.refresh(key_id, &loaded.records)?;
        self.read.insert(key_id.clone(), loaded.version);
        Ok(())
    }

    /// The ledger over the keys read.
    pub fn ledger(&self) -> &Ledger<T> {
        &self.ledger
    }

    /// The batch that writes `records` under this view's condition: each key it touches at
    /// the version read, with its deadline after the records. A record that does not apply
    /// to the view is an error of the deciding code (`storage_failed`, never written).
    pub fn batch(&self, records: &[Record<T>]) -> Result<Batch<T>> {
        let mut after = self.ledger.clone();
        for r in records {
            after.apply(r)?;
        }
        let mut keys: Vec<KeyChange<T>> = Vec::new();
        for r in records {
            let key_id = r.key_id();
            if keys.iter().any(|k| &k.key_id == key_id) {
                continue;
            }
            let state = after.state(key_id);
            keys.push(KeyChange {
                key_id: key_id.clone(),
                read: self.read.get(key_id).copied().unwrap_or(Version::ABSENT),
                deadline: state.map(KeyState::deadline),
                held: state.is_some_and(|s| !matches!(s, KeyState::Destroyed(_))),
            });
        }
        Ok(Batch { records: records.to_vec(), keys, log: Vec::new(), tokens: Vec::new() })
    }
}

/// How a step ended.
#[derive(Debug)]
pub enum Step<P> {
    /// More to do: call [`Round::step`] again.
    Again,
    /// The round is over: committed (the records are durable), or refused.
    Done(Result<Committed<P>>),
}

/// One decision over a store, step by step. See the module's documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Round<T: LedgerTypes, D: Decision<T>> {
    rules: Ledger<T>,
    decision: D,
    now: UnixTime,
    attempts: u32,
    written: Option<Written<T, D::Payload>>,
}

/// A decision waiting for its write.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Written<T: LedgerTypes, P> {
    batch: Batch<T>,
    decided: Decided<T, P>,
}

impl<T: LedgerTypes, D: Decision<T>> Round<T, D> {
    /// A round deciding `decision` at `now` under `rules`.
    pub fn new(rules: &Ledger<T>, decision: D, now: UnixTime) -> Self {
        Round { rules: rules.emptied(), decision, now, attempts: 0, written: None }
    }

    /// Attempts lost to another request so far (a metric of contention).
    pub fn races_lost(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }

    /// Whether the next step is the write (the model's crash point between read and write).
    pub fn writes_next(&self) -> bool {
        self.written.is_some()
    }

    /// The records about to be written, if the next step is the write.
    pub fn pending(&self) -> Option<&Batch<T>> {
        self.written.as_ref().map(|w| &w.batch)
    }

    /// Does one step: read and decide, or write. See the module's documentation.
    pub fn step<S: Store<T> + ?Sized>(
        &mut self,
        store: &mut S,
        draw: &mut dyn KeyDraw<T, Key = D::Key>,
    ) -> Step<D::Payload> {
        match self.written.take() {
            None => self.read_and_decide(store, draw),
            Some(written) => self.write(store, written),
        }
    }

    /// Runs the round to its end.
    pub fn run<S: Store<T> + ?Sized>(
        &mut self,
        store: &mut S,
        draw: &mut dyn KeyDraw<T, Key = D::Key>,
    ) -> Result<Committed<D::Payload>> {
        loop {
            if let Step::Done(result) = self.step(store, draw) {
                return result;
            }
        }
    }

    fn read_and_decide<S: Store<T> + ?Sized>(
        &mut self,
        store: &mut S,
        draw: &mut dyn KeyDraw<T, Key = D::Key>,
    ) -> Step<D::Payload> {
        if self.attempts >= ATTEMPTS {
            return Step::Done(Err(reject(
                Rejection::StorageFailed,
                "other requests kept changing this key: try again",
            )));
        }
        self.attempts += 1;
        let mut view = View::new(&self.rules);
        if let Err(e) = self.decision.read(store, &mut view) {
            return Step::Done(Err(e));
        }
        let decided = match self.decision.decide(&view, draw, self.now) {
            Ok(d) => d,
            Err(e) => return Step::Done(Err(e)),
        };
        let log = match self.decision.log(&decided) {
            Ok(log) => log,
            Err(e) => return Step::Done(Err(e)),
        };
        let tokens = self.decision.tokens();
        if decided.records().is_empty() && log.is_empty() && tokens.is_empty() {
            // Nothing to make durable (a gateway's fetch unlogged, nothing due): committed
            // as read.
            return Step::Done(Ok(Committed::new(decided.into_payload())));
        }
        match view.batch(decided.records()) {
            Ok(mut batch) => {
                batch.log = log;
                batch.tokens = tokens;
                self.written = Some(Written { batch, decided });
                Step::Again
            }
            Err(e) => Step::Done(Err(e)),
        }
    }

    fn write<S: Store<T> + ?Sized>(&mut self, store: &mut S, written: Written<T, D::Payload>) -> Step<D::Payload> {
        match store.append_if_unchanged(&written.batch) {
            Ok(true) => Step::Done(Ok(Committed::new(written.decided.into_payload()))),
            Ok(false) => {
                self.decision.lost(written.decided);
                Step::Again
            }
            Err(_) if crate::planted::is(crate::planted::PlantedBug::AnswerBeforeDurable) => {
                Step::Done(Ok(Committed::new(written.decided.into_payload())))
            }
            Err(e) => Step::Done(Err(storage_failed(e))),
        }
    }
}

/// `storage_failed` with what the store said.
pub fn storage_failed(e: StoreError) -> Error {
    reject(Rejection::StorageFailed, e.0)
}

/// An issuance: V14 on the key that answered the same request (if any), then a fresh key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Issue<T: LedgerTypes, K> {
    facts: IssueFacts<T>,
    /// The key drawn by a lost attempt, reused by the next.
    drawn: Option<(T::KeyId, T::KeyHandle, K)>,
}

impl<T: LedgerTypes, K> Issue<T, K> {
    /// An issuance for `facts`.
    pub fn new(facts: IssueFacts<T>) -> Self {
        Issue { facts, drawn: None }
    }
}

impl<T: LedgerTypes, K> Decision<T> for Issue<T, K> {
    type Payload = Drawn<T, K>;
    type Key = K;

    fn read<S: Store<T> + ?Sized>(&self, store: &mut S, view: &mut View<T>) -> Result<()> {
        if let Some((key_id, loaded)) = store.load_request(&self.facts.request).map_err(storage_failed)? {
            view.load(&key_id, loaded)?;
        }
        // A lost attempt's key id: if it is now known, the ledger refuses it (L2).
        if let Some((key_id, _, _)) = &self.drawn {
            let loaded = store.load_key(key_id).map_err(storage_failed)?;
            view.load(key_id, loaded)?;
        }
        Ok(())
    }

    fn decide(
        &mut self,
        view: &View<T>,
        draw: &mut dyn KeyDraw<T, Key = K>,
        now: UnixTime,
    ) -> Result<Decided<T, Self::Payload>> {
        let mut reuse = Reuse { drawn: self.drawn.take(), fresh: draw };
        view.ledger.decide_issue(self.facts.clone(), &mut reuse, now)
    }

    fn lost(&mut self, decided: Decided<T, Self::Payload>) {
        let (records, drawn) = decided.into_parts();
        let handle = records.into_iter().find_map(|r| match r {
            Record::Issued { handle, .. } => Some(handle),
            _ => None,
        });
        if let Some(handle) = handle {
            self.drawn = Some((drawn.key_id, handle, drawn.key));
        }
    }
}

/// The draw of the decisions that draw nothing (a release, an expiry): never called.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NoDraw;

impl<T: LedgerTypes> KeyDraw<T> for NoDraw {
    type Key = ();

    fn draw(&mut self) -> Result<(T::KeyId, T::KeyHandle, ())> {
        Err(reject(Rejection::CryptoFailure, "this decision draws no key"))
    }
}

/// Draws from the lost attempt's key first, then fresh.
struct Reuse<'a, T: LedgerTypes, K> {
    drawn: Option<(T::KeyId, T::KeyHandle, K)>,
    fresh: &'a mut dyn KeyDraw<T, Key = K>,
}

impl<T: LedgerTypes, K> KeyDraw<T> for Reuse<'_, T, K> {
    type Key = K;

    fn draw(&mut self) -> Result<(T::KeyId, T::KeyHandle, K)> {
        match self.drawn.take() {
            Some(drawn) => Ok(drawn),
            None => self.fresh.draw(),
        }
    }
}

/// A release: V21 to V24 on the ticket's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Release<T: LedgerTypes> {
    facts: ReleaseFacts<T>,
}

impl<T: LedgerTypes> Release<T> {
    /// A release for `facts`.
    pub fn new(facts: ReleaseFacts<T>) -> Self {
        Release { facts }
    }
}

impl<T: LedgerTypes> Decision<T> for Release<T> {
    type Payload = Granted<T>;
    type Key = ();

    fn read<S: Store<T> + ?Sized>(&self, store: &mut S, view: &mut View<T>) -> Result<()> {
        let loaded = store.load_key(&self.facts.key_id).map_err(storage_failed)?;
        view.load(&self.facts.key_id, loaded)
    }

    fn decide(
        &mut self,
        view: &View<T>,
        _: &mut dyn KeyDraw<T, Key = ()>,
        now: UnixTime,
    ) -> Result<Decided<T, Granted<T>>> {
        view.ledger.decide_release(&self.facts, now)
    }
}

/// What is due for one key: destruction at expiry or at the end of retention, the purge.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Expiry<T: LedgerTypes> {
    key_id: T::KeyId,
}

impl<T: LedgerTypes> Expiry<T> {
    /// What is due for `key_id`.
    pub fn new(key_id: T::KeyId) -> Self {
        Expiry { key_id }
    }
}

impl<T: LedgerTypes> Decision<T> for Expiry<T> {
    type Payload = usize;
    type Key = ();

    fn read<S: Store<T> + ?Sized>(&self, store: &mut S, view: &mut View<T>) -> Result<()> {
        let loaded = store.load_key(&self.key_id).map_err(storage_failed)?;
        view.load(&self.key_id, loaded)
    }

    fn decide(&mut self, view: &View<T>, _: &mut dyn KeyDraw<T, Key = ()>, now: UnixTime) -> Result<Decided<T, usize>> {
        let decided = view.ledger.decide_expiry(now);
        let made = decided.records().len();
        Ok(decided.map(|()| made))
    }
}

/// What a [`sweep`] did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Records made durable.
    pub made: usize,
    /// The keys that could not be read, decided or written (each one's error).
    pub failed: Vec<Error>,
}

/// Destroys expired keys and keys whose retention ended, purges old tombstones: what is due at
/// `now`, at most [`SWEEP_LIMIT`] keys, each in a round of its own (one key that cannot be
/// read or written does not stop the others'). `Err` only if the store could not say what is
/// due.
pub fn sweep<T: LedgerTypes, S: Store<T> + ?Sized>(rules: &Ledger<T>, store: &mut S, now: UnixTime) -> Result<Swept> {
    let early = u64::from(crate::planted::is(crate::planted::PlantedBug::SweepOneSecondEarly));
    let due = store.due(now.plus_secs(early), SWEEP_LIMIT).map_err(storage_failed)?;
    let mut swept = Swept::default();
    for key_id in due {
        match Round::new(rules, Expiry::new(key_id), now).run(store, &mut NoDraw) {
            Ok(committed) => swept.made += committed.into_payload(),
            Err(e) => swept.failed.push(e),
        }
    }
    Ok(swept)
}
