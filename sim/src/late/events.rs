//! What happens in a late-binding run: its events, the parties that fetch, and the state
//! kept per message, per fetch and per gatekeeper.

use super::*;

#[derive(Clone, Debug)]
pub(super) enum Ev {
    Submit(usize),
    SenderRetry(usize, u32),
    KeyRequestAtGk {
        org: usize,
        msg: usize,
        attempt: u32,
        der: Rc<Vec<u8>>,
    },
    IssuanceAtSender {
        msg: usize,
        attempt: u32,
        grant: Rc<Vec<u8>>,
        ticket: Rc<Vec<u8>>,
    },
    RefusalAtSender {
        msg: usize,
        attempt: u32,
        code: &'static str,
    },
    Mail {
        msg: usize,
        rcpt: usize,
    },
    Read {
        msg: usize,
        rcpt: usize,
    },
    FetchStart(usize),
    FetchRetry(usize, u32),
    ReleaseRequestAtGk {
        org: usize,
        fetch: usize,
        attempt: u32,
        der: Rc<Vec<u8>>,
    },
    ReleaseAtClient {
        fetch: usize,
        attempt: u32,
        der: Rc<Vec<u8>>,
    },
    RefusalAtClient {
        fetch: usize,
        attempt: u32,
        code: &'static str,
    },
    /// A gatekeeper's sweep, at its `poll_timeout`.
    Sweep(usize),
    Crash {
        org: usize,
        restart_after_ms: u64,
    },
    CrashNow(usize),
    Restart(usize),
    Outage {
        org: usize,
        down: bool,
    },
    Compromise(usize),
}

impl Ev {
    pub(super) fn label(&self) -> String {
        match self {
            Ev::Submit(m) => format!("submit {m}"),
            Ev::SenderRetry(m, a) => format!("sender-retry {m} {a}"),
            Ev::KeyRequestAtGk { org, msg, attempt, der } => format!("key-request {org} {msg} {attempt} {}", der.len()),
            Ev::IssuanceAtSender { msg, attempt, grant, ticket } => {
                format!("issuance {msg} {attempt} {} {}", grant.len(), ticket.len())
            }
            Ev::RefusalAtSender { msg, attempt, code } => format!("sender-refused {msg} {attempt} {code}"),
            Ev::Mail { msg, rcpt } => format!("mail {msg} {rcpt}"),
            Ev::Read { msg, rcpt } => format!("read {msg} {rcpt}"),
            Ev::FetchStart(f) => format!("fetch {f}"),
            Ev::FetchRetry(f, a) => format!("fetch-retry {f} {a}"),
            Ev::ReleaseRequestAtGk { org, fetch, attempt, der } => {
                format!("release-request {org} {fetch} {attempt} {}", der.len())
            }
            Ev::ReleaseAtClient { fetch, attempt, der } => format!("release {fetch} {attempt} {}", der.len()),
            Ev::RefusalAtClient { fetch, attempt, code } => format!("fetch-refused {fetch} {attempt} {code}"),
            Ev::Sweep(o) => format!("sweep {o}"),
            Ev::Crash { org, .. } => format!("crash {org}"),
            Ev::CrashNow(o) => format!("crash-now {o}"),
            Ev::Restart(o) => format!("restart {o}"),
            Ev::Outage { org, down } => format!("outage {org} {down}"),
            Ev::Compromise(u) => format!("compromise {u}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Who {
    Recipient(usize),
    SenderGateway(usize),
    RecipientGateway(usize),
    Attacker(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pair {
    Waiting,
    NeverRead,
    Read,
    Lost(String),
}

pub(super) struct MsgState {
    pub(super) attempt: u32,
    pub(super) pending: Option<PendingKeyRequest>,
    pub(super) backoff_ms: u64,
    pub(super) sent_ms: Option<u64>,
    pub(super) given_up: Option<String>,
    pub(super) sealed: Option<Rc<Vec<u8>>>,
    /// Where this message's body starts in the body stream (ChaCha20 words): the body is
    /// made when the message is sealed, never held for the whole run.
    pub(super) body_word: u128,
    /// SHA-256 of the body, once sealed (what a recipient reads must equal it).
    pub(super) body_digest: Option<[u8; 32]>,
    pub(super) key_id: Option<KeyId>,
    pub(super) listed: Vec<EmailAddress>,
    pub(super) pairs: Vec<Pair>,
    pub(super) delivered: Vec<bool>,
    pub(super) expires_ms: u64,
}

pub(super) struct Fetch {
    pub(super) msg: usize,
    pub(super) who: Who,
    pub(super) rcpt: Option<usize>,
    pub(super) version: usize,
    pub(super) attempt: u32,
    pub(super) backoff_ms: u64,
    pub(super) started_ms: u64,
    pub(super) received: Option<ReceivedMessage>,
    pub(super) pending: Option<PendingRelease>,
    pub(super) done: bool,
}

pub(super) struct GkSlot {
    pub(super) gk: Option<Gatekeeper<MemoryStore<Concrete>>>,
    pub(super) store: Option<MemoryStore<Concrete>>,
    pub(super) outage: bool,
    pub(super) armed: Option<u64>,
    pub(super) live: BTreeMap<KeyId, u64>,
    /// When this gatekeeper's next sweep is scheduled (ms), if one is: at its
    /// `poll_timeout`, never by a fixed tick.
    pub(super) sweep_at: Option<u64>,
}

/// Crypto roles for a fetcher.
pub(super) fn role_of(who: Who) -> Role {
    match who {
        Who::Recipient(_) => Role::Recipient,
        Who::SenderGateway(_) => Role::SenderGateway,
        Who::RecipientGateway(_) => Role::RecipientGateway,
        Who::Attacker(_) => Role::Attacker,
    }
}

pub(super) fn party(who: Who) -> Party {
    match who {
        Who::Recipient(u) => Party::Recipient(u),
        Who::SenderGateway(o) => Party::SenderGateway(o),
        Who::RecipientGateway(o) => Party::RecipientGateway(o),
        Who::Attacker(v) => Party::Attacker { victim: v },
    }
}
