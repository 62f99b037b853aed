//! Stage 1: verification (V1 to V13, V20), on the gatekeeper's immutable half, any thread.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::config::{GatekeeperConfig, StorageKey};
use crate::cms::signed;
use crate::crypto::CryptoProvider;
use crate::error::{Rejection, Result, reject};
use crate::ids::Digest;
use crate::ledger::{Concrete, Requester};
use crate::pki::{Credential, ValidatedCertificate};
use crate::role::ticket::{KeyRequestContent, ReleaseRequestContent, Ticket, check_skew};
use crate::time::UnixTime;
use crate::wire::{MAX_KEY_REQUEST_LEN, MAX_RELEASE_REQUEST_LEN, oid};

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

    /// The requester's certificate.
    pub fn requester_certificate(&self) -> &ValidatedCertificate {
        &self.requester
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
    pub(super) storage_key: StorageKey,
    /// Certificate paths validated before, by SHA-256 of the certificates offered (V5 to V8
    /// are a function of those bytes, the fixed anchors and `now`, so a result is reused
    /// while `now` stays within the path's validity).
    paths: Mutex<BTreeMap<Digest, ValidatedCertificate>>,
    /// SHA-256 of the tickets this gatekeeper signed: their signatures (and the sender's
    /// inside, verified at issuance) are not verified again at release.
    pub(super) issued_tickets: Mutex<BTreeSet<Digest>>,
}

/// Entries kept in each cache before it is emptied (a bound on memory, not a policy).
pub(super) const CACHE_BOUND: usize = 1 << 16;

impl GatekeeperCrypto {
    pub(super) fn new(
        provider: &'static dyn CryptoProvider,
        config: GatekeeperConfig,
        credential: Credential,
        storage_key: StorageKey,
    ) -> Self {
        GatekeeperCrypto {
            provider,
            config,
            credential,
            storage_key,
            paths: Mutex::default(),
            issued_tickets: Mutex::default(),
        }
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
        let validated = self.config.anchors.validate(p, &signed.signer, &signed.certificates, now)?;
        if let Ok(mut paths) = self.paths.lock() {
            if paths.len() >= CACHE_BOUND {
                paths.clear();
            }
            paths.insert(key, validated.clone());
        }
        Ok(validated)
    }

    /// V1 to V13 for a key request (`docs/protocol.md` §3.0.7).
    pub fn verify_key_request(&self, der: &[u8], now: UnixTime) -> Result<VerifiedKeyRequest> {
        let p = self.provider;
        // V1-V4: DER, profile, digest, signature.
        let signed = signed::open(p, der, oid::CT_KEY_REQUEST, MAX_KEY_REQUEST_LEN)?;
        // V5-V8: the sender's certificate.
        let sender = self.validate(&signed, now)?;
        // The eContent, and V9: every address parses.
        let content = KeyRequestContent::decode(&signed.content)?;
        // V10: the certificate names the request's sender.
        if !sender.addresses.contains(&content.sender) {
            return Err(reject(
                Rejection::SenderAddressMismatch,
                format!("{} is not in the certificate", content.sender),
            ));
        }
        // V11: policy recognises the sender.
        let recognised = self.config.senders.iter().any(|rule| {
            rule.domain.as_deref().is_none_or(|d| content.sender.in_domain(d))
                && rule.issuer.is_none_or(|i| i == sender.anchor)
        });
        if !recognised {
            return Err(reject(Rejection::SenderNotRecognised, content.sender.to_string()));
        }
        // V12: the recipient list.
        content.check_recipients(self.config.max_recipients)?;
        // V13: freshness, the request's own time first, then the signing time.
        check_skew(content.request_time, now, self.config.max_clock_skew_secs)?;
        check_skew(signed.signing_time, now, self.config.max_clock_skew_secs)?;
        Ok(VerifiedKeyRequest { der: der.to_vec(), digest: p.sha256(der), content, sender })
    }

    /// V1 to V8, V13 and V20 for a release request (`docs/protocol.md` §3.0.8); V21 to V24
    /// are the ledger's ([`super::Gatekeeper::decide_release`]).
    pub fn verify_release_request(&self, der: &[u8], now: UnixTime) -> Result<VerifiedReleaseRequest> {
        let p = self.provider;
        // V1-V4: the requester's SignedData.
        let signed = signed::open(p, der, oid::CT_RELEASE_REQUEST, MAX_RELEASE_REQUEST_LEN)?;
        // V5-V8: the requester's certificate.
        let requester = self.validate(&signed, now)?;
        let rr = ReleaseRequestContent::decode(&signed.content)?;
        // V13: freshness.
        check_skew(rr.request_time, now, self.config.max_clock_skew_secs)?;
        check_skew(signed.signing_time, now, self.config.max_clock_skew_secs)?;
        // V20: our own signature on the ticket (hashed once: for the lookup and the ticket).
        let digest = p.sha256(&rr.ticket_der);
        let known = self.issued_tickets.lock().is_ok_and(|t| t.contains(&digest));
        let ticket = Ticket::open_with(p, &rr.ticket_der, digest, !known)?;
        let ours = ticket.signer_der == self.credential.certificate_der();
        if !ours || ticket.gatekeeper_uri != self.config.uri {
            return Err(reject(Rejection::WrongGatekeeper, "ticket not signed by this gatekeeper"));
        }
        Ok(VerifiedReleaseRequest { digest: p.sha256(der), ticket, requester })
    }
}
