//! Signed and encrypted tokens carrying any serde type.
//!
//! A token is text, safe in URLs, headers, cookies and HTML attributes:
//!
//! ```text
//! signed:     lg1s.<key id>.<payload>.<tag>
//! encrypted:  lg1x.<key id>.<nonce ‖ ciphertext ‖ tag>
//! ```
//!
//! `<key id>` is the decimal [`KeyId`] and every other part is unpadded
//! base64url. The payload is the postcard encoding of
//! `(signed_at_ms: u64, max_age_s: Option<u64>, data: T)`; the two times come
//! first so an expired token is refused without decoding its data.
//!
//! - **Signed** ([`SignedTokens`]): the tag is HMAC-SHA256, under the key
//!   derived for the token's purpose, over a context (`"token:" + purpose`,
//!   length-prefixed) followed by the token text before the `.` that precedes
//!   the tag (`lg1s.<key id>.<payload>`). It covers the
//!   version, the key id and the payload. Signed tokens are readable.
//! - **Encrypted** ([`EncryptedTokens`]): XChaCha20-Poly1305 with a random
//!   24-byte nonce; the associated data is the same context followed by the
//!   header text (`lg1x.<key id>.`).
//!
//! Verification reads only the fixed header to pick the key, checks the tag
//! in constant time, and only then decodes the payload and applies the age
//! rules. Callers get [`VerifyErrorKind`] (`Invalid`, `Expired`, `Missing`);
//! [`VerifyError::rejection`] tells logs and audit records why.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write as _;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use hmac::Mac;
use serde::Serialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::b64;
use crate::keys::{DerivedKey, DerivedKeys, HmacSha256, KeyId, KeyLookup, KeyRing};
use crate::random::SecureRandom;
use crate::time::{MaxAge, Timestamp};

const SIGNED_HEADER: &str = "lg1s";
const SEALED_HEADER: &str = "lg1x";
const TAG_TEXT_LEN: usize = 43;
const NONCE_LEN: usize = 24;
const AEAD_TAG_LEN: usize = 16;

/// Limits and defaults shared by token codecs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenConfig {
    max_len: usize,
    clock_skew_ms: u64,
    default_max_age: MaxAge,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self { max_len: 4096, clock_skew_ms: 30_000, default_max_age: MaxAge::ONE_DAY }
    }
}

impl TokenConfig {
    /// Longest token text accepted or produced, in bytes (default 4096).
    /// Longer input is refused before any work is done on it.
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// How far in the future `signed_at` may lie before a token is invalid,
    /// in milliseconds (default 30 000): the clock difference tolerated
    /// between the node that signed and the node that verifies.
    pub fn clock_skew_ms(mut self, skew: u64) -> Self {
        self.clock_skew_ms = skew;
        self
    }

    /// The maximum age stored in tokens signed without an explicit one
    /// (default one day, as Phoenix).
    pub fn default_max_age(mut self, max_age: MaxAge) -> Self {
        self.default_max_age = max_age;
        self
    }
}

/// A token that passed verification, with what the caller may need to
/// audit it or to close a connection when it lapses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<T> {
    /// The data that was signed.
    pub data: T,
    /// The key that verified the token (see [`KeyRing::retire`]).
    pub key_id: KeyId,
    /// When the token was signed.
    pub signed_at: Timestamp,
    /// When the token stops being valid (after any max-age override), or
    /// `None` if it never does.
    pub expires_at: Option<Timestamp>,
}

/// Makes and verifies signed tokens for one purpose.
///
/// Build once (it runs the key derivation) and share: every method takes
/// `&self`.
#[derive(Clone, Debug)]
pub struct SignedTokens {
    codec: Codec,
    config: TokenConfig,
}

impl SignedTokens {
    /// Tokens for `purpose` (Phoenix's salt, e.g. `"user auth"`) under `ring`.
    pub fn new(ring: &KeyRing, purpose: &str) -> Self {
        Self::with_config(ring, purpose, TokenConfig::default())
    }

