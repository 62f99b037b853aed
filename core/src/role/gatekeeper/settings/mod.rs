//! The gatekeeper's protocol settings in one serde form, with their defaults defined once:
//! the server's `[gatekeeper]` section (TOML, `docs/server.md`), the conformance vectors'
//! group `config` (JSON, `docs/conformance.md`) and the simulator's `[gatekeeper]` (TOML,
//! `docs/simulator.md`) are all read into [`GatekeeperSettings`], and
//! [`GatekeeperSettings::configure`] is the one mapping to [`GatekeeperConfig`]. Each number's
//! range is checked once, by [`GatekeeperConfig::validate`] (`invalid_configuration` naming
//! the field); each name (`policy`, an attribute's `rule`) is checked here, as it is read.
//!
//! The fields are spelled in snake_case, as in the TOML files; the vectors' camelCase
//! spellings (`retentionSecs`, ...) are aliases. The attribute rules (`[[attribute]]`,
//! `[[mapping]]`, a vector's `attributes`) are read by [`attributes`], the access-token
//! issuers (`[[token_issuer]]`, a vector's `tokenIssuers`) by [`tokens`].

pub mod attributes;
pub mod tokens;

use serde::{Deserialize, Serialize};

use super::config::{GatekeeperConfig, limits};
use crate::asn1::MAX_RECIPIENTS;
use crate::crypto::pki::{PathLimits, TrustAnchors};
use crate::ledger::{LedgerConfig, ReleasePolicy};

/// The protocol's settings as written (`docs/protocol.md` §4.4). A field left out takes its
/// default ([`GatekeeperSettings::default`]); a field not listed here is refused where the
/// form stands alone (the simulator's `[gatekeeper]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatekeeperSettings {
    /// Release policy for new tickets: `once` or `same_certificate`.
    pub policy: ReleasePolicy,
    /// Seconds a key is kept after its last listed recipient was served.
    #[serde(alias = "retentionSecs")]
    pub retention_secs: u64,
    /// Deliveries per address under `same_certificate` (first included).
    #[serde(alias = "maxDeliveries")]
    pub max_deliveries: u32,
    /// Ticket lifetime, seconds.
    #[serde(alias = "ticketLifetimeSecs")]
    pub ticket_lifetime_secs: u64,
    /// Most recipients of one key request.
    #[serde(alias = "maxRecipients")]
    pub max_recipients: usize,
    /// Largest distance between a request's time and the gatekeeper's clock, seconds.
    #[serde(alias = "maxClockSkewSecs")]
    pub max_clock_skew_secs: u64,
    /// Most certificates from end entity to anchor, both included.
    #[serde(alias = "maxPathLen")]
    pub max_path_len: usize,
    /// Length of a storage epoch, seconds.
    #[serde(alias = "storageEpochSecs")]
    pub storage_epoch_secs: u64,
}

impl Default for GatekeeperSettings {
    /// The defaults, defined here once: `once` (the seed's rule), no retention (the seed:
    /// destroyed at once), 3 deliveries, 30-day tickets, 1000 recipients, 5 minutes of skew,
    /// paths of 4 certificates, one-day storage epochs. The ledger's and the path
    /// validation's own defaults are the same facts, taken from them.
    fn default() -> Self {
        let ledger = LedgerConfig::default();
        GatekeeperSettings {
            policy: ReleasePolicy::Once,
            retention_secs: ledger.retention_secs,
            max_deliveries: ledger.max_deliveries,
            ticket_lifetime_secs: limits::TICKET_LIFETIME_SECS_DEFAULT,
            max_recipients: MAX_RECIPIENTS,
            max_clock_skew_secs: limits::MAX_CLOCK_SKEW_SECS_DEFAULT,
            max_path_len: PathLimits::default().max_path_len,
            storage_epoch_secs: limits::STORAGE_EPOCH_SECS_DEFAULT,
        }
    }
}

