//! `ekg read --require-log` against a real `ekg serve` keeping an issuance log
//! (`docs/protocol.md` §10.8): a ticket the gatekeeper issued is read; a ticket forged with
//! the gatekeeper's signing key (its key file) but never issued is refused with
//! `ticket_not_logged` before any release request, and without the option the client sends
//! it on (the gatekeeper, which never recorded its key, is then the one to refuse).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../server/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use common::*;
use ekg_core::ledger::MemoryStore;
use ekg_core::role::{Gatekeeper, StorageKey};
use ekg_server::demo::DemoFiles;

const EKG: &str = env!("CARGO_BIN_EXE_ekg");

fn ekg(files: &DemoFiles, args: &[&str], who: &str, input: &Path, output: &Path) -> Output {
    let (domain, name) = who.split_once('/').unwrap();
    Command::new(EKG)
        .args(args)
        .arg("--config")
        .arg(&files.client)
        .arg("--identity")
        .arg(files.pki.join(domain).join(format!("{name}.pem")))
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap()
}

/// A sealed message as the `.eml` `ekg send` writes (RFC 8551, base64).
fn eml(sealed: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(sealed);
    let lines: Vec<&str> = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!(
        "From: alice@example.com\r\nTo: bob@example.org\r\nSubject: forged\r\nMIME-Version: 1.0\r\n\
         Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m\r\n\
         Content-Disposition: attachment; filename=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

fn refused(out: &Output, code: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with(&format!("ekg: {code}: ")), "expected {code}: {err}");
}

#[test]
fn a_ticket_forged_with_the_signing_key_is_refused_when_the_log_is_required() {
    let dir = fresh_dir("require-log");
    let port = free_port();
    let files = demo_at(&dir, port);
    ekg_server::files::write_secret(&dir.join("log.salt"), hex::encode([5u8; 32]).as_bytes()).unwrap();
    let config = std::fs::read_to_string(&files.config).unwrap();
    std::fs::write(&files.config, config.replacen("[gatekeeper]\n", "[gatekeeper]\nlog_salt = \"log.salt\"\n", 1))
        .unwrap();
    let mut server = spawn_serve(EKG, &files.config, port);

    // Issued by the gatekeeper (so logged): read with the log required.
    let message = dir.join("message.eml");
    std::fs::write(&message, "From: alice@example.com\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nlogged\r\n")
        .unwrap();
    let sealed = dir.join("sealed.eml");
    let out = ekg(&files, &["send"], "example.com/alice", &message, &sealed);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = dir.join("read.eml");
    let out = ekg(&files, &["read", "--require-log"], "example.org/bob", &sealed, &read);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(&read).unwrap().contains("logged"));

    // Forged: signed with the gatekeeper's key file by a gatekeeper of its own (same
    // configuration, another store), never issued by the running one, so never logged.
    let s = settings(&files);
    let mut thief =
        Gatekeeper::new(p(), s.gatekeeper, s.credential, StorageKey::from_bytes([9; 32]), MemoryStore::default())
            .unwrap();
    let alice = sender(&files, "alice");
    let now = ekg_server::service::wall_clock();
    let pending = alice.request_key(&[addr("bob@example.org")], now, &mut rng(1)).unwrap();
    let forged = thief.handle_key_request(&pending.der, now, &mut rng(2)).unwrap();
    let key = alice.accept_grant(&pending, &forged.grant, &forged.ticket, now, &mut rng(3)).unwrap();
    let forged_eml = dir.join("forged.eml");
    std::fs::write(&forged_eml, eml(&alice.seal(&key, b"forged", &mut rng(4)).unwrap())).unwrap();
    // The ticket is the gatekeeper's own (its signature, its certificate, its URI) ...
    let bob = recipient(&files, "example.org", "bob");
    let ticket = bob.receive(&alice.seal(&key, b"x", &mut rng(5)).unwrap(), now).expect("C1 accepts it");
    assert_eq!(ticket.ticket().signer_der, settings(&files).credential.certificate_der());

    // ... but not in its log: refused before anything is sent.
    let out = ekg(&files, &["read", "--require-log"], "example.org/bob", &forged_eml, &dir.join("f1.eml"));
    refused(&out, "ticket_not_logged");
    // The client configuration's form does the same.
    let client = std::fs::read_to_string(&files.client).unwrap();
    std::fs::write(&files.client, format!("require_log = true\n{client}")).unwrap();
    let out = ekg(&files, &["read"], "example.org/bob", &forged_eml, &dir.join("f2.eml"));
    refused(&out, "ticket_not_logged");
    std::fs::write(&files.client, client).unwrap();
    // Without the option the client accepts the ticket and asks; only the gatekeeper, which
    // never recorded the key, refuses.
    let out = ekg(&files, &["read"], "example.org/bob", &forged_eml, &dir.join("f3.eml"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !err.contains("ticket_not_logged"), "{err}");
    assert!(err.contains("the gatekeeper refused"), "the release request was sent: {err}");
    assert!(!dir.join("f1.eml").exists() && !dir.join("f2.eml").exists());
    server.terminate();
}
