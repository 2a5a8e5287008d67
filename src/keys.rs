//! The secret key base, per-purpose key derivation and the key ring.
//!
//! One secret key base (at least 64 random bytes) is the root of every key.
//! Each purpose — a token salt such as `"user auth"`, a cookie's signing salt,
//! the cluster's control messages — gets its own 32-byte key, derived with
//! PBKDF2-HMAC-SHA256 (1000 iterations, Phoenix's parameters). Keys are derived
//! once, when a codec is built: verification never runs the KDF.
//!
//! A [`KeyRing`] holds several secret key bases, each under a [`KeyId`]. New
//! tokens are made with the primary key; tokens made with an older key still
//! verify; a retired key id is refused, and so is an id the ring never had.

use alloc::vec::Vec;
use core::fmt;

use hmac::Hmac;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Iterations of PBKDF2 per derived key (Phoenix's `key_iterations`). The
/// secret key base is high-entropy, so this is domain separation, not
/// password stretching.
pub const KDF_ITERATIONS: u32 = 1000;
/// Bytes per derived key (Phoenix's `key_length`).
pub const DERIVED_KEY_LEN: usize = 32;

/// The root secret every key is derived from.
///
/// Never shown by `Debug`, zeroized on drop, and compared only by
/// [`KeyRing`] internals (never exposed again once given).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKeyBase(Vec<u8>);

impl SecretKeyBase {
    /// The shortest accepted secret, in bytes (as Plug's cookie store).
    pub const MIN_LEN: usize = 64;

    /// Takes ownership of `bytes` as a secret key base.
    ///
    /// Refuses secrets shorter than [`Self::MIN_LEN`]. The bytes should come
    /// from a cryptographically secure generator (e.g. `openssl rand 64`).
    pub fn new(bytes: Vec<u8>) -> Result<Self, KeyError> {
        let secret = Self(bytes);
        if secret.0.len() < Self::MIN_LEN {
            return Err(KeyError::SecretTooShort);
        }
        Ok(secret)
    }

    /// Derives the key for one purpose: PBKDF2-HMAC-SHA256 with `purpose` as
    /// the salt, [`KDF_ITERATIONS`] iterations, [`DERIVED_KEY_LEN`] bytes.
    ///
    /// Equal to Phoenix's `KeyGenerator.generate(secret_key_base, salt)` with
    /// default options, so keys agree with a Phoenix application that shares
    /// the secret.
    pub fn derive(&self, purpose: &[u8]) -> DerivedKey {
        let mut key = Zeroizing::new([0u8; DERIVED_KEY_LEN]);
        pbkdf2_sha256(&self.0, purpose, KDF_ITERATIONS, key.as_mut());
        DerivedKey::new(key)
    }
}

impl fmt::Debug for SecretKeyBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKeyBase([REDACTED])")
    }
}

/// PBKDF2-HMAC-SHA256 into `out`.
pub(crate) fn pbkdf2_sha256(secret: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    pbkdf2::pbkdf2_hmac::<Sha256>(secret, salt, iterations, out);
}

/// A 32-byte key for one purpose, derived from a [`SecretKeyBase`].
///
/// Keeps the HMAC key schedule (the hashed inner and outer pads) so that a
/// verification costs one HMAC, not one HMAC plus key setup. The raw key is
/// zeroized on drop; `Debug` never shows it.
#[derive(Clone)]
pub struct DerivedKey {
    bytes: Zeroizing<[u8; DERIVED_KEY_LEN]>,
    mac: HmacSha256,
}

impl DerivedKey {
    fn new(bytes: Zeroizing<[u8; DERIVED_KEY_LEN]>) -> Self {
        // HMAC zero-pads keys shorter than the hash block, so keying with the
        // padded block is the same MAC, through an infallible constructor.
        let mut block = Zeroizing::new([0u8; 64]);
        block[..DERIVED_KEY_LEN].copy_from_slice(bytes.as_ref());
        let mac = <HmacSha256 as hmac::digest::KeyInit>::new(&(*block).into());
        Self { bytes, mac }
    }

    /// A fresh HMAC-SHA256 instance keyed with this key.
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }

    /// The raw key, for the AEAD.
    pub(crate) fn bytes(&self) -> &[u8; DERIVED_KEY_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKey([REDACTED])")
    }
}

