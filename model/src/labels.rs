//! A labelled key and a listed certificate without the entitlement (`docs/protocol.md` §12.4,
//! issue 28 item 5): the attacker holds a certificate whose address the ticket lists, and
//! entitlements, but not the ones the key's label asks for.
//!
//! One gatekeeper on the core's reference store ([`MemoryState`]). The key is issued by the
//! core's issuance round, its labels recorded with it; every release runs
//! [`EntitledRelease`], the gatekeeper's own release without its storage-key check: the
//! ledger's V21 to V24, V26 on the labels the store recorded ([`ekg_core::access::policy::decide`]),
//! V28.8 on a token. A requester's entitlements are what the core's subject mappings
//! ([`Policy::entitlements`]) grant for its facts, mapped to the core's types: its
//! certificate's anchor, policy OIDs and listed address, and, with a token, the token's
//! issuer, subject and claims. Facts are verified (a signature, a certificate path, a token's
//! signature cannot be forged), so a party presents only its own; the attacker may present
//! any of its own (its certificate alone, or with its token), retry, and replay the other
//! recipients' requests verbatim, which are released, if at all, to their signers'
//! certificates (a release is encrypted to the requester's certificate: the replayer learns
//! nothing, the signer learns the key).
//!
//! What is checked comes from ghost state: every release (to which address), every refusal
//! by V26, and whether the same request, decided by the ledger's release alone, would have
//! had the same answer.

use std::collections::{BTreeMap, BTreeSet};

use ekg_core::access::policy::mapping::TokenFacts;
use ekg_core::access::policy::{
    AttributeDefinition, AttributeName, AttributeValue, Condition, Policy, Rule, SubjectMapping,
};
use ekg_core::access::token::TokenUse;
use ekg_core::ledger::round::{Issue, NoDraw, Release};
use ekg_core::ledger::{
    EntitledRelease, IssueFacts, KeyDraw, Ledger, LedgerConfig, MemoryState, ReleaseFacts, ReleasePolicy, Requester,
    Round,
};
use ekg_core::{CertId, EmailAddress, Error, Rejection, UnixTime};
use stateright::{Model, Property};

use crate::symbols::{Addr, CA_A, CA_B, KeyName, SENDER, Sym};

/// bob: listed, entitled through his certificate (a PIV policy OID).
pub const BOB: Addr = 2;
/// carol: listed, entitled only through her token's claim.
pub const CAROL: Addr = 3;
/// mallory: listed, with a certificate of bob's anchor and a token of carol's issuer, whose
/// facts grant another value of the label's attribute, never the one the label asks for.
pub const MALLORY: Addr = 12;
/// Every listed address, each with its own certificate.
pub const LISTED: [Addr; 3] = [BOB, CAROL, MALLORY];

/// The PIV authentication policy OID (`id-fpki-common-authentication`), bob's certificate's.
pub const PIV: &str = "2.16.840.1.101.3.2.1.3.13";
/// A low-assurance policy OID, mallory's certificate's.
pub const LOW: &str = "2.16.840.1.101.3.2.1.3.1";
/// The token issuer carol and mallory have tokens from.
pub const ISSUER: &str = "https://idp.b.example";

/// The key, issued before the run.
pub const KEY: KeyName = KeyName { boot: 0, seq: 0 };

/// Property names (stable: tests and docs use them).
pub mod property {
    /// Always: every address that learnt the key is listed and entitled.
    pub const ENTITLED_ONLY: &str = "only entitled listed recipients learn the key";
    /// Always: every address learns the key at most once (`once`).
    pub const ONCE: &str = "each learns the key at most once";
    /// Always: for an unlabelled key, every answer is the ledger's release's alone.
    pub const AS_BEFORE: &str = "an unlabelled key is released as before";
    /// Always: no round of the core failed.
    pub const NO_FAILURE: &str = "no model failure";
    /// Sometimes: every entitled listed recipient learns the key.
    pub const ALL_ENTITLED: &str = "sometimes every entitled recipient learns the key";
    /// Sometimes: V26 refuses a release.
    pub const REFUSED: &str = "sometimes V26 refuses";
}

