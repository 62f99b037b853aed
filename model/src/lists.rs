//! Mailing lists (`docs/protocol.md` §13, issue 29 item 3): a list address listed on a ticket,
//! whose agent fetches the key like any recipient and asks its own organisation's gatekeeper
//! for a new ticket for the list's members, with the expansion history; nested lists, a loop,
//! and a chain deeper than the bound.
//!
//! Two gatekeepers, each on the core's reference store ([`MemoryState`]): the sender's, which
//! issues the message's first ticket, and the lists' own, which issues every expansion's. Every
//! decision is the core's: the issuance and release rounds (V14, V21 to V24 under `once`), and
//! V27 on an expansion's history ([`check_history`], what the gatekeeper's verification runs;
//! addresses and tickets mapped to the core's types). A list's agent here tries every
//! expansion it can (it skips `ListAgent::receive`'s own early refusals), so what stops a loop
//! or a deep chain is the gatekeeper's V27 alone. Mail is reliable and immediate; each fetch
//! may be sent twice (a duplicate, or a retry); the outsider (a valid certificate listed
//! nowhere) fetches every ticket, since tickets travel in the clear.
//!
//! What is checked comes from ghost state: every key release (ticket, address) the gatekeepers
//! answered, every ticket issued with its history.

use std::collections::{BTreeMap, BTreeSet};

use ekg_core::ledger::round::{Issue, NoDraw, Release};
use ekg_core::ledger::{
    IssueFacts, KeyDraw, Ledger, LedgerConfig, MemoryState, ReleaseFacts, ReleasePolicy, Requester, Round,
};
use ekg_core::role::{ListExpansion, check_history};
use ekg_core::{Digest, EmailAddress, Error, Rejection, UnixTime};
use stateright::{Model, Property};

use crate::symbols::{ATTACKER, Addr, CA_A, KeyName, SENDER, Sym};

/// The first list (listed by the sender).
pub const L1: Addr = 30;
/// The first member that is not a list.
pub const M1: Addr = 50;
/// The second member that is not a list.
pub const M2: Addr = 51;

/// The deepest history V27 accepts (the core's `MAX_EXPANSION_DEPTH`).
pub use ekg_core::wire::limits::MAX_EXPANSION_DEPTH as MAX_DEPTH;

/// Property names (stable: tests and docs use them).
pub mod property {
    /// Always: every address learns the message's key at most once (whatever the ticket).
    pub const ONCE_PER_MEMBER: &str = "every address learns the key at most once";
    /// Always: per ticket, each listed address is released to at most once (`once`).
    pub const ONCE_PER_TICKET: &str = "one release per ticket and address";
    /// Always: only the sender's list and its members, transitively, learn the key.
    pub const MEMBERS_ONLY: &str = "no non-member learns the key";
    /// Always: no ticket carries more expansions than the bound.
    pub const DEPTH_BOUNDED: &str = "no ticket deeper than the bound";
    /// Always: the run issues fewer tickets than the model's cap (loops terminate).
    pub const TERMINATES: &str = "expansions terminate";
    /// Always: no round of the core failed.
    pub const NO_FAILURE: &str = "no model failure";
    /// Sometimes: every member that is not a list learns the key.
    pub const ALL_MEMBERS: &str = "sometimes every reachable member learns the key";
    /// Sometimes: V27 refuses an expansion.
    pub const REFUSED: &str = "sometimes an expansion is refused";
}

/// A configuration of the lists model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListsConfig {
    /// Its name in tables.
    pub name: &'static str,
    /// Each list and its members (lists or not).
    pub lists: Vec<(Addr, Vec<Addr>)>,
    /// The members V27 lets the message reach (what `ALL_MEMBERS` asks for).
    pub reachable: Vec<Addr>,
    /// Deliveries of each fetch (2: one duplicate).
    pub copies: u8,
    /// Whether the outsider fetches every ticket.
    pub outsider: bool,
    /// Most tickets a run may issue (a model bound: `TERMINATES` fails if it is reached).
    pub cap: u8,
}

