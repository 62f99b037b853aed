//! `ekg read` on a terminal under policy `once` (issue 26): refused with
//! `once_release_to_terminal` before the release request is sent, so the release is still
//! there for a read into a file; `--to-terminal` reads on the terminal. The terminal is a
//! pseudo-terminal made by `script` (util-linux); the gatekeeper is `ekg serve --demo` on
//! loopback.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../server/tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};

use common::*;

const EKG: &str = env!("CARGO_BIN_EXE_ekg");

/// Runs `command` (a shell line) with its standard output on a pseudo-terminal.
fn on_a_terminal(command: &str) -> String {
    let out =
        Command::new("script").args(["-qec", command, "/dev/null"]).stdin(Stdio::null()).output().expect("script");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_once_release_is_not_spent_on_a_terminal_unless_asked() {
    let dir = fresh_dir("read-terminal");
    let port = free_port();
    let mut server = spawn_demo_serve(EKG, &dir, port);
    let d = dir.display();
    // Two recipients, so that the key outlives bob's release.
    let message = "From: alice@example.com\r\nTo: bob@example.org, carol@example.com\r\nSubject: t\r\n\r\nhello\r\n";
    std::fs::write(dir.join("m.eml"), message).unwrap();
    let send = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{EKG} send --config {d}/client.toml --identity {d}/pki/example.com/alice.pem < {d}/m.eml > {d}/sealed.eml"
        ))
        .status()
        .unwrap();
    assert!(send.success());
    let read = |flags: &str| {
        format!("{EKG} read {flags} --config {d}/client.toml --identity {d}/pki/example.org/bob.pem < {d}/sealed.eml")
    };

    // On a terminal without the flag: refused, nothing sent.
    let shown = on_a_terminal(&read(""));
    assert!(shown.contains("ekg: once_release_to_terminal:"), "{shown}");
    assert!(!shown.contains("hello"), "{shown}");
    // On a terminal with the flag: shown (and spent).
    let shown = on_a_terminal(&read("--to-terminal"));
    assert!(shown.contains("hello"), "{shown}");
    // Spent: the next read, into a file, is refused by the gatekeeper.
    let again = Command::new("sh").arg("-c").arg(format!("{} > {d}/again.eml", read(""))).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("ekg: already_released:"), "{again:?}");

    assert!(server.terminate().success(), "ekg serve --demo did not stop cleanly");
}
