//! `[[attribute]]` and `[[mapping]]`: the gatekeeper's policy for labelled keys
//! (`docs/protocol.md` §12.2, `docs/server.md`). An `[[attribute]]` is the core's
//! [`AttributeForm`] as it stands; a `[[mapping]]` is written flat here and turned into the
//! core's [`MappingForm`], and the core's one function checks both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ekg_core::access::policy::Policy;
use ekg_core::role::SettingsError;
use ekg_core::role::settings::attributes::{AttributeForm, ClaimForm, ConditionForm, MappingForm};
use serde::Deserialize;

use super::ConfigError;

/// `[[mapping]]`: grants `grants` to a party meeting every condition set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSection {
    /// PEM of the anchor the certificate's path must end at (one of `gatekeeper.anchors`).
    pub anchor: Option<PathBuf>,
    /// A domain of the certificate's addresses.
    pub domain: Option<String>,
    /// A certificate policy OID of the end-entity certificate (dotted).
    pub certificate_policy: Option<String>,
    /// A verified access token of this issuer (one of `[[token_issuer]]`'s `issuer`).
    pub token_issuer: Option<String>,
    /// `[mapping.claims]`: claim name = values; the token's claim has one of the values
    /// (each a condition; only with `token_issuer`).
    #[serde(default)]
    pub claims: BTreeMap<String, Vec<String>>,
    /// Attribute-value URIs granted.
    pub grants: Vec<String>,
}

impl MappingSection {
    /// The same mapping in the core's form: one condition per field set, claims last.
    fn form(&self) -> MappingForm {
        let mut conditions = Vec::new();
        if let Some(p) = &self.anchor {
            conditions.push(ConditionForm::Anchor(p.to_string_lossy().into_owned()));
        }
        conditions.extend(self.domain.clone().map(ConditionForm::Domain));
        conditions.extend(self.certificate_policy.clone().map(ConditionForm::CertificatePolicy));
        conditions.extend(self.token_issuer.clone().map(ConditionForm::TokenIssuer));
        for (name, values) in &self.claims {
            conditions.push(ConditionForm::Claim(ClaimForm { name: name.clone(), values: values.clone() }));
        }
        MappingForm { conditions, grants: self.grants.clone() }
    }
}

impl From<SettingsError> for ConfigError {
    fn from(e: SettingsError) -> Self {
        ConfigError { field: e.field, rule: e.rule }
    }
}

/// The policy from the sections; `anchor_id` resolves an anchor file (and checks it is one of
/// the anchors); `token_issuers` are the configured issuers' `iss` values.
pub fn policy(
    attributes: &[AttributeForm],
    mappings: &[MappingSection],
    anchor_id: &dyn Fn(&str, &Path) -> Result<ekg_core::CertId, ConfigError>,
    token_issuers: &[&str],
) -> Result<Policy, ConfigError> {
    let mappings: Vec<MappingForm> = mappings.iter().map(MappingSection::form).collect();
    let anchor = |name: &str| anchor_id("mapping.anchor", Path::new(name));
    ekg_core::role::settings::attributes::policy(attributes, &mappings, &anchor, token_issuers)
}
