//! The `live_socket_id` and its mapping onto a NATS subject token.
//!
//! Every live connection registers under the `live_socket_id` found in its
//! session (Phoenix's `phx.gen.auth` stores
//! `"users_sessions:" <> Base.url_encode64(token)` there, with `=` padding).
//! To disconnect a session everywhere, a node publishes on
//! `<prefix>.socket.<token>`, where `<token>` is the id encoded by
//! [`LiveSocketId::subject_token`].
//!
//! An id is chosen by the application, and in the end often derived from
//! something a user influenced, so the encoding must never let it reach
//! outside its own subject token: it is **injective** (two different ids never
//! share a token, so a disconnect reaches exactly the connections of that id)
//! and the token never contains `.`, `*`, `>`, whitespace or control
//! characters (so an id can neither add a subject level nor become a
//! wildcard). [`LiveSocketId::from_subject_token`] is its exact inverse, for
//! nodes that receive subjects.
//!
//! ## Encoding
//!
//! Each byte of the id's UTF-8 encoding is written as itself when it is in
//! `[A-Za-z0-9-]`, and as `_` followed by two uppercase hexadecimal digits
//! otherwise (`_` included, as `_5F`). For example
//! `users_sessions:abc=` becomes `users_5Fsessions_3Aabc_3D`. Readable ids
//! stay readable for operators, and every token is made only of
//! `[A-Za-z0-9_-]`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

/// A validated `live_socket_id`.
///
/// It is non-empty, at most [`LiveSocketId::MAX_LEN`] bytes long and contains
/// no control character (Unicode `Cc`, see [`char::is_control`]). Any other
/// character is allowed, spaces, `.`, `*` and `>` included: they are escaped
/// in the subject token, never forbidden in the id.
///
/// The id is not a secret (it names a session's topic, and it cannot be used
/// to authenticate); `Debug` and `Display` show it. Deserializing validates it
/// like [`LiveSocketId::new`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct LiveSocketId(String);

/// Why a string is not a valid [`LiveSocketId`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum LiveSocketIdError {
    /// The id is empty.
    Empty,
    /// The id is longer than [`LiveSocketId::MAX_LEN`] bytes.
    TooLong,
    /// The id contains a control character.
    ControlCharacter,
}

impl fmt::Display for LiveSocketIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the live_socket_id is empty"),
            Self::TooLong => write!(f, "the live_socket_id is longer than {} bytes", LiveSocketId::MAX_LEN),
            Self::ControlCharacter => f.write_str("the live_socket_id contains a control character"),
        }
    }
}

impl core::error::Error for LiveSocketIdError {}

/// Why a subject token is not the token of a [`LiveSocketId`].
///
/// Only the canonical token of a valid id, as written by
/// [`LiveSocketId::subject_token`], is accepted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum SubjectTokenError {
    /// A byte outside `[A-Za-z0-9_-]`.
    InvalidCharacter,
    /// A `_` not followed by two uppercase hexadecimal digits.
    InvalidEscape,
    /// An escaped byte that is written as itself in the canonical encoding
    /// (for example `_61` for `a`).
    NonCanonicalEscape,
    /// The decoded bytes are not UTF-8.
    InvalidUtf8,
    /// The decoded string is not a valid id.
    InvalidId(LiveSocketIdError),
}

impl fmt::Display for SubjectTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidCharacter => f.write_str("the subject token contains a character outside [A-Za-z0-9_-]"),
            Self::InvalidEscape => {
                f.write_str("the subject token contains `_` not followed by two uppercase hex digits")
            }
            Self::NonCanonicalEscape => f.write_str("the subject token escapes a byte that is written as itself"),
            Self::InvalidUtf8 => f.write_str("the subject token does not decode to UTF-8"),
            Self::InvalidId(e) => write!(f, "the subject token decodes to an invalid id: {e}"),
        }
    }
}

impl core::error::Error for SubjectTokenError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::InvalidId(e) => Some(e),
            _ => None,
        }
    }
}

