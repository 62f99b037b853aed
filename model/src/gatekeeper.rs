//! The model's gatekeeper: `ekg-core`'s own rounds over a store of the configuration's
//! storage mode, with symbolic verification. It keeps no ledger: like the real gatekeeper, each
//! decision reads the key it is about from the store, through the core's rounds, facts built by
//! the core's own constructors, and what is due swept by the core's own sweep. Its handlers
//! return what the actor does ([`Effects`]) rather than acting, so that it depends on the
//! messages alone.

use std::sync::Arc;

use ekg_core::ledger::round::{Issue, Release};
use ekg_core::ledger::{
    Answered, Batch, GatewayPrincipal, IssueFacts, IssueRules, KeyDraw, Ledger, LedgerConfig, LoadedKey, Record,
    ReleaseFacts, ReleasePolicy, Requester, Round, Store, StoreError, VerifiedIssue, VerifiedRelease, Version,
};
use ekg_core::role::draw_fresh;
use ekg_core::{Error, Rejection, UnixTime};
use stateright::actor::Id;

use crate::config::{ModelConfig, NetworkKind, Storage};
use crate::msg::{EPOCH, FAR, Msg, NEVER, Timer, time};
use crate::symbols::{Addr, CA_A, Cert, KeyName, SENDER, SENDER_GATEWAY, Sym, addresses, anchor};

/// The gatekeeper's storage: its records, and a boot counter (a modelling device that bounds
/// reboots and keeps fresh names fresh; it holds no protocol state).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GkStorage {
    /// Durable records (shared with the gatekeeper's `written` until either changes).
    pub records: Arc<Vec<Record<Sym>>>,
    /// Boots so far.
    pub boots: u8,
    /// The clock (a modelling device, like `boots`: the gatekeeper's clock is not reset by a
    /// crash).
    pub now: u8,
}

/// The gatekeeper's volatile state. It keeps no ledger: like the real gatekeeper, each
/// decision reads the key it is about from the store (its records in `written` and, for the
/// wrong storage designs, `unwritten`), through the core's rounds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GkState {
    /// This boot.
    pub boot: u8,
    /// The clock, in ticks.
    pub now: u8,
    /// Next issue sequence.
    pub next_seq: u8,
    /// Responses waiting to be sent (their records are durable).
    pub outbox: Vec<(Id, Msg)>,
    /// Records waiting to be written (responses already sent; the wrong order).
    pub unwritten: Vec<Record<Sym>>,
    /// Records written so far (mirrors storage).
    pub written: Arc<Vec<Record<Sym>>>,
    /// The store's next append fails (a fault injected by the environment).
    pub store_failing: bool,
    /// A round of the shared code that broke its own contract (a decided record that does not
    /// apply, a store that does not replay): recorded instead of masked; property `ledgr`
    /// fails on it.
    pub failure: Option<String>,
}

/// What one of the gatekeeper's steps does besides changing its state: messages to send (in
/// order), timers to set, and whether its storage is saved.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub(crate) sends: Vec<(Id, Msg)>,
    pub(crate) timers: Vec<Timer>,
    pub(crate) save: bool,
}

impl Effects {
    fn send(&mut self, dst: Id, msg: Msg) {
        self.sends.push((dst, msg));
    }
}

/// The gatekeeper starting (or restarting after a crash) on `storage`.
pub(crate) fn start(cfg: &ModelConfig, storage: &Option<GkStorage>) -> (GkState, Effects) {
    let mut o = Effects::default();
    let boots = storage.as_ref().map_or(0, |s| s.boots.saturating_add(1));
    let now = storage.as_ref().map_or(0, |s| s.now);
    let records = match (cfg.storage, storage) {
        (Storage::Volatile, _) | (_, None) => Arc::new(Vec::new()),
        (_, Some(s)) => Arc::clone(&s.records),
    };
    // Nothing is recovered into memory (each decision reads its key); a store whose records
    // do not replay is recorded (property `ledgr` fails on it).
    let failure = new_ledger(cfg, &records).err().map(|e| format!("the store does not replay: {e}"));
    if cfg.store_fault && boots == 0 {
        o.timers.push(Timer::StoreFault);
    }
    let mut gk = GkState {
        boot: boots,
        now,
        next_seq: 0,
        outbox: vec![],
        unwritten: vec![],
        written: records,
        store_failing: false,
        failure,
    };
    // What fell due while it was down is decided first (as a real gatekeeper's sweep does at
    // start).
    if let Some(clock) = cfg.clock {
        expire(cfg, &mut gk);
        if gk.now < clock.ticks {
            o.timers.push(Timer::Tick);
        }
    }
    o.save = true;
    (gk, o)
}

