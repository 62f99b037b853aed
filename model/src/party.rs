//! The actors: gatekeeper, sender, recipients, gateways, attacker. Symbolic crypto.
//!
//! Symbolic crypto, as assumptions of the model:
//! - signatures cannot be forged: a message names its signer (`signer`), and only the holder
//!   of that certificate creates messages naming it; others can only replay them;
//! - a ticket can only be made by the gatekeeper (it is named by its key);
//! - a key encrypted to a certificate (`to`) is readable only by that certificate's holder.
//!
//! Key ids and keys are drawn by `ekg-core`'s own drawing code (`draw_fresh`), which the model
//! feeds fresh symbols instead of random bytes: the key id and the key are read back from what
//! it returned, so a drawing that repeats a value is seen by property `fresh`.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use ekg_core::ledger::round::{Issue, Release};
use ekg_core::ledger::{
    Answered, Batch, GatewayPrincipal, IssueFacts, IssueRules, KeyDraw, Ledger, LedgerConfig, LoadedKey, Record,
    ReleaseFacts, ReleasePolicy, Requester, Round, Store, StoreError, VerifiedIssue, VerifiedRelease, Version,
};
use ekg_core::role::draw_fresh;
use ekg_core::{Error, Rejection, UnixTime};
use stateright::actor::{Actor, Id, Out, model_timeout};

use crate::config::{ModelConfig, NetworkKind, Storage};
use crate::symbols::{ATTACKER, Addr, CA_A, Cert, KeyName, SENDER, SENDER_GATEWAY, Sym, addresses, anchor};

/// The model's time: tick `t` is second `EPOCH + t`. Without a clock every action happens at
/// tick 0, tickets never expire ([`FAR`]) and retention never ends.
const EPOCH: u64 = 1_000;
const FAR: UnixTime = UnixTime(u64::MAX / 2);
/// A ticket expiry that never comes (no clock).
pub const NEVER: u8 = u8::MAX;

/// The time of tick `tick` ([`NEVER`]: never).
pub(crate) fn time(tick: u8) -> UnixTime {
    if tick == NEVER { FAR } else { UnixTime(EPOCH + u64::from(tick)) }
}

/// Messages. `attempt` distinguishes a client's retries and `message` the sender's messages
/// (fresh nonces in the real protocol); `signer` is the certificate that signed; `to` the
/// certificate a key is encrypted to; `key` is a ticket's key id and `material` the key
/// itself; times are ticks.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    /// A key request for message `message`, signed by `signer` at tick `time`.
    KeyRequest { signer: Cert, message: u8, attempt: u8, time: u8 },
    /// Grant and ticket: the ticket of key id `key` (expiring at tick `expires`, [`NEVER`]
    /// without a clock), the key `material` encrypted to `to`.
    Grant { key: KeyName, material: KeyName, to: Cert, message: u8, attempt: u8, expires: u8 },
    /// The sealed message with its ticket (by mail).
    Mail { key: KeyName },
    /// A release request: `signer` countersigns the ticket of `key`.
    ReleaseRequest { key: KeyName, signer: Cert, attempt: u8 },
    /// A release for the ticket of `key`: the stored key `material` encrypted to `to`.
    /// `destroys` (the ledger destroyed the key with this release) only orders a batch of
    /// responses ([`batch_order`]); no property reads it. `at` is the tick it was decided at
    /// (ghost: property `destr` reads it, no actor does; always 0 without a clock).
    Release { key: KeyName, material: KeyName, to: Cert, attempt: u8, destroys: bool, at: u8 },
    /// A refusal of `signer`'s request `attempt` (for `key`, if a release); the real
    /// gatekeeper answers with a rejection code.
    Refused { key: Option<KeyName>, signer: Cert, attempt: u8 },
}

