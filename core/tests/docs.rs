//! The documentation stays true to the code: every rejection code is documented with its
//! step in docs/protocol.md, and every OID constant appears in docs/ekg.asn1.

use ekg_core::Rejection;
use ekg_core::wire::oid;

const PROTOCOL: &str = include_str!("../../docs/protocol.md");
const ASN1: &str = include_str!("../../docs/ekg.asn1");

#[test]
fn every_rejection_code_is_documented_in_protocol_md() {
    let missing: Vec<_> = Rejection::ALL.iter().filter(|r| !PROTOCOL.contains(&format!("`{}`", r.code()))).collect();
    assert!(missing.is_empty(), "undocumented codes: {missing:?}");
    for r in Rejection::ALL {
        assert!(
            PROTOCOL.contains(&format!("| {} |", r.step())) || PROTOCOL.contains(&format!("| {} ", r.step())),
            "step {} of {} is not a row of protocol.md",
            r.step(),
            r.code()
        );
    }
}

#[test]
fn every_ekg_oid_is_in_the_asn1_module() {
    for o in [
        oid::ID_EKG,
        oid::CT_KEY_REQUEST,
        oid::CT_TICKET,
        oid::CT_RELEASE_REQUEST,
        oid::CT_KEY_DELIVERY,
        oid::CT_ISSUANCE,
        oid::CT_TREE_HEAD,
        oid::AA_TICKET_DIGEST,
        oid::UA_TICKET,
        oid::KP_GATEKEEPER,
    ] {
        let name = oid::name(&o).unwrap_or("id-ekg");
        assert!(ASN1.contains(&format!("-- {o}")), "{name} {o} missing from ekg.asn1");
        assert!(ASN1.contains(name), "{name} missing from ekg.asn1");
    }
}
