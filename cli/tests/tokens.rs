//! `ekg read --token-command` against a real `ekg serve` that trusts a real OpenID provider
//! (npm `oidc-provider`, `server/tests/oidc`): a labelled message is read by a listed
//! recipient whose token carries the entitlement, and refused, with a stable code, to the
//! same recipient without it; the token never shows in `ekg`'s output.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;
#[path = "../../server/tests/oidc/mod.rs"]
mod oidc;

use std::io::Write;

use common::*;

const ITAR: &str = "https://example.com/attr/export/value/itar";

/// export (all_of itar): granted to example.com's addresses, and to a token of `issuer`
/// whose `export` claim holds `itar`.
fn policy(p: &oidc::Provider) -> String {
    let mut s = format!(
        r#"
[[attribute]]
name = "https://example.com/attr/export"
rule = "all_of"
values = ["itar"]

[[mapping]]
domain = "example.com"
grants = ["{ITAR}"]

[[mapping]]
token_issuer = "{iss}"
grants = ["{ITAR}"]
[mapping.claims]
export = ["itar"]

[[token_issuer]]
issuer = "{iss}"
audience = "{aud}"
jwks_uri = "{jwks}"
domains = ["example.org"]
[token_issuer.subjects]
"#,
        iss = p.issuer,
        aud = oidc::AUDIENCE,
        jwks = p.jwks_uri
    );
    for (client, _) in oidc::CLIENTS {
        let who = client.split('-').next().unwrap();
        s.push_str(&format!("\"{client}\" = \"{who}@example.org\"\n"));
    }
    s
}

/// A token command: `sh token.sh CLIENT [RESOURCE]` asks the provider's token endpoint with
/// curl, prints the token, and keeps a copy in `last-token` (for the test to look for it).
fn token_script(dir: &std::path::Path, p: &oidc::Provider) -> std::path::PathBuf {
    let script = dir.join("token.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\ncurl -sSf -d grant_type=client_credentials -d client_id=\"$1\" -d client_secret=\"secret-of-$1\" \
             ${{2:+-d resource=\"$2\"}} '{}' | sed -n 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/p' | tee '{}'\n",
            p.token_endpoint,
            dir.join("last-token").display()
        ),
    )
    .unwrap();
    script
}

#[test]
fn a_labelled_message_is_read_with_a_token_from_the_provider_and_refused_without_the_entitlement() {
    let Some(p) = oidc::provider() else { return };
    let dir = fresh_dir("tokens-cli");
    let port = free_port();
    let files = demo_at(&dir, port);
    let mut config = std::fs::OpenOptions::new().append(true).open(&files.config).unwrap();
    config.write_all(policy(p).as_bytes()).unwrap();
    drop(config);
    let _server = spawn_serve(EKG, &files.config, port);
    let script = token_script(&dir, p);
    let id = |domain: &str, name: &str| files.pki.join(domain).join(format!("{name}.pem"));
    let message = b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: export\r\n\r\ncontrolled\r\n";
    let sent = ekg_as(&files.client, &["send", "--label", ITAR], &id("example.com", "alice"), message);
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    let bob = id("example.org", "bob");
    let read = |extra: &[&str]| ekg_as(&files.client, &[&["read"], extra].concat(), &bob, &sent.stdout);
    let command = |args: &str| format!("sh {} {args}", script.display());
    let last_token = || std::fs::read_to_string(dir.join("last-token")).unwrap().trim().to_owned();

    // Without a token, and with a token lacking the claim: the entitlement is missing.
    refused(&read(&[]), "entitlement_all_of_unmet");
    let plain = read(&["--token-command", &command("bob-plain")]);
    refused(&plain, "entitlement_all_of_unmet");
    assert!(!String::from_utf8_lossy(&plain.stderr).contains(&last_token()), "the token is not shown");
    // A token for another audience: refused by V28.5, the token not shown either.
    let other = read(&["--token-command", &command("bob-all https://other.example.com/ekg")]);
    refused(&other, "token_audience");
    assert!(!String::from_utf8_lossy(&other.stderr).contains(&last_token()));
    // A command that fails: nothing is sent.
    refused(&read(&["--token-command", "exit 7"]), "token_command_failed");
    // The client configuration's token_command, with the entitled client: bob reads.
    // (A top-level key: before the file's first table.)
    let client = std::fs::read_to_string(&files.client).unwrap();
    std::fs::write(&files.client, format!("token_command = {:?}\n{client}", command("bob-all"))).unwrap();
    let ok = read(&[]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(ok.stdout, message);
    assert!(!String::from_utf8_lossy(&ok.stderr).contains(&last_token()));
}
