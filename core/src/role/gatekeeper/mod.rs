//! The gatekeeper (EKG): issues one-time keys to recognised senders and releases each, once,
//! to the listed recipients and to its own organisation's gateway.
//!
//! # Driving it
//! A request goes through four typed stages, each consuming the previous one's output:
//!
//! 1. **verify** ([`GatekeeperCrypto::verify_key_request`], [`GatekeeperCrypto::verify_release_request`]):
//!    every check that needs crypto or certificates (V1 to V13, V20). `&self` on the shared
//!    [`GatekeeperCrypto`]: any number of threads. Yields a [`VerifiedKeyRequest`] or
//!    [`VerifiedReleaseRequest`], which only verification makes.
//! 2. **decide** ([`Gatekeeper::decide_issue`], [`Gatekeeper::decide_release`]): the serial
//!    stage on the ledger: V14, a fresh key and its one expiry (issue); V21 to V24 (release).
//!    Yields a [`Decided`]: records to make durable, and what the response needs.
//! 3. **commit** ([`Gatekeeper::commit`]): makes the records durable ([`Store::append`]),
//!    then applies them. Yields a [`Committed`], which only `commit` makes.
//! 4. **build** ([`GatekeeperCrypto::build_issuance`], [`GatekeeperCrypto::build_release`]):
//!    the response's crypto, from a `Committed` only; any thread.
//!
//! A response therefore cannot exist without its durable record. Stages 2 and 3 run under
//! the caller's lock (one at a time); 1 and 4 do not need it. [`Gatekeeper::handle_key_request`]
//! and [`Gatekeeper::handle_release_request`] run all four in one call.
//!
//! Timers, quinn-style: [`Gatekeeper::poll_timeout`] says when the next expiry, end of
//! retention or purge is due; call [`Gatekeeper::handle_timeout`] at (or after) that time.
//! `now` must not go backwards.

mod build;
mod config;
mod credential;
mod verify;

use std::sync::Arc;

pub use build::{DrawFromRng, IssueWork, ReleaseWork, draw_fresh};
pub use config::{
    GatekeeperConfig, GatewayPrincipal, RecipientRule, RetiredCertificate, RetiredKey, SenderRule, StorageKey, limits,
};
pub use credential::{CredentialStatus, check_credential, check_profile};
pub use verify::{GatekeeperCrypto, VerifiedKeyRequest, VerifiedReleaseRequest};

use crate::address::EmailAddress;
use crate::crypto::{CryptoProvider, CryptoRng};
use crate::error::{Rejection, Result, reject};
use crate::ids::{KeyId, OneTimeKey};
use crate::ledger::{
    Committed, Concrete, Decided, IssueFacts, KeyDraw, KeyState, Ledger, ReleaseFacts, ReleaseKind, SharedStore, Store,
};
use crate::pki::Credential;
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

/// The gatekeeper: [`GatekeeperCrypto`] around one serial ledger and its store.
#[derive(Debug)]
pub struct Gatekeeper<S: Store<Concrete>> {
    crypto: Arc<GatekeeperCrypto>,
    ledger: Ledger<Concrete>,
    store: S,
    /// Decisions made again on a shared store because another gatekeeper was first.
    races_lost: u64,
}

impl<S: Store<Concrete>> Gatekeeper<S> {
    /// A gatekeeper whose ledger is recovered from `store`. Refuses a configuration no
    /// request could be answered under (`invalid_configuration`, naming the field).
    pub fn new(
        provider: &'static dyn CryptoProvider,
        config: GatekeeperConfig,
        credential: Credential,
        storage_key: StorageKey,
        store: S,
    ) -> Result<Self> {
        config.validate()?;
        credential::check_profile(&config, &credential)?;
        let mut store = store;
        let mut handles = Vec::new();
        let ledger = if let Some(shared) = store.shared() {
            // Nothing is recovered into memory: each decision reads what it needs.
            handles.extend(shared.live_handle().map_err(storage_failed)?);
            Ledger::new(config.ledger_config()).with_gateways(config.gateways.clone())
        } else {
            let records = store.load().map_err(storage_failed)?;
            let ledger =
                Ledger::recover(config.ledger_config(), records.iter())?.with_gateways(config.gateways.clone());
            for (_, state) in ledger.keys() {
                if let KeyState::Pending(k) | KeyState::Retained { key: k, .. } = state {
                    handles.push(k.handle.clone());
                }
            }
            ledger
        };
        // A wrong storage key would fail every release after its record is durable: refuse
        // to start with one (each live key must unwrap; one, on a shared store).
        for handle in &handles {
            provider
                .aes256_kw_unwrap(storage_key.bytes(), &handle.0)
                .map_err(|_| reject(Rejection::InvalidConfiguration, "storage_key: does not unwrap the stored keys"))?;
        }
        let crypto = Arc::new(GatekeeperCrypto::new(provider, config, credential, storage_key));
        Ok(Gatekeeper { crypto, ledger, store, races_lost: 0 })
    }

    /// The crypto half.
    pub fn crypto(&self) -> &GatekeeperCrypto {
        &self.crypto
    }

