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

use stateright::actor::{Actor, Id, Out, model_timeout};

use crate::config::{ModelConfig, NetworkKind};
pub(crate) use crate::gatekeeper::batch_order;
use crate::gatekeeper::{self, Effects};
pub use crate::gatekeeper::{GkState, GkStorage, new_ledger, rules};
pub use crate::msg::{Msg, NEVER, Timer};
use crate::symbols::{ATTACKER, Addr, Cert, KeyName, SENDER};

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
                let (gk, effects) = gatekeeper::start(cfg, storage);
                apply(o, effects, &gk);
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
                let effects = gatekeeper::on_msg(cfg, gk, src, msg);
                apply(o, effects, gk);
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
            (Party::Gatekeeper(_), timer) => {
                let PartyState::Gatekeeper(gk) = state.to_mut() else { return };
                let effects = gatekeeper::on_timeout(cfg, gk, timer);
                apply(o, effects, gk);
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

/// Does what a gatekeeper step returned: its sends in order, its timers, its save.
fn apply(o: &mut Out<Party>, effects: Effects, gk: &GkState) {
    for (dst, msg) in effects.sends {
        o.send(dst, msg);
    }
    for timer in effects.timers {
        o.set_timer(timer, model_timeout());
    }
    if effects.save {
        o.save(gk.storage());
    }
}
