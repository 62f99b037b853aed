//! Every configuration field that does not hold is refused at start, naming the field and
//! the rule (`docs/server.md`, "Configuration"); nothing is served from a bad configuration.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

/// (what to replace in the demo's ekg.toml, with what, the field named, part of the rule).
const CASES: &[(&str, &str, &str, &str)] = &[
    ("policy = \"once\"", "policy = \"twice\"", "gatekeeper.policy", "once or same_certificate"),
    ("[gatekeeper]", "[gatekeeper]\nprovider = \"openssl\"", "gatekeeper.provider", "aws-lc-rs or rustcrypto"),
    ("[gatekeeper]", "[gatekeeper]\nmax_recipients = 0", "gatekeeper.max_recipients", ""),
    ("[gatekeeper]", "[gatekeeper]\nmax_deliveries = 0", "gatekeeper.max_deliveries", ""),
    ("ticket_lifetime_secs = 604800", "ticket_lifetime_secs = 0", "gatekeeper.ticket_lifetime_secs", ""),
    ("[gatekeeper]", "[gatekeeper]\nmax_path_len = 0", "gatekeeper.max_path_len", "2 to 8 certificates"),
    ("[gatekeeper]", "[gatekeeper]\ncolour = \"blue\"", "config", "unknown field"),
    // A value of the protocol's form (read flattened into [gatekeeper]) is named too.
    ("[gatekeeper]", "[gatekeeper]\nmax_deliveries = \"three\"", "gatekeeper.max_deliveries", "invalid type"),
    ("retention_secs = 0", "retention_secs = 604801", "gatekeeper.retention_secs", "0 to ticket_lifetime_secs"),
    ("[gatekeeper]", "[gatekeeper]\nstorage_epoch_secs = 59", "gatekeeper.storage_epoch_secs", "60 to 31622400"),
    ("storage_key = \"storage.key\"", "storage_key = \"missing.key\"", "gatekeeper.storage_key", "missing.key"),
    ("key = \"pki/example.com/gatekeeper.key\"", "key = \"pki/example.com/alice.key\"", "gatekeeper.certificate", ""),
    ("anchors = [", "anchors = [\"ekg.toml\", ", "gatekeeper.anchors", "ekg.toml: no CERTIFICATE block"),
    ("address = \"gateway@example.com\"", "address = \"not an address\"", "gateway.address", "an address"),
    (
        "issuer = \"pki/example.com/ca.pem\"\n\n[[gateway]]",
        "issuer = \"pki/example.com/gatekeeper.pem\"\n\n[[gateway]]",
        "sender.issuer",
        "not one of gatekeeper.anchors",
    ),
    ("listen = \"127.0.0.1:0\"", "listen = \"localhost\"", "server.listen", "an IP address and port"),
    ("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:8443\"", "server.listen", "plain HTTP only on a loopback"),
    ("database = \"sqlite:ekg.db\"", "database = \"mysql://x\"", "server.database", "postgres://"),
    ("[server]", "[server]\nworkers = 100000", "server.workers", "0 (4 per core) to 256"),
    ("[server]", "[server]\nmax_connections = 0", "server.max_connections", "1 to 100000"),
    ("[server]", "[server]\nheader_timeout_secs = 0", "server.header_timeout_secs", "1 to 3600 seconds"),
    ("[server]", "[server]\nbody_timeout_secs = 100000", "server.body_timeout_secs", "1 to 3600 seconds"),
    ("[server]", "[server]\nshutdown_grace_secs = 0", "server.shutdown_grace_secs", "1 to 3600 seconds"),
    ("[server]", "[server]\ntls_cert = \"x.pem\"", "server.tls_cert", "go together"),
    ("[server]", "[server]\nidle_timeout_secs = 0", "server.idle_timeout_secs", "1 to 3600 seconds"),
    ("[server]", "[server]\nwrite_timeout_secs = 3601", "server.write_timeout_secs", "1 to 3600 seconds"),
    (
        "[server]",
        "[server]\nmax_connections_per_client = 0",
        "server.max_connections_per_client",
        "1 to server.max_connections",
    ),
    (
        "[server]",
        "[server]\nmax_connections = 10\nmax_connections_per_client = 11",
        "server.max_connections_per_client",
        "1 to server.max_connections",
    ),
    ("[server]", "[server]\nmax_requests_per_connection = 0", "server.max_requests_per_connection", "1 to 1000000"),
    (
        "listen = \"127.0.0.1:0\"",
        "listen = \"192.0.2.1:80\"\nallow_plain_http = true",
        "server.listen",
        "loopback or private address only, not on a public address",
    ),
    (
        "listen = \"127.0.0.1:0\"",
        "listen = \"0.0.0.0:80\"\nallow_plain_http = true",
        "server.listen",
        "not on every interface",
    ),
];

