//! Security labels end to end (`docs/protocol.md` §11): V15 at issuance, the label recorded
//! with the key, V26 at release from the store's record.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use ekg_core::Rejection;
use ekg_core::access::policy::{
    AttributeDefinition, AttributeName, AttributeValue, Condition, Policy, Rule, SubjectMapping,
};
use ekg_core::ledger::{MemoryStore, Record, ReleasePolicy};
use ekg_core::role::{Gatekeeper, Sender};

const NS: &str = "https://example.com/attr";

fn v(attr: &str, value: &str) -> AttributeValue {
    AttributeValue::parse(&format!("{NS}/{attr}/value/{value}")).unwrap()
}

fn def(attr: &str, rule: Rule, values: &[&str]) -> AttributeDefinition {
    AttributeDefinition {
        name: AttributeName::parse(&format!("{NS}/{attr}")).unwrap(),
        rule,
        values: values.iter().map(|x| v(attr, x)).collect(),
    }
}

/// export (all_of itar): held by everyone of the sender organisation's CA (alice, carol);
/// classification (hierarchy secret > confidential): example.org holds confidential,
/// example.com secret.
fn policy() -> Policy {
    let org_ca = anchor_id(&fed().sender_org.ca.issued.cert_der);
    Policy::new(
        vec![
            def("export", Rule::AllOf, &["itar"]),
            def("classification", Rule::Hierarchy, &["secret", "confidential"]),
        ],
        vec![
            SubjectMapping { conditions: vec![Condition::Anchor(org_ca)], grants: vec![v("export", "itar")] },
            SubjectMapping {
                conditions: vec![Condition::Domain("example.com".into())],
                grants: vec![v("classification", "secret")],
            },
            SubjectMapping {
                conditions: vec![Condition::Domain("example.org".into())],
                grants: vec![v("classification", "confidential")],
            },
        ],
    )
    .unwrap()
}

fn labelled_gatekeeper() -> Gk {
    let mut c = config(ReleasePolicy::Once);
    c.attributes = policy();
    gatekeeper_with(c, MemoryStore::new())
}

fn send_labelled(
    gk: &mut Gk,
    from: &Sender,
    to: &[&str],
    labels: &[AttributeValue],
    seed: u64,
) -> ekg_core::Result<Sent> {
    let mut r = rng(seed);
    let to: Vec<_> = to.iter().map(|a| addr(a)).collect();
    let pending = from.request_labelled_key(&to, labels, NOW, &mut r)?;
    let issuance = gk.handle_key_request(&pending.der, NOW, &mut r)?;
    let key = from.accept_grant(&pending, &issuance.grant, &issuance.ticket, NOW, &mut r)?;
    let plaintext = b"Subject: itar\r\n\r\ncontrolled\r\n".to_vec();
    let sealed = from.seal(&key, &plaintext, &mut r)?;
    Ok(Sent { sealed, request: pending.der, grant: issuance.grant, ticket: issuance.ticket, plaintext })
}

#[test]
fn a_labelled_key_is_released_to_an_entitled_recipient_and_refused_to_one_without() {
    let mut gk = labelled_gatekeeper();
    let itar = [v("export", "itar")];
    let sent = send_labelled(&mut gk, &alice(), &["carol@example.com", "bob@example.org"], &itar, 1).unwrap();
    assert_eq!(fetch(&mut gk, &carol(), &sent.sealed, NOW, 2).unwrap(), sent.plaintext);
    let refused = fetch(&mut gk, &bob(), &sent.sealed, NOW, 3).unwrap_err();
    assert_eq!(refused.rejection(), Rejection::EntitlementAllOfUnmet);
    assert_eq!(refused.detail(), "attribute https://example.com/attr/export");
    // Nothing was recorded for the refusal: bob is still owed, the key still held.
    let Some(ekg_core::ledger::KeyState::Pending(key)) = ledger(&gk).keys().next().map(|(_, s)| s.clone()) else {
        panic!("the key is still pending")
    };
    assert!(matches!(key.recipients[&addr("bob@example.org")], ekg_core::ledger::Delivery::Owed));
}

#[test]
fn a_hierarchy_label_is_released_at_or_above_its_rank_only() {
    let mut gk = labelled_gatekeeper();
    let secret = [v("classification", "secret")];
    let sent = send_labelled(&mut gk, &alice(), &["carol@example.com", "bob@example.org"], &secret, 4).unwrap();
    assert_eq!(code(fetch(&mut gk, &bob(), &sent.sealed, NOW, 5)), Some("entitlement_hierarchy_unmet"));
    assert_eq!(fetch(&mut gk, &carol(), &sent.sealed, NOW, 6).unwrap(), sent.plaintext);
    let confidential = [v("classification", "confidential")];
    let sent = send_labelled(&mut gk, &alice(), &["bob@example.org"], &confidential, 7).unwrap();
    assert_eq!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 8).unwrap(), sent.plaintext);
}

