//! Phoenix-compatible masked CSRF tokens (`Plug.CSRFProtection`).
//!
//! The session holds an unmasked **state**: base64url of 18 random bytes, 24
//! ASCII characters, under [`SESSION_KEY`]. Pages never carry the state
//! itself; they carry a **masked token** made from it with a fresh random
//! mask each time ([`CsrfState::mask`]), so the token in a page changes on
//! every render and compression side channels (BREACH) learn nothing stable.
//! A request (form post, or the `_csrf_token` query parameter of a LiveView
//! WebSocket upgrade) sends the masked token back under [`PARAM`], and
//! [`CsrfState::verify`] (or [`verify_request`]) checks it against the state
//! in the session.
//!
//! The formats are byte for byte those of Plug, so states and tokens can be
//! exchanged with a Phoenix application sharing the session:
//!
//! ```text
//! state  = base64url(18 random bytes)                       24 chars
//! mask   = base64url(18 fresh random bytes)                 24 chars
//! token  = base64url(state_ascii XOR mask_ascii) || mask     32 + 24 = 56 chars
//! ```
//!
//! The XOR is over the ASCII text of the two base64url strings, not over the
//! raw random bytes. All base64 here is URL-safe and unpadded.
//!
//! ```
//! use liveguard::csrf::{CsrfState, verify_request};
//! # use liveguard::random::{RandomError, SecureRandom};
//! # struct Counter(u8);
//! # impl SecureRandom for Counter {
//! #     fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
//! #         for b in dest { *b = self.0; self.0 = self.0.wrapping_add(1); }
//! #         Ok(())
//! #     }
//! # }
//! # let mut rng = Counter(0);
//! let state = CsrfState::generate(&mut rng)?;
//! // Store `state.as_str()` in the session under `SESSION_KEY`.
//! let token = state.mask(&mut rng)?;
//! // Render `token` into the page; the browser sends it back as `_csrf_token`.
//! assert!(verify_request(Some(state.as_str()), Some(token.as_str())));
//! assert!(!verify_request(Some(state.as_str()), Some("forged")));
//! # Ok::<(), RandomError>(())
//! ```

use core::fmt;

use alloc::string::String;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::b64;
use crate::random::{RandomError, SecureRandom};

/// The session key under which the unmasked state is stored (Plug's default
/// `:session_key`).
pub const SESSION_KEY: &str = "_csrf_token";

/// The request parameter (form body field or WebSocket query parameter) that
/// carries the masked token. Phoenix fixes this name for WebSocket connects.
pub const PARAM: &str = "_csrf_token";

/// Random bytes behind a state or a mask; 18 bytes encode to base64 without
/// padding.
const RAW_LEN: usize = 18;
/// Length of the state and of a mask: base64url of [`RAW_LEN`] bytes.
const STATE_LEN: usize = 24;
/// Length of the first part of a masked token: base64url of [`STATE_LEN`]
/// bytes.
const MASKED_LEN: usize = 32;
/// Total length of a masked token.
const TOKEN_LEN: usize = MASKED_LEN + STATE_LEN;

// The lengths above are those of unpadded base64url, checked at compile time.
const _: () = assert!(matches!(b64::decoded_len(STATE_LEN), Some(RAW_LEN)));
const _: () = assert!(matches!(b64::decoded_len(MASKED_LEN), Some(STATE_LEN)));
const _: () = assert!(TOKEN_LEN == 56);

/// The unmasked CSRF state kept in the session.
///
/// Guarantees: the value is always exactly 24 characters of the base64url
/// alphabet (`A-Z a-z 0-9 - _`), as Plug generates it. It is a secret: its
/// `Debug` output is `CsrfState(..)`, equality is compared in constant time,
/// and its bytes are zeroized when it is dropped. There is deliberately no
/// public `Zeroize` impl: a zeroized state would no longer be a valid state.
#[derive(Clone)]
pub struct CsrfState {
    /// ASCII of the base64url text; invariant: every byte is in the alphabet.
    text: [u8; STATE_LEN],
}

impl CsrfState {
    /// Draws a new state: base64url of 18 bytes from `rng`.
    ///
    /// Fails only when `rng` fails; no partial state is returned then. The
    /// raw random bytes are zeroized before returning.
    pub fn generate(rng: &mut impl SecureRandom) -> Result<Self, RandomError> {
        Ok(Self { text: random_b64(rng)? })
    }

    /// Reads a state back from the session value.
    ///
    /// Accepts exactly 24 characters of the base64url alphabet, and nothing
    /// else: `None` for any other length, for padding (`=`), for the standard
    /// alphabet's `+` and `/`, for whitespace and for non-ASCII text.
    pub fn from_session(value: &str) -> Option<Self> {
        let bytes: &[u8; STATE_LEN] = value.as_bytes().try_into().ok()?;
        // Not short-circuiting, although the session value is not attacker
        // controlled (the session is signed).
        let valid = bytes.iter().fold(true, |ok, &b| ok & is_b64url(b));
        valid.then_some(Self { text: *bytes })
    }

    /// The state as text, for storing in the session under [`SESSION_KEY`].
    ///
    /// Always 24 ASCII characters of the base64url alphabet.
    pub fn as_str(&self) -> &str {
        // The invariant makes this always `Ok`; the fallback only avoids a
        // panic path.
        core::str::from_utf8(&self.text).unwrap_or("")
    }