/// The gatekeeper's timers.
pub(crate) fn on_timeout(cfg: &ModelConfig, gk: &mut GkState, timer: &Timer) -> Effects {
    let mut o = Effects::default();
    match timer {
        Timer::Respond => o.sends.append(&mut gk.outbox),
        Timer::StoreFault => gk.store_failing = true,
        Timer::Persist => {
            Arc::make_mut(&mut gk.written).append(&mut gk.unwritten);
            o.save = true;
        }
        Timer::Tick => {
            let Some(clock) = cfg.clock else { return o };
            gk.now += 1;
            expire(cfg, gk);
            o.save = true;
            if gk.now < clock.ticks {
                o.timers.push(Timer::Tick);
            }
        }
        Timer::Retry => {}
    }
    o
}

/// The rules of the model's gatekeeper (the ledger's configuration and gateways), as the model
/// configures `ekg-core`.
pub fn rules(cfg: &ModelConfig) -> Ledger<Sym> {
    // Without a clock retention never ends (a retained key stays for re-delivery) and the V14
    // window never closes.
    let retention_secs = match (cfg.policy, cfg.clock) {
        (ReleasePolicy::Once, _) => 0,
        (ReleasePolicy::SameCertificate, None) => u64::MAX / 4,
        (ReleasePolicy::SameCertificate, Some(clock)) => u64::from(clock.retention),
    };
    let window = cfg.clock.map_or(u64::MAX / 4, |clock| u64::from(clock.skew));
    // V14 on (ekg-core) or off (the draft's issuance, finding F6).
    let request_window_secs = cfg.idempotent_key_requests.then_some(window);
    let config = LedgerConfig { retention_secs, max_deliveries: cfg.max_deliveries, request_window_secs };
    let gateways = vec![GatewayPrincipal { address: SENDER_GATEWAY, issuer: CA_A }];
    Ledger::new(config).with_gateways(gateways)
}

/// The whole state `records` rebuild under the model's rules (the ghost checks' view; the
/// gatekeeper itself reads key by key).
pub fn new_ledger(cfg: &ModelConfig, records: &[Record<Sym>]) -> Result<Ledger<Sym>, Error> {
    let rules = rules(cfg);
    Ok(Ledger::recover(*rules.config(), records.iter())?.with_gateways(rules.gateways().to_vec()))
}

/// What an issuance takes from the configuration: the policy, and a lifetime in ticks (with a
/// clock) or one that ends at [`FAR`] (without).
fn issue_rules(cfg: &ModelConfig) -> IssueRules {
    let ticket_lifetime_secs = cfg.clock.map_or(FAR.secs() - EPOCH, |clock| u64::from(clock.lifetime));
    IssueRules { policy: cfg.policy, ticket_lifetime_secs }
}

/// The tick of a time ([`NEVER`] at or past [`FAR`]).
fn tick_of(t: UnixTime) -> u8 {
    if t >= FAR { NEVER } else { u8::try_from(t.secs().saturating_sub(EPOCH)).unwrap_or(NEVER) }
}

/// A key request as symbolic verification established it (V1 to V13): the gatekeeper's facts
/// are built from it by the core's own code ([`IssueFacts::of`]).
struct SymKeyRequest {
    signer: Cert,
    message: u8,
    attempt: u8,
    signed_at: u8,
    recipients: Vec<Addr>,
}

