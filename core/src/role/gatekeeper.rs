//! The gatekeeper (EKG): issues one-time keys to recognised senders and releases each, once,
//! to the listed recipients and to its own organisation's gateway.
//!
//! # Driving it
//! - Build a [`Gatekeeper`] with its configuration, credential, storage key and [`Store`];
//!   it recovers its ledger from the store.
//! - For each key request: [`Gatekeeper::handle_key_request`] (bytes in, [`Issuance`] out).
//! - For each release request: [`Gatekeeper::handle_release_request`].
//! - Call [`Gatekeeper::tick`] regularly (say each minute) with a monotonic `now`: it
//!   destroys expired keys and ends retention.
//!
//! Each `handle_*` is split into a verification step on [`GatekeeperCrypto`] (`&self`, any
//! number of threads), a serial decision on the ledger with its record made durable
//! ([`Store::append`]) *before* any response exists, and the response's crypto (`&self`
//! again). A server may run the two crypto steps on many cores around one locked ledger.

use zeroize::Zeroizing;

use super::ticket::{
    KeyRequestContent, ReleaseRequestContent, Ticket, check_skew, encode_delivery, encode_ticket_info,
};
use crate::address::EmailAddress;
use crate::cms::{envelope, signed};
use crate::crypto::{CryptoProvider, CryptoRng};
use crate::error::{Rejection, Result, reject};
use crate::ids::{CertId, Digest, KEY_ID_LEN, KEY_LEN, KeyId, OneTimeKey};
use crate::ledger::{
    Concrete, IssueRequest, Ledger, LedgerConfig, Record, ReleaseKind, ReleasePolicy, Requester, Store,
};
use crate::pki::{Credential, TrustAnchors, ValidatedCertificate};
use crate::time::UnixTime;
use crate::wire::{MAX_KEY_REQUEST_LEN, MAX_RECIPIENTS, MAX_RELEASE_REQUEST_LEN, oid};

/// Who may ask for keys: a sender is recognised when every field set in some rule matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderRule {
    /// The sender's address is in this domain.
    pub domain: Option<String>,
    /// The sender's certificate path ends at this anchor.
    pub issuer: Option<CertId>,
}

/// A gateway of this organisation: the certificate's address and the anchor it must chain to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayPrincipal {
    /// The gateway's address.
    pub address: EmailAddress,
    /// The anchor (this organisation's CA).
    pub issuer: CertId,
}

/// Gatekeeper settings.
#[derive(Clone, Debug)]
pub struct GatekeeperConfig {
    /// This gatekeeper's contact URI (written into every ticket; its certificate names it).
    pub uri: String,
    /// Trust anchors for senders, recipients and gateways (the federation).
    pub anchors: TrustAnchors,
    /// Who may ask for keys.
    pub senders: Vec<SenderRule>,
    /// This organisation's gateways.
    pub gateways: Vec<GatewayPrincipal>,
    /// Release policy for new tickets.
    pub policy: ReleasePolicy,
    /// Retention and re-delivery bounds.
    pub ledger: LedgerConfig,
    /// Ticket lifetime.
    pub ticket_lifetime_secs: u64,
    /// Recipient cap (at most [`MAX_RECIPIENTS`]).
    pub max_recipients: usize,
    /// Largest accepted distance between a request's time and `now`.
    pub max_clock_skew_secs: u64,
}

/// The ranges of [`GatekeeperConfig`]'s numbers (`docs/protocol.md` §3.4, L3).
pub mod limits {
    /// Shortest ticket lifetime, in seconds.
    pub const TICKET_LIFETIME_SECS_MIN: u64 = 60;
    /// Longest ticket lifetime: 366 days.
    pub const TICKET_LIFETIME_SECS_MAX: u64 = 366 * 24 * 3600;
    /// Largest clock skew accepted: one hour.
    pub const MAX_CLOCK_SKEW_SECS_MAX: u64 = 3600;
    /// Most deliveries per address under `same_certificate`.
    pub const MAX_DELIVERIES_MAX: u32 = 100;
    /// Shortest and longest certification path (end entity and anchor included).
    pub const PATH_LEN: core::ops::RangeInclusive<usize> = 2..=8;
    /// Most sender rules and gateway principals.
    pub const RULES_MAX: usize = 1000;
}

