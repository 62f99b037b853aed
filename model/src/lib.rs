//! `ekg-model`: a stateright model of the EKG protocol whose gatekeeper runs `ekg-core`'s
//! own decision logic ([`ekg_core::ledger::Ledger`]) with symbolic crypto.
//!
//! See `docs/model.md` for what is proven, for which bounds, under which assumptions, and
//! what each counterexample means for the draft.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod config;
pub mod expected;
pub mod party;
pub mod reduction;
pub mod report;
pub mod search;
pub mod sorted;
pub mod symbols;

use sorted::{Counts, SortedSet};

use ekg_core::ledger::ReleasePolicy;
use stateright::Expectation;
use stateright::actor::{ActorModel, ActorModelState, Envelope, Id, LossyNetwork, Network};

pub use config::{ModelConfig, NetworkKind, Storage};
use party::{Msg, Party, PartyState};
pub use reduction::representative;
use symbols::{ATTACKER, Addr, KeyName, RECIPIENT_GATEWAY, SENDER, SENDER_GATEWAY};

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

    /// Grants sent per key (an issuance each).
    pub issued: Counts<KeyName>,
    /// Releases sent per (key, certificate), gateway excluded.
    pub released: Counts<(KeyName, Addr)>,
    /// (key, certificate) pairs the key was ever encrypted to: who can learn it.
    pub exposed: SortedSet<(KeyName, Addr)>,
    /// Keys whose destruction was decided.
    pub destroyed: SortedSet<KeyName>,
    /// A release was sent after the key's destruction.
    pub released_after_destruction: bool,
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
    /// Always: no key (and key id) issued twice.
    pub const FRESH_KEYS: &str = "no key issued twice";
    /// Always: only the sender, listed recipients and the sender's gateway can learn a key.
    pub const ONLY_AUTHORISED: &str = "only authorised parties learn keys";
    /// Always: the attacker never learns a key.
    pub const ATTACKER_BLIND: &str = "attacker never learns a key";
    /// Always: the recipient organisation's gateway never learns a key.
    pub const RECIPIENT_GATEWAY_BLIND: &str = "recipient gateway never learns a key";
    /// Always: nothing released after destruction.
    pub const NOTHING_AFTER_DESTRUCTION: &str = "nothing released after destruction";
    /// Always (quiescence form of liveness): when nothing is in flight, no timer pending and
    /// no one crashed, every listed recipient that got the mail holds the key.
    pub const QUIESCENT_DELIVERED: &str = "quiescent => every asking recipient holds the key";
    /// Eventually (bounded): every listed recipient holds the key.
    pub const EVENTUALLY_DELIVERED: &str = "eventually every recipient holds the key";
    /// Sometimes: every listed recipient decrypts (no property holds vacuously).
    pub const SOMETIMES_ALL_DECRYPT: &str = "sometimes all recipients decrypt";
    /// Sometimes: the sender's gateway reads the outbound message.
    pub const SOMETIMES_GATEWAY_READS: &str = "sometimes the sender's gateway reads";

    /// The safety properties (always, checked in every configuration).
    pub const SAFETY: &[&str] = &[
        SINGLE_RELEASE,
        FRESH_KEYS,
        ONLY_AUTHORISED,
        ATTACKER_BLIND,
        RECIPIENT_GATEWAY_BLIND,
        NOTHING_AFTER_DESTRUCTION,
    ];
}

