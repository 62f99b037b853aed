//! Interop: every artifact of `ekg demo` verified and decrypted by `openssl cms` alone, and
//! tampered copies refused.
//!
//! Needs OpenSSL >= 3.0.22 (or any release with openssl/openssl#31695): older releases tag
//! AuthEnvelopedData's authAttrs/unauthAttrs as [2]/[3] instead of RFC 5083's [1]/[2]
//! (openssl/openssl#26101, #31635) and cannot parse a conformant sealed message.
//! `.ci/run` installs it. `EKG_OPENSSL` overrides the binary.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;

use der::{Decode, Encode};
use ekg_core::wire::{ContentInfo, KeyDelivery, ReleaseRequest, TicketInfo};

fn openssl() -> String {
    std::env::var("EKG_OPENSSL").unwrap_or_else(|_| "openssl".into())
}

fn run_openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new(openssl()).args(args).output().expect("openssl must be installed (.ci/run installs it)");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn demo_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("openssl-interop-{name}-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_ekg"))
        .args(["demo", "--out"])
        .arg(&dir)
        .args(["--seed", "2026"])
        .status()
        .expect("run ekg demo");
    assert!(status.success(), "ekg demo failed");
    // Private keys are the owner's alone, and the manifest says they are test keys.
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("pki/example.com/alice.key");
    assert_eq!(std::fs::metadata(&key).expect("alice.key").permissions().mode() & 0o777, 0o600);
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.txt")).unwrap_or_default();
    assert!(manifest.contains("TEST KEYS"), "{manifest}");
    dir
}

struct Ctx {
    dir: PathBuf,
}

impl Ctx {
    fn p(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn verify(&self, input: &str, out: &str) -> bool {
        let (ok, err) = run_openssl(&[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            &self.p(input),
            "-CAfile",
            &self.p("pki/anchors.pem"),
            "-binary",
            "-out",
            &self.p(out),
        ]);
        if !ok {
            eprintln!("openssl cms -verify {input}: {err}");
        }
        ok
    }

    fn decrypt(&self, input: &str, who: &str, out: &str) -> bool {
        let (ok, err) = run_openssl(&[
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            &self.p(input),
            "-recip",
            &self.p(&format!("pki/{who}.pem")),
            "-inkey",
            &self.p(&format!("pki/{who}.key")),
            "-binary",
            "-out",
            &self.p(out),
        ]);
        if !ok {
            eprintln!("openssl cms -decrypt {input}: {err}");
        }
        ok
    }

    fn decrypt_sealed(&self, input: &str, key_hex: &str, id_hex: &str, out: &str) -> bool {
        let (ok, err) = run_openssl(&[
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            &self.p(input),
            "-secretkey",
            key_hex,
            "-secretkeyid",
            id_hex,
            "-binary",
            "-out",
            &self.p(out),
        ]);
        if !ok {
            eprintln!("openssl cms -decrypt {input} -secretkey: {err}");
        }
        ok
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).expect(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join(name), bytes).expect(name)
    }

    /// A copy of `name` with byte `at` (negative: from the end) flipped.
    fn tampered(&self, name: &str, at: isize) -> String {
        let mut b = self.read(name);
        let i = if at < 0 { (b.len() as isize + at) as usize } else { at as usize };
        b[i] ^= 0x01;
        let out = format!("tampered-{i}-{name}");
        self.write(&out, &b);
        out
    }

