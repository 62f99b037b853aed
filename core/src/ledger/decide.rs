//! The gatekeeper's decisions: issue (V14 and a fresh key), release (V21 to V24), and what is
//! due at a time (expiry, end of retention, purge). Each reads the state and returns a
//! [`Decided`]; nothing changes until [`Ledger::commit`].

use super::pipeline::{Decided, Drawn, Granted, KeyDraw};
use super::{
    Delivery, DestroyReason, KeyState, Ledger, LedgerTypes, Record, ReleaseKind, ReleasePolicy, RequestRecord,
    Requester,
};
use crate::access::policy::AttributeValue;
use crate::error::{Rejection, Result, reject};
use crate::planted::{PlantedBug as P, is as planted};
use crate::time::UnixTime;

/// What verification established about a key request (V1 to V13), for the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IssueFacts<T: LedgerTypes> {
    /// What identifies the request (V14).
    pub request: T::RequestId,
    /// Its signed request time.
    pub request_time: UnixTime,
    /// The sender.
    pub sender: T::Address,
    /// The recipients, distinct (V12).
    pub recipients: Vec<T::Address>,
    /// The release policy of the ticket.
    pub policy: ReleasePolicy,
    /// The ticket's expiry.
    pub expires_at: UnixTime,
    /// The request's security labels (recorded with the key).
    pub labels: Vec<AttributeValue>,
}

/// What verification established about a release request (V1 to V13, V20), for the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReleaseFacts<T: LedgerTypes> {
    /// The ticket's key id.
    pub key_id: T::KeyId,
    /// The addresses the ticket lists.
    pub listed: Vec<T::Address>,
    /// The ticket's expiry.
    pub expires_at: UnixTime,
    /// Who asks.
    pub requester: Requester<T>,
}

/// A key request whose checks passed (V1 to V13), as the ledger reads it: the gatekeeper's
/// verified request, or the model's symbolic one.
pub trait VerifiedIssue<T: LedgerTypes> {
    /// What identifies it (V14): its signed sender and nonce.
    fn request_id(&self) -> T::RequestId;
    /// Its signed request time.
    fn request_time(&self) -> UnixTime;
    /// The sender.
    fn sender(&self) -> T::Address;
    /// The listed recipients, as signed.
    fn recipients(&self) -> Vec<T::Address>;
    /// Its security labels, as signed (none by default: the model's requests carry none).
    fn labels(&self) -> Vec<AttributeValue> {
        Vec::new()
    }
}

/// A release request whose checks passed (V1 to V13, V20), as the ledger reads it.
pub trait VerifiedRelease<T: LedgerTypes> {
    /// The ticket's key id.
    fn key_id(&self) -> T::KeyId;
    /// The ticket's expiry.
    fn ticket_expiry(&self) -> UnixTime;
    /// The addresses the ticket lists.
    fn listed(&self) -> Vec<T::Address>;
    /// Who asks, as its certificate says.
    fn requester(&self) -> Requester<T>;
}

/// What an issuance takes from the gatekeeper's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IssueRules {
    /// The release policy of new tickets (recorded with the key: a release follows the policy
    /// recorded, not the one configured at the time of the release).
    pub policy: ReleasePolicy,
    /// How long a ticket lives, from its issuance.
    pub ticket_lifetime_secs: u64,
}

impl<T: LedgerTypes> IssueFacts<T> {
    /// The facts of an issuance decided at `now`: the request's, the configured policy, and
    /// the ticket's one expiry, `now` plus the lifetime (the gatekeeper's clock, never the
    /// request's signed time).
    pub fn of(request: &impl VerifiedIssue<T>, rules: IssueRules, now: UnixTime) -> Self {
        let from = if planted(P::ExpiryFromRequestTime) { request.request_time() } else { now };
        let lifetime = rules.ticket_lifetime_secs.saturating_sub(u64::from(planted(P::TicketLifetimeShort)));
        IssueFacts {
            request: request.request_id(),
            request_time: request.request_time(),
            sender: request.sender(),
            recipients: request.recipients(),
            policy: rules.policy,
            expires_at: from.plus_secs(lifetime),
            labels: request.labels(),
        }
    }
}

impl<T: LedgerTypes> ReleaseFacts<T> {
    /// The facts of a release request.
    pub fn of(request: &impl VerifiedRelease<T>) -> Self {
        ReleaseFacts {
            key_id: request.key_id(),
            listed: request.listed(),
            expires_at: request.ticket_expiry(),
            requester: request.requester(),
        }
    }
}

