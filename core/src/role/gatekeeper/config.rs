//! The gatekeeper's configuration: every field with its range (`docs/protocol.md` §4.4),
//! checked before anything is recorded.

use zeroize::Zeroizing;

use crate::address::EmailAddress;
use crate::asn1::MAX_RECIPIENTS;
use crate::crypto::pki::TrustAnchors;
use crate::error::{Rejection, Result, reject};
use crate::ids::{CertId, KEY_LEN};
use crate::ledger::{Concrete, LedgerConfig, ReleasePolicy};

/// Who may ask for keys: a sender is recognised when every field set in some rule matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderRule {
    /// The sender's address is in this domain.
    pub domain: Option<String>,
    /// The sender's certificate path ends at this anchor.
    pub issuer: Option<CertId>,
}

/// Which anchors may certify which recipient domains (V25): when any rule is configured, an
/// address of a requester's certificate counts for a release only if some rule matches it,
/// a rule matching when every field it sets matches (its domain equals the address's domain,
/// case-insensitively, subdomains not included; its issuer is the anchor the certificate's
/// path ends at). No rule at all: every anchor may certify every domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientRule {
    /// The address's domain.
    pub domain: Option<String>,
    /// The anchor the certificate's path ends at.
    pub issuer: Option<CertId>,
}

/// A certificate this gatekeeper signed tickets under before its current one (a renewal or
/// a key rotation): V20 accepts the tickets it signed (`docs/protocol.md` §3.0.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetiredCertificate {
    /// The certificate's DER.
    pub der: Vec<u8>,
    /// Whether it certifies the current key or another one.
    pub key: RetiredKey,
}

/// Which key a retired certificate certifies: the start-up check refuses a retired
/// certificate whose key is not the one declared (a mistaken file is not silently accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetiredKey {
    /// The current credential's key: a renewal (new certificate, same key).
    Same,
    /// Another key: a key rotation.
    Previous,
}

/// A gateway of this organisation: the certificate's address and the anchor it must chain to.
pub type GatewayPrincipal = crate::ledger::GatewayPrincipal<Concrete>;

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
    /// Which anchors may certify which recipient domains (V25; empty: any anchor any domain).
    pub recipients: Vec<RecipientRule>,
    /// Certificates this gatekeeper signed tickets under before its current one (V20).
    pub retired: Vec<RetiredCertificate>,
    /// Release policy for new tickets.
    pub policy: ReleasePolicy,
    /// Retention and re-delivery bounds (the V14 window is `max_clock_skew_secs`).
    pub ledger: LedgerConfig,
    /// Ticket lifetime.
    pub ticket_lifetime_secs: u64,
    /// Recipient cap (at most [`MAX_RECIPIENTS`]).
    pub max_recipients: usize,
    /// Largest accepted distance between a request's time and `now`.
    pub max_clock_skew_secs: u64,
    /// Length of a storage epoch: the keys issued within one are wrapped under one storage
    /// key, destroyed once all of them can have expired (`docs/protocol.md`, "Key custody").
    pub storage_epoch_secs: u64,
    /// Attribute definitions and subject mappings, for labelled keys (V15, V26; empty: a
    /// labelled request is `label_unknown`).
    pub attributes: crate::access::policy::Policy,
    /// The OpenID providers whose access tokens a release request may carry (V28,
    /// `docs/protocol.md` §12.5): at most [`crate::access::token::limits::ISSUERS_MAX`].
    pub token_issuers: Vec<crate::access::token::TokenIssuer>,
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
    /// Most sender rules, recipient rules and gateway principals.
    pub const RULES_MAX: usize = 1000;
    /// Most retired certificates.
    pub const RETIRED_MAX: usize = 16;
    /// Default ticket lifetime: 30 days.
    pub const TICKET_LIFETIME_SECS_DEFAULT: u64 = 30 * 24 * 3600;
    /// Default clock skew: five minutes.
    pub const MAX_CLOCK_SKEW_SECS_DEFAULT: u64 = 300;
    /// Default storage epoch: one day.
    pub const STORAGE_EPOCH_SECS_DEFAULT: u64 = 86_400;
    /// Shortest storage epoch: one minute (tests; an hour or more in service).
    pub const STORAGE_EPOCH_SECS_MIN: u64 = 60;
    /// Longest storage epoch: the longest ticket lifetime.
    pub const STORAGE_EPOCH_SECS_MAX: u64 = TICKET_LIFETIME_SECS_MAX;
    /// Most epochs one ticket lifetime spans (a bound on the epoch keys held at once, which
    /// is this plus two).
    pub const EPOCHS_PER_LIFETIME_MAX: u64 = 1000;
}

