//! `ekg send` and `ekg read` against a real `ekg serve`: a multipart message with a binary
//! attachment survives byte for byte for each recipient; a second read under `once` and the
//! recipient organisation's gateway are refused; OpenSSL opens the sealed `.eml` with the
//! released key; Python's `email` package finds the `application/pkcs7-mime` part; bad input
//! of every kind gives one line with its code, exit 1, and no output.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine;
use common::*;
use ekg_server::demo::DemoFiles;

/// A message with a text part, an HTML part and a binary attachment.
fn multipart() -> Vec<u8> {
    let binary: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut b64 = base64::engine::general_purpose::STANDARD.encode(&binary);
    let mut lines = String::new();
    while !b64.is_empty() {
        let rest = b64.split_off(b64.len().min(76));
        lines.push_str(&b64);
        lines.push_str("\r\n");
        b64 = rest;
    }
    format!(
        "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nCc: carol@example.com\r\nSubject: the plans\r\n\
         Message-ID: <plans-1@example.com>\r\nDate: Wed, 2 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\n\
         Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Plans attached. \u{e9}t\u{e9}\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Plans attached.</p>\r\n--alt--\r\n\
         --outer\r\nContent-Type: application/octet-stream; name=\"plans.bin\"\r\nContent-Disposition: attachment; filename=\"plans.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{lines}--outer--\r\n"
    )
    .into_bytes()
}

struct World {
    dir: PathBuf,
    files: DemoFiles,
    server: Option<ServeProcess>,
}

fn world(name: &str) -> World {
    let dir = fresh_dir(name);
    let port = free_port();
    let files = demo_at(&dir, port);
    let server = spawn_serve(EKG, &files.config, port);
    World { dir, files, server: Some(server) }
}

impl World {
    fn identity(&self, domain: &str, name: &str) -> PathBuf {
        self.files.pki.join(domain).join(format!("{name}.pem"))
    }

    /// Runs `ekg ARGS --config client.toml --identity IDENTITY` with `input` on standard input.
    fn ekg(&self, args: &[&str], identity: &Path, input: &[u8]) -> Output {
        ekg_as(&self.files.client, args, identity, input)
    }

    fn send(&self, message: &[u8]) -> Vec<u8> {
        let out = self.ekg(&["send"], &self.identity("example.com", "alice"), message);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }
}

#[test]
fn a_multipart_message_survives_send_then_read_for_each_recipient() {
    let w = world("mail-flow");
    let message = multipart();
    let sealed = w.send(&message);
    let text = String::from_utf8_lossy(&sealed);
    assert!(text.contains("Subject: [...]") && !text.contains("the plans"), "{text}");
    let read = |domain: &str, name: &str| {
        let out = w.ekg(&["read"], &w.identity(domain, name), &sealed);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, message, "{name} did not get the message byte for byte");
    };
    read("example.org", "bob");
    // Once only, for either of bob's certificates.
    refused_in_one_line(&w.ekg(&["read"], &w.identity("example.org", "bob"), &sealed), "already_released");
    refused_in_one_line(&w.ekg(&["read"], &w.identity("example.org", "bob2"), &sealed), "already_released");
    // The recipient organisation's gateway is not a principal of the sender's gatekeeper.
    refused_in_one_line(
        &w.ekg(&["read", "--gateway"], &w.identity("example.org", "gateway"), &sealed),
        "recipient_not_listed",
    );
    // carol reads; every listed address served, the key is destroyed (retention 0).
    read("example.com", "carol");
    refused_in_one_line(&w.ekg(&["read"], &w.identity("example.org", "bob"), &sealed), "key_destroyed");
    // dave is not listed: his client refuses before asking.
    refused_in_one_line(&w.ekg(&["read"], &w.identity("example.org", "dave"), &sealed), "not_for_this_recipient");
}