impl VerifiedIssue<Sym> for SymKeyRequest {
    fn request_id(&self) -> (Addr, u8, u8) {
        (self.signer, self.message, self.attempt)
    }

    fn request_time(&self) -> UnixTime {
        time(self.signed_at)
    }

    fn sender(&self) -> Addr {
        SENDER
    }

    fn recipients(&self) -> Vec<Addr> {
        self.recipients.clone()
    }
}

/// A release request as symbolic verification established it (V1 to V13, V20).
struct SymReleaseRequest {
    key: KeyName,
    signer: Cert,
    listed: Vec<Addr>,
    expires_at: UnixTime,
}

impl VerifiedRelease<Sym> for SymReleaseRequest {
    fn key_id(&self) -> KeyName {
        self.key
    }

    fn ticket_expiry(&self) -> UnixTime {
        self.expires_at
    }

    fn listed(&self) -> Vec<Addr> {
        self.listed.clone()
    }

    fn requester(&self) -> Requester<Sym> {
        Requester { cert: self.signer, addresses: addresses(self.signer), anchor: anchor(self.signer) }
    }
}

/// The shared drawing code (`ekg_core::role::draw_fresh`) fed with fresh symbols
/// instead of random bytes: every value it asks for is filled with a symbol of its own, and
/// the key id and the key are read back from what it returned (so a drawing that repeats a
/// value, copies one into the other, or ignores its source, is seen by property `fresh`). At most `max_keys` a boot (a bound of
/// the model, not of the protocol).
struct DrawNames<'a> {
    boot: u8,
    next_seq: &'a mut u8,
    max_keys: u8,
}

impl KeyDraw<Sym> for DrawNames<'_> {
    /// The key, as the grant carries it.
    type Key = KeyName;

    fn draw(&mut self) -> Result<(KeyName, KeyName, KeyName), Error> {
        if *self.next_seq >= self.max_keys {
            return Err(Error::new(Rejection::CryptoFailure, "the model's bound on keys per boot"));
        }
        let (boot, seq) = (self.boot, *self.next_seq);
        *self.next_seq += 1;
        // Each value asked for gets its own symbol: (boot, 2 seq) for the first, (boot, 2 seq
        // + 1) for the second (`max_keys` is far below 128).
        let mut asked = 0u8;
        let (key_id, key) = draw_fresh(|bytes| {
            bytes.fill(0);
            if let [b, s, ..] = bytes {
                (*b, *s) = (boot, seq.wrapping_mul(2).wrapping_add(asked));
            }
            asked = asked.wrapping_add(1);
        });
        let read = |bytes: &[u8]| KeyName {
            boot: bytes.first().copied().unwrap_or(0),
            seq: bytes.get(1).copied().unwrap_or(0),
        };
        let (id, material) = (read(&key_id.0), read(key.expose()));
        Ok((id, material, material))
    }
}

/// The gatekeeper's store, per the configuration's storage mode: `Durable` writes before the
/// response exists (the core's contract); `LateWrite` and `Volatile` claim durability they do
/// not have (the designs the model shows to be wrong): the records wait in `unwritten`, to be
/// written after the response (`LateWrite`) or never (`Volatile`). Reads see both, as the
/// process does. A key's version is the number of its records (one gatekeeper: rounds run
/// whole, between transitions, so no condition can fail but on the store fault).
struct ModelStore<'a> {
    storage: Storage,
    config: LedgerConfig,
    written: &'a mut Arc<Vec<Record<Sym>>>,
    unwritten: &'a mut Vec<Record<Sym>>,
    failing: &'a mut bool,
    /// Appended durably in this transition.
    wrote: bool,
    /// Records appended (durably or not) in this transition.
    appended: Vec<Record<Sym>>,
    /// The injected fault failed an append in this transition.
    faulted: bool,
}