    /// The crypto half, shared: threads verify requests and build answers with it while the
    /// serial stages run under the caller's lock.
    pub fn shared_crypto(&self) -> Arc<GatekeeperCrypto> {
        Arc::clone(&self.crypto)
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger<Concrete> {
        &self.ledger
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives up the store (e.g. to recover a new gatekeeper from it after a simulated crash).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Steps V1 to V14, then issuance: verify, decide, commit, build.
    pub fn handle_key_request(&mut self, der: &[u8], now: UnixTime, rng: &mut dyn CryptoRng) -> Result<Issuance> {
        let verified = self.crypto.verify_key_request(der, now)?;
        let committed = self.issue(verified, now, rng)?;
        self.crypto.build_issuance(committed, rng)
    }

    /// Steps V1 to V8, V13 and V20 to V24, then the release: verify, decide, commit, build.
    pub fn handle_release_request(&mut self, der: &[u8], now: UnixTime, rng: &mut dyn CryptoRng) -> Result<Release> {
        let verified = self.crypto.verify_release_request(der, now)?;
        let committed = self.release(verified, now)?;
        self.crypto.build_release(committed, now, rng)
    }

    /// The serial stage of an issuance: V14, a fresh key id and key from `rng` (the key
    /// wrapped under the storage key), and the ticket's one expiry.
    pub fn decide_issue(
        &self,
        request: VerifiedKeyRequest,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<DecidedIssuance> {
        let mut draw = self.crypto.draw_from(rng);
        self.decide_issue_with(request, &mut draw, now)
    }

    /// As [`Gatekeeper::decide_issue`], drawing the key from `draw` (tests inject a key id).
    pub fn decide_issue_with<D: KeyDraw<Concrete, Key = OneTimeKey>>(
        &self,
        request: VerifiedKeyRequest,
        draw: &mut D,
        now: UnixTime,
    ) -> Result<DecidedIssuance> {
        let config = self.crypto.config();
        let expires_at = now.plus_secs(config.ticket_lifetime_secs);
        // Every time the ticket will carry must encode, before anything is recorded.
        now.to_generalized()?;
        expires_at.to_generalized()?;
        let facts = IssueFacts {
            request: request.content().request_id(),
            request_time: request.content().request_time,
            sender: request.content().sender.clone(),
            recipients: request.content().recipients.clone(),
            policy: config.policy,
            expires_at,
        };
        let decided = self.ledger.decide_issue(facts, draw, now)?;
        Ok(decided.map(|drawn| IssueWork::new(request, drawn, now)))
    }

    /// The serial stage of a release: V21 to V24 on the ledger.
    pub fn decide_release(&self, request: VerifiedReleaseRequest, now: UnixTime) -> Result<DecidedRelease> {
        let facts = ReleaseFacts {
            key_id: request.ticket().key_id,
            listed: request.ticket().request.recipients.clone(),
            expires_at: request.ticket().expires_at,
            requester: request.requester(),
        };
        let decided = self.ledger.decide_release(&facts, now)?;
        // The stored key must unwrap under this gatekeeper's storage key before a release is
        // recorded: an instance configured with another storage key (on a shared store)
        // would otherwise use up a release it cannot deliver.
        self.crypto
            .provider
            .aes256_kw_unwrap(self.crypto.storage_key.bytes(), &decided.payload().handle.0)
            .map_err(|_| reject(Rejection::InvalidConfiguration, "storage_key: does not unwrap this key"))?;
        Ok(decided.map(|granted| ReleaseWork::new(request, granted)))
    }

    /// Makes a decision's records durable, then applies them (nothing is applied if the
    /// store fails: `storage_failed`).
    pub fn commit<P>(&mut self, decided: Decided<Concrete, P>) -> Result<Committed<P>> {
        self.ledger.commit(&mut self.store, decided)
    }

    /// When [`Gatekeeper::handle_timeout`] next has work: the next expiry, end of retention
    /// or purge (`None`: nothing is held). On a shared store other gatekeepers add deadlines:
    /// ask [`Gatekeeper::next_deadline`] instead.
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        self.ledger.poll_timeout()
    }

    /// Decisions read and made again on a shared store because another gatekeeper changed
    /// the key first (a metric of contention).
    pub fn races_lost(&self) -> u64 {
        self.races_lost
    }

    /// Whether the store is shared by several gatekeepers (nothing is kept in memory).
    pub fn is_shared(&mut self) -> bool {
        self.store.shared().is_some()
    }

    /// The next deadline, from the ledger, or from a shared store.
    pub fn next_deadline(&mut self) -> Result<Option<UnixTime>> {
        match self.store.shared() {
            Some(shared) => shared.next_deadline().map_err(storage_failed),
            None => Ok(self.ledger.poll_timeout()),
        }
    }

    /// How many keys are held (pending or retained), from the ledger or a shared store.
    pub fn held_keys(&mut self) -> Result<u64> {
        match self.store.shared() {
            Some(shared) => shared.held_keys().map_err(storage_failed),
            None => Ok(u64::try_from(self.ledger.held_keys()).unwrap_or(u64::MAX)),
        }
    }

    /// Destroys expired keys and keys whose retention ended, purges old tombstones: what is
    /// due at `now`, made durable. Returns how many records were made. On a shared store,
    /// at most [`SWEEP_LIMIT`] keys per call, each read, decided and committed on its own (a
    /// key another gatekeeper changed meanwhile is left to the next sweep).
    pub fn handle_timeout(&mut self, now: UnixTime) -> Result<usize> {
        let Some(shared) = self.store.shared() else {
            let decided = self.ledger.decide_expiry(now);
            let made = decided.records().len();
            self.commit(decided)?;
            return Ok(made);
        };
        let due = shared.due(now, SWEEP_LIMIT).map_err(storage_failed)?;
        let (mut made, mut failed) = (0, None);
        for key_id in due {
            // One key that cannot be read or written does not stop the others' destruction.
            match self.sweep_one(&key_id, now) {
                Ok(n) => made += n,
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        self.ledger.clear();
        match failed {
            Some(e) if made == 0 => Err(e),
            _ => Ok(made),
        }
    }

    /// Reads one due key from a shared store, decides what is due, commits it if unchanged.
    fn sweep_one(&mut self, key_id: &KeyId, now: UnixTime) -> Result<usize> {
        self.ledger.clear();
        let shared = shared_of(&mut self.store)?;
        let records = shared.load_key(key_id).map_err(storage_failed)?;
        self.ledger.refresh(key_id, &records)?;
        let decided = self.ledger.decide_expiry(now);
        let n = decided.records().len();
        let shared = shared_of(&mut self.store)?;
        Ok(if self.ledger.commit_if_unchanged(shared, decided)?.is_some() { n } else { 0 })
    }

    /// The serial stages of an issuance: [`Gatekeeper::decide_issue`], then commit. On a
    /// shared store: read the key that answered this request (V14) if any, decide, commit if
    /// nothing changed meanwhile; else read and decide again, at most [`SHARED_ATTEMPTS`]
    /// times (then `storage_failed`: the client retries later).
    pub fn issue(
        &mut self,
        request: VerifiedKeyRequest,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<Committed<IssueWork>> {
        if !self.is_shared() {
            let decided = self.decide_issue(request, now, rng)?;
            return self.commit(decided);
        }
        let id = request.content().request_id();
        self.until_committed(|gk| {
            let shared = shared_of(&mut gk.store)?;
            if let Some(key_id) = shared.key_of_request(&id).map_err(storage_failed)? {
                let records = shared.load_key(&key_id).map_err(storage_failed)?;
                gk.ledger.refresh(&key_id, &records)?;
            }
            gk.decide_issue(request.clone(), now, rng)
        })
    }

    /// The serial stages of a release: [`Gatekeeper::decide_release`], then commit. On a
    /// shared store: read the key's state, decide, commit if the key is unchanged; else read
    /// and decide again, at most [`SHARED_ATTEMPTS`] times.
    pub fn release(&mut self, request: VerifiedReleaseRequest, now: UnixTime) -> Result<Committed<ReleaseWork>> {
        if !self.is_shared() {
            let decided = self.decide_release(request, now)?;
            return self.commit(decided);
        }
        let key_id = request.ticket().key_id;
        self.until_committed(|gk| {
            let records = shared_of(&mut gk.store)?.load_key(&key_id).map_err(storage_failed)?;
            gk.ledger.refresh(&key_id, &records)?;
            gk.decide_release(request.clone(), now)
        })
    }

    /// On a shared store: from an empty scratch ledger, `read_and_decide` reads what it needs
    /// and decides; the decision is committed if nothing it read changed meanwhile, else read
    /// and decided again, at most [`SHARED_ATTEMPTS`] times.
    fn until_committed<P>(
        &mut self,
        mut read_and_decide: impl FnMut(&mut Self) -> Result<Decided<Concrete, P>>,
    ) -> Result<Committed<P>> {
        for _ in 0..SHARED_ATTEMPTS {
            self.ledger.clear();
            let decided = read_and_decide(self);
            let committed = match decided {
                Ok(decided) => self.ledger.commit_if_unchanged(shared_of(&mut self.store)?, decided),
                Err(e) => Err(e),
            };
            self.ledger.clear();
            if let Some(committed) = committed? {
                return Ok(committed);
            }
            self.races_lost += 1;
        }
        Err(contended())
    }
}

fn shared_of<S: Store<Concrete>>(store: &mut S) -> Result<&mut dyn SharedStore<Concrete>> {
    store.shared().ok_or_else(|| reject(Rejection::StorageFailed, "the store is not shared"))
}

/// Reads and decisions per request on a shared store before giving up: each retry means
/// another gatekeeper committed a change to the same key meanwhile.
pub const SHARED_ATTEMPTS: usize = 16;

/// Keys swept per [`Gatekeeper::handle_timeout`] on a shared store.
pub const SWEEP_LIMIT: usize = 256;

fn storage_failed(e: crate::ledger::StoreError) -> crate::Error {
    reject(Rejection::StorageFailed, e.0)
}

fn contended() -> crate::Error {
    reject(Rejection::StorageFailed, "other gatekeepers kept changing this key: try again")
}
