//! `ekg-model`: a stateright model of the EKG protocol whose gatekeeper runs `ekg-core`'s
//! own decision logic ([`ekg_core::ledger::Ledger`]) with symbolic crypto.
//!
//! See `docs/model.md` for what is proven, for which bounds, under which assumptions, and
//! what each counterexample means for the draft.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod config;
pub mod custody;
pub mod expected;
pub mod gatekeeper;
pub mod labels;
pub mod lists;
pub mod msg;
pub mod party;
pub mod reduction;
pub mod replay;
pub mod report;
pub mod search;
pub mod sorted;
pub mod symbols;

use sorted::{Counts, SortedSet};

use ekg_core::ledger::{Record, ReleasePolicy};
use stateright::Expectation;
use stateright::actor::{ActorModel, ActorModelState, Envelope, Id, LossyNetwork, Network};

pub use config::{ModelConfig, NetworkKind, Storage};
use party::{Msg, Party, PartyState};
pub use reduction::representative;
use symbols::{ATTACKER, Addr, Cert, KeyName, RECIPIENT_GATEWAY, SENDER_GATEWAY, addresses, holds};

/// Ghost history: what the world has seen, independent of any actor's (crashable) memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    /// Messages sent, and mail among them (loss accounting on non-duplicating networks:
    /// lost = sent - delivered - in flight, exactly, since delivery and loss both remove).
    pub sent: [u16; 2],
    /// Messages delivered, and mail among them (non-duplicating networks).
    pub delivered: [u16; 2],
    /// Every (src, dst, message) sent (duplicating lossy network only).
    pub sent_set: SortedSet<(u8, u8, Msg)>,

    /// Grants sent per key id (an issuance each).
    pub issued: Counts<KeyName>,
    /// Grants sent per key: the key as the grant carried it (the values the shared drawing
    /// code returned).
    pub keys: Counts<KeyName>,
    /// Releases sent per (key id, listed address the certificate holds): a release to a
    /// certificate with two listed addresses counts for both; gateways hold none.
    pub released: Counts<(KeyName, Addr)>,
    /// (key id, listed address, certificate, tick decided at) of every release sent.
    pub released_to: SortedSet<(KeyName, Addr, Cert, u8)>,
    /// (key, certificate) pairs a key was ever encrypted to: who can learn it.
    pub exposed: SortedSet<(KeyName, Cert)>,
    /// Under `once`: key ids released to every listed address (all served: the key must be
    /// gone).
    pub served: SortedSet<KeyName>,
    /// A release was sent for a key after its end: every listed address served (`once`), its
    /// ticket expired, or its retention ended (`same_certificate`), as of the tick the release
    /// was decided at.
    pub released_after_end: bool,
    /// (key request, key id) of every grant sent: the request as (signer, message, attempt).
    pub grants: SortedSet<((Cert, u8, u8), KeyName)>,
    /// (key id, tick) the ticket expires at, as the grant carried it (with a clock).
    pub expiry: SortedSet<(KeyName, u8)>,
}

impl History {
    /// The tick from which nothing more may be released for `key` (`None`: no end yet):
    /// its ticket's expiry, or, under `same_certificate` with a clock, the end of retention
    /// after every listed address was served (as the releases sent tell: the last address's
    /// first release; a release the history has not seen only makes this later).
    fn end_of(&self, cfg: &ModelConfig, key: KeyName) -> Option<u8> {
        let expiry = self.expiry.iter().find(|(k, _)| *k == key).map(|(_, t)| *t);
        let retention_end = match (cfg.policy, cfg.clock) {
            (ReleasePolicy::SameCertificate, Some(clock)) => {
                let first = |a: Addr| self.released_to.iter().filter(|e| e.0 == key && e.1 == a).map(|e| e.3).min();
                let firsts: Option<Vec<u8>> = cfg.recipients.iter().map(|a| first(*a)).collect();
                firsts.and_then(|f| f.into_iter().max()).map(|t| t.saturating_add(clock.retention))
            }
            _ => None,
        };
        expiry.into_iter().chain(retention_end).min()
    }
}

/// The model type.
pub type EkgModel = ActorModel<Party, ModelConfig, History>;
/// The state type.
pub type EkgState = ActorModelState<Party, History>;

