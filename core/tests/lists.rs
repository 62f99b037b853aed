//! Mailing lists (`docs/protocol.md` §13): a list expanded where it lives, nested lists,
//! loops and the depth bound, and a reader's chain check (C7), in process.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::sync::OnceLock;

use common::*;
use der::{Decode, Encode};
use ekg_core::ledger::{MemoryStore, ReleasePolicy};
use ekg_core::role::{
    Gatekeeper, GatekeeperConfig, KeyRequestContent, ListAgent, ListExpansion, SenderRule, StorageKey,
};
use ekg_core::wire::oid;
use ekg_core::wire::signed;
use ekg_core::{Digest, UnixTime};
use ekg_testpki::{EntitySpec, Issued, Pki};

/// List identities at example.org (issued by its CA): `team` and `inner` (nested in team).
struct Lists {
    team: Issued,
    inner: Issued,
}

fn lists() -> &'static Lists {
    static LISTS: OnceLock<Lists> = OnceLock::new();
    LISTS.get_or_init(|| {
        let mut pki = Pki::new(29);
        let ca = &fed().recipient_org.ca;
        Lists {
            team: pki.issue(ca, &EntitySpec::user("team@example.org")),
            inner: pki.issue(ca, &EntitySpec::user("inner@example.org")),
        }
    })
}

/// example.org's gatekeeper: its own senders (the list agents among them).
fn list_gatekeeper() -> Gk {
    let org = &fed().recipient_org;
    let mut c = GatekeeperConfig::new(org.gatekeeper_uri(), anchors());
    c.senders =
        vec![SenderRule { domain: Some("example.org".into()), issuer: Some(anchor_id(&org.ca.issued.cert_der)) }];
    c.policy = ReleasePolicy::Once;
    c.ticket_lifetime_secs = 7 * 24 * 3600;
    Gatekeeper::new(p(), c, credential(&org.gatekeeper), StorageKey::from_bytes([9; 32]), MemoryStore::new())
        .expect("gatekeeper")
}

fn agent(list: &Issued, members: &[&str]) -> ListAgent {
    let uri = fed().recipient_org.gatekeeper_uri();
    let sender = ekg_core::role::Sender::new(p(), credential(list), anchors(), uri).expect("sender");
    ListAgent::new(p(), recipient(list), sender, members.iter().map(|m| addr(m)).collect()).expect("agent")
}

/// The agent's whole expansion: receive and fetch at `from`, then ask `own` and re-address.
fn expand(
    agent: &ListAgent,
    from: &mut Gk,
    own: Option<&mut Gk>,
    sealed: &[u8],
    seed: u64,
) -> ekg_core::Result<Vec<u8>> {
    let mut r = rng(seed);
    let msg = agent.receive(sealed, NOW)?;
    let pending = agent.request_release(&msg, NOW, &mut r)?;
    let release = from.handle_release_request(&pending.der, NOW, &mut r)?;
    let key = agent.accept_release(&msg, &pending, &release.der, NOW, &mut r)?;
    let request = agent.request_expansion(&msg, NOW, &mut r)?;
    let issuance = own.unwrap_or(from).handle_key_request(&request.der, NOW, &mut r)?;
    let send = agent.accept_grant(&request, &issuance.grant, &issuance.ticket, NOW, &mut r)?;
    agent.expand(&msg, &key, &send)
}

fn team() -> ListAgent {
    agent(&lists().team, &["bob@example.org", "carol@example.com", "inner@example.org"])
}

