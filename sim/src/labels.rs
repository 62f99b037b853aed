//! Labelled traffic (`docs/simulator.md` §7): the scenario's one label, the policy every
//! gatekeeper holds for it, and who holds it. Who holds it is decided by the core's own
//! policy code ([`ekg_core::access::policy::decide`] over [`Policy::entitlements`]), the same decision
//! the gatekeeper makes at release (V26), so the simulator's count of entitled readers cannot
//! drift from the gatekeeper's rule.

use ekg_core::EmailAddress;
use ekg_core::access::policy::{
    AttributeDefinition, AttributeValue, Condition, Policy, Rule, SubjectFacts, SubjectMapping, decide,
};

use crate::error::SimError;
use crate::scenario::LabelSpec;

/// The label and the policy: its attribute defined `all_of` with the one value, and one
/// subject mapping per entitled organisation on the certificate's address domain.
pub fn policy(spec: &LabelSpec) -> Result<(AttributeValue, Policy), SimError> {
    let label =
        AttributeValue::parse(&spec.label).map_err(|e| SimError::Scenario(format!("labels: {}", e.detail())))?;
    let definition = AttributeDefinition { name: label.attribute(), rule: Rule::AllOf, values: vec![label.clone()] };
    let mappings = spec
        .entitled
        .iter()
        .map(|d| SubjectMapping { conditions: vec![Condition::Domain(d.clone())], grants: vec![label.clone()] })
        .collect();
    let policy =
        Policy::new(vec![definition], mappings).map_err(|e| SimError::Scenario(format!("labels: {}", e.detail())))?;
    Ok((label, policy))
}

/// Whether the holder of a certificate for `address` holds `label` under `policy`.
pub fn holds(policy: &Policy, label: &AttributeValue, address: &EmailAddress) -> bool {
    let facts = SubjectFacts { addresses: vec![address.clone()], ..SubjectFacts::default() };
    decide(policy, std::slice::from_ref(label), &policy.entitlements(&facts)).is_ok()
}
