//! The gatekeeper (EKG): issues one-time keys to recognised senders and releases each, once,
//! to the listed recipients and to its own organisation's gateway.
//!
//! # Driving it
//! A request goes through three typed stages, each consuming the previous one's output:
//!
//! 1. **verify** ([`GatekeeperCrypto::verify_key_request`], [`GatekeeperCrypto::verify_release_request`]):
//!    every check that needs crypto or certificates (V1 to V13, V20, V25). `&self` on the shared
//!    [`GatekeeperCrypto`]: any number of threads. Yields a [`VerifiedKeyRequest`] or
//!    [`VerifiedReleaseRequest`], which only verification makes.
//! 2. **decide over the store** ([`Gatekeeper::issue`], [`Gatekeeper::release`]): a
//!    [`Round`](crate::ledger::Round) reads the one key the request is about from the store
//!    (for an issuance: the key that answered the same request, V14), the ledger decides (a
//!    fresh key and its one expiry; V21 to V24), and the records are appended if nothing read
//!    changed meanwhile, else read and decided again. Yields a [`Committed`]: the records are
//!    durable. Nothing about keys is kept in memory between requests; any number of
//!    gatekeepers (threads, processes) may share one store.
//! 3. **build** ([`GatekeeperCrypto::build_issuance`], [`GatekeeperCrypto::build_release`]):
//!    the response's crypto, from a `Committed` only; any thread.
//!
//! A response therefore cannot exist without its durable record.
//! [`Gatekeeper::handle_key_request`] and [`Gatekeeper::handle_release_request`] run all three
//! in one call.
//!
//! Timers: [`Gatekeeper::next_deadline`] says when the next expiry, end of retention or purge
//! is due (the store indexes every key's deadline); call [`Gatekeeper::handle_timeout`] at (or
//! after) that time. `now` must not go backwards.

mod build;
mod config;
mod credential;
mod custody;
mod entitle;
mod logged;
pub mod settings;
mod verify;

use std::sync::Arc;

pub use build::{DrawFromRng, IssueWork, ReleaseWork, draw_fresh};
pub use config::{
    GatekeeperConfig, GatewayPrincipal, RecipientRule, RetiredCertificate, RetiredKey, SenderRule, StorageKey, limits,
};
pub use credential::{CredentialStatus, check_credential, check_profile};
pub use custody::{
    EpochKeyRing, StorageKeys, destroyable_before, done_epochs_before, epoch_destroyed, unwrap_by_epoch,
};
pub use settings::{GatekeeperSettings, SettingsError};
pub use verify::{GatekeeperCrypto, VerifiedKeyRequest, VerifiedReleaseRequest};

use crate::address::EmailAddress;
use crate::audit::LogSalt;
use crate::crypto::pki::Credential;
use crate::crypto::{CryptoProvider, CryptoRng};
use crate::error::{Rejection, Result, reject};
use crate::ids::{KeyId, OneTimeKey};
use crate::ledger::round::{Decision, Issue, NoDraw, View, storage_failed};
use crate::ledger::{
    Committed, Concrete, Decided, EntitledRelease, Granted, IssueFacts, IssueRules, KeyDraw, Ledger, ReleaseFacts,
    ReleaseKind, Round, Store,
};
use crate::planted::{self, PlantedBug as P};
use crate::time::UnixTime;

/// What the gatekeeper returns to a sender.
#[derive(Clone, Debug)]
pub struct Issuance {
    /// The key id.
    pub key_id: KeyId,
    /// The grant: the key encrypted to the sender's certificate.
    pub grant: Vec<u8>,
    /// The ticket: the signed request, signed again by the gatekeeper.
    pub ticket: Vec<u8>,
    /// Ticket expiry.
    pub expires_at: UnixTime,
}

impl Issuance {
    /// The HTTP answer to the key request: a ContentInfo of type `id-ekg-ct-issuance`
    /// holding the grant and the ticket (`docs/protocol.md` §8).
    pub fn to_response_der(&self) -> Result<Vec<u8>> {
        crate::role::ticket::encode_issuance_response(&self.grant, &self.ticket)
    }
}

