//! The documents say what the code does: `docs/protocol.md` §8.2 is the binding's status table
//! ([`binding::status_table`]), every code the documents name is a code of the project, and
//! the protocol's code tables name protocol codes only.
//!
//! `EKG_UPDATE_DOCS=1 cargo test -p ekg-server --test docs` writes the §8.2 table into
//! `docs/protocol.md` instead of failing on a difference.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ekg_core::Rejection;
use ekg_server::binding;

/// Around the generated table in `docs/protocol.md` §8.2.
const BEGIN: &str =
    "<!-- generated from ekg_server::binding::REJECTION_STATUS and HTTP_CODE_STATUS: server/tests/docs.rs -->\n";
const END: &str = "<!-- end of the generated table -->\n";

/// Names the documents may use that no source of this workspace defines: other programs'.
const EXTERNAL: &[(&str, &str)] = &[("target_session_attrs", "a libpq connection parameter (docs/server.md)")];

/// Reasons the simulator makes from a protocol code at run time: `recipient_` and the code a
/// recipient's client gave (`sim/src/early.rs`), the code and `_after_key_theft`
/// (`sim/src/late/mod.rs`).
const COMPOSED: &[(&str, &str)] = &[("recipient_", ""), ("", "_after_key_theft")];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docs() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn the_status_table_of_the_http_binding_is_the_code_s() {
    let path = root().join("docs/protocol.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find(BEGIN).expect("§8.2 has the generated table's opening marker") + BEGIN.len();
    let end = start + text[start..].find(END).expect("and its closing marker");
    let want = binding::status_table();
    if text[start..end] != want {
        if std::env::var_os("EKG_UPDATE_DOCS").is_some() {
            std::fs::write(&path, format!("{}{want}{}", &text[..start], &text[end..])).unwrap();
        } else {
            panic!("docs/protocol.md §8.2 differs from the binding's table (EKG_UPDATE_DOCS=1 writes it):\n{want}");
        }
    }
}

/// Every snake_case word between backquotes (`` `already_released` ``).
fn quoted_words(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let parts: Vec<&str> = line.split('`').collect();
        for (i, part) in parts.iter().enumerate() {
            if i % 2 == 1 && i + 1 < parts.len() && is_snake(part) {
                out.push((n + 1, (*part).to_owned()));
            }
        }
    }
    out
}

fn is_snake(s: &str) -> bool {
    s.contains('_')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('_')
        && !s.contains("__")
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The protocol's codes and the HTTP layer's (those of the binding and of the test mode's
/// management endpoint).
fn codes() -> BTreeSet<String> {
    let mut c: BTreeSet<String> = Rejection::ALL.iter().map(|r| r.code().to_owned()).collect();
    c.extend(binding::HTTP_CODE_STATUS.iter().map(|(code, _)| (*code).to_owned()));
    use ekg_server::testmode::codes as m;
    c.extend([m::MALFORMED_STATE, m::UNSUPPORTED, m::NO_STATE].map(str::to_owned));
    c
}

/// Every identifier of the workspace's sources (Rust, TOML, Python, shell, ASN.1), and each
/// CamelCase one also in snake_case (serde writes enum variants so).
fn source_words() -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    let mut stack = vec![root()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | "docs" | "v1" | "node_modules") {
                    stack.push(path);
                }
                continue;
            }
            let source = [".rs", ".toml", ".py", ".sh", ".asn1"].iter().any(|x| name.ends_with(x))
                || path.parent().and_then(Path::file_name).is_some_and(|d| d == "scripts" || d == ".ci");
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            if !source {
                continue;
            }
            for w in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()) {
                if w.starts_with(|c: char| c.is_ascii_uppercase()) {
                    words.insert(snake(w));
                }
                words.insert(w.to_owned());
            }
        }
    }
    words
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn every_code_the_documents_name_is_a_code_of_the_project() {
    let codes = codes();
    let words = source_words();
    assert!(words.contains("already_released") && words.contains("leak_to_foreign_gateway"));
    let mut unknown = Vec::new();
    for (file, text) in docs() {
        for (line, w) in quoted_words(&text) {
            let external = EXTERNAL.iter().any(|(name, _)| *name == w);
            let composed = COMPOSED.iter().any(|(prefix, suffix)| {
                w.strip_prefix(prefix).and_then(|c| c.strip_suffix(suffix)).is_some_and(|c| codes.contains(c))
            });
            if !codes.contains(&w) && !words.contains(&w) && !external && !composed {
                unknown.push(format!("docs/{file}:{line}: `{w}`"));
            }
        }
    }
    assert!(unknown.is_empty(), "names no source defines (a stale or invented code?):\n{}", unknown.join("\n"));
}

#[test]
fn the_protocol_s_code_tables_and_arrows_name_protocol_codes_only() {
    let codes = codes();
    let text = std::fs::read_to_string(root().join("docs/protocol.md")).unwrap();
    let mut wrong = Vec::new();
    let mut code_columns: Vec<usize> = Vec::new();
    let mut checked = 0;
    for (n, line) in text.lines().enumerate() {
        if !line.starts_with('|') {
            code_columns.clear();
        } else if line.starts_with("|---") {
        } else if code_columns.is_empty() && !line.contains('`') {
            // A table's header: which columns hold codes.
            code_columns = line
                .split('|')
                .enumerate()
                .filter(|(_, cell)| matches!(cell.trim(), "Code" | "Codes" | "Rejection codes"))
                .map(|(i, _)| i)
                .collect();
        } else {
            for i in &code_columns {
                let cell = line.split('|').nth(*i).unwrap_or_default();
                for (_, w) in quoted_words(cell) {
                    checked += 1;
                    if !codes.contains(&w) {
                        wrong.push(format!("docs/protocol.md:{}: `{w}` in a code column", n + 1));
                    }
                }
            }
        }
        // "→ `code`": what a check gives.
        for part in line.split("→ `").skip(1) {
            let w = part.split('`').next().unwrap_or_default();
            if !is_snake(w) {
                continue;
            }
            checked += 1;
            if !codes.contains(w) {
                wrong.push(format!("docs/protocol.md:{}: `{w}` after →", n + 1));
            }
        }
    }
    assert!(checked > 100, "only {checked} codes found: the tables moved?");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every protocol code is in the document.
    for r in Rejection::ALL {
        assert!(text.contains(&format!("`{}`", r.code())), "{} is not in docs/protocol.md", r.code());
    }
}
