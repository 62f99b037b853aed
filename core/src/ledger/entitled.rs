//! The crypto-free half of the gatekeeper's release (`docs/protocol.md` §12.4, §12.5.3): the
//! ledger's V21 to V24, then V26 on the labels the store recorded with the key, then V28.8 on
//! the request's access token, and the token's record in the release's own batch. Generic over
//! [`LedgerTypes`], so that the model checker runs it (`model/src/labels.rs`,
//! `model/src/replay.rs`) as the gatekeeper does (`role::gatekeeper`, which adds only the check
//! that its storage key unwraps the stored key).

use core::borrow::Borrow;
use core::hash::{Hash, Hasher};
use core::sync::atomic::{AtomicBool, Ordering};

use super::pipeline::{Decided, Granted, KeyDraw};
use super::round::{Decision, Release, View, storage_failed};
use super::store::Store;
use super::{KeyState, LedgerTypes, ReleaseFacts, ReleaseKind};
use crate::access::policy::{self, Entitlements, Policy};
use crate::access::token::TokenUse;
use crate::error::{Rejection, Result, reject};
use crate::time::UnixTime;

/// A release decision with V26 and V28.8: see the module's documentation. `P` is how the
/// policy is held (`&Policy` in the gatekeeper, `Arc<Policy>` where the round is kept).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntitledRelease<T: LedgerTypes, P> {
    key_id: T::KeyId,
    release: Release<T>,
    policy: P,
    held: Entitlements,
    token: Option<TokenUse>,
    /// Whether the store held the token's record when read.
    token_seen: Seen,
}

impl<T: LedgerTypes, P: Borrow<Policy>> EntitledRelease<T, P> {
    /// The release of `facts` to a requester holding `held` (its entitlements under
    /// `policy`, [`Policy::entitlements`]), with the record of its verified access token if
    /// the request carried one.
    pub fn new(facts: ReleaseFacts<T>, policy: P, held: Entitlements, token: Option<TokenUse>) -> Self {
        EntitledRelease {
            key_id: facts.key_id.clone(),
            release: Release::new(facts),
            policy,
            held,
            token,
            token_seen: Seen::default(),
        }
    }

    /// The key asked for.
    pub fn key_id(&self) -> &T::KeyId {
        &self.key_id
    }
}

impl<T: LedgerTypes, P: Borrow<Policy>> Decision<T> for EntitledRelease<T, P> {
    type Payload = Granted<T>;
    type Key = ();

    fn read<S: Store<T> + ?Sized>(&self, store: &mut S, view: &mut View<T>) -> Result<()> {
        if let Some(used) = &self.token {
            self.token_seen.set(store.token_used(used).map_err(storage_failed)?);
        }
        self.release.read(store, view)
    }

    /// V21 to V24 (the ledger), then V26 for a labelled key and a requester that is not a
    /// gateway principal, then V28.8. The first failure is the answer; nothing is recorded.
    fn decide(
        &mut self,
        view: &View<T>,
        draw: &mut dyn KeyDraw<T, Key = ()>,
        now: UnixTime,
    ) -> Result<Decided<T, Granted<T>>> {
        let decided = self.release.decide(view, draw, now)?;
        if decided.payload().kind != ReleaseKind::Gateway
            && let Some(KeyState::Pending(key) | KeyState::Retained { key, .. }) = view.ledger().state(&self.key_id)
            && !key.labels.is_empty()
            && !crate::planted::is(crate::planted::PlantedBug::EntitlementUnchecked)
        {
            policy::decide(self.policy.borrow(), &key.labels, &self.held)?;
        }
        // V28.8 (after V26): a token is used for one release only. This read is an early
        // answer; what guarantees it is the store, which refuses a batch whose token is
        // recorded (another instance may record it between this read and the write).
        if self.token_seen.get() {
            return Err(reject(Rejection::TokenReplayed, "this token was used before"));
        }
        Ok(decided)
    }

    fn tokens(&self) -> Vec<TokenUse> {
        if crate::planted::is(crate::planted::PlantedBug::TokenUseUnrecorded) {
            return Vec::new();
        }
        self.token.iter().cloned().collect()
    }
}

/// A flag set while reading (`Decision::read` takes `&self`), compared and hashed by its
/// value so that a round in progress can be a model checker's state (which must be `Sync`).
#[derive(Debug, Default)]
struct Seen(AtomicBool);

impl Seen {
    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, value: bool) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl Clone for Seen {
    fn clone(&self) -> Self {
        Seen(AtomicBool::new(self.get()))
    }
}

impl PartialEq for Seen {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Seen {}

impl Hash for Seen {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.get().hash(state);
    }
}
