//! A replayed access token (`docs/protocol.md` §12.5.3, V28.8; issue 28 item 5): two
//! gatekeeper instances on one store, a recipient's token used once, and the token replayed
//! at either instance, in any order, with a crash between a read and a write.
//!
//! The store is the core's reference store ([`MemoryState`], what `MemoryStore` shares
//! between instances), which refuses a batch whose token is recorded. Each instance runs
//! [`EntitledRelease`] (the gatekeeper's release without its storage-key check) in the core's
//! [`Round`], read-and-decide and write as separate actions, so every interleaving of the two
//! instances between a read and a write is explored: the token's record rides in the release's
//! own batch, under its condition. Both keys carry a label that only a token's claim grants
//! (the issuer is required: a request without a token is refused by V26).
//!
//! Requests (bob signs every one; his certificate holds his one listed address):
//! - his token `t1` on key 1: delivered `copies` times, which is the same request replayed, or
//!   the token moved into another request of his for the same key (for the release's decision
//!   these are the same facts: the nonce and time are checked before, V13 and V20);
//! - `t1` moved to a request for key 2;
//! - a fresh token `t2` on key 2 (so a run can serve both keys honestly);
//! - key 1 with no token.
//!
//! A token moved into a request signed by another certificate fails V28.7 (its subject maps to
//! an address that certificate does not hold) before the store is asked: that check verifies
//! a JWT signature and is tested in `core/tests/tokens.rs`, not here. Under
//! `same_certificate`, the ledger itself would re-deliver key 1 to bob's certificate: what
//! stops a replay there is the token's record alone.

use ekg_core::access::policy::mapping::TokenFacts;
use ekg_core::access::policy::{
    AttributeDefinition, AttributeName, AttributeValue, Condition, Policy, Rule, SubjectMapping,
};
use ekg_core::access::token::TokenUse;
use ekg_core::ledger::round::{Issue, NoDraw};
use ekg_core::ledger::{
    EntitledRelease, IssueFacts, KeyDraw, Ledger, LedgerConfig, MemoryState, ReleaseFacts, ReleasePolicy, Requester,
    Round, Step,
};
use ekg_core::{CertId, Error, Rejection, UnixTime};
use stateright::{Model, Property};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::symbols::{Addr, CA_B, KeyName, SENDER, Sym};

/// bob, listed on both keys.
pub const BOB: Addr = 2;
/// The first key.
pub const K1: KeyName = KeyName { boot: 0, seq: 1 };
/// The second key.
pub const K2: KeyName = KeyName { boot: 0, seq: 2 };
/// The token issuer.
pub const ISSUER: &str = "https://idp.b.example";

/// Property names (stable: tests and docs use them).
pub mod property {
    /// Always: no token is used by two releases.
    pub const TOKEN_ONCE: &str = "a token yields at most one release";
    /// Always: every release was made with a token.
    pub const WITH_TOKEN: &str = "no release without a token";
    /// Always: the store records the token of every release.
    pub const RECORDED: &str = "every release's token is recorded";
    /// Always: no round of the core failed.
    pub const NO_FAILURE: &str = "no model failure";
    /// Sometimes: bob has both keys (with two tokens).
    pub const BOTH_KEYS: &str = "sometimes both keys are released";
    /// Sometimes: V28.8 refuses a replay.
    pub const REPLAY_REFUSED: &str = "sometimes a replay is refused";
    /// Sometimes: a write lost its race to the other instance.
    pub const RACE_LOST: &str = "sometimes a write loses a race";
}

/// A configuration of the replay model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReplayConfig {
    /// Its name in tables.
    pub name: &'static str,
    /// The keys' release policy.
    pub policy: ReleasePolicy,
    /// Deliveries of each request, to either instance, in total.
    pub copies: u8,
    /// Crashes per instance (each between a read and a write, losing the round).
    pub crashes: u8,
}

impl ReplayConfig {
    /// `same_certificate` (3 deliveries): the ledger would re-deliver key 1 to bob.
    pub fn same_certificate() -> Self {
        ReplayConfig { name: "same-certificate", policy: ReleasePolicy::SameCertificate, copies: 2, crashes: 1 }
    }

    /// `once`.
    pub fn once() -> Self {
        ReplayConfig { name: "once", policy: ReleasePolicy::Once, copies: 2, crashes: 1 }
    }

    /// The model (`invalid_configuration` if the core refuses its policy).
    pub fn into_model(self) -> Result<ReplayModel, Error> {
        let (policy, label) = policy()?;
        Ok(ReplayModel { cfg: self, policy: Arc::new(policy), label })
    }
}

