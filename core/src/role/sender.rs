//! The sender: asks its gatekeeper for a key, opens the grant, seals the message.
//!
//! # Driving it
//! 1. [`Sender::request_key`] with the recipients' addresses (no keys): send
//!    [`PendingKeyRequest::der`] to the gatekeeper, keep the pending request.
//! 2. [`Sender::accept_grant`] with the gatekeeper's grant and ticket: checks (C1 to C3) and
//!    returns the [`SendKey`].
//! 3. [`Sender::seal`] the message once, for every recipient; send it. The sender keeps no
//!    copy under the one-time key (seed: "the stored copy must be encrypted using some other
//!    means").

use super::expansion::{ListExpansion, check_history};
use super::ticket::{KeyDeliveryContent, KeyRequestContent, Ticket};
use crate::access::policy::AttributeValue;
use crate::address::EmailAddress;
use crate::asn1::{MAX_ENVELOPE_LEN, oid};
use crate::cms::{envelope, sealed, signed};
use crate::crypto::pki::{Credential, TrustAnchors};
use crate::crypto::{CryptoProvider, CryptoRng};
use crate::error::{Rejection, Result, reject};
use crate::ids::{Digest, KeyId, NONCE_LEN, Nonce, OneTimeKey};
use crate::time::UnixTime;

/// A sender with its S/MIME credential and its gatekeeper.
#[derive(Debug)]
pub struct Sender {
    provider: &'static dyn CryptoProvider,
    credential: Credential,
    address: EmailAddress,
    anchors: TrustAnchors,
    gatekeeper_uri: String,
}

/// A key request sent and not yet answered.
#[derive(Clone, Debug)]
pub struct PendingKeyRequest {
    /// The signed request to send.
    pub der: Vec<u8>,
    /// Its SHA-256 (the grant must name it).
    pub digest: Digest,
    /// Its content.
    pub content: KeyRequestContent,
}

/// The key a sender seals with, and the ticket it attaches.
#[derive(Clone, Debug)]
pub struct SendKey {
    /// The key id.
    pub key_id: KeyId,
    /// The one-time key (zeroized on drop).
    pub key: OneTimeKey,
    /// The verified ticket.
    pub ticket: Ticket,
}

impl Sender {
    /// A sender using `credential`'s first address, trusting `anchors`, served by the
    /// gatekeeper at `gatekeeper_uri`.
    pub fn new(
        provider: &'static dyn CryptoProvider,
        credential: Credential,
        anchors: TrustAnchors,
        gatekeeper_uri: impl Into<String>,
    ) -> Result<Self> {
        let address = credential
            .addresses()
            .into_iter()
            .next()
            .ok_or_else(|| reject(Rejection::CertificateHasNoEmail, "sender credential"))?;
        Ok(Sender { provider, credential, address, anchors, gatekeeper_uri: gatekeeper_uri.into() })
    }

    /// The sender's address.
    pub fn address(&self) -> &EmailAddress {
        &self.address
    }

    /// Builds and signs a key request for `recipients`.
    pub fn request_key(
        &self,
        recipients: &[EmailAddress],
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<PendingKeyRequest> {
        self.request_key_with(recipients, &[], Vec::new(), now, rng)
    }

    /// Builds and signs a key request for `recipients` carrying security `labels`
    /// (attribute-value URIs, `docs/protocol.md` §12; `invalid_label` locally for what the
    /// gatekeeper would refuse as such).
    pub fn request_labelled_key(
        &self,
        recipients: &[EmailAddress],
        labels: &[AttributeValue],
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<PendingKeyRequest> {
        self.request_key_with(recipients, labels, Vec::new(), now, rng)
    }

    /// Builds and signs a key request for `recipients` carrying a list agent's expansion
    /// history (`docs/protocol.md` §13; empty: an ordinary request). Refuses locally what V27
    /// would refuse (a loop, too deep, a last entry not ours).
    pub fn request_key_expanding(
        &self,
        recipients: &[EmailAddress],
        expansion: Vec<ListExpansion>,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<PendingKeyRequest> {
        self.request_key_with(recipients, &[], expansion, now, rng)
    }

    fn request_key_with(
        &self,
        recipients: &[EmailAddress],
        labels: &[AttributeValue],
        expansion: Vec<ListExpansion>,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<PendingKeyRequest> {
        if !labels.is_empty() {
            crate::role::ticket::parse_labels(labels.iter().map(AttributeValue::as_str))?;
        }
        let mut nonce = [0u8; NONCE_LEN];
        self.provider.fill_random(rng, &mut nonce);
        let content = KeyRequestContent {
            sender: self.address.clone(),
            recipients: recipients.to_vec(),
            nonce: Nonce(nonce),
            request_time: now,
            labels: labels.to_vec(),
            expansion,
        };
        // Refuse locally what the gatekeeper would refuse (empty, duplicate, oversize, V27).
        content.check_recipients(crate::asn1::MAX_RECIPIENTS)?;
        check_history(&content.sender, &content.recipients, &content.expansion)?;
        let encoded = content.encode()?;
        let der = signed::sign(self.provider, &self.credential, oid::CT_KEY_REQUEST, &encoded, now, rng)?;
        Ok(PendingKeyRequest { digest: self.provider.sha256(&der), der, content })
    }

    /// Checks the gatekeeper's answer and returns the key. Steps: C1 the ticket is signed
    /// by our gatekeeper (path, EKU, URI); C2 it carries our request byte for byte and names
    /// this grant's digest; C3 the grant opens with our key and names our request and the
    /// ticket's key id.
    pub fn accept_grant(
        &self,
        pending: &PendingKeyRequest,
        grant: &[u8],
        ticket: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<SendKey> {
        let p = self.provider;
        let ticket = Ticket::open(p, ticket)?;
        ticket.check_gatekeeper(p, &self.anchors, now)?;
        if ticket.gatekeeper_uri != self.gatekeeper_uri {
            return Err(reject(Rejection::WrongGatekeeper, "ticket from another gatekeeper"));
        }
        if ticket.request_der != pending.der || ticket.grant_digest != p.sha256(grant) {
            return Err(reject(Rejection::ResponseMismatch, "ticket does not answer this request with this grant"));
        }
        let (content_type, content) = envelope::open(p, grant, &self.credential, MAX_ENVELOPE_LEN, rng)?;
        if content_type != oid::CT_KEY_DELIVERY {
            return Err(reject(Rejection::UnexpectedContentType, "grant content"));
        }
        let delivery = KeyDeliveryContent::decode(&content)?;
        if delivery.key_id != ticket.key_id || delivery.request_digest != pending.digest {
            return Err(reject(Rejection::ResponseMismatch, "grant names another key or request"));
        }
        Ok(SendKey { key_id: ticket.key_id, key: delivery.key, ticket })
    }

    /// Seals `message` (MIME bytes) under the one-time key, with the ticket attached.
    pub fn seal(&self, key: &SendKey, message: &[u8], rng: &mut dyn CryptoRng) -> Result<Vec<u8>> {
        sealed::seal(self.provider, &key.key_id, &key.key, &key.ticket.der, message, rng)
    }
}