    /// As [`SignedTokens::new`], with limits and defaults.
    pub fn with_config(ring: &KeyRing, purpose: &str, config: TokenConfig) -> Self {
        Self { codec: Codec::token(ring, purpose, Mode::Signed), config }
    }

    /// Signs `data` at `now` with the default maximum age.
    pub fn sign<T: Serialize + ?Sized>(&self, data: &T, now: Timestamp) -> Result<String, SignError> {
        self.sign_with_max_age(data, now, self.config.default_max_age)
    }

    /// Signs `data` at `now`, valid for `max_age`.
    pub fn sign_with_max_age<T: Serialize + ?Sized>(
        &self,
        data: &T,
        now: Timestamp,
        max_age: MaxAge,
    ) -> Result<String, SignError> {
        let payload = encode_payload(data, now, max_age)?;
        self.codec.seal(&payload, self.config.max_len, None)
    }

    /// Verifies `token` at `now` against the maximum age it carries.
    pub fn verify<'a, T: DeserializeOwned>(
        &self,
        token: impl Into<Option<&'a str>>,
        now: Timestamp,
    ) -> Result<Verified<T>, VerifyError> {
        verify(&self.codec, &self.config, token.into(), now, None)
    }

    /// Verifies `token` at `now`, with `max_age` replacing the one it carries
    /// (Phoenix's `max_age` option of `verify`).
    pub fn verify_with_max_age<'a, T: DeserializeOwned>(
        &self,
        token: impl Into<Option<&'a str>>,
        now: Timestamp,
        max_age: MaxAge,
    ) -> Result<Verified<T>, VerifyError> {
        verify(&self.codec, &self.config, token.into(), now, Some(max_age))
    }
}

/// Makes and verifies encrypted tokens for one purpose: the payload is
/// confidential as well as authenticated.
#[derive(Clone, Debug)]
pub struct EncryptedTokens {
    codec: Codec,
    config: TokenConfig,
}

impl EncryptedTokens {
    /// Tokens for `purpose` under `ring`.
    pub fn new(ring: &KeyRing, purpose: &str) -> Self {
        Self::with_config(ring, purpose, TokenConfig::default())
    }

    /// As [`EncryptedTokens::new`], with limits and defaults.
    pub fn with_config(ring: &KeyRing, purpose: &str, config: TokenConfig) -> Self {
        Self { codec: Codec::token(ring, purpose, Mode::Encrypted), config }
    }

    /// Encrypts `data` at `now` with the default maximum age, under a fresh
    /// nonce from `rng`.
    pub fn encrypt<T: Serialize + ?Sized>(
        &self,
        data: &T,
        now: Timestamp,
        rng: &mut impl SecureRandom,
    ) -> Result<String, SignError> {
        self.encrypt_with_max_age(data, now, self.config.default_max_age, rng)
    }

    /// Encrypts `data` at `now`, valid for `max_age`.
    pub fn encrypt_with_max_age<T: Serialize + ?Sized>(
        &self,
        data: &T,
        now: Timestamp,
        max_age: MaxAge,
        rng: &mut impl SecureRandom,
    ) -> Result<String, SignError> {
        let payload = encode_payload(data, now, max_age)?;
        self.codec.seal(&payload, self.config.max_len, Some(rng))
    }

    /// Decrypts and verifies `token` at `now`.
    pub fn decrypt<'a, T: DeserializeOwned>(
        &self,
        token: impl Into<Option<&'a str>>,
        now: Timestamp,
    ) -> Result<Verified<T>, VerifyError> {
        verify(&self.codec, &self.config, token.into(), now, None)
    }

    /// Decrypts and verifies `token` at `now` with `max_age` replacing the
    /// one it carries.
    pub fn decrypt_with_max_age<'a, T: DeserializeOwned>(
        &self,
        token: impl Into<Option<&'a str>>,
        now: Timestamp,
        max_age: MaxAge,
    ) -> Result<Verified<T>, VerifyError> {
        verify(&self.codec, &self.config, token.into(), now, Some(max_age))
    }
}

