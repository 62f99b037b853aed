//! Rotation of the signing key end to end (`docs/server.md`, "Rotating the signing key"):
//! tickets issued under key A, `rotate` to key B, restart; A's tickets are still released and
//! read (the client accepts a release signed by B for a ticket signed by A, C2), new tickets
//! are signed by B; `retire` refuses while A's tickets may be outstanding, and once A is
//! dropped its tickets are `wrong_gatekeeper`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use ekg_server::custody::rotation;
use ekg_server::demo::DemoFiles;
use ekg_testpki::{EntitySpec, Issued, Org, Pki};

/// A certificate for a new key of the demo gatekeeper, from example.com's CA.
fn key_b(files: &DemoFiles) -> Issued {
    let mut pki = Pki::new(ekg_server::demo::SEED);
    let org = Org::build_with_uri(&mut pki, "example.com", &["alice", "carol"], &files.uri);
    let mut spec = EntitySpec::gatekeeper("ekg@example.com", &files.uri);
    // Valid a year past A, so that the configuration still holds when A may be retired.
    spec.valid = ((2025, 1, 1), (2046, 1, 1));
    Pki::new(4242).issue(&org.ca, &spec)
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_rotated_key_keeps_outstanding_tickets_releasable_until_the_old_certificate_is_retired() {
    let dir = fresh_dir("rotation");
    let files = demo(&dir, "");
    let server = start(&files);
    let (for_bob, plain_bob) = send(&server, &files, &["bob@example.org"], 1);
    let (for_dave, _) = send(&server, &files, &["dave@example.org"], 2);
    let now = now(&server);
    server.stop().unwrap();
    let a = std::fs::read_to_string(files.pki.join("example.com/gatekeeper.pem")).unwrap();

    // The new pair, as the CA returns it and `ekg keys next` left the key (0600).
    let b = key_b(&files);
    let (b_cert, b_key) = (dir.join("b.pem"), dir.join("b.key"));
    std::fs::write(&b_cert, b.cert_pem()).unwrap();
    ekg_server::files::write_secret(&b_key, b.key_pem().as_bytes()).unwrap();
    let before = std::fs::read_to_string(&files.config).unwrap();
    let done = rotation::rotate(&files.config, &b_cert, &b_key, now).expect("rotate");
    assert_eq!(std::fs::read_to_string(&done.backup).unwrap(), before, "the old configuration is kept");
    assert_eq!(mode(&done.key), 0o600);
    assert_eq!(std::fs::read_to_string(&done.certificate).unwrap(), b.cert_pem());
    assert_eq!(std::fs::read_to_string(&done.retired).unwrap(), a);
    assert_eq!(done.old_key, files.pki.join("example.com/gatekeeper.key"));
    // The same key again is a renewal, not a rotation; nothing changes.
    let after = std::fs::read_to_string(&files.config).unwrap();
    let again = rotation::rotate(&files.config, &done.certificate, &done.key, now).unwrap_err();
    assert_eq!(again.code, "same_key", "{again}");
    assert_eq!(std::fs::read_to_string(&files.config).unwrap(), after);

    let listing = rotation::list(&files.config, now).expect("list");
    let serial = |i: &Issued| {
        let c = <x509_cert::Certificate as der::Decode>::from_der(&i.cert_der).unwrap();
        hex::encode(c.tbs_certificate().serial_number().as_bytes())
    };
    assert_eq!(listing.current.serial, serial(&b));
    assert_eq!(listing.retired.len(), 1);
    let retired = &listing.retired[0];
    assert_ne!(retired.key_fingerprint, listing.current.key_fingerprint);
    // The demo's certificates are valid to 2045-01-01; its tickets live a week.
    assert_eq!(retired.keep_until.secs(), 2_366_841_600 + 604_800);
    assert!(listing.epochs.iter().any(|e| e.state == "current"), "{:?}", listing.epochs);

    // Restarted on key B: A's tickets are released, signed by B, and bob's client reads them.
    let server = start(&files);
    let bob = recipient(&files, "example.org", "bob");
    assert_eq!(fetch(&server, &bob, &for_bob, 3).expect("bob reads A's ticket after the rotation"), plain_bob);
    let (fresh, plain) = send(&server, &files, &["bob@example.org"], 4);
    let ticket = bob.receive(&fresh, now).unwrap().ticket().signer_der.clone();
    assert_eq!(ticket, b.cert_der, "new tickets are signed by key B");
    assert_eq!(fetch(&server, &bob, &fresh, 5).expect("a ticket of B"), plain);
    server.stop().unwrap();

    // A's tickets may be outstanding until its keep-until: retire refuses, changing nothing.
    let e = rotation::retire(&files.config, &retired.serial, now, false).unwrap_err();
    assert_eq!(e.code, "retired_certificate_in_use", "{e}");
    assert_eq!(std::fs::read_to_string(&files.config).unwrap(), after);
    let e = rotation::retire(&files.config, "01", now, false).unwrap_err();
    assert_eq!(e.code, "retired_certificate_unknown", "{e}");
    // Past it, A is dropped; forced, before it too.
    let later = ekg_core::UnixTime(retired.keep_until.secs() + 1);
    let dropped = rotation::retire(&files.config, &retired.serial, later, false).expect("retire past keep-until");
    assert!(rotation::list(&files.config, now).unwrap().retired.is_empty());
    std::fs::copy(&dropped.backup, &files.config).unwrap();
    assert_eq!(rotation::list(&files.config, now).unwrap().retired.len(), 1);
    rotation::retire(&files.config, &retired.serial, now, true).expect("retire --force");
    assert!(rotation::list(&files.config, now).unwrap().retired.is_empty());
    // A ticket A signed is no longer this gatekeeper's.
    let server = start(&files);
    let dave = recipient(&files, "example.org", "dave");
    assert_eq!(fetch(&server, &dave, &for_dave, 6), Err((403, "wrong_gatekeeper".into())));
    server.stop().unwrap();
}