/// What the gatekeeper returns to a recipient or gateway.
#[derive(Clone, Debug)]
pub struct Release {
    /// The key id.
    pub key_id: KeyId,
    /// The release: a gatekeeper-signed key delivery, encrypted to the requester.
    pub der: Vec<u8>,
    /// First release, re-delivery or gateway.
    pub kind: ReleaseKind,
    /// The listed addresses served.
    pub served: Vec<EmailAddress>,
}

/// An issuance decided, not yet durable.
pub type DecidedIssuance = Decided<Concrete, IssueWork>;
/// A release decided, not yet durable.
pub type DecidedRelease = Decided<Concrete, ReleaseWork>;

/// The gatekeeper: [`GatekeeperCrypto`] and the rules of its decisions, over a [`Store`]. It
/// keeps no key state of its own: clone the store handle (or open another connection) to run
/// several on one store.
#[derive(Clone, Debug)]
pub struct Gatekeeper<S: Store<Concrete>> {
    crypto: Arc<GatekeeperCrypto>,
    rules: Ledger<Concrete>,
    store: S,
    /// Decisions read and made again because another request changed the key first.
    races_lost: u64,
    /// The issuance log's salt, if this gatekeeper keeps a log: every issuance and release
    /// then appends its entry with its records (`logged`).
    log: Option<LogSalt>,
}

impl<S: Store<Concrete>> Gatekeeper<S> {
    /// A gatekeeper on `store`. Refuses a configuration no request could be answered under
    /// (`invalid_configuration`, naming the field), and a storage key that does not unwrap
    /// the keys the store holds.
    pub fn new(
        provider: &'static dyn CryptoProvider,
        config: GatekeeperConfig,
        credential: Credential,
        storage_keys: impl Into<Box<dyn StorageKeys>>,
        store: S,
    ) -> Result<Self> {
        let crypto = Arc::new(GatekeeperCrypto::checked(provider, config, credential, storage_keys)?);
        Gatekeeper::with_crypto(crypto, store)
    }

    /// A gatekeeper sharing `crypto` (one per thread or connection, all on one store).
    pub fn with_crypto(crypto: Arc<GatekeeperCrypto>, mut store: S) -> Result<Self> {
        // A wrong storage key would fail every release after its record is durable: refuse
        // to start with one (one held key must unwrap).
        if let Some(handle) = store.live_handle().map_err(storage_failed)? {
            match crypto.check_unwraps(&handle) {
                // A key outliving its epoch's key (a ticket lifetime shortened since) is
                // refused at its release; it is no reason not to start.
                Err(e) if e.rejection() == Rejection::KeyDestroyed => {}
                other => other?,
            }
        }
        let config = crypto.config();
        let rules = Ledger::new(config.ledger_config()).with_gateways(config.gateways.clone());
        Ok(Gatekeeper { crypto, rules, store, races_lost: 0, log: None })
    }

    /// Keeps the issuance log (`docs/protocol.md` §10): from now on every issuance and release
    /// appends its entry, keyed by `salt`, in the store's write of its records.
    pub fn with_log(mut self, salt: LogSalt) -> Self {
        self.log = Some(salt);
        self
    }

    /// Whether this gatekeeper keeps the issuance log.
    pub fn logs(&self) -> bool {
        self.log.is_some()
    }

    /// The crypto half.
    pub fn crypto(&self) -> &GatekeeperCrypto {
        &self.crypto
    }

    /// The crypto half, shared: threads verify requests and build answers with it.
    pub fn shared_crypto(&self) -> Arc<GatekeeperCrypto> {
        Arc::clone(&self.crypto)
    }

