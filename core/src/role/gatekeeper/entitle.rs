//! The gatekeeper's label checks (`docs/protocol.md` §11): V15 at issuance (the labels are
//! defined and the sender holds them), V26 at release (the requester holds the labels of the
//! key as the store recorded them, `crate::ledger::EntitledRelease`). The decision is
//! [`crate::access::policy::decide`]; this module gathers the facts it is decided on.

use der::Decode;
use x509_cert::ext::pkix::CertificatePolicies;

use super::config::GatekeeperConfig;
use crate::access::policy::{self, SubjectFacts, mapping::TokenFacts};
use crate::crypto::pki::ValidatedCertificate;
use crate::error::Result;
use crate::role::ticket::KeyRequestContent;

/// The facts of a validated certificate (its anchor, policy OIDs and the addresses that
/// count), with a verified token's if any.
pub fn subject_facts(cert: &ValidatedCertificate, token: Option<TokenFacts>) -> SubjectFacts {
    SubjectFacts {
        anchor: Some(cert.anchor),
        certificate_policies: certificate_policies(&cert.certificate),
        addresses: cert.addresses.clone(),
        token,
    }
}

/// The dotted OIDs of a certificate's certificatePolicies extension (RFC 5280 §4.2.1.4);
/// none if it has none or it does not decode (a mapping on a policy OID then does not apply).
pub fn certificate_policies(cert: &x509_cert::Certificate) -> Vec<String> {
    let oid = const_oid::db::rfc5280::ID_CE_CERTIFICATE_POLICIES;
    let Some(ext) = cert.tbs_certificate().extensions().and_then(|e| e.iter().find(|x| x.extn_id == oid)) else {
        return Vec::new();
    };
    CertificatePolicies::from_der(ext.extn_value.as_bytes())
        .map(|p| p.0.iter().map(|i| i.policy_identifier.to_string()).collect())
        .unwrap_or_default()
}

/// V15: a labelled request's labels are defined by the policy and the sender holds them
/// (`label_unknown`, `entitlement_*_unmet`, naming the attribute), on the facts of its
/// certificate with the request's sender address alone. An unlabelled one passes.
pub fn check_issue(
    config: &GatekeeperConfig,
    content: &KeyRequestContent,
    sender: &ValidatedCertificate,
) -> Result<()> {
    if content.labels.is_empty() {
        return Ok(());
    }
    let policy = &config.attributes;
    // Only the address the request is sent from counts (V10 made it one of the
    // certificate's): another address of the same certificate, perhaps in another domain,
    // earns nothing here, as a requester's addresses outside V25 earn nothing at V26.
    let mut facts = subject_facts(sender, None);
    facts.addresses.retain(|a| *a == content.sender);
    let held = policy.entitlements(&facts);
    policy::decide(policy, &content.labels, &held)
}