impl GatekeeperConfig {
    /// Defaults: policy `once`, 30-day tickets, no retention, 1000 recipients, 5 min skew.
    pub fn new(uri: impl Into<String>, anchors: TrustAnchors) -> Self {
        GatekeeperConfig {
            uri: uri.into(),
            anchors,
            senders: Vec::new(),
            gateways: Vec::new(),
            policy: ReleasePolicy::Once,
            ledger: LedgerConfig::default(),
            ticket_lifetime_secs: 30 * 24 * 3600,
            max_recipients: MAX_RECIPIENTS,
            max_clock_skew_secs: 300,
        }
    }

    /// Checks every field against its range (`invalid_configuration` naming the field), so
    /// that no request can fail after its record is durable for a reason known at start.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, rule: &str| Err(reject(Rejection::InvalidConfiguration, format!("{field}: {rule}")));
        if self.uri.is_empty()
            || self.uri.len() > crate::wire::MAX_URI_LEN
            || !self.uri.bytes().all(|b| b.is_ascii_graphic())
        {
            return bad("uri", "1 to 512 printable ASCII characters");
        }
        if self.anchors.ids().is_empty() {
            return bad("anchors", "at least one trust anchor");
        }
        if !limits::PATH_LEN.contains(&self.anchors.limits().max_path_len) {
            return bad("max_path_len", "2 to 8 certificates");
        }
        if self.senders.is_empty() {
            return bad("senders", "at least one sender rule (nobody could ask for a key)");
        }
        if self.senders.len() > limits::RULES_MAX || self.gateways.len() > limits::RULES_MAX {
            return bad("senders", "at most 1000 sender rules and 1000 gateways");
        }
        for rule in &self.senders {
            if rule.domain.is_none() && rule.issuer.is_none() {
                return bad("senders", "a rule names a domain, an issuing anchor, or both");
            }
            if let Some(d) = &rule.domain
                && EmailAddress::parse(&format!("x@{d}")).is_err()
            {
                return bad("senders.domain", "a domain of LDH labels");
            }
        }
        let anchors = self.anchors.ids();
        if self
            .senders
            .iter()
            .filter_map(|r| r.issuer)
            .chain(self.gateways.iter().map(|g| g.issuer))
            .any(|i| !anchors.contains(&i))
        {
            return bad("senders.issuer", "an issuer must be one of the trust anchors");
        }
        if !(1..=MAX_RECIPIENTS).contains(&self.max_recipients) {
            return bad("max_recipients", "1 to 1000");
        }
        if self.max_clock_skew_secs > limits::MAX_CLOCK_SKEW_SECS_MAX {
            return bad("max_clock_skew_secs", "0 to 3600");
        }
        if !(limits::TICKET_LIFETIME_SECS_MIN..=limits::TICKET_LIFETIME_SECS_MAX).contains(&self.ticket_lifetime_secs) {
            return bad("ticket_lifetime_secs", "60 to 31622400 (366 days)");
        }
        if self.ticket_lifetime_secs < 2 * self.max_clock_skew_secs {
            return bad("ticket_lifetime_secs", "at least twice max_clock_skew_secs (the duplicate-request window)");
        }
        if self.ledger.retention_secs > self.ticket_lifetime_secs {
            return bad("retention_secs", "0 to ticket_lifetime_secs (expiry destroys every key)");
        }
        if !(1..=limits::MAX_DELIVERIES_MAX).contains(&self.ledger.max_deliveries) {
            return bad("max_deliveries", "1 to 100");
        }
        Ok(())
    }
}