/// The label's attribute and rule in a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Labelling {
    /// No label: V26 has nothing to decide.
    None,
    /// `export` (all-of) `itar`; mallory's facts grant `ear`.
    AllOf,
    /// `classification` (hierarchy: `secret` > `confidential` > `public`) `confidential`;
    /// bob's facts grant `secret`, carol's `confidential`, mallory's `public`.
    Hierarchy,
}

/// A configuration of the labels model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LabelsConfig {
    /// Its name in tables.
    pub name: &'static str,
    /// The label.
    pub labelling: Labelling,
    /// The addresses entitled to the key, written down (not computed by the core): what
    /// `ENTITLED_ONLY` and `ALL_ENTITLED` check against.
    pub entitled: Vec<Addr>,
    /// Deliveries of each request: the signer's first and retries, and the attacker's replays.
    pub copies: u8,
}

impl LabelsConfig {
    /// `export/itar`, all-of: bob and carol are entitled, mallory (holding `export/ear`) not.
    pub fn all_of() -> Self {
        LabelsConfig { name: "all-of", labelling: Labelling::AllOf, entitled: vec![BOB, CAROL], copies: 3 }
    }

    /// `classification/confidential`, hierarchy: bob (secret) and carol (confidential) are
    /// entitled, mallory (public) not.
    pub fn hierarchy() -> Self {
        LabelsConfig { name: "hierarchy", labelling: Labelling::Hierarchy, entitled: vec![BOB, CAROL], copies: 3 }
    }

    /// The same parties and mappings, no label: every listed address is entitled.
    pub fn unlabelled() -> Self {
        LabelsConfig { name: "unlabelled", labelling: Labelling::None, entitled: LISTED.to_vec(), copies: 3 }
    }

    /// The model (`invalid_configuration` if the core refuses its policy).
    pub fn into_model(self) -> Result<LabelsModel, Error> {
        let (policy, labels) = policy(self.labelling)?;
        Ok(LabelsModel { cfg: self, policy, labels })
    }
}

/// One release request: its signer's certificate (and listed address), with or without the
/// signer's token. The attacker's replays of another's request are further deliveries of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fetch {
    /// The signer (its certificate holds this one address).
    pub signer: Addr,
    /// Whether the request carries the signer's token.
    pub token: bool,
}

/// Every request of a run: each party's certificate alone, and with its token if it has one.
pub const FETCHES: [Fetch; 5] = [
    Fetch { signer: BOB, token: false },
    Fetch { signer: CAROL, token: false },
    Fetch { signer: CAROL, token: true },
    Fetch { signer: MALLORY, token: false },
    Fetch { signer: MALLORY, token: true },
];

/// A state of the labels model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LabelsState {
    /// The gatekeeper's store.
    pub store: MemoryState<Sym>,
    /// Deliveries left per request of [`FETCHES`].
    pub left: [u8; 5],
    /// Ghost: every address released to, in order.
    pub released: Vec<Addr>,
    /// Ghost: refusals by V26.
    pub refused: u8,
    /// Ghost: an answer that differed from the ledger's release alone on the same store.
    pub diverged: bool,
    /// A core round that failed (never masked).
    pub failure: Option<String>,
}

/// The labels model.
#[derive(Clone, Debug)]
pub struct LabelsModel {
    /// Its configuration.
    pub cfg: LabelsConfig,
    policy: Policy,
    labels: Vec<AttributeValue>,
}

const NOW: UnixTime = UnixTime(1_000);
const FAR: UnixTime = UnixTime(u64::MAX / 2);

fn rules() -> Ledger<Sym> {
    Ledger::new(LedgerConfig { retention_secs: 0, max_deliveries: 1, request_window_secs: Some(u64::MAX / 4) })
}

/// A symbolic address as the core's type (for the subject mappings).
fn email(a: Addr) -> Result<EmailAddress, Error> {
    EmailAddress::parse(&format!("a{a}@b.example"))
}

/// A symbolic anchor as the core's certificate id.
fn cert_id(anchor: Addr) -> CertId {
    CertId([anchor; 32])
}

