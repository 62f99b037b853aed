//! Stage 1: verification (V1 to V13, V20), on the gatekeeper's immutable half, any thread.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};

use super::config::GatekeeperConfig;
use super::credential::{self, CredentialStatus};
use super::custody::StorageKeys;
use crate::asn1::{MAX_KEY_REQUEST_LEN, MAX_RELEASE_REQUEST_LEN, oid};
use crate::cms::signed;
use crate::crypto::CryptoProvider;
use crate::crypto::pki::{Credential, Revocation, ValidatedCertificate};
use crate::error::{Rejection, Result, reject};
use crate::ids::Digest;
use crate::ledger::{Concrete, Requester};
use crate::planted::{self, PlantedBug as P};
use crate::role::ticket::{KeyRequestContent, ReleaseRequestContent, Ticket, check_skew};
use crate::time::UnixTime;

/// A key request whose every check passed (V1 to V13). Made only by
/// [`GatekeeperCrypto::verify_key_request`].
#[derive(Clone, Debug)]
pub struct VerifiedKeyRequest {
    der: Vec<u8>,
    digest: Digest,
    content: KeyRequestContent,
    sender: ValidatedCertificate,
}

impl VerifiedKeyRequest {
    /// The sender's signed request, byte for byte.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Its SHA-256.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Its content.
    pub fn content(&self) -> &KeyRequestContent {
        &self.content
    }

    /// The sender's certificate.
    pub fn sender(&self) -> &ValidatedCertificate {
        &self.sender
    }
}

/// A release request whose every check passed (V1 to V13, V20); the ledger's decision (V21
/// to V24) is still to come. Made only by [`GatekeeperCrypto::verify_release_request`].
#[derive(Clone, Debug)]
pub struct VerifiedReleaseRequest {
    digest: Digest,
    ticket: Ticket,
    requester: ValidatedCertificate,
    /// The access token it carried, verified (V28.1 to V28.7).
    token: Option<crate::access::token::VerifiedToken>,
}

impl VerifiedReleaseRequest {
    /// SHA-256 of the signed release request.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The ticket.
    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// The requester's certificate; its addresses are those V25 lets it use.
    pub fn requester_certificate(&self) -> &ValidatedCertificate {
        &self.requester
    }

    /// What the gatekeeper verified about the requester, for the subject mappings (V26):
    /// its certificate's facts (the addresses V25 let it use).
    pub fn subject_facts(&self) -> crate::access::policy::SubjectFacts {
        super::entitle::subject_facts(&self.requester, self.token.as_ref().map(|t| t.facts.clone()))
    }

    /// The access token it carried, verified (V28.1 to V28.7), if any.
    pub fn token(&self) -> Option<&crate::access::token::VerifiedToken> {
        self.token.as_ref()
    }

    /// The requester as the ledger sees it.
    pub fn requester(&self) -> Requester<Concrete> {
        Requester {
            cert: self.requester.id,
            addresses: self.requester.addresses.clone(),
            anchor: self.requester.anchor,
        }
    }
}

/// The gatekeeper's immutable half: configuration, credential, storage key, and every
/// crypto step. `Sync`: share it across threads.
#[derive(Debug)]
pub struct GatekeeperCrypto {
    pub(super) provider: &'static dyn CryptoProvider,
    config: GatekeeperConfig,
    pub(super) credential: Credential,
    pub(super) storage_keys: Box<dyn StorageKeys>,
    /// Certificate paths validated before, by SHA-256 of the certificates offered (V5 to V8
    /// are a function of those bytes, the fixed anchors and `now`, so a result is reused
    /// while `now` stays within the path's validity).
    paths: Mutex<BTreeMap<Digest, ValidatedCertificate>>,
    /// SHA-256 of the tickets this gatekeeper signed: their signatures (and the sender's
    /// inside, verified at issuance) are not verified again at release.
    pub(super) issued_tickets: Mutex<BTreeSet<Digest>>,
    /// The CRLs paths are checked against: the configuration's, until
    /// [`GatekeeperCrypto::reload_revocation`] replaces them.
    revocation: RwLock<Arc<Revocation>>,
    /// When the gatekeeper's own certificate and chain are valid (from, until), once
    /// checked: within it, an issuance does not check again.
    credential_holds: Mutex<Option<(UnixTime, UnixTime)>>,
    /// The token issuers' keys (V28.3): none until the service gives its cache.
    token_keys: RwLock<Arc<dyn crate::access::token::TokenKeys>>,
}