/// The symmetric key under which stored keys are wrapped (AES-256 key wrap).
pub struct StorageKey(Zeroizing<[u8; KEY_LEN]>);

impl StorageKey {
    /// From raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        StorageKey(Zeroizing::new(bytes))
    }
}

impl core::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StorageKey(<redacted>)")
    }
}

/// A key request whose every check passed.
#[derive(Clone, Debug)]
pub struct VerifiedKeyRequest {
    /// The sender's signed request, byte for byte.
    pub der: Vec<u8>,
    /// Its SHA-256.
    pub digest: Digest,
    /// Its content.
    pub content: KeyRequestContent,
    /// The sender's certificate.
    pub sender: ValidatedCertificate,
}

/// A release request whose every check passed (the ledger's decision still to come).
#[derive(Clone, Debug)]
pub struct VerifiedReleaseRequest {
    /// SHA-256 of the signed release request.
    pub digest: Digest,
    /// The ticket.
    pub ticket: Ticket,
    /// The requester's certificate.
    pub requester: ValidatedCertificate,
    /// The requester as the ledger sees it.
    pub as_requester: Requester<Concrete>,
}

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

/// The gatekeeper's immutable half: configuration, credential, storage key, and every
/// crypto step. `Sync`: share it across threads.
#[derive(Debug)]
pub struct GatekeeperCrypto {
    provider: &'static dyn CryptoProvider,
    config: GatekeeperConfig,
    credential: Credential,
    storage_key: StorageKey,
    /// Certificate paths validated before, by SHA-256 of the certificates offered (V5 to V8
    /// are a function of those bytes, the fixed anchors and `now`, so a result is reused
    /// while `now` stays within the path's validity).
    paths: std::sync::Mutex<std::collections::BTreeMap<Digest, ValidatedCertificate>>,
    /// SHA-256 of the tickets this gatekeeper signed: their signatures (and the sender's
    /// inside, verified at issuance) are not verified again at release.
    issued_tickets: std::sync::Mutex<std::collections::BTreeSet<Digest>>,
}

/// Entries kept in each cache before it is emptied (a bound on memory, not a policy).
const CACHE_BOUND: usize = 1 << 16;

/// The gatekeeper: [`GatekeeperCrypto`] around one serial ledger and its store.
#[derive(Debug)]
pub struct Gatekeeper<S: Store<Concrete>> {
    crypto: std::sync::Arc<GatekeeperCrypto>,
    ledger: Ledger<Concrete>,
    store: S,
    /// Key requests answered within the freshness window, by what identifies them (sender
    /// and nonce), with their request time (V14). In memory: after a restart a replay inside
    /// the window is answered again.
    answered: std::collections::BTreeMap<(EmailAddress, crate::ids::Nonce), UnixTime>,
}