impl ListsConfig {
    /// A list with a nested list: the sender lists `L1`; `L1` = {`M1`, `L2`}; `L2` = {`M2`}.
    pub fn nested() -> Self {
        ListsConfig {
            name: "nested",
            lists: vec![(L1, vec![M1, L1 + 1]), (L1 + 1, vec![M2])],
            reachable: vec![M1, M2],
            copies: 2,
            outsider: true,
            cap: 6,
        }
    }

    /// A loop: `L1` = {`M1`, `L2`}; `L2` = {`M2`, `L1`}. V27 refuses `L2`'s expansion (a member
    /// is a list the message went through), so `M2` is not reached.
    pub fn looped() -> Self {
        ListsConfig {
            name: "loop",
            lists: vec![(L1, vec![M1, L1 + 1]), (L1 + 1, vec![M2, L1])],
            reachable: vec![M1],
            copies: 2,
            outsider: true,
            cap: 6,
        }
    }

    /// A chain one list deeper than the bound: `L1` → … → `L8` = {`L9`, `M1`}; `L9` = {`M2`}.
    /// `M1` is reached through 8 expansions; `L9`'s would be the 9th, which V27 refuses.
    pub fn deep() -> Self {
        let depth = u8::try_from(MAX_DEPTH).unwrap_or(u8::MAX);
        let mut lists: Vec<(Addr, Vec<Addr>)> = (0..depth - 1).map(|i| (L1 + i, vec![L1 + i + 1])).collect();
        lists.push((L1 + depth - 1, vec![L1 + depth, M1]));
        lists.push((L1 + depth, vec![M2]));
        ListsConfig { name: "deep", lists, reachable: vec![M1], copies: 1, outsider: true, cap: 12 }
    }

    /// The model.
    pub fn into_model(self) -> ListsModel {
        ListsModel { cfg: self }
    }

    fn members(&self, list: Addr) -> Option<&[Addr]> {
        self.lists.iter().find(|(l, _)| *l == list).map(|(_, m)| m.as_slice())
    }

    /// The sender's list and every member of a member list, transitively: who may learn the
    /// key.
    pub fn members_closure(&self) -> BTreeSet<Addr> {
        let mut all = BTreeSet::from([L1]);
        let mut todo = vec![L1];
        while let Some(l) = todo.pop() {
            for m in self.members(l).unwrap_or_default() {
                if all.insert(*m) {
                    todo.push(*m);
                }
            }
        }
        all
    }
}

/// A ticket issued: by gatekeeper `gk` (0: the sender's, 1: the lists'), listing `recipients`,
/// with the expansion history `history` (the lists, in order).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket {
    /// Its key id.
    pub key: KeyName,
    /// The gatekeeper that issued it.
    pub gk: u8,
    /// The listed addresses.
    pub recipients: Vec<Addr>,
    /// The lists it went through (empty: the sender's).
    pub history: Vec<Addr>,
    /// The ticket it expands (its index), if any.
    pub expands: Option<usize>,
}

/// A state of the lists model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListsState {
    /// The two gatekeepers' stores.
    pub stores: [MemoryState<Sym>; 2],
    /// Every ticket issued, in order (mail delivered to its recipients at once).
    pub tickets: Vec<Ticket>,
    /// Fetches sent per (ticket, address).
    pub fetches: BTreeMap<(usize, Addr), u8>,
    /// Ghost: every release answered, as (ticket, address).
    pub released: Vec<(usize, Addr)>,
    /// Expansions tried, as (ticket, list).
    pub expanded: BTreeSet<(usize, Addr)>,
    /// Expansions V27 refused.
    pub refused: u8,
    /// A core round that failed (never masked).
    pub failure: Option<String>,
}

impl ListsState {
    /// Whether `address` holds the key of ticket `t`.
    fn holds(&self, t: usize, address: Addr) -> bool {
        self.released.contains(&(t, address))
    }

    /// The addresses that learnt the message's key (with repetitions: one per release).
    pub fn learners(&self) -> impl Iterator<Item = Addr> + '_ {
        self.released.iter().map(|(_, a)| *a)
    }
}

