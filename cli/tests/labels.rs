//! `ekg send --label` and `ekg read` against a real `ekg serve` whose configuration holds
//! attribute definitions and subject mappings (`docs/protocol.md` §12): a listed recipient
//! holding the attribute reads, a listed recipient without it is refused with a stable code.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Output;

use common::*;
const ITAR: &str = "https://example.com/attr/export/value/itar";

/// The demo's gatekeeper, with export (all_of itar) granted to example.com's addresses.
const POLICY: &str = r#"
[[attribute]]
name = "https://example.com/attr/export"
rule = "all_of"
values = ["itar"]

[[mapping]]
domain = "example.com"
grants = ["https://example.com/attr/export/value/itar"]
"#;

fn ekg(files: &ekg_server::demo::DemoFiles, args: &[&str], identity: &Path, input: &[u8]) -> Output {
    ekg_as(&files.client, args, identity, input)
}

#[test]
fn a_labelled_message_is_read_by_the_entitled_recipient_only() {
    let dir = fresh_dir("labels");
    let port = free_port();
    let files = demo_at(&dir, port);
    let mut config = std::fs::OpenOptions::new().append(true).open(&files.config).unwrap();
    config.write_all(POLICY.as_bytes()).unwrap();
    drop(config);
    let _server = spawn_serve(EKG, &files.config, port);
    let id = |domain: &str, name: &str| files.pki.join(domain).join(format!("{name}.pem"));
    let message =
        b"From: alice@example.com\r\nTo: bob@example.org, carol@example.com\r\nSubject: export\r\n\r\ncontrolled\r\n";
    let alice = id("example.com", "alice");
    refused(&ekg(&files, &["send", "--label", "itar"], &alice, message), "invalid_label");
    let undefined = "https://example.com/attr/export/value/ear";
    refused(&ekg(&files, &["send", "--label", undefined], &alice, message), "label_unknown");
    let sent = ekg(&files, &["send", "--label", ITAR], &alice, message);
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    refused(&ekg(&files, &["read"], &id("example.org", "bob"), &sent.stdout), "entitlement_all_of_unmet");
    let carol = ekg(&files, &["read"], &id("example.com", "carol"), &sent.stdout);
    assert!(carol.status.success(), "{}", String::from_utf8_lossy(&carol.stderr));
    assert_eq!(carol.stdout, message);
    // bob's refusal recorded nothing: he is still owed, and still refused.
    refused(&ekg(&files, &["read"], &id("example.org", "bob"), &sent.stdout), "entitlement_all_of_unmet");
}
