//! The store: nothing answered without a durable record, keys stored wrapped.

use super::*;

#[test]
fn nothing_is_answered_without_a_durable_record() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 110);
    let store = gk.into_store();
    store.set_failing(true);
    let mut gk = gatekeeper_with(config(ReleasePolicy::Once), store);
    assert_eq!(code(fetch(&mut gk, &bob(), &sent.sealed, NOW, 111)), Some("storage_failed"));
    let pending = alice().request_key(&[addr("bob@example.org")], NOW, &mut rng(112)).expect("request");
    assert_eq!(code(gk.handle_key_request(&pending.der, NOW, &mut rng(113))), Some("storage_failed"));
    // The failed release did not count: once the store works, bob gets the key.
    let store = gk.into_store();
    store.set_failing(false);
    let mut gk = gatekeeper_with(config(ReleasePolicy::Once), store);
    assert_eq!(fetch(&mut gk, &bob(), &sent.sealed, NOW, 114).expect("bob"), sent.plaintext);
}

#[test]
fn stored_keys_are_wrapped_never_in_the_clear() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 120);
    let bob = bob();
    let msg = bob.receive(&sent.sealed, NOW).expect("receive");
    let pending = bob.request_release(&msg, NOW, &mut rng(121)).expect("request");
    let release = gk.crypto().verify_release_request(&pending.der, NOW).expect("verify");
    let _ = release;
    let dump = format!("{:?}", gk.store().records());
    assert!(dump.contains("WrappedKey(<40 bytes>)"), "{dump}");
    let released = gk.handle_release_request(&pending.der, NOW, &mut rng(122)).expect("release");
    let key = bob.accept_release(&msg, &pending, &released.der, NOW, &mut rng(123)).expect("key");
    let hex: String = key.expose().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!dump.contains(&hex));
}
