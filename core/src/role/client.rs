//! The receiving side: a [`Recipient`] fetches the key as a listed address; a [`Gateway`] of
//! the sender's organisation fetches it as a configured principal. Both follow the same
//! steps.
//!
//! # Driving it
//! 1. [`Recipient::receive`] the sealed message: checks the ticket (C1) and binding (C6).
//! 2. [`Recipient::request_release`]: send [`PendingRelease::der`] to
//!    [`ReceivedMessage::gatekeeper_uri`]; keep the pending request.
//! 3. [`Recipient::accept_release`] with the gatekeeper's answer and the time it arrived
//!    (C2 to C4): the key. A release signed under a renewed certificate of the ticket's
//!    gatekeeper is accepted (C2, `docs/protocol.md` §3.0.10).
//! 4. [`Recipient::open`] the message (C5). Seed: store it re-encrypted "in a locally
//!    recoverable fashion"; never store the key.

use der::asn1::OctetString;
use der::{Decode, Encode};

use super::ticket::{KeyDeliveryContent, Ticket};
use crate::address::EmailAddress;
use crate::asn1::{ContentInfo, MAX_ENVELOPE_LEN, MAX_EXPANSION_DEPTH, ReleaseRequest, VERSION, oid};
use crate::cms::sealed::{MAX_SEALED_LEN, SealedMessage};
use crate::cms::{encode_failed, envelope, signed};
use crate::crypto::pki::{Credential, TrustAnchors};
use crate::crypto::{CryptoProvider, CryptoRng};
use crate::error::{Rejection, Result, reject};
use crate::ids::{Digest, KeyId, NONCE_LEN, OneTimeKey};
use crate::time::UnixTime;

/// A sealed message whose ticket was verified.
#[derive(Clone, Debug)]
pub struct ReceivedMessage {
    sealed: SealedMessage,
    ticket: Ticket,
    expanded: Vec<Ticket>,
}

impl ReceivedMessage {
    /// The verified ticket.
    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// The verified tickets of the list expansions before the attached ticket, the original
    /// first (empty for a message no list expanded; `docs/protocol.md` §13).
    pub fn expanded_tickets(&self) -> &[Ticket] {
        &self.expanded
    }

    /// The sealed message.
    pub fn sealed(&self) -> &SealedMessage {
        &self.sealed
    }

    /// The gatekeeper to ask.
    pub fn gatekeeper_uri(&self) -> &str {
        &self.ticket.gatekeeper_uri
    }

    /// The key id.
    pub fn key_id(&self) -> &KeyId {
        self.sealed.key_id()
    }
}

/// A release request sent and not yet answered.
#[derive(Clone, Debug)]
pub struct PendingRelease {
    /// The signed release request to send.
    pub der: Vec<u8>,
    /// Its SHA-256 (the release must name it).
    pub digest: Digest,
    /// The key asked for.
    pub key_id: KeyId,
}

#[derive(Debug)]
struct Client {
    provider: &'static dyn CryptoProvider,
    credential: Credential,
    anchors: TrustAnchors,
}

impl Client {
    fn receive(&self, sealed: &[u8], now: UnixTime, must_be_listed: bool) -> Result<ReceivedMessage> {
        let p = self.provider;
        // C6: the ticket digest is authenticated with the ciphertext.
        let sealed = SealedMessage::parse(p, sealed, MAX_SEALED_LEN)?;
        // C1: the ticket is a gatekeeper's.
        let ticket = Ticket::open(p, sealed.ticket())?;
        ticket.check_gatekeeper(p, &self.anchors, now)?;
        if ticket.key_id != *sealed.key_id() {
            return Err(reject(Rejection::ResponseMismatch, "message key id differs from its ticket's"));
        }
        if must_be_listed && !self.credential.addresses().iter().any(|a| ticket.request.recipients.contains(a)) {
            return Err(reject(Rejection::NotForThisRecipient, "none of our addresses is listed"));
        }
        // C7: an expanded message's tickets, each a gatekeeper's (C1), form one chain from
        // the ticket the content was sealed under (C6) to the attached one.
        let mut expanded = Vec::with_capacity(sealed.expanded_tickets().len());
        for der in sealed.expanded_tickets() {
            let t = Ticket::open(p, der)?;
            t.check_gatekeeper(p, &self.anchors, now)?;
            expanded.push(t);
        }
        if !expanded.is_empty() || !ticket.request.expansion.is_empty() {
            let mut chain = expanded.clone();
            chain.push(ticket.clone());
            check_chain(&chain)?;
        }
        Ok(ReceivedMessage { sealed, ticket, expanded })
    }