/// `bound`, or one byte more if `bug` is planted.
fn max_len(bound: usize, bug: P) -> usize {
    if planted::is(bug) { bound + 1 } else { bound }
}

/// Entries kept in each cache before it is emptied (a bound on memory, not a policy).
pub(super) const CACHE_BOUND: usize = 1 << 16;

impl GatekeeperCrypto {
    pub(super) fn new(
        provider: &'static dyn CryptoProvider,
        config: GatekeeperConfig,
        credential: Credential,
        storage_keys: Box<dyn StorageKeys>,
    ) -> Self {
        let revocation = RwLock::new(Arc::new(config.anchors.revocation().clone()));
        GatekeeperCrypto {
            provider,
            config,
            credential,
            storage_keys,
            paths: Mutex::default(),
            issued_tickets: Mutex::default(),
            revocation,
            credential_holds: Mutex::default(),
            token_keys: RwLock::new(Arc::new(crate::access::token::NoTokenKeys)),
        }
    }

    /// Where the token issuers' keys come from (the service's JWK Set cache).
    pub fn set_token_keys(&self, keys: Arc<dyn crate::access::token::TokenKeys>) {
        if let Ok(mut k) = self.token_keys.write() {
            *k = keys;
        }
    }

    /// V28.1 to V28.7 on a release request's token; from then on the requester's addresses
    /// are only the one the token's subject maps to.
    fn verify_token(
        &self,
        token: &str,
        requester: &mut ValidatedCertificate,
        ticket: &Ticket,
        now: UnixTime,
    ) -> Result<crate::access::token::VerifiedToken> {
        let listed: Vec<crate::address::EmailAddress> =
            requester.addresses.iter().filter(|a| ticket.request.recipients.contains(a)).cloned().collect();
        let context = crate::access::token::TokenContext {
            issuers: &self.config.token_issuers,
            listed: &listed,
            skew_secs: self.config.max_clock_skew_secs,
            max_lifetime_secs: self.config.ticket_lifetime_secs,
        };
        let keys = self
            .token_keys
            .read()
            .map(|k| Arc::clone(&k))
            .map_err(|_| reject(Rejection::TokenKeyUnknown, "the key cache is unavailable"))?;
        let verified = crate::access::token::verify(self.provider, token, &context, keys.as_ref(), now)?;
        requester.addresses = vec![verified.address.clone()];
        Ok(verified)
    }

    /// Replaces the CRLs every later path (and the gatekeeper's own credential) is checked
    /// against, e.g. after the operator's files were re-read; cached paths are forgotten.
    pub fn reload_revocation(&self, revocation: Revocation) {
        if let Ok(mut r) = self.revocation.write() {
            *r = Arc::new(revocation);
        }
        if let Ok(mut paths) = self.paths.lock() {
            paths.clear();
        }
    }

    /// The CRLs in force.
    pub fn revocation(&self) -> Arc<Revocation> {
        self.revocation.read().map(|r| Arc::clone(&r)).unwrap_or_default()
    }

    /// Every rule on the gatekeeper's own credential at `now`, with the CRLs in force
    /// ([`super::check_credential`]): for the start-up check, after a reload of the CRLs,
    /// for metrics and expiry warnings.
    pub fn check_credential(&self, now: UnixTime) -> Result<CredentialStatus> {
        credential::check_with(self.provider, &self.config, &self.credential, &self.revocation(), now)
    }

