//! Model configurations: who takes part, the network, faults, storage, policy, bounds.

use ekg_core::ledger::ReleasePolicy;
use stateright::actor::Id;

use crate::symbols::{Addr, Cert, R1_RENEWED, R2_R3, RECIPIENT_GATEWAY, SENDER_GATEWAY, holds};

/// The network between parties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkKind {
    /// Messages arrive in any order, each at most once.
    Unordered,
    /// Messages arrive in any order, any number of times.
    Duplicating,
    /// Per channel in order, at most once.
    Ordered,
}

/// How the gatekeeper keeps its records across a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Storage {
    /// The core's contract: each record durable before its response is sent.
    Durable,
    /// Nothing survives a crash.
    Volatile,
    /// Records written after the response (the wrong order, for contrast).
    LateWrite,
}

/// One configuration of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelConfig {
    /// A short name for the matrix.
    pub name: String,
    /// The listed recipients (addresses 2, 3, 4: the first in the sender's organisation, the
    /// others in the recipient organisation).
    pub recipients: Vec<Addr>,
    /// The network.
    pub network: NetworkKind,
    /// Messages between clients and the gatekeeper that may be lost (mail is reliable).
    pub max_drops: u8,
    /// Gatekeeper crashes (each followed by a recovery).
    pub crashes: u8,
    /// Storage mode.
    pub storage: Storage,
    /// Release policy.
    pub policy: ReleasePolicy,
    /// Deliveries per address under `same_certificate`.
    pub max_deliveries: u32,
    /// Retries per client.
    pub retries: u8,
    /// Keys the gatekeeper issues per boot at most (a bound: duplicated key requests would
    /// otherwise issue keys without end).
    pub max_keys: u8,
    /// The sender organisation's gateway takes part (fetches outbound mail).
    pub sender_gateway: bool,
    /// The recipient organisation's gateway takes part (tries to fetch inbound mail).
    pub recipient_gateway: bool,
    /// The attacker takes part (its own certificate; injects a release request for every
    /// ticket it sees).
    pub attacker: bool,
    /// Release requests of others the attacker replays from its own address (it sees the
    /// first request of every fetcher).
    pub attacker_replays: u8,
    /// Key requests are idempotent as `ekg-core` makes them (step V14, in the shared ledger:
    /// a request already answered is refused with `duplicate_request`, and the answered
    /// requests are durable, in the `Issued` records). Off: the draft's behaviour (finding
    /// F6: every delivery of a key request issues a key, bounded by `max_keys`).
    pub idempotent_key_requests: bool,
    /// The recipients' certificates, one fetching actor each. Empty: each listed recipient
    /// with its own certificate. Otherwise one address may have two certificates (two
    /// actors) and one certificate may hold two listed addresses.
    pub certs: Vec<Cert>,
    /// The gatekeeper's store fails one append: at any moment of the first boot (an
    /// environment choice), the next append fails with `storage_failed`.
    pub store_fault: bool,
    /// A discrete clock. `None`: time stands still (tickets never expire, retention never
    /// ends, the V13 and V14 windows never close).
    pub clock: Option<Clock>,
    /// Messages the sender sends (each its own key request, ticket and fetchers; 1 or 2).
    pub messages: u8,
}

/// A discrete clock, in ticks of one second: the gatekeeper's clock advances one tick at a
/// time (a gatekeeper action, at most `ticks` times, surviving a crash), and each tick runs
/// the core's `decide_expiry` (expiry, end of retention, purge). The sender signs its key
/// requests at tick `ahead` (its clock is that far ahead of the gatekeeper's, which starts at
/// 0), and does not retry with a clock (a retry would be signed later, at a time the sender
/// cannot read in the model).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Clock {
    /// Ticks in a run at most.
    pub ticks: u8,
    /// Ticket lifetime (`expires_at` = issue time + lifetime).
    pub lifetime: u8,
    /// V13: a key request signed more than `skew` ticks from the gatekeeper's clock is refused
    /// (`request_time_skew`); also V14's window, as the gatekeeper sets it.
    pub skew: u8,
    /// How far the sender's clock is ahead of the gatekeeper's (at most `skew` for its
    /// requests to be accepted).
    pub ahead: u8,
    /// Retention after the last listed address was served, under `same_certificate`.
    pub retention: u8,
}

impl Clock {
    /// The clock of the matrix's clock rows: 3 ticks, tickets of 2, skew of 1, retention of
    /// 1, clocks in step (so that expiry, the end of retention, the purge, and V13's window
    /// closing all happen within the bound).
    pub fn small() -> Clock {
        Clock { ticks: 3, lifetime: 2, skew: 1, ahead: 0, retention: 1 }
    }
}