/// Property names (stable: tests and docs use them).
pub mod property {
    /// Always: per policy, at most one release per listed address (`once`), at most
    /// `max_deliveries` and one certificate (`same_certificate`).
    pub const SINGLE_RELEASE: &str = "single release per address";
    /// Always: no key id and no key issued twice, no key equal to a key id.
    pub const FRESH_KEYS: &str = "no key issued twice";
    /// Always: one key per key request (the draft issues one per delivery, F6; V14 fixes it
    /// while its window is open, V13 after).
    pub const ONE_KEY_PER_REQUEST: &str = "one key per key request";
    /// Always: only the sender, listed recipients and the sender's gateway can learn a key.
    pub const ONLY_AUTHORISED: &str = "only authorised parties learn keys";
    /// Always: the attacker never learns a key.
    pub const ATTACKER_BLIND: &str = "attacker never learns a key";
    /// Always: the recipient organisation's gateway never learns a key.
    pub const RECIPIENT_GATEWAY_BLIND: &str = "recipient gateway never learns a key";
    /// Always (S18): once every listed address was served (`once`), or the ticket expired, or
    /// retention ended (`same_certificate`, with a clock), nothing more is released and no
    /// live key is left in the gatekeeper's durable storage.
    pub const SERVED_THEN_DESTROYED: &str = "all served => nothing released, no key stored";
    /// Always: the gatekeeper's recovery and every `apply` succeeded, the ledger's own
    /// invariants (`Ledger::check_invariants`) hold, and with durable storage the ledger is
    /// the recovery of the durable store (nothing decided that is not durable).
    pub const LEDGER_CONSISTENT: &str = "the ledger is consistent";
    /// Always (quiescence form of liveness): when nothing is in flight, no timer pending and
    /// no one crashed, every listed recipient that got the mail holds the key (or, with a
    /// clock, its ticket expired).
    pub const QUIESCENT_DELIVERED: &str = "quiescent => every asking recipient holds the key";
    /// Eventually (bounded): every listed recipient holds the key (or, with a clock, the
    /// ticket expired).
    pub const EVENTUALLY_DELIVERED: &str = "eventually every recipient holds the key";
    /// Sometimes: every listed recipient decrypts (no property holds vacuously).
    pub const SOMETIMES_ALL_DECRYPT: &str = "sometimes all recipients decrypt";
    /// Sometimes: the sender's gateway reads the outbound message.
    pub const SOMETIMES_GATEWAY_READS: &str = "sometimes the sender's gateway reads";

    /// The safety properties (always, checked in every configuration).
    pub const SAFETY: &[&str] = &[
        SINGLE_RELEASE,
        FRESH_KEYS,
        ONE_KEY_PER_REQUEST,
        ONLY_AUTHORISED,
        ATTACKER_BLIND,
        RECIPIENT_GATEWAY_BLIND,
        SERVED_THEN_DESTROYED,
        LEDGER_CONSISTENT,
    ];
}