/// A release request: bob's, for `key`, with token `token` (0: none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Req {
    /// The key asked for.
    pub key: KeyName,
    /// The token it carries (1: `t1`, 2: `t2`; 0: none).
    pub token: u8,
}

/// The requests of a run.
pub const REQUESTS: [Req; 4] =
    [Req { key: K1, token: 1 }, Req { key: K2, token: 1 }, Req { key: K2, token: 2 }, Req { key: K1, token: 0 }];

type InFlight = (Round<Sym, EntitledRelease<Sym, Arc<Policy>>>, Req);

/// One instance: the round it is in, its crashes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Instance {
    round: Option<InFlight>,
    crashes: u8,
}

/// A state of the replay model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReplayState {
    /// The shared store.
    pub store: MemoryState<Sym>,
    /// The two instances.
    pub instances: [Instance; 2],
    /// Deliveries left per request of [`REQUESTS`].
    pub left: [u8; 4],
    /// Ghost: every release answered (its request).
    pub released: Vec<Req>,
    /// Ghost: refusals by V28.8.
    pub replays_refused: u8,
    /// Ghost: writes that lost their race.
    pub races_lost: u8,
    /// A core round that failed (never masked).
    pub failure: Option<String>,
}

/// What happens next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Instance `0` takes a delivery of request `1`: reads and decides.
    Read(usize, usize),
    /// Instance `0` writes what it decided (or, having lost its race, reads and decides again).
    Step(usize),
    /// Instance `0` crashes: its round is lost.
    Crash(usize),
}

/// The replay model.
#[derive(Clone, Debug)]
pub struct ReplayModel {
    /// Its configuration.
    pub cfg: ReplayConfig,
    policy: Arc<Policy>,
    label: AttributeValue,
}

const NOW: UnixTime = UnixTime(1_000);
const FAR: UnixTime = UnixTime(u64::MAX / 2);

/// `export/itar`, all-of, granted only by the issuer's token with `clearance` `itar`.
fn policy() -> Result<(Policy, AttributeValue), Error> {
    let name = AttributeName::parse("https://example.com/attr/export")?;
    let itar = name.value("itar")?;
    let mapping = SubjectMapping {
        conditions: vec![
            Condition::TokenIssuer(ISSUER.to_owned()),
            Condition::Claim { name: "clearance".to_owned(), values: vec!["itar".to_owned()] },
        ],
        grants: vec![itar.clone()],
    };
    let definition = AttributeDefinition { name, rule: Rule::AllOf, values: vec![itar.clone()] };
    Ok((Policy::new(vec![definition], vec![mapping])?, itar))
}

/// Token `n`'s facts and record (both bob's, with `clearance` `itar`).
fn token(n: u8) -> (TokenFacts, TokenUse) {
    let facts = TokenFacts {
        issuer: ISSUER.to_owned(),
        subject: "bob".to_owned(),
        claims: BTreeMap::from([("clearance".to_owned(), vec!["itar".to_owned()])]),
    };
    (facts, TokenUse { issuer: ISSUER.to_owned(), jti: format!("t{n}"), keep_until: FAR })
}

struct Fixed(KeyName);

impl KeyDraw<Sym> for Fixed {
    type Key = ();

    fn draw(&mut self) -> Result<(KeyName, KeyName, ()), Error> {
        Ok((self.0, self.0, ()))
    }
}

impl ReplayModel {
    fn rules(&self) -> Ledger<Sym> {
        Ledger::new(LedgerConfig { retention_secs: 0, max_deliveries: 3, request_window_secs: Some(u64::MAX / 4) })
    }

    /// The round of request `req`, as the gatekeeper starts it from what it verified.
    fn round(&self, req: Req) -> Round<Sym, EntitledRelease<Sym, Arc<Policy>>> {
        let token = (req.token > 0).then(|| token(req.token));
        let facts = ekg_core::access::policy::SubjectFacts {
            anchor: Some(CertId([CA_B; 32])),
            certificate_policies: Vec::new(),
            addresses: Vec::new(),
            token: token.as_ref().map(|(f, _)| f.clone()),
        };
        let held = self.policy.entitlements(&facts);
        let release = ReleaseFacts {
            key_id: req.key,
            listed: vec![BOB],
            expires_at: FAR,
            requester: Requester { cert: BOB, addresses: vec![BOB], anchor: CA_B },
        };
        let decision = EntitledRelease::new(release, Arc::clone(&self.policy), held, token.map(|(_, u)| u));
        Round::new(&self.rules(), decision, NOW)
    }