impl ModelStore<'_> {
    fn all(&self) -> impl Iterator<Item = &Record<Sym>> {
        self.written.iter().chain(self.unwritten.iter())
    }

    fn loaded(&self, key_id: &KeyName) -> LoadedKey<Sym> {
        let records: Vec<Record<Sym>> = self.all().filter(|r| r.key_id() == key_id).cloned().collect();
        LoadedKey { version: Version(records.len() as u64), records }
    }

    fn whole(&self) -> Result<Ledger<Sym>, StoreError> {
        let records: Vec<Record<Sym>> = self.all().cloned().collect();
        Ledger::recover(self.config, records.iter()).map_err(|e| StoreError(e.detail().to_owned()))
    }
}

impl Store<Sym> for ModelStore<'_> {
    fn load_key(&mut self, key_id: &KeyName) -> Result<LoadedKey<Sym>, StoreError> {
        Ok(self.loaded(key_id))
    }

    fn load_request(&mut self, id: &(Addr, u8, u8)) -> Result<Option<Answered<Sym>>, StoreError> {
        let key = self.all().find_map(|r| match r {
            Record::Issued { key_id, request: Some(q), .. } | Record::Destroyed { key_id, request: Some(q), .. }
                if q.id == *id =>
            {
                Some(*key_id)
            }
            _ => None,
        });
        let purged = |k: &KeyName| self.all().any(|r| matches!(r, Record::Purged { key_id } if key_id == k));
        Ok(key.filter(|k| !purged(k)).map(|k| (k, self.loaded(&k))))
    }

    fn append_if_unchanged(&mut self, batch: &Batch<Sym>) -> Result<bool, StoreError> {
        if std::mem::take(self.failing) {
            self.faulted = true;
            return Err(StoreError("the model's store fault".into()));
        }
        // The store's contract: every key unchanged since read, and no request an `Issued`
        // record answers already answered.
        for change in &batch.keys {
            if self.loaded(&change.key_id).version != change.read {
                return Ok(false);
            }
        }
        for r in &batch.records {
            if let Record::Issued { request: Some(q), .. } = r
                && self.load_request(&q.id)?.is_some()
            {
                return Ok(false);
            }
        }
        match self.storage {
            Storage::Durable => {
                Arc::make_mut(self.written).extend_from_slice(&batch.records);
                self.wrote = true;
            }
            Storage::LateWrite => self.unwritten.extend_from_slice(&batch.records),
            Storage::Volatile => {
                // Never written, so their order is never read: kept sorted, so that the
                // order in which they were decided does not split states.
                self.unwritten.extend_from_slice(&batch.records);
                crate::symbols::sort_records(self.unwritten);
            }
        }
        self.appended.extend_from_slice(&batch.records);
        Ok(true)
    }

    fn due(&mut self, now: UnixTime, limit: usize) -> Result<Vec<KeyName>, StoreError> {
        let ledger = self.whole()?;
        let mut due: Vec<(UnixTime, KeyName)> =
            ledger.keys().map(|(k, s)| (s.deadline(), *k)).filter(|(t, _)| *t <= now).collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, k)| k).collect())
    }

    fn next_deadline(&mut self) -> Result<Option<UnixTime>, StoreError> {
        Ok(self.whole()?.poll_timeout())
    }

    fn held_keys(&mut self) -> Result<u64, StoreError> {
        Ok(self.whole()?.held_keys() as u64)
    }

    fn live_handle(&mut self) -> Result<Option<KeyName>, StoreError> {
        Ok(None)
    }
}