/// The storage key written inline (the docs once said "64 hex digits") is refused, and the
/// error does not repeat it.
#[test]
fn an_inline_storage_key_is_refused_without_being_echoed() {
    let dir = fresh_dir("config-inline-key");
    let files = demo(&dir, "");
    let good = std::fs::read_to_string(&files.config).unwrap();
    let inline = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    std::fs::write(
        &files.config,
        good.replacen("storage_key = \"storage.key\"", &format!("storage_key = \"{inline}\""), 1),
    )
    .unwrap();
    let e = ekg_server::config::load(&files.config).expect_err("an inline key");
    assert_eq!(e.field, "gatekeeper.storage_key");
    assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
    assert!(e.rule.contains("ekg keys storage-key --out FILE"), "{e}");
}

/// Plain HTTP on a private address with `allow_plain_http` (a TLS proxy in front) is accepted.
#[test]
fn plain_http_on_a_private_address_is_accepted_with_allow_plain_http() {
    let dir = fresh_dir("config-plain");
    let files = demo(&dir, "");
    let good = std::fs::read_to_string(&files.config).unwrap();
    let text = good.replacen("listen = \"127.0.0.1:0\"", "listen = \"10.0.0.1:80\"\nallow_plain_http = true", 1);
    std::fs::write(&files.config, text).unwrap();
    let s = ekg_server::config::load(&files.config).expect("private address, allow_plain_http");
    assert!(s.allow_plain_http && s.tls.is_none());
}

#[test]
fn each_bad_field_is_named_with_its_rule() {
    let dir = fresh_dir("config");
    let files = demo(&dir, "");
    let good = std::fs::read_to_string(&files.config).unwrap();
    assert!(ekg_server::config::load(&files.config).is_ok());
    for (from, to, field, rule) in CASES {
        assert!(good.contains(from), "{from} is not in the demo's configuration");
        std::fs::write(&files.config, good.replacen(from, to, 1)).unwrap();
        let Err(e) = ekg_server::config::load(&files.config) else { panic!("{to}: accepted") };
        assert_eq!(e.field, *field, "{to}: {e}");
        assert!(e.rule.contains(rule), "{to}: {e}");
    }
    let long = good.replacen("database = \"sqlite:ekg.db\"", &format!("database = \"sqlite:{}\"", "d".repeat(5000)), 1);
    std::fs::write(&files.config, long).unwrap();
    let e = ekg_server::config::load(&files.config).expect_err("a 5000-byte database");
    assert_eq!((e.field.as_str(), e.rule.as_str()), ("server.database", "at most 4 KiB"));
    // Memory only on loopback: never one of several instances behind one name.
    let public_memory = good.replacen("database = \"sqlite:ekg.db\"", "database = \"memory\"", 1).replacen(
        "listen = \"127.0.0.1:0\"",
        "listen = \"10.0.0.1:80\"\nallow_plain_http = true",
        1,
    );
    std::fs::write(&files.config, public_memory).unwrap();
    let e = ekg_server::config::load(&files.config).expect_err("memory on a public address");
    assert_eq!(e.field, "server.database");
    assert!(e.rule.starts_with("memory only on a loopback address"), "{e}");
    std::fs::write(&files.config, &good).unwrap();
}