/// What happens next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListsAction {
    /// The sender asks its gatekeeper for the message's key, listing `L1`, and mails it.
    Send,
    /// `address` asks ticket `t`'s gatekeeper for its key.
    Fetch(usize, Addr),
    /// List `list`, holding ticket `t`'s key, asks its gatekeeper for a ticket for its members.
    Expand(usize, Addr),
}

/// The lists model.
#[derive(Clone, Debug)]
pub struct ListsModel {
    /// Its configuration.
    pub cfg: ListsConfig,
}

const NOW: UnixTime = UnixTime(1_000);
const FAR: UnixTime = UnixTime(u64::MAX / 2);

fn rules() -> Ledger<Sym> {
    Ledger::new(LedgerConfig { retention_secs: 0, max_deliveries: 1, request_window_secs: Some(u64::MAX / 4) })
}

/// A symbolic address as the core's type (for V27).
fn email(a: Addr) -> Result<EmailAddress, Error> {
    EmailAddress::parse(&format!("a{a}@lists.example"))
}

/// Key `n` of gatekeeper `gk`.
struct Names(KeyName);

impl KeyDraw<Sym> for Names {
    type Key = ();

    fn draw(&mut self) -> Result<(KeyName, KeyName, ()), Error> {
        Ok((self.0, self.0, ()))
    }
}

impl ListsModel {
    /// Gatekeeper `gk` issues a ticket for `signer` (request `n`) listing `recipients`.
    fn issue(&self, s: &mut ListsState, gk: u8, signer: Addr, recipients: Vec<Addr>) -> Result<KeyName, Error> {
        let n = u8::try_from(s.tickets.len()).unwrap_or(u8::MAX);
        let facts = IssueFacts {
            request: (signer, n, 0),
            request_time: NOW,
            sender: signer,
            recipients,
            policy: ReleasePolicy::Once,
            expires_at: FAR,
            labels: vec![],
        };
        let store = s.stores.get_mut(usize::from(gk)).ok_or_else(|| Error::new(Rejection::StorageFailed, "no gk"))?;
        let key = KeyName { boot: gk, seq: n };
        let committed = Round::new(&rules(), Issue::new(facts), NOW).run(store, &mut Names(key))?;
        Ok(committed.into_payload().key_id)
    }

    fn fetch(&self, s: &mut ListsState, t: usize, address: Addr) -> Result<(), Error> {
        let count = s.fetches.entry((t, address)).or_insert(0);
        *count = count.saturating_add(1);
        let Some(ticket) = s.tickets.get(t).cloned() else { return Ok(()) };
        let facts = ReleaseFacts {
            key_id: ticket.key,
            listed: ticket.recipients.clone(),
            expires_at: FAR,
            requester: Requester { cert: address, addresses: vec![address], anchor: CA_A },
        };
        let store =
            s.stores.get_mut(usize::from(ticket.gk)).ok_or_else(|| Error::new(Rejection::StorageFailed, "no gk"))?;
        match Round::new(&rules(), Release::new(facts), NOW).run(store, &mut NoDraw) {
            Ok(_) => {
                s.released.push((t, address));
                Ok(())
            }
            Err(e) if e.rejection() == Rejection::StorageFailed => Err(e),
            Err(_) => Ok(()),
        }
    }

