#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::attributes::{AttributesForm, ConditionForm, policy};
use super::*;
use crate::CertId;
use crate::access::policy::{Condition, Rule};

fn anchors(limits: PathLimits) -> TrustAnchors {
    TrustAnchors::from_der(&crate::crypto::RustCrypto, &[], limits).unwrap()
}

#[test]
fn the_cores_defaults_are_the_forms() {
    let s = GatekeeperSettings::default();
    let c = GatekeeperConfig::new("https://gk.example.com", anchors(PathLimits::default()));
    assert_eq!(c.policy, s.policy);
    assert_eq!(c.ledger, s.ledger());
    assert_eq!(c.ledger_config(), s.ledger());
    assert_eq!(c.ticket_lifetime_secs, s.ticket_lifetime_secs);
    assert_eq!(c.max_recipients, s.max_recipients);
    assert_eq!(c.max_clock_skew_secs, s.max_clock_skew_secs);
    assert_eq!(c.storage_epoch_secs, s.storage_epoch_secs);
    assert_eq!(PathLimits::default(), s.path_limits());
    // The ledger's own default window is the default skew (the same fact).
    assert_eq!(LedgerConfig::default(), s.ledger());
    // The documented values (docs/server.md, "Configuration").
    assert_eq!(
        (s.policy, s.retention_secs, s.max_deliveries, s.ticket_lifetime_secs),
        (ReleasePolicy::Once, 0, 3, 30 * 24 * 3600)
    );
    assert_eq!((s.max_recipients, s.max_clock_skew_secs, s.max_path_len, s.storage_epoch_secs), (1000, 300, 4, 86_400));
}

#[test]
fn a_field_left_out_takes_its_default() {
    let empty: GatekeeperSettings = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, GatekeeperSettings::default());
    let one: GatekeeperSettings = serde_json::from_str(r#"{"max_deliveries": 7}"#).unwrap();
    assert_eq!(one, GatekeeperSettings { max_deliveries: 7, ..GatekeeperSettings::default() });
}

#[test]
fn the_vectors_camel_case_is_read_as_the_same_fields() {
    let camel: GatekeeperSettings = serde_json::from_str(
        r#"{"policy": "same_certificate", "retentionSecs": 1, "maxDeliveries": 2, "ticketLifetimeSecs": 3,
            "maxRecipients": 4, "maxClockSkewSecs": 5, "maxPathLen": 6, "storageEpochSecs": 7}"#,
    )
    .unwrap();
    let snake: GatekeeperSettings = serde_json::from_str(
        r#"{"policy": "same_certificate", "retention_secs": 1, "max_deliveries": 2, "ticket_lifetime_secs": 3,
            "max_recipients": 4, "max_clock_skew_secs": 5, "max_path_len": 6, "storage_epoch_secs": 7}"#,
    )
    .unwrap();
    assert_eq!(camel, snake);
    assert_eq!(serde_json::to_value(&snake).unwrap()["policy"], "same_certificate");
}

#[test]
fn every_setting_reaches_the_cores_configuration() {
    let s = GatekeeperSettings {
        policy: ReleasePolicy::SameCertificate,
        retention_secs: 11,
        max_deliveries: 12,
        ticket_lifetime_secs: 13,
        max_recipients: 14,
        max_clock_skew_secs: 15,
        max_path_len: 6,
        storage_epoch_secs: 17,
    };
    let c = s.configure("https://gk.example.com", anchors(s.path_limits()));
    assert_eq!(c.policy, ReleasePolicy::SameCertificate);
    assert_eq!(c.ledger, LedgerConfig { retention_secs: 11, max_deliveries: 12, request_window_secs: Some(15) });
    assert_eq!((c.ticket_lifetime_secs, c.max_recipients, c.max_clock_skew_secs), (13, 14, 15));
    assert_eq!((c.anchors.limits().max_path_len, c.storage_epoch_secs), (6, 17));
}

