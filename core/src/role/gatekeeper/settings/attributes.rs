//! The attribute rules in one form (`docs/protocol.md` §12.2): attribute definitions
//! (`[[attribute]]` in the server's file, `attributes.definitions` in a vector's config, the
//! same fields) and subject mappings (a vector's `attributes.mappings`: conditions written
//! one per object; the server's flat `[[mapping]]` is turned into the same list), checked and
//! turned into the core's [`Policy`] by one function, [`policy`].

use serde::{Deserialize, Serialize};

use super::SettingsError;
use crate::CertId;
use crate::access::policy::{
    AttributeDefinition, AttributeName, AttributeValue, Condition, Policy, Rule, SubjectMapping,
};

/// An attribute definition as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeForm {
    /// `https://<namespace>/attr/<name>`.
    pub name: String,
    /// `all_of`, `any_of` or `hierarchy`.
    pub rule: Rule,
    /// Its values (the segment after `/value/`), highest first for a hierarchy.
    pub values: Vec<String>,
}

/// One condition of a subject mapping as written (JSON: one key per object, camelCase).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum ConditionForm {
    /// The certificate's path ends at this anchor: a name the reader resolves (the server: a
    /// PEM file; the vectors: a CA file of `v1/pki`).
    Anchor(String),
    /// An address of the certificate is in this domain.
    Domain(String),
    /// The end-entity certificate carries this policy OID (dotted).
    CertificatePolicy(String),
    /// A verified access token of this issuer (one of the configured token issuers).
    TokenIssuer(String),
    /// The token's claim `name` has one of `values` (only beside a `tokenIssuer`).
    Claim(ClaimForm),
}

/// A claim condition's name and values.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimForm {
    /// The claim's name.
    pub name: String,
    /// Any of these values.
    pub values: Vec<String>,
}

/// A subject mapping as written: every condition must hold; it grants `grants`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MappingForm {
    /// The conditions (at least one).
    pub conditions: Vec<ConditionForm>,
    /// Attribute-value URIs granted.
    pub grants: Vec<String>,
}

/// A vector config's `attributes`: definitions and mappings (each absent: none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttributesForm {
    /// The attribute definitions.
    #[serde(default)]
    pub definitions: Vec<AttributeForm>,
    /// The subject mappings.
    #[serde(default)]
    pub mappings: Vec<MappingForm>,
}

/// The policy of `definitions` and `mappings`, every rule checked once (errors name the
/// server file's fields: `attribute.name`, `mapping.certificate_policy`, ...). `anchor`
/// resolves an anchor condition's name (and refuses one that is not a trust anchor, with its
/// own error); `token_issuers` are the configured issuers' `iss` values.
pub fn policy<E: From<SettingsError>>(
    definitions: &[AttributeForm],
    mappings: &[MappingForm],
    anchor: &dyn Fn(&str) -> Result<CertId, E>,
    token_issuers: &[&str],
) -> Result<Policy, E> {
    let bad = |field: &str, rule: String| E::from(SettingsError::new(field, rule));
    let mut defined = Vec::new();
    for a in definitions {
        let name = AttributeName::parse(&a.name).map_err(|e| bad("attribute.name", e.detail().to_owned()))?;
        let values = a
            .values
            .iter()
            .map(|v| name.value(v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("attribute.values", e.detail().to_owned()))?;
        defined.push(AttributeDefinition { name, rule: a.rule, values });
    }
    let mut subject_mappings = Vec::new();
    for m in mappings {
        let mut conditions = Vec::new();
        for c in &m.conditions {
            conditions.push(match c {
                ConditionForm::Anchor(name) => Condition::Anchor(anchor(name)?),
                ConditionForm::Domain(d) => Condition::Domain(d.clone()),
                ConditionForm::CertificatePolicy(oid) => {
                    if oid.parse::<const_oid::ObjectIdentifier>().is_err() {
                        return Err(bad("mapping.certificate_policy", "a dotted OID".into()));
                    }
                    Condition::CertificatePolicy(oid.clone())
                }
                ConditionForm::TokenIssuer(iss) => {
                    if !token_issuers.contains(&iss.as_str()) {
                        return Err(bad("mapping.token_issuer", format!("{iss} is not a [[token_issuer]]")));
                    }
                    Condition::TokenIssuer(iss.clone())
                }
                ConditionForm::Claim(claim) => {
                    if !m.conditions.iter().any(|c| matches!(c, ConditionForm::TokenIssuer(_))) {
                        return Err(bad(
                            "mapping.claims",
                            "only with token_issuer (a claim means what its issuer says)".into(),
                        ));
                    }
                    if claim.values.is_empty() {
                        return Err(bad("mapping.claims", format!("{}: at least one value", claim.name)));
                    }
                    Condition::Claim { name: claim.name.clone(), values: claim.values.clone() }
                }
            });
        }
        if conditions.is_empty() {
            return Err(bad("mapping", "at least one of anchor, domain, certificate_policy, token_issuer".into()));
        }
        let grants = m
            .grants
            .iter()
            .map(|g| AttributeValue::parse(g))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("mapping.grants", e.detail().to_owned()))?;
        subject_mappings.push(SubjectMapping { conditions, grants });
    }
    Policy::new(defined, subject_mappings).map_err(|e| E::from(SettingsError::from_core(&e, "attribute")))
}