impl ModelConfig {
    /// The stateright model of this configuration.
    pub fn into_model(self) -> EkgModel {
        // In the order of `ModelConfig::sender_id_of` and the other ids: the first message's
        // actors, the attacker, then each further message's.
        let mut actors = vec![Party::Gatekeeper(self.clone())];
        for message in self.message_numbers() {
            if message == 1 && self.attacker {
                actors.push(Party::Attacker(self.clone()));
            }
            let cfg = self.clone();
            actors.push(Party::Sender { message, cfg });
            let gateways = [(self.sender_gateway, SENDER_GATEWAY), (self.recipient_gateway, RECIPIENT_GATEWAY)];
            let certs = self.fetchers().iter().copied().chain(gateways.iter().filter(|g| g.0).map(|g| g.1));
            actors.extend(certs.map(|addr| Party::Fetcher { addr, message, cfg: self.clone() }));
        }
        if self.messages <= 1 && self.attacker {
            actors.push(Party::Attacker(self.clone()));
        }
        let network = match self.network {
            NetworkKind::Unordered => Network::new_unordered_nonduplicating([]),
            NetworkKind::Duplicating => Network::new_unordered_duplicating([]),
            NetworkKind::Ordered => Network::new_ordered([]),
        };
        let lossy = if self.max_drops > 0 { LossyNetwork::Yes } else { LossyNetwork::No };
        let crashes = usize::from(self.crashes.min(1));
        ActorModel::new(self, History::default())
            .actors(actors)
            .init_network(network)
            .lossy_network(lossy)
            .max_crashes(crashes)
            .record_msg_out(record_out)
            .record_msg_in(record_in)
            .within_boundary(within_boundary)
            .property(Expectation::Always, property::SINGLE_RELEASE, single_release)
            .property(Expectation::Always, property::FRESH_KEYS, fresh_keys)
            .property(Expectation::Always, property::ONE_KEY_PER_REQUEST, |_, s| {
                let g = &s.history.grants;
                g.iter().zip(g.iter().skip(1)).all(|((r1, _), (r2, _))| r1 != r2)
            })
            .property(Expectation::Always, property::ONLY_AUTHORISED, |m, s| {
                s.history.exposed.iter().all(|(_, a)| m.cfg.authorised(*a))
            })
            .property(Expectation::Always, property::ATTACKER_BLIND, |_, s| {
                s.history.exposed.iter().all(|(_, a)| *a != ATTACKER)
            })
            .property(Expectation::Always, property::RECIPIENT_GATEWAY_BLIND, |_, s| {
                s.history.exposed.iter().all(|(_, a)| !ModelConfig::is_recipient_gateway(*a))
            })
            .property(Expectation::Always, property::SERVED_THEN_DESTROYED, served_then_destroyed)
            .property(Expectation::Always, property::LEDGER_CONSISTENT, ledger_consistent)
            .property(Expectation::Always, property::QUIESCENT_DELIVERED, quiescent_delivered)
            .property(Expectation::Eventually, property::EVENTUALLY_DELIVERED, all_hold_or_expired)
            .property(Expectation::Sometimes, property::SOMETIMES_ALL_DECRYPT, all_recipients_hold)
            .property(Expectation::Sometimes, property::SOMETIMES_GATEWAY_READS, |m, s| {
                m.cfg
                    .sender_gateway_id()
                    .is_some_and(|sgw| client(s, usize::from(sgw)).is_some_and(|c| c.key.is_some()))
            })
    }
}

fn key(src: stateright::actor::Id, dst: stateright::actor::Id, msg: &Msg) -> (u8, u8, Msg) {
    let id = |i: stateright::actor::Id| u8::try_from(usize::from(i)).unwrap_or(u8::MAX);
    (id(src), id(dst), msg.clone())
}

fn record_out(cfg: &ModelConfig, h: &History, env: Envelope<&Msg>) -> Option<History> {
    let mut h = h.clone();
    if cfg.max_drops > 0 {
        if cfg.network == NetworkKind::Duplicating {
            h.sent_set.insert(key(env.src, env.dst, env.msg));
        } else {
            h.sent[0] += 1;
            h.sent[1] += u16::from(matches!(env.msg, Msg::Mail { .. }));
        }
    }
    match env.msg {
        Msg::Grant { key, material, to, message, attempt, expires } => {
            h.issued.bump(*key);
            h.keys.bump(*material);
            h.exposed.insert((*material, *to));
            h.grants.insert(((*to, *message, *attempt), *key));
            if cfg.clock.is_some() {
                h.expiry.insert((*key, *expires));
            }
        }
        Msg::Release { key, material, to, at, .. } => {
            if h.served.contains(key) || h.end_of(cfg, *key).is_some_and(|end| *at >= end) {
                h.released_after_end = true;
            }
            for address in addresses(*to) {
                if cfg.recipients.contains(&address) {
                    h.released.bump((*key, address));
                    h.released_to.insert((*key, address, *to, *at));
                }
            }
            h.exposed.insert((*material, *to));
            let all_served = cfg.recipients.iter().all(|a| h.released.iter().any(|((k, b), _)| k == key && b == a));
            if cfg.policy == ReleasePolicy::Once && all_served {
                h.served.insert(*key);
            }
        }
        _ => {}
    }
    Some(h)
}