fn verify<T: DeserializeOwned>(
    codec: &Codec,
    config: &TokenConfig,
    token: Option<&str>,
    now: Timestamp,
    max_age: Option<MaxAge>,
) -> Result<Verified<T>, VerifyError> {
    codec
        .open(token, config.max_len, |key_id, payload| {
            decode_payload(payload, key_id, now, max_age, config.clock_skew_ms)
        })
        .map_err(VerifyError::from)
}

/// Whether a token is signed or encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Signed,
    Encrypted,
}

/// The byte-level envelope: keys of one purpose, a context bound into every
/// tag, and the mode. Shared by tokens and session cookies.
#[derive(Clone, Debug)]
pub(crate) struct Codec {
    keys: DerivedKeys,
    context: Vec<u8>,
    /// Per key id, an HMAC state that has already absorbed the
    /// length-prefixed context, so a verification starts from it.
    macs: Vec<(KeyId, HmacSha256)>,
    mode: Mode,
}

impl Codec {
    fn token(ring: &KeyRing, purpose: &str, mode: Mode) -> Self {
        Self::new(ring.derive(purpose.as_bytes()), &[b"token:", purpose.as_bytes()], mode)
    }

    /// A codec whose tags also cover the concatenation of `context`.
    pub(crate) fn new(keys: DerivedKeys, context: &[&[u8]], mode: Mode) -> Self {
        let context = context.concat();
        let prefix = u32::try_from(context.len()).unwrap_or(u32::MAX).to_be_bytes();
        let macs = keys
            .iter()
            .map(|(id, key)| {
                let mut mac = key.mac();
                mac.update(&prefix);
                mac.update(&context);
                (id, mac)
            })
            .collect();
        Self { keys, context, macs, mode }
    }

    /// A MAC over the context for key `id`, ready for the token text.
    fn mac(&self, id: KeyId) -> Option<HmacSha256> {
        self.macs.iter().find(|(kid, _)| *kid == id).map(|(_, mac)| mac.clone())
    }

    /// The key id new tokens carry.
    pub(crate) fn primary_id(&self) -> Option<KeyId> {
        self.keys.primary().map(|(id, _)| id)
    }

