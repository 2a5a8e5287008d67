//! Helpers shared by the fuzz targets: fixed keys, a deterministic random
//! source, a structured test type, a serializer for raw postcard bytes and a
//! small reader that carves the fuzzer's input into fields.
#![allow(dead_code)]

use std::collections::BTreeMap;

use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::random::{RandomError, SecureRandom};
use liveguard::token::{Rejection, VerifyError, VerifyErrorKind};
use liveguard::{MaxAge, Timestamp};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Serialize, Serializer};

/// The verification clock used unless a target derives one from the input.
pub const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);
/// The default clock skew of `TokenConfig` and `SessionCookie`.
pub const SKEW_MS: u64 = 30_000;

fn secret(byte: u8) -> SecretKeyBase {
    SecretKeyBase::new(vec![byte; 64]).expect("64 bytes is the minimum length")
}

/// The ring every target verifies with: primary key 3, older key 1 (still
/// verifies), retired key 2 (refused as `RetiredKey`). Any other id is unknown.
pub fn main_ring() -> KeyRing {
    let mut ring = KeyRing::new(KeyId(2), secret(b'2')).with_older(KeyId(1), secret(b'1')).expect("fresh id");
    ring.rotate(KeyId(3), secret(b'3')).expect("fresh id");
    ring.retire(KeyId(2)).expect("key 2 is not the primary");
    ring
}

/// A ring whose primary is the main ring's older key 1 (same secret).
pub fn older_key_ring() -> KeyRing {
    KeyRing::new(KeyId(1), secret(b'1'))
}

/// A ring whose primary is the main ring's retired key 2 (same secret).
pub fn retired_key_ring() -> KeyRing {
    KeyRing::new(KeyId(2), secret(b'2'))
}

/// A ring whose primary id 7 the main ring never had.
pub fn unknown_key_ring() -> KeyRing {
    KeyRing::new(KeyId(7), secret(b'7'))
}

/// A deterministic `SecureRandom` (splitmix64). Only for fuzzing: it is
/// predictable by design.
#[derive(Clone, Debug)]
pub struct FixedRng(pub u64);

impl SecureRandom for FixedRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        for chunk in dest.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

/// A random source that always fails.
#[derive(Clone, Copy, Debug)]
pub struct FailingRng;

impl SecureRandom for FailingRng {
    fn fill(&mut self, _: &mut [u8]) -> Result<(), RandomError> {
        Err(RandomError)
    }
}

/// Serializes its bytes verbatim with postcard (a tuple of `u8`s has no
/// length prefix, and postcard writes a `u8` as one raw byte), so signing
/// `RawBytes(b)` puts exactly `b` behind a valid MAC as the token's data.
pub struct RawBytes<'a>(pub &'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for byte in self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

/// A structured payload with most serde shapes postcard has to decode:
/// varints, strings, chars, options, sequences, maps, enums, tuples, bytes.
/// No floats, so that `PartialEq` is an equivalence.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq, Clone)]
pub struct Claims {
    pub user_id: u64,
    pub name: String,
    pub roles: Vec<String>,
    pub admin: bool,
    pub org: Option<u32>,
    pub scope: Scope,
    pub counters: BTreeMap<String, i64>,
    pub pair: (u16, char),
    pub blob: Vec<u8>,
    pub delta: i128,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq, Clone)]
pub enum Scope {
    Read,
    Write(u8),
    Admin { since: i64, note: Option<String> },
}

/// Checks what holds for every refusal of a token that was given (`Some`).
pub fn check_error_of_present_token(err: &VerifyError) {
    assert_ne!(err.kind(), VerifyErrorKind::Missing, "a present token reported as missing: {err:?}");
    assert_ne!(err.rejection(), Rejection::Missing);
    assert_eq!(err.kind(), err.rejection().kind());
    // Display tells only the kind, never the detailed reason.
    assert_eq!(err.to_string(), err.kind().to_string());
}

/// The expected outcome of verifying an authentic token signed at
/// `signed_at` with `max_age` at `now`, from the documented rules: invalid
/// when signed more than the clock skew in the future; expired when the max
/// age is zero or `now` is strictly past `signed_at + max_age`; otherwise
/// valid until `signed_at + max_age` (`None` when unlimited).
pub fn expected_age_outcome(
    signed_at: Timestamp,
    max_age: MaxAge,
    now: Timestamp,
    skew_ms: u64,
) -> Result<Option<Timestamp>, Rejection> {
    if signed_at.as_unix_millis() > now.as_unix_millis().saturating_add(skew_ms) {
        return Err(Rejection::FutureDated);
    }
    let expires_at = match max_age {
        MaxAge::Seconds(secs) => {
            Some(Timestamp::from_unix_millis(signed_at.as_unix_millis().saturating_add(secs.saturating_mul(1000))))
        }
        MaxAge::Unlimited => None,
    };
    let expired = match max_age {
        MaxAge::Seconds(0) => true,
        _ => expires_at.is_some_and(|at| now > at),
    };
    if expired { Err(Rejection::Expired) } else { Ok(expires_at) }
}

/// Reads fixed-size fields from the front of the input, with zeros once it
/// runs out, and hands over the rest.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        out
    }

    pub fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }
}

/// `text` with the byte at `index` XORed with a non-zero `delta`, when that
/// is still UTF-8 (the verify APIs take `&str`).
pub fn mutate_one_byte(text: &str, index: usize, delta: u8) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let mut bytes = text.as_bytes().to_vec();
    let index = index % bytes.len();
    bytes[index] ^= delta.max(1);
    String::from_utf8(bytes).ok()
}

/// The longest prefix of `text` of at most `len` bytes that ends on a char
/// boundary.
pub fn prefix(text: &str, len: usize) -> &str {
    let mut len = len.min(text.len());
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    &text[..len]
}
