//! Attribute-based release: security labels, policies by reference, entitlements. Crypto-free.
//!
//! A key request may carry **labels**: attribute-value URIs in the OpenTDF style
//! (`https://<namespace>/attr/<name>/value/<value>`, `docs/protocol.md` §11). The gatekeeper
//! holds the **policy** by reference: for each attribute (`https://<namespace>/attr/<name>`)
//! its rule ([`Rule::AllOf`], [`Rule::AnyOf`], [`Rule::Hierarchy`]) and its values, and
//! **subject mappings** ([`mapping`]) from what it verified about a party (its certificate's
//! anchor and policy OIDs, a token's issuer, subject and claims) to **entitlements**
//! (attribute values the party holds). [`decide`] says whether entitlements satisfy labels;
//! the sender must satisfy its own labels at issuance (V15), a recipient at release (V26).
//!
//! The rules are those of OpenTDF's access evaluation (`opentdf/platform`,
//! `service/internal/access/v2/evaluate.go`: `allOfRule`, `anyOfRule`, `hierarchyRule`). A
//! refusal names the attribute (which the label, visible in the ticket, already names),
//! never a value the party lacks nor anything else of the policy.

pub mod mapping;

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Rejection, Result, reject};

pub use mapping::{Condition, SubjectFacts, SubjectMapping};

/// Most labels on one key request.
pub const MAX_LABELS: usize = 16;
/// Longest attribute-value URI, in bytes.
pub const MAX_LABEL_LEN: usize = 512;
/// Most attribute definitions, and most values per definition, in a policy.
pub const MAX_DEFINITIONS: usize = 1000;

/// An attribute-value URI, `https://<namespace>/attr/<name>/value/<value>`, lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttributeValue(String);

/// An attribute definition's name, `https://<namespace>/attr/<name>`, lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttributeName(String);

impl AttributeValue {
    /// Parses a label (`invalid_label` if it is not an attribute-value URI of the profile).
    /// Comparison is case-insensitive, as OpenTDF's: the URI is kept lower-cased.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| reject(Rejection::InvalidLabel, format!("label: {why}"));
        if text.is_empty() || text.len() > MAX_LABEL_LEN {
            return Err(bad("1 to 512 bytes"));
        }
        let lower = text.to_ascii_lowercase();
        let rest = lower.strip_prefix("https://").ok_or_else(|| bad("not an https:// attribute-value URI"))?;
        let (namespace, rest) = rest.split_once("/attr/").ok_or_else(|| bad("no /attr/ segment"))?;
        let (name, value) = rest.split_once("/value/").ok_or_else(|| bad("no /value/ segment"))?;
        let host_ok = !namespace.is_empty()
            && namespace.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        let segment_ok =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !host_ok {
            return Err(bad("the namespace is not a host name"));
        }
        if !segment_ok(name) || !segment_ok(value) {
            return Err(bad("a name or value is not of [a-z0-9._-]"));
        }
        Ok(AttributeValue(lower))
    }

    /// The URI.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The attribute it is a value of.
    pub fn attribute(&self) -> AttributeName {
        // parse() guarantees the segment.
        let at = self.0.rfind("/value/").unwrap_or(self.0.len());
        AttributeName(self.0[..at].to_owned())
    }
}

impl AttributeName {
    /// Parses an attribute definition's name, `https://<namespace>/attr/<name>`.
    pub fn parse(text: &str) -> Result<Self> {
        let value = AttributeValue::parse(&format!("{text}/value/x"))?;
        Ok(value.attribute())
    }

    /// The URI.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI of one of its values (`invalid_label` if `value` is not a value segment).
    pub fn value(&self, value: &str) -> Result<AttributeValue> {
        AttributeValue::parse(&format!("{}/value/{value}", self.0))
    }
}

impl core::fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::fmt::Display for AttributeName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a label's values of one attribute are satisfied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Every value the label carries must be held.
    AllOf,
    /// At least one of the values the label carries must be held.
    AnyOf,
    /// Values are ranked (first highest): some held value must rank at or above the highest
    /// value the label carries.
    Hierarchy,
}

/// One attribute of the policy: its rule and its values (for a hierarchy, highest first).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AttributeDefinition {
    /// The attribute.
    pub name: AttributeName,
    /// Its rule.
    pub rule: Rule,
    /// Its values, distinct (a label naming another value is `label_unknown`).
    pub values: Vec<AttributeValue>,
}