impl<S: Store<Concrete>> Gatekeeper<S> {
    /// A gatekeeper whose ledger is recovered from `store`.
    pub fn new(
        provider: &'static dyn CryptoProvider,
        config: GatekeeperConfig,
        credential: Credential,
        storage_key: StorageKey,
        store: S,
    ) -> Result<Self> {
        config.validate()?;
        // Clients accept a ticket only from a certificate with the gatekeeper purpose that
        // names the ticket's URI (step C1): refuse a configuration they would refuse.
        // Its certificates ride in every ticket and release: bounded so that both fit their
        // limits (docs/protocol.md §4.4).
        let chain_len =
            credential.chain_der().iter().map(Vec::len).fold(credential.certificate_der().len(), usize::saturating_add);
        if chain_len > crate::wire::MAX_GATEKEEPER_CERTIFICATES_LEN {
            return Err(reject(Rejection::InvalidConfiguration, "credential: certificate and chain over 32 KiB"));
        }
        if !credential.has_extended_key_usage(&oid::KP_GATEKEEPER) || !credential.uris().contains(&config.uri) {
            return Err(reject(Rejection::InvalidConfiguration, "certificate lacks id-ekg-kp-gatekeeper or the URI"));
        }
        // C1 validates the ticket's signer as an S/MIME certificate (V7, V8): emailProtection
        // and an address.
        if !credential.has_extended_key_usage(&oid::KP_EMAIL_PROTECTION) || credential.addresses().is_empty() {
            return Err(reject(
                Rejection::InvalidConfiguration,
                "credential: certificate lacks emailProtection or an rfc822Name",
            ));
        }
        let records = store.load().map_err(|e| reject(Rejection::StorageFailed, e.0))?;
        let ledger = Ledger::recover(config.ledger, records.iter())?;
        // A wrong storage key would fail every release after its record is durable: refuse
        // to start with one (each live key must unwrap).
        for (_, state) in ledger.keys() {
            if let crate::ledger::KeyState::Pending(k) | crate::ledger::KeyState::Retained { key: k, .. } = state {
                provider.aes256_kw_unwrap(&storage_key.0, &k.handle.0).map_err(|_| {
                    reject(Rejection::InvalidConfiguration, "storage_key: does not unwrap the stored keys")
                })?;
            }
        }
        Ok(Gatekeeper {
            crypto: std::sync::Arc::new(GatekeeperCrypto {
                provider,
                config,
                credential,
                storage_key,
                paths: std::sync::Mutex::default(),
                issued_tickets: std::sync::Mutex::default(),
            }),
            ledger,
            store,
            answered: std::collections::BTreeMap::new(),
        })
    }

    /// The crypto half.
    pub fn crypto(&self) -> &GatekeeperCrypto {
        &self.crypto
    }

