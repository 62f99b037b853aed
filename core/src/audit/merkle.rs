//! The Merkle tree of the issuance log: RFC 9162 §2.1 hashing, tree heads, inclusion proofs
//! (§2.1.3) and consistency proofs (§2.1.4), generated and verified.
//!
//! Hashes are SHA-256 with the RFC's domain separation: a leaf is `H(0x00 || entry)`, an
//! interior node `H(0x01 || left || right)`, the empty tree `H("")`. A tree of `n > 1` leaves
//! splits at `k`, the largest power of two **smaller than** `n` (RFC 9162 §2.1.1).
//!
//! Verification follows the RFC's algorithms step by step and the edge cases of the public
//! transparency-dev vectors (`fixtures/transparency-dev/`): a consistency proof from the empty
//! tree is refused (it proves nothing), equal sizes need an empty proof and equal roots.
//! Every refusal is a typed [`Error`]: `log_proof_malformed` (an index or size out of range, a
//! proof of the wrong length, a hash that is not 32 bytes), `log_inclusion_failed`,
//! `log_consistency_failed`.

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Rejection, Result, reject};
use crate::ids::Digest;

/// Domain separation prefix of a leaf hash (RFC 9162 §2.1.1).
pub const LEAF_PREFIX: u8 = 0x00;
/// Domain separation prefix of an interior node hash (RFC 9162 §2.1.1).
pub const NODE_PREFIX: u8 = 0x01;
/// Length of every hash of the tree (SHA-256).
pub const HASH_LEN: usize = 32;
/// Longest proof a tree of up to 2^64 leaves has: one hash per level.
pub const MAX_PROOF_LEN: usize = 64;

/// `MTH({d})`: the hash of one leaf, `SHA-256(0x00 || d)`.
pub fn leaf_hash(entry: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(entry);
    Digest(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left.0);
    h.update(right.0);
    Digest(h.finalize().into())
}

/// `MTH({})`: the root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Digest {
    Digest(Sha256::digest([]).into())
}

/// A hash from bytes: exactly 32, or `log_proof_malformed`.
pub fn hash_from_slice(bytes: &[u8], what: &str) -> Result<Digest> {
    Digest::from_slice(bytes)
        .ok_or_else(|| reject(Rejection::LogProofMalformed, format!("{what} is {} bytes, not {HASH_LEN}", bytes.len())))
}

/// The leaf hashes of a log, in order: the tree of its first `n` entries for any `n`.
///
/// In memory (32 bytes a leaf); proofs cost `O(n)` hashes. For an auditor who holds the whole
/// log, or a gatekeeper's log of bounded size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    leaves: Vec<Digest>,
}

impl Tree {
    /// The empty tree.
    pub fn new() -> Self {
        Tree::default()
    }

    /// A tree of these leaf hashes.
    pub fn from_leaf_hashes(leaves: Vec<Digest>) -> Self {
        Tree { leaves }
    }

    /// Appends an entry (its leaf hash); returns its index.
    pub fn push(&mut self, entry: &[u8]) -> u64 {
        self.leaves.push(leaf_hash(entry));
        self.size() - 1
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The leaf hashes.
    pub fn leaf_hashes(&self) -> &[Digest] {
        &self.leaves
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Digest {
        mth(&self.leaves)
    }

    /// The root of the tree of the first `size` leaves (`log_proof_malformed` past the end).
    pub fn root_at(&self, size: u64) -> Result<Digest> {
        Ok(mth(self.prefix(size)?))
    }

    /// `PATH(index, D[size])` (RFC 9162 §2.1.3.1): the inclusion proof of leaf `index` in the
    /// tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Digest>> {
        let leaves = self.prefix(size)?;
        if index >= size {
            return Err(reject(Rejection::LogProofMalformed, format!("index {index} is not below tree size {size}")));
        }
        let mut proof = Vec::new();
        path(to_usize(index)?, leaves, &mut proof);
        Ok(proof)
    }

    /// `PROOF(size1, D[size2])` (RFC 9162 §2.1.4.1): the consistency proof between the trees
    /// of the first `size1` and `size2` leaves; empty when the sizes are equal.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Digest>> {
        let leaves = self.prefix(size2)?;
        if size1 == 0 || size1 > size2 {
            return Err(reject(Rejection::LogProofMalformed, format!("no consistency proof from {size1} to {size2}")));
        }
        let mut proof = Vec::new();
        if size1 < size2 {
            subproof(to_usize(size1)?, leaves, true, &mut proof);
        }
        Ok(proof)
    }

