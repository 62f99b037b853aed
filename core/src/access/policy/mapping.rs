//! Subject mappings: from what the gatekeeper verified about a party to entitlements.
//!
//! A party's facts are its certificate's (the anchor its path ends at, its certificate
//! policy OIDs, e.g. a PIV policy as a level of assurance, its addresses) and, at release,
//! those of a verified access token (issuer, subject, claims). A mapping grants its values
//! when **every** one of its conditions holds (OpenTDF's condition groups with `AND`, each
//! condition an `IN` over one fact). A claim counts only from a token the gatekeeper
//! verified; an `email` claim is a claim like any other and never identifies anyone (nOAuth).

use std::collections::BTreeMap;

use super::AttributeValue;
use crate::address::EmailAddress;
use crate::ids::CertId;

/// What the gatekeeper verified about one party.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectFacts {
    /// The anchor the certificate's path ends at.
    pub anchor: Option<CertId>,
    /// The end-entity certificate's policy OIDs (dotted).
    pub certificate_policies: Vec<String>,
    /// The certificate's addresses that count for this request.
    pub addresses: Vec<EmailAddress>,
    /// A verified access token's facts, if the request carried one.
    pub token: Option<TokenFacts>,
}

/// A verified access token's issuer, subject and claims (each claim as its string values: a
/// string, or each string of an array).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenFacts {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// Every other claim, by name.
    pub claims: BTreeMap<String, Vec<String>>,
}

/// One fact a mapping tests.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// The certificate's path ends at this anchor.
    Anchor(CertId),
    /// The certificate carries this policy OID.
    CertificatePolicy(String),
    /// An address of the certificate is in this domain (case-insensitive, no subdomains).
    Domain(String),
    /// A verified token from this issuer.
    TokenIssuer(String),
    /// A verified token whose claim `name` has one of `values`.
    Claim {
        /// The claim's name.
        name: String,
        /// Any of these values.
        values: Vec<String>,
    },
}

/// Grants `grants` to a party meeting every condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SubjectMapping {
    /// All must hold; an empty list never applies.
    pub conditions: Vec<Condition>,
    /// What it grants.
    pub grants: Vec<AttributeValue>,
}

impl SubjectMapping {
    /// Whether every condition holds for `facts` (never for an empty list).
    pub fn applies(&self, facts: &SubjectFacts) -> bool {
        !self.conditions.is_empty() && self.conditions.iter().all(|c| c.holds(facts))
    }
}

impl Condition {
    /// Whether the condition holds for `facts`.
    pub fn holds(&self, facts: &SubjectFacts) -> bool {
        match self {
            Condition::Anchor(a) => facts.anchor.as_ref() == Some(a),
            Condition::CertificatePolicy(oid) => facts.certificate_policies.iter().any(|p| p == oid),
            Condition::Domain(d) => facts.addresses.iter().any(|a| a.in_domain(d)),
            Condition::TokenIssuer(iss) => facts.token.as_ref().is_some_and(|t| t.issuer == *iss),
            Condition::Claim { name, values } => facts
                .token
                .as_ref()
                .and_then(|t| t.claims.get(name))
                .is_some_and(|held| held.iter().any(|h| values.contains(h))),
        }
    }
}