pub use crate::symbols::{R1, R2, R3};

impl ModelConfig {
    /// The base small configuration: sender, two recipients (one per organisation), the
    /// sender's gateway; reliable unordered network; durable storage; no crash.
    pub fn small(policy: ReleasePolicy) -> ModelConfig {
        ModelConfig {
            name: String::new(),
            recipients: vec![R1, R2],
            network: NetworkKind::Unordered,
            max_drops: 0,
            crashes: 0,
            storage: Storage::Durable,
            policy,
            max_deliveries: 2,
            retries: 0,
            max_keys: 1,
            sender_gateway: true,
            recipient_gateway: false,
            attacker: false,
            attacker_replays: 0,
            idempotent_key_requests: false,
            certs: vec![],
            store_fault: false,
            clock: None,
            messages: 1,
        }
        .named()
    }

    /// The small configuration with the adversaries: the recipient organisation's gateway
    /// and the attacker.
    pub fn adversarial(policy: ReleasePolicy) -> ModelConfig {
        ModelConfig { recipient_gateway: true, attacker: true, ..ModelConfig::small(policy) }.named()
    }

    /// The full configuration of issue 3: sender, three recipients, both gateways, the
    /// attacker, a lossy duplicating network, one gatekeeper crash, durable storage; the
    /// gatekeeper as `ekg-core` implements it (idempotent key requests, V14).
    pub fn full(policy: ReleasePolicy) -> ModelConfig {
        ModelConfig { idempotent_key_requests: true, ..ModelConfig::full_draft(policy) }.named()
    }

    /// The full configuration with the draft's key issuance (every delivery of a key request
    /// issues a key, at most `max_keys` per boot; finding F6).
    pub fn full_draft(policy: ReleasePolicy) -> ModelConfig {
        ModelConfig {
            recipients: vec![R1, R2, R3],
            recipient_gateway: true,
            attacker: true,
            network: NetworkKind::Duplicating,
            max_drops: 1,
            crashes: 1,
            // The duplicating network redelivers requests: no client retries (see matrix).
            retries: 0,
            max_keys: 2,
            ..ModelConfig::small(policy)
        }
        .named()
    }

    /// Gives the configuration its systematic name.
    pub fn named(mut self) -> ModelConfig {
        let net = match self.network {
            NetworkKind::Unordered => "unordered",
            NetworkKind::Duplicating => "duplicating",
            NetworkKind::Ordered => "ordered",
        };
        let policy = match self.policy {
            ReleasePolicy::Once => "once",
            ReleasePolicy::SameCertificate => "same-cert",
        };
        let storage = match self.storage {
            Storage::Durable => "durable",
            Storage::Volatile => "volatile",
            Storage::LateWrite => "late-write",
        };
        let loss = if self.max_drops > 0 { format!("+loss{}", self.max_drops) } else { String::new() };
        let crash = if self.crashes > 0 { format!("+crash{}-{storage}", self.crashes) } else { String::new() };
        let mut parties = String::new();
        if self.sender_gateway {
            parties.push_str("+sgw");
        }
        if self.recipient_gateway {
            parties.push_str("+rgw");
        }
        if self.attacker {
            parties.push_str(if self.attacker_replays > 0 { "+attacker(replay)" } else { "+attacker" });
        }
        let v14 = if self.idempotent_key_requests { "+v14" } else { "" };
        let fault = if self.store_fault { "+storefault" } else { "" };
        let clock = match self.clock {
            None => String::new(),
            Some(c) if c == Clock::small() => format!("+clock{}", c.ticks),
            Some(c) if c.ahead == 0 => format!("+clock{}(lifetime{},skew{})", c.ticks, c.lifetime, c.skew),
            Some(c) => format!("+clock{}(lifetime{},skew{},ahead{})", c.ticks, c.lifetime, c.skew, c.ahead),
        };
        let messages = if self.messages > 1 { format!("+{}msg", self.messages) } else { String::new() };
        let certs = if self.certs.is_empty() {
            String::new()
        } else {
            format!("({})", self.certs.iter().map(u8::to_string).collect::<Vec<_>>().join(","))
        };
        self.name = format!(
            "{policy}/{}r{certs}{parties}{messages}/{net}{loss}{crash}{fault}{clock}{v14}",
            self.recipients.len()
        );
        self
    }