impl<T: LedgerTypes> Ledger<T> {
    /// V14, then a fresh key from `draw`, then the `Issued` record. A request whose id was
    /// answered and is still remembered is `duplicate_request` (nothing is drawn); a drawn key
    /// id the ledger knows is `key_id_collision` (L2).
    pub fn decide_issue<D: KeyDraw<T>>(
        &self,
        facts: IssueFacts<T>,
        draw: &mut D,
        now: UnixTime,
    ) -> Result<Decided<T, Drawn<T, D::Key>>> {
        let request = match self.config.request_window_secs {
            Some(_) if !planted(P::V14Skipped) && !planted(P::V14InMemory) => {
                // Refused while remembered, not only within the window: past the window the
                // same id with a fresh request time (a reused nonce) would pass V13, and a
                // second key for one request id would leave one of the two keys out of V14's
                // index (found by the model checker, docs/model.md F8).
                if self.requests.contains_key(&facts.request) {
                    return Err(reject(Rejection::DuplicateRequest, "this request was already answered"));
                }
                Some(RequestRecord { id: facts.request, time: facts.request_time })
            }
            _ => None,
        };
        if facts.recipients.is_empty() {
            return Err(Rejection::NoRecipients.into());
        }
        let mut seen = std::collections::BTreeSet::new();
        if !facts.recipients.iter().all(|r| seen.insert(r)) {
            return Err(Rejection::DuplicateRecipient.into());
        }
        let (key_id, handle, key) = draw.draw()?;
        if self.keys.contains_key(&key_id) {
            return Err(reject(Rejection::KeyIdCollision, "key id already known"));
        }
        let record = Record::Issued {
            key_id: key_id.clone(),
            handle,
            sender: facts.sender,
            recipients: facts.recipients,
            policy: facts.policy,
            issued_at: now,
            expires_at: facts.expires_at,
            request,
            labels: facts.labels,
        };
        Ok(Decided::new(vec![record], Drawn { key_id, key, expires_at: facts.expires_at }))
    }