fn record_in(cfg: &ModelConfig, h: &History, env: Envelope<&Msg>) -> Option<History> {
    if cfg.max_drops == 0 || cfg.network == NetworkKind::Duplicating {
        return None;
    }
    let mut h = h.clone();
    h.delivered[0] += 1;
    h.delivered[1] += u16::from(matches!(env.msg, Msg::Mail { .. }));
    Some(h)
}

/// Bounds: only the gatekeeper crashes, at most `crashes` times; at most `max_drops`
/// messages lost for good; mail is never lost (SMTP retries it).
fn within_boundary(cfg: &ModelConfig, s: &EkgState) -> bool {
    if s.crashed.iter().skip(1).any(|c| *c) {
        return false;
    }
    if !retries_wait_for_their_round_trip(cfg, s) {
        return false;
    }
    // At most `crashes` crashes: a crash is the (boots + 1)th only if it recovers as such.
    let boots = s.actor_storages.first().and_then(|st| st.as_ref()).map_or(0, |st| st.boots);
    if boots > cfg.crashes || (s.crashed.first() == Some(&true) && boots >= cfg.crashes) {
        return false;
    }
    if cfg.max_drops == 0 {
        return true;
    }
    if let Network::UnorderedDuplicating(set, _) = &s.network {
        // On a duplicating network a message stays in flight until dropped: every message
        // sent and no longer in flight was dropped (delivered or not: a drop after delivery
        // spends the budget for nothing, which only weakens the adversary's other options).
        // Everything in flight was sent, so the count tells whether anything was lost (the
        // common case, checked first: this runs for every transition).
        if s.history.sent_set.len() == set.len() {
            return true;
        }
        let mut lost = 0usize;
        for entry in &s.history.sent_set {
            let envelope = Envelope {
                src: Id::from(usize::from(entry.0)),
                dst: Id::from(usize::from(entry.1)),
                msg: entry.2.clone(),
            };
            if !set.contains(&envelope) {
                // Only the gatekeeper's responses are lost here: a request survives because the
                // network keeps re-sending it (what a retry would do), and mail is reliable.
                if entry.0 != 0 {
                    return false;
                }
                // A lost refusal only spends the budget: a refusal changes no receiver's state
                // here (see `party::inert`), so the run that keeps it dominates this one.
                // Pruning it lets `reduction::representative` drop refusals from the state.
                if matches!(entry.2, Msg::Refused { .. }) {
                    return false;
                }
                lost += 1;
            }
        }
        return lost <= usize::from(cfg.max_drops);
    }
    let (mut flying, mut mail_flying) = (0u16, 0u16);
    for (_, _, msg) in in_flight(&s.network) {
        flying += 1;
        mail_flying += u16::from(matches!(msg, Msg::Mail { .. }));
    }
    let h = &s.history;
    let lost = h.sent[0].saturating_sub(h.delivered[0]).saturating_sub(flying);
    let mail_lost = h.sent[1].saturating_sub(h.delivered[1]).saturating_sub(mail_flying);
    mail_lost == 0 && lost <= u16::from(cfg.max_drops)
}

/// Timing assumption (liveness needs one): a client's retry timeout is longer than a round
/// trip, so it retries only when its previous attempt is no longer in flight and no response
/// to it waits in the gatekeeper's outbox (lost, refused, or eaten by a crash). A client's
/// attempt is its request to the gatekeeper and the response sent back to it (not a copy the
/// attacker saw or replayed).
fn retries_wait_for_their_round_trip(cfg: &ModelConfig, s: &EkgState) -> bool {
    if cfg.retries == 0 {
        return true;
    }
    let attempt = |m: &Msg| match m {
        Msg::KeyRequest { attempt, .. }
        | Msg::ReleaseRequest { attempt, .. }
        | Msg::Refused { attempt, .. }
        | Msg::Grant { attempt, .. }
        | Msg::Release { attempt, .. } => Some(*attempt),
        Msg::Mail { .. } => None,
    };
    let flying = in_flight(&s.network);
    let outbox: &[(Id, Msg)] = match s.actor_states.first().map(|a| a.as_ref()) {
        Some(PartyState::Gatekeeper(gk)) => &gk.outbox,
        _ => &[],
    };
    let gatekeeper = u8::try_from(usize::from(cfg.gatekeeper_id())).unwrap_or(u8::MAX);
    for (index, state) in s.actor_states.iter().enumerate() {
        let PartyState::Client(c) = state.as_ref() else { continue };
        let Some(previous) = c.attempts.checked_sub(1) else { continue };
        let me = u8::try_from(index).unwrap_or(u8::MAX);
        let mine = |src: u8, dst: u8, m: &Msg| {
            ((src == me && dst == gatekeeper) || (src == gatekeeper && dst == me)) && attempt(m) == Some(previous)
        };
        let pending = flying.iter().any(|(src, dst, m)| mine(*src, *dst, m))
            || outbox.iter().any(|(dst, m)| usize::from(*dst) == index && attempt(m) == Some(previous));
        if pending {
            return false;
        }
    }
    true
}