    /// The configurations of the results matrix: each policy, each network with and without
    /// loss, and with a crash under each storage mode.
    pub fn matrix() -> Vec<ModelConfig> {
        let mut out = Vec::new();
        for policy in [ReleasePolicy::Once, ReleasePolicy::SameCertificate] {
            for network in [NetworkKind::Unordered, NetworkKind::Duplicating, NetworkKind::Ordered] {
                for max_drops in [0, 1] {
                    // Retries exist to recover from loss: with none, they only add early
                    // re-requests. A duplicating network redelivers every request by itself
                    // (a retry with the same nonce; the ledger ignores nonces): no retries there.
                    let retries = if network == NetworkKind::Duplicating { 0 } else { max_drops };
                    let max_keys = 1 + max_drops;
                    out.push(
                        ModelConfig { network, max_drops, retries, max_keys, ..ModelConfig::small(policy) }.named(),
                    );
                }
            }
            for storage in [Storage::Durable, Storage::Volatile, Storage::LateWrite] {
                out.push(
                    ModelConfig { crashes: 1, storage, retries: 1, max_keys: 2, ..ModelConfig::small(policy) }.named(),
                );
            }
            // The adversaries: the recipient organisation's gateway and the attacker, on a
            // reliable and on a duplicating network; then the attacker replaying a
            // recipient's first request from its own address.
            for network in [NetworkKind::Unordered, NetworkKind::Duplicating] {
                out.push(ModelConfig { network, ..ModelConfig::adversarial(policy) }.named());
            }
            out.push(
                ModelConfig { attacker_replays: 1, sender_gateway: false, ..ModelConfig::adversarial(policy) }.named(),
            );
            // A crash together with duplication (the reduced search: see `reduced_search`),
            // and together with loss.
            out.push(ModelConfig::crash_duplicating(policy));
            out.push(
                ModelConfig { max_drops: 1, crashes: 1, retries: 1, max_keys: 2, ..ModelConfig::small(policy) }.named(),
            );
            // A store that fails one append (at any moment); the client retries.
            out.push(ModelConfig { store_fault: true, retries: 1, max_keys: 2, ..ModelConfig::small(policy) }.named());
            // One address with two certificates (R1, on two devices) and one certificate with
            // two listed addresses (R2 and R3).
            out.push(ModelConfig::certificates(policy));
            // Time: a duplicating network delivers the key request again while V13 accepts it
            // (V14 refuses it), after (V13 refuses it), after the key expired and after its
            // tombstone was purged; the same with the sender's clock a skew ahead (V13 accepts
            // the request up to the expiry: F8); the same with a ticket lifetime shorter than
            // twice the skew, which the gatekeeper's configuration refuses (F8). Then two
            // messages from one sender.
            out.push(ModelConfig::clocked(policy, Clock::small()));
            out.push(ModelConfig::clocked(policy, Clock { ahead: 1, ..Clock::small() }));
            // Liveness with a clock: every recipient gets the key or the ticket expired.
            out.push(
                ModelConfig { network: NetworkKind::Unordered, ..ModelConfig::clocked(policy, Clock::small()) }.named(),
            );
            out.push(ModelConfig::clocked(policy, Clock { lifetime: 1, skew: 2, ..Clock::small() }));
            out.push(ModelConfig { messages: 2, max_keys: 2, ..ModelConfig::small(policy) }.named());
        }
        out
    }

    /// A clock on a duplicating network, with the core's key issuance (V14); without the
    /// sender's gateway (time multiplies the states, and the gateway adds nothing to time).
    pub fn clocked(policy: ReleasePolicy, clock: Clock) -> ModelConfig {
        ModelConfig {
            network: NetworkKind::Duplicating,
            sender_gateway: false,
            idempotent_key_requests: true,
            clock: Some(clock),
            max_keys: 2,
            ..ModelConfig::small(policy)
        }
        .named()
    }

    /// A crash on a duplicating network: a request answered before the crash is delivered
    /// again after it.
    pub fn crash_duplicating(policy: ReleasePolicy) -> ModelConfig {
        ModelConfig { network: NetworkKind::Duplicating, crashes: 1, max_keys: 2, ..ModelConfig::small(policy) }.named()
    }

    /// Three listed recipients held by three certificates: R1's own and its renewed one (two
    /// devices of one address), and one certificate holding both R2 and R3.
    pub fn certificates(policy: ReleasePolicy) -> ModelConfig {
        ModelConfig {
            recipients: vec![R1, R2, R3],
            certs: vec![R1, R1_RENEWED, R2_R3],
            max_keys: 1,
            ..ModelConfig::small(policy)
        }
        .named()
    }

