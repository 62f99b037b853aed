//! A world for protocol tests: the standard test federation, a gatekeeper for
//! `example.com`, and clients.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use ekg_core::crypto::pki::{Credential, PathLimits, TrustAnchors};
use ekg_core::crypto::{CryptoProvider, default_provider};
use ekg_core::ledger::{Concrete, MemoryStore, ReleasePolicy};
use ekg_core::role::{
    Gatekeeper, GatekeeperConfig, Gateway, GatewayPrincipal, Recipient, Sender, SenderRule, StorageKey,
};
use ekg_core::{EmailAddress, UnixTime};
use ekg_testpki::{Federation, Issued};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// 2026-06-01T00:00:00Z.
pub const NOW: UnixTime = UnixTime(1_780_272_000);

pub fn p() -> &'static dyn CryptoProvider {
    default_provider()
}

pub fn fed() -> &'static Federation {
    Federation::shared()
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("address")
}

pub fn credential(i: &Issued) -> Credential {
    Credential::from_der(p(), &i.cert_der, &i.chain_der, &i.key_pkcs8).expect("credential")
}

pub fn anchors() -> TrustAnchors {
    TrustAnchors::from_der(p(), &fed().anchors(), PathLimits::default()).expect("anchors")
}

pub fn anchor_id(der: &[u8]) -> ekg_core::CertId {
    ekg_core::crypto::pki::provider_cert_id(p(), der)
}

/// example.com's gatekeeper configuration: senders of example.com issued by its CA; its
/// gateway; the federation's anchors.
pub fn config(policy: ReleasePolicy) -> GatekeeperConfig {
    let org = &fed().sender_org;
    let mut c = GatekeeperConfig::new(org.gatekeeper_uri(), anchors());
    c.senders =
        vec![SenderRule { domain: Some("example.com".into()), issuer: Some(anchor_id(&org.ca.issued.cert_der)) }];
    c.gateways =
        vec![GatewayPrincipal { address: addr("gateway@example.com"), issuer: anchor_id(&org.ca.issued.cert_der) }];
    c.policy = policy;
    c.ticket_lifetime_secs = 7 * 24 * 3600;
    if policy == ReleasePolicy::SameCertificate {
        c.ledger.retention_secs = 3600;
    }
    c
}

pub type Gk = Gatekeeper<MemoryStore<Concrete>>;

pub fn gatekeeper_with(config: GatekeeperConfig, store: MemoryStore<Concrete>) -> Gk {
    Gatekeeper::new(p(), config, credential(&fed().sender_org.gatekeeper), StorageKey::from_bytes([7; 32]), store)
        .expect("gatekeeper")
}

/// The whole ledger the store holds (recovered from every record), for assertions.
pub fn ledger(gk: &Gk) -> ekg_core::ledger::Ledger<Concrete> {
    ekg_core::ledger::Ledger::recover(*gk.rules().config(), gk.store().records().iter()).expect("recover")
}

pub fn gatekeeper(policy: ReleasePolicy) -> Gk {
    gatekeeper_with(config(policy), MemoryStore::new())
}

pub fn sender(i: &Issued) -> Sender {
    Sender::new(p(), credential(i), anchors(), fed().sender_org.gatekeeper_uri()).expect("sender")
}

pub fn alice() -> Sender {
    sender(fed().sender_org.user("alice@example.com"))
}

pub fn recipient(i: &Issued) -> Recipient {
    Recipient::new(p(), credential(i), anchors())
}

pub fn bob() -> Recipient {
    recipient(fed().recipient_org.user("bob@example.org"))
}

pub fn carol() -> Recipient {
    recipient(fed().sender_org.user("carol@example.com"))
}

pub fn dave() -> Recipient {
    recipient(fed().recipient_org.user("dave@example.org"))
}

pub fn gateway() -> Gateway {
    Gateway::new(p(), credential(&fed().sender_org.gateway), anchors())
}

pub fn foreign_gateway() -> Gateway {
    Gateway::new(p(), credential(&fed().recipient_org.gateway), anchors())
}

/// One issued message: the sealed bytes, the issuance, the plaintext.
pub struct Sent {
    pub sealed: Vec<u8>,
    pub request: Vec<u8>,
    pub grant: Vec<u8>,
    pub ticket: Vec<u8>,
    pub plaintext: Vec<u8>,
}

pub fn send(gk: &mut Gk, from: &Sender, to: &[&str], seed: u64) -> Sent {
    let mut r = rng(seed);
    let to: Vec<_> = to.iter().map(|a| addr(a)).collect();
    let pending = from.request_key(&to, NOW, &mut r).expect("request");
    let issuance = gk.handle_key_request(&pending.der, NOW, &mut r).expect("issue");
    let key = from.accept_grant(&pending, &issuance.grant, &issuance.ticket, NOW, &mut r).expect("grant");
    let plaintext = format!("Subject: test {seed}\r\n\r\nHello from {}\r\n", from.address()).into_bytes();
    let sealed = from.seal(&key, &plaintext, &mut r).expect("seal");
    Sent { sealed, request: pending.der, grant: issuance.grant, ticket: issuance.ticket, plaintext }
}

/// A recipient's whole fetch: receive, request, release, accept, open.
pub fn fetch(gk: &mut Gk, who: &Recipient, sealed: &[u8], now: UnixTime, seed: u64) -> ekg_core::Result<Vec<u8>> {
    let mut r = rng(seed);
    let msg = who.receive(sealed, now)?;
    let pending = who.request_release(&msg, now, &mut r)?;
    let release = gk.handle_release_request(&pending.der, now, &mut r)?;
    let key = who.accept_release(&msg, &pending, &release.der, now, &mut r)?;
    Ok(who.open(&msg, &key)?.to_vec())
}

pub fn code<T>(r: ekg_core::Result<T>) -> Option<&'static str> {
    r.err().map(|e| e.code())
}
