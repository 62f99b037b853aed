//! The gatekeeper's certificate as an operator gets it (`docs/server.md`, "Certificates"):
//! `ekg keys gatekeeper-csr` makes a key (0600) and a CSR that `openssl req` verifies; a CA
//! signs it with the `openssl` commands the guide shows; `ekg serve --check-config` accepts
//! the result, and refuses a certificate that is not valid now, naming the field and the rule.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../server/tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

const EKG: &str = env!("CARGO_BIN_EXE_ekg");

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn openssl(dir: &Path, args: &[&str]) -> Output {
    run(Command::new("openssl").current_dir(dir).args(args))
}

fn csr(dir: &Path, key: &str, extra: &[&str]) -> Output {
    Command::new(EKG)
        .current_dir(dir)
        .args(["keys", "gatekeeper-csr", "--uri", "https://ekg.example.net/", "--email", "ekg@example.net"])
        .args(["--key-out", key, "--csr-out", "gk.csr"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_csr_signed_by_a_ca_with_openssl_passes_the_credential_check() {
    let dir = fresh_dir("cli-keys");
    let made = csr(&dir, "gk.key", &["--bits", "2048"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert_eq!(std::fs::metadata(dir.join("gk.key")).unwrap().permissions().mode() & 0o777, 0o600);
    // openssl parses the CSR, checks its signature, and reads the profile requested.
    openssl(&dir, &["req", "-in", "gk.csr", "-noout", "-verify"]);
    let text = String::from_utf8(openssl(&dir, &["req", "-in", "gk.csr", "-noout", "-text"]).stdout).unwrap();
    for want in
        ["URI:https://ekg.example.net/", "email:ekg@example.net", "E-mail Protection", "1.3.6.1.4.1.99999.1.3.1"]
    {
        assert!(text.contains(want), "{want} not in the CSR:\n{text}");
    }
    // Neither file is overwritten; bad flags are refused.
    let again = csr(&dir, "other.key", &[]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("gk.csr exists"), "{again:?}");
    assert!(!dir.join("other.key").exists());
    let bits = csr(&dir, "bits.key", &["--bits", "1024"]);
    assert!(String::from_utf8_lossy(&bits.stderr).contains("--bits"), "{bits:?}");

    // The CA's side, as docs/server.md shows it.
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            "/O=example.net/CN=example.net CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "gk.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-sha256",
            "-copy_extensions",
            "copy",
            "-out",
            "gk.pem",
        ],
    );
    std::fs::write(dir.join("storage.key"), format!("{}\n", "07".repeat(32))).unwrap();
    std::fs::set_permissions(dir.join("storage.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        dir.join("ekg.toml"),
        r#"[gatekeeper]
uri = "https://ekg.example.net/"
certificate = "gk.pem"
key = "gk.key"
storage_key = "storage.key"
anchors = ["ca.pem"]

[[sender]]
domain = "example.net"
issuer = "ca.pem"

[server]
database = "memory"
"#,
    )
    .unwrap();
    let out = run(Command::new(EKG).args(["serve", "--check-config", "--config"]).arg(dir.join("ekg.toml")));
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("gatekeeper certificate valid to") && out.contains("configuration ok"), "{out}");
}

#[test]
fn check_config_refuses_a_gatekeeper_certificate_that_is_not_valid_now() {
    let dir = fresh_dir("cli-keys-expired");
    let files = demo(&dir, "");
    let mut pki = ekg_testpki::Pki::new(ekg_server::demo::SEED);
    let org = ekg_testpki::Org::build_with_uri(&mut pki, "example.com", &["alice", "carol"], &files.uri);
    let mut spec = ekg_testpki::EntitySpec::gatekeeper("ekg@example.com", &files.uri);
    spec.valid = ((2020, 1, 1), (2025, 1, 1));
    let expired = ekg_testpki::Pki::new(7).issue_with_key(&org.ca, &spec, org.gatekeeper.key_pkcs8.clone());
    std::fs::write(files.pki.join("example.com/gatekeeper.pem"), expired.cert_pem()).unwrap();
    let out = Command::new(EKG).args(["serve", "--check-config", "--config"]).arg(&files.config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("configuration: gatekeeper.certificate: expired (valid to 2025-01-01T00:00:00Z"), "{err}");
}