impl GatekeeperSettings {
    /// The path limits the trust anchors are to be built with (`max_path_len`).
    pub fn path_limits(&self) -> PathLimits {
        PathLimits { max_path_len: self.max_path_len }
    }

    /// The ledger's settings: retention, deliveries, and V14's window the clock skew.
    pub fn ledger(&self) -> LedgerConfig {
        LedgerConfig {
            retention_secs: self.retention_secs,
            max_deliveries: self.max_deliveries,
            request_window_secs: Some(self.max_clock_skew_secs),
        }
    }

    /// The one mapping to the core's configuration: these settings for the gatekeeper at
    /// `uri` trusting `anchors` (built with [`GatekeeperSettings::path_limits`]), with no
    /// sender, gateway, recipient rule, retired certificate, attribute or token issuer yet.
    /// Nothing is checked here: [`GatekeeperConfig::validate`] checks every field.
    pub fn configure(&self, uri: impl Into<String>, anchors: TrustAnchors) -> GatekeeperConfig {
        GatekeeperConfig {
            uri: uri.into(),
            anchors,
            senders: Vec::new(),
            gateways: Vec::new(),
            recipients: Vec::new(),
            retired: Vec::new(),
            policy: self.policy,
            ledger: self.ledger(),
            ticket_lifetime_secs: self.ticket_lifetime_secs,
            max_recipients: self.max_recipients,
            max_clock_skew_secs: self.max_clock_skew_secs,
            storage_epoch_secs: self.storage_epoch_secs,
            attributes: crate::access::policy::Policy::default(),
            token_issuers: Vec::new(),
        }
    }
}

impl GatekeeperConfig {
    /// The defaults of [`GatekeeperSettings`] for the gatekeeper at `uri` trusting `anchors`:
    /// policy `once`, 30-day tickets, no retention, 1000 recipients, 5 min skew.
    pub fn new(uri: impl Into<String>, anchors: TrustAnchors) -> Self {
        GatekeeperSettings::default().configure(uri, anchors)
    }
}

/// A setting that does not hold: the field (as the server's file spells it) and the rule.
/// Its code is `invalid_configuration`, as the core's own checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsError {
    /// The field (`mapping.grants`).
    pub field: String,
    /// What it must be.
    pub rule: String,
}

impl SettingsError {
    /// The stable code.
    pub const CODE: &'static str = "invalid_configuration";

    pub(crate) fn new(field: &str, rule: impl Into<String>) -> Self {
        SettingsError { field: field.to_owned(), rule: rule.into() }
    }

    /// From a core check's `invalid_configuration` ("field: rule"), the field defaulting to
    /// `default_field`.
    pub fn from_core(e: &crate::Error, default_field: &str) -> Self {
        let detail = e.detail();
        match detail.split_once(": ") {
            Some((field, rule)) => SettingsError::new(field, rule),
            None => SettingsError::new(default_field, detail),
        }
    }
}

impl core::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

impl std::error::Error for SettingsError {}

impl From<SettingsError> for crate::Error {
    fn from(e: SettingsError) -> Self {
        crate::error::reject(crate::Rejection::InvalidConfiguration, e.to_string())
    }
}

/// Names written in configuration files for a closed set of values: `name()`, `NAMES`,
/// `FromStr` (refusing any other name with the list), and serde as those names.
macro_rules! named {
    ($ty:ty, $rule:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name written in configuration files.
            pub fn name(&self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }
        }

        impl core::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok(Self::$variant),)+
                    other => Err(format!("{}, not {other:?}", $rule)),
                }
            }
        }

        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

named!(ReleasePolicy, "once or same_certificate", { Once => "once", SameCertificate => "same_certificate" });
named!(crate::access::policy::Rule, "all_of, any_of or hierarchy", {
    AllOf => "all_of", AnyOf => "any_of", Hierarchy => "hierarchy",
});

#[cfg(test)]
mod tests;
