//! Stage 4: the responses' crypto, built only from a [`Committed`] decision; and the key
//! drawing of stage 2.

use super::verify::{CACHE_BOUND, GatekeeperCrypto, VerifiedKeyRequest, VerifiedReleaseRequest};
use super::{Issuance, Release};
use crate::asn1::oid;
use crate::cms::{envelope, signed};
use crate::crypto::CryptoRng;
use crate::error::Result;
use crate::ids::{KEY_ID_LEN, KeyId, OneTimeKey, StorageEpoch, StoredKey, WrappedKey};
use crate::ledger::{Committed, Concrete, Drawn, Granted, KeyDraw};
use crate::planted::{self, PlantedBug as P};
use crate::role::ticket::{encode_delivery, encode_ticket_info};
use crate::time::UnixTime;

/// An issuance decided: the verified request, the drawn key, the time it was decided; and,
/// when the gatekeeper keeps an issuance log, the response built before the commit (its
/// ticket's hash is in the log entry committed with the records).
#[derive(Debug)]
pub struct IssueWork {
    request: VerifiedKeyRequest,
    drawn: Drawn<Concrete, OneTimeKey>,
    issued_at: UnixTime,
    built: Option<Issuance>,
}

impl IssueWork {
    pub(super) fn new(request: VerifiedKeyRequest, drawn: Drawn<Concrete, OneTimeKey>, issued_at: UnixTime) -> Self {
        IssueWork { request, drawn, issued_at, built: None }
    }

    pub(super) fn with_built(mut self, built: Issuance) -> Self {
        self.built = Some(built);
        self
    }

    /// The key id drawn.
    pub fn key_id(&self) -> &KeyId {
        &self.drawn.key_id
    }

    /// The ticket's expiry.
    pub fn expires_at(&self) -> UnixTime {
        self.drawn.expires_at
    }
}

/// A release decided: the verified request and what the ledger granted.
#[derive(Debug)]
pub struct ReleaseWork {
    request: VerifiedReleaseRequest,
    granted: Granted<Concrete>,
}

impl ReleaseWork {
    pub(super) fn new(request: VerifiedReleaseRequest, granted: Granted<Concrete>) -> Self {
        ReleaseWork { request, granted }
    }

    /// What the ledger granted (kind, addresses served).
    pub fn granted(&self) -> &Granted<Concrete> {
        &self.granted
    }
}

/// Draws a fresh key id and key from an RNG and wraps the key under the storage key.
pub struct DrawFromRng<'a> {
    crypto: &'a GatekeeperCrypto,
    rng: &'a mut dyn CryptoRng,
    /// The storage epoch of the issuance.
    epoch: u64,
}

impl KeyDraw<Concrete> for DrawFromRng<'_> {
    type Key = OneTimeKey;

    fn draw(&mut self) -> Result<(KeyId, StoredKey, OneTimeKey)> {
        let p = self.crypto.provider;
        let rng = &mut *self.rng;
        let (mut key_id, mut key) = draw_fresh(|bytes| p.fill_random(rng, bytes));
        if planted::is(P::OneKeyForAll) {
            key = OneTimeKey::from_bytes([0x42; crate::ids::KEY_LEN]);
        }
        if planted::is(P::SequentialKeyIds) {
            key_id = KeyId([0; KEY_ID_LEN]);
            let counter = planted::next_in_sequence().to_be_bytes();
            for (d, s) in key_id.0.iter_mut().rev().zip(counter.iter().rev()) {
                *d = *s;
            }
        }
        if planted::is(P::KeysStoredInClear) {
            let mut clear = [0u8; crate::ids::KEY_LEN + 8];
            for (d, s) in clear.iter_mut().zip(key.expose()) {
                *d = *s;
            }
            let epoch = if self.crypto.storage_keys.has_epochs() {
                StorageEpoch::Numbered(self.epoch)
            } else {
                StorageEpoch::Legacy
            };
            return Ok((key_id, StoredKey { epoch, wrapped: WrappedKey(clear) }, key));
        }
        let handle = self.crypto.storage_keys.wrap(p, self.epoch, &key, rng)?;
        Ok((key_id, handle, key))
    }
}