#[test]
fn unknown_fields_and_names_are_refused_with_the_rule() {
    let unknown = serde_json::from_str::<GatekeeperSettings>(r#"{"colour": "blue"}"#).unwrap_err();
    assert!(unknown.to_string().contains("unknown field"), "{unknown}");
    let twice = serde_json::from_str::<GatekeeperSettings>(r#"{"policy": "twice"}"#).unwrap_err();
    assert!(twice.to_string().contains("once or same_certificate, not \"twice\""), "{twice}");
    assert_eq!("hierarchy".parse::<Rule>(), Ok(Rule::Hierarchy));
    assert!("all".parse::<Rule>().unwrap_err().contains("all_of, any_of or hierarchy"));
    assert_eq!(ReleasePolicy::NAMES, ["once", "same_certificate"]);
}

const ATTR: &str = "https://example.com/attr/export";
const ISS: &str = "https://id.example.org";

fn form(mappings: serde_json::Value) -> AttributesForm {
    serde_json::from_value(serde_json::json!({
        "definitions": [{"name": ATTR, "rule": "all_of", "values": ["itar"]}],
        "mappings": mappings,
    }))
    .unwrap()
}

fn policy_of(f: &AttributesForm) -> Result<crate::access::policy::Policy, SettingsError> {
    let anchor = |name: &str| -> Result<CertId, SettingsError> {
        if name == "ca.example.com.cert.pem" {
            Ok(CertId([1; 32]))
        } else {
            Err(SettingsError::new("mapping.anchor", format!("{name} is not an anchor")))
        }
    };
    policy(&f.definitions, &f.mappings, &anchor, &[ISS])
}

#[test]
fn every_condition_is_read_from_its_json_form() {
    let grant = format!("{ATTR}/value/itar");
    let f = form(serde_json::json!([{"conditions": [
        {"anchor": "ca.example.com.cert.pem"}, {"domain": "example.com"}, {"certificatePolicy": "1.2.3"},
        {"tokenIssuer": ISS}, {"claim": {"name": "groups", "values": ["export"]}}], "grants": [grant]}]));
    assert!(matches!(f.mappings[0].conditions[4], ConditionForm::Claim(_)));
    let name = crate::access::policy::AttributeName::parse(ATTR).unwrap();
    let value = name.value("itar").unwrap();
    let expected = crate::access::policy::Policy::new(
        vec![crate::access::policy::AttributeDefinition { name, rule: Rule::AllOf, values: vec![value.clone()] }],
        vec![crate::access::policy::SubjectMapping {
            conditions: vec![
                Condition::Anchor(CertId([1; 32])),
                Condition::Domain("example.com".into()),
                Condition::CertificatePolicy("1.2.3".into()),
                Condition::TokenIssuer(ISS.into()),
                Condition::Claim { name: "groups".into(), values: vec!["export".into()] },
            ],
            grants: vec![value],
        }],
    )
    .unwrap();
    assert_eq!(policy_of(&f).unwrap(), expected);
}

#[test]
fn each_bad_rule_is_named() {
    let grant = format!("{ATTR}/value/itar");
    let field = |mappings: serde_json::Value| policy_of(&form(mappings)).unwrap_err().field;
    let with = |c: serde_json::Value| serde_json::json!([{"conditions": c, "grants": [grant]}]);
    assert_eq!(field(with(serde_json::json!([]))), "mapping");
    assert_eq!(field(with(serde_json::json!([{"certificatePolicy": "not an oid"}]))), "mapping.certificate_policy");
    assert_eq!(field(with(serde_json::json!([{"tokenIssuer": "https://other.example"}]))), "mapping.token_issuer");
    assert_eq!(field(with(serde_json::json!([{"claim": {"name": "g", "values": ["x"]}}]))), "mapping.claims");
    let empty_claim = serde_json::json!([{"tokenIssuer": ISS}, {"claim": {"name": "g", "values": []}}]);
    assert_eq!(field(with(empty_claim)), "mapping.claims");
    assert_eq!(field(with(serde_json::json!([{"anchor": "ca.other.cert.pem"}]))), "mapping.anchor");
    let bad_grant = serde_json::json!([{"conditions": [{"domain": "example.com"}], "grants": ["nope"]}]);
    assert_eq!(field(bad_grant), "mapping.grants");
    let mut bad_name = form(serde_json::json!([]));
    bad_name.definitions[0].name = format!("{ATTR}/value/x");
    assert_eq!(policy_of(&bad_name).unwrap_err().field, "attribute.name");
    let e: crate::Error = policy_of(&bad_name).unwrap_err().into();
    assert_eq!(e.code(), SettingsError::CODE);
}

#[test]
fn token_issuers_are_checked_once_whatever_form_they_were_read_from() {
    use super::tokens::{TokenIssuerForm, issuers};
    let read = |json: &str| -> Vec<TokenIssuerForm> { serde_json::from_str(json).unwrap() };
    let ok = read(
        r#"[{"issuer": "https://id.example.org", "domains": ["Example.ORG"],
             "subjects": {"bob-client": "bob@example.org"}}]"#,
    );
    let got = issuers(&ok, "https://gk.example.com/").unwrap();
    assert_eq!(got[0].audience, "https://gk.example.com/", "the gatekeeper's URI by default");
    assert_eq!(got[0].domains, ["example.org"], "domains lower-cased");
    let field = |json: &str| issuers(&read(json), "https://gk.example.com/").unwrap_err().field;
    let one = |changes: &str| format!(r#"[{{"domains": ["example.org"], {changes}}}]"#);
    assert_eq!(field(&one(r#""issuer": "http://id.example.org""#)), "token_issuer.issuer");
    assert_eq!(field(&one(r#""issuer": "https://u@id.example.org""#)), "token_issuer.issuer");
    assert_eq!(
        field(
            r#"[{"issuer": "https://a.example", "domains": ["x"]}, {"issuer": "https://a.example", "domains": ["x"]}]"#
        ),
        "token_issuer.issuer",
        "twice"
    );
    assert_eq!(field(r#"[{"issuer": "https://a.example", "domains": ["not a domain"]}]"#), "token_issuer.domains");
    assert_eq!(
        field(&one(r#""issuer": "https://a.example", "subjects": {"s": "not an address"}"#)),
        "token_issuer.subjects"
    );
    assert_eq!(
        field(&one(r#""issuer": "https://a.example", "subjects": {"s": "dave@example.net"}"#)),
        "token_issuer",
        "a subject outside the issuer's domains"
    );
    assert_eq!(field(r#"[{"issuer": "https://a.example", "domains": []}]"#), "token_issuer");
}
