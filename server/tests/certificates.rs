//! The gatekeeper's certificates as an operator meets them (`docs/server.md`,
//! "Certificates"): a credential that does not hold refuses the start, naming the field and
//! the rule; a renewal (new serial, same key and URI) keeps outstanding tickets readable
//! across a restart, and only for the certificates listed as retired; CRLs are re-read while
//! the server runs; the expiry metrics.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use ekg_server::demo::DemoFiles;
use ekg_testpki::{Eku, EntitySpec, Issued, Org, Pki};

/// The demo's example.com organisation, rebuilt from the demo's seed (its CA signs renewals).
fn demo_org(files: &DemoFiles) -> Org {
    let mut pki = Pki::new(ekg_server::demo::SEED);
    Org::build_with_uri(&mut pki, "example.com", &["alice", "carol"], &files.uri)
}

/// A certificate for the demo gatekeeper's key, from example.com's CA, as `edit` says.
fn gatekeeper_cert(files: &DemoFiles, seed: u64, edit: impl FnOnce(&mut EntitySpec)) -> Issued {
    let org = demo_org(files);
    assert_eq!(
        org.gatekeeper.cert_pem(),
        std::fs::read_to_string(files.pki.join("example.com/gatekeeper.pem")).unwrap()
    );
    let mut spec = EntitySpec::gatekeeper("ekg@example.com", &files.uri);
    edit(&mut spec);
    Pki::new(seed).issue_with_key(&org.ca, &spec, org.gatekeeper.key_pkcs8.clone())
}

fn write_cert(files: &DemoFiles, name: &str, cert: &Issued) -> String {
    let rel = format!("pki/example.com/{name}.pem");
    std::fs::write(files.dir.join(&rel), cert.cert_pem()).unwrap();
    rel
}

/// The demo's configuration (`original`) with the gatekeeper's certificate replaced and
/// `retired` added.
fn configure(files: &DemoFiles, original: &str, certificate: &str, retired: &[&str]) {
    let mut text =
        regex_free_replace(original, "certificate = \"", "\"\nkey", &format!("certificate = \"{certificate}\"\nkey"));
    for r in retired {
        text = text.replacen(
            "[[sender]]",
            &format!("[[gatekeeper.retired]]\ncertificate = \"{r}\"\nkey = \"same\"\n\n[[sender]]"),
            1,
        );
    }
    std::fs::write(&files.config, text).unwrap();
}

/// Replaces the first `from`...`to` span (both included) with `with`.
fn regex_free_replace(text: &str, from: &str, to: &str, with: &str) -> String {
    let a = text.find(from).unwrap();
    let b = a + text[a..].find(to).unwrap() + to.len();
    format!("{}{with}{}", &text[..a], &text[b..])
}

/// A change to a certificate's specification.
type Edit = dyn Fn(&mut EntitySpec);

#[test]
fn a_credential_that_does_not_hold_refuses_the_start_naming_field_and_rule() {
    let dir = fresh_dir("cert-start");
    let files = demo(&dir, "");
    let original = std::fs::read_to_string(&files.config).unwrap();
    let cases: [(&str, Box<Edit>, &str); 4] = [
        ("expired", Box::new(|s| s.valid = ((2020, 1, 1), (2025, 1, 1))), "expired"),
        ("future", Box::new(|s| s.valid = ((2040, 1, 1), (2045, 1, 1))), "not valid yet"),
        ("no_eku", Box::new(|s| s.eku = Eku::EmailProtection), "must carry extended key usage id-ekg-kp-gatekeeper"),
        ("other_uri", Box::new(|s| s.uris = vec!["https://other.example.com/".into()]), "must name uri"),
    ];
    for (i, (name, edit, rule)) in cases.into_iter().enumerate() {
        let cert = gatekeeper_cert(&files, 900 + i as u64, edit);
        configure(&files, &original, &write_cert(&files, name, &cert), &[]);
        // The rules without a clock at load; those with one at start (and in --check-config).
        let e = match ekg_server::config::load(&files.config) {
            Err(e) => e.to_string(),
            Ok(settings) => ekg_server::start(settings).expect_err(name).to_string(),
        };
        assert!(e.starts_with(&format!("configuration: gatekeeper.certificate: {rule}")), "{name}: {e}");
    }
}