#[test]
fn the_sender_gateway_reads_and_openssl_and_python_understand_the_sealed_message() {
    let w = world("mail-interop");
    let message = multipart();
    let sealed = w.send(&message);
    let path = w.dir.join("sealed.eml");
    std::fs::write(&path, &sealed).unwrap();
    // The sender organisation's gateway reads it without using a release (retention 0: it
    // reads before the last recipient).
    let out = w.ekg(&["read", "--gateway"], &w.identity("example.com", "gateway"), &sealed);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, message);
    // Python's standard library finds the S/MIME part.
    let py = Command::new("python3")
        .args(["-c", "import email,sys; m=email.message_from_binary_file(open(sys.argv[1],'rb')); print(m.get_content_type(), m.get_param('smime-type'), m.get_filename(), m['Subject'])"])
        .arg(&path)
        .output()
        .expect("python3");
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim(), "application/pkcs7-mime authEnveloped-data smime.p7m [...]");
    // bob's key, released through the core (a client that is not `ekg read`), opens the
    // .eml with `openssl cms -decrypt -inform SMIME`.
    let der = base64::engine::general_purpose::STANDARD.decode(text_body(&sealed)).unwrap();
    let bob = recipient(&w.files, "example.org", "bob");
    let now = ekg_server::service::wall_clock();
    let msg = bob.receive(&der, now).unwrap();
    let pending = bob.request_release(&msg, now, &mut rng(1)).unwrap();
    let addr = w.server.as_ref().unwrap().addr.clone();
    let (status, body) = post_to(&addr, "release-request", &pending.der).unwrap();
    assert_eq!(status, 200);
    let key = bob.accept_release(&msg, &pending, &body, now, &mut rng(2)).unwrap();
    let key_id = msg.ticket().key_id;
    let out = Command::new("openssl")
        .args(["cms", "-decrypt", "-inform", "SMIME", "-in"])
        .arg(&path)
        .args(["-secretkey", &hex::encode(key.expose()), "-secretkeyid", &hex::encode(key_id.0)])
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, message, "openssl's plaintext differs");
}

/// The base64 body of a single-part message.
fn text_body(eml: &[u8]) -> String {
    let text = String::from_utf8_lossy(eml);
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    body.split_whitespace().collect()
}