    fn prefix(&self, size: u64) -> Result<&[Digest]> {
        usize::try_from(size).ok().and_then(|n| self.leaves.get(..n)).ok_or_else(|| {
            reject(Rejection::LogProofMalformed, format!("tree size {size} is past the {} leaves", self.leaves.len()))
        })
    }
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2): `leaf_hash` is leaf `index` of the tree
/// of `size` leaves whose root is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf_hash: &[u8], proof: &[Digest], root: &[u8]) -> Result<()> {
    if index >= size {
        return Err(reject(Rejection::LogProofMalformed, format!("index {index} is not below tree size {size}")));
    }
    let leaf = hash_from_slice(leaf_hash, "the leaf hash")?;
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(reject(
            Rejection::LogProofMalformed,
            format!("inclusion proof of {} hashes, {expected} expected", proof.len()),
        ));
    }
    // Steps 2 to 5 of §2.1.3.2.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = leaf;
    for p in proof {
        if sn == 0 {
            return Err(inclusion_failed("the proof is longer than the path"));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 || r.0.as_slice() != root {
        return Err(inclusion_failed("the proof does not lead to the root"));
    }
    Ok(())
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2): the tree of `size1` leaves with root
/// `root1` is a prefix of the tree of `size2` leaves with root `root2`.
pub fn verify_consistency(size1: u64, size2: u64, proof: &[Digest], root1: &[u8], root2: &[u8]) -> Result<()> {
    if size2 < size1 {
        return Err(reject(Rejection::LogProofMalformed, format!("size1 {size1} is above size2 {size2}")));
    }
    if size1 == 0 {
        return Err(reject(Rejection::LogProofMalformed, "a consistency proof from the empty tree proves nothing"));
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(reject(Rejection::LogProofMalformed, "equal sizes take an empty proof"));
        }
        if root1 != root2 {
            return Err(consistency_failed("equal sizes, different roots"));
        }
        return Ok(());
    }
    let first = hash_from_slice(root1, "root1")?;
    // Step 1, and the length every correct proof has.
    let expected = consistency_proof_len(size1, size2);
    if proof.len() != expected {
        return Err(reject(
            Rejection::LogProofMalformed,
            format!("consistency proof of {} hashes, {expected} expected", proof.len()),
        ));
    }
    // Step 2: a first tree that is a complete subtree is its own first proof node.
    let mut path: Vec<Digest> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(first);
    }
    path.extend_from_slice(proof);
    // Steps 3 to 7.
    let (mut fn_, mut sn) = (size1 - 1, size2 - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut nodes = path.iter();
    let Some(start) = nodes.next() else {
        return Err(reject(Rejection::LogProofMalformed, "empty consistency proof"));
    };
    let (mut fr, mut sr) = (*start, *start);
    for c in nodes {
        if sn == 0 {
            return Err(consistency_failed("the proof is longer than the path"));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if fr.0.as_slice() != root1 || sr.0.as_slice() != root2 || sn != 0 {
        return Err(consistency_failed("the proof does not lead to both roots"));
    }
    Ok(())
}

/// The number of hashes in the inclusion proof of `index` in a tree of `size` leaves.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    // Levels below the point where the paths to `index` and to the last leaf part, plus one
    // for each complete subtree on the right border above it.
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// The number of hashes in the consistency proof from `size1` to `size2` (`0 < size1 < size2`).
pub fn consistency_proof_len(size1: u64, size2: u64) -> usize {
    // The inclusion proof of leaf `size1 - 1` in the larger tree, less the levels the smaller
    // tree shares as a complete subtree (its trailing ones), plus its own root unless that is
    // a complete subtree (a power of two) the verifier already has.
    let index = size1 - 1;
    let shared = index.trailing_ones() as usize;
    let extra = usize::from(!size1.is_power_of_two());
    inclusion_proof_len(index, size2) - shared + extra
}

/// The split of RFC 9162 §2.1.1: the largest power of two smaller than `n` (`n > 1`).
fn split(n: usize) -> usize {
    debug_assert!(n > 1);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// `MTH(D[n])`.
fn mth(leaves: &[Digest]) -> Digest {
    match leaves {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            let (left, right) = leaves.split_at(split(leaves.len()));
            node_hash(&mth(left), &mth(right))
        }
    }
}

/// `PATH(m, D[n])`, appended to `out` from the leaf up.
fn path(m: usize, leaves: &[Digest], out: &mut Vec<Digest>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    let (left, right) = leaves.split_at(k);
    if m < k {
        path(m, left, out);
        out.push(mth(right));
    } else {
        path(m - k, right, out);
        out.push(mth(left));
    }
}

/// `SUBPROOF(m, D[n], b)`, appended to `out` from the bottom up.
fn subproof(m: usize, leaves: &[Digest], complete: bool, out: &mut Vec<Digest>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(mth(leaves));
        }
        return;
    }
    let k = split(n);
    let (left, right) = leaves.split_at(k);
    if m <= k {
        subproof(m, left, complete, out);
        out.push(mth(right));
    } else {
        subproof(m - k, right, false, out);
        out.push(mth(left));
    }
}