#[test]
fn a_renewal_keeps_outstanding_tickets_readable_across_a_restart() {
    let dir = fresh_dir("cert-renewal");
    let files = demo(&dir, "");
    let original = std::fs::read_to_string(&files.config).unwrap();
    let server = start(&files);
    let (for_bob, plain_bob) = send(&server, &files, &["bob@example.org"], 1);
    let (for_dave, _) = send(&server, &files, &["dave@example.org"], 2);
    server.stop().unwrap();

    // Renewed: a new serial, the same key and URI; the old certificate retired.
    let renewed = gatekeeper_cert(&files, 901, |s| s.valid = ((2026, 1, 1), (2046, 1, 1)));
    let renewed_path = write_cert(&files, "gatekeeper-2026", &renewed);
    configure(&files, &original, &renewed_path, &["pki/example.com/gatekeeper.pem"]);
    let server = start(&files);
    let bob = recipient(&files, "example.org", "bob");
    // bob's client accepts the release the renewed certificate signed (C2).
    assert_eq!(fetch(&server, &bob, &for_bob, 3).expect("bob reads after the renewal"), plain_bob);
    // New tickets carry the renewed certificate.
    let (fresh, plain) = send(&server, &files, &["bob@example.org"], 4);
    assert_eq!(fetch(&server, &bob, &fresh, 5).expect("a new ticket"), plain);
    server.stop().unwrap();

    // Without the retired certificate, a ticket it signed is refused: nothing is released.
    configure(&files, &original, &renewed_path, &[]);
    let server = start(&files);
    let dave = recipient(&files, "example.org", "dave");
    assert_eq!(fetch(&server, &dave, &for_dave, 6), Err((403, "wrong_gatekeeper".into())));
    server.stop().unwrap();
}

/// example.org's CRL, as the demo's CA would sign it, revoking `revoked`.
fn write_crl(files: &DemoFiles, next: (i32, u8, u8), revoked: &[&str]) {
    let mut pki = Pki::new(ekg_server::demo::SEED);
    let _ = Org::build_with_uri(&mut pki, "example.com", &["alice", "carol"], &files.uri);
    let org = Org::build(&mut pki, "example.org", &["bob", "dave"]);
    let revoked: Vec<&Issued> = revoked.iter().map(|a| org.user(a)).collect();
    let crl = ekg_testpki::crl(&org.ca, (2025, 1, 1), next, &revoked);
    // Replaced at once, as docs/server.md tells operators: a reload never reads half a file.
    let path = files.pki.join("example.org/ca.crl");
    std::fs::write(path.with_extension("crl.new"), crl.pem()).unwrap();
    std::fs::rename(path.with_extension("crl.new"), path).unwrap();
}

