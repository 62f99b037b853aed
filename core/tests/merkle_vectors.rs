//! Every inclusion and consistency vector of transparency-dev/merkle (copied with its licence
//! into `fixtures/transparency-dev/`, see its README): a valid one verifies, every invalid or
//! mutated one is refused with a typed audit error, never a panic. The valid vectors' proofs
//! are also generated from the reference tree and compared byte for byte.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ekg_core::audit::merkle::{self, Tree, hash_from_slice};
use ekg_core::{Digest, Error, Rejection};
use serde_json::Value;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/transparency-dev/testdata")
}

/// Every `.json` file under `dir`, sorted.
fn vectors(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn bytes(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap_or("")).unwrap()
}

/// The proof's hashes; a hash that is not 32 bytes is a typed refusal.
fn proof(v: &Value) -> Result<Vec<Digest>, Error> {
    v.as_array().into_iter().flatten().map(|h| hash_from_slice(&bytes(h), "a proof hash")).collect()
}

const AUDIT_PROOF_CODES: [Rejection; 3] =
    [Rejection::LogProofMalformed, Rejection::LogInclusionFailed, Rejection::LogConsistencyFailed];

/// Runs one family; returns (valid, invalid) counts.
fn run(family: &str, verify: impl Fn(&Value) -> Result<(), Error>) -> (usize, usize) {
    let files = vectors(&testdata().join(family));
    let (mut valid, mut invalid) = (0, 0);
    for file in &files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let result = verify(&v);
        let name = file.display();
        if v["wantErr"].as_bool().unwrap() {
            let err = result.expect_err(&format!("{name}: accepted an invalid vector"));
            assert!(AUDIT_PROOF_CODES.contains(&err.rejection()), "{name}: untyped refusal {err}");
            invalid += 1;
        } else {
            result.unwrap_or_else(|e| panic!("{name}: refused a valid vector: {e}"));
            valid += 1;
        }
    }
    (valid, invalid)
}

#[test]
fn every_inclusion_vector_is_decided_as_published() {
    let (valid, invalid) = run("inclusion", |v| {
        let proof = proof(&v["proof"])?;
        let (index, size) = (v["leafIdx"].as_u64().unwrap(), v["treeSize"].as_u64().unwrap());
        merkle::verify_inclusion(index, size, &bytes(&v["leafHash"]), &proof, &bytes(&v["root"]))
    });
    // Counted from the files (fixtures/transparency-dev/README.md).
    assert_eq!((valid, invalid), (6, 92));
}

#[test]
fn every_consistency_vector_is_decided_as_published() {
    let (valid, invalid) = run("consistency", |v| {
        let proof = proof(&v["proof"])?;
        let (size1, size2) = (v["size1"].as_u64().unwrap(), v["size2"].as_u64().unwrap());
        merkle::verify_consistency(size1, size2, &proof, &bytes(&v["root1"]), &bytes(&v["root2"]))
    });
    assert_eq!((valid, invalid), (6, 92));
}

/// The tree the vectors were generated from (transparency-dev `cmd/proofgen`, RFC 6962's
/// test leaves).
fn reference_tree() -> Tree {
    let mut t = Tree::new();
    for leaf in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"] {
        t.push(&hex::decode(leaf).unwrap());
    }
    t
}

#[test]
fn generated_proofs_equal_the_published_happy_paths() {
    let t = reference_tree();
    let mut checked = 0;
    for file in vectors(&testdata().join("inclusion")).into_iter().filter(|f| f.ends_with("happy-path.json")) {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let (index, size) = (v["leafIdx"].as_u64().unwrap(), v["treeSize"].as_u64().unwrap());
        assert_eq!(t.inclusion_proof(index, size).unwrap(), proof(&v["proof"]).unwrap(), "{}", file.display());
        assert_eq!(t.root_at(size).unwrap().as_bytes(), bytes(&v["root"]).as_slice());
        assert_eq!(t.leaf_hashes()[index as usize].as_bytes(), bytes(&v["leafHash"]).as_slice());
        checked += 1;
    }
    for file in vectors(&testdata().join("consistency")).into_iter().filter(|f| f.ends_with("happy-path.json")) {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let (size1, size2) = (v["size1"].as_u64().unwrap(), v["size2"].as_u64().unwrap());
        assert_eq!(t.consistency_proof(size1, size2).unwrap(), proof(&v["proof"]).unwrap(), "{}", file.display());
        assert_eq!(t.root_at(size1).unwrap().as_bytes(), bytes(&v["root1"]).as_slice());
        assert_eq!(t.root_at(size2).unwrap().as_bytes(), bytes(&v["root2"]).as_slice());
        checked += 1;
    }
    assert_eq!(checked, 10);
}