impl GatekeeperConfig {
    /// Checks every field against its range (`invalid_configuration` naming the field), so
    /// that no request can fail after its record is durable for a reason known at start.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, rule: &str| Err(reject(Rejection::InvalidConfiguration, format!("{field}: {rule}")));
        if self.uri.is_empty()
            || self.uri.len() > crate::asn1::MAX_URI_LEN
            || !self.uri.bytes().all(|b| b.is_ascii_graphic())
        {
            return bad("uri", "1 to 512 printable ASCII characters");
        }
        if self.anchors.ids().is_empty() {
            return bad("anchors", "at least one trust anchor");
        }
        if self.token_issuers.len() > crate::access::token::limits::ISSUERS_MAX {
            return bad("token_issuers", "at most 100");
        }
        for issuer in &self.token_issuers {
            issuer.validate()?;
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
        if self.recipients.len() > limits::RULES_MAX {
            return bad("recipients", "at most 1000 recipient rules");
        }
        for rule in &self.recipients {
            if rule.domain.is_none() && rule.issuer.is_none() {
                return bad("recipients", "a rule names a domain, an issuing anchor, or both");
            }
            if let Some(d) = &rule.domain
                && EmailAddress::parse(&format!("x@{d}")).is_err()
            {
                return bad("recipients.domain", "a domain of LDH labels");
            }
        }
        if self.retired.len() > limits::RETIRED_MAX {
            return bad("retired", "at most 16 retired certificates");
        }
        let anchors = self.anchors.ids();
        if self.recipients.iter().filter_map(|r| r.issuer).any(|i| !anchors.contains(&i)) {
            return bad("recipients.issuer", "an issuer must be one of the trust anchors");
        }
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
        if !(limits::STORAGE_EPOCH_SECS_MIN..=limits::STORAGE_EPOCH_SECS_MAX).contains(&self.storage_epoch_secs) {
            return bad("storage_epoch_secs", "60 to 31622400 (366 days)");
        }
        if self.ticket_lifetime_secs / self.storage_epoch_secs > limits::EPOCHS_PER_LIFETIME_MAX {
            return bad("storage_epoch_secs", "at least ticket_lifetime_secs / 1000 (at most 1002 epoch keys at once)");
        }
        if !(1..=limits::MAX_DELIVERIES_MAX).contains(&self.ledger.max_deliveries) {
            return bad("max_deliveries", "1 to 100");
        }
        Ok(())
    }

    /// V25's rule: whether `address` may be certified by a path ending at `anchor`.
    pub fn may_certify(&self, anchor: CertId, address: &EmailAddress) -> bool {
        self.recipients.is_empty()
            || self.recipients.iter().any(|r| {
                r.domain.as_deref().is_none_or(|d| address.in_domain(d)) && r.issuer.is_none_or(|i| i == anchor)
            })
    }

    /// The ledger's settings: retention and re-delivery as configured, and V14's window the
    /// clock skew (a request older than that is refused by V13 anyway).
    pub fn ledger_config(&self) -> LedgerConfig {
        LedgerConfig { request_window_secs: Some(self.max_clock_skew_secs), ..self.ledger }
    }
}

/// The symmetric key under which stored keys are wrapped (AES-256 key wrap).
pub struct StorageKey(Zeroizing<[u8; KEY_LEN]>);

impl StorageKey {
    /// From raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        StorageKey(Zeroizing::new(bytes))
    }

    /// From a slice of exactly 32 bytes, copied straight into the zeroizing key.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return None;
        }
        key.copy_from_slice(bytes);
        Some(StorageKey(key))
    }

    pub(super) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Wraps `key` under this key (AES-256 key wrap, RFC 3394).
    pub fn wrap_key(
        &self,
        provider: &dyn crate::crypto::CryptoProvider,
        key: &crate::ids::OneTimeKey,
    ) -> Result<crate::ids::WrappedKey> {
        provider.aes256_kw_wrap(&self.0, key.expose())
    }

    /// Unwraps a key wrapped under this key (`key_unwrap_failed` if it was not).
    pub fn unwrap_key(
        &self,
        provider: &dyn crate::crypto::CryptoProvider,
        wrapped: &crate::ids::WrappedKey,
    ) -> Result<crate::ids::OneTimeKey> {
        provider.aes256_kw_unwrap(&self.0, &wrapped.0)
    }
}

impl core::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StorageKey(<redacted>)")
    }
}
