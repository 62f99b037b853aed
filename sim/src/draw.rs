//! Random draws from the run's seeded generators, and the derivation of one sub-seed per
//! concern (PKI, workload, network, crypto of each scheme) from the run's seed.

use rand_chacha::ChaCha20Rng;
use rand_core::Rng;
use sha2::{Digest, Sha256};

/// A sub-seed: the first 8 bytes of SHA-256(seed || label).
pub fn derive_seed(seed: u64, label: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_be_bytes());
    h.update(label.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    for (x, y) in b.iter_mut().zip(d.iter()) {
        *x = *y;
    }
    u64::from_be_bytes(b)
}

/// Draws used by the simulator.
pub trait Draw {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64;
    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64;
    /// Exponential with mean `mean`.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
    /// One value by weight (the first when every weight is 0).
    fn weighted<T: Copy>(&mut self, choices: &[(T, u32)]) -> Option<T> {
        let total: u64 = choices.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (v, w) in choices {
            if x < u64::from(*w) {
                return Some(*v);
            }
            x -= u64::from(*w);
        }
        choices.first().map(|(v, _)| *v)
    }
}

impl Draw for ChaCha20Rng {
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}