/// Each party's certificate: anchor and policy OIDs.
fn certificate(signer: Addr) -> (Addr, Vec<String>) {
    match signer {
        BOB => (CA_A, vec![PIV.to_owned()]),
        CAROL => (CA_B, Vec::new()),
        _ => (CA_A, vec![LOW.to_owned()]),
    }
}

/// Each party's token (issuer, subject, `clearance` claim, `jti`), if it has one.
fn token(signer: Addr) -> Option<(TokenFacts, TokenUse)> {
    let clearance = match signer {
        CAROL => "itar",
        MALLORY => "ear",
        _ => return None,
    };
    let facts = TokenFacts {
        issuer: ISSUER.to_owned(),
        subject: format!("s{signer}"),
        claims: BTreeMap::from([("clearance".to_owned(), vec![clearance.to_owned()])]),
    };
    let used = TokenUse { issuer: ISSUER.to_owned(), jti: format!("j{signer}"), keep_until: FAR };
    Some((facts, used))
}

/// The gatekeeper's policy and the key's labels for a labelling. The mappings are the same
/// for every labelling: a PIV certificate of anchor A, a token claim `clearance` of the
/// issuer, and the low-assurance certificate, each granting one value.
fn policy(labelling: Labelling) -> Result<(Policy, Vec<AttributeValue>), Error> {
    let (attribute, rule, values, label, grants) = match labelling {
        Labelling::AllOf | Labelling::None => {
            ("https://example.com/attr/export", Rule::AllOf, ["itar", "ear", "none"], "itar", ["itar", "itar", "ear"])
        }
        Labelling::Hierarchy => (
            "https://example.com/attr/classification",
            Rule::Hierarchy,
            ["secret", "confidential", "public"],
            "confidential",
            ["secret", "confidential", "public"],
        ),
    };
    let name = AttributeName::parse(attribute)?;
    let values = values.iter().map(|v| name.value(v)).collect::<Result<Vec<_>, Error>>()?;
    let grant = |v: &str| name.value(v).map(|v| vec![v]);
    let [piv, itar, low] = grants;
    let mappings = vec![
        SubjectMapping {
            conditions: vec![Condition::Anchor(cert_id(CA_A)), Condition::CertificatePolicy(PIV.to_owned())],
            grants: grant(piv)?,
        },
        SubjectMapping {
            conditions: vec![
                Condition::TokenIssuer(ISSUER.to_owned()),
                Condition::Claim { name: "clearance".to_owned(), values: vec!["itar".to_owned()] },
            ],
            grants: grant(itar)?,
        },
        SubjectMapping {
            conditions: vec![
                Condition::TokenIssuer(ISSUER.to_owned()),
                Condition::Claim { name: "clearance".to_owned(), values: vec!["ear".to_owned()] },
            ],
            grants: grant(low)?,
        },
        SubjectMapping { conditions: vec![Condition::CertificatePolicy(LOW.to_owned())], grants: grant(low)? },
    ];
    let labels = match labelling {
        Labelling::None => Vec::new(),
        _ => vec![name.value(label)?],
    };
    let policy = Policy::new(vec![AttributeDefinition { name, rule, values }], mappings)?;
    Ok((policy, labels))
}

/// The key, drawn once.
struct Once;

impl KeyDraw<Sym> for Once {
    type Key = ();

    fn draw(&mut self) -> Result<(KeyName, KeyName, ()), Error> {
        Ok((KEY, KEY, ()))
    }
}

/// Whether a refusal is V26's.
fn by_label(e: &Error) -> bool {
    matches!(
        e.rejection(),
        Rejection::LabelUnknown
            | Rejection::EntitlementAllOfUnmet
            | Rejection::EntitlementAnyOfUnmet
            | Rejection::EntitlementHierarchyUnmet
    )
}

