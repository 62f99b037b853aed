//! The server's normal dependencies hold no test material (docs/server.md, "Test material and
//! the `testmode` feature"): the test PKI and the fixtures crate are optional dependencies
//! turned on by the `testmode` feature only, and only the modules behind that feature name
//! them. `.ci/run` also builds the library without the feature; this test says why early.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::Path;

const TEST_CRATES: [&str; 2] = ["ekg-testpki", "ekg-fixtures"];
const GATED_MODULES: [&str; 2] = ["demo", "testmode"];

fn manifest() -> toml::Table {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    text.parse().unwrap()
}

#[test]
fn test_crates_are_optional_and_only_the_testmode_feature_turns_them_on() {
    let m = manifest();
    let deps = m["dependencies"].as_table().unwrap();
    for name in TEST_CRATES {
        let optional = deps.get(name).and_then(|d| d.get("optional")).and_then(toml::Value::as_bool);
        assert_eq!(optional, Some(true), "{name} must be an optional dependency of ekg-server");
    }
    let features = m["features"].as_table().unwrap();
    for (feature, turns_on) in features {
        for item in turns_on.as_array().unwrap() {
            let item = item.as_str().unwrap();
            let names_test_crate = TEST_CRATES.iter().any(|c| item.trim_start_matches("dep:").starts_with(c));
            assert!(!names_test_crate || feature == "testmode", "feature {feature} turns on {item}");
        }
    }
    assert!(
        features.get("default").is_none_or(|d| d.as_array().unwrap().iter().all(|f| f.as_str() != Some("testmode")))
    );
}

#[test]
fn only_the_testmode_modules_use_the_test_crates() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let module = path.strip_prefix(&src).unwrap().with_extension("");
            // Unit tests (`#[cfg(test)] mod tests;` in a `tests.rs`) build with the
            // dev-dependencies only: they may name the test crates.
            if GATED_MODULES.iter().any(|m| module == Path::new(m)) || path.file_stem() == Some("tests".as_ref()) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for name in TEST_CRATES {
                let ident = name.replace('-', "_");
                assert!(!text.contains(&format!("{ident}::")), "{} uses {ident}", path.display());
            }
        }
    }
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for m in GATED_MODULES {
        assert!(
            lib.contains(&format!("#[cfg(feature = \"testmode\")]\npub mod {m};")),
            "lib.rs declares {m} behind the testmode feature"
        );
    }
}