    /// V21 (the ticket's expiry), V22 (a gateway principal, or a listed address), V23 (the
    /// key known and live), V24 (the policy): may the requester have the key at `now`?
    pub fn decide_release(&self, facts: &ReleaseFacts<T>, now: UnixTime) -> Result<Decided<T, Granted<T>>> {
        let expired = |at: UnixTime| {
            !planted(P::ExpiryUncheckedAtRelease) && (now > at || (now == at && !planted(P::FetchAtExpiryServed)))
        };
        if expired(facts.expires_at) {
            return Err(Rejection::TicketExpired.into());
        }
        let requester = &facts.requester;
        let is_gateway = self.gateways.iter().any(|g| {
            (g.issuer == requester.anchor || planted(P::GatewayAnyAnchor)) && requester.addresses.contains(&g.address)
        }) && !(planted(P::GatewayCountedAsRecipient)
            && requester.addresses.iter().any(|a| facts.listed.contains(a)));
        let key_id = &facts.key_id;
        if planted(P::KeyBeforeListed) && !self.keys.contains_key(key_id) {
            return Err(Rejection::KeyUnknown.into());
        }
        if !is_gateway && !requester.addresses.iter().any(|a| facts.listed.contains(a)) {
            return Err(reject(Rejection::RecipientNotListed, "no address of the certificate is listed"));
        }
        let (key, retained) = match self.keys.get(key_id) {
            None => return Err(Rejection::KeyUnknown.into()),
            Some(KeyState::Destroyed(_)) if planted(P::DestroyedReportedUnknown) => {
                return Err(Rejection::KeyUnknown.into());
            }
            Some(KeyState::Destroyed(_)) => return Err(Rejection::KeyDestroyed.into()),
            Some(KeyState::Pending(key)) => (key, None),
            Some(KeyState::Retained { key, until }) => (key, Some(*until)),
        };
        if expired(key.expires_at) {
            return Err(Rejection::TicketExpired.into());
        }
        if retained.is_some_and(|until| now > until || (now == until && !planted(P::RetentionEndServed))) {
            return Err(reject(Rejection::KeyDestroyed, "retention ended"));
        }
        if is_gateway {
            let granted = Granted { handle: key.handle.clone(), served: vec![], kind: ReleaseKind::Gateway };
            return Ok(Decided::new(vec![], granted));
        }
        let mut served = Vec::new();
        let mut first = false;
        let mut refusal = None;
        // Planted bugs that serve without a record (the record would not apply).
        let mut unrecorded = Vec::new();
        for address in &requester.addresses {
            let Some(delivery) = key.recipients.get(address) else {
                if planted(P::ForgedTicketServed) && facts.listed.contains(address) {
                    unrecorded.push(address.clone());
                }
                continue;
            };
            let outcome = match (delivery, key.policy) {
                (Delivery::Owed, _) => Ok(true),
                (Delivery::Released { cert, .. }, ReleasePolicy::Once)
                    if planted(P::OncePerCertificate) && *cert != requester.cert =>
                {
                    unrecorded.push(address.clone());
                    continue;
                }
                (Delivery::Released { cert, .. }, ReleasePolicy::Once)
                    if planted(P::OnceAsSameCertificate) && *cert == requester.cert =>
                {
                    Ok(false)
                }
                (Delivery::Released { cert, .. }, ReleasePolicy::SameCertificate)
                    if planted(P::OtherCertificateServed) && *cert != requester.cert =>
                {
                    unrecorded.push(address.clone());
                    continue;
                }
                (Delivery::Released { .. }, ReleasePolicy::Once) => Err(Rejection::AlreadyReleased),
                (Delivery::Released { cert, .. }, ReleasePolicy::SameCertificate) if *cert != requester.cert => {
                    Err(Rejection::ReleasedToOtherCertificate)
                }
                (Delivery::Released { deliveries, .. }, ReleasePolicy::SameCertificate) => {
                    let limit =
                        self.config.max_deliveries.saturating_add(u32::from(planted(P::RedeliveryLimitPlusOne)));
                    if *deliveries >= limit { Err(Rejection::RedeliveryLimit) } else { Ok(false) }
                }
            };
            match outcome {
                Ok(is_first) => {
                    first |= is_first;
                    served.push(address.clone());
                }
                Err(r) => refusal = refusal.or(Some(r)),
            }
        }
        if served.is_empty() && !unrecorded.is_empty() {
            let granted = Granted { handle: key.handle.clone(), served: unrecorded, kind: ReleaseKind::Redelivery };
            return Ok(Decided::new(vec![], granted));
        }
        if served.is_empty() {
            return Err(refusal.unwrap_or(Rejection::RecipientNotListed).into());
        }
        let mut records = vec![Record::Released {
            key_id: key_id.clone(),
            addresses: served.clone(),
            cert: requester.cert.clone(),
            at: now,
        }];
        let complete = key.recipients.iter().all(|(a, d)| !matches!(d, Delivery::Owed) || served.contains(a));
        if complete
            && retained.is_none()
            && (self.config.retention_secs == 0 || planted(P::RetentionIgnored))
            && !planted(P::NotDestroyedWhenReleased)
        {
            records.push(Record::Destroyed {
                key_id: key_id.clone(),
                at: now,
                expires_at: key.expires_at,
                reason: DestroyReason::AllReleased,
                request: key.request.clone(),
            });
        }
        if planted(P::ReleaseNotRecorded) {
            records.clear();
        }
        let kind = if first { ReleaseKind::First } else { ReleaseKind::Redelivery };
        Ok(Decided::new(records, Granted { handle: key.handle.clone(), served, kind }))
    }

    /// When the next expiry, end of retention or purge is due (`None`: no key is held).
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// What is due at `now`: destruction at expiry and at the end of retention, purging of
    /// tombstones. Only the keys whose deadline passed are looked at, in deadline order.
    pub fn decide_expiry(&self, now: UnixTime) -> Decided<T, ()> {
        let mut records = Vec::new();
        let due = now.plus_secs(u64::from(planted(P::SweepOneSecondEarly)));
        for (_, key_id) in self.deadlines.iter().take_while(|(t, _)| *t <= due) {
            let Some(state) = self.keys.get(key_id) else { continue };
            let key_id = key_id.clone();
            match state {
                KeyState::Pending(key) | KeyState::Retained { key, .. }
                    if due >= key.expires_at && !planted(P::NoExpirySweep) =>
                {
                    records.push(Record::Destroyed {
                        key_id,
                        at: now,
                        expires_at: key.expires_at,
                        reason: DestroyReason::Expired,
                        request: key.request.clone(),
                    });
                }
                KeyState::Retained { key, until } if now >= *until && !planted(P::RetentionNeverSwept) => {
                    records.push(Record::Destroyed {
                        key_id,
                        at: now,
                        expires_at: key.expires_at,
                        reason: DestroyReason::AllReleased,
                        request: key.request.clone(),
                    });
                }
                KeyState::Destroyed(t) if now >= t.purge_at() => records.push(Record::Purged { key_id }),
                _ => {}
            }
        }
        Decided::new(records, ())
    }
}