impl Msg {
    /// The message packed into one integer, injectively (every field is a byte or a flag):
    /// how `reduction::role` describes a recipient's messages.
    pub(crate) fn packed(&self) -> u128 {
        let key = |k: &KeyName| (u128::from(k.boot) << 8) | u128::from(k.seq);
        let (tag, material, key, addr, attempt, flag, extra) = match self {
            Msg::KeyRequest { signer, message, attempt, time } => {
                (0, 0, 0, *signer, *attempt, false, u16::from(*message) << 8 | u16::from(*time))
            }
            Msg::Grant { key: k, material: m, to, message, attempt, expires } => {
                (1, key(m), key(k), *to, *attempt, false, u16::from(*message) << 8 | u16::from(*expires))
            }
            Msg::Mail { key: k } => (2, 0, key(k), 0, 0, false, 0),
            Msg::ReleaseRequest { key: k, signer, attempt } => (3, 0, key(k), *signer, *attempt, false, 0),
            Msg::Release { key: k, material: m, to, attempt, destroys, at } => {
                (4, key(m), key(k), *to, *attempt, *destroys, u16::from(*at))
            }
            Msg::Refused { key: k, signer, attempt } => {
                (5, 0, k.as_ref().map_or(0, key), *signer, *attempt, k.is_some(), 0)
            }
        };
        (tag << 80)
            | (material << 64)
            | (key << 48)
            | (u128::from(addr) << 40)
            | (u128::from(attempt) << 32)
            | (u128::from(flag) << 24)
            | u128::from(extra)
    }
}

/// Timers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// A client retries its request.
    Retry,
    /// The gatekeeper sends responses whose records are durable (crash window after them).
    Respond,
    /// The gatekeeper writes records of responses already sent (the wrong order).
    Persist,
    /// The gatekeeper's store starts failing (its next append fails).
    StoreFault,
    /// The clock advances one tick (the gatekeeper then runs what is due).
    Tick,
}

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

/// Actor states.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PartyState {
    /// The gatekeeper.
    Gatekeeper(GkState),
    /// Sender, recipient or gateway.
    Client(ClientState),
    /// The attacker.
    Attacker(AttackerState),
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

/// A client's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct ClientState {
    /// The ticket's key id, received by mail (or in the grant, for the sender).
    pub ticket: Option<KeyName>,
    /// The key, once decrypted.
    pub key: Option<KeyName>,
    /// Retries made.
    pub attempts: u8,
    /// Attempts refused (a set: a duplicated refusal changes nothing).
    pub refused: BTreeSet<u8>,
}

/// The attacker's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct AttackerState {
    /// Refusals received (a set: a duplicated refusal changes nothing).
    pub refused: BTreeSet<(Option<KeyName>, Addr, u8)>,
    /// Tickets seen (mail is readable by anyone on its path).
    pub tickets: BTreeSet<KeyName>,
    /// Release requests of others seen.
    pub seen: BTreeSet<(KeyName, Addr, u8)>,
    /// Replays made (at most `attacker_replays`).
    pub replays: u8,
    /// Keys it could decrypt (must stay empty).
    pub learned: BTreeSet<KeyName>,
    /// Responses for others it observed (and could not open).
    pub observed: BTreeSet<(KeyName, Addr, u8)>,
}

/// A delivery that changes nothing any transition or property reads: a refusal to a client or
/// the attacker, or a release for someone else reaching the attacker.
fn inert(party: &Party, msg: &Msg) -> bool {
    match (party, msg) {
        (_, Msg::Refused { .. }) => true,
        (Party::Attacker(_), Msg::Release { to, .. }) => *to != ATTACKER,
        _ => false,
    }
}

/// The actors of the model.
#[derive(Clone, Debug)]
pub enum Party {
    /// The gatekeeper of the sender's organisation.
    Gatekeeper(ModelConfig),
    /// The sender, sending message `message`.
    Sender {
        /// Which of the sender's messages.
        message: u8,
        /// The configuration.
        cfg: ModelConfig,
    },
    /// A listed recipient, or a gateway (configured or not); fetches the key of message
    /// `message` when its mail arrives.
    Fetcher {
        /// Its certificate (the addresses it holds: [`addresses`]).
        addr: Cert,
        /// Which of the sender's messages.
        message: u8,
        /// The configuration.
        cfg: ModelConfig,
    },
    /// The attacker.
    Attacker(ModelConfig),
}