/// The gatekeeper: `ekg-core`'s own rounds read the key from the store, decide (V14, key
/// drawing, V21 to V24) and append through the store of the configuration's storage mode; the
/// facts come from the core's own constructors. Verification is symbolic: a request names its
/// signer (V1 to V8), and only the sender is recognised (V10, V11).
pub(crate) fn on_msg(cfg: &ModelConfig, gk: &mut GkState, src: Id, msg: Msg) -> Effects {
    let mut o = Effects::default();
    let refused = |key, signer, attempt| Msg::Refused { key, signer, attempt };
    let now = time(gk.now);
    let rules = rules(cfg);
    let (appended, wrote, response) = match msg {
        Msg::KeyRequest { signer, message, attempt, time: signed_at } => {
            // V10/V11 (only the sender is recognised) and V13 (freshness), symbolically.
            let stale = cfg.clock.is_some_and(|clock| gk.now.abs_diff(signed_at) > clock.skew);
            if signer != SENDER || stale {
                o.send(src, refused(None, signer, attempt));
                return o;
            }
            let request = SymKeyRequest { signer, message, attempt, signed_at, recipients: cfg.recipients.clone() };
            let facts = IssueFacts::of(&request, issue_rules(cfg), now);
            let (boot, max_keys) = (gk.boot, cfg.max_keys);
            let mut next_seq = gk.next_seq;
            let mut draw = DrawNames { boot, next_seq: &mut next_seq, max_keys };
            let mut store = model_store(cfg, gk);
            let result = Round::new(&rules, Issue::new(facts), now).run(&mut store, &mut draw);
            let (appended, wrote, faulted) = (std::mem::take(&mut store.appended), store.wrote, store.faulted);
            gk.next_seq = next_seq;
            let Some(committed) = settle(gk, result, faulted) else {
                o.send(src, refused(None, signer, attempt));
                return o;
            };
            let drawn = committed.payload();
            let expires = tick_of(drawn.expires_at);
            let grant = Msg::Grant { key: drawn.key_id, material: drawn.key, to: signer, message, attempt, expires };
            (appended, wrote, grant)
        }
        Msg::ReleaseRequest { key, signer, attempt } => {
            let request = SymReleaseRequest {
                key,
                signer,
                listed: cfg.recipients.clone(),
                expires_at: ticket_expiry(gk.written.iter().chain(gk.unwritten.iter()), &key),
            };
            let facts = ReleaseFacts::of(&request);
            let mut store = model_store(cfg, gk);
            let result =
                Round::new(&rules, Release::new(facts), now).run(&mut store, &mut ekg_core::ledger::round::NoDraw);
            let (appended, wrote, faulted) = (std::mem::take(&mut store.appended), store.wrote, store.faulted);
            let Some(committed) = settle(gk, result, faulted) else {
                o.send(src, refused(Some(key), signer, attempt));
                return o;
            };
            let destroys = appended.iter().any(|r| matches!(r, Record::Destroyed { .. }));
            let material = committed.payload().handle;
            (appended, wrote, Msg::Release { key, material, to: signer, attempt, destroys, at: gk.now })
        }
        _ => return o,
    };
    let records_empty = appended.is_empty();
    let crash_window = cfg.crashes > 0;
    match cfg.storage {
        Storage::Durable => {
            // The core's contract: durable before the response exists.
            if wrote {
                o.save = true;
            }
            // On a duplicating network a response that needs no record can go at once: a crash
            // that ate it would be the same as a crash before the request was delivered, since
            // the request stays in flight and is answered again after recovery.
            let recordless_on_duplicating = records_empty && cfg.network == NetworkKind::Duplicating;
            if crash_window && !recordless_on_duplicating {
                queue_response(cfg, gk, src, response);
                o.timers.push(Timer::Respond);
            } else {
                o.send(src, response);
            }
        }
        Storage::LateWrite => {
            o.send(src, response);
            if !records_empty {
                if crash_window {
                    o.timers.push(Timer::Persist);
                } else {
                    Arc::make_mut(&mut gk.written).append(&mut gk.unwritten);
                    o.save = true;
                }
            }
        }
        Storage::Volatile => o.send(src, response),
    }
    o
}

/// The gatekeeper's store for one transition.
fn model_store<'a>(cfg: &ModelConfig, gk: &'a mut GkState) -> ModelStore<'a> {
    ModelStore {
        storage: cfg.storage,
        config: *rules(cfg).config(),
        written: &mut gk.written,
        unwritten: &mut gk.unwritten,
        failing: &mut gk.store_failing,
        wrote: false,
        appended: Vec::new(),
        faulted: false,
    }
}