#[test]
fn a_list_of_three_one_a_list_reaches_each_member_once() {
    let mut home = gatekeeper(ReleasePolicy::Once);
    let mut away = list_gatekeeper();
    let sent = send(&mut home, &alice(), &["team@example.org"], 1);
    let inner = agent(&lists().inner, &["dave@example.org"]);
    let to_team = expand(&team(), &mut home, Some(&mut away), &sent.sealed, 2).expect("team expands");
    // The sender's gatekeeper released once, to the list, and its key is gone.
    assert_eq!(ledger(&home).held_keys(), 0);
    assert_eq!(code(expand(&team(), &mut home, Some(&mut away), &sent.sealed, 3)), Some("key_destroyed"));
    let to_inner = expand(&inner, &mut away, None, &to_team, 4).expect("inner expands");
    // Each member reads once, with the unchanged recipient role, the sender's very content.
    assert_eq!(fetch(&mut away, &bob(), &to_team, NOW, 5).expect("bob"), sent.plaintext);
    assert_eq!(fetch(&mut away, &carol(), &to_team, NOW, 6).expect("carol"), sent.plaintext);
    assert_eq!(fetch(&mut away, &dave(), &to_inner, NOW, 7).expect("dave"), sent.plaintext);
    assert_eq!(code(fetch(&mut away, &bob(), &to_team, NOW, 8)), Some("key_destroyed"));
    assert_eq!(code(fetch(&mut away, &dave(), &to_inner, NOW, 9)), Some("key_destroyed"));
    // The chain a member sees: the original ticket, then team's, for dave.
    let msg = dave().receive(&to_inner, NOW).expect("dave receives");
    let lists: Vec<String> = msg.ticket().request.expansion.iter().map(|e| e.list.to_string()).collect();
    assert_eq!(lists, ["team@example.org", "inner@example.org"]);
    assert_eq!(msg.expanded_tickets().len(), 2);
    assert_eq!(msg.expanded_tickets()[0].request.sender.to_string(), "alice@example.com");
    // A non-member cannot take the list's message.
    assert_eq!(code(dave().receive(&to_team, NOW)), Some("not_for_this_recipient"));
}

fn aed(sealed: &[u8]) -> cms::authenveloped_data::AuthEnvelopedData {
    let ci = cms::content_info::ContentInfo::from_der(sealed).expect("ContentInfo");
    ci.content.decode_as().expect("AuthEnvelopedData")
}

#[test]
fn the_content_is_not_encrypted_again() {
    let mut home = gatekeeper(ReleasePolicy::Once);
    let mut away = list_gatekeeper();
    let sent = send(&mut home, &alice(), &["team@example.org"], 10);
    let to_team = expand(&team(), &mut home, Some(&mut away), &sent.sealed, 11).expect("team expands");
    let (before, after) = (aed(&sent.sealed), aed(&to_team));
    assert_eq!(before.auth_encrypted_content_info, after.auth_encrypted_content_info);
    assert_eq!(before.auth_attrs, after.auth_attrs);
    assert_eq!(before.mac, after.mac);
    assert_ne!(before.recip_infos, after.recip_infos, "the key is wrapped under the list's one-time key");
}

/// Removes the expanded tickets from an expanded message, or puts `other` in their place.
fn with_chain(sealed: &[u8], other: Option<&[u8]>) -> Vec<u8> {
    use der::asn1::SetOfVec;
    let mut a = aed(sealed);
    let attrs: Vec<x509_cert::attr::Attribute> = a.unauth_attrs.take().expect("attrs").into_vec();
    let mut kept: Vec<x509_cert::attr::Attribute> =
        attrs.iter().filter(|at| at.oid != oid::UA_EXPANDED_TICKETS).cloned().collect();
    if let Some(t) = other {
        let chain = vec![cms::content_info::ContentInfo::from_der(t).expect("ticket")];
        let mut values = SetOfVec::new();
        values.insert(der::Any::encode_from(&chain).expect("any")).expect("insert");
        kept.push(x509_cert::attr::Attribute { oid: oid::UA_EXPANDED_TICKETS, values });
    }
    a.unauth_attrs = Some(SetOfVec::try_from(kept).expect("set"));
    let ci = cms::content_info::ContentInfo {
        content_type: oid::ID_AUTH_ENVELOPED_DATA,
        content: der::Any::encode_from(&a).expect("any"),
    };
    ci.to_der().expect("der")
}

