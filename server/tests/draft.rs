//! The Internet-Draft says what the code does: the error-code tables of
//! `draft/protocol/codes.md` are generated from [`Rejection::ALL`] (code, step, fault) and the
//! binding's statuses ([`binding::REJECTION_STATUS`], [`binding::HTTP_CODE_STATUS`]), and
//! every code the draft quotes is a code of the project.
//!
//! `EKG_UPDATE_DOCS=1 cargo test -p ekg-server --test draft` writes the tables into the draft
//! instead of failing on a difference.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use ekg_core::{Fault, Rejection};
use ekg_server::binding;

const BEGIN: &str = "<!-- generated from ekg_core::Rejection and ekg_server::binding: server/tests/draft.rs -->\n";
const END: &str = "<!-- end of the generated table -->\n";

/// Codes the draft names that neither [`Rejection`] nor the HTTP layer defines: the email
/// profile's, which the mail reader gives (`cli/src/mail.rs`).
const MAIL_CODES: &[&str] = &["malformed_mime", "not_an_ekg_message"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fault(f: Fault) -> &'static str {
    match f {
        Fault::InvalidMessage => "message",
        Fault::Untrusted => "untrusted",
        Fault::Refused => "refused",
        Fault::Local => "local",
    }
}

/// The two tables: one row per protocol code, in declaration order, then one per HTTP-layer
/// code. Markdown for kramdown-rfc: a caption line after each table, blank lines around both
/// (the markers are HTML comments, which would otherwise swallow the tables).
fn tables() -> String {
    let mut out = String::from("\n| Code | Step | Fault | HTTP |\n|------|------|-------|------|\n");
    for r in Rejection::ALL {
        out.push_str(&format!("| `{}` | {} | {} | {} |\n", r.code(), r.step(), fault(r.fault()), binding::status(*r)));
    }
    out.push_str("{: #tab-codes title=\"Protocol error codes\"}\n\n");
    out.push_str("| Code | HTTP | Meaning |\n|------|------|---------|\n");
    for (code, status) in binding::HTTP_CODE_STATUS {
        out.push_str(&format!("| `{code}` | {status} | HTTP layer |\n"));
    }
    out.push_str("{: #tab-http-codes title=\"HTTP-layer error codes\"}\n\n");
    out
}

#[test]
fn the_error_code_tables_of_the_draft_are_the_code_s() {
    let path = root().join("draft/protocol/codes.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find(BEGIN).expect("the generated table's opening marker") + BEGIN.len();
    let end = start + text[start..].find(END).expect("and its closing marker");
    let want = tables();
    if text[start..end] != want {
        if std::env::var_os("EKG_UPDATE_DOCS").is_some() {
            std::fs::write(&path, format!("{}{want}{}", &text[..start], &text[end..])).unwrap();
        } else {
            panic!("draft/protocol/codes.md differs from the code (EKG_UPDATE_DOCS=1 writes it):\n{want}");
        }
    }
}

/// Every `snake_case` word between backquotes in the draft's sources.
fn quoted_codes(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split('`').collect();
        for (i, part) in parts.iter().enumerate() {
            let snake = part.contains('_')
                && part.starts_with(|c: char| c.is_ascii_lowercase())
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if i % 2 == 1 && i + 1 < parts.len() && snake {
                out.push((*part).to_owned());
            }
        }
    }
    out
}

#[test]
fn every_code_the_draft_names_is_a_code_of_the_project() {
    let dir = root().join("draft/protocol");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.push(root().join("draft/draft-ekg-protocol.md"));
    let mut unknown = Vec::new();
    for file in files.iter().filter(|p| p.extension().is_some_and(|x| x == "md")) {
        for word in quoted_codes(&std::fs::read_to_string(file).unwrap()) {
            let known = Rejection::from_code(&word).is_some()
                || binding::HTTP_CODE_STATUS.iter().any(|(c, _)| *c == word)
                || MAIL_CODES.contains(&word.as_str());
            if !known {
                unknown.push(format!("{}: {word}", file.display()));
            }
        }
    }
    assert!(unknown.is_empty(), "the draft names codes the project does not have:\n{}", unknown.join("\n"));
}