impl ModelConfig {
    /// The stateright model of this configuration.
    pub fn into_model(self) -> EkgModel {
        let mut actors = vec![Party::Gatekeeper(self.clone()), Party::Sender(self.clone())];
        for r in &self.recipients {
            actors.push(Party::Fetcher { addr: *r, cfg: self.clone() });
        }
        if self.sender_gateway {
            actors.push(Party::Fetcher { addr: SENDER_GATEWAY, cfg: self.clone() });
        }
        if self.recipient_gateway {
            actors.push(Party::Fetcher { addr: RECIPIENT_GATEWAY, cfg: self.clone() });
        }
        if self.attacker {
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
            .property(Expectation::Always, property::FRESH_KEYS, |_, s| s.history.issued.values().all(|n| *n <= 1))
            .property(Expectation::Always, property::ONLY_AUTHORISED, |m, s| {
                s.history.exposed.iter().all(|(_, a)| m.cfg.authorised(*a))
            })
            .property(Expectation::Always, property::ATTACKER_BLIND, |_, s| {
                s.history.exposed.iter().all(|(_, a)| *a != ATTACKER)
            })
            .property(Expectation::Always, property::RECIPIENT_GATEWAY_BLIND, |_, s| {
                s.history.exposed.iter().all(|(_, a)| !ModelConfig::is_recipient_gateway(*a))
            })
            .property(Expectation::Always, property::NOTHING_AFTER_DESTRUCTION, |_, s| {
                !s.history.released_after_destruction
            })
            .property(Expectation::Always, property::QUIESCENT_DELIVERED, quiescent_delivered)
            .property(Expectation::Eventually, property::EVENTUALLY_DELIVERED, all_recipients_hold)
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
        Msg::Grant { key, to, .. } => {
            h.issued.bump(*key);
            h.exposed.insert((*key, *to));
        }
        Msg::Release { key, to, destroys, .. } => {
            if h.destroyed.contains(key) {
                h.released_after_destruction = true;
            }
            if *to != SENDER_GATEWAY {
                h.released.bump((*key, *to));
            }
            h.exposed.insert((*key, *to));
            if *destroys {
                h.destroyed.insert(*key);
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
/// to it waits in the gatekeeper's outbox (lost, refused, or eaten by a crash).
fn retries_wait_for_their_round_trip(cfg: &ModelConfig, s: &EkgState) -> bool {
    if cfg.retries == 0 {
        return true;
    }
    let attacker = u8::try_from(usize::from(cfg.attacker_id())).unwrap_or(u8::MAX);
    let flying = in_flight(&s.network);
    let outbox: Vec<&Msg> = match s.actor_states.first().map(|a| a.as_ref()) {
        Some(PartyState::Gatekeeper(gk)) => gk.outbox.iter().map(|(_, m)| m).collect(),
        _ => Vec::new(),
    };
    let concerns = |m: &Msg, addr: Addr, attempt: u8| match m {
        Msg::KeyRequest { signer, attempt: a }
        | Msg::ReleaseRequest { signer, attempt: a, .. }
        | Msg::Refused { signer, attempt: a, .. } => *signer == addr && *a == attempt,
        Msg::Grant { to, attempt: a, .. } | Msg::Release { to, attempt: a, .. } => *to == addr && *a == attempt,
        Msg::Mail { .. } => false,
    };
    let addr_of = |index: usize| -> Option<Addr> {
        if index == 1 {
            return Some(SENDER);
        }
        let i = index.checked_sub(2)?;
        if let Some(r) = cfg.recipients.get(i) {
            return Some(*r);
        }
        if cfg.sender_gateway_id().is_some_and(|id| usize::from(id) == index) {
            return Some(SENDER_GATEWAY);
        }
        if cfg.recipient_gateway_id().is_some_and(|id| usize::from(id) == index) {
            return Some(RECIPIENT_GATEWAY);
        }
        None
    };
    for (index, state) in s.actor_states.iter().enumerate() {
        let (PartyState::Client(c), Some(addr)) = (state.as_ref(), addr_of(index)) else { continue };
        if c.attempts == 0 {
            continue;
        }
        let previous = c.attempts - 1;
        let pending = flying.iter().any(|(_, dst, m)| *dst != attacker && concerns(m, addr, previous))
            || outbox.iter().any(|m| concerns(m, addr, previous));
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

fn single_release(m: &EkgModel, s: &EkgState) -> bool {
    let max = match m.cfg.policy {
        ReleasePolicy::Once => 1,
        ReleasePolicy::SameCertificate => u8::try_from(m.cfg.max_deliveries).unwrap_or(u8::MAX),
    };
    s.history.released.values().all(|n| *n <= max)
}

fn all_recipients_hold(m: &EkgModel, s: &EkgState) -> bool {
    (0..m.cfg.recipients.len()).all(|i| client(s, usize::from(m.cfg.recipient_id(i))).is_some_and(|c| c.key.is_some()))
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
    (0..m.cfg.recipients.len())
        .filter_map(|i| client(s, usize::from(m.cfg.recipient_id(i))))
        .all(|c| c.ticket.is_none() || c.key.is_some())
}

/// Serves stateright's Explorer for `config` at `addr` (blocks until the process is stopped).
pub fn explore(config: ModelConfig, threads: usize, addr: std::net::SocketAddr) {
    use stateright::Model;
    let _ = config.into_model().checker().threads(threads).serve(addr);
}
