//! The whole flow: two organisations, fresh keys and key ids, a repeating RNG caught.

use super::*;

#[test]
fn full_flow_across_two_organisations() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org", "carol@example.com"], 10);
    assert_eq!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 11).expect("bob"), sent.plaintext);
    // The sender organisation's gateway reads it, without counting as a recipient.
    let gw = gateway();
    let msg = gw.receive(&sent.sealed, NOW).expect("gateway receive");
    let pending = gw.request_key(&msg, NOW, &mut rng(12)).expect("gateway request");
    let release = gk.handle_release_request(&pending.der, NOW, &mut rng(13)).expect("gateway release");
    assert_eq!(release.kind, ReleaseKind::Gateway);
    let key = gw.accept_key(&msg, &pending, &release.der, NOW, &mut rng(14)).expect("gateway key");
    assert_eq!(gw.open(&msg, &key).expect("gateway open").to_vec(), sent.plaintext);
    assert_eq!(ledger(&gk).held_keys(), 1);
    assert_eq!(fetch(&mut gk, &carol(), &sent.sealed, NOW, 15).expect("carol"), sent.plaintext);
    // Every listed recipient served: destroyed (seed: "must never be served out again").
    assert_eq!(ledger(&gk).held_keys(), 0);
    assert_eq!(code(fetch(&mut gk, &bob(), &sent.sealed, NOW, 16)), Some("key_destroyed"));
}

#[test]
fn keys_and_key_ids_are_fresh_for_every_request() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let a = send(&mut gk, &alice(), &["bob@example.org"], 20);
    let b = send(&mut gk, &alice(), &["bob@example.org"], 21);
    assert_ne!(a.ticket, b.ticket);
    let ids: Vec<_> = ledger(&gk).keys().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 2);
    let handles: Vec<_> = ledger(&gk)
        .keys()
        .filter_map(|(_, s)| match s {
            KeyState::Pending(k) => Some(k.handle.clone()),
            _ => None,
        })
        .collect();
    assert_ne!(handles[0], handles[1]);
}

#[test]
fn a_repeating_rng_is_caught_as_a_key_id_collision_and_nothing_is_issued() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let pending = alice().request_key(&[addr("bob@example.org")], NOW, &mut rng(22)).expect("request");
    gk.handle_key_request(&pending.der, NOW, &mut rng(23)).expect("first");
    let appends = gk.store().appends();
    let other = alice().request_key(&[addr("bob@example.org")], NOW, &mut rng(24)).expect("request");
    assert_eq!(code(gk.handle_key_request(&other.der, NOW, &mut rng(23))), Some("key_id_collision"));
    assert_eq!(gk.store().appends(), appends);
    assert_eq!(ledger(&gk).held_keys(), 1);
}