impl LabelsModel {
    /// The release facts and entitlements of a request, as the gatekeeper computes them from
    /// what it verified.
    fn request(
        &self,
        fetch: Fetch,
    ) -> Result<(ReleaseFacts<Sym>, ekg_core::access::policy::Entitlements, Option<TokenUse>), Error> {
        let (anchor, policies) = certificate(fetch.signer);
        let token = if fetch.token { token(fetch.signer) } else { None };
        let facts = ekg_core::access::policy::SubjectFacts {
            anchor: Some(cert_id(anchor)),
            certificate_policies: policies,
            addresses: vec![email(fetch.signer)?],
            token: token.as_ref().map(|(f, _)| f.clone()),
        };
        let held = self.policy.entitlements(&facts);
        let release = ReleaseFacts {
            key_id: KEY,
            listed: LISTED.to_vec(),
            expires_at: FAR,
            requester: Requester { cert: fetch.signer, addresses: vec![fetch.signer], anchor },
        };
        Ok((release, held, token.map(|(_, used)| used)))
    }

    /// One delivery of `fetch`: the gatekeeper's release over the store.
    fn fetch(&self, s: &mut LabelsState, fetch: Fetch) -> Result<(), Error> {
        let (facts, held, used) = self.request(fetch)?;
        // What the ledger's release alone answers, on a copy of the store (never written).
        let plain = Round::new(&rules(), Release::new(facts.clone()), NOW).run(&mut s.store.clone(), &mut NoDraw);
        let decision = EntitledRelease::new(facts, &self.policy, held, used);
        let answer = Round::new(&rules(), decision, NOW).run(&mut s.store, &mut NoDraw);
        if plain.is_ok() != answer.is_ok() {
            s.diverged = true;
        }
        match answer {
            Ok(_) => s.released.push(fetch.signer),
            Err(e) if e.rejection() == Rejection::StorageFailed => return Err(e),
            Err(e) if by_label(&e) => s.refused = s.refused.saturating_add(1),
            Err(_) => {}
        }
        Ok(())
    }
}

impl Model for LabelsModel {
    type State = LabelsState;
    type Action = usize;

    fn init_states(&self) -> Vec<LabelsState> {
        let facts = IssueFacts {
            request: (SENDER, 0, 0),
            request_time: NOW,
            sender: SENDER,
            recipients: LISTED.to_vec(),
            policy: ReleasePolicy::Once,
            expires_at: FAR,
            labels: self.labels.clone(),
        };
        let mut store = MemoryState::default();
        let failure = Round::new(&rules(), Issue::new(facts), NOW)
            .run(&mut store, &mut Once)
            .err()
            .map(|e| format!("{}: {}", e.code(), e.detail()));
        vec![LabelsState {
            store,
            left: [self.cfg.copies; 5],
            released: Vec::new(),
            refused: 0,
            diverged: false,
            failure,
        }]
    }

    fn actions(&self, s: &LabelsState, actions: &mut Vec<usize>) {
        if s.failure.is_none() {
            actions.extend(s.left.iter().enumerate().filter(|(_, l)| **l > 0).map(|(i, _)| i));
        }
    }

    fn next_state(&self, last: &LabelsState, action: usize) -> Option<LabelsState> {
        let mut s = last.clone();
        let left = s.left.get_mut(action)?;
        *left = left.checked_sub(1)?;
        if let Err(e) = self.fetch(&mut s, *FETCHES.get(action)?) {
            s.failure = Some(format!("{}: {}", e.code(), e.detail()));
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(property::ENTITLED_ONLY, |m: &LabelsModel, s: &LabelsState| {
                s.released.iter().all(|a| m.cfg.entitled.contains(a) && LISTED.contains(a))
            }),
            Property::always(property::ONCE, |_, s: &LabelsState| {
                let mut seen = BTreeSet::new();
                s.released.iter().all(|a| seen.insert(*a))
            }),
            Property::always(property::AS_BEFORE, |m: &LabelsModel, s: &LabelsState| {
                m.cfg.labelling != Labelling::None || !s.diverged
            }),
            Property::always(property::NO_FAILURE, |_, s: &LabelsState| s.failure.is_none()),
            Property::sometimes(property::ALL_ENTITLED, |m: &LabelsModel, s: &LabelsState| {
                m.cfg.entitled.iter().all(|a| s.released.contains(a))
            }),
            Property::sometimes(property::REFUSED, |_, s: &LabelsState| s.refused > 0),
        ]
    }
}