    /// The rules of the ledger's decisions (its configuration and gateways; no key).
    pub fn rules(&self) -> &Ledger<Concrete> {
        &self.rules
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, to act on it directly (tests, the management endpoint).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Gives up the store (e.g. to start a new gatekeeper on it after a simulated crash).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Steps V1 to V14, then issuance: verify, decide over the store, build.
    pub fn handle_key_request(&mut self, der: &[u8], now: UnixTime, rng: &mut dyn CryptoRng) -> Result<Issuance> {
        let verified = self.crypto.verify_key_request(der, now)?;
        let committed = self.issue(verified, now, rng)?;
        self.crypto.build_issuance(committed, rng)
    }

    /// Steps V1 to V8, V13 and V20 to V24, then the release: verify, decide over the store,
    /// build.
    pub fn handle_release_request(&mut self, der: &[u8], now: UnixTime, rng: &mut dyn CryptoRng) -> Result<Release> {
        let verified = self.crypto.verify_release_request(der, now)?;
        let committed = self.release(verified, now)?;
        self.crypto.build_release(committed, now, rng)
    }

    /// An issuance over the store: V14, a fresh key id and key from `rng` (the key wrapped
    /// under the storage key), the ticket's one expiry, made durable.
    pub fn issue(
        &mut self,
        request: VerifiedKeyRequest,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<Committed<IssueWork>> {
        if self.log.is_some() {
            return self.issue_logged(request, None, rng, now);
        }
        let crypto = Arc::clone(&self.crypto);
        let mut draw = crypto.draw_from(rng, now);
        self.issue_with(request, &mut draw, now)
    }

    /// As [`Gatekeeper::issue`], drawing the key from `draw` (tests inject a key id); with a
    /// log, the grant and ticket are built from `rng` before the commit (the entry holds the
    /// ticket's hash), and [`GatekeeperCrypto::build_issuance`] returns them as built.
    pub fn issue_logged(
        &mut self,
        request: VerifiedKeyRequest,
        draw: Option<&mut dyn KeyDraw<Concrete, Key = OneTimeKey>>,
        rng: &mut dyn CryptoRng,
        now: UnixTime,
    ) -> Result<Committed<IssueWork>> {
        let Some(salt) = self.log.clone() else {
            return match draw {
                Some(draw) => self.issue_with(request, draw, now),
                None => self.issue(request, now, rng),
            };
        };
        let facts = self.issue_facts(&request, now)?;
        let committed = {
            let decision = logged::LoggedIssue {
                inner: Issue::new(facts),
                crypto: Arc::clone(&self.crypto),
                salt,
                request: &request,
                draw: draw.map(|d| d as &mut dyn KeyDraw<Concrete, Key = OneTimeKey>),
                rng: &mut *rng,
            };
            let mut round = Round::new(&self.rules, decision, now);
            let committed = round.run(&mut self.store, &mut NoDraw);
            self.races_lost += u64::from(round.races_lost());
            committed
        };
        Ok(committed?.map(|built| logged::LoggedIssue::work(request, built, now)))
    }

    fn issue_facts(&self, request: &VerifiedKeyRequest, now: UnixTime) -> Result<IssueFacts<Concrete>> {
        let config = self.crypto.config();
        let rules = IssueRules { policy: config.policy, ticket_lifetime_secs: config.ticket_lifetime_secs };
        let facts = IssueFacts::of(request, rules, now);
        // Every time the ticket will carry must encode, before anything is recorded.
        now.to_generalized()?;
        facts.expires_at.to_generalized()?;
        Ok(facts)
    }

    /// As [`Gatekeeper::issue`], drawing the key from `draw` (tests inject a key id).
    pub fn issue_with(
        &mut self,
        request: VerifiedKeyRequest,
        draw: &mut dyn KeyDraw<Concrete, Key = OneTimeKey>,
        now: UnixTime,
    ) -> Result<Committed<IssueWork>> {
        if self.log.is_some() {
            return Err(reject(
                Rejection::InvalidConfiguration,
                "a logged issuance builds its ticket before the commit: use issue_logged with an RNG",
            ));
        }
        // Planted: V14 kept in this process's memory only (the store is not asked).
        let remembered = format!("v14:{:?}", request.content().request_id());
        let remembered = self.crypto.provider.sha256(remembered.as_bytes());
        if planted::is(P::V14InMemory) && self.crypto.issued_tickets.lock().is_ok_and(|t| t.contains(&remembered)) {
            return Err(reject(Rejection::DuplicateRequest, "this request was already answered"));
        }
        let facts = self.issue_facts(&request, now)?;
        let mut round = Round::new(&self.rules, Issue::new(facts), now);
        let committed = round.run(&mut self.store, draw);
        self.races_lost += u64::from(round.races_lost());
        let committed = committed?;
        if planted::is(P::V14InMemory)
            && let Ok(mut t) = self.crypto.issued_tickets.lock()
        {
            t.insert(remembered);
        }
        Ok(committed.map(|drawn| IssueWork::new(request, drawn, now)))
    }

    /// A release over the store: V21 to V24, V26 and V28.8 ([`EntitledRelease`]), made
    /// durable.
    pub fn release(&mut self, request: VerifiedReleaseRequest, now: UnixTime) -> Result<Committed<ReleaseWork>> {
        let facts = ReleaseFacts::of(&request);
        let crypto = Arc::clone(&self.crypto);
        let policy = &crypto.config().attributes;
        let held = policy.entitlements(&request.subject_facts());
        let log = self.log.clone().map(|salt| logged::ReleaseLog::of(salt, &request, now));
        let token = request.token().map(|t| t.used.clone());
        let decision = Unwrappable {
            entitled: EntitledRelease::new(facts, policy, held, token),
            crypto: Arc::clone(&crypto),
            log,
        };
        let mut round = Round::new(&self.rules, decision, now);
        let committed = round.run(&mut self.store, &mut NoDraw);
        self.races_lost += u64::from(round.races_lost());
        Ok(committed?.map(|granted| ReleaseWork::new(request, granted)))
    }

    /// Decisions read and made again because another request changed the key first (a
    /// metric of contention).
    pub fn races_lost(&self) -> u64 {
        self.races_lost
    }

    /// The next expiry, end of retention or purge of any key in the store.
    pub fn next_deadline(&mut self) -> Result<Option<UnixTime>> {
        self.store.next_deadline().map_err(storage_failed)
    }

    /// How many keys are held (pending or retained).
    pub fn held_keys(&mut self) -> Result<u64> {
        self.store.held_keys().map_err(storage_failed)
    }

    /// Destroys expired keys and keys whose retention ended, purges old tombstones: what is
    /// due at `now`, made durable ([`crate::ledger::sweep`]: at most
    /// [`crate::ledger::round::SWEEP_LIMIT`] keys per call). Returns how many records were
    /// made; an error only if nothing could be done (the first key's error). Then forgets the
    /// token records past their `keep_until` (V28.8).
    pub fn handle_timeout(&mut self, now: UnixTime) -> Result<usize> {
        let swept = crate::ledger::sweep(&self.rules, &mut self.store, now)?;
        match swept.failed.into_iter().next() {
            Some(e) if swept.made == 0 => Err(e),
            _ => {
                self.destroy_done_epochs(now)?;
                // V28.8's records past their time: V28.6 refuses those tokens now.
                self.store.purge_tokens(now).map_err(storage_failed)?;
                Ok(swept.made)
            }
        }
    }

    /// Destroys the storage keys of the epochs whose every key has expired, once the sweep
    /// has caught up (nothing due at `now`): no held key can be of such an epoch. Returns
    /// the epochs destroyed. Run by [`Gatekeeper::handle_timeout`].
    pub fn destroy_done_epochs(&mut self, now: UnixTime) -> Result<Vec<u64>> {
        let keys = self.crypto.storage_keys();
        if !keys.has_epochs() {
            return Ok(Vec::new());
        }
        let config = self.crypto.config();
        let (epoch_secs, lifetime_secs) = (config.storage_epoch_secs, config.ticket_lifetime_secs);
        match custody::done_epochs_before(&mut self.store, now, epoch_secs, lifetime_secs)? {
            Some(before) => keys.destroy_epochs_before(before),
            None => Ok(Vec::new()),
        }
    }
}

/// A release whose stored key must unwrap under this gatekeeper's storage key before it is
/// recorded: an instance configured with another storage key (on a shared store) would
/// otherwise use up a release it cannot deliver. Everything else is [`EntitledRelease`]'s
/// (the ledger's V21 to V24, V26 on a labelled key, V28.8 on a token, the token's record in
/// the batch), crypto-free and shared with the model checker.
struct Unwrappable<'a> {
    entitled: EntitledRelease<Concrete, &'a crate::access::policy::Policy>,
    crypto: Arc<GatekeeperCrypto>,
    /// What the release's log entries record (`None`: no log).
    log: Option<logged::ReleaseLog>,
}

impl Decision<Concrete> for Unwrappable<'_> {
    type Payload = Granted<Concrete>;
    type Key = ();

