//! The README's email walkthrough, run exactly as written (between its `<!-- walkthrough -->`
//! markers) against `ekg serve --demo`: each line succeeds, or is refused with the code its
//! `# refused:` comment names; each reader gets the message byte for byte. Only the binary's
//! path, the demo's directory and its port differ from what a user types.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../server/tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::*;

const EKG: &str = env!("CARGO_BIN_EXE_ekg");

#[test]
fn the_readme_walkthrough_works_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme.find("<!-- walkthrough -->").expect("walkthrough marker");
    let end = readme.find("<!-- /walkthrough -->").expect("walkthrough end marker");
    let block = &readme[start..end];
    let lines: Vec<&str> =
        block.lines().skip_while(|l| !l.starts_with("```sh")).skip(1).take_while(|l| !l.starts_with("```")).collect();
    assert!(lines.len() >= 6, "{block}");

    let dir = fresh_dir("walkthrough");
    let port = free_port();
    let mut server = spawn_demo_serve(EKG, &dir, port);

    let mut script_vars = String::new();
    let mut outputs = Vec::new();
    for line in lines {
        if line.starts_with("cargo build") {
            continue; // the test's binary is built already
        }
        let line = line.replace("target/release/ekg", EKG);
        if let Some(assignment) = line.strip_prefix("D=") {
            assert_eq!(assignment, "/tmp/ekg-demo");
            script_vars = format!("D={}\n", dir.display());
            continue;
        }
        let out = Command::new("bash").arg("-c").arg(format!("{script_vars}{line}")).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        match line.split_once("# refused: ") {
            Some((_, code)) => {
                assert_eq!(out.status.code(), Some(1), "{line}: {err}");
                assert!(err.contains(&format!("ekg: {}:", code.trim())), "{line}: {err}");
            }
            None => assert!(out.status.success(), "{line}: {err}"),
        }
        if line.contains(" read ") && out.status.success() {
            outputs.push(out.stdout);
        }
    }
    let message = std::fs::read(dir.join("lunch.eml")).unwrap();
    assert_eq!(outputs.len(), 2, "bob and carol each read once");
    for o in outputs {
        assert_eq!(o, message);
    }
    assert!(server.terminate().success(), "ekg serve --demo did not stop cleanly");
}