impl Party {
    fn cfg(&self) -> &ModelConfig {
        match self {
            Party::Gatekeeper(c) | Party::Attacker(c) => c,
            Party::Sender { cfg, .. } | Party::Fetcher { cfg, .. } => cfg,
        }
    }
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
        for change in &batch.keys {
            if self.loaded(&change.key_id).version != change.read {
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
                crate::reduction::sort_records(self.unwritten);
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

impl Actor for Party {
    type Msg = Msg;
    type State = PartyState;
    type Timer = Timer;
    type Storage = GkStorage;
    type Random = ();

    fn on_start(&self, _id: Id, storage: &Option<GkStorage>, o: &mut Out<Self>) -> PartyState {
        let cfg = self.cfg();
        match self {
            Party::Gatekeeper(_) => {
                let boots = storage.as_ref().map_or(0, |s| s.boots.saturating_add(1));
                let now = storage.as_ref().map_or(0, |s| s.now);
                let records = match (cfg.storage, storage) {
                    (Storage::Volatile, _) | (_, None) => Arc::new(Vec::new()),
                    (_, Some(s)) => Arc::clone(&s.records),
                };
                // Nothing is recovered into memory (each decision reads its key); a store whose
                // records do not replay is recorded (property `ledgr` fails on it).
                let failure = new_ledger(cfg, &records).err().map(|e| format!("the store does not replay: {e}"));
                if cfg.store_fault && boots == 0 {
                    o.set_timer(Timer::StoreFault, model_timeout());
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
                // What fell due while it was down is decided first (as a real gatekeeper does
                // with `poll_timeout` at start).
                if let Some(clock) = cfg.clock {
                    expire(cfg, &mut gk);
                    if gk.now < clock.ticks {
                        o.set_timer(Timer::Tick, model_timeout());
                    }
                }
                o.save(gk.storage());
                PartyState::Gatekeeper(gk)
            }
            Party::Sender { message, .. } => {
                // Signed by the sender's clock at start (the gatekeeper's reads 0).
                let time = cfg.clock.map_or(0, |clock| clock.ahead);
                o.send(cfg.gatekeeper_id(), Msg::KeyRequest { signer: SENDER, message: *message, attempt: 0, time });
                // No retry with a clock: it would be signed at a time the sender cannot read.
                if cfg.retries > 0 && cfg.clock.is_none() {
                    o.set_timer(Timer::Retry, model_timeout());
                }
                PartyState::Client(ClientState::default())
            }
            Party::Fetcher { .. } => PartyState::Client(ClientState::default()),
            Party::Attacker(_) => PartyState::Attacker(AttackerState::default()),
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<PartyState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        let cfg = self.cfg();
        match (self, state.as_ref()) {
            (Party::Gatekeeper(_), PartyState::Gatekeeper(_)) => {
                let PartyState::Gatekeeper(gk) = state.to_mut() else { return };
                gatekeeper_on_msg(cfg, gk, src, msg, o);
            }
            // On a duplicating network a delivered message stays in flight, so consuming it
            // needs no state change: recording a refusal (or a release for someone else, below)
            // would only make a copy of the state that differs in a field no transition and no
            // property reads. stateright drops such no-op deliveries, which merges those
            // copies; the reduction is sound there because nothing reads these fields. On the
            // other networks the delivery removes the message, and the record keeps it a step.
            (Party::Sender { .. } | Party::Fetcher { .. } | Party::Attacker(_), _)
                if cfg.network == NetworkKind::Duplicating && inert(self, &msg) => {}
            (Party::Sender { .. } | Party::Fetcher { .. }, PartyState::Client(c))
                if matches!(msg, Msg::Refused { .. }) =>
            {
                if let Msg::Refused { attempt, .. } = msg
                    && !c.refused.contains(&attempt)
                {
                    let PartyState::Client(c) = state.to_mut() else { return };
                    c.refused.insert(attempt);
                }
            }
            (Party::Attacker(_), PartyState::Attacker(a)) if matches!(msg, Msg::Refused { .. }) => {
                if let Msg::Refused { key, signer, attempt } = msg
                    && !a.refused.contains(&(key, signer, attempt))
                {
                    let PartyState::Attacker(a) = state.to_mut() else { return };
                    a.refused.insert((key, signer, attempt));
                }
            }
            (Party::Sender { message, .. }, PartyState::Client(s)) => {
                if let Msg::Grant { key, material, to: SENDER, .. } = msg
                    && s.key.is_none()
                {
                    let PartyState::Client(s) = state.to_mut() else { return };
                    s.key = Some(material);
                    s.ticket = Some(key);
                    o.cancel_timer(Timer::Retry);
                    // Seal once, send to every listed recipient; the mail passes the sender's
                    // gateway (outbound), the recipient organisation's gateway (inbound) and
                    // the attacker (who sees every message).
                    for dst in cfg.mail_destinations(*message) {
                        o.send(dst, Msg::Mail { key });
                    }
                }
            }
            (Party::Fetcher { addr, .. }, PartyState::Client(s)) => match msg {
                Msg::Mail { key } if s.ticket.is_none() => {
                    let PartyState::Client(s) = state.to_mut() else { return };
                    s.ticket = Some(key);
                    let req = Msg::ReleaseRequest { key, signer: *addr, attempt: 0 };
                    send_release_request(cfg, o, req);
                    if cfg.is_recipient(*addr) && cfg.retries > 0 {
                        o.set_timer(Timer::Retry, model_timeout());
                    }
                }
                Msg::Release { key, material, to, .. } if to == *addr && s.ticket == Some(key) && s.key.is_none() => {
                    let PartyState::Client(s) = state.to_mut() else { return };
                    s.key = Some(material);
                    o.cancel_timer(Timer::Retry);
                }
                _ => {}
            },
            (Party::Attacker(_), PartyState::Attacker(a)) => match msg {
                Msg::Mail { key } if !a.tickets.contains(&key) => {
                    let PartyState::Attacker(a) = state.to_mut() else { return };
                    a.tickets.insert(key);
                    // Inject: its own countersignature on a ticket it saw.
                    o.send(cfg.gatekeeper_id(), Msg::ReleaseRequest { key, signer: ATTACKER, attempt: 0 });
                }
                Msg::ReleaseRequest { key, signer, attempt } if !a.seen.contains(&(key, signer, attempt)) => {
                    let PartyState::Attacker(a) = state.to_mut() else { return };
                    a.seen.insert((key, signer, attempt));
                    // Replay: a recipient's signed request, sent from the attacker's address.
                    if a.replays < cfg.attacker_replays {
                        a.replays += 1;
                        o.send(cfg.gatekeeper_id(), msg);
                    }
                }
                Msg::Grant { material, to: ATTACKER, .. } | Msg::Release { material, to: ATTACKER, .. }
                    if !a.learned.contains(&material) =>
                {
                    let PartyState::Attacker(a) = state.to_mut() else { return };
                    a.learned.insert(material);
                }
                // A response to a replayed request, encrypted to its signer: unreadable.
                Msg::Release { key, to, attempt, .. }
                    if to != ATTACKER && !a.observed.contains(&(key, to, attempt)) =>
                {
                    let PartyState::Attacker(a) = state.to_mut() else { return };
                    a.observed.insert((key, to, attempt));
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<PartyState>, timer: &Timer, o: &mut Out<Self>) {
        let cfg = self.cfg();
        match (self, timer) {
            (Party::Gatekeeper(_), Timer::Respond) => {
                let PartyState::Gatekeeper(gk) = state.to_mut() else { return };
                for (dst, msg) in gk.outbox.drain(..) {
                    o.send(dst, msg);
                }
            }
            (Party::Gatekeeper(_), Timer::StoreFault) => {
                let PartyState::Gatekeeper(gk) = state.to_mut() else { return };
                gk.store_failing = true;
            }
            (Party::Gatekeeper(_), Timer::Persist) => {
                let PartyState::Gatekeeper(gk) = state.to_mut() else { return };
                Arc::make_mut(&mut gk.written).append(&mut gk.unwritten);
                o.save(gk.storage());
            }
            (Party::Gatekeeper(_), Timer::Tick) => {
                let PartyState::Gatekeeper(gk) = state.to_mut() else { return };
                let Some(clock) = cfg.clock else { return };
                gk.now += 1;
                expire(cfg, gk);
                o.save(gk.storage());
                if gk.now < clock.ticks {
                    o.set_timer(Timer::Tick, model_timeout());
                }
            }
            (Party::Sender { message, .. }, Timer::Retry) => {
                let PartyState::Client(s) = state.as_ref() else { return };
                if s.key.is_none() && s.attempts < cfg.retries {
                    let PartyState::Client(s) = state.to_mut() else { return };
                    s.attempts += 1;
                    let request = Msg::KeyRequest { signer: SENDER, message: *message, attempt: s.attempts, time: 0 };
                    o.send(cfg.gatekeeper_id(), request);
                    if s.attempts < cfg.retries {
                        o.set_timer(Timer::Retry, model_timeout());
                    }
                }
            }
            (Party::Fetcher { addr, .. }, Timer::Retry) => {
                let PartyState::Client(s) = state.as_ref() else { return };
                // Gateways fetch once (best effort); listed recipients keep asking.
                let retries = if cfg.is_recipient(*addr) { cfg.retries } else { 0 };
                if let (None, Some(key)) = (s.key, s.ticket)
                    && s.attempts < retries
                {
                    let PartyState::Client(s) = state.to_mut() else { return };
                    s.attempts += 1;
                    send_release_request(cfg, o, Msg::ReleaseRequest { key, signer: *addr, attempt: s.attempts });
                    if s.attempts < retries {
                        o.set_timer(Timer::Retry, model_timeout());
                    }
                }
            }
            _ => {}
        }
    }
}

fn send_release_request(cfg: &ModelConfig, o: &mut Out<Party>, req: Msg) {
    // The attacker sees first requests on the way (retries add nothing it could not replay).
    if cfg.attacker && cfg.attacker_replays > 0 && matches!(req, Msg::ReleaseRequest { attempt: 0, .. }) {
        // The attacker sees every message on the way.
        o.send(cfg.attacker_id(), req.clone());
    }
    o.send(cfg.gatekeeper_id(), req);
}

/// The gatekeeper: `ekg-core`'s own rounds read the key from the store, decide (V14, key
/// drawing, V21 to V24) and append through the store of the configuration's storage mode; the
/// facts come from the core's own constructors. Verification is symbolic: a request names its
/// signer (V1 to V8), and only the sender is recognised (V10, V11).
fn gatekeeper_on_msg(cfg: &ModelConfig, gk: &mut GkState, src: Id, msg: Msg, o: &mut Out<Party>) {
    let refused = |key, signer, attempt| Msg::Refused { key, signer, attempt };
    let now = time(gk.now);
    let rules = rules(cfg);
    let (appended, wrote, response) = match msg {
        Msg::KeyRequest { signer, message, attempt, time: signed_at } => {
            // V10/V11 (only the sender is recognised) and V13 (freshness), symbolically.
            let stale = cfg.clock.is_some_and(|clock| gk.now.abs_diff(signed_at) > clock.skew);
            if signer != SENDER || stale {
                o.send(src, refused(None, signer, attempt));
                return;
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
                return;
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
                return;
            };
            let destroys = appended.iter().any(|r| matches!(r, Record::Destroyed { .. }));
            let material = committed.payload().handle;
            (appended, wrote, Msg::Release { key, material, to: signer, attempt, destroys, at: gk.now })
        }
        _ => return,
    };
    let records_empty = appended.is_empty();
    let crash_window = cfg.crashes > 0;
    match cfg.storage {
        Storage::Durable => {
            // The core's contract: durable before the response exists.
            if wrote {
                o.save(gk.storage());
            }
            // On a duplicating network a response that needs no record can go at once: a crash
            // that ate it would be the same as a crash before the request was delivered, since
            // the request stays in flight and is answered again after recovery.
            let recordless_on_duplicating = records_empty && cfg.network == NetworkKind::Duplicating;
            if crash_window && !recordless_on_duplicating {
                queue_response(cfg, gk, src, response);
                o.set_timer(Timer::Respond, model_timeout());
            } else {
                o.send(src, response);
            }
        }
        Storage::LateWrite => {
            o.send(src, response);
            if !records_empty {
                if crash_window {
                    o.set_timer(Timer::Persist, model_timeout());
                } else {
                    Arc::make_mut(&mut gk.written).append(&mut gk.unwritten);
                    o.save(gk.storage());
                }
            }
        }
        Storage::Volatile => o.send(src, response),
    }
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
    fn storage(&self) -> GkStorage {
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