#[test]
fn a_reader_checks_the_chain_of_tickets() {
    let mut home = gatekeeper(ReleasePolicy::Once);
    let mut away = list_gatekeeper();
    let sent = send(&mut home, &alice(), &["team@example.org"], 12);
    let other = send(&mut home, &alice(), &["team@example.org"], 13);
    let to_team = expand(&team(), &mut home, Some(&mut away), &sent.sealed, 14).expect("team expands");
    assert!(bob().receive(&to_team, NOW).is_ok());
    // Without the original ticket, the content's authenticated digest names no ticket held.
    assert_eq!(code(bob().receive(&with_chain(&to_team, None), NOW)), Some("ticket_digest_mismatch"));
    // Another ticket of the same sender to the same list: the digest differs (C6).
    let swapped = with_chain(&to_team, Some(&other.ticket));
    assert_eq!(code(bob().receive(&swapped, NOW)), Some("ticket_digest_mismatch"));
    // Another message sealed under `other`, its chain claiming to be team's expansion of
    // `sent`: C6 holds for `other`, and the chain check (C7) refuses the link.
    let forged = {
        let mut a = aed(&to_team);
        let b = aed(&other.sealed);
        a.auth_encrypted_content_info = b.auth_encrypted_content_info;
        a.auth_attrs = b.auth_attrs;
        a.mac = b.mac;
        let ci = cms::content_info::ContentInfo {
            content_type: oid::ID_AUTH_ENVELOPED_DATA,
            content: der::Any::encode_from(&a).expect("any"),
        };
        with_chain(&ci.to_der().expect("der"), Some(&other.ticket))
    };
    assert_eq!(code(bob().receive(&forged, NOW)), Some("list_expansion_mismatch"));
}

#[test]
fn a_loop_is_refused_before_anything_is_fetched() {
    let mut home = gatekeeper(ReleasePolicy::Once);
    let mut away = list_gatekeeper();
    let sent = send(&mut home, &alice(), &["team@example.org"], 20);
    let to_team = expand(&team(), &mut home, Some(&mut away), &sent.sealed, 21).expect("team expands");
    // inner lists team back: its expansion would send the message to a list it went through.
    let looping = agent(&lists().inner, &["dave@example.org", "team@example.org"]);
    assert_eq!(code(expand(&looping, &mut away, None, &to_team, 22)), Some("list_loop"));
    // Nothing was fetched: inner's release is still owed (a correct agent then gets it).
    let inner = agent(&lists().inner, &["dave@example.org"]);
    assert!(expand(&inner, &mut away, None, &to_team, 23).is_ok());
    // A list that lists itself is refused when it is defined.
    let uri = fed().recipient_org.gatekeeper_uri();
    let sender = ekg_core::role::Sender::new(p(), credential(&lists().team), anchors(), uri).expect("sender");
    let own = ListAgent::new(p(), recipient(&lists().team), sender, vec![addr("team@example.org")]);
    assert_eq!(code(own), Some("list_loop"));
}

/// A list agent's key request signed by hand, its history as given (what a careless or
/// hostile agent sends: the gatekeeper checks V27 itself).
fn raw_expansion_request(list: &Issued, address: &str, to: &[&str], history: Vec<ListExpansion>) -> Vec<u8> {
    let content = KeyRequestContent {
        sender: addr(address),
        recipients: to.iter().map(|a| addr(a)).collect(),
        nonce: ekg_core::Nonce([3; 16]),
        request_time: NOW,
        labels: Vec::new(),
        expansion: history,
    };
    let der = content.encode().expect("encode");
    signed::sign(p(), &credential(list), oid::CT_KEY_REQUEST, &der, NOW, &mut rng(30)).expect("sign")
}

fn entry(list: &str) -> ListExpansion {
    ListExpansion { list: addr(list), time: UnixTime(NOW.0 - 5), expanded_ticket: Digest([4; 32]) }
}

#[test]
fn v26_the_gatekeeper_refuses_a_loop_a_depth_over_the_bound_and_a_borrowed_entry() {
    let mut away = list_gatekeeper();
    let mut issue = |der: Vec<u8>| code(away.handle_key_request(&der, NOW, &mut rng(31)));
    let inner = &lists().inner;
    let looped = vec![entry("team@example.org"), entry("inner@example.org")];
    assert_eq!(
        issue(raw_expansion_request(inner, "inner@example.org", &["team@example.org"], looped)),
        Some("list_loop")
    );
    let twice = vec![entry("inner@example.org"), entry("inner@example.org")];
    assert_eq!(
        issue(raw_expansion_request(inner, "inner@example.org", &["dave@example.org"], twice)),
        Some("list_loop")
    );
    let mut deep: Vec<ListExpansion> =
        (0..ekg_core::wire::limits::MAX_EXPANSION_DEPTH).map(|i| entry(&format!("l{i}@example.net"))).collect();
    deep.push(entry("inner@example.org"));
    assert_eq!(
        issue(raw_expansion_request(inner, "inner@example.org", &["dave@example.org"], deep.clone())),
        Some("list_depth_exceeded")
    );
    let borrowed = vec![entry("team@example.org")];
    assert_eq!(
        issue(raw_expansion_request(inner, "inner@example.org", &["dave@example.org"], borrowed)),
        Some("profile_violation")
    );
    // The bound itself is allowed.
    deep.remove(0);
    assert_eq!(issue(raw_expansion_request(inner, "inner@example.org", &["dave@example.org"], deep)), None);
}

