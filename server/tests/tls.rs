//! TLS: the server on https with a certificate for 127.0.0.1, reached by curl (the whole
//! protocol, by the openssl-and-curl client) trusting only that certificate; a plain-HTTP
//! request to the TLS port gets no answer and the server keeps serving; a TLS key readable
//! by others, or a key that does not fit the certificate, is refused at configuration time.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// A self-signed certificate for 127.0.0.1 in `dir`: (cert path, key path).
fn tls_files(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::IpAddress([127, 0, 0, 1].into())];
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    (c, k)
}

#[test]
fn curl_completes_the_protocol_over_tls_and_plain_http_gets_nothing() {
    let dir = fresh_dir("tls");
    let (cert, _) = tls_files(&dir, "tls");
    let files = demo(&dir, "tls_cert = \"tls.pem\"\ntls_key = \"tls.key\"\n");
    let server = start(&files);
    let base = format!("https://{}/", server.addr);

    let healthz = Command::new("curl").args(["-sS", "--cacert"]).arg(&cert).arg(format!("{base}healthz")).output();
    let healthz = healthz.expect("curl");
    assert!(healthz.status.success(), "{}", String::from_utf8_lossy(&healthz.stderr));
    assert_eq!(String::from_utf8_lossy(&healthz.stdout).trim(), "ok");

    // Without the certificate, curl refuses the server: it is not a public name.
    let untrusted = Command::new("curl").args(["-sS", &format!("{base}healthz")]).output().unwrap();
    assert!(!untrusted.status.success());

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/openssl-client.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(&files.pki)
        .arg(&base)
        .arg(dir.join("work"))
        .env("EKG_CACERT", &cert)
        .output()
        .expect("run the openssl client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("openssl-client: ok"), "{text}");

    // Plain HTTP to the TLS port: the handshake fails, no HTTP answer comes back.
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{}", String::from_utf8_lossy(&answer));
    let again = Command::new("curl").args(["-sS", "--cacert"]).arg(&cert).arg(format!("{base}healthz")).output();
    assert!(again.unwrap().status.success(), "the server stopped serving after a plain-HTTP client");
    server.stop().unwrap();
}

#[test]
fn a_bad_tls_key_is_refused_when_the_configuration_is_read() {
    let dir = fresh_dir("tls-bad");
    let (_, key) = tls_files(&dir, "tls");
    tls_files(&dir, "other");
    let files = demo(&dir, "tls_cert = \"tls.pem\"\ntls_key = \"tls.key\"\n");
    assert!(ekg_server::config::load(&files.config).is_ok());

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = ekg_server::config::load(&files.config).unwrap_err();
    assert_eq!(e.field, "server.tls_key", "{e}");
    assert!(e.rule.contains("chmod 600"), "{e}");

    let text = std::fs::read_to_string(&files.config).unwrap().replace("tls.key", "other.key");
    std::fs::write(&files.config, text).unwrap();
    let e = ekg_server::config::load(&files.config).unwrap_err();
    assert_eq!(e.field, "server.tls_key", "{e}");
    assert!(e.rule.contains("does not fit"), "{e}");
}

/// A reload (SIGHUP in `ekg serve`) puts a renewed TLS certificate in place for new
/// connections; a pair that does not hold leaves the current one serving.
#[test]
fn a_reload_serves_the_renewed_tls_certificate() {
    let dir = fresh_dir("tls-reload");
    let (first, _) = tls_files(&dir, "tls");
    let files = demo(&dir, "tls_cert = \"tls.pem\"\ntls_key = \"tls.key\"\n");
    let server = start(&files);
    let url = format!("https://{}/healthz", server.addr);
    let trusts = |cert: &Path| {
        let out = Command::new("curl").args(["-sS", "--cacert"]).arg(cert).arg(&url).output().expect("curl");
        out.status.success()
    };
    assert!(trusts(&first));
    // Renewed in place (a new key and certificate), then reloaded.
    std::fs::copy(&first, dir.join("first.pem")).unwrap();
    let (renewed, _) = tls_files(&dir, "tls");
    let waited = std::time::Instant::now();
    server.reload();
    while !trusts(&renewed) {
        assert!(waited.elapsed() < std::time::Duration::from_secs(10), "the renewed certificate is not served");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!trusts(&dir.join("first.pem")), "the old certificate is still served");
    // A broken key: the reload fails, the renewed pair keeps serving.
    std::fs::write(dir.join("tls.key"), "not a key").unwrap();
    server.reload();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(trusts(&renewed));
    server.stop().unwrap();
}
