//! Randomness, supplied by the caller.
//!
//! The core never reaches for a global random number generator: operations
//! that need fresh bytes (encryption nonces, CSRF states and masks) take a
//! [`SecureRandom`]. With the `std` feature, [`OsRandom`] reads the operating
//! system's generator.

use core::fmt;

/// A source of cryptographically secure random bytes.
///
/// Implementations must be unpredictable to an attacker: a nonce or CSRF mask
/// drawn from a weak source breaks the guarantees of the operation using it.
pub trait SecureRandom {
    /// Fills `dest` entirely with random bytes, or fails without a partial
    /// result being used.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError>;
}

impl<R: SecureRandom + ?Sized> SecureRandom for &mut R {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        (**self).fill(dest)
    }
}

/// The random source could not produce bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RandomError;

impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the random source failed")
    }
}

impl core::error::Error for RandomError {}

/// The operating system's random number generator (only with `std`).
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

#[cfg(feature = "std")]
impl SecureRandom for OsRandom {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(dest).map_err(|_| RandomError)
    }
}