/// Asks again (every 50 ms, at most 10 s) until `want` is the answer.
fn until(server: &ekg_server::Running, who: &ekg_core::role::Recipient, sealed: &[u8], want: (u16, &str)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = fetch(server, who, sealed, 7);
        if got.as_ref().err().is_some_and(|(s, c)| (*s, c.as_str()) == want) {
            return;
        }
        assert!(Instant::now() < deadline, "still {got:?}, not {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn crl_files_are_reread_while_the_server_runs() {
    let dir = fresh_dir("cert-crl");
    let files = demo(&dir, "");
    let settings = settings(&files);
    let reload = std::sync::Arc::clone(&settings.certificates.reload);
    let server = ekg_server::start(settings).expect("server");
    let (sealed, plain) = send(&server, &files, &["bob@example.org", "dave@example.org"], 10);
    let bob = recipient(&files, "example.org", "bob");
    let dave = recipient(&files, "example.org", "dave");
    // The reload runs beside the requests: the waits ask on messages of their own, so a
    // request answered before the reload spends nothing of `sealed`'s.
    let (probe_bob, _) = send(&server, &files, &["bob@example.org"], 20);
    let (probe_dave, _) = send(&server, &files, &["dave@example.org"], 21);
    // bob's certificate is revoked: after the reload, his release is refused.
    write_crl(&files, (2045, 1, 1), &["bob@example.org"]);
    reload.notify_one();
    until(&server, &bob, &probe_bob, (403, "certificate_revoked"));
    assert_eq!(fetch(&server, &bob, &sealed, 8), Err((403, "certificate_revoked".into())));
    // A CRL past its nextUpdate refuses everyone its CA certified (fail closed, 500).
    write_crl(&files, (2026, 1, 1), &[]);
    reload.notify_one();
    until(&server, &dave, &probe_dave, (500, "crl_stale"));
    let (_, metrics) = get(&server, "/metrics");
    let stale = metrics.lines().find(|l| l.starts_with("ekg_crl_next_update_seconds{")).expect("CRL metric");
    assert!(stale.contains("CN=example.org CA") && stale.split(' ').next_back().unwrap().starts_with('-'), "{stale}");
    // A file that does not load leaves the CRLs in force as they are.
    std::fs::write(files.pki.join("example.org/ca.crl"), "garbage").unwrap();
    reload.notify_one();
    std::thread::sleep(Duration::from_millis(300));
    until(&server, &dave, &sealed, (500, "crl_stale"));
    write_crl(&files, (2045, 1, 1), &[]);
    reload.notify_one();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch(&server, &dave, &sealed, 11).is_err() {
        assert!(Instant::now() < deadline, "dave is still refused");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fetch(&server, &bob, &sealed, 12), Ok(plain), "bob is no longer revoked");
    server.stop().unwrap();
}

#[test]
fn the_certificate_expiry_is_a_metric() {
    let dir = fresh_dir("cert-metrics");
    let files = demo(&dir, "");
    let server = start(&files);
    let (_, metrics) = get(&server, "/metrics");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("ekg_gatekeeper_certificate_expiry_seconds "))
        .unwrap_or_else(|| panic!("{metrics}"));
    let left: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let not_after = 2_366_841_600_i64; // 2045-01-01, the demo gatekeeper's notAfter
    let now = i64::try_from(now(&server).secs()).unwrap();
    assert!((not_after - now - left).abs() < 120, "{line}");
    server.stop().unwrap();
}

#[test]
fn the_certificate_sections_are_checked_field_by_field() {
    let dir = fresh_dir("cert-config");
    let files = demo(&dir, "");
    let good = std::fs::read_to_string(&files.config).unwrap();
    let other = gatekeeper_cert(&files, 950, |s| s.uris = vec!["https://other.example.com/".into()]);
    let other_path = write_cert(&files, "other", &other);
    let crl_by_com = "[[crl]]\nfile = \"pki/example.org/ca.crl\"\nissuer = \"pki/example.com/ca.pem\"\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (good.replacen("[[crl]]", "[[crl]]\nfile = \"ekg.toml\"\nissuer = \"pki/example.org/ca.pem\"\n\n[[crl]]", 1), "crl.file", "ekg.toml"),
        (good.replacen("[[crl]]", &format!("{crl_by_com}\n[[crl]]"), 1), "crl.file", "issued by"),
        (good.replacen("[[recipient]]\ndomain = \"example.com\"", "[[recipient]]\ndomain = \"example.com\"\nissuer = \"pki/example.com/gatekeeper.pem\"\n[[recipient]]\ndomain = \"example.com\"", 1), "recipient.issuer", "not one of gatekeeper.anchors"),
        (good.replacen("[[sender]]", "[[gatekeeper.retired]]\ncertificate = \"pki/example.com/gatekeeper.pem\"\nkey = \"maybe\"\n\n[[sender]]", 1), "gatekeeper.retired.key", "same"),
        (good.replacen("[[sender]]", &format!("[[gatekeeper.retired]]\ncertificate = \"{other_path}\"\n\n[[sender]]"), 1), "gatekeeper.retired[0]", "must name uri"),
        (good.replacen("[gatekeeper]", "[gatekeeper]\nrenewal_warning_days = 400", 1), "gatekeeper.renewal_warning_days", "0 to 365"),
        (good.replacen("[gatekeeper]", "[gatekeeper]\ncrl_refresh_secs = 1", 1), "gatekeeper.crl_refresh_secs", "10 to 86400"),
    ];
    for (text, field, rule) in cases {
        assert_ne!(text, good);
        std::fs::write(&files.config, &text).unwrap();
        let e = ekg_server::config::load(&files.config).expect_err(field);
        assert_eq!(e.field, field, "{e}");
        assert!(e.rule.contains(rule), "{e}");
    }
}