    fn header(&self) -> &'static str {
        match self.mode {
            Mode::Signed => SIGNED_HEADER,
            Mode::Encrypted => SEALED_HEADER,
        }
    }

    /// The context, length-prefixed so that no context is a prefix of another
    /// context followed by token text.
    fn context_prefix(&self) -> [u8; 4] {
        u32::try_from(self.context.len()).unwrap_or(u32::MAX).to_be_bytes()
    }

    /// Wraps `payload` into token text under the primary key.
    pub(crate) fn seal(
        &self,
        payload: &[u8],
        max_len: usize,
        rng: Option<&mut dyn SecureRandom>,
    ) -> Result<String, SignError> {
        let (key_id, key) = self.keys.primary().ok_or(SignError::NoPrimaryKey)?;
        let mut out = String::with_capacity(16 + payload.len() * 4 / 3 + 64);
        // Writing to a String cannot fail.
        let _ = write!(out, "{}.{}.", self.header(), key_id);
        match self.mode {
            Mode::Signed => {
                b64::encode_into(payload, &mut out);
                let mut mac = self.mac(key_id).ok_or(SignError::NoPrimaryKey)?;
                mac.update(out.as_bytes());
                out.push('.');
                b64::encode_into(&mac.finalize().into_bytes(), &mut out);
            }
            Mode::Encrypted => {
                let rng = rng.ok_or(SignError::Random)?;
                let mut nonce = [0u8; NONCE_LEN];
                rng.fill(&mut nonce).map_err(|_| SignError::Random)?;
                let aad = self.aad(&out);
                let sealed = cipher(key)
                    .encrypt((&nonce).into(), Payload { msg: payload, aad: &aad })
                    .map_err(|_| SignError::TooLarge)?;
                let mut body = Vec::with_capacity(NONCE_LEN + sealed.len());
                body.extend_from_slice(&nonce);
                body.extend_from_slice(&sealed);
                b64::encode_into(&body, &mut out);
            }
        }
        if out.len() > max_len {
            return Err(SignError::TooLarge);
        }
        Ok(out)
    }

    /// Checks `token` and hands the key id and the authenticated payload to
    /// `decode`; the payload buffer is zeroized afterwards.
    pub(crate) fn open<R>(
        &self,
        token: Option<&str>,
        max_len: usize,
        decode: impl FnOnce(KeyId, &[u8]) -> Result<R, Rejection>,
    ) -> Result<R, Rejection> {
        let token = token.ok_or(Rejection::Missing)?;
        if token.is_empty() {
            return Err(Rejection::Empty);
        }
        if token.len() > max_len {
            return Err(Rejection::TooLong);
        }
        let (header, rest) = token.split_once('.').ok_or(Rejection::Malformed)?;
        if header != self.header() {
            return Err(if header == SIGNED_HEADER || header == SEALED_HEADER {
                Rejection::WrongKind
            } else if is_versioned_header(header) {
                Rejection::UnsupportedVersion
            } else {
                Rejection::Malformed
            });
        }
        let (kid_text, body) = rest.split_once('.').ok_or(Rejection::Malformed)?;
        let key_id = parse_key_id(kid_text).ok_or(Rejection::Malformed)?;
        let index = self.keys.position(key_id).map_err(|lookup| match lookup {
            KeyLookup::Unknown => Rejection::UnknownKey,
            KeyLookup::Retired => Rejection::RetiredKey,
        })?;
        match self.mode {
            Mode::Signed => {
                let (payload_text, tag_text) = body.rsplit_once('.').ok_or(Rejection::Malformed)?;
                if tag_text.len() != TAG_TEXT_LEN {
                    return Err(Rejection::BadSignature);
                }
                let signed_len = token.len() - tag_text.len() - 1;
                let mut mac = self.macs.get(index).map(|(_, mac)| mac.clone()).ok_or(Rejection::UnknownKey)?;
                mac.update(token.as_bytes().get(..signed_len).ok_or(Rejection::Malformed)?);
                // Compare texts: encoding our tag is cheaper than decoding
                // theirs, and strict base64 has one text per tag, so nothing
                // but the canonical text matches. Constant time, and before
                // anything in the payload is decoded.
                let mut expected = [0u8; TAG_TEXT_LEN];
                let written = b64::encode_slice(&mac.finalize().into_bytes(), &mut expected);
                if written != Some(TAG_TEXT_LEN) || !bool::from(expected.ct_eq(tag_text.as_bytes())) {
                    return Err(Rejection::BadSignature);
                }
                with_decoded(payload_text.as_bytes(), |payload| decode(key_id, payload))
            }
            Mode::Encrypted => {
                let body_bytes = Zeroizing::new(b64::decode(body.as_bytes()).ok_or(Rejection::BadEncoding)?);
                let (nonce, sealed) = body_bytes.split_at_checked(NONCE_LEN).ok_or(Rejection::Malformed)?;
                if sealed.len() < AEAD_TAG_LEN {
                    return Err(Rejection::Malformed);
                }
                let header_len = token.len() - body.len();
                let aad = self.aad(token.get(..header_len).ok_or(Rejection::Malformed)?);
                // The AEAD checks the tag in constant time before decrypting.
                let key = self.keys.get(key_id).map_err(|_| Rejection::UnknownKey)?;
                let plain = cipher(key)
                    .decrypt(nonce.into(), Payload { msg: sealed, aad: &aad })
                    .map_err(|_| Rejection::BadSignature)?;
                decode(key_id, &Zeroizing::new(plain))
            }
        }
    }

    fn aad(&self, header_text: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(4 + self.context.len() + header_text.len());
        aad.extend_from_slice(&self.context_prefix());
        aad.extend_from_slice(&self.context);
        aad.extend_from_slice(header_text.as_bytes());
        aad
    }
}