/// Every envelope in flight. (stateright 0.31's `Network::iter_all` never advances inside an
/// ordered channel and loops for ever; this walks the public variants instead.)
fn in_flight(network: &Network<Msg>) -> Vec<(u8, u8, &Msg)> {
    let id = |i: stateright::actor::Id| u8::try_from(usize::from(i)).unwrap_or(u8::MAX);
    match network {
        Network::UnorderedDuplicating(set, _) => set.iter().map(|e| (id(e.src), id(e.dst), &e.msg)).collect(),
        Network::UnorderedNonDuplicating(map) => {
            map.iter().flat_map(|(e, n)| std::iter::repeat_n((id(e.src), id(e.dst), &e.msg), *n)).collect()
        }
        Network::Ordered(channels) => {
            channels.iter().flat_map(|((src, dst), q)| q.iter().map(move |m| (id(*src), id(*dst), m))).collect()
        }
    }
}

fn client(s: &EkgState, index: usize) -> Option<&party::ClientState> {
    match s.actor_states.get(index).map(|a| a.as_ref()) {
        Some(PartyState::Client(c)) => Some(c),
        _ => None,
    }
}

/// No key id and no key drawn twice, and no key equal to a key id (which the ticket makes
/// public).
fn fresh_keys(_: &EkgModel, s: &EkgState) -> bool {
    let h = &s.history;
    h.issued.values().chain(h.keys.values()).all(|n| *n <= 1)
        && h.keys.iter().all(|(key, _)| h.issued.iter().all(|(id, _)| id != key))
}

/// Per listed address: at most one release (`once`); at most `max_deliveries`, all to one
/// certificate (`same_certificate`).
fn single_release(m: &EkgModel, s: &EkgState) -> bool {
    let max = match m.cfg.policy {
        ReleasePolicy::Once => 1,
        ReleasePolicy::SameCertificate => u8::try_from(m.cfg.max_deliveries).unwrap_or(u8::MAX),
    };
    // Sorted by (key id, address, certificate, tick): a second certificate for an address is
    // next to the first.
    let to = &s.history.released_to;
    let one_certificate = to.iter().zip(to.iter().skip(1)).all(|(x, y)| (x.0, x.1) != (y.0, y.1) || x.2 == y.2);
    s.history.released.values().all(|n| *n <= max) && one_certificate
}

/// S18, on ghost state and the durable store: for each key whose end came (every listed
/// address served under `once`, its ticket expired, its retention ended: [`History::end_of`]),
/// no release decided after that moment and no live key in the storage the gatekeeper
/// recovers from.
fn served_then_destroyed(m: &EkgModel, s: &EkgState) -> bool {
    let h = &s.history;
    if h.released_after_end {
        return false;
    }
    let Some(Some(storage)) = s.actor_storages.first() else { return true };
    let ended = |key: &KeyName| h.served.contains(key) || h.end_of(&m.cfg, *key).is_some_and(|end| end <= storage.now);
    h.issued.iter().map(|(key, _)| key).filter(|key| ended(key)).all(|key| {
        let issued = storage.records.iter().any(|r| matches!(r, Record::Issued { key_id, .. } if key_id == key));
        let gone = storage
            .records
            .iter()
            .any(|r| matches!(r, Record::Destroyed { key_id, .. } | Record::Purged { key_id } if key_id == key));
        !issued || gone
    })
}