    /// One step of instance `i`'s round; the ghost records what a finished round answered.
    fn step(&self, s: &mut ReplayState, i: usize) -> Result<(), Error> {
        let inst = s.instances.get_mut(i).ok_or_else(|| Error::new(Rejection::StorageFailed, "no instance"))?;
        let Some((mut round, req)) = inst.round.take() else { return Ok(()) };
        let writing = round.writes_next();
        match round.step(&mut s.store, &mut NoDraw) {
            Step::Again => {
                if writing {
                    s.races_lost = s.races_lost.saturating_add(1);
                }
                inst.round = Some((round, req));
            }
            Step::Done(Ok(_)) => s.released.push(req),
            Step::Done(Err(e)) if e.rejection() == Rejection::StorageFailed => return Err(e),
            Step::Done(Err(e)) if e.rejection() == Rejection::TokenReplayed => {
                s.replays_refused = s.replays_refused.saturating_add(1);
            }
            Step::Done(Err(_)) => {}
        }
        Ok(())
    }
}

impl Model for ReplayModel {
    type State = ReplayState;
    type Action = Action;

    fn init_states(&self) -> Vec<ReplayState> {
        let mut store = MemoryState::default();
        let mut failure = None;
        for (n, key) in [K1, K2].into_iter().enumerate() {
            let facts = IssueFacts {
                request: (SENDER, u8::try_from(n).unwrap_or(0), 0),
                request_time: NOW,
                sender: SENDER,
                recipients: vec![BOB],
                policy: self.cfg.policy,
                expires_at: FAR,
                labels: vec![self.label.clone()],
            };
            if let Err(e) = Round::new(&self.rules(), Issue::new(facts), NOW).run(&mut store, &mut Fixed(key)) {
                failure = Some(format!("{}: {}", e.code(), e.detail()));
            }
        }
        vec![ReplayState {
            store,
            instances: [Instance::default(), Instance::default()],
            left: [self.cfg.copies; 4],
            released: Vec::new(),
            replays_refused: 0,
            races_lost: 0,
            failure,
        }]
    }

    fn actions(&self, s: &ReplayState, actions: &mut Vec<Action>) {
        if s.failure.is_some() {
            return;
        }
        for (i, inst) in s.instances.iter().enumerate() {
            match &inst.round {
                Some(_) => actions.push(Action::Step(i)),
                None => {
                    actions.extend(s.left.iter().enumerate().filter(|(_, l)| **l > 0).map(|(r, _)| Action::Read(i, r)));
                }
            }
            if inst.round.as_ref().is_some_and(|(r, _)| r.writes_next()) && inst.crashes < self.cfg.crashes {
                actions.push(Action::Crash(i));
            }
        }
    }

    fn next_state(&self, last: &ReplayState, action: Action) -> Option<ReplayState> {
        let mut s = last.clone();
        let result = match action {
            Action::Read(i, r) => {
                let left = s.left.get_mut(r)?;
                *left = left.checked_sub(1)?;
                let req = *REQUESTS.get(r)?;
                s.instances.get_mut(i)?.round = Some((self.round(req), req));
                self.step(&mut s, i)
            }
            Action::Step(i) => self.step(&mut s, i),
            Action::Crash(i) => {
                let inst = s.instances.get_mut(i)?;
                inst.round = None;
                inst.crashes = inst.crashes.saturating_add(1);
                Ok(())
            }
        };
        if let Err(e) = result {
            s.failure = Some(format!("{}: {}", e.code(), e.detail()));
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(property::TOKEN_ONCE, |_, s: &ReplayState| {
                let mut seen = std::collections::BTreeSet::new();
                s.released.iter().all(|r| r.token == 0 || seen.insert(r.token))
            }),
            Property::always(property::WITH_TOKEN, |_, s: &ReplayState| s.released.iter().all(|r| r.token > 0)),
            Property::always(property::RECORDED, |_, s: &ReplayState| {
                s.released.iter().filter(|r| r.token > 0).all(|r| s.store.token_used(&token(r.token).1))
            }),
            Property::always(property::NO_FAILURE, |_, s: &ReplayState| s.failure.is_none()),
            Property::sometimes(property::BOTH_KEYS, |_, s: &ReplayState| {
                s.released.iter().any(|r| r.key == K1) && s.released.iter().any(|r| r.key == K2)
            }),
            Property::sometimes(property::REPLAY_REFUSED, |_, s: &ReplayState| s.replays_refused > 0),
            Property::sometimes(property::RACE_LOST, |_, s: &ReplayState| s.races_lost > 0),
        ]
    }
}