impl From<LiveSocketIdError> for SubjectTokenError {
    fn from(e: LiveSocketIdError) -> Self {
        Self::InvalidId(e)
    }
}

/// Whether `b` is written as itself in a subject token.
const fn passes_through(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// The uppercase hexadecimal digit of `n` (only the low 4 bits are used).
const fn hex_digit(n: u8) -> char {
    let n = n & 0x0f;
    (if n < 10 { b'0' + n } else { b'A' + (n - 10) }) as char
}

/// The value of an uppercase hexadecimal digit.
const fn hex_value(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

impl LiveSocketId {
    /// The maximum length of an id, in bytes of UTF-8.
    ///
    /// The bound exists for the subject: a token is at most three times as
    /// long as its id ([`Self::MAX_SUBJECT_TOKEN_LEN`], 768 bytes), so
    /// `<prefix>.socket.<token>` stays far below the NATS server's
    /// `max_control_line` (4096 bytes by default, which must hold the whole
    /// `PUB`/`MSG` line). 256 bytes leaves ample room for real ids:
    /// `phx.gen.auth`'s is 59 bytes.
    pub const MAX_LEN: usize = 256;

    /// The maximum length of a subject token, in bytes: every byte of an id
    /// of [`Self::MAX_LEN`] bytes escaped.
    pub const MAX_SUBJECT_TOKEN_LEN: usize = 3 * Self::MAX_LEN;

    /// Validates `id`.
    ///
    /// Refuses the empty string, strings longer than [`Self::MAX_LEN`] bytes
    /// and strings containing a control character ([`char::is_control`]).
    ///
    /// # Errors
    ///
    /// [`LiveSocketIdError::Empty`], [`LiveSocketIdError::TooLong`] or
    /// [`LiveSocketIdError::ControlCharacter`], checked in that order.
    pub fn new(id: impl Into<String>) -> Result<Self, LiveSocketIdError> {
        let id = id.into();
        validate(&id)?;
        Ok(Self(id))
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id, as an owned string.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }

    /// The id encoded as one NATS subject token.
    ///
    /// Guarantees, for every valid id:
    ///
    /// - the token is non-empty and made only of `[A-Za-z0-9_-]`, so it never
    ///   contains `.`, `*`, `>`, whitespace or a control character, and is
    ///   always exactly one subject token, never a wildcard;
    /// - the mapping is injective: two different ids never have the same
    ///   token. (Each byte becomes either itself, never `_`, or `_` and two
    ///   hex digits: a prefix-free code, hence uniquely decodable.)
    /// - [`Self::from_subject_token`] returns the id back;
    /// - the token is at most [`Self::MAX_SUBJECT_TOKEN_LEN`] bytes long.
    #[must_use]
    pub fn subject_token(&self) -> String {
        let mut out = String::with_capacity(self.subject_token_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends [`Self::subject_token`] to `out`, reserving the exact space
    /// first (one allocation at most).
    pub fn push_subject_token(&self, out: &mut String) {
        out.reserve(self.subject_token_len());
        self.encode_into(out);
    }

    fn encode_into(&self, out: &mut String) {
        for b in self.0.bytes() {
            if passes_through(b) {
                out.push(char::from(b));
            } else {
                out.push('_');
                out.push(hex_digit(b >> 4));
                out.push(hex_digit(b));
            }
        }
    }

    /// The length in bytes of [`Self::subject_token`].
    #[must_use]
    pub fn subject_token_len(&self) -> usize {
        self.0.bytes().map(|b| if passes_through(b) { 1 } else { 3 }).sum()
    }

    /// Decodes a subject token written by [`Self::subject_token`].
    ///
    /// The exact inverse: it accepts only the canonical token of a valid id,
    /// so `from_subject_token(t)` succeeds if and only if `t` is
    /// `id.subject_token()` for some valid `id`, and then returns that `id`.
    /// It refuses characters outside `[A-Za-z0-9_-]`, a `_` not followed by
    /// two uppercase hex digits (lowercase hex included), escapes of bytes
    /// that are written as themselves (`_61` for `a`), bytes that are not
    /// UTF-8, and anything that decodes to an invalid id.
    ///
    /// # Errors
    ///
    /// A [`SubjectTokenError`] naming the first problem found; a token longer
    /// than [`Self::MAX_SUBJECT_TOKEN_LEN`] is refused as
    /// [`SubjectTokenError::InvalidId`]`(`[`LiveSocketIdError::TooLong`]`)`
    /// before it is read.
    pub fn from_subject_token(token: &str) -> Result<Self, SubjectTokenError> {
        if token.len() > Self::MAX_SUBJECT_TOKEN_LEN {
            // A canonical token is at most three times as long as its id, so
            // a longer one can only decode to an id over `MAX_LEN` bytes.
            return Err(LiveSocketIdError::TooLong.into());
        }
        let mut bytes = Vec::with_capacity(token.len());
        let mut it = token.bytes();
        while let Some(b) = it.next() {
            if passes_through(b) {
                bytes.push(b);
            } else if b == b'_' {
                let hi = it.next().and_then(hex_value);
                let lo = it.next().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(SubjectTokenError::InvalidEscape);
                };
                let decoded = (hi << 4) | lo;
                if passes_through(decoded) {
                    return Err(SubjectTokenError::NonCanonicalEscape);
                }
                bytes.push(decoded);
            } else {
                return Err(SubjectTokenError::InvalidCharacter);
            }
        }
        let id = String::from_utf8(bytes).map_err(|_| SubjectTokenError::InvalidUtf8)?;
        Ok(Self::new(id)?)
    }
}

/// The subject a disconnect for `id` is published on:
/// `<prefix>.socket.<token>`, with `<token>` from
/// [`LiveSocketId::subject_token`].
///
/// `prefix` is used as given: it must be a valid sequence of subject tokens
/// without wildcards, checked where the configuration is read.
#[must_use]
pub fn subject(prefix: &str, id: &LiveSocketId) -> String {
    const SEGMENT: &str = ".socket.";
    let mut out = String::with_capacity(prefix.len() + SEGMENT.len() + id.subject_token_len());
    out.push_str(prefix);
    out.push_str(SEGMENT);
    id.encode_into(&mut out);
    out
}

fn validate(id: &str) -> Result<(), LiveSocketIdError> {
    if id.is_empty() {
        Err(LiveSocketIdError::Empty)
    } else if id.len() > LiveSocketId::MAX_LEN {
        Err(LiveSocketIdError::TooLong)
    } else if id.chars().any(char::is_control) {
        Err(LiveSocketIdError::ControlCharacter)
    } else {
        Ok(())
    }
}

impl fmt::Debug for LiveSocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LiveSocketId").field(&self.0).finish()
    }
}

impl fmt::Display for LiveSocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for LiveSocketId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<LiveSocketId> for String {
    fn from(id: LiveSocketId) -> Self {
        id.0
    }
}

impl TryFrom<String> for LiveSocketId {
    type Error = LiveSocketIdError;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl TryFrom<&str> for LiveSocketId {
    type Error = LiveSocketIdError;

    fn try_from(id: &str) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl FromStr for LiveSocketId {
    type Err = LiveSocketIdError;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        Self::new(id)
    }
}

impl Serialize for LiveSocketId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits_are_uppercase() {
        let digits: String = (0..16).map(hex_digit).collect();
        assert_eq!(digits, "0123456789ABCDEF");
        for (n, d) in digits.bytes().enumerate() {
            assert_eq!(hex_value(d), u8::try_from(n).ok());
        }
        assert_eq!(hex_value(b'a'), None);
        assert_eq!(hex_value(b'G'), None);
    }

    #[test]
    fn every_byte_round_trips_through_its_escape() {
        for b in 0..=u8::MAX {
            if passes_through(b) {
                continue;
            }
            let hi = hex_value(hex_digit(b >> 4) as u8);
            let lo = hex_value(hex_digit(b) as u8);
            assert_eq!(hi.zip(lo).map(|(h, l)| (h << 4) | l), Some(b));
        }
    }
}