    /// List `list` expands ticket `t`: V27 on the history at the lists' gatekeeper (the core's
    /// `check_history`), then the core's issuance there.
    fn expand(&self, s: &mut ListsState, t: usize, list: Addr) -> Result<(), Error> {
        s.expanded.insert((t, list));
        let Some(ticket) = s.tickets.get(t).cloned() else { return Ok(()) };
        let members = self.cfg.members(list).unwrap_or_default().to_vec();
        let mut history = ticket.history.clone();
        history.push(list);
        // The request as the gatekeeper verifies it: each entry names the ticket it expanded.
        let mut chain = Vec::new();
        let mut at = Some(t);
        while let Some(i) = at {
            chain.push(i);
            at = s.tickets.get(i).and_then(|x| x.expands);
        }
        chain.reverse();
        let expansions = history
            .iter()
            .zip(chain.iter())
            .map(|(l, i)| {
                let digest = Digest([u8::try_from(*i).unwrap_or(u8::MAX); 32]);
                Ok(ListExpansion { list: email(*l)?, time: NOW, expanded_ticket: digest })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let recipients = members.iter().map(|m| email(*m)).collect::<Result<Vec<_>, Error>>()?;
        if check_history(&email(list)?, &recipients, &expansions).is_err() {
            s.refused = s.refused.saturating_add(1);
            return Ok(());
        }
        let key = self.issue(s, 1, list, members.clone())?;
        s.tickets.push(Ticket { key, gk: 1, recipients: members, history, expands: Some(t) });
        Ok(())
    }
}

impl Model for ListsModel {
    type State = ListsState;
    type Action = ListsAction;

    fn init_states(&self) -> Vec<ListsState> {
        vec![ListsState {
            stores: [MemoryState::default(), MemoryState::default()],
            tickets: Vec::new(),
            fetches: BTreeMap::new(),
            released: Vec::new(),
            expanded: BTreeSet::new(),
            refused: 0,
            failure: None,
        }]
    }

    fn actions(&self, s: &ListsState, actions: &mut Vec<ListsAction>) {
        if s.failure.is_some() || s.tickets.len() >= usize::from(self.cfg.cap) {
            return;
        }
        if s.tickets.is_empty() {
            actions.push(ListsAction::Send);
        }
        for (t, ticket) in s.tickets.iter().enumerate() {
            let outsider = self.cfg.outsider.then_some(ATTACKER);
            for a in ticket.recipients.iter().copied().chain(outsider) {
                if s.fetches.get(&(t, a)).copied().unwrap_or(0) < self.cfg.copies {
                    actions.push(ListsAction::Fetch(t, a));
                }
                if self.cfg.members(a).is_some() && s.holds(t, a) && !s.expanded.contains(&(t, a)) {
                    actions.push(ListsAction::Expand(t, a));
                }
            }
        }
    }

    fn next_state(&self, last: &ListsState, action: ListsAction) -> Option<ListsState> {
        let mut s = last.clone();
        let result = match action {
            ListsAction::Send => self.issue(&mut s, 0, SENDER, vec![L1]).map(|key| {
                s.tickets.push(Ticket { key, gk: 0, recipients: vec![L1], history: vec![], expands: None });
            }),
            ListsAction::Fetch(t, a) => self.fetch(&mut s, t, a),
            ListsAction::Expand(t, list) => self.expand(&mut s, t, list),
        };
        if let Err(e) = result {
            s.failure = Some(format!("{}: {}", e.code(), e.detail()));
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(property::ONCE_PER_MEMBER, |_, s: &ListsState| {
                let mut seen = BTreeSet::new();
                s.learners().all(|a| seen.insert(a))
            }),
            Property::always(property::ONCE_PER_TICKET, |_, s: &ListsState| {
                let mut seen = BTreeSet::new();
                s.released.iter().all(|r| seen.insert(*r))
            }),
            Property::always(property::MEMBERS_ONLY, |m: &ListsModel, s: &ListsState| {
                let allowed = m.cfg.members_closure();
                s.learners().all(|a| allowed.contains(&a))
            }),
            Property::always(property::DEPTH_BOUNDED, |_, s: &ListsState| {
                s.tickets.iter().all(|t| t.history.len() <= MAX_DEPTH)
            }),
            Property::always(property::TERMINATES, |m: &ListsModel, s: &ListsState| {
                s.tickets.len() < usize::from(m.cfg.cap)
            }),
            Property::always(property::NO_FAILURE, |_, s: &ListsState| s.failure.is_none()),
            Property::sometimes(property::ALL_MEMBERS, |m: &ListsModel, s: &ListsState| {
                m.cfg.reachable.iter().all(|a| s.learners().any(|b| b == *a))
            }),
            Property::sometimes(property::REFUSED, |_, s: &ListsState| s.refused > 0),
        ]
    }
}
