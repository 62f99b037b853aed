//! `ekg-core`'s public surface stays tiered (issue 24, item 6; `core/src/lib.rs`): at most six
//! public modules, each listed in the crate's documentation; the most used names at the root;
//! nothing re-exported by glob, so that every public name is chosen; and no crate of the
//! workspace reaching into a hidden `internal` module.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

/// The tiers `core/src/lib.rs` documents, in its order of declaration.
const TIERS: [&str; 6] = ["access", "audit", "crypto", "ledger", "role", "wire"];
const MAX_PUBLIC_MODULES: usize = 6;

fn core_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The names of the modules `lib.rs` declares `pub mod` (inline or in their own file).
fn public_modules(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| l.trim_start().strip_prefix("pub mod "))
        .map(|rest| rest.split([';', ' ', '{']).next().unwrap().to_owned())
        .collect()
}

#[test]
fn core_has_at_most_six_public_modules_and_documents_each() {
    let lib = std::fs::read_to_string(core_dir().join("src/lib.rs")).unwrap();
    let modules = public_modules(&lib);
    assert!(
        modules.len() <= MAX_PUBLIC_MODULES,
        "{} public modules in core/src/lib.rs (at most {MAX_PUBLIC_MODULES}): {modules:?}",
        modules.len()
    );
    assert_eq!(modules, TIERS, "the public modules are the documented tiers");
    for m in &modules {
        assert!(lib.contains(&format!("//! - [`{m}`]")), "the crate documentation does not list tier {m}");
    }
    assert!(!lib.contains("doc(hidden)"), "lib.rs hides part of the surface");
}

#[test]
fn nothing_in_core_is_re_exported_by_glob() {
    let mut files = Vec::new();
    rust_files(&core_dir().join("src"), &mut files);
    assert!(files.len() > 40, "read {} files of core/src", files.len());
    let mut read = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        // A `pub use` may span lines: read each from its start to its `;`.
        let mut rest = text.as_str();
        while let Some(at) = rest.find("pub use ") {
            let line_start = rest[..at].rfind('\n').map_or(0, |n| n + 1);
            let statement = &rest[at..at + rest[at..].find(';').unwrap_or(rest.len() - at)];
            let in_code = rest[line_start..at].trim().is_empty();
            assert!(
                !in_code || !statement.contains('*'),
                "{}: a glob re-export ({statement}) publishes a tree unnamed",
                path.display()
            );
            read += usize::from(in_code);
            rest = &rest[at + statement.len()..];
        }
    }
    assert!(read > 30, "read {read} re-exports");
}

#[test]
fn no_crate_of_the_workspace_uses_a_hidden_internal_module() {
    let workspace = core_dir().parent().unwrap().to_path_buf();
    let mut files = Vec::new();
    rust_files(&workspace, &mut files);
    assert!(files.len() > 200, "read {} files of the workspace", files.len());
    let needle = concat!("ekg_core", "::internal");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(needle), "{} uses {needle}", path.display());
        if path.starts_with(workspace.join("core/src")) {
            assert!(!text.contains("pub mod internal"), "{} declares an internal module", path.display());
        }
    }
}

/// The names most callers need, at the root as rustls puts its roles and errors there. The
/// `use` below fails to compile when one leaves the root; the test checks that the crate's
/// documentation names each.
#[allow(unused_imports)]
use ekg_core::{
    CertId, CryptoProvider, EmailAddress, Error, Fault, Fetcher, Gatekeeper, Gateway, KeyId, ListAgent, MemoryStore,
    Recipient, Rejection, Sender, Store, StoredKey, UnixTime,
};

const ROOT_NAMES: [&str; 17] = [
    "CertId",
    "CryptoProvider",
    "EmailAddress",
    "Error",
    "Fault",
    "Fetcher",
    "Gatekeeper",
    "Gateway",
    "KeyId",
    "ListAgent",
    "MemoryStore",
    "Recipient",
    "Rejection",
    "Sender",
    "Store",
    "StoredKey",
    "UnixTime",
];

#[test]
fn the_most_used_names_are_at_the_root_and_documented_there() {
    let lib = std::fs::read_to_string(core_dir().join("src/lib.rs")).unwrap();
    let doc: String = lib.lines().filter_map(|l| l.strip_prefix("//!")).collect::<Vec<_>>().join("\n");
    for name in ROOT_NAMES {
        assert!(doc.contains(&format!("[`{name}`]")), "the crate documentation does not name {name}");
    }
}