#[test]
fn secrets_readable_by_others_and_oversized_files_are_refused() {
    let dir = fresh_dir("config-secrets");
    let files = demo(&dir, "");
    for (file, field) in
        [("storage.key", "gatekeeper.storage_key"), ("pki/example.com/gatekeeper.key", "gatekeeper.key")]
    {
        let path = dir.join(file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = ekg_server::config::load(&files.config).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.rule.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A storage key that is not 64 hex digits.
    let key = dir.join("storage.key");
    let good = std::fs::read(&key).unwrap();
    std::fs::write(&key, "00ff").unwrap();
    assert_eq!(ekg_server::config::load(&files.config).unwrap_err().field, "gatekeeper.storage_key");
    std::fs::write(&key, &good).unwrap();
    // A configuration file over 1 MiB is not read past its bound.
    let text = std::fs::read_to_string(&files.config).unwrap();
    let big = format!("{text}\n# {}\n", "x".repeat(ekg_server::config::MAX_FILE_LEN as usize));
    std::fs::write(&files.config, big).unwrap();
    let e = ekg_server::config::load(&files.config).unwrap_err();
    assert!(e.rule.contains("larger than 1048576 bytes"), "{e}");
}

/// The protocol's defaults are the core's, defined once (`GatekeeperSettings::default`): a
/// `[gatekeeper]` that sets none of them is configured with exactly those.
#[test]
fn the_protocol_settings_left_out_are_the_cores_defaults() {
    use ekg_core::role::GatekeeperSettings;
    let dir = fresh_dir("config-defaults");
    let files = demo(&dir, "");
    let good = std::fs::read_to_string(&files.config).unwrap();
    let bare = good.replacen("policy = \"once\"\n", "", 1).replacen("retention_secs = 0\n", "", 1).replacen(
        "ticket_lifetime_secs = 604800\n",
        "",
        1,
    );
    assert!(!bare.contains("ticket_lifetime_secs"), "{bare}");
    std::fs::write(&files.config, bare).unwrap();
    let file = ekg_server::config::FileConfig::read(&files.config).unwrap();
    assert_eq!(file.gatekeeper.protocol, GatekeeperSettings::default());
    let c = ekg_server::config::load(&files.config).unwrap().gatekeeper;
    let d = GatekeeperSettings::default();
    assert_eq!((c.policy, c.ledger, c.ticket_lifetime_secs), (d.policy, d.ledger(), d.ticket_lifetime_secs));
    assert_eq!((c.max_recipients, c.max_clock_skew_secs), (d.max_recipients, d.max_clock_skew_secs));
    assert_eq!((c.anchors.limits().max_path_len, c.storage_epoch_secs), (d.max_path_len, d.storage_epoch_secs));
    // Every field written reaches the gatekeeper's configuration.
    let written = good.replacen(
        "policy = \"once\"",
        "policy = \"same_certificate\"\nmax_deliveries = 5\nmax_recipients = 9\nmax_clock_skew_secs = 60\n\
         max_path_len = 3\nstorage_epoch_secs = 3600",
        1,
    );
    std::fs::write(&files.config, written).unwrap();
    let c = ekg_server::config::load(&files.config).unwrap().gatekeeper;
    assert_eq!((c.policy, c.ledger.max_deliveries), (ekg_core::ledger::ReleasePolicy::SameCertificate, 5));
    assert_eq!((c.max_recipients, c.max_clock_skew_secs, c.ticket_lifetime_secs), (9, 60, 604_800));
    assert_eq!((c.anchors.limits().max_path_len, c.storage_epoch_secs), (3, 3600));
}

#[test]
fn the_store_of_another_storage_key_is_refused_at_start() {
    let dir = fresh_dir("config-storage-key");
    let files = demo(&dir, "");
    let server = start(&files);
    send(&server, &files, &["bob@example.org"], 1);
    server.stop().unwrap();
    // The key was wrapped under its epoch's key: another key in that file is refused.
    let epochs: Vec<_> = std::fs::read_dir(dir.join("storage-keys")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(epochs.len(), 1, "{epochs:?}");
    std::fs::write(&epochs[0], hex::encode([9u8; 32])).unwrap();
    let e = ekg_server::start(settings(&files)).unwrap_err();
    assert!(e.to_string().contains("storage_key: does not unwrap the stored keys"), "{e}");
}