    fn delivery(&self, name: &str) -> (Vec<u8>, Vec<u8>) {
        let d = KeyDelivery::from_der(&self.read(name)).expect("KeyDelivery");
        (d.key_id.as_bytes().to_vec(), d.key.0.to_vec())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

#[test]
fn the_demo_s_openssl_script_opens_every_artifact() {
    let dir = demo_dir("script");
    let out = Command::new("sh").arg("OPENSSL.sh").current_dir(&dir).output().expect("sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OPENSSL.sh: every artifact verified or opened"), "{text}");
    for f in [
        "04-message.txt",
        "04-message-from-eml.txt",
        "08-release-bob.content",
        "03-grant.content",
        "log/head-4.der.content",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
}

#[test]
fn openssl_verifies_and_decrypts_every_artifact_and_refuses_tampered_copies() {
    let (ok, _) = run_openssl(&["version"]);
    assert!(ok, "openssl is not installed: .ci/run installs it");
    let ctx = Ctx { dir: demo_dir("artifacts") };

    // Signed objects, outer layers.
    for name in
        ["01-key-request", "02-ticket", "05-gateway-request", "07-release-request-bob", "09-release-request-carol"]
    {
        assert!(ctx.verify(&format!("{name}.der"), &format!("{name}.content")), "{name} must verify");
        // Flipped signature byte, flipped content byte: refused.
        let bad_sig = ctx.tampered(&format!("{name}.der"), -1);
        assert!(!ctx.verify(&bad_sig, "x.content"), "{name} with a flipped signature must fail");
    }
    let ticket = ctx.read("02-ticket.der");
    let request = ctx.read("01-key-request.der");
    let t = ctx.read("02-ticket.content");
    let info = TicketInfo::from_der(&t).expect("TicketInfo");
    assert_eq!(info.request.to_der().expect("der"), request, "the ticket carries the signed request byte for byte");
    // Nested layers: the request inside the ticket, the ticket inside each release request.
    ctx.write("nested-request.der", &info.request.to_der().expect("der"));
    assert!(ctx.verify("nested-request.der", "nested-request.content"));
    for who in ["07-release-request-bob", "09-release-request-carol", "05-gateway-request"] {
        let rr = ReleaseRequest::from_der(&ctx.read(&format!("{who}.content"))).expect("ReleaseRequest");
        assert_eq!(rr.ticket.to_der().expect("der"), ticket);
        ctx.write(&format!("nested-ticket-{who}.der"), &rr.ticket.to_der().expect("der"));
        assert!(ctx.verify(&format!("nested-ticket-{who}.der"), "nested.content"));
    }
    // A content byte flipped inside the ticket's eContent (the key id) breaks its digest.
    let key_id = info.key_id.as_bytes().to_vec();
    let at = ticket.windows(16).position(|w| w == key_id.as_slice()).expect("key id in ticket") as isize;
    let bad = ctx.tampered("02-ticket.der", at);
    assert!(!ctx.verify(&bad, "x.content"), "a tampered ticket must fail");

    // The grant, decrypted with alice's key.
    assert!(ctx.decrypt("03-grant.der", "example.com/alice", "grant.content"));
    let (grant_id, key) = ctx.delivery("grant.content");
    assert_eq!(grant_id, key_id);
    assert_eq!(hex(&grant_id).to_lowercase(), String::from_utf8(ctx.read("key-id.hex")).expect("utf8"));
    let bad = ctx.tampered("03-grant.der", -20);
    assert!(!ctx.decrypt(&bad, "example.com/alice", "x.content"), "a tampered grant must fail");
    assert!(!ctx.decrypt("03-grant.der", "example.org/bob", "x.content"), "bob cannot open alice's grant");

    // Each release: decrypt with the requester's key, verify the gatekeeper's signature inside,
    // find the same key.
    for (name, who) in [
        ("06-gateway-release", "example.com/gateway"),
        ("08-release-bob", "example.org/bob"),
        ("10-release-carol", "example.com/carol"),
    ] {
        assert!(ctx.decrypt(&format!("{name}.der"), who, &format!("{name}.signed")), "{name} must decrypt");
        assert!(
            ctx.verify(&format!("{name}.signed"), &format!("{name}.content")),
            "{name} must be signed by the gatekeeper"
        );
        let (id, released) = ctx.delivery(&format!("{name}.content"));
        assert_eq!(
            (id.as_slice(), released.as_slice()),
            (key_id.as_slice(), key.as_slice()),
            "{name} releases the grant's key"
        );
        let bad = ctx.tampered(&format!("{name}.der"), -20);
        assert!(!ctx.decrypt(&bad, who, "x.content"), "a tampered {name} must fail");
    }
    assert!(!ctx.decrypt("08-release-bob.der", "example.com/carol", "x.content"), "carol cannot open bob's release");

    // The sealed message, with the released key.
    let (ok, version) = {
        let out = Command::new(openssl()).arg("version").output().expect("openssl");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert!(ok);
    assert!(
        ctx.decrypt_sealed("04-sealed-message.der", &hex(&key), &hex(&key_id), "message.out"),
        "{version}: openssl cannot open a RFC 5083 AuthEnvelopedData with authAttrs; it needs openssl/openssl#31695 (OpenSSL >= 3.0.22)"
    );
    assert_eq!(ctx.read("message.out"), ctx.read("message.txt"));
    // Tampered ciphertext, tag or authenticated ticket digest: refused.
    let sealed = ctx.read("04-sealed-message.der");
    let ci = ContentInfo::from_der(&sealed).expect("ContentInfo");
    let _ = ci;
    let digest_at = sealed
        .windows(11)
        .position(|w| w == [0x06, 0x0b, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x01])
        .expect("attr oid");
    for at in [digest_at as isize + 20, 200, (digest_at + 49 + 5) as isize] {
        let bad = ctx.tampered("04-sealed-message.der", at);
        assert!(
            !ctx.decrypt_sealed(&bad, &hex(&key), &hex(&key_id), "x.out"),
            "tampered sealed message (byte {at}) must fail"
        );
    }
    let mut wrong_key = key.clone();
    wrong_key[0] ^= 1;
    assert!(
        !ctx.decrypt_sealed("04-sealed-message.der", &hex(&wrong_key), &hex(&key_id), "x.out"),
        "the wrong key must fail"
    );
    let _ = std::fs::remove_dir_all(&ctx.dir);
}