    /// The credential check before an issuance: its certificate and chain valid at `now`
    /// (its profile was checked at start).
    fn own_credential(&self, now: UnixTime) -> Result<()> {
        if let Ok(holds) = self.credential_holds.lock()
            && holds.is_some_and(|(from, until)| from <= now && now <= until)
        {
            return Ok(());
        }
        let window = credential::check_validity(&self.credential, now)?;
        if let Ok(mut holds) = self.credential_holds.lock() {
            *holds = Some(window);
        }
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &GatekeeperConfig {
        &self.config
    }

    /// The gatekeeper's certificate.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// V5 to V8, through the path cache (keyed by the certificates' bytes as carried).
    fn validate(&self, signed: &signed::SignedObject, now: UnixTime) -> Result<ValidatedCertificate> {
        let p = self.provider;
        let mut bytes = signed.signer_der.clone();
        for c in &signed.certificates_der {
            bytes.extend_from_slice(c);
        }
        let key = p.sha256(&bytes);
        if let Ok(paths) = self.paths.lock()
            && let Some(v) = paths.get(&key)
            && v.valid_from <= now
            && now <= v.valid_until
        {
            return Ok(v.clone());
        }
        let validated =
            self.config.anchors.validate_with(p, &signed.signer, &signed.certificates, &self.revocation(), now)?;
        if let Ok(mut paths) = self.paths.lock() {
            if paths.len() >= CACHE_BOUND {
                paths.clear();
            }
            paths.insert(key, validated.clone());
        }
        Ok(validated)
    }

    /// V1 to V13 for a key request (`docs/protocol.md` §3.0.7), then L3 on the gatekeeper's
    /// own certificate at `now` (a ticket every client would refuse for its signer's validity
    /// is never issued).
    pub fn verify_key_request(&self, der: &[u8], now: UnixTime) -> Result<VerifiedKeyRequest> {
        let p = self.provider;
        // V1-V4: DER, profile, digest, signature.
        let signed = signed::open_with(
            p,
            der,
            oid::CT_KEY_REQUEST,
            max_len(MAX_KEY_REQUEST_LEN, P::KeyRequestSizePlusOne),
            !planted::is(P::SignatureUnchecked),
        )?;
        // V5-V8: the sender's certificate.
        let sender = self.validate(&signed, now)?;
        // The eContent, and V9: every address parses.
        let content = KeyRequestContent::decode(&signed.content)?;
        // V10: the certificate names the request's sender.
        if !sender.addresses.contains(&content.sender) && !planted::is(P::SenderAddressUnchecked) {
            return Err(reject(
                Rejection::SenderAddressMismatch,
                format!("{} is not in the certificate", content.sender),
            ));
        }
        // V11: policy recognises the sender.
        let recognised = self.config.senders.iter().any(|rule| {
            rule.domain.as_deref().is_none_or(|d| {
                content.sender.in_domain(d)
                    || (planted::is(P::SubdomainSenders) && content.sender.domain().ends_with(&format!(".{d}")))
            }) && (rule.issuer.is_none_or(|i| i == sender.anchor) || planted::is(P::SenderIssuerUnchecked))
        });
        if !recognised {
            return Err(reject(Rejection::SenderNotRecognised, content.sender.to_string()));
        }
        // V12: the recipient list.
        content.check_recipients(self.config.max_recipients)?;
        // V27: a list agent's expansion history (depth, loops, its own entry last).
        crate::role::check_history(&content.sender, &content.recipients, &content.expansion)?;
        // V13: freshness, the request's own time first, then the signing time.
        if !planted::is(P::RequestTimeUnchecked) {
            check_skew(content.request_time, now, self.config.max_clock_skew_secs)?;
        }
        if !planted::is(P::SigningTimeUnchecked) {
            check_skew(signed.signing_time, now, self.config.max_clock_skew_secs)?;
        }
        // L3: a ticket is signed only by a certificate valid now.
        if !planted::is(P::GatekeeperCredentialUnchecked) {
            self.own_credential(now)?;
        }
        // V15: the labels are defined and the sender holds them.
        super::entitle::check_issue(&self.config, &content, &sender)?;
        Ok(VerifiedKeyRequest { der: der.to_vec(), digest: p.sha256(der), content, sender })
    }

    /// V1 to V8, V13, V20 and V25 for a release request (`docs/protocol.md` §3.0.8); V21 to
    /// V24 are the ledger's ([`Ledger::decide_release`](crate::ledger::Ledger::decide_release)).
    pub fn verify_release_request(&self, der: &[u8], now: UnixTime) -> Result<VerifiedReleaseRequest> {
        let p = self.provider;
        // V1-V4: the requester's SignedData.
        let signed = signed::open_with(
            p,
            der,
            oid::CT_RELEASE_REQUEST,
            max_len(MAX_RELEASE_REQUEST_LEN, P::ReleaseRequestSizePlusOne),
            !planted::is(P::SignatureUnchecked),
        )?;
        // V5-V8: the requester's certificate.
        let mut requester = self.validate(&signed, now)?;
        let rr = ReleaseRequestContent::decode(&signed.content)?;
        // V13: freshness.
        if !planted::is(P::ReleaseFreshnessUnchecked) {
            check_skew(rr.request_time, now, self.config.max_clock_skew_secs)?;
            check_skew(signed.signing_time, now, self.config.max_clock_skew_secs)?;
        }
        // V20: our own signature on the ticket (hashed once: for the lookup and the ticket).
        let digest = p.sha256(&rr.ticket_der);
        let known = self.issued_tickets.lock().is_ok_and(|t| t.contains(&digest));
        let ticket = Ticket::open_with(p, &rr.ticket_der, digest, !known && !planted::is(P::TicketSignatureUnchecked))?;
        // Ours: signed under the current certificate or one it replaced (a renewal or a key
        // rotation), and naming this gatekeeper's URI.
        let ours = ticket.signer_der == self.credential.certificate_der()
            || (self.config.retired.iter().any(|r| r.der == ticket.signer_der)
                && !planted::is(P::RetiredCertificatesRefused))
            || planted::is(P::TicketUriOnly)
            || planted::is(P::ForgedTicketServed);
        if !ours || (ticket.gatekeeper_uri != self.config.uri && !planted::is(P::TicketSignerOnly)) {
            return Err(reject(Rejection::WrongGatekeeper, "ticket not signed by this gatekeeper"));
        }
        // V25: the anchor may certify the listed addresses it is asked for.
        self.bind_to_domains(&mut requester, &ticket)?;
        if planted::is(P::LocalPartCaseInsensitive) {
            for a in &mut requester.addresses {
                let same = |l: &&crate::address::EmailAddress| l.to_string().eq_ignore_ascii_case(&a.to_string());
                if let Some(listed) = ticket.request.recipients.iter().find(same) {
                    *a = listed.clone();
                }
            }
        }
        // V28.1 to V28.7: the access token, if any.
        let token = match &rr.access_token {
            Some(t) => Some(self.verify_token(t, &mut requester, &ticket, now)?),
            None => None,
        };
        Ok(VerifiedReleaseRequest { digest: p.sha256(der), ticket, requester, token })
    }

    /// V25: unless the requester is a gateway principal (whose address and anchor are
    /// configured together), only the addresses its anchor may certify count; if it has
    /// listed addresses and none of them counts, `anchor_not_allowed_for_domain`.
    fn bind_to_domains(&self, requester: &mut ValidatedCertificate, ticket: &Ticket) -> Result<()> {
        let config = &self.config;
        let gateway =
            config.gateways.iter().any(|g| g.issuer == requester.anchor && requester.addresses.contains(&g.address));
        if gateway || config.recipients.is_empty() || planted::is(P::AnchorDomainsUnchecked) {
            return Ok(());
        }
        let anchor = requester.anchor;
        let listed: Vec<&crate::address::EmailAddress> =
            requester.addresses.iter().filter(|a| ticket.request.recipients.contains(a)).collect();
        if !listed.is_empty() && !listed.iter().any(|a| config.may_certify(anchor, a)) {
            return Err(reject(
                Rejection::AnchorNotAllowedForDomain,
                format!(
                    "the certificate's anchor may not certify {}",
                    listed.first().map(|a| a.domain()).unwrap_or("")
                ),
            ));
        }
        requester.addresses.retain(|a| config.may_certify(anchor, a));
        Ok(())
    }
}