/// The sizes of a message before and after one and two expansions (the figures of
/// `docs/protocol.md` §13.7): `cargo test -p ekg-core --test lists -- --ignored --nocapture`.
#[test]
#[ignore = "prints figures for docs/protocol.md"]
fn expansion_sizes() {
    let mut home = gatekeeper(ReleasePolicy::Once);
    let mut away = list_gatekeeper();
    for body_len in [1_000usize, 100_000] {
        let from = alice();
        let mut r = rng(40 + body_len as u64);
        let pending = from.request_key(&[addr("team@example.org")], NOW, &mut r).expect("request");
        let issuance = home.handle_key_request(&pending.der, NOW, &mut r).expect("issue");
        let key = from.accept_grant(&pending, &issuance.grant, &issuance.ticket, NOW, &mut r).expect("grant");
        let sealed = from.seal(&key, &vec![b'x'; body_len], &mut r).expect("seal");
        let to_team = expand(&team(), &mut home, Some(&mut away), &sealed, 41 + body_len as u64).expect("team");
        let inner = agent(&lists().inner, &["dave@example.org"]);
        let to_inner = expand(&inner, &mut away, None, &to_team, 42 + body_len as u64).expect("inner");
        println!(
            "body {body_len} B: sealed {} B, after team {} B (+{}), after inner {} B (+{}); ticket {} B",
            sealed.len(),
            to_team.len(),
            to_team.len() - sealed.len(),
            to_inner.len(),
            to_inner.len() - to_team.len(),
            issuance.ticket.len()
        );
    }
}

/// RFC 2634 §4's mail list agent, the building block of the simulator's early-binding list
/// (`envelope::readdress_to_each`): the content key is re-addressed to the members and the
/// encrypted content and tag are kept byte for byte; the list's own recipient info is gone,
/// a non-member cannot open the result, and an envelope that does not name the agent is
/// refused.
#[test]
fn an_mla_readdresses_the_content_key_without_encrypting_again() {
    use cms::authenveloped_data::AuthEnvelopedData;
    use cms::content_info::ContentInfo;
    use ekg_core::wire::envelope;

    let team = credential(&lists().team);
    let members: Vec<_> = fed().recipient_org.users.iter().take(2).map(|(_, i)| credential(i)).collect();
    let outsider = credential(&fed().sender_org.users[0].1);
    let mut r = rng(7);
    let content = b"to the list".to_vec();
    let sealed = envelope::seal_to_each(p(), &[team.certificate()], oid::ID_DATA, &content, &mut r).unwrap();
    let certs: Vec<_> = members.iter().map(|m| m.certificate()).collect();
    let out = envelope::readdress_to_each(p(), &sealed, &team, &certs, 1 << 20, &mut r).unwrap();
    for m in &members {
        let (ct, got) = envelope::open_any(p(), &out, m, 1 << 20, &mut r).unwrap();
        assert_eq!((ct, got.as_slice()), (oid::ID_DATA, content.as_slice()));
    }
    for not_member in [&team, &outsider] {
        assert_eq!(code(envelope::open_any(p(), &out, not_member, 1 << 20, &mut r)), Some("not_for_this_recipient"));
    }
    let aed = |der: &[u8]| ContentInfo::from_der(der).unwrap().content.decode_as::<AuthEnvelopedData>().unwrap();
    let (before, after) = (aed(&sealed), aed(&out));
    assert_eq!(after.recip_infos.0.len(), 2);
    assert_eq!(before.auth_encrypted_content_info, after.auth_encrypted_content_info);
    assert_eq!(before.mac, after.mac);
    assert_eq!(
        code(envelope::readdress_to_each(p(), &sealed, &outsider, &certs, 1 << 20, &mut r)),
        Some("not_for_this_recipient")
    );
    assert_eq!(code(envelope::readdress_to_each(p(), &sealed, &team, &[], 1 << 20, &mut r)), Some("profile_violation"));
}