/// The fresh values of one issuance, as every gatekeeper draws them: the key id, then the
/// key, each filled by `fill`. A gatekeeper fills them from its RNG; the model checker
/// (`ekg-model`) fills them with fresh symbols and checks that no two issuances share either
/// value, on what this function returned.
pub fn draw_fresh(mut fill: impl FnMut(&mut [u8])) -> (KeyId, OneTimeKey) {
    let mut id = [0u8; KEY_ID_LEN];
    fill(&mut id);
    let key = OneTimeKey::filled_by(|bytes| fill(bytes));
    (KeyId(id), key)
}

impl GatekeeperCrypto {
    /// The key drawing of stage 2 for an issuance at `now`, from `rng`: the key is wrapped
    /// under the storage key of `now`'s epoch.
    pub fn draw_from<'a>(&'a self, rng: &'a mut dyn CryptoRng, now: UnixTime) -> DrawFromRng<'a> {
        DrawFromRng { crypto: self, rng, epoch: StorageEpoch::of(now, self.config().storage_epoch_secs) }
    }

    /// The grant (key encrypted to the sender) and the ticket (signed request, key id, URI,
    /// times, policy, grant digest), signed once. A logged issuance's response was built
    /// before its commit (its ticket's hash is in the log): it is returned as built.
    pub fn build_issuance(&self, committed: Committed<IssueWork>, rng: &mut dyn CryptoRng) -> Result<Issuance> {
        let IssueWork { request, drawn, issued_at, built } = committed.into_payload();
        let issuance = match built {
            Some(issuance) => issuance,
            None => self.issuance_of(&request, &drawn, issued_at, rng)?,
        };
        // Only a ticket that leaves here counts as issued (one built for a lost race never
        // does).
        if let Ok(mut t) = self.issued_tickets.lock() {
            if t.len() >= CACHE_BOUND {
                t.clear();
            }
            t.insert(self.provider.sha256(&issuance.ticket));
        }
        Ok(issuance)
    }

    /// The grant and ticket of a decided issuance (before or after its commit; sent only
    /// after it).
    pub(super) fn issuance_of(
        &self,
        request: &VerifiedKeyRequest,
        drawn: &Drawn<Concrete, OneTimeKey>,
        issued_at: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<Issuance> {
        let p = self.provider;
        let digest =
            if planted::is(P::GrantDigestWrong) { p.sha256(&request.content().encode()?) } else { *request.digest() };
        let delivery = encode_delivery(&drawn.key_id, &drawn.key, &digest, &request.content().sender.to_string())?;
        let grant = envelope::seal_to(p, &request.sender().certificate, oid::CT_KEY_DELIVERY, &delivery, rng)?;
        let info = encode_ticket_info(
            &drawn.key_id,
            &self.config().uri,
            request.der(),
            issued_at,
            drawn.expires_at,
            self.config().policy,
            &p.sha256(&grant),
        )?;
        let ticket = signed::sign(p, &self.credential, oid::CT_TICKET, &info, issued_at, rng)?;
        Ok(Issuance { key_id: drawn.key_id, grant, ticket, expires_at: drawn.expires_at })
    }

    /// The release: the key, unwrapped from storage, in a gatekeeper-signed key delivery,
    /// encrypted to the requester's certificate.
    pub fn build_release(
        &self,
        committed: Committed<ReleaseWork>,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<Release> {
        let ReleaseWork { request, granted } = committed.into_payload();
        let p = self.provider;
        let key = match self.storage_keys.unwrap(p, &granted.handle) {
            Err(_) if planted::is(P::KeysStoredInClear) => granted
                .handle
                .wrapped
                .0
                .get(..crate::ids::KEY_LEN)
                .and_then(OneTimeKey::from_slice)
                .ok_or_else(|| crate::error::reject(crate::error::Rejection::KeyUnwrapFailed, "clear key"))?,
            unwrapped => unwrapped?,
        };
        let requester = request.requester_certificate();
        let to = granted.served.first().or(requester.addresses.first()).map(|a| a.to_string()).unwrap_or_default();
        let key_id = request.ticket().key_id;
        let digest = if planted::is(P::ReleaseDigestWrong) { request.ticket().digest } else { *request.digest() };
        let delivery = encode_delivery(&key_id, &key, &digest, &to)?;
        let signed_delivery = signed::sign_secret(p, &self.credential, oid::CT_KEY_DELIVERY, &delivery, now, rng)?;
        let der = envelope::seal_to(p, &requester.certificate, oid::ID_SIGNED_DATA, &signed_delivery, rng)?;
        Ok(Release { key_id, der, kind: granted.kind, served: granted.served })
    }
}