#[test]
fn the_label_is_signed_in_the_request_carried_in_the_ticket_and_recorded_with_the_key() {
    let mut gk = labelled_gatekeeper();
    let labels = [v("export", "itar"), v("classification", "confidential")];
    let sent = send_labelled(&mut gk, &alice(), &["carol@example.com"], &labels, 9).unwrap();
    let ticket = ekg_core::role::Ticket::open(p(), &sent.ticket).unwrap();
    assert_eq!(ticket.request.labels, labels);
    let issued: Vec<_> = gk
        .store()
        .records()
        .iter()
        .filter_map(|r| match r {
            Record::Issued { labels, .. } => Some(labels.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(issued, vec![labels.to_vec()]);
}

#[test]
fn the_sender_must_hold_the_labels_it_uses() {
    let mut gk = labelled_gatekeeper();
    // alice (example.com) holds classification secret and export itar, not a label the
    // policy does not define.
    let unknown = [v("export", "ear")];
    assert_eq!(code(send_labelled(&mut gk, &alice(), &["bob@example.org"], &unknown, 10)), Some("label_unknown"));
    // A gatekeeper whose mappings give alice nothing refuses her label (V15), and records
    // nothing.
    let mut c = config(ReleasePolicy::Once);
    c.attributes = Policy::new(vec![def("export", Rule::AllOf, &["itar"])], vec![]).unwrap();
    let mut bare = gatekeeper_with(c, MemoryStore::new());
    let itar = [v("export", "itar")];
    assert_eq!(
        code(send_labelled(&mut bare, &alice(), &["bob@example.org"], &itar, 11)),
        Some("entitlement_all_of_unmet")
    );
    assert!(bare.store().records().is_empty());
    // Without a policy, any label is unknown.
    let mut none = gatekeeper(ReleasePolicy::Once);
    assert_eq!(code(send_labelled(&mut none, &alice(), &["bob@example.org"], &itar, 12)), Some("label_unknown"));
}

#[test]
fn only_the_senders_own_address_earns_entitlements() {
    // zoe's certificate (from alice's CA) holds zoe@example.com and zoe@example.org; only
    // example.org earns export itar. Sending as zoe@example.com, she does not hold it.
    let spec = ekg_testpki::EntitySpec {
        emails: vec!["zoe@example.com".into(), "zoe@example.org".into()],
        ..ekg_testpki::EntitySpec::user("zoe@example.com")
    };
    let zoe = ekg_testpki::Pki::new(28).issue(&fed().sender_org.ca, &spec);
    let mut c = config(ReleasePolicy::Once);
    c.attributes = Policy::new(
        vec![def("export", Rule::AllOf, &["itar"])],
        vec![SubjectMapping {
            conditions: vec![Condition::Domain("example.org".into())],
            grants: vec![v("export", "itar")],
        }],
    )
    .unwrap();
    let mut gk = gatekeeper_with(c, MemoryStore::new());
    let itar = [v("export", "itar")];
    assert_eq!(
        code(send_labelled(&mut gk, &sender(&zoe), &["bob@example.org"], &itar, 16)),
        Some("entitlement_all_of_unmet")
    );
}

#[test]
fn an_unlabelled_key_behaves_as_before_under_a_policy() {
    let mut gk = labelled_gatekeeper();
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 13);
    assert_eq!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 14).unwrap(), sent.plaintext);
}

#[test]
fn the_sender_organisations_gateway_is_not_asked_for_entitlements() {
    let mut gk = labelled_gatekeeper();
    let itar = [v("export", "itar")];
    let sent = send_labelled(&mut gk, &alice(), &["bob@example.org"], &itar, 15).unwrap();
    // Released by a gatekeeper on the same store under which nobody holds anything.
    let mut c = config(ReleasePolicy::Once);
    c.attributes = Policy::new(vec![def("export", Rule::AllOf, &["itar"])], vec![]).unwrap();
    let mut gk = other_gatekeeper(c, gk);
    let gw = gateway();
    let mut r = rng(16);
    let msg = gw.receive(&sent.sealed, NOW).unwrap();
    let pending = gw.request_key(&msg, NOW, &mut r).unwrap();
    let release = gk.handle_release_request(&pending.der, NOW, &mut r).unwrap();
    assert_eq!(release.kind, ekg_core::ledger::ReleaseKind::Gateway);
}

