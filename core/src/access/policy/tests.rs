use std::collections::BTreeMap;

use super::mapping::TokenFacts;
use super::*;
use crate::address::EmailAddress;
use crate::ids::CertId;

const NS: &str = "https://example.com/attr";

fn v(attr: &str, value: &str) -> AttributeValue {
    AttributeValue::parse(&format!("{NS}/{attr}/value/{value}")).expect("value")
}

fn def(attr: &str, rule: Rule, values: &[&str]) -> AttributeDefinition {
    AttributeDefinition {
        name: AttributeName::parse(&format!("{NS}/{attr}")).expect("name"),
        rule,
        values: values.iter().map(|x| v(attr, x)).collect(),
    }
}

/// classification: hierarchy top_secret > secret > confidential; export: all_of itar, ear;
/// project: any_of apollo, gemini.
fn policy() -> Policy {
    Policy::new(
        vec![
            def("classification", Rule::Hierarchy, &["top_secret", "secret", "confidential"]),
            def("export", Rule::AllOf, &["itar", "ear"]),
            def("project", Rule::AnyOf, &["apollo", "gemini"]),
        ],
        vec![],
    )
    .expect("policy")
}

fn held(values: &[AttributeValue]) -> Entitlements {
    values.iter().cloned().collect()
}

fn code(r: Result<()>) -> Option<&'static str> {
    r.err().map(|e| e.code())
}

#[test]
fn an_unlabelled_key_needs_no_entitlement() {
    assert_eq!(code(decide(&policy(), &[], &Entitlements::new())), None);
}

#[test]
fn all_of_needs_every_value_the_label_carries() {
    let p = policy();
    let label = [v("export", "itar"), v("export", "ear")];
    assert_eq!(code(decide(&p, &label, &held(&label))), None);
    // One of the two is not enough (planted bug: `any` for `all` would accept it).
    assert_eq!(code(decide(&p, &label, &held(&[v("export", "itar")]))), Some("entitlement_all_of_unmet"));
    assert_eq!(code(decide(&p, &label, &Entitlements::new())), Some("entitlement_all_of_unmet"));
    // Values the label does not carry are not asked for.
    assert_eq!(code(decide(&p, &[v("export", "itar")], &held(&[v("export", "itar")]))), None);
}

#[test]
fn any_of_needs_one_value_the_label_carries() {
    let p = policy();
    let label = [v("project", "apollo"), v("project", "gemini")];
    assert_eq!(code(decide(&p, &label, &held(&[v("project", "gemini")]))), None);
    assert_eq!(code(decide(&p, &label, &held(&[v("project", "apollo")]))), None);
    assert_eq!(
        code(decide(&p, &[v("project", "apollo")], &held(&[v("project", "gemini")]))),
        Some("entitlement_any_of_unmet")
    );
    assert_eq!(code(decide(&p, &label, &Entitlements::new())), Some("entitlement_any_of_unmet"));
}

#[test]
fn hierarchy_needs_a_value_at_or_above_the_label() {
    let p = policy();
    let secret = [v("classification", "secret")];
    assert_eq!(code(decide(&p, &secret, &held(&[v("classification", "secret")]))), None);
    assert_eq!(code(decide(&p, &secret, &held(&[v("classification", "top_secret")]))), None);
    assert_eq!(
        code(decide(&p, &secret, &held(&[v("classification", "confidential")]))),
        Some("entitlement_hierarchy_unmet")
    );
    assert_eq!(code(decide(&p, &secret, &Entitlements::new())), Some("entitlement_hierarchy_unmet"));
    // Two values on the label: the higher one decides (planted bug: the lower one would
    // let `secret` read a `top_secret` key).
    let both = [v("classification", "secret"), v("classification", "top_secret")];
    assert_eq!(code(decide(&p, &both, &held(&[v("classification", "secret")]))), Some("entitlement_hierarchy_unmet"));
    assert_eq!(code(decide(&p, &both, &held(&[v("classification", "top_secret")]))), None);
    // The lowest holder of the lowest value.
    let low = [v("classification", "confidential")];
    assert_eq!(code(decide(&p, &low, &held(&[v("classification", "confidential")]))), None);
}

#[test]
fn every_attribute_of_the_label_must_be_met() {
    let p = policy();
    let label = [v("classification", "secret"), v("project", "apollo")];
    assert_eq!(code(decide(&p, &label, &held(&[v("classification", "secret")]))), Some("entitlement_any_of_unmet"));
    assert_eq!(code(decide(&p, &label, &held(&[v("project", "apollo")]))), Some("entitlement_hierarchy_unmet"));
    assert_eq!(code(decide(&p, &label, &held(&[v("project", "apollo"), v("classification", "top_secret")]))), None);
}

#[test]
fn a_refusal_names_the_attribute_and_nothing_else_of_the_policy() {
    let e = decide(&policy(), &[v("classification", "secret")], &held(&[v("classification", "confidential")]))
        .expect_err("refused");
    assert_eq!(e.detail(), "attribute https://example.com/attr/classification");
}

#[test]
fn a_label_the_policy_does_not_define_is_unknown() {
    let p = policy();
    assert_eq!(code(decide(&p, &[v("colour", "red")], &Entitlements::new())), Some("label_unknown"));
    assert_eq!(code(decide(&p, &[v("export", "dual_use")], &held(&[v("export", "dual_use")]))), Some("label_unknown"));
}