    /// Makes a masked token for this state, with a fresh mask from `rng`.
    ///
    /// The token is exactly Plug's: 56 characters, base64url of
    /// `state_ascii XOR mask_ascii` (32 characters) followed by the mask
    /// (24 characters), where `mask = base64url(18 random bytes)`. Each call
    /// draws a new mask, so two tokens for one state differ (unless the
    /// random source repeats itself). Fails only when `rng` fails.
    pub fn mask(&self, rng: &mut impl SecureRandom) -> Result<MaskedToken, RandomError> {
        let mask = random_b64(rng)?;
        let mut xored = Zeroizing::new([0u8; STATE_LEN]);
        for ((x, s), m) in xored.iter_mut().zip(&self.text).zip(&mask) {
            *x = s ^ m;
        }
        let mut token = String::with_capacity(TOKEN_LEN);
        b64::encode_into(&*xored, &mut token);
        // `mask` is base64url text, so each byte is one ASCII char.
        token.extend(mask.iter().map(|&b| char::from(b)));
        debug_assert_eq!(token.len(), TOKEN_LEN);
        Ok(MaskedToken(token))
    }

    /// Checks a masked token from a request against this state.
    ///
    /// Returns `true` only if `token` is exactly 56 bytes, its first 32
    /// characters decode (strict unpadded base64url) to 24 bytes, its last 24
    /// characters are base64url text (a mask as [`mask`](Self::mask) makes
    /// it), and the decoded bytes XOR this state equal the mask; that last
    /// comparison is constant time. Every other input returns `false`; this
    /// never panics.
    ///
    /// Plug does not check that the mask is base64url; refusing a mask that
    /// is not is stricter, and every token Plug or this module produces
    /// passes it.
    pub fn verify(&self, token: &str) -> bool {
        let Some((masked, mask)) = token.as_bytes().split_at_checked(MASKED_LEN) else {
            return false;
        };
        if mask.len() != STATE_LEN || !mask.iter().all(|&b| is_b64url(b)) {
            return false;
        }
        let mut unmasked = Zeroizing::new([0u8; STATE_LEN]);
        if b64::decode_into(masked, &mut *unmasked) != Some(STATE_LEN) {
            return false;
        }
        for (u, s) in unmasked.iter_mut().zip(&self.text) {
            *u ^= s;
        }
        bool::from(unmasked.ct_eq(mask))
    }
}

impl fmt::Debug for CsrfState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfState(..)")
    }
}

impl PartialEq for CsrfState {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.text.ct_eq(&other.text))
    }
}

impl Eq for CsrfState {}

impl Drop for CsrfState {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

impl ZeroizeOnDrop for CsrfState {}

/// A masked CSRF token, as rendered into pages (a `<meta name="csrf-token">`
/// tag or a hidden `_csrf_token` form field).
///
/// Guarantees: exactly 56 ASCII characters of the base64url alphabet, in
/// Plug's format (see [`CsrfState::mask`]). It is public page content, not a
/// secret: `Display` and `Debug` both show it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MaskedToken(String);

impl MaskedToken {
    /// The token text (56 characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token text as an owned string (56 characters).
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for MaskedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a request in one call: the state read from the session (under
/// [`SESSION_KEY`]) and the masked token sent with the request (under
/// [`PARAM`]).
///
/// Returns `true` only when both are present, the session value is a valid
/// state ([`CsrfState::from_session`]) and the token verifies against it
/// ([`CsrfState::verify`]). Any missing or invalid part returns `false`.
pub fn verify_request(session_state: Option<&str>, token: Option<&str>) -> bool {
    match (session_state.and_then(CsrfState::from_session), token) {
        (Some(state), Some(token)) => state.verify(token),
        _ => false,
    }
}

/// Whether `b` is in the base64url alphabet (without `=`).
const fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// base64url of 18 fresh bytes from `rng`, as 24 ASCII bytes. The raw bytes
/// and the intermediate string are zeroized.
fn random_b64(rng: &mut impl SecureRandom) -> Result<[u8; STATE_LEN], RandomError> {
    let mut raw = Zeroizing::new([0u8; RAW_LEN]);
    rng.fill(&mut *raw)?;
    // Capacity is exact, so encoding never reallocates and leaves no copy.
    let mut text = Zeroizing::new(String::with_capacity(STATE_LEN));
    b64::encode_into(&*raw, &mut text);
    let mut out = [0u8; STATE_LEN];
    // 18 bytes always encode to 24 characters; the length check keeps a
    // panic-free path should that ever not hold.
    let bytes: &[u8; STATE_LEN] = text.as_bytes().try_into().map_err(|_| RandomError)?;
    out.copy_from_slice(bytes);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills from a byte counter.
    struct Counter(u8);

    impl SecureRandom for Counter {
        fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
            for b in dest {
                *b = self.0;
                self.0 = self.0.wrapping_add(1);
            }
            Ok(())
        }
    }

    struct Failing;

    impl SecureRandom for Failing {
        fn fill(&mut self, _: &mut [u8]) -> Result<(), RandomError> {
            Err(RandomError)
        }
    }

    #[test]
    fn alphabet_is_exactly_base64url() {
        let accepted: alloc::vec::Vec<u8> = (0..=255u8).filter(|&b| is_b64url(b)).collect();
        assert_eq!(accepted, b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz");
    }

    #[test]
    fn random_b64_encodes_counter_bytes() {
        // python3: base64.urlsafe_b64encode(bytes(range(18)))
        let text = random_b64(&mut Counter(0)).unwrap();
        assert_eq!(&text, b"AAECAwQFBgcICQoLDA0ODxAR");
    }

    #[test]
    fn random_failure_is_reported() {
        assert_eq!(CsrfState::generate(&mut Failing).err(), Some(RandomError));
        let state = CsrfState::generate(&mut Counter(0)).unwrap();
        assert_eq!(state.mask(&mut Failing).err(), Some(RandomError));
    }
}