#[test]
fn bad_input_gives_one_line_with_its_code_and_no_output() {
    let w = world("mail-bad");
    let message = multipart();
    let sealed = w.send(&message);
    let bob = w.identity("example.org", "bob");
    // A plain message is not an EKG message.
    refused_in_one_line(&w.ekg(&["read"], &bob, &message), "not_an_ekg_message");
    refused_in_one_line(&w.ekg(&["read"], &bob, b"garbage"), "not_an_ekg_message");
    refused_in_one_line(&w.ekg(&["read"], &bob, b""), "malformed_mime");
    // A base64 body cut in the middle of a quantum, and one cut at a quantum boundary.
    let text = String::from_utf8(sealed.clone()).unwrap();
    let cut = &text[..text.len() - 200];
    refused_in_one_line(
        &w.ekg(&["read"], &bob, format!("{}=\r\n", &cut[..cut.len() - 1]).as_bytes()),
        "malformed_mime",
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body: String = body.split_whitespace().collect();
    let shorter = format!("{head}\r\n\r\n{}\r\n", &body[..body.len() / 2 / 4 * 4]);
    refused_in_one_line(&w.ekg(&["read"], &bob, shorter.as_bytes()), "malformed_der");
    // A tampered ticket: the digest the sender authenticated no longer matches.
    let mut der = base64::engine::general_purpose::STANDARD.decode(&body).unwrap();
    let at = der.len() - 40;
    der[at] ^= 1;
    let tampered = format!("{head}\r\n\r\n{}\r\n", base64::engine::general_purpose::STANDARD.encode(&der));
    refused_in_one_line(&w.ekg(&["read"], &bob, tampered.as_bytes()), "ticket_digest_mismatch");
    // An input file that does not exist.
    let out = Command::new(EKG)
        .args(["read", "--config"])
        .arg(&w.files.client)
        .arg("--identity")
        .arg(&bob)
        .arg("--key")
        .arg(w.files.pki.join("example.com/carol.key"))
        .arg("--input")
        .arg(w.dir.join("none.eml"))
        .output()
        .unwrap();
    refused_in_one_line(&out, "io_error");
    // A wrong identity: bob's certificate with carol's key; no output file is left.
    std::fs::write(w.dir.join("sealed.eml"), &sealed).unwrap();
    let out_file = w.dir.join("out.eml");
    let out = Command::new(EKG)
        .args(["read", "--config"])
        .arg(&w.files.client)
        .arg("--identity")
        .arg(&bob)
        .arg("--key")
        .arg(w.files.pki.join("example.com/carol.key"))
        .arg("--input")
        .arg(w.dir.join("sealed.eml"))
        .arg("--output")
        .arg(&out_file)
        .output()
        .unwrap();
    refused_in_one_line(&out, "invalid_configuration");
    assert!(!out_file.exists(), "an output file was written");
    // A tampered body: the key is released (the gatekeeper cannot tell), then GCM refuses.
    let mut der = base64::engine::general_purpose::STANDARD.decode(&body).unwrap();
    der[200] ^= 1;
    let tampered = format!("{head}\r\n\r\n{}\r\n", base64::engine::general_purpose::STANDARD.encode(&der));
    let carol = w.identity("example.com", "carol");
    refused_in_one_line(&w.ekg(&["read"], &carol, tampered.as_bytes()), "authentication_failed");
    // A key file readable by others.
    let key = w.files.pki.join("example.org/bob.key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused_in_one_line(&w.ekg(&["read"], &bob, &sealed), "identity_readable_by_others");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The gatekeeper is down.
    let mut w = w;
    drop(w.server.take());
    refused_in_one_line(&w.ekg(&["read"], &bob, &sealed), "gatekeeper_unreachable");
    refused_in_one_line(&w.ekg(&["send"], &w.identity("example.com", "alice"), &message), "gatekeeper_unreachable");
}

#[test]
fn a_pkcs12_identity_made_by_openssl_reads_with_its_passphrase_only() {
    let w = world("mail-p12");
    let sealed = w.send(&multipart());
    let d = w.files.pki.join("example.org");
    let pass = w.dir.join("pass.txt");
    ekg_server::files::write_secret(&pass, b"correct horse\n").unwrap();
    let export = |out: &Path, extra: &[&str]| {
        let o = Command::new("openssl")
            .args(["pkcs12", "-export", "-in"])
            .arg(d.join("bob.pem"))
            .arg("-inkey")
            .arg(d.join("bob.key"))
            .arg("-out")
            .arg(out)
            .arg("-passout")
            .arg(format!("file:{}", pass.display()))
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    let p12 = w.dir.join("bob.p12");
    export(&p12, &[]);
    let read = |identity: &Path, passphrase: &Path| {
        let mut child = Command::new(EKG)
            .args(["read", "--config"])
            .arg(&w.files.client)
            .arg("--identity")
            .arg(identity)
            .arg("--passphrase-file")
            .arg(passphrase)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&sealed).unwrap();
        child.wait_with_output().unwrap()
    };
    // A wrong passphrase first: refused before anything is sent.
    let wrong = w.dir.join("wrong.txt");
    ekg_server::files::write_secret(&wrong, b"battery staple\n").unwrap();
    refused_in_one_line(&read(&p12, &wrong), "wrong_passphrase");
    // The legacy PBES1 ciphers are refused with their code.
    let legacy = w.dir.join("legacy.p12");
    export(&legacy, &["-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1"]);
    refused_in_one_line(&read(&legacy, &pass), "unsupported_pkcs12");
    // The right one reads the message.
    let out = read(&p12, &pass);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, multipart());
}

#[test]
fn inspect_shows_what_a_sealed_message_says_and_which_checks_pass() {
    let w = world("mail-inspect");
    let sealed = w.send(&multipart());
    let path = w.dir.join("sealed.eml");
    std::fs::write(&path, &sealed).unwrap();
    let inspect =
        |file: &Path| Command::new(EKG).arg("inspect").arg(file).arg("--config").arg(&w.files.client).output().unwrap();
    let out = inspect(&path);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "sealed message (AuthEnvelopedData, RFC 5083)",
        "recipients     bob@example.org, carol@example.com",
        "sender         alice@example.com",
        "policy         once",
        "ok       ticket: a gatekeeper's certificate naming its URI (C1)",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    assert!(!text.contains("FAILED"), "{text}");
    // The ticket's signature flipped: the report says which check failed, exit 1.
    let body: String = String::from_utf8_lossy(&sealed).split_once("\r\n\r\n").unwrap().1.split_whitespace().collect();
    let mut der = base64::engine::general_purpose::STANDARD.decode(&body).unwrap();
    let n = der.len();
    der[n - 3] ^= 1;
    let bad = w.dir.join("bad.der");
    std::fs::write(&bad, &der).unwrap();
    let out = inspect(&bad);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED"), "{text}");
    // Not an artifact at all.
    let junk = w.dir.join("junk.txt");
    std::fs::write(&junk, "hello").unwrap();
    refused_in_one_line(&inspect(&junk), "not_an_ekg_artifact");
}