/// A round's outcome: the committed decision, or `None` (refused: a refusal goes out). A
/// `storage_failed` the injected fault did not cause is the shared code breaking its own
/// contract (a decided record that does not apply, a store that does not replay): recorded
/// (property `ledgr` fails on it), never masked.
fn settle<P>(
    gk: &mut GkState,
    result: Result<ekg_core::ledger::Committed<P>, Error>,
    faulted: bool,
) -> Option<ekg_core::ledger::Committed<P>> {
    match result {
        Ok(committed) => Some(committed),
        Err(e) => {
            if e.rejection() == Rejection::StorageFailed && !faulted {
                gk.failure.get_or_insert_with(|| format!("a round failed: {e}"));
            }
            None
        }
    }
}

/// The expiry a ticket of `key` carries. Symbolic: a ticket is made by the gatekeeper only, so
/// its expiry is the one recorded with the key; for a key the store does not know any expiry
/// gives the same refusal (expired or `key_unknown`).
fn ticket_expiry<'a>(mut records: impl Iterator<Item = &'a Record<Sym>>, key: &KeyName) -> UnixTime {
    records
        .find_map(|r| match r {
            Record::Issued { key_id, expires_at, .. } | Record::Destroyed { key_id, expires_at, .. }
                if key_id == key =>
            {
                Some(*expires_at)
            }
            _ => None,
        })
        .unwrap_or(FAR)
}

/// What is due at the gatekeeper's clock (expiry, end of retention, purge): the core's own
/// sweep, a round per due key, through the store. No response waits on these records: a
/// late-writing store writes them at once.
fn expire(cfg: &ModelConfig, gk: &mut GkState) {
    let rules = rules(cfg);
    let now = time(gk.now);
    let mut store = model_store(cfg, gk);
    // A failed append leaves the records due: the next tick decides them again.
    let swept = ekg_core::ledger::sweep(&rules, &mut store, now);
    let faulted = store.faulted;
    match swept {
        Ok(swept) => {
            for e in swept.failed {
                settle::<()>(gk, Err(e), faulted);
            }
        }
        Err(e) => {
            settle::<()>(gk, Err(e), faulted);
        }
    }
    if cfg.storage == Storage::LateWrite {
        Arc::make_mut(&mut gk.written).append(&mut gk.unwritten);
    }
}

impl GkState {
    /// What the gatekeeper's storage holds now.
    pub(crate) fn storage(&self) -> GkStorage {
        GkStorage { records: Arc::clone(&self.written), boots: self.boot, now: self.now }
    }
}

/// Queues a response whose record is durable; the `Respond` timer sends the whole outbox at
/// once. Its order matters only on an ordered network: elsewhere the outbox is kept sorted
/// (see [`batch_order`]), so
/// that two interleavings which queued the same responses are one state. On a duplicating
/// network a response already waiting is not queued twice: one copy sent into it is
/// delivered any number of times, exactly as two copies are. (Without this, every redelivery
/// of the sender gateway's request, which the ledger always serves, grew the outbox: the state
/// space of the full configuration was infinite.)
/// The order in which one `Respond` step sends the outbox: any order, but the release that
/// destroyed a key last, as it was decided (the ledger refuses every later request for that
/// key, so every other response for it in the batch was decided before it). Property `destr`
/// reads the order of sends: no release may follow the one that served every listed address.
pub(crate) fn batch_order(entry: &(Id, Msg)) -> (bool, &(Id, Msg)) {
    (matches!(entry.1, Msg::Release { destroys: true, .. }), entry)
}

fn queue_response(cfg: &ModelConfig, gk: &mut GkState, dst: Id, response: Msg) {
    let entry = (dst, response);
    match cfg.network {
        NetworkKind::Ordered => gk.outbox.push(entry),
        NetworkKind::Duplicating if gk.outbox.contains(&entry) => {}
        NetworkKind::Unordered | NetworkKind::Duplicating => {
            let at = gk.outbox.partition_point(|e| batch_order(e) < batch_order(&entry));
            gk.outbox.insert(at, entry);
        }
    }
}