    fn request_release(
        &self,
        message: &ReceivedMessage,
        token: Option<&str>,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<PendingRelease> {
        let p = self.provider;
        let mut nonce = [0u8; NONCE_LEN];
        p.fill_random(rng, &mut nonce);
        let rr = ReleaseRequest {
            version: VERSION,
            ticket: ContentInfo::from_der(&message.ticket.der).map_err(encode_failed)?,
            nonce: OctetString::new(nonce.to_vec()).map_err(encode_failed)?,
            request_time: now.to_generalized()?,
            access_token: token.map(der::asn1::Ia5String::new).transpose().map_err(encode_failed)?,
        };
        let content = rr.to_der().map_err(encode_failed)?;
        let der = signed::sign(p, &self.credential, oid::CT_RELEASE_REQUEST, &content, now, rng)?;
        Ok(PendingRelease { digest: p.sha256(&der), der, key_id: message.ticket.key_id })
    }

    fn accept_release(
        &self,
        message: &ReceivedMessage,
        pending: &PendingRelease,
        release: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<OneTimeKey> {
        let p = self.provider;
        // C4: the envelope is ours.
        let (content_type, content) = envelope::open(p, release, &self.credential, MAX_ENVELOPE_LEN, rng)?;
        if content_type != oid::ID_SIGNED_DATA {
            return Err(reject(Rejection::UnexpectedContentType, "release content must be SignedData"));
        }
        // C2: signed by the gatekeeper that signed the ticket: the same certificate, or the
        // same gatekeeper renewed (a certificate with id-ekg-kp-gatekeeper naming the
        // ticket's URI, valid under our anchors now).
        let signed = signed::open(p, &content, oid::CT_KEY_DELIVERY, MAX_ENVELOPE_LEN)?;
        if signed.signer_der != message.ticket.signer_der {
            let renewed = self.anchors.validate(p, &signed.signer, &signed.certificates, now).map_err(|e| {
                reject(
                    Rejection::WrongGatekeeper,
                    format!("release signed by another certificate than the ticket ({e})"),
                )
            })?;
            if !renewed.is_gatekeeper || !renewed.uris.contains(&message.ticket.gatekeeper_uri) {
                return Err(reject(
                    Rejection::WrongGatekeeper,
                    "release signed by another certificate than the ticket, not a gatekeeper naming the ticket's URI",
                ));
            }
        }
        // C3: for this key and this request.
        let delivery = KeyDeliveryContent::decode(&signed.content)?;
        if delivery.key_id != message.ticket.key_id || delivery.request_digest != pending.digest {
            return Err(reject(Rejection::ResponseMismatch, "release names another key or request"));
        }
        Ok(delivery.key)
    }
}

/// A listed recipient.
#[derive(Debug)]
pub struct Recipient(Client);

impl Recipient {
    /// A recipient with its S/MIME credential, trusting `anchors` for gatekeepers.
    pub fn new(provider: &'static dyn CryptoProvider, credential: Credential, anchors: TrustAnchors) -> Self {
        Recipient(Client { provider, credential, anchors })
    }

    /// The recipient's addresses.
    pub fn addresses(&self) -> Vec<EmailAddress> {
        self.0.credential.addresses()
    }

    /// Parses a sealed message and verifies its ticket; refuses one not listing us.
    pub fn receive(&self, sealed: &[u8], now: UnixTime) -> Result<ReceivedMessage> {
        self.0.receive(sealed, now, true)
    }

    /// Signs the ticket into a release request.
    pub fn request_release(
        &self,
        message: &ReceivedMessage,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<PendingRelease> {
        self.0.request_release(message, None, now, rng)
    }

    /// Signs the ticket into a release request carrying an access token (a JWT of an issuer
    /// the gatekeeper trusts for our domain, `docs/protocol.md` §12.5): inside the signature,
    /// so it cannot be moved to another request.
    pub fn request_release_with_token(
        &self,
        message: &ReceivedMessage,
        token: &str,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<PendingRelease> {
        self.0.request_release(message, Some(token), now, rng)
    }

    /// Checks and opens the gatekeeper's release.
    pub fn accept_release(
        &self,
        message: &ReceivedMessage,
        pending: &PendingRelease,
        release: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<OneTimeKey> {
        self.0.accept_release(message, pending, release, now, rng)
    }

    /// Decrypts the message (C5).
    pub fn open(&self, message: &ReceivedMessage, key: &OneTimeKey) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        message.sealed.open(self.0.provider, key)
    }
}

/// The sender organisation's gateway: fetches keys of outbound messages to inspect them.
#[derive(Debug)]
pub struct Gateway(Client);

impl Gateway {
    /// A gateway with its credential (configured at its gatekeeper as a principal).
    pub fn new(provider: &'static dyn CryptoProvider, credential: Credential, anchors: TrustAnchors) -> Self {
        Gateway(Client { provider, credential, anchors })
    }

    /// Parses an outbound sealed message and verifies its ticket.
    pub fn receive(&self, sealed: &[u8], now: UnixTime) -> Result<ReceivedMessage> {
        self.0.receive(sealed, now, false)
    }

    /// Signs the ticket into a fetch request.
    pub fn request_key(
        &self,
        message: &ReceivedMessage,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<PendingRelease> {
        self.0.request_release(message, None, now, rng)
    }

    /// Checks and opens the gatekeeper's answer.
    pub fn accept_key(
        &self,
        message: &ReceivedMessage,
        pending: &PendingRelease,
        release: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<OneTimeKey> {
        self.0.accept_release(message, pending, release, now, rng)
    }

    /// Decrypts the outbound message.
    pub fn open(&self, message: &ReceivedMessage, key: &OneTimeKey) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        message.sealed.open(self.0.provider, key)
    }
}

/// The four steps a [`Recipient`] and a [`Gateway`] share, for code that drives either one
/// (the simulator's fetchers, a conformance shim): receive, ask, accept, open.
pub trait Fetcher {
    /// Parses a sealed message and verifies its ticket (and, for a recipient, the binding).
    fn receive(&self, sealed: &[u8], now: UnixTime) -> Result<ReceivedMessage>;
    /// Signs the ticket into a release request.
    fn request(&self, message: &ReceivedMessage, now: UnixTime, rng: &mut dyn CryptoRng) -> Result<PendingRelease>;
    /// Checks and opens the gatekeeper's answer: the key.
    fn accept(
        &self,
        message: &ReceivedMessage,
        pending: &PendingRelease,
        release: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<OneTimeKey>;
    /// Decrypts the message.
    fn open(&self, message: &ReceivedMessage, key: &OneTimeKey) -> Result<zeroize::Zeroizing<Vec<u8>>>;
}

impl Fetcher for Recipient {
    fn receive(&self, sealed: &[u8], now: UnixTime) -> Result<ReceivedMessage> {
        Recipient::receive(self, sealed, now)
    }

    fn request(&self, message: &ReceivedMessage, now: UnixTime, rng: &mut dyn CryptoRng) -> Result<PendingRelease> {
        self.request_release(message, now, rng)
    }

    fn accept(
        &self,
        message: &ReceivedMessage,
        pending: &PendingRelease,
        release: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<OneTimeKey> {
        self.accept_release(message, pending, release, now, rng)
    }

    fn open(&self, message: &ReceivedMessage, key: &OneTimeKey) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        Recipient::open(self, message, key)
    }
}

impl Fetcher for Gateway {
    fn receive(&self, sealed: &[u8], now: UnixTime) -> Result<ReceivedMessage> {
        Gateway::receive(self, sealed, now)
    }

    fn request(&self, message: &ReceivedMessage, now: UnixTime, rng: &mut dyn CryptoRng) -> Result<PendingRelease> {
        self.request_key(message, now, rng)
    }

    fn accept(
        &self,
        message: &ReceivedMessage,
        pending: &PendingRelease,
        release: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<OneTimeKey> {
        self.accept_key(message, pending, release, now, rng)
    }

    fn open(&self, message: &ReceivedMessage, key: &OneTimeKey) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        Gateway::open(self, message, key)
    }
}

/// Step C7: `chain` is the tickets of an expanded message, the original first and the
/// attached one last. Each ticket after the first must carry a request whose history is the
/// previous ticket's plus one entry, that entry naming the previous ticket's digest and a
/// list that the previous ticket lists and that signed this request. The first ticket's
/// request has no history. Each ticket's signature and gatekeeper are the caller's to check.
pub fn check_chain(chain: &[Ticket]) -> Result<()> {
    let mismatch = |detail: &str| Err(reject(Rejection::ListExpansionMismatch, detail.to_owned()));
    if chain.len() > MAX_EXPANSION_DEPTH + 1 {
        return Err(reject(Rejection::ListDepthExceeded, format!("{} tickets", chain.len())));
    }
    let Some(first) = chain.first() else { return mismatch("no ticket") };
    if !first.request.expansion.is_empty() {
        return mismatch("the original ticket carries an expansion history");
    }
    for (before, after) in chain.iter().zip(chain.iter().skip(1)) {
        // The history after is the one before plus exactly one entry.
        let Some((e, earlier)) = after.request.expansion.split_last() else {
            return mismatch("a ticket after the original without an expansion history");
        };
        if earlier != before.request.expansion.as_slice() {
            return mismatch("an expansion history that does not extend the one before");
        }
        if e.expanded_ticket != before.digest {
            return mismatch("an expansion that names another ticket");
        }
        if e.list != after.request.sender || !before.request.recipients.contains(&e.list) {
            return mismatch("an expansion by a list the ticket before does not list");
        }
    }
    Ok(())
}