#[test]
fn the_release_follows_the_labels_the_store_recorded() {
    // Two gatekeepers on one store: the second has a policy under which bob holds itar. The
    // store's record (not the configuration at issuance) carries the label; the decision is
    // the releasing gatekeeper's policy over it.
    let mut gk = labelled_gatekeeper();
    let itar = [v("export", "itar")];
    let sent = send_labelled(&mut gk, &alice(), &["bob@example.org"], &itar, 17).unwrap();
    assert_eq!(code(fetch(&mut gk, &bob(), &sent.sealed, NOW, 18)), Some("entitlement_all_of_unmet"));
    let mut c = config(ReleasePolicy::Once);
    c.attributes = Policy::new(
        vec![def("export", Rule::AllOf, &["itar"])],
        vec![SubjectMapping {
            conditions: vec![Condition::Domain("example.org".into())],
            grants: vec![v("export", "itar")],
        }],
    )
    .unwrap();
    let mut other = other_gatekeeper(c, gk);
    assert_eq!(fetch(&mut other, &bob(), &sent.sealed, NOW, 19).unwrap(), sent.plaintext);
}

/// A gatekeeper configured with `c` on `gk`'s store (as another instance would be).
fn other_gatekeeper(c: ekg_core::role::GatekeeperConfig, gk: Gk) -> Gk {
    let key = ekg_core::role::StorageKey::from_bytes([7; 32]);
    Gatekeeper::new(p(), c, credential(&fed().sender_org.gatekeeper), key, gk.into_store()).unwrap()
}

#[test]
fn a_client_refuses_labels_the_gatekeeper_would_refuse_as_malformed() {
    let mut r = rng(20);
    let to = [addr("bob@example.org")];
    let twice = [v("export", "itar"), v("export", "ITAR")];
    let pending = alice().request_labelled_key(&to, &twice, NOW, &mut r);
    assert_eq!(code(pending), Some("invalid_label"));
    let many: Vec<_> = (0..17).map(|i| v("export", &format!("v{i}"))).collect();
    assert_eq!(code(alice().request_labelled_key(&to, &many, NOW, &mut r)), Some("invalid_label"));
}

#[test]
fn the_labels_field_decodes_strictly() {
    use der::Encode;
    use der::asn1::{GeneralizedTime, Ia5String, OctetString};
    use ekg_core::role::KeyRequestContent;
    use ekg_core::wire::KeyRequest;
    let with = |labels: Option<Vec<&str>>| {
        KeyRequest {
            version: 0,
            sender: Ia5String::new("alice@example.com").unwrap(),
            recipients: vec![Ia5String::new("bob@example.org").unwrap()],
            nonce: OctetString::new(vec![1; 16]).unwrap(),
            request_time: GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(NOW.0)).unwrap(),
            labels: labels.map(|l| l.into_iter().map(|x| Ia5String::new(x).unwrap()).collect()),
            expansion: None,
        }
        .to_der()
        .unwrap()
    };
    let itar = "https://example.com/attr/export/value/itar";
    let plain = with(None);
    let labelled = with(Some(vec![itar]));
    // The field is the request's last, [0] IMPLICIT SEQUENCE OF: A0 len 16 len "https...".
    let mut tail = vec![0xA0, itar.len() as u8 + 2, 0x16, itar.len() as u8];
    tail.extend_from_slice(itar.as_bytes());
    assert!(labelled.ends_with(&tail), "{labelled:02x?}");
    assert_eq!(labelled.len(), plain.len() + tail.len());
    let content = KeyRequestContent::decode(&labelled).unwrap();
    assert_eq!(content.labels, vec![v("export", "itar")]);
    assert_eq!(content.encode().unwrap(), labelled);
    assert!(KeyRequestContent::decode(&plain).unwrap().labels.is_empty());
    assert_eq!(code(KeyRequestContent::decode(&with(Some(vec![])))), Some("invalid_label"));
    assert_eq!(code(KeyRequestContent::decode(&with(Some(vec!["itar"])))), Some("invalid_label"));
    assert_eq!(code(KeyRequestContent::decode(&with(Some(vec![itar, itar])))), Some("invalid_label"));
    let many: Vec<String> = (0..17).map(|i| format!("{NS}/export/value/v{i}")).collect();
    assert_eq!(
        code(KeyRequestContent::decode(&with(Some(many.iter().map(String::as_str).collect())))),
        Some("invalid_label")
    );
}