    /// Whether `ekg check` explores this configuration with the reduced search
    /// (`crate::search`, `crate::reduction`): a duplicating network with a crash, whose
    /// plain state space is millions of states (7.7 million for
    /// `same-cert/2r+sgw/duplicating+crash1-durable`, 37,296 classes reduced). Liveness is
    /// not applicable there anyway (a duplicating network is never quiescent).
    pub fn reduced_search(&self) -> bool {
        self.network == NetworkKind::Duplicating && self.crashes > 0
    }

    /// The recipients' certificates, one fetching actor each.
    pub fn fetchers(&self) -> &[Cert] {
        if self.certs.is_empty() { &self.recipients } else { &self.certs }
    }

    /// Whether `cert` holds a listed address (its holder is a recipient).
    pub fn is_recipient(&self, cert: Cert) -> bool {
        self.recipients.iter().any(|a| holds(cert, *a))
    }

    /// Actor id of the gatekeeper.
    pub fn gatekeeper_id(&self) -> Id {
        Id::from(0)
    }

    /// The actors of one message: its sender, the recipients' fetchers, the gateways.
    fn message_actors(&self) -> usize {
        1 + self.fetchers().len() + usize::from(self.sender_gateway) + usize::from(self.recipient_gateway)
    }

    /// The index of the sender of message `message`: the first message's actors come first,
    /// then the attacker, then each further message's (so that one message's ids are the
    /// same with or without a second).
    fn message_base(&self, message: u8) -> usize {
        match message {
            0 => 1,
            m => 1 + self.message_actors() + usize::from(self.attacker) + usize::from(m - 1) * self.message_actors(),
        }
    }

    /// The messages of the run.
    pub fn message_numbers(&self) -> std::ops::Range<u8> {
        0..self.messages.max(1)
    }

    /// Actor id of the sender (of the first message).
    pub fn sender_id(&self) -> Id {
        self.sender_id_of(0)
    }

    /// Actor id of the sender of message `message` (one sender, one process per message).
    pub fn sender_id_of(&self, message: u8) -> Id {
        Id::from(self.message_base(message))
    }

    /// Actor id of the `i`th recipient's fetcher of the first message (`i` indexes
    /// [`ModelConfig::fetchers`]).
    pub fn recipient_id(&self, i: usize) -> Id {
        self.recipient_id_of(0, i)
    }

    /// Actor id of the `i`th recipient's fetcher of message `message`.
    pub fn recipient_id_of(&self, message: u8, i: usize) -> Id {
        Id::from(self.message_base(message) + 1 + i)
    }

    /// Actor id of the sender organisation's gateway (first message), if it takes part.
    pub fn sender_gateway_id(&self) -> Option<Id> {
        self.sender_gateway_id_of(0)
    }

    /// Actor id of the sender organisation's gateway fetching message `message`.
    pub fn sender_gateway_id_of(&self, message: u8) -> Option<Id> {
        self.sender_gateway.then(|| Id::from(self.message_base(message) + 1 + self.fetchers().len()))
    }

    /// Actor id of the recipient organisation's gateway fetching message `message`.
    pub fn recipient_gateway_id_of(&self, message: u8) -> Option<Id> {
        let at = self.message_base(message) + 1 + self.fetchers().len() + usize::from(self.sender_gateway);
        self.recipient_gateway.then(|| Id::from(at))
    }

    /// Actor id of the attacker, if it takes part.
    pub fn attacker_id(&self) -> Id {
        Id::from(1 + self.message_actors())
    }

    /// Where the sealed message `message` goes: the listed recipients, the gateways on its
    /// path, the attacker.
    pub fn mail_destinations(&self, message: u8) -> Vec<Id> {
        let mut out: Vec<Id> = (0..self.fetchers().len()).map(|i| self.recipient_id_of(message, i)).collect();
        out.extend(self.sender_gateway_id_of(message));
        if self.recipients.iter().any(|r| *r != R1) {
            out.extend(self.recipient_gateway_id_of(message));
        }
        if self.attacker {
            out.push(self.attacker_id());
        }
        out
    }

    /// Certificates allowed to learn the key: the sender's, the listed recipients' (any
    /// certificate holding a listed address), the sender's gateway's.
    pub fn authorised(&self, cert: Cert) -> bool {
        cert == crate::symbols::SENDER || cert == SENDER_GATEWAY || self.is_recipient(cert)
    }

    /// Whether `addr` is the recipient organisation's gateway.
    pub fn is_recipient_gateway(addr: Addr) -> bool {
        addr == RECIPIENT_GATEWAY
    }
}