/// No round of the gatekeeper broke its contract (a decided record that did not apply, a
/// store that did not replay), what it holds replays into a ledger whose invariants hold, and
/// (durable storage) what it reads is what the durable store holds: nothing was decided on
/// that is not durable.
fn ledger_consistent(m: &EkgModel, s: &EkgState) -> bool {
    let Some(PartyState::Gatekeeper(gk)) = s.actor_states.first().map(|a| a.as_ref()) else { return true };
    if gk.failure.is_some() {
        return false;
    }
    let held: Vec<Record<crate::symbols::Sym>> = gk.written.iter().chain(gk.unwritten.iter()).cloned().collect();
    let Ok(view) = party::new_ledger(&m.cfg, &held) else { return false };
    if view.check_invariants().is_err() {
        return false;
    }
    if m.cfg.storage != Storage::Durable {
        return true;
    }
    let Some(Some(storage)) = s.actor_storages.first() else { return true };
    party::new_ledger(&m.cfg, &storage.records).is_ok_and(|recovered| recovered == view)
}

/// The fetchers of message `message` for listed address `address` (the actors whose
/// certificate holds it).
fn fetchers_of<'a>(
    m: &'a EkgModel,
    s: &'a EkgState,
    message: u8,
    address: Addr,
) -> impl Iterator<Item = &'a party::ClientState> {
    let fetchers = m.cfg.fetchers().iter().enumerate();
    fetchers
        .filter(move |(_, cert)| holds(**cert, address))
        .filter_map(move |(i, _)| client(s, usize::from(m.cfg.recipient_id_of(message, i))))
}

/// Whether the ticket of `key` expired by the gatekeeper's clock (never without a clock).
fn expired(s: &EkgState, key: Option<KeyName>) -> bool {
    let now = s.actor_storages.first().and_then(|st| st.as_ref()).map_or(0, |st| st.now);
    key.is_some_and(|key| s.history.expiry.iter().any(|(k, t)| *k == key && *t <= now))
}

/// Every listed address of every message is held: some fetcher with a certificate holding it
/// has the key.
fn all_recipients_hold(m: &EkgModel, s: &EkgState) -> bool {
    m.cfg
        .message_numbers()
        .all(|message| m.cfg.recipients.iter().all(|a| fetchers_of(m, s, message, *a).any(|c| c.key.is_some())))
}

/// Every message is held by every listed address, or its ticket (as the sender got it)
/// expired: the protocol promises delivery only while the ticket lives.
fn all_hold_or_expired(m: &EkgModel, s: &EkgState) -> bool {
    m.cfg.message_numbers().all(|message| {
        let sender = client(s, usize::from(m.cfg.sender_id_of(message)));
        expired(s, sender.and_then(|c| c.ticket))
            || m.cfg.recipients.iter().all(|a| fetchers_of(m, s, message, *a).any(|c| c.key.is_some()))
    })
}

fn quiescent_delivered(m: &EkgModel, s: &EkgState) -> bool {
    let timers = s.timers_set.iter().any(|t| t.iter().next().is_some());
    let crashed = s.crashed.iter().any(|c| *c);
    // A duplicating network is never quiescent (anything can be delivered again): there the
    // `eventually` property is the liveness check (the matrix shows n/a).
    if m.cfg.network == NetworkKind::Duplicating {
        return true;
    }
    let in_flight = !in_flight(&s.network).is_empty();
    if timers || crashed || in_flight {
        return true;
    }
    // Per message and listed address: nobody holding it got the mail, somebody holding it
    // has the key, or the ticket they got expired.
    m.cfg.message_numbers().all(|message| {
        m.cfg.recipients.iter().all(|a| {
            fetchers_of(m, s, message, *a).all(|c| c.ticket.is_none() || expired(s, c.ticket))
                || fetchers_of(m, s, message, *a).any(|c| c.key.is_some())
        })
    })
}

/// Serves stateright's Explorer for `config` at `addr` (blocks until the process is stopped).
pub fn explore(config: ModelConfig, threads: usize, addr: std::net::SocketAddr) {
    use stateright::Model;
    let _ = config.into_model().checker().threads(threads).serve(addr);
}
