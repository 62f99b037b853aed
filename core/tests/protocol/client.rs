//! Client checks C1 to C6.

use super::*;

#[test]
fn c1_a_ticket_signed_by_a_non_gatekeeper_is_refused() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 130);
    // Re-sign the ticket content with alice's certificate (no gatekeeper EKU).
    let obj = signed::open(p(), &sent.ticket, oid::CT_TICKET, 1 << 20).expect("open");
    let forged =
        signed::sign(p(), &credential(&fed().sender_org.users[0].1), oid::CT_TICKET, &obj.content, NOW, &mut rng(131))
            .expect("sign");
    let t = ekg_core::role::Ticket::open(p(), &forged).expect("parses");
    assert_eq!(code(t.check_gatekeeper(p(), &anchors(), NOW)), Some("wrong_gatekeeper"));
    let t = ekg_core::role::Ticket::open(p(), &sent.ticket).expect("parses");
    assert!(t.check_gatekeeper(p(), &anchors(), NOW).is_ok());
    // A sender refuses a ticket of a gatekeeper other than its own.
    let other =
        ekg_core::role::Sender::new(p(), credential(&fed().sender_org.users[0].1), anchors(), "https://ekg.elsewhere/")
            .expect("s");
    let pending = other.request_key(&[addr("bob@example.org")], NOW, &mut rng(132)).expect("req");
    let issuance = gk.handle_key_request(&pending.der, NOW, &mut rng(133)).expect("issue");
    assert_eq!(
        code(other.accept_grant(&pending, &issuance.grant, &issuance.ticket, NOW, &mut rng(134))),
        Some("wrong_gatekeeper")
    );
}

#[test]
fn c2_c3_a_grant_or_ticket_for_another_request_is_refused() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let a = alice();
    let p1 = a.request_key(&[addr("bob@example.org")], NOW, &mut rng(140)).expect("r1");
    let p2 = a.request_key(&[addr("bob@example.org")], NOW, &mut rng(141)).expect("r2");
    let i1 = gk.handle_key_request(&p1.der, NOW, &mut rng(142)).expect("i1");
    let i2 = gk.handle_key_request(&p2.der, NOW, &mut rng(143)).expect("i2");
    assert_eq!(code(a.accept_grant(&p1, &i2.grant, &i1.ticket, NOW, &mut rng(144))), Some("response_mismatch"));
    assert_eq!(code(a.accept_grant(&p1, &i1.grant, &i2.ticket, NOW, &mut rng(145))), Some("response_mismatch"));
    assert!(a.accept_grant(&p1, &i1.grant, &i1.ticket, NOW, &mut rng(146)).is_ok());
    // A release for another request (other nonce) is refused by the recipient.
    let sent = send(&mut gk, &a, &["bob@example.org"], 147);
    let bob = bob();
    let msg = bob.receive(&sent.sealed, NOW).expect("receive");
    let q1 = bob.request_release(&msg, NOW, &mut rng(148)).expect("q1");
    let q2 = bob.request_release(&msg, NOW, &mut rng(149)).expect("q2");
    let r1 = gk.handle_release_request(&q1.der, NOW, &mut rng(150)).expect("r1");
    assert_eq!(code(bob.accept_release(&msg, &q2, &r1.der, NOW, &mut rng(151))), Some("response_mismatch"));
}

#[test]
fn c4_a_release_for_someone_else_or_tampered_is_refused() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org", "carol@example.com"], 160);
    let (bob, carol) = (bob(), carol());
    let msg = bob.receive(&sent.sealed, NOW).expect("receive");
    let pending = bob.request_release(&msg, NOW, &mut rng(161)).expect("request");
    let release = gk.handle_release_request(&pending.der, NOW, &mut rng(162)).expect("release");
    let cmsg = carol.receive(&sent.sealed, NOW).expect("carol receive");
    assert_eq!(
        code(carol.accept_release(&cmsg, &pending, &release.der, NOW, &mut rng(163))),
        Some("not_for_this_recipient")
    );
    // Flip a byte of the OAEP-encrypted content key.
    let mut bad = release.der.clone();
    let at = bad.len() / 3;
    bad[at] ^= 0x40;
    let err = bob.accept_release(&msg, &pending, &bad, NOW, &mut rng(164)).err().map(|e| e.rejection());
    assert!(
        matches!(err, Some(Rejection::KeyUnwrapFailed | Rejection::AuthenticationFailed | Rejection::MalformedDer)),
        "{err:?}"
    );
    assert_eq!(
        code(bob.accept_release(&msg, &pending, &flip_last(release.der.clone()), NOW, &mut rng(165))),
        Some("authentication_failed")
    );
}

#[test]
fn c5_c6_tampered_ciphertext_or_swapped_ticket_is_refused() {
    let mut gk = gatekeeper(ReleasePolicy::Once);
    let sent = send(&mut gk, &alice(), &["bob@example.org"], 170);
    let other = send(&mut gk, &alice(), &["bob@example.org"], 171);
    let bob = bob();
    // C6: the ticket of another message, attached in place of this one's.
    let mut swapped = sent.sealed.clone();
    let at = swapped.windows(sent.ticket.len()).position(|w| w == sent.ticket.as_slice()).expect("ticket inside");
    assert_eq!(sent.ticket.len(), other.ticket.len());
    swapped[at..at + other.ticket.len()].copy_from_slice(&other.ticket);
    assert_eq!(code(bob.receive(&swapped, NOW)), Some("ticket_digest_mismatch"));
    // C5: one flipped ciphertext byte.
    let msg = bob.receive(&sent.sealed, NOW).expect("receive");
    let pending = bob.request_release(&msg, NOW, &mut rng(172)).expect("request");
    let release = gk.handle_release_request(&pending.der, NOW, &mut rng(173)).expect("release");
    let key = bob.accept_release(&msg, &pending, &release.der, NOW, &mut rng(174)).expect("key");
    let body = b"Hello from";
    let plain_at = sent.plaintext.windows(body.len()).position(|w| w == body).expect("body");
    let _ = plain_at;
    let mut tampered = sent.sealed.clone();
    // The encrypted content sits right before the 16-byte mac at the end of the GCM part;
    // flip a byte 40 bytes before the attached ticket begins.
    tampered[at - 40] ^= 1;
    let tmsg = bob.receive(&tampered, NOW).expect("still parses");
    assert_eq!(code(bob.open(&tmsg, &key)), Some("authentication_failed"));
    assert_eq!(bob.open(&msg, &key).expect("open").to_vec(), sent.plaintext);
}

#[test]
fn recipient_refuses_a_sealed_message_with_garbage() {
    let bob: Recipient = bob();
    assert_eq!(code(bob.receive(&[0x30, 0x03, 0x02, 0x01, 0x00], NOW)), Some("malformed_der"));
}