    /// The crypto half, shared: threads verify requests and build answers with it while the
    /// serial part ([`Gatekeeper::record_issue`]) runs under the caller's lock.
    pub fn shared_crypto(&self) -> std::sync::Arc<GatekeeperCrypto> {
        std::sync::Arc::clone(&self.crypto)
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

    /// Makes `records` durable, then applies them. Nothing is applied if the store fails.
    pub fn commit(&mut self, records: &[Record<Concrete>]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.store.append(records).map_err(|e| reject(Rejection::StorageFailed, e.0))?;
        for r in records {
            self.ledger.apply(r)?;
        }
        Ok(())
    }

    /// Steps V1 to V13, then issuance.
    pub fn handle_key_request(&mut self, der: &[u8], now: UnixTime, rng: &mut dyn CryptoRng) -> Result<Issuance> {
        let request = self.crypto.verify_key_request(der, now)?;
        self.issue(request, now, rng)
    }

    /// Issues a fresh key for a verified request: draw key id and key, decide, make the
    /// record durable, then build grant and ticket.
    pub fn issue(&mut self, request: VerifiedKeyRequest, now: UnixTime, rng: &mut dyn CryptoRng) -> Result<Issuance> {
        let (key_id, key, issue) = self.crypto.draw_key(&request, now, rng)?;
        self.record_issue(&request, issue, now)?;
        self.crypto.build_issuance(&request, &key_id, &key, now, rng)
    }

    /// The serial part of an issuance: V14, the ledger's decision, the durable record. On
    /// `Ok` the key is issued and its grant and ticket may be built (by any thread, with
    /// [`GatekeeperCrypto::build_issuance`]); on `Err` nothing was recorded.
    pub fn record_issue(
        &mut self,
        request: &VerifiedKeyRequest,
        issue: IssueRequest<Concrete>,
        now: UnixTime,
    ) -> Result<()> {
        // V14: a request is what its sender signed (sender and nonce), whatever the unsigned
        // fields around it say; it is answered once within the freshness window.
        let id = request.content.request_id();
        if self.answered.contains_key(&id) {
            return Err(reject(Rejection::DuplicateRequest, "this sender's nonce was already answered"));
        }
        let record = self.ledger.decide_issue(issue, now)?;
        self.commit(&[record])?;
        self.answered.insert(id, request.content.request_time);
        Ok(())
    }

    /// Steps V1 to V8, V13 and V20 to V24, then the release.
    pub fn handle_release_request(&mut self, der: &[u8], now: UnixTime, rng: &mut dyn CryptoRng) -> Result<Release> {
        let request = self.crypto.verify_release_request(der, now)?;
        self.release(request, now, rng)
    }

    /// Decides a verified release request, makes the record durable, then builds the release.
    pub fn release(
        &mut self,
        request: VerifiedReleaseRequest,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<Release> {
        let decision = self.ledger.decide_release(&request.ticket.key_id, &request.as_requester, now)?;
        self.commit(&decision.records)?;
        self.crypto.build_release(&request, &decision.handle, decision.kind, decision.served, now, rng)
    }

    /// Destroys expired keys and keys whose retention ended; purges old tombstones.
    /// Returns how many records were made.
    pub fn tick(&mut self, now: UnixTime) -> Result<usize> {
        // A request older than the skew window is refused by V13: forget its digest.
        let window = self.crypto.config.max_clock_skew_secs;
        self.answered.retain(|_, t| now.secs() <= t.plus_secs(window).secs());
        let records = self.ledger.decide_expiry(now);
        self.commit(&records)?;
        Ok(records.len())
    }
}

impl GatekeeperCrypto {
    /// The configuration.
    pub fn config(&self) -> &GatekeeperConfig {
        &self.config
    }

    /// The gatekeeper's certificate.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// V5 to V8, through the path cache.
    fn validate(
        &self,
        signer: &x509_cert::Certificate,
        candidates: &[x509_cert::Certificate],
        now: UnixTime,
    ) -> Result<ValidatedCertificate> {
        use der::Encode;
        let p = self.provider;
        let mut bytes = signer.to_der().map_err(crate::cms::encode_failed)?;
        for c in candidates {
            bytes.extend(c.to_der().map_err(crate::cms::encode_failed)?);
        }
        let key = p.sha256(&bytes);
        if let Ok(paths) = self.paths.lock()
            && let Some(v) = paths.get(&key)
            && v.valid_from <= now
            && now <= v.valid_until
        {
            return Ok(v.clone());
        }
        let validated = self.config.anchors.validate(p, signer, candidates, now)?;
        if let Ok(mut paths) = self.paths.lock() {
            if paths.len() >= CACHE_BOUND {
                paths.clear();
            }
            paths.insert(key, validated.clone());
        }
        Ok(validated)
    }

    /// V1 to V13 for a key request.
    pub fn verify_key_request(&self, der: &[u8], now: UnixTime) -> Result<VerifiedKeyRequest> {
        let p = self.provider;
        // V1-V4: DER, profile, digest, signature.
        let signed = signed::open(p, der, oid::CT_KEY_REQUEST, MAX_KEY_REQUEST_LEN)?;
        // V5-V8: the sender's certificate.
        let sender = self.validate(&signed.signer, &signed.certificates, now)?;
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

    /// Draws a fresh key id and key and wraps the key under the storage key.
    pub fn draw_key(
        &self,
        request: &VerifiedKeyRequest,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<(KeyId, OneTimeKey, IssueRequest<Concrete>)> {
        let mut id = [0u8; KEY_ID_LEN];
        self.provider.fill_random(rng, &mut id);
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        self.provider.fill_random(rng, raw.as_mut_slice());
        let key = OneTimeKey::from_bytes(*raw);
        let handle = self.provider.aes256_kw_wrap(&self.storage_key.0, key.expose())?;
        // Every time the ticket will carry must encode, before anything is recorded.
        let expires_at = now.plus_secs(self.config.ticket_lifetime_secs);
        now.to_generalized()?;
        expires_at.to_generalized()?;
        let issue = IssueRequest {
            key_id: KeyId(id),
            handle,
            sender: request.content.sender.clone(),
            recipients: request.content.recipients.clone(),
            policy: self.config.policy,
            expires_at,
        };
        Ok((KeyId(id), key, issue))
    }

    /// The grant (key encrypted to the sender) and the ticket (signed request, key id,
    /// URI, times, policy, grant digest), signed once.
    pub fn build_issuance(
        &self,
        request: &VerifiedKeyRequest,
        key_id: &KeyId,
        key: &OneTimeKey,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<Issuance> {
        let p = self.provider;
        let delivery = encode_delivery(key_id, key, &request.digest, &request.content.sender.to_string())?;
        let grant = envelope::seal_to(p, &request.sender.certificate, oid::CT_KEY_DELIVERY, &delivery, rng)?;
        let expires_at = now.plus_secs(self.config.ticket_lifetime_secs);
        let info = encode_ticket_info(
            key_id,
            &self.config.uri,
            &request.der,
            now,
            expires_at,
            self.config.policy,
            &p.sha256(&grant),
        )?;
        let ticket = signed::sign(p, &self.credential, oid::CT_TICKET, &info, now, rng)?;
        if let Ok(mut t) = self.issued_tickets.lock() {
            if t.len() >= CACHE_BOUND {
                t.clear();
            }
            t.insert(p.sha256(&ticket));
        }
        Ok(Issuance { key_id: *key_id, grant, ticket, expires_at })
    }

    /// V1 to V8, V13 and V20 to V22 for a release request.
    pub fn verify_release_request(&self, der: &[u8], now: UnixTime) -> Result<VerifiedReleaseRequest> {
        let p = self.provider;
        // V1-V4: the requester's SignedData.
        let signed = signed::open(p, der, oid::CT_RELEASE_REQUEST, MAX_RELEASE_REQUEST_LEN)?;
        // V5-V8: the requester's certificate.
        let requester = self.validate(&signed.signer, &signed.certificates, now)?;
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
        // V21: expiry.
        if now >= ticket.expires_at {
            return Err(Rejection::TicketExpired.into());
        }
        // Gateway principals: configured address, chaining to the configured anchor.
        let is_gateway = self
            .config
            .gateways
            .iter()
            .any(|g| g.issuer == requester.anchor && requester.addresses.contains(&g.address));
        // V22: listed (the ledger decides; checked here for a precise answer before locking).
        if !is_gateway && !requester.addresses.iter().any(|a| ticket.request.recipients.contains(a)) {
            return Err(reject(Rejection::RecipientNotListed, "no address of the certificate is listed"));
        }
        let as_requester = Requester { cert: requester.id, addresses: requester.addresses.clone(), is_gateway };
        Ok(VerifiedReleaseRequest { digest: p.sha256(der), ticket, requester, as_requester })
    }

    /// The release: the key, unwrapped from storage, in a gatekeeper-signed key delivery,
    /// encrypted to the requester's certificate.
    pub fn build_release(
        &self,
        request: &VerifiedReleaseRequest,
        handle: &crate::ids::WrappedKey,
        kind: ReleaseKind,
        served: Vec<EmailAddress>,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<Release> {
        let p = self.provider;
        let key = p.aes256_kw_unwrap(&self.storage_key.0, &handle.0)?;
        let to = served.first().or(request.requester.addresses.first()).map(|a| a.to_string()).unwrap_or_default();
        let delivery = encode_delivery(&request.ticket.key_id, &key, &request.digest, &to)?;
        let signed_delivery = signed::sign_secret(p, &self.credential, oid::CT_KEY_DELIVERY, &delivery, now, rng)?;
        let der = envelope::seal_to(p, &request.requester.certificate, oid::ID_SIGNED_DATA, &signed_delivery, rng)?;
        Ok(Release { key_id: request.ticket.key_id, der, kind, served })
    }
}
