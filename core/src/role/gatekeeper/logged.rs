//! The gatekeeper's decisions when it keeps an issuance log (`docs/protocol.md` §10): each
//! issuance and each release appends its entry ([`LogEntry`]) in the very batch of the records
//! it describes, so the store makes both durable at once or neither
//! ([`crate::ledger::Store::append_if_unchanged`]).
//!
//! An issue entry holds the SHA-256 of the ticket, and the ticket signs the grant's digest:
//! so a logged issuance builds its grant and ticket once the ledger has decided (the key is
//! drawn), before the write, and the response is the one built then. A lost race keeps the
//! drawn key (as an unlogged issuance does) and builds again; nothing built for a lost attempt
//! is sent or logged.

use std::sync::Arc;

use super::Issuance;
use super::build::IssueWork;
use super::config::GatekeeperConfig;
use super::verify::{GatekeeperCrypto, VerifiedKeyRequest, VerifiedReleaseRequest};
use crate::address::EmailAddress;
use crate::audit::{LogEntry, LogSalt};
use crate::crypto::CryptoRng;
use crate::error::Result;
use crate::ids::{Digest, KeyId, OneTimeKey};
use crate::ledger::round::{Decision, Issue, View};
use crate::ledger::{Concrete, Decided, Drawn, Granted, KeyDraw, ReleaseKind, Store};
use crate::time::UnixTime;

/// An issuance whose grant and ticket are built before its write, and whose issue entry is
/// written with its records.
pub(super) struct LoggedIssue<'a> {
    pub(super) inner: Issue<Concrete, OneTimeKey>,
    pub(super) crypto: Arc<GatekeeperCrypto>,
    pub(super) salt: LogSalt,
    pub(super) request: &'a VerifiedKeyRequest,
    /// The key's source (`None`: drawn fresh from `rng`).
    pub(super) draw: Option<&'a mut dyn KeyDraw<Concrete, Key = OneTimeKey>>,
    pub(super) rng: &'a mut dyn CryptoRng,
}

/// What a logged issuance decided: the key, the response built, its encoded entry.
pub(super) type Built = (Drawn<Concrete, OneTimeKey>, Issuance, Vec<u8>);

impl Decision<Concrete> for LoggedIssue<'_> {
    type Payload = Built;
    /// The key is drawn from the decision's own source: the round's draw is never called.
    type Key = ();

    fn read<S: Store<Concrete> + ?Sized>(&self, store: &mut S, view: &mut View<Concrete>) -> Result<()> {
        self.inner.read(store, view)
    }

    fn decide(
        &mut self,
        view: &View<Concrete>,
        _: &mut dyn KeyDraw<Concrete, Key = ()>,
        now: UnixTime,
    ) -> Result<Decided<Concrete, Built>> {
        let decided = match self.draw.as_deref_mut() {
            Some(draw) => self.inner.decide(view, draw, now)?,
            None => {
                let crypto = Arc::clone(&self.crypto);
                let mut fresh = crypto.draw_from(&mut *self.rng, now);
                self.inner.decide(view, &mut fresh, now)?
            }
        };
        let issuance = self.crypto.issuance_of(self.request, decided.payload(), now, &mut *self.rng)?;
        let recipients = &self.request.content().recipients;
        let entry = LogEntry::issue(&self.salt, now, issuance.key_id, &issuance.ticket, recipients)?.encode()?;
        Ok(decided.map(|drawn| (drawn, issuance, entry)))
    }

    fn log(&self, decided: &Decided<Concrete, Built>) -> Result<Vec<Vec<u8>>> {
        Ok(vec![decided.payload().2.clone()])
    }

    fn lost(&mut self, decided: Decided<Concrete, Built>) {
        self.inner.lost(decided.map(|(drawn, _, _)| drawn));
    }
}

impl LoggedIssue<'_> {
    /// The work a committed logged issuance hands to [`GatekeeperCrypto::build_issuance`].
    pub(super) fn work(request: VerifiedKeyRequest, built: Built, now: UnixTime) -> IssueWork {
        let (drawn, issuance, _) = built;
        IssueWork::new(request, drawn, now).with_built(issuance)
    }
}

/// What a release's entries need of its request, taken before the round (the request itself
/// goes to the response's work).
pub(super) struct ReleaseLog {
    pub(super) salt: LogSalt,
    pub(super) key_id: KeyId,
    pub(super) ticket_hash: Digest,
    pub(super) recipient_count: usize,
    /// The requester certificate's addresses (a gateway's entry names the gateway's).
    pub(super) requester: Vec<EmailAddress>,
    pub(super) now: UnixTime,
}

impl ReleaseLog {
    pub(super) fn of(salt: LogSalt, request: &VerifiedReleaseRequest, now: UnixTime) -> Self {
        let ticket = request.ticket();
        ReleaseLog {
            salt,
            key_id: ticket.key_id,
            ticket_hash: ticket.digest,
            recipient_count: ticket.request.recipients.len(),
            requester: request.requester_certificate().addresses.clone(),
            now,
        }
    }
}

impl ReleaseLog {
    /// The entries of a release decided as `granted`: one per listed address served, or the
    /// gateway principal's address for a gateway fetch.
    pub(super) fn entries(&self, config: &GatekeeperConfig, granted: &Granted<Concrete>) -> Result<Vec<Vec<u8>>> {
        let log = self;
        let gateway: Vec<EmailAddress>;
        let served: &[EmailAddress] = match granted.kind {
            ReleaseKind::Gateway => {
                // The gateway principal's address that the certificate carries (the ledger
                // matched one).
                let gateways = &config.gateways;
                gateway = log
                    .requester
                    .iter()
                    .find(|a| gateways.iter().any(|g| &g.address == *a))
                    .or(log.requester.first())
                    .cloned()
                    .into_iter()
                    .collect();
                &gateway
            }
            ReleaseKind::First | ReleaseKind::Redelivery => &granted.served,
        };
        served
            .iter()
            .map(|to| {
                LogEntry::release_hashed(&log.salt, log.now, log.key_id, log.ticket_hash, log.recipient_count, to)?
                    .encode()
            })
            .collect()
    }
}

impl GatekeeperCrypto {
    /// Signs a head of the issuance log with the gatekeeper's ticket key and certificate
    /// (`docs/protocol.md` §10.3).
    pub fn sign_tree_head(&self, head: &crate::audit::TreeHead, rng: &mut dyn CryptoRng) -> Result<Vec<u8>> {
        head.sign(self.provider, &self.credential, rng)
    }

    /// Opens a head this gatekeeper's current certificate signed (A2 against it alone).
    pub fn open_own_tree_head(&self, der: &[u8]) -> Result<crate::audit::TreeHead> {
        crate::audit::TreeHead::open(self.provider, der, &[self.credential.certificate_der().to_vec()])
    }
}