    fn read<St: Store<Concrete> + ?Sized>(&self, store: &mut St, view: &mut View<Concrete>) -> Result<()> {
        if planted::is(P::ConfiguredPolicyAtRelease) {
            let key_id = self.entitled.key_id();
            let mut loaded = store.load_key(key_id).map_err(storage_failed)?;
            for r in &mut loaded.records {
                if let crate::ledger::Record::Issued { policy, .. } = r {
                    *policy = self.crypto.config().policy;
                }
            }
            return view.load(key_id, loaded);
        }
        self.entitled.read(store, view)
    }

    fn decide(
        &mut self,
        view: &View<Concrete>,
        draw: &mut dyn KeyDraw<Concrete, Key = ()>,
        now: UnixTime,
    ) -> Result<Decided<Concrete, Granted<Concrete>>> {
        let decided = self.entitled.decide(view, draw, now)?;
        self.crypto.check_unwraps(&decided.payload().handle)?;
        Ok(decided)
    }

    fn tokens(&self) -> Vec<crate::access::token::TokenUse> {
        self.entitled.tokens()
    }

    fn log(&self, decided: &Decided<Concrete, Granted<Concrete>>) -> Result<Vec<Vec<u8>>> {
        match &self.log {
            Some(log) => log.entries(self.crypto.config(), decided.payload()),
            None => Ok(Vec::new()),
        }
    }
}