/// Names one secret key base in a [`KeyRing`]; carried in every token.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Secret key bases by key id: the primary one signs, the others only verify.
///
/// Rotation: [`KeyRing::rotate`] installs a new primary and keeps the old one
/// for verification. Retirement: [`KeyRing::retire`] forgets a key and
/// remembers its id, so tokens made with it are refused as
/// [`Rejection::RetiredKey`](crate::token::Rejection::RetiredKey). Codecs
/// derive their keys when they are built, so build them again after changing
/// the ring.
#[derive(Clone, Debug)]
pub struct KeyRing {
    primary: KeyId,
    keys: Vec<(KeyId, SecretKeyBase)>,
    retired: Vec<KeyId>,
}

impl KeyRing {
    /// A ring with one key, which is the primary.
    pub fn new(id: KeyId, secret: SecretKeyBase) -> Self {
        Self { primary: id, keys: alloc::vec![(id, secret)], retired: Vec::new() }
    }

    /// Adds an older key that still verifies but never signs.
    pub fn with_older(mut self, id: KeyId, secret: SecretKeyBase) -> Result<Self, KeyError> {
        self.check_new_id(id)?;
        self.keys.push((id, secret));
        Ok(self)
    }

    /// Makes `secret` the primary key under `id`; the previous primary keeps
    /// verifying.
    pub fn rotate(&mut self, id: KeyId, secret: SecretKeyBase) -> Result<(), KeyError> {
        self.check_new_id(id)?;
        self.keys.push((id, secret));
        self.primary = id;
        Ok(())
    }

    /// Forgets the key `id` and refuses its tokens from now on. The primary
    /// cannot be retired: rotate first.
    pub fn retire(&mut self, id: KeyId) -> Result<(), KeyError> {
        if id == self.primary {
            return Err(KeyError::RetiringPrimary);
        }
        let before = self.keys.len();
        self.keys.retain(|(kid, _)| *kid != id);
        if self.keys.len() == before {
            return Err(KeyError::UnknownKeyId);
        }
        self.retired.push(id);
        Ok(())
    }

    /// The id new tokens carry.
    pub fn primary_id(&self) -> KeyId {
        self.primary
    }

    /// Whether `id` was retired from this ring.
    pub fn is_retired(&self, id: KeyId) -> bool {
        self.retired.contains(&id)
    }

    /// Derives the key for `purpose` under every key id (runs the KDF once
    /// per key: call at start-up, not per request).
    pub fn derive(&self, purpose: &[u8]) -> DerivedKeys {
        DerivedKeys {
            primary: self.primary,
            keys: self.keys.iter().map(|(id, secret)| (*id, secret.derive(purpose))).collect(),
            retired: self.retired.clone(),
        }
    }

    fn check_new_id(&self, id: KeyId) -> Result<(), KeyError> {
        if self.retired.contains(&id) {
            return Err(KeyError::RetiredKeyId);
        }
        if self.keys.iter().any(|(kid, _)| *kid == id) {
            return Err(KeyError::DuplicateKeyId);
        }
        Ok(())
    }
}

/// The keys of one purpose under every key id of a [`KeyRing`].
#[derive(Clone, Debug)]
pub struct DerivedKeys {
    primary: KeyId,
    keys: Vec<(KeyId, DerivedKey)>,
    retired: Vec<KeyId>,
}

/// Why a key id found in a token could not be used.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum KeyLookup {
    Unknown,
    Retired,
}

impl DerivedKeys {
    /// The primary key and its id.
    pub(crate) fn primary(&self) -> Option<(KeyId, &DerivedKey)> {
        self.get(self.primary).ok().map(|key| (self.primary, key))
    }