/// Decodes base64url `text` and hands the bytes to `f`, on the stack when
/// they are small (the common session token), zeroizing them afterwards.
fn with_decoded<R>(text: &[u8], f: impl FnOnce(&[u8]) -> Result<R, Rejection>) -> Result<R, Rejection> {
    const STACK: usize = 160;
    let needed = b64::decoded_len(text.len()).ok_or(Rejection::BadEncoding)?;
    // The decoder wants room for a whole final quantum.
    if needed + 3 <= STACK {
        let mut buf = [0u8; STACK];
        let len = b64::decode_into(text, &mut buf).ok_or(Rejection::BadEncoding)?;
        let bytes = buf.get_mut(..len).ok_or(Rejection::BadEncoding)?;
        let result = f(bytes);
        bytes.zeroize();
        result
    } else {
        let bytes = Zeroizing::new(b64::decode(text).ok_or(Rejection::BadEncoding)?);
        f(&bytes)
    }
}

fn cipher(key: &DerivedKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.bytes().into())
}

/// `lg<digits>s` or `lg<digits>x`: a token of another format version.
fn is_versioned_header(header: &str) -> bool {
    header
        .strip_prefix("lg")
        .and_then(|rest| rest.strip_suffix('s').or_else(|| rest.strip_suffix('x')))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// A key id in canonical decimal: no sign, no leading zeros, fits `u32`.
fn parse_key_id(text: &str) -> Option<KeyId> {
    let canonical = !text.is_empty()
        && text.len() <= 10
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return None;
    }
    text.parse().ok().map(KeyId)
}

/// The postcard payload: times first, then the data.
pub(crate) fn encode_payload<T: Serialize + ?Sized>(
    data: &T,
    signed_at: Timestamp,
    max_age: MaxAge,
) -> Result<Zeroizing<Vec<u8>>, SignError> {
    let max_age_s = match max_age {
        MaxAge::Seconds(secs) => Some(secs),
        MaxAge::Unlimited => None,
    };
    postcard::to_allocvec(&(signed_at.as_unix_millis(), max_age_s, data))
        .map(Zeroizing::new)
        .map_err(|_| SignError::Serialize)
}

/// Decodes an authenticated payload and applies the age rules.
pub(crate) fn decode_payload<T: DeserializeOwned>(
    payload: &[u8],
    key_id: KeyId,
    now: Timestamp,
    max_age_override: Option<MaxAge>,
    clock_skew_ms: u64,
) -> Result<Verified<T>, Rejection> {
    let ((signed_at_ms, max_age_s), rest) =
        postcard::take_from_bytes::<(u64, Option<u64>)>(payload).map_err(|_| Rejection::BadPayload)?;
    let signed_at = Timestamp::from_unix_millis(signed_at_ms);
    if signed_at > now.saturating_add_millis(clock_skew_ms) {
        return Err(Rejection::FutureDated);
    }
    let max_age = max_age_override.unwrap_or(match max_age_s {
        Some(secs) => MaxAge::Seconds(secs),
        None => MaxAge::Unlimited,
    });
    let expires_at = max_age.expires_at(signed_at);
    // Phoenix: a zero (or negative) max age is always expired; otherwise a
    // token is still valid at exactly `signed_at + max_age`.
    let expired = match max_age {
        MaxAge::Seconds(0) => true,
        _ => expires_at.is_some_and(|at| now > at),
    };
    if expired {
        return Err(Rejection::Expired);
    }
    let (data, rest) = postcard::take_from_bytes::<T>(rest).map_err(|_| Rejection::BadPayload)?;
    if !rest.is_empty() {
        return Err(Rejection::BadPayload);
    }
    Ok(Verified { data, key_id, signed_at, expires_at })
}