fn to_usize(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| reject(Rejection::LogProofMalformed, format!("{v} does not fit this platform")))
}

fn inclusion_failed(detail: &str) -> Error {
    reject(Rejection::LogInclusionFailed, detail)
}

fn consistency_failed(detail: &str) -> Error {
    reject(Rejection::LogConsistencyFailed, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaves of RFC 6962's and transparency-dev's reference tree.
    fn reference_tree() -> Tree {
        let mut t = Tree::new();
        for leaf in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
        {
            t.push(&hex::decode(leaf).unwrap());
        }
        t
    }

    #[test]
    fn reference_roots_match_the_published_ones() {
        // From transparency-dev/merkle cmd/proofgen (roots of the first 1..8 leaves).
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let t = reference_tree();
        for (i, want) in roots.iter().enumerate() {
            assert_eq!(t.root_at(i as u64 + 1).unwrap().to_string(), *want, "root of {} leaves", i + 1);
        }
        assert_eq!(Tree::new().root().to_string(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn every_generated_proof_verifies_and_has_the_predicted_length() {
        let mut t = reference_tree();
        for i in 8..70u8 {
            t.push(&[i; 3]);
        }
        for size in 1..=t.size() {
            let root = t.root_at(size).unwrap();
            for index in 0..size {
                let proof = t.inclusion_proof(index, size).unwrap();
                assert_eq!(proof.len(), inclusion_proof_len(index, size));
                let leaf = t.leaf_hashes()[index as usize];
                verify_inclusion(index, size, &leaf.0, &proof, &root.0).unwrap();
                if let Some(other) = t.leaf_hashes().get(index as usize + 1) {
                    assert_eq!(
                        verify_inclusion(index, size, &other.0, &proof, &root.0).unwrap_err(),
                        Rejection::LogInclusionFailed
                    );
                }
            }
            for size1 in 1..=size {
                let proof = t.consistency_proof(size1, size).unwrap();
                let root1 = t.root_at(size1).unwrap();
                verify_consistency(size1, size, &proof, &root1.0, &root.0).unwrap();
                if size1 < size {
                    assert_eq!(proof.len(), consistency_proof_len(size1, size));
                    let wrong = t.root_at(size1 - 1).unwrap();
                    assert!(verify_consistency(size1, size, &proof, &wrong.0, &root.0).is_err());
                }
            }
        }
    }

    #[test]
    fn out_of_range_requests_are_refused_not_panics() {
        let t = reference_tree();
        for (index, size) in [(0, 9), (8, 8), (0, 0), (u64::MAX, u64::MAX)] {
            assert_eq!(t.inclusion_proof(index, size).unwrap_err(), Rejection::LogProofMalformed);
        }
        for (a, b) in [(0, 3), (4, 3), (1, 9)] {
            assert_eq!(t.consistency_proof(a, b).unwrap_err(), Rejection::LogProofMalformed);
        }
        let root = t.root();
        assert_eq!(verify_inclusion(0, u64::MAX, &root.0, &[], &root.0).unwrap_err(), Rejection::LogProofMalformed);
        assert_eq!(verify_consistency(3, u64::MAX, &[], &root.0, &root.0).unwrap_err(), Rejection::LogProofMalformed);
    }
}