#[test]
fn labels_parse_as_attribute_value_uris_only() {
    assert_eq!(v("Export", "ITAR").as_str(), "https://example.com/attr/export/value/itar");
    assert_eq!(v("export", "itar").attribute().as_str(), "https://example.com/attr/export");
    for bad in [
        "",
        "http://example.com/attr/a/value/b",
        "https://example.com/attr/a",
        "https://example.com/a/value/b",
        "https://exa mple.com/attr/a/value/b",
        "https:///attr/a/value/b",
        "https://example.com/attr/a/value/",
        "https://example.com/attr/a/b/value/c",
        "https://example.com/attr/a/value/b/c",
        "https://-example.com/attr/a/value/b",
    ] {
        assert_eq!(AttributeValue::parse(bad).map(drop).map_err(|e| e.code()), Err("invalid_label"), "{bad:?}");
    }
    let long = format!("https://example.com/attr/a/value/{}", "b".repeat(MAX_LABEL_LEN));
    assert!(AttributeValue::parse(&long).is_err());
}

#[test]
fn a_policy_refuses_inconsistent_definitions() {
    let bad = |d: Vec<AttributeDefinition>, m: Vec<SubjectMapping>| Policy::new(d, m).map(drop).map_err(|e| e.code());
    assert_eq!(
        bad(vec![def("a", Rule::AllOf, &["x"]), def("a", Rule::AnyOf, &["y"])], vec![]),
        Err("invalid_configuration")
    );
    assert_eq!(bad(vec![def("a", Rule::AllOf, &["x", "x"])], vec![]), Err("invalid_configuration"));
    assert_eq!(bad(vec![def("a", Rule::AllOf, &[])], vec![]), Err("invalid_configuration"));
    let mut other = def("a", Rule::AllOf, &["x"]);
    other.values.push(v("b", "x"));
    assert_eq!(bad(vec![other], vec![]), Err("invalid_configuration"));
    let grants_undefined =
        SubjectMapping { conditions: vec![Condition::Domain("example.com".into())], grants: vec![v("a", "y")] };
    assert_eq!(bad(vec![def("a", Rule::AllOf, &["x"])], vec![grants_undefined]), Err("invalid_configuration"));
}

fn facts() -> SubjectFacts {
    SubjectFacts {
        anchor: Some(CertId([7; 32])),
        certificate_policies: vec!["2.16.840.1.101.3.2.1.3.13".into()],
        addresses: vec![EmailAddress::parse("bob@example.org").expect("address")],
        token: Some(TokenFacts {
            issuer: "http://127.0.0.1:1/".into(),
            subject: "bob".into(),
            claims: BTreeMap::from([("groups".into(), vec!["itar-cleared".into(), "staff".into()])]),
        }),
    }
}

#[test]
fn a_mapping_applies_when_every_condition_holds() {
    let piv = Condition::CertificatePolicy("2.16.840.1.101.3.2.1.3.13".into());
    let grants = vec![v("export", "itar")];
    let m = |conditions: Vec<Condition>| SubjectMapping { conditions, grants: grants.clone() };
    let f = facts();
    assert!(m(vec![piv.clone()]).applies(&f));
    assert!(m(vec![Condition::Anchor(CertId([7; 32])), Condition::Domain("EXAMPLE.org".into())]).applies(&f));
    assert!(!m(vec![Condition::Anchor(CertId([8; 32]))]).applies(&f));
    assert!(!m(vec![Condition::Domain("sub.example.org".into())]).applies(&f));
    assert!(m(vec![Condition::TokenIssuer("http://127.0.0.1:1/".into())]).applies(&f));
    let cleared = Condition::Claim { name: "groups".into(), values: vec!["itar-cleared".into()] };
    assert!(m(vec![piv.clone(), cleared.clone()]).applies(&f));
    // AND, not OR: one failing condition stops the mapping.
    assert!(!m(vec![cleared.clone(), Condition::TokenIssuer("https://other/".into())]).applies(&f));
    // No token, no claim.
    let no_token = SubjectFacts { token: None, ..facts() };
    assert!(!m(vec![cleared.clone()]).applies(&no_token));
    assert!(!m(vec![Condition::Claim { name: "groups".into(), values: vec!["admins".into()] }]).applies(&f));
    // An empty mapping grants nothing.
    assert!(!m(vec![]).applies(&f));
}

#[test]
fn entitlements_are_the_union_of_the_mappings_that_apply() {
    let p = Policy::new(
        vec![def("export", Rule::AllOf, &["itar", "ear"])],
        vec![
            SubjectMapping {
                conditions: vec![Condition::Claim { name: "groups".into(), values: vec!["itar-cleared".into()] }],
                grants: vec![v("export", "itar")],
            },
            SubjectMapping {
                conditions: vec![Condition::Domain("example.org".into())],
                grants: vec![v("export", "ear")],
            },
            SubjectMapping {
                conditions: vec![Condition::Domain("example.com".into())],
                grants: vec![v("export", "ear"), v("export", "itar")],
            },
        ],
    )
    .expect("policy");
    assert_eq!(p.entitlements(&facts()), held(&[v("export", "itar"), v("export", "ear")]));
    let no_token = SubjectFacts { token: None, ..facts() };
    assert_eq!(p.entitlements(&no_token), held(&[v("export", "ear")]));
}
