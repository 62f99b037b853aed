//! `[[attribute]]` and `[[mapping]]`: the gatekeeper's policy for labelled keys
//! (`docs/protocol.md` §12.2, `docs/server.md`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ekg_core::access::policy::{AttributeDefinition, AttributeName, Condition, Policy, Rule, SubjectMapping};
use serde::Deserialize;

use super::{ConfigError, bad};

/// `[[attribute]]`: an attribute definition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSection {
    /// `https://<namespace>/attr/<name>`.
    pub name: String,
    /// `all_of`, `any_of` or `hierarchy`.
    pub rule: String,
    /// Its values (the segment after `/value/`), highest first for a hierarchy.
    pub values: Vec<String>,
}

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

/// The policy from the sections; `anchor_id` resolves an anchor file (and checks it is one of
/// the anchors); `token_issuers` are the configured issuers' `iss` values.
pub fn policy(
    attributes: &[AttributeSection],
    mappings: &[MappingSection],
    anchor_id: &dyn Fn(&str, &Path) -> Result<ekg_core::CertId, ConfigError>,
    token_issuers: &[&str],
) -> Result<Policy, ConfigError> {
    let mut definitions = Vec::new();
    for a in attributes {
        let name = AttributeName::parse(&a.name).or_else(|e| bad("attribute.name", e.detail().to_owned()))?;
        let rule = match a.rule.as_str() {
            "all_of" => Rule::AllOf,
            "any_of" => Rule::AnyOf,
            "hierarchy" => Rule::Hierarchy,
            _ => return bad("attribute.rule", "all_of, any_of or hierarchy"),
        };
        let values = a
            .values
            .iter()
            .map(|v| name.value(v))
            .collect::<Result<Vec<_>, _>>()
            .or_else(|e| bad("attribute.values", e.detail().to_owned()))?;
        definitions.push(AttributeDefinition { name, rule, values });
    }
    let mut subject_mappings = Vec::new();
    for m in mappings {
        let mut conditions = Vec::new();
        if let Some(p) = &m.anchor {
            conditions.push(Condition::Anchor(anchor_id("mapping.anchor", p)?));
        }
        if let Some(d) = &m.domain {
            conditions.push(Condition::Domain(d.clone()));
        }
        if let Some(o) = &m.certificate_policy {
            if o.parse::<der::asn1::ObjectIdentifier>().is_err() {
                return bad("mapping.certificate_policy", "a dotted OID");
            }
            conditions.push(Condition::CertificatePolicy(o.clone()));
        }
        if let Some(iss) = &m.token_issuer {
            if !token_issuers.contains(&iss.as_str()) {
                return bad("mapping.token_issuer", format!("{iss} is not a [[token_issuer]]"));
            }
            conditions.push(Condition::TokenIssuer(iss.clone()));
        }
        if !m.claims.is_empty() && m.token_issuer.is_none() {
            return bad("mapping.claims", "only with token_issuer (a claim means what its issuer says)");
        }
        for (name, values) in &m.claims {
            if values.is_empty() {
                return bad("mapping.claims", format!("{name}: at least one value"));
            }
            conditions.push(Condition::Claim { name: name.clone(), values: values.clone() });
        }
        if conditions.is_empty() {
            return bad("mapping", "at least one of anchor, domain, certificate_policy, token_issuer");
        }
        let grants = m
            .grants
            .iter()
            .map(|g| ekg_core::access::policy::AttributeValue::parse(g))
            .collect::<Result<Vec<_>, _>>()
            .or_else(|e| bad("mapping.grants", e.detail().to_owned()))?;
        subject_mappings.push(SubjectMapping { conditions, grants });
    }
    Policy::new(definitions, subject_mappings).or_else(|e| {
        let detail = e.detail().to_owned();
        let (field, rule) = detail.split_once(": ").unwrap_or(("attribute", detail.as_str()));
        bad(field, rule)
    })
}