    /// Every key with its id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (KeyId, &DerivedKey)> {
        self.keys.iter().map(|(id, key)| (*id, key))
    }

    /// The key for `id`. Rings hold a handful of keys, so a scan beats a map.
    pub(crate) fn get(&self, id: KeyId) -> Result<&DerivedKey, KeyLookup> {
        self.position(id).and_then(|index| self.keys.get(index).map(|(_, key)| key).ok_or(KeyLookup::Unknown))
    }

    /// Where `id` is in [`DerivedKeys::iter`]'s order.
    pub(crate) fn position(&self, id: KeyId) -> Result<usize, KeyLookup> {
        match self.keys.iter().position(|(kid, _)| *kid == id) {
            Some(index) => Ok(index),
            None if self.retired.contains(&id) => Err(KeyLookup::Retired),
            None => Err(KeyLookup::Unknown),
        }
    }
}

/// Why a key or key ring could not be built or changed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum KeyError {
    /// The secret key base is shorter than [`SecretKeyBase::MIN_LEN`].
    SecretTooShort,
    /// The ring already holds a key with this id.
    DuplicateKeyId,
    /// This id was retired and may never be used again.
    RetiredKeyId,
    /// The ring holds no key with this id.
    UnknownKeyId,
    /// The primary key cannot be retired; rotate to a new one first.
    RetiringPrimary,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SecretTooShort => "the secret key base must be at least 64 bytes",
            Self::DuplicateKeyId => "the key ring already has a key with this id",
            Self::RetiredKeyId => "this key id was retired and cannot be reused",
            Self::UnknownKeyId => "the key ring has no key with this id",
            Self::RetiringPrimary => "the primary key cannot be retired; rotate first",
        })
    }
}

impl core::error::Error for KeyError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> alloc::string::String {
        bytes.iter().map(|b| alloc::format!("{b:02x}")).collect()
    }

    #[test]
    fn pbkdf2_matches_the_plug_crypto_vector() {
        let mut out = [0u8; 16];
        pbkdf2_sha256(b"password", b"salt", 1, &mut out);
        assert_eq!(hex(&out), "120fb6cffcf8b32c43e7225256c4f837");
    }

    #[test]
    fn derived_key_matches_phoenix_for_the_same_secret_and_salt() {
        let base = SecretKeyBase::new(alloc::vec![b'a'; 64]).unwrap();
        let key = base.derive(b"user auth");
        assert_eq!(hex(key.bytes()), "31fbb3adecec68c972fd2697491c1a02763359667d5ac06901233fb98a57fb14");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let base = SecretKeyBase::new(alloc::vec![0x41; 64]).unwrap();
        let text = alloc::format!("{base:?} {:?}", base.derive(b"x"));
        assert!(!text.contains("AAAA") && !text.contains("65, 65") && !text.contains("41"));
        let ring = KeyRing::new(KeyId(1), base);
        assert!(!alloc::format!("{ring:?}").contains("65"));
    }

    #[test]
    fn short_secret_is_refused() {
        assert_eq!(SecretKeyBase::new(alloc::vec![1; 63]).unwrap_err(), KeyError::SecretTooShort);
        assert!(SecretKeyBase::new(alloc::vec![1; 64]).is_ok());
    }

    #[test]
    fn ring_rotation_and_retirement() {
        let s = |b| SecretKeyBase::new(alloc::vec![b; 64]).unwrap();
        let mut ring = KeyRing::new(KeyId(1), s(1)).with_older(KeyId(0), s(0)).unwrap();
        assert_eq!(ring.clone().with_older(KeyId(1), s(9)).unwrap_err(), KeyError::DuplicateKeyId);
        ring.rotate(KeyId(2), s(2)).unwrap();
        assert_eq!(ring.primary_id(), KeyId(2));
        assert_eq!(ring.retire(KeyId(2)), Err(KeyError::RetiringPrimary));
        ring.retire(KeyId(0)).unwrap();
        assert!(ring.is_retired(KeyId(0)));
        assert_eq!(ring.retire(KeyId(0)), Err(KeyError::UnknownKeyId));
        assert_eq!(ring.rotate(KeyId(0), s(3)), Err(KeyError::RetiredKeyId));
        let keys = ring.derive(b"p");
        assert_eq!(keys.primary().map(|(id, _)| id), Some(KeyId(2)));
        assert!(keys.get(KeyId(1)).is_ok());
        assert_eq!(keys.get(KeyId(0)).unwrap_err(), KeyLookup::Retired);
        assert_eq!(keys.get(KeyId(7)).unwrap_err(), KeyLookup::Unknown);
    }
}
