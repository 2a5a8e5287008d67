//! Wall-clock instants and token lifetimes.
//!
//! The core never reads a clock: every operation that depends on time takes a
//! [`Timestamp`] from the caller. Tokens travel between machines, so instants
//! are Unix wall-clock time in milliseconds, not a monotonic clock.

use core::fmt;

/// Milliseconds since the Unix epoch, as read from a wall clock.
///
/// A newtype rather than a bare `u64` so that seconds and milliseconds can
/// never be mixed up at a call site.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_unix_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// The instant `secs` seconds after the Unix epoch (saturating).
    pub const fn from_unix_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_millis(self) -> u64 {
        self.0
    }

    /// This instant moved `millis` later, saturating at the end of time.
    pub const fn saturating_add_millis(self, millis: u64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    /// The current wall-clock time (only with the `std` feature).
    ///
    /// A clock set before 1970 reads as the epoch.
    #[cfg(feature = "std")]
    pub fn now() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self(millis)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}ms)", self.0)
    }
}

/// How long a token stays valid after it was signed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MaxAge {
    /// Valid for this many seconds after `signed_at`. Zero means already expired.
    Seconds(u64),
    /// Never expires by age (Phoenix's `:infinity`); revocation must then come
    /// from somewhere else, such as a server-side session store.
    Unlimited,
}

impl MaxAge {
    /// One day, Phoenix's default for tokens.
    pub const ONE_DAY: Self = Self::Seconds(86_400);
    /// Fourteen days, LiveView's lifetime for join tokens.
    pub const FOURTEEN_DAYS: Self = Self::Seconds(14 * 86_400);

    /// The instant a token signed at `signed_at` stops being valid, or `None`
    /// when it never does.
    pub const fn expires_at(self, signed_at: Timestamp) -> Option<Timestamp> {
        match self {
            Self::Seconds(secs) => Some(signed_at.saturating_add_millis(secs.saturating_mul(1000))),
            Self::Unlimited => None,
        }
    }
}
