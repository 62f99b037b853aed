//! The one place the server draws randomness from the operating system: a fresh RNG per
//! request (the core takes its RNG as an argument).

use ekg_core::{Error, Rejection};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A fresh RNG for one request, seeded from the operating system.
pub(crate) fn request_rng() -> Result<ChaCha20Rng, Error> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice()).map_err(|e| Error::new(Rejection::CryptoFailure, format!("OS RNG: {e}")))?;
    Ok(ChaCha20Rng::from_seed(*seed))
}
