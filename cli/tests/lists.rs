//! `ekg list-agent` against a real `ekg serve` (the demo, on loopback): alice writes to the
//! list `team@example.com`, whose members are bob, carol and the list `inner@example.com`
//! (whose member is dave). Each member reads the message once with the unchanged `ekg read`;
//! a list that loops back is refused with `list_loop` before it fetches anything.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use ekg_server::demo::DemoFiles;

const MESSAGE: &[u8] =
    b"From: alice@example.com\r\nTo: team@example.com\r\nSubject: offsite\r\n\r\nFriday, room 4.\r\n";

struct World {
    files: DemoFiles,
    _server: ServeProcess,
}

impl World {
    fn new(name: &str) -> World {
        let dir = fresh_dir(name);
        let port = free_port();
        let files = demo_at(&dir, port);
        let server = spawn_serve(EKG, &files.config, port);
        World { files, _server: server }
    }

    fn pki(&self, domain: &str, file: &str) -> PathBuf {
        self.files.pki.join(domain).join(file)
    }

    /// Runs `ekg ARGS --config client.toml --identity IDENTITY` with `input` on standard input.
    fn ekg(&self, args: &[&str], identity: &Path, input: &[u8]) -> Output {
        ekg_as(&self.files.client, args, identity, input)
    }

    fn ok(&self, args: &[&str], identity: &Path, input: &[u8]) -> Vec<u8> {
        let out = self.ekg(args, identity, input);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    fn send(&self) -> Vec<u8> {
        self.ok(&["send"], &self.pki("example.com", "alice.pem"), MESSAGE)
    }

    /// `ekg list-agent` as `list` (its identity and definition under pki/example.com/).
    fn expand(&self, list: &str, definition: &Path, sealed: &[u8]) -> Output {
        let def = definition.to_str().unwrap();
        self.ekg(&["list-agent", "--list", def], &self.pki("example.com", &format!("{list}.pem")), sealed)
    }

    fn read(&self, domain: &str, who: &str, sealed: &[u8]) -> Output {
        self.ekg(&["read"], &self.pki(domain, &format!("{who}.pem")), sealed)
    }
}

#[test]
fn a_list_of_three_one_a_list_is_read_once_by_each_member_and_a_loop_is_refused() {
    let w = World::new("lists");
    let team = w.pki("example.com", "team.toml");
    let inner = w.pki("example.com", "inner.toml");
    let sealed = w.send();
    let to_team = w.expand("team", &team, &sealed);
    assert!(to_team.status.success(), "{}", String::from_utf8_lossy(&to_team.stderr));
    let to_team = to_team.stdout;
    // The sender's gatekeeper released once, to the list: a second expansion gets nothing.
    refused(&w.expand("team", &team, &sealed), "key_destroyed");
    let to_inner = w.expand("inner", &inner, &to_team);
    assert!(to_inner.status.success(), "{}", String::from_utf8_lossy(&to_inner.stderr));
    let to_inner = to_inner.stdout;
    // `ekg inspect` on a message expanded twice: the original ticket is the authenticated one
    // (M.15), then C7 links the chain; a chain out of order is refused.
    let inspect = |sealed: &[u8]| {
        let path = w.files.dir.join("inspect.eml");
        std::fs::write(&path, sealed).unwrap();
        Command::new(EKG).arg("inspect").arg(&path).arg("--config").arg(&w.files.client).output().unwrap()
    };
    let out = inspect(&to_inner);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "authenticates the original ticket, the first expanded one (M.15)",
        "expanded ticket 2 of 2",
        "ok       sealed message: each ticket is the expansion of the one before (C7)",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    assert!(!text.contains("FAILED"), "{text}");
    let out = inspect(&sealed);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("authenticates the attached ticket (M.15)"), "{text}");
    assert!(!text.contains("(C7)"), "{text}");
    // The outer message keeps the sender's clear header fields.
    assert!(String::from_utf8_lossy(&to_inner).contains("To: team@example.com"));
    // Each member reads once, the sender's message byte for byte.
    for (domain, who, msg) in
        [("example.org", "bob", &to_team), ("example.com", "carol", &to_team), ("example.org", "dave", &to_inner)]
    {
        let out = w.read(domain, who, msg);
        assert!(out.status.success(), "{who}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, MESSAGE, "{who}");
    }
    refused(&w.read("example.org", "bob", &to_team), "key_destroyed");
    refused(&w.read("example.org", "dave", &to_inner), "key_destroyed");
    // Not a member of inner: dave's copy is not bob's.
    refused(&w.read("example.org", "bob", &to_inner), "not_for_this_recipient");

    // inner redefined to list team back: refused before it fetches, so a fixed inner can still.
    let looping = w.files.dir.join("looping.toml");
    std::fs::write(
        &looping,
        "address = \"inner@example.com\"\nmembers = [\"dave@example.org\", \"team@example.com\"]\n",
    )
    .unwrap();
    let to_team = w.expand("team", &team, &w.send());
    assert!(to_team.status.success(), "{}", String::from_utf8_lossy(&to_team.stderr));
    refused(&w.expand("inner", &looping, &to_team.stdout), "list_loop");
    let fixed = w.expand("inner", &inner, &to_team.stdout);
    assert!(fixed.status.success(), "{}", String::from_utf8_lossy(&fixed.stderr));
}

#[test]
fn a_bad_list_definition_is_refused_with_its_code_and_no_output() {
    let w = World::new("lists-bad");
    let sealed = w.send();
    let dir = &w.files.dir;
    for (name, text, code) in [
        ("self.toml", "address = \"team@example.com\"\nmembers = [\"team@example.com\"]\n", "list_loop"),
        ("empty.toml", "address = \"team@example.com\"\nmembers = []\n", "no_recipients"),
        (
            "twice.toml",
            "address = \"team@example.com\"\nmembers = [\"bob@example.org\", \"bob@example.org\"]\n",
            "duplicate_recipient",
        ),
        ("other.toml", "address = \"inner@example.com\"\nmembers = [\"bob@example.org\"]\n", "invalid_configuration"),
        (
            "unknown.toml",
            "address = \"team@example.com\"\nmembers = [\"bob@example.org\"]\nowner = \"x\"\n",
            "invalid_configuration",
        ),
        ("address.toml", "address = \"team@example.com\"\nmembers = [\"not an address\"]\n", "invalid_address"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        refused_in_one_line(&w.expand("team", &path, &sealed), code);
    }
    // None of them fetched: the list still gets its release.
    let ok = w.expand("team", &w.pki("example.com", "team.toml"), &sealed);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}