impl crate::ledger::VerifiedIssue<Concrete> for VerifiedKeyRequest {
    fn request_id(&self) -> crate::ids::RequestId {
        self.content().request_id()
    }

    fn request_time(&self) -> UnixTime {
        self.content().request_time
    }

    fn sender(&self) -> EmailAddress {
        self.content().sender.clone()
    }

    fn recipients(&self) -> Vec<EmailAddress> {
        self.content().recipients.clone()
    }

    fn labels(&self) -> Vec<crate::access::policy::AttributeValue> {
        self.content().labels.clone()
    }
}

impl crate::ledger::VerifiedRelease<Concrete> for VerifiedReleaseRequest {
    fn key_id(&self) -> KeyId {
        self.ticket().key_id
    }

    fn ticket_expiry(&self) -> UnixTime {
        self.ticket().expires_at
    }

    fn listed(&self) -> Vec<EmailAddress> {
        self.ticket().request.recipients.clone()
    }

    fn requester(&self) -> crate::ledger::Requester<Concrete> {
        VerifiedReleaseRequest::requester(self)
    }
}

impl GatekeeperCrypto {
    /// The gatekeeper's crypto after every check of its configuration and credential.
    pub fn checked(
        provider: &'static dyn CryptoProvider,
        config: GatekeeperConfig,
        credential: Credential,
        storage_keys: impl Into<Box<dyn StorageKeys>>,
    ) -> Result<Self> {
        config.validate()?;
        credential::check_profile(&config, &credential)?;
        Ok(GatekeeperCrypto::new(provider, config, credential, storage_keys.into()))
    }

    /// The storage keys (to list or destroy epochs).
    pub fn storage_keys(&self) -> &dyn StorageKeys {
        &*self.storage_keys
    }

    /// Refuses a stored key that the storage keys do not unwrap: `key_destroyed` if its
    /// epoch's key is gone, `invalid_configuration` if it does not unwrap (another storage
    /// key).
    pub fn check_unwraps(&self, handle: &crate::ids::StoredKey) -> Result<()> {
        if planted::is(P::KeysStoredInClear) {
            return Ok(());
        }
        self.storage_keys.unwrap(self.provider, handle).map(drop).map_err(|e| match e.rejection() {
            Rejection::KeyDestroyed => e,
            _ => reject(
                Rejection::InvalidConfiguration,
                format!("storage_key: does not unwrap the stored keys (epoch {}: {e})", handle.epoch),
            ),
        })
    }
}