/// The gatekeeper's policy: attribute definitions and subject mappings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Policy {
    definitions: BTreeMap<AttributeName, AttributeDefinition>,
    mappings: Vec<SubjectMapping>,
}

/// The attribute values a party holds.
pub type Entitlements = BTreeSet<AttributeValue>;

impl Policy {
    /// A policy from its definitions and mappings (`invalid_configuration` naming the field
    /// for a definition named twice, a value outside its attribute or named twice, a
    /// mapping granting a value no definition has, or more than [`MAX_DEFINITIONS`]).
    pub fn new(definitions: Vec<AttributeDefinition>, mappings: Vec<SubjectMapping>) -> Result<Self> {
        let bad = |field: &str, why: String| Err(reject(Rejection::InvalidConfiguration, format!("{field}: {why}")));
        if definitions.len() > MAX_DEFINITIONS || mappings.len() > MAX_DEFINITIONS {
            return bad("policy", format!("at most {MAX_DEFINITIONS} attributes and {MAX_DEFINITIONS} mappings"));
        }
        let mut by_name = BTreeMap::new();
        for d in definitions {
            if d.values.is_empty() || d.values.len() > MAX_DEFINITIONS {
                return bad("policy.attributes", format!("{}: 1 to {MAX_DEFINITIONS} values", d.name));
            }
            let distinct: BTreeSet<_> = d.values.iter().collect();
            if distinct.len() != d.values.len() || d.values.iter().any(|v| v.attribute() != d.name) {
                return bad("policy.attributes", format!("{}: values distinct and of this attribute", d.name));
            }
            let name = d.name.clone();
            if by_name.insert(name.clone(), d).is_some() {
                return bad("policy.attributes", format!("{name} defined twice"));
            }
        }
        let policy = Policy { definitions: by_name, mappings };
        for m in &policy.mappings {
            if let Some(v) = m.grants.iter().find(|v| !policy.defines(v)) {
                return bad("policy.mappings", format!("grants {v}, which no attribute defines"));
            }
        }
        Ok(policy)
    }

    /// Whether the policy defines this value.
    pub fn defines(&self, value: &AttributeValue) -> bool {
        self.definitions.get(&value.attribute()).is_some_and(|d| d.values.contains(value))
    }

    /// The entitlements a party holds: the union of what every mapping whose conditions it
    /// meets grants.
    pub fn entitlements(&self, facts: &SubjectFacts) -> Entitlements {
        self.mappings.iter().filter(|m| m.applies(facts)).flat_map(|m| m.grants.iter().cloned()).collect()
    }
}

/// Whether `entitlements` satisfy every label (V15 at issuance, V26 at release), attribute
/// by attribute in name order; the first that fails is the answer, naming the attribute:
/// `label_unknown` (no such attribute or value in the policy), then per rule
/// `entitlement_all_of_unmet`, `entitlement_any_of_unmet`, `entitlement_hierarchy_unmet`.
/// No label: allowed (an unlabelled key behaves as before).
pub fn decide(policy: &Policy, labels: &[AttributeValue], entitlements: &Entitlements) -> Result<()> {
    let mut by_attribute: BTreeMap<AttributeName, Vec<&AttributeValue>> = BTreeMap::new();
    for label in labels {
        by_attribute.entry(label.attribute()).or_default().push(label);
    }
    for (name, wanted) in &by_attribute {
        let unknown = || reject(Rejection::LabelUnknown, format!("attribute {name}"));
        let definition = policy.definitions.get(name).ok_or_else(unknown)?;
        if wanted.iter().any(|v| !definition.values.contains(v)) {
            return Err(unknown());
        }
        let unmet = |r: Rejection| Err(reject(r, format!("attribute {name}")));
        match definition.rule {
            Rule::AllOf => {
                if !wanted.iter().all(|v| entitlements.contains(*v)) {
                    return unmet(Rejection::EntitlementAllOfUnmet);
                }
            }
            Rule::AnyOf => {
                if !wanted.iter().any(|v| entitlements.contains(*v)) {
                    return unmet(Rejection::EntitlementAnyOfUnmet);
                }
            }
            Rule::Hierarchy => {
                let rank = |v: &AttributeValue| definition.values.iter().position(|d| d == v);
                // The highest value asked for is the one with the smallest rank.
                let needed = wanted.iter().filter_map(|v| rank(v)).min().unwrap_or(0);
                let held = entitlements.iter().filter_map(rank).min();
                if held.is_none_or(|h| h > needed) {
                    return unmet(Rejection::EntitlementHierarchyUnmet);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