/// What a caller — and through it, a peer — may learn about a refused token.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum VerifyErrorKind {
    /// No token was given.
    Missing,
    /// The token was well formed and authentic but is past its maximum age.
    Expired,
    /// Anything else: forged, tampered, malformed, wrong purpose, unknown or
    /// retired key, future-dated.
    Invalid,
}

impl fmt::Display for VerifyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "missing token",
            Self::Expired => "expired token",
            Self::Invalid => "invalid token",
        })
    }
}

/// The detailed reason a token was refused: for logs and audit records only.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// No token was given.
    Missing,
    /// The token was the empty string.
    Empty,
    /// The token is longer than the configured maximum.
    TooLong,
    /// The token does not have the shape of this kind of token.
    Malformed,
    /// The token is of a format version this build does not read.
    UnsupportedVersion,
    /// A signed token where an encrypted one was expected, or the reverse.
    WrongKind,
    /// The token names a key id the key ring never had.
    UnknownKey,
    /// The token was made with a retired key.
    RetiredKey,
    /// The tag did not verify: tampered, forged, or made for another purpose.
    BadSignature,
    /// A part is not unpadded base64url.
    BadEncoding,
    /// The authenticated payload does not decode as the expected type.
    BadPayload,
    /// The token was signed further in the future than the clock skew allows.
    FutureDated,
    /// The token is past its maximum age.
    Expired,
}

impl Rejection {
    /// What the caller may pass on.
    pub fn kind(self) -> VerifyErrorKind {
        match self {
            Self::Missing => VerifyErrorKind::Missing,
            Self::Expired => VerifyErrorKind::Expired,
            _ => VerifyErrorKind::Invalid,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "no token",
            Self::Empty => "empty token",
            Self::TooLong => "token longer than the configured maximum",
            Self::Malformed => "malformed token",
            Self::UnsupportedVersion => "unsupported token version",
            Self::WrongKind => "signed and encrypted tokens are not interchangeable",
            Self::UnknownKey => "unknown key id",
            Self::RetiredKey => "retired key id",
            Self::BadSignature => "tag does not verify",
            Self::BadEncoding => "bad base64url",
            Self::BadPayload => "payload does not decode",
            Self::FutureDated => "signed in the future beyond the allowed clock skew",
            Self::Expired => "past its maximum age",
        })
    }
}

/// A refused token. `Display` shows only the [`VerifyErrorKind`]; the
/// detailed [`Rejection`] is available for logs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VerifyError {
    rejection: Rejection,
}

impl VerifyError {
    /// What the caller may pass on to a peer.
    pub fn kind(&self) -> VerifyErrorKind {
        self.rejection.kind()
    }

    /// Why, for logs and audit records.
    pub fn rejection(&self) -> Rejection {
        self.rejection
    }
}

impl From<Rejection> for VerifyError {
    fn from(rejection: Rejection) -> Self {
        Self { rejection }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind(), f)
    }
}

impl core::error::Error for VerifyError {}

/// Why a token could not be made.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum SignError {
    /// The data could not be serialized with postcard.
    Serialize,
    /// The token would be longer than the configured maximum.
    TooLarge,
    /// The random source failed to produce a nonce.
    Random,
    /// The key ring has no primary key for this purpose.
    NoPrimaryKey,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Serialize => "the data could not be serialized",
            Self::TooLarge => "the token would exceed the configured maximum length",
            Self::Random => "the random source failed",
            Self::NoPrimaryKey => "the key ring has no primary key",
        })
    }
}

impl core::error::Error for SignError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_canonical_decimal() {
        assert_eq!(parse_key_id("0"), Some(KeyId(0)));
        assert_eq!(parse_key_id("4294967295"), Some(KeyId(u32::MAX)));
        for bad in ["", "01", "+1", "-1", "4294967296", "99999999999", "1a", " 1"] {
            assert_eq!(parse_key_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn versioned_headers_are_recognised() {
        assert!(is_versioned_header("lg2s") && is_versioned_header("lg10x"));
        assert!(!is_versioned_header("lgs") && !is_versioned_header("lg1q") && !is_versioned_header("SFMyNTY"));
    }
}
