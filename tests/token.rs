//! Tests of the public token API (`liveguard::token`): known-answer vectors
//! computed outside this crate, round trips, every refusal with its
//! `VerifyErrorKind` and `Rejection`, the order of checks (MAC before
//! payload), what `Display`/`Debug` may show, and property tests.
//!
//! Codecs run PBKDF2 when they are built, so the ones used by many tests and
//! by the property tests are built once, in `LazyLock` statics.

use std::fmt::Debug;
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::random::RandomError;
use liveguard::token::{
    EncryptedTokens, Rejection, SignError, SignedTokens, TokenConfig, Verified, VerifyError, VerifyErrorKind,
};
use liveguard::{MaxAge, OsRandom, SecureRandom, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// The fixed "now" of every test that does not say otherwise.
const NOW_MS: u64 = 1_700_000_000_000;
const NOW: Timestamp = Timestamp::from_unix_millis(NOW_MS);
const PURPOSE: &str = "user auth";
const DAY_MS: u64 = 86_400_000;

/// `Display` of each `VerifyErrorKind`: all a peer may ever see.
const INVALID: &str = "invalid token";
const EXPIRED: &str = "expired token";
const MISSING: &str = "missing token";

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct User {
    user_id: u64,
    name: String,
}

fn alice() -> User {
    User { user_id: 42, name: "alice".into() }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Event {
    Ping,
    Join(u32, String),
    Leave { reason: Option<String>, code: u16 },
}

/// Fills from a byte counter: `start`, `start + 1`, ... across calls.
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

/// Hands out fixed bytes in order; fails once they run out.
struct Fixed(Vec<u8>);

impl SecureRandom for Fixed {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        if dest.len() > self.0.len() {
            return Err(RandomError);
        }
        let rest = self.0.split_off(dest.len());
        dest.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}

/// Always fails.
struct Failing;

impl SecureRandom for Failing {
    fn fill(&mut self, _: &mut [u8]) -> Result<(), RandomError> {
        Err(RandomError)
    }
}

/// Data whose serialization always fails.
struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to serialize"))
    }
}

fn secret(byte: u8) -> SecretKeyBase {
    SecretKeyBase::new(vec![byte; 64]).unwrap()
}

/// The known-answer secret key base: 64 × `b'k'`.
fn kat_ring() -> KeyRing {
    KeyRing::new(KeyId(1), secret(b'k'))
}

struct Codecs {
    signed: SignedTokens,
    sealed: EncryptedTokens,
}

impl Codecs {
    fn new(ring: &KeyRing, purpose: &str) -> Self {
        Self::with_config(ring, purpose, TokenConfig::default())
    }

    fn with_config(ring: &KeyRing, purpose: &str, config: TokenConfig) -> Self {
        Self {
            signed: SignedTokens::with_config(ring, purpose, config),
            sealed: EncryptedTokens::with_config(ring, purpose, config),
        }
    }
}

/// The known-answer codecs (64 × `b'k'`, `KeyId(1)`, `"user auth"`), also
/// the default codecs of most tests.
static KAT: LazyLock<Codecs> = LazyLock::new(|| Codecs::new(&kat_ring(), PURPOSE));

/// Same ring, another purpose.
static OTHER_PURPOSE: LazyLock<Codecs> = LazyLock::new(|| Codecs::new(&kat_ring(), "user auth "));

/// Same key id (1) and purpose, another secret.
static OTHER_SECRET: LazyLock<Codecs> = LazyLock::new(|| Codecs::new(&KeyRing::new(KeyId(1), secret(b'K')), PURPOSE));

fn sign<T: Serialize + ?Sized>(data: &T) -> String {
    KAT.signed.sign(data, NOW).unwrap()
}

fn seal<T: Serialize + ?Sized>(data: &T) -> String {
    KAT.sealed.encrypt(data, NOW, &mut OsRandom).unwrap()
}

/// Asserts a refusal: its kind, its rejection, and that `Display` shows the
/// kind only.
#[track_caller]
fn assert_refused<T: Debug>(result: Result<Verified<T>, VerifyError>, kind: VerifyErrorKind, rejection: Rejection) {
    let err = result.expect_err("the token was accepted");
    assert_eq!(err.rejection(), rejection, "rejection");
    assert_eq!(err.kind(), kind, "kind");
    assert_eq!(err.rejection().kind(), kind, "Rejection::kind");
    let shown = err.to_string();
    let expected = match kind {
        VerifyErrorKind::Invalid => INVALID,
        VerifyErrorKind::Expired => EXPIRED,
        VerifyErrorKind::Missing => MISSING,
    };
    assert_eq!(shown, expected);
    assert_eq!(kind.to_string(), expected);
}

#[track_caller]
fn assert_invalid<T: Debug>(result: Result<Verified<T>, VerifyError>, rejection: Rejection) {
    assert_refused(result, VerifyErrorKind::Invalid, rejection);
}

#[track_caller]
fn assert_expired<T: Debug>(result: Result<Verified<T>, VerifyError>) {
    assert_refused(result, VerifyErrorKind::Expired, Rejection::Expired);
}

/// Asserts a refusal of kind `Invalid`, whatever the detailed reason, and
/// returns the reason.
#[track_caller]
fn assert_some_invalid<T: Debug>(result: Result<Verified<T>, VerifyError>, what: &str) -> Rejection {
    match result {
        Ok(v) => panic!("accepted {what}: {v:?}"),
        Err(err) => {
            assert_eq!(err.kind(), VerifyErrorKind::Invalid, "{what}: {err:?}");
            assert_eq!(err.to_string(), INVALID);
            err.rejection()
        }
    }
}

fn ms(millis: u64) -> Timestamp {
    Timestamp::from_unix_millis(millis)
}

/// The four dot-separated parts of a signed token.
fn signed_parts(token: &str) -> (&str, &str, &str, &str) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 4, "{token}");
    (parts[0], parts[1], parts[2], parts[3])
}

/// The three dot-separated parts of an encrypted token.
fn sealed_parts(token: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    (parts[0], parts[1], parts[2])
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// 1. Known-answer vectors
// ---------------------------------------------------------------------------
//
// Both vectors were generated by running this crate once and then
// recomputed independently with python3 (3.11, hashlib/hmac/base64 and
// PyNaCl 1.6.2), which gave the same strings byte for byte:
//
//   import hashlib, hmac, base64, struct
//   from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt as xenc
//   b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip('=')
//   def varint(n):  # postcard's unsigned LEB128
//       out = bytearray()
//       while True:
//           b = n & 0x7f; n >>= 7
//           if n: out.append(b | 0x80)
//           else: out.append(b); return bytes(out)
//   secret, purpose = b'k' * 64, b'user auth'
//   key = hashlib.pbkdf2_hmac('sha256', secret, purpose, 1000, 32)
//   ctx = b'token:' + purpose
//   prefix = struct.pack('>I', len(ctx)) + ctx          # 4-byte BE length, then context
//   # postcard of (1_700_000_000_000u64, Some(86_400u64), User { user_id: 42, name: "alice" })
//   payload = varint(1_700_000_000_000) + b'\x01' + varint(86400) + varint(42) + varint(5) + b'alice'
//   signed_text = 'lg1s.1.' + b64(payload)   # NB: the MAC'd text stops *before* the last '.'
//   tag = hmac.new(key, prefix + signed_text.encode(), hashlib.sha256).digest()
//   signed_text + '.' + b64(tag)                                    # == KAT_SIGNED
//   header, nonce = 'lg1x.1.', bytes(range(24))
//   header + b64(nonce + xenc(payload, prefix + header.encode(), nonce, key))  # == KAT_SEALED
//
// and likewise for the second pair with secret = bytes(range(64)),
// purpose = b'live socket', key id 4294967295, payload
// varint(1_700_000_000_000) + b'\x00' + varint(5) + b'hello' (data "hello",
// MaxAge::Unlimited) and nonce b'\xff' * 24.
//
// Note: `Codec::seal`/`open` MAC the token text up to but NOT including the
// '.' before the tag (`lg1s.<kid>.<payload>`); a script that includes the dot
// gets `...87LY-wZ4udJN4bGfczGmVbFH-Sz77b0sIZ5HD56BHuA` instead. The dot's
// position is fixed by the 43-character tag, so this loses nothing.

/// 64 × `b'k'`, `KeyId(1)`, `"user auth"`, signed at `NOW` with the default
/// maximum age (one day), data `alice()`.
const KAT_SIGNED: &str = "lg1s.1.gNCV_7wxAYCjBSoFYWxpY2U.Fig3ukpzvNRdmNokNaWFS_ePyJ-rOxJ81ACQTtJxj4I";
/// The same, encrypted under the nonce `00 01 02 .. 17`.
const KAT_SEALED: &str = "lg1x.1.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXDhjDN9iQedi15F6IGEytaCaVaVcQMz9tD2Mi8-uefOMd";
/// postcard of `(NOW_MS, Some(86_400), alice())`.
const KAT_PAYLOAD_HEX: &str = "80d095ffbc310180a3052a05616c696365";
/// PBKDF2-HMAC-SHA256(64 × `b'k'`, `"user auth"`, 1000, 32).
const KAT_KEY_HEX: &str = "f1760837e9b24804e177e033436aa8e39a423ccdb7d6af888f98faa1f7962af4";

/// Secret `00 01 .. 3f`, `KeyId(u32::MAX)`, `"live socket"`, data `"hello"`,
/// signed at `NOW` with `MaxAge::Unlimited`.
const KAT2_SIGNED: &str = "lg1s.4294967295.gNCV_7wxAAVoZWxsbw.tTf7ds-jUHJpFpeFHfcOMscmL3J2-b17i-cKZwm1Sps";
/// The same, encrypted under the nonce `ff` × 24.
const KAT2_SEALED: &str = "lg1x.4294967295.________________________________jQOuZ_AfES2aRGRZ7z1SYpRgDP9LObLAEEA4Q1Q";
/// postcard of `(NOW_MS, None::<u64>, "hello")`.
const KAT2_PAYLOAD_HEX: &str = "80d095ffbc31000568656c6c6f";

fn kat2_codecs() -> Codecs {
    let base = SecretKeyBase::new((0..64).collect()).unwrap();
    Codecs::new(&KeyRing::new(KeyId(u32::MAX), base), "live socket")
}

#[test]
fn signed_known_answer_vector() {
    let token = KAT.signed.sign(&alice(), NOW).unwrap();
    assert_eq!(token, KAT_SIGNED);
    // Explicit max age gives the same bytes as the default one day.
    let explicit = KAT.signed.sign_with_max_age(&alice(), NOW, MaxAge::ONE_DAY).unwrap();
    assert_eq!(explicit, KAT_SIGNED);

    let verified: Verified<User> = KAT.signed.verify(KAT_SIGNED, NOW).unwrap();
    assert_eq!(
        verified,
        Verified { data: alice(), key_id: KeyId(1), signed_at: NOW, expires_at: Some(ms(NOW_MS + DAY_MS)) }
    );
    // `Some(&str)` is the same as `&str`.
    let again: Verified<User> = KAT.signed.verify(Some(KAT_SIGNED), NOW).unwrap();
    assert_eq!(again, verified);

    // The payload is readable and is exactly the documented postcard tuple.
    let (version, kid, payload, tag) = signed_parts(KAT_SIGNED);
    assert_eq!((version, kid), ("lg1s", "1"));
    assert_eq!(hex(&unb64(payload)), KAT_PAYLOAD_HEX);
    let decoded: (u64, Option<u64>, User) = postcard::from_bytes(&unb64(payload)).unwrap();
    assert_eq!(decoded, (NOW_MS, Some(86_400), alice()));
    assert_eq!(unb64(tag).len(), 32);

    // And an in-Rust model of the MAC (RustCrypto directly, not the crate)
    // agrees with the python one.
    let key = model_key(&[b'k'; 64], PURPOSE);
    assert_eq!(hex(&key), KAT_KEY_HEX);
    assert_eq!(model_tag(&key, PURPOSE, &KAT_SIGNED[..KAT_SIGNED.len() - 44]), tag);
}

#[test]
fn encrypted_known_answer_vector() {
    let token = KAT.sealed.encrypt(&alice(), NOW, &mut Counter(0)).unwrap();
    assert_eq!(token, KAT_SEALED);
    let explicit = KAT.sealed.encrypt_with_max_age(&alice(), NOW, MaxAge::ONE_DAY, &mut Counter(0)).unwrap();
    assert_eq!(explicit, KAT_SEALED);

    let verified: Verified<User> = KAT.sealed.decrypt(KAT_SEALED, NOW).unwrap();
    assert_eq!(
        verified,
        Verified { data: alice(), key_id: KeyId(1), signed_at: NOW, expires_at: Some(ms(NOW_MS + DAY_MS)) }
    );

    // nonce ‖ ciphertext ‖ tag, and the plaintext does not show.
    let (version, kid, body) = sealed_parts(KAT_SEALED);
    assert_eq!((version, kid), ("lg1x", "1"));
    let body = unb64(body);
    assert_eq!(body.len(), 24 + KAT_PAYLOAD_HEX.len() / 2 + 16);
    assert_eq!(body[..24], (0..24).collect::<Vec<u8>>()[..]);
    assert!(!body.windows(5).any(|w| w == b"alice"));
    assert!(!hex(&body).contains(&KAT_PAYLOAD_HEX[..12]));
}

#[test]
fn second_known_answer_vectors_unlimited_and_largest_key_id() {
    let codecs = kat2_codecs();
    let signed = codecs.signed.sign_with_max_age("hello", NOW, MaxAge::Unlimited).unwrap();
    assert_eq!(signed, KAT2_SIGNED);
    let sealed =
        codecs.sealed.encrypt_with_max_age("hello", NOW, MaxAge::Unlimited, &mut Fixed(vec![0xff; 24])).unwrap();
    assert_eq!(sealed, KAT2_SEALED);
    assert_eq!(hex(&unb64(signed_parts(KAT2_SIGNED).2)), KAT2_PAYLOAD_HEX);

    let expected = Verified { data: String::from("hello"), key_id: KeyId(u32::MAX), signed_at: NOW, expires_at: None };
    // Unlimited: still valid at the end of time.
    for at in [NOW, ms(u64::MAX)] {
        assert_eq!(codecs.signed.verify::<String>(KAT2_SIGNED, at).unwrap(), expected);
        assert_eq!(codecs.sealed.decrypt::<String>(KAT2_SEALED, at).unwrap(), expected);
    }
    // Each vector is bound to its own secret and purpose.
    assert_invalid(KAT.signed.verify::<String>(KAT2_SIGNED, NOW), Rejection::UnknownKey);
    assert_invalid(codecs.signed.verify::<User>(KAT_SIGNED, NOW), Rejection::UnknownKey);
}

#[test]
fn signing_is_deterministic_and_encryption_is_not() {
    assert_eq!(sign(&alice()), sign(&alice()));
    let a = seal(&alice());
    let b = seal(&alice());
    assert_ne!(a, b, "each encryption draws a fresh nonce");
    assert_ne!(sealed_parts(&a).2[..32], sealed_parts(&b).2[..32]);
    for token in [&a, &b] {
        assert_eq!(KAT.sealed.decrypt::<User>(token.as_str(), NOW).unwrap().data, alice());
    }
    // Another nonce from the deterministic source: another token.
    let c = KAT.sealed.encrypt(&alice(), NOW, &mut Counter(1)).unwrap();
    assert_ne!(c, KAT_SEALED);
    assert_eq!(KAT.sealed.decrypt::<User>(c.as_str(), NOW).unwrap().data, alice());
}

/// PBKDF2-HMAC-SHA256, 1000 iterations, 32 bytes, with the RustCrypto crates.
fn model_key(secret: &[u8], purpose: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret, purpose.as_bytes(), 1000, &mut key);
    key
}

/// The signed token's tag as the format defines it, with the RustCrypto crates:
/// HMAC-SHA256(key, be32(len(ctx)) ‖ ctx ‖ text) with ctx = "token:" + purpose
/// and text = `lg1s.<kid>.<payload>` (without the final dot).
fn model_tag(key: &[u8], purpose: &str, text: &str) -> String {
    let context = [b"token:".as_slice(), purpose.as_bytes()].concat();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(&u32::try_from(context.len()).unwrap().to_be_bytes());
    mac.update(&context);
    mac.update(text.as_bytes());
    b64(&mac.finalize().into_bytes())
}

// ---------------------------------------------------------------------------
// 2. Round trips
// ---------------------------------------------------------------------------

/// Signs and encrypts `value` with a few maximum ages and checks that it comes
/// back with the right key id and times.
#[track_caller]
fn round_trip<T>(value: T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    for (max_age, expires_at) in [
        (MaxAge::Seconds(60), Some(ms(NOW_MS + 60_000))),
        (MaxAge::Seconds(1), Some(ms(NOW_MS + 1_000))),
        (MaxAge::FOURTEEN_DAYS, Some(ms(NOW_MS + 14 * DAY_MS))),
        (MaxAge::Unlimited, None),
    ] {
        let expected = Verified { data: &value, key_id: KeyId(1), signed_at: NOW, expires_at };
        let signed = KAT.signed.sign_with_max_age(&value, NOW, max_age).unwrap();
        assert!(signed.starts_with("lg1s.1."), "{signed}");
        let v: Verified<T> = KAT.signed.verify(signed.as_str(), NOW).unwrap();
        assert_eq!(
            Verified { data: &v.data, key_id: v.key_id, signed_at: v.signed_at, expires_at: v.expires_at },
            expected
        );

        let sealed = KAT.sealed.encrypt_with_max_age(&value, NOW, max_age, &mut OsRandom).unwrap();
        assert!(sealed.starts_with("lg1x.1."), "{sealed}");
        let v: Verified<T> = KAT.sealed.decrypt(sealed.as_str(), NOW).unwrap();
        assert_eq!(
            Verified { data: &v.data, key_id: v.key_id, signed_at: v.signed_at, expires_at: v.expires_at },
            expected
        );
    }
    // The default maximum age is one day.
    let v: Verified<T> = KAT.signed.verify(sign(&value).as_str(), NOW).unwrap();
    assert_eq!(v.data, value);
    assert_eq!(v.expires_at, Some(ms(NOW_MS + DAY_MS)));
    let v: Verified<T> = KAT.sealed.decrypt(seal(&value).as_str(), NOW).unwrap();
    assert_eq!(v.data, value);
    assert_eq!(v.expires_at, Some(ms(NOW_MS + DAY_MS)));
}

#[test]
fn round_trips_of_many_types() {
    round_trip(0u64);
    round_trip(42u64);
    round_trip(u64::MAX);
    round_trip(-7i64);
    round_trip(true);
    round_trip('é');
    round_trip(1.5f64);
    round_trip(String::new());
    round_trip(String::from("hello"));
    round_trip(String::from("ünïcødé ✓ \u{0} . lg1s.1.x.y"));
    round_trip(Vec::<u8>::new());
    round_trip((0..=255u8).collect::<Vec<u8>>());
    round_trip(alice());
    round_trip(vec![alice(), User { user_id: 0, name: String::new() }]);
    round_trip(Event::Ping);
    round_trip(Event::Join(7, "lv:phx-1".into()));
    round_trip(Event::Leave { reason: Some("bye".into()), code: 1001 });
    round_trip(Event::Leave { reason: None, code: 0 });
    round_trip(None::<u64>);
    round_trip(Some(5u64));
    round_trip(Some(String::from("x")));
    round_trip(());
    round_trip((1u8, String::from("two"), vec![3u8]));
    round_trip(KeyIdLike(9));
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct KeyIdLike(u32);

#[test]
fn unsized_data_signs_like_its_owned_form() {
    assert_eq!(sign("alice"), sign(&String::from("alice")));
    assert_eq!(sign(&[1u8, 2, 3][..]), sign(&vec![1u8, 2, 3]));
    let v: Verified<Vec<u8>> = KAT.signed.verify(sign(&[1u8, 2, 3][..]).as_str(), NOW).unwrap();
    assert_eq!(v.data, [1, 2, 3]);
}

#[test]
fn configured_default_max_age() {
    let config = TokenConfig::default().default_max_age(MaxAge::Seconds(5));
    let codecs = Codecs::with_config(&kat_ring(), PURPOSE, config);
    let signed = codecs.signed.sign(&1u64, NOW).unwrap();
    let sealed = codecs.sealed.encrypt(&1u64, NOW, &mut OsRandom).unwrap();
    let at = ms(NOW_MS + 5_000);
    assert_eq!(codecs.signed.verify::<u64>(signed.as_str(), at).unwrap().expires_at, Some(at));
    assert_eq!(codecs.sealed.decrypt::<u64>(sealed.as_str(), at).unwrap().expires_at, Some(at));
    assert_expired(codecs.signed.verify::<u64>(signed.as_str(), ms(NOW_MS + 5_001)));
    assert_expired(codecs.sealed.decrypt::<u64>(sealed.as_str(), ms(NOW_MS + 5_001)));
    // The max age travels in the token: the default codec reads it too.
    assert_expired(KAT.signed.verify::<u64>(signed.as_str(), ms(NOW_MS + 5_001)));
    assert_expired(KAT.sealed.decrypt::<u64>(sealed.as_str(), ms(NOW_MS + 5_001)));

    let unlimited = TokenConfig::default().default_max_age(MaxAge::Unlimited);
    let codecs = Codecs::with_config(&kat_ring(), PURPOSE, unlimited);
    let signed = codecs.signed.sign(&1u64, NOW).unwrap();
    let v = KAT.signed.verify::<u64>(signed.as_str(), ms(u64::MAX)).unwrap();
    assert_eq!(v.expires_at, None);
}

#[test]
fn max_age_override() {
    let one_hour = MaxAge::Seconds(3_600);
    let two_hours_later = ms(NOW_MS + 2 * 3_600_000);
    let signed_day = sign(&alice());
    let sealed_day = seal(&alice());
    // Carried one day: valid two hours later...
    assert!(KAT.signed.verify::<User>(signed_day.as_str(), two_hours_later).is_ok());
    assert!(KAT.sealed.decrypt::<User>(sealed_day.as_str(), two_hours_later).is_ok());
    // ...but not with a one-hour override.
    assert_expired(KAT.signed.verify_with_max_age::<User>(signed_day.as_str(), two_hours_later, one_hour));
    assert_expired(KAT.sealed.decrypt_with_max_age::<User>(sealed_day.as_str(), two_hours_later, one_hour));
    // Within the override: valid, and `expires_at` is the override's.
    let v = KAT.signed.verify_with_max_age::<User>(signed_day.as_str(), ms(NOW_MS + 3_600_000), one_hour).unwrap();
    assert_eq!(v.expires_at, Some(ms(NOW_MS + 3_600_000)));
    assert_eq!(v.data, alice());

    // Carried one hour: expired two hours later, unless a longer override.
    let signed_hour = KAT.signed.sign_with_max_age(&alice(), NOW, one_hour).unwrap();
    let sealed_hour = KAT.sealed.encrypt_with_max_age(&alice(), NOW, one_hour, &mut OsRandom).unwrap();
    assert_expired(KAT.signed.verify::<User>(signed_hour.as_str(), two_hours_later));
    assert_expired(KAT.sealed.decrypt::<User>(sealed_hour.as_str(), two_hours_later));
    let longer = MaxAge::Seconds(2 * 86_400);
    let v = KAT.signed.verify_with_max_age::<User>(signed_hour.as_str(), two_hours_later, longer).unwrap();
    assert_eq!(v.expires_at, Some(ms(NOW_MS + 2 * DAY_MS)));
    let v = KAT.sealed.decrypt_with_max_age::<User>(sealed_hour.as_str(), two_hours_later, longer).unwrap();
    assert_eq!(v.expires_at, Some(ms(NOW_MS + 2 * DAY_MS)));
    // An unlimited override never expires and reports no expiry.
    let v = KAT.signed.verify_with_max_age::<User>(signed_hour.as_str(), ms(u64::MAX), MaxAge::Unlimited).unwrap();
    assert_eq!(v.expires_at, None);
    let v = KAT.sealed.decrypt_with_max_age::<User>(sealed_hour.as_str(), ms(u64::MAX), MaxAge::Unlimited).unwrap();
    assert_eq!(v.expires_at, None);
    // An override of zero is always expired, even for an unlimited token.
    let unlimited = KAT.signed.sign_with_max_age(&alice(), NOW, MaxAge::Unlimited).unwrap();
    assert_expired(KAT.signed.verify_with_max_age::<User>(unlimited.as_str(), NOW, MaxAge::Seconds(0)));
    assert_expired(KAT.sealed.decrypt_with_max_age::<User>(sealed_hour.as_str(), NOW, MaxAge::Seconds(0)));
}

// ---------------------------------------------------------------------------
// 3. Refusals
// ---------------------------------------------------------------------------

#[test]
fn missing_and_empty() {
    assert_refused(KAT.signed.verify::<u64>(None, NOW), VerifyErrorKind::Missing, Rejection::Missing);
    assert_refused(KAT.sealed.decrypt::<u64>(None, NOW), VerifyErrorKind::Missing, Rejection::Missing);
    assert_refused(
        KAT.signed.verify_with_max_age::<u64>(None, NOW, MaxAge::Unlimited),
        VerifyErrorKind::Missing,
        Rejection::Missing,
    );
    assert_invalid(KAT.signed.verify::<u64>("", NOW), Rejection::Empty);
    assert_invalid(KAT.sealed.decrypt::<u64>("", NOW), Rejection::Empty);
    assert_invalid(KAT.signed.verify::<u64>(Some(""), NOW), Rejection::Empty);
}

#[test]
fn too_long_with_the_default_limit() {
    // Refused for its length alone, before its shape is looked at.
    let long = "a".repeat(4097);
    assert_invalid(KAT.signed.verify::<u64>(long.as_str(), NOW), Rejection::TooLong);
    assert_invalid(KAT.sealed.decrypt::<u64>(long.as_str(), NOW), Rejection::TooLong);
    let padded = format!("{KAT_SIGNED}.{}", "A".repeat(4096 - KAT_SIGNED.len()));
    assert_eq!(padded.len(), 4097);
    assert_invalid(KAT.signed.verify::<User>(padded.as_str(), NOW), Rejection::TooLong);
    // 4096 bytes is not refused for its length (it is for its tag).
    let at_limit = &padded[..4096];
    assert_invalid(KAT.signed.verify::<User>(at_limit, NOW), Rejection::BadSignature);

    // Data whose token would exceed 4096 bytes cannot be signed.
    assert_eq!(KAT.signed.sign(&vec![0u8; 4000], NOW), Err(SignError::TooLarge));
    assert_eq!(KAT.sealed.encrypt(&vec![0u8; 4000], NOW, &mut OsRandom), Err(SignError::TooLarge));
    // The largest signable data: a token of exactly 4096 bytes.
    let mut fits = None;
    for n in (3000..3100).rev() {
        if let Ok(token) = KAT.signed.sign(&vec![7u8; n], NOW) {
            fits = Some((n, token));
            break;
        }
    }
    let (n, token) = fits.expect("some size fits");
    assert!(token.len() <= 4096 && token.len() > 4090, "{}", token.len());
    assert_eq!(KAT.signed.verify::<Vec<u8>>(token.as_str(), NOW).unwrap().data.len(), n);
    assert!(n < 3099, "the search started above the limit");
    assert_eq!(KAT.signed.sign(&vec![7u8; n + 1], NOW), Err(SignError::TooLarge));
}

#[test]
fn too_long_with_a_configured_limit() {
    let len = KAT_SIGNED.len();
    assert_eq!(len, 74);
    let exact = Codecs::with_config(&kat_ring(), PURPOSE, TokenConfig::default().max_len(len));
    let short = Codecs::with_config(&kat_ring(), PURPOSE, TokenConfig::default().max_len(len - 1));
    // A token of exactly max_len is made and accepted.
    assert_eq!(exact.signed.sign(&alice(), NOW).unwrap(), KAT_SIGNED);
    assert_eq!(exact.signed.verify::<User>(KAT_SIGNED, NOW).unwrap().data, alice());
    // One byte less: the same (authentic) token is refused, and cannot be made.
    assert_invalid(short.signed.verify::<User>(KAT_SIGNED, NOW), Rejection::TooLong);
    assert_eq!(short.signed.sign(&alice(), NOW), Err(SignError::TooLarge));
    assert_eq!(short.signed.sign_with_max_age(&alice(), NOW, MaxAge::ONE_DAY), Err(SignError::TooLarge));
    // Encrypted tokens too.
    assert_eq!(KAT_SEALED.len(), 83);
    assert_invalid(short.sealed.decrypt::<User>(KAT_SEALED, NOW), Rejection::TooLong);
    assert_eq!(short.sealed.encrypt(&alice(), NOW, &mut Counter(0)), Err(SignError::TooLarge));
    let sealed_exact = Codecs::with_config(&kat_ring(), PURPOSE, TokenConfig::default().max_len(83));
    assert_eq!(sealed_exact.sealed.encrypt(&alice(), NOW, &mut Counter(0)).unwrap(), KAT_SEALED);
    assert_eq!(sealed_exact.sealed.decrypt::<User>(KAT_SEALED, NOW).unwrap().data, alice());
    // The limit is checked before anything else: even garbage is TooLong.
    assert_invalid(short.signed.verify::<User>("x".repeat(74).as_str(), NOW), Rejection::TooLong);
    assert_invalid(short.signed.verify::<User>("x".repeat(73).as_str(), NOW), Rejection::Malformed);
    // Length is in bytes, not characters.
    let multibyte = "é".repeat(37); // 74 bytes, 37 chars
    assert_invalid(short.signed.verify::<User>(multibyte.as_str(), NOW), Rejection::TooLong);
}

#[test]
fn wrong_purpose_is_a_bad_signature() {
    let signed = OTHER_PURPOSE.signed.sign(&alice(), NOW).unwrap();
    let sealed = OTHER_PURPOSE.sealed.encrypt(&alice(), NOW, &mut Counter(0)).unwrap();
    assert!(OTHER_PURPOSE.signed.verify::<User>(signed.as_str(), NOW).is_ok());
    assert!(OTHER_PURPOSE.sealed.decrypt::<User>(sealed.as_str(), NOW).is_ok());
    assert_invalid(KAT.signed.verify::<User>(signed.as_str(), NOW), Rejection::BadSignature);
    assert_invalid(KAT.sealed.decrypt::<User>(sealed.as_str(), NOW), Rejection::BadSignature);
    assert_invalid(OTHER_PURPOSE.signed.verify::<User>(KAT_SIGNED, NOW), Rejection::BadSignature);
    assert_invalid(OTHER_PURPOSE.sealed.decrypt::<User>(KAT_SEALED, NOW), Rejection::BadSignature);
    // Same payload, same key id: only the tag differs.
    assert_eq!(signed_parts(&signed).2, signed_parts(KAT_SIGNED).2);
    assert_ne!(signed_parts(&signed).3, signed_parts(KAT_SIGNED).3);
}

#[test]
fn another_secret_is_a_bad_signature() {
    let signed = OTHER_SECRET.signed.sign(&alice(), NOW).unwrap();
    let sealed = OTHER_SECRET.sealed.encrypt(&alice(), NOW, &mut Counter(0)).unwrap();
    assert!(signed.starts_with("lg1s.1.") && sealed.starts_with("lg1x.1."));
    assert_invalid(KAT.signed.verify::<User>(signed.as_str(), NOW), Rejection::BadSignature);
    assert_invalid(KAT.sealed.decrypt::<User>(sealed.as_str(), NOW), Rejection::BadSignature);
    assert_invalid(OTHER_SECRET.signed.verify::<User>(KAT_SIGNED, NOW), Rejection::BadSignature);
    assert_invalid(OTHER_SECRET.sealed.decrypt::<User>(KAT_SEALED, NOW), Rejection::BadSignature);
}

#[test]
fn unknown_key_id() {
    let other = Codecs::new(&KeyRing::new(KeyId(2), secret(b'k')), PURPOSE);
    let signed = other.signed.sign(&alice(), NOW).unwrap();
    let sealed = other.sealed.encrypt(&alice(), NOW, &mut Counter(0)).unwrap();
    assert!(signed.starts_with("lg1s.2.") && sealed.starts_with("lg1x.2."));
    assert_invalid(KAT.signed.verify::<User>(signed.as_str(), NOW), Rejection::UnknownKey);
    assert_invalid(KAT.sealed.decrypt::<User>(sealed.as_str(), NOW), Rejection::UnknownKey);
    assert_invalid(other.signed.verify::<User>(KAT_SIGNED, NOW), Rejection::UnknownKey);
    assert_invalid(other.sealed.decrypt::<User>(KAT_SEALED, NOW), Rejection::UnknownKey);
    // Same secret under another id: moving the token to id 1 breaks the tag,
    // since the key id is authenticated.
    let moved = signed.replacen("lg1s.2.", "lg1s.1.", 1);
    assert_invalid(KAT.signed.verify::<User>(moved.as_str(), NOW), Rejection::BadSignature);
    let moved = sealed.replacen("lg1x.2.", "lg1x.1.", 1);
    assert_invalid(KAT.sealed.decrypt::<User>(moved.as_str(), NOW), Rejection::BadSignature);
    // Hand-edited ids the ring never had.
    for kid in ["0", "7", "10", "4294967295"] {
        let signed = KAT_SIGNED.replacen(".1.", &format!(".{kid}."), 1);
        assert_invalid(KAT.signed.verify::<User>(signed.as_str(), NOW), Rejection::UnknownKey);
        let sealed = KAT_SEALED.replacen(".1.", &format!(".{kid}."), 1);
        assert_invalid(KAT.sealed.decrypt::<User>(sealed.as_str(), NOW), Rejection::UnknownKey);
    }
}

#[test]
fn key_id_zero_works() {
    let zero = Codecs::new(&KeyRing::new(KeyId(0), secret(b'k')), PURPOSE);
    let signed = zero.signed.sign(&alice(), NOW).unwrap();
    let sealed = zero.sealed.encrypt(&alice(), NOW, &mut Counter(0)).unwrap();
    assert!(signed.starts_with("lg1s.0.") && sealed.starts_with("lg1x.0."));
    assert_eq!(zero.signed.verify::<User>(signed.as_str(), NOW).unwrap().key_id, KeyId(0));
    assert_eq!(zero.sealed.decrypt::<User>(sealed.as_str(), NOW).unwrap().key_id, KeyId(0));
}

#[test]
fn key_ids_must_be_canonical_decimal() {
    for kid in
        ["01", "00", "001", "+1", "-1", "", " 1", "1 ", "1a", "0x1", "4294967296", "99999999999", "１", "¹", "1\0"]
    {
        let signed = KAT_SIGNED.replacen(".1.", &format!(".{kid}."), 1);
        assert_invalid(KAT.signed.verify::<User>(signed.as_str(), NOW), Rejection::Malformed);
        let sealed = KAT_SEALED.replacen(".1.", &format!(".{kid}."), 1);
        assert_invalid(KAT.sealed.decrypt::<User>(sealed.as_str(), NOW), Rejection::Malformed);
    }
    // A leading zero on a key id the ring does have.
    let kid0 = Codecs::new(&KeyRing::new(KeyId(0), secret(b'k')), PURPOSE);
    let token = kid0.signed.sign(&1u64, NOW).unwrap();
    let padded = token.replacen("lg1s.0.", "lg1s.00.", 1);
    assert_invalid(kid0.signed.verify::<u64>(padded.as_str(), NOW), Rejection::Malformed);
}

#[test]
fn rotation_and_retirement() {
    let mut ring = KeyRing::new(KeyId(1), secret(1));
    let gen1 = Codecs::new(&ring, PURPOSE);
    let signed1 = gen1.signed.sign(&"one", NOW).unwrap();
    let sealed1 = gen1.sealed.encrypt(&"one", NOW, &mut OsRandom).unwrap();
    assert!(signed1.starts_with("lg1s.1.") && sealed1.starts_with("lg1x.1."));

    ring.rotate(KeyId(2), secret(2)).unwrap();
    assert_eq!(ring.primary_id(), KeyId(2));
    let gen2 = Codecs::new(&ring, PURPOSE);
    let signed2 = gen2.signed.sign(&"two", NOW).unwrap();
    let sealed2 = gen2.sealed.encrypt(&"two", NOW, &mut OsRandom).unwrap();
    assert!(signed2.starts_with("lg1s.2.") && sealed2.starts_with("lg1x.2."));
    // Old tokens still verify, and report the key that verified them.
    let v = gen2.signed.verify::<String>(signed1.as_str(), NOW).unwrap();
    assert_eq!((v.data.as_str(), v.key_id), ("one", KeyId(1)));
    let v = gen2.sealed.decrypt::<String>(sealed1.as_str(), NOW).unwrap();
    assert_eq!((v.data.as_str(), v.key_id), ("one", KeyId(1)));
    let v = gen2.signed.verify::<String>(signed2.as_str(), NOW).unwrap();
    assert_eq!((v.data.as_str(), v.key_id), ("two", KeyId(2)));
    let v = gen2.sealed.decrypt::<String>(sealed2.as_str(), NOW).unwrap();
    assert_eq!((v.data.as_str(), v.key_id), ("two", KeyId(2)));
    // The codec built before the rotation does not know key 2.
    assert_invalid(gen1.signed.verify::<String>(signed2.as_str(), NOW), Rejection::UnknownKey);

    ring.rotate(KeyId(3), secret(3)).unwrap();
    ring.retire(KeyId(1)).unwrap();
    assert!(ring.is_retired(KeyId(1)) && !ring.is_retired(KeyId(2)));
    let gen3 = Codecs::new(&ring, PURPOSE);
    assert_invalid(gen3.signed.verify::<String>(signed1.as_str(), NOW), Rejection::RetiredKey);
    assert_invalid(gen3.sealed.decrypt::<String>(sealed1.as_str(), NOW), Rejection::RetiredKey);
    // Retired is decided from the key id alone: a forged tag says the same.
    let forged = format!("{}{}", &signed1[..signed1.len() - 43], "A".repeat(43));
    assert_invalid(gen3.signed.verify::<String>(forged.as_str(), NOW), Rejection::RetiredKey);
    // The remaining older key still verifies.
    let v = gen3.signed.verify::<String>(signed2.as_str(), NOW).unwrap();
    assert_eq!((v.data.as_str(), v.key_id), ("two", KeyId(2)));
    let v = gen3.sealed.decrypt::<String>(sealed2.as_str(), NOW).unwrap();
    assert_eq!((v.data.as_str(), v.key_id), ("two", KeyId(2)));
    // New tokens use the new primary.
    let signed3 = gen3.signed.sign(&"three", NOW).unwrap();
    let sealed3 = gen3.sealed.encrypt(&"three", NOW, &mut OsRandom).unwrap();
    assert!(signed3.starts_with("lg1s.3.") && sealed3.starts_with("lg1x.3."));
    assert_eq!(gen3.signed.verify::<String>(signed3.as_str(), NOW).unwrap().key_id, KeyId(3));
    assert_eq!(gen3.sealed.decrypt::<String>(sealed3.as_str(), NOW).unwrap().key_id, KeyId(3));
    // A ring that never had key 1 calls it unknown, not retired.
    let fresh = SignedTokens::new(&KeyRing::new(KeyId(3), secret(3)), PURPOSE);
    assert_invalid(fresh.verify::<String>(signed1.as_str(), NOW), Rejection::UnknownKey);
}

#[test]
fn older_keys_added_with_with_older_verify_but_never_sign() {
    let ring = KeyRing::new(KeyId(5), secret(5)).with_older(KeyId(1), secret(b'k')).unwrap();
    let codecs = Codecs::new(&ring, PURPOSE);
    let v = codecs.signed.verify::<User>(KAT_SIGNED, NOW).unwrap();
    assert_eq!((v.data, v.key_id), (alice(), KeyId(1)));
    let v = codecs.sealed.decrypt::<User>(KAT_SEALED, NOW).unwrap();
    assert_eq!((v.data, v.key_id), (alice(), KeyId(1)));
    assert!(codecs.signed.sign(&alice(), NOW).unwrap().starts_with("lg1s.5."));
    assert!(codecs.sealed.encrypt(&alice(), NOW, &mut Counter(0)).unwrap().starts_with("lg1x.5."));
}

#[test]
fn expiry_boundary() {
    let signed = KAT.signed.sign_with_max_age(&1u64, NOW, MaxAge::Seconds(10)).unwrap();
    let sealed = KAT.sealed.encrypt_with_max_age(&1u64, NOW, MaxAge::Seconds(10), &mut OsRandom).unwrap();
    let boundary = ms(NOW_MS + 10_000);
    // Valid at exactly signed_at + max_age...
    let v = KAT.signed.verify::<u64>(signed.as_str(), boundary).unwrap();
    assert_eq!(v.expires_at, Some(boundary));
    let v = KAT.sealed.decrypt::<u64>(sealed.as_str(), boundary).unwrap();
    assert_eq!(v.expires_at, Some(boundary));
    // ...and expired one millisecond later, and any time after.
    for later in [NOW_MS + 10_001, NOW_MS + DAY_MS, u64::MAX] {
        assert_expired(KAT.signed.verify::<u64>(signed.as_str(), ms(later)));
        assert_expired(KAT.sealed.decrypt::<u64>(sealed.as_str(), ms(later)));
    }
    // A max age of zero is always expired, even at the signing instant.
    let zero = KAT.signed.sign_with_max_age(&1u64, NOW, MaxAge::Seconds(0)).unwrap();
    let zero_sealed = KAT.sealed.encrypt_with_max_age(&1u64, NOW, MaxAge::Seconds(0), &mut OsRandom).unwrap();
    for at in [NOW_MS - 1, NOW_MS, NOW_MS + 1] {
        assert_expired(KAT.signed.verify::<u64>(zero.as_str(), ms(at)));
        assert_expired(KAT.sealed.decrypt::<u64>(zero_sealed.as_str(), ms(at)));
    }
    // The default one day, exactly.
    assert!(KAT.signed.verify::<User>(KAT_SIGNED, ms(NOW_MS + DAY_MS)).is_ok());
    assert!(KAT.sealed.decrypt::<User>(KAT_SEALED, ms(NOW_MS + DAY_MS)).is_ok());
    assert_expired(KAT.signed.verify::<User>(KAT_SIGNED, ms(NOW_MS + DAY_MS + 1)));
    assert_expired(KAT.sealed.decrypt::<User>(KAT_SEALED, ms(NOW_MS + DAY_MS + 1)));
    // Huge max ages saturate instead of overflowing.
    let huge = KAT.signed.sign_with_max_age(&1u64, NOW, MaxAge::Seconds(u64::MAX)).unwrap();
    let v = KAT.signed.verify::<u64>(huge.as_str(), ms(u64::MAX)).unwrap();
    assert_eq!(v.expires_at, Some(ms(u64::MAX)));
}

#[test]
fn an_expired_token_is_refused_before_its_data_is_decoded() {
    // Wrong type *and* expired: the age rules come first.
    let token = KAT.signed.sign_with_max_age("not a number", NOW, MaxAge::Seconds(1)).unwrap();
    assert_expired(KAT.signed.verify::<u64>(token.as_str(), ms(NOW_MS + 1_001)));
    assert_invalid(KAT.signed.verify::<u64>(token.as_str(), NOW), Rejection::BadPayload);
}

#[test]
fn future_dated_tokens() {
    let skew = 30_000; // the default
    let at_skew = ms(NOW_MS + skew);
    let beyond = ms(NOW_MS + skew + 1);
    for (signed_at, ok) in [(at_skew, true), (beyond, false), (ms(NOW_MS + 1), true), (ms(u64::MAX), false)] {
        let signed = KAT.signed.sign(&alice(), signed_at).unwrap();
        let sealed = KAT.sealed.encrypt(&alice(), signed_at, &mut OsRandom).unwrap();
        let s = KAT.signed.verify::<User>(signed.as_str(), NOW);
        let e = KAT.sealed.decrypt::<User>(sealed.as_str(), NOW);
        if ok {
            assert_eq!(s.unwrap().signed_at, signed_at);
            assert_eq!(e.unwrap().signed_at, signed_at);
        } else {
            assert_invalid(s, Rejection::FutureDated);
            assert_invalid(e, Rejection::FutureDated);
        }
    }
    // An override does not make a future-dated token acceptable.
    let signed = KAT.signed.sign(&alice(), beyond).unwrap();
    assert_invalid(
        KAT.signed.verify_with_max_age::<User>(signed.as_str(), NOW, MaxAge::Unlimited),
        Rejection::FutureDated,
    );

    // A configured skew of zero: one millisecond ahead is refused.
    let strict = Codecs::with_config(&kat_ring(), PURPOSE, TokenConfig::default().clock_skew_ms(0));
    let ahead = strict.signed.sign(&1u64, ms(NOW_MS + 1)).unwrap();
    assert_invalid(strict.signed.verify::<u64>(ahead.as_str(), NOW), Rejection::FutureDated);
    assert!(strict.signed.verify::<u64>(ahead.as_str(), ms(NOW_MS + 1)).is_ok());
    let ahead = strict.sealed.encrypt(&1u64, ms(NOW_MS + 1), &mut OsRandom).unwrap();
    assert_invalid(strict.sealed.decrypt::<u64>(ahead.as_str(), NOW), Rejection::FutureDated);
    // The default codec (30 s skew) accepts that same token.
    assert!(KAT.sealed.decrypt::<u64>(ahead.as_str(), NOW).is_ok());

    // A configured larger skew: 5 minutes ahead is fine, 5 min + 1 ms is not.
    let lax = Codecs::with_config(&kat_ring(), PURPOSE, TokenConfig::default().clock_skew_ms(300_000));
    let five = KAT.signed.sign(&1u64, ms(NOW_MS + 300_000)).unwrap();
    assert!(lax.signed.verify::<u64>(five.as_str(), NOW).is_ok());
    assert_invalid(KAT.signed.verify::<u64>(five.as_str(), NOW), Rejection::FutureDated);
    let beyond_lax = KAT.signed.sign(&1u64, ms(NOW_MS + 300_001)).unwrap();
    assert_invalid(lax.signed.verify::<u64>(beyond_lax.as_str(), NOW), Rejection::FutureDated);
    // A skew near u64::MAX saturates: nothing is future-dated.
    let any = Codecs::with_config(&kat_ring(), PURPOSE, TokenConfig::default().clock_skew_ms(u64::MAX));
    let far = KAT.signed.sign(&1u64, ms(u64::MAX)).unwrap();
    assert!(any.signed.verify::<u64>(far.as_str(), NOW).is_ok());
}

/// Every prefix of `token` (and every suffix) is refused, with kind Invalid.
#[track_caller]
fn check_truncations(token: &str, verify: impl Fn(&str) -> Result<Verified<User>, VerifyError>) {
    assert!(verify(token).is_ok());
    assert!(token.is_ascii());
    for len in 0..token.len() {
        let prefix = &token[..len];
        let rejection = assert_some_invalid(verify(prefix), prefix);
        if len == 0 {
            assert_eq!(rejection, Rejection::Empty);
        }
        let suffix = &token[token.len() - len..];
        assert_some_invalid(verify(suffix), suffix);
    }
}

#[test]
fn truncated_at_every_length() {
    let long_signed = KAT.signed.sign(&User { user_id: u64::MAX, name: "x".repeat(300) }, NOW).unwrap();
    let long_sealed =
        KAT.sealed.encrypt(&User { user_id: u64::MAX, name: "x".repeat(300) }, NOW, &mut OsRandom).unwrap();
    for token in [KAT_SIGNED, long_signed.as_str()] {
        check_truncations(token, |t| KAT.signed.verify(t, NOW));
    }
    for token in [KAT_SEALED, long_sealed.as_str()] {
        check_truncations(token, |t| KAT.sealed.decrypt(t, NOW));
    }
    // Some prefixes in detail.
    let signed = |t: &str| KAT.signed.verify::<User>(t, NOW);
    let sealed = |t: &str| KAT.sealed.decrypt::<User>(t, NOW);
    assert_invalid(signed("lg1s"), Rejection::Malformed);
    assert_invalid(signed("lg1s."), Rejection::Malformed);
    assert_invalid(signed("lg1s.1"), Rejection::Malformed);
    assert_invalid(signed("lg1s.1."), Rejection::Malformed);
    assert_invalid(signed(&KAT_SIGNED[..30]), Rejection::Malformed); // no tag separator
    assert_invalid(signed(&KAT_SIGNED[..31]), Rejection::BadSignature); // empty tag
    assert_invalid(signed(&KAT_SIGNED[..73]), Rejection::BadSignature); // 42-char tag
    assert_invalid(sealed("lg1x.1."), Rejection::Malformed); // no nonce
    assert_invalid(sealed(&KAT_SEALED[..7 + 32]), Rejection::Malformed); // nonce only
    assert_invalid(sealed(&KAT_SEALED[..7 + 33]), Rejection::BadEncoding); // 33 chars: not base64
    assert_invalid(sealed(&KAT_SEALED[..7 + 52]), Rejection::Malformed); // nonce + 15 bytes
    assert_invalid(sealed(&KAT_SEALED[..7 + 56]), Rejection::BadSignature); // nonce + 18 bytes
    assert_invalid(sealed(&KAT_SEALED[..KAT_SEALED.len() - 3]), Rejection::BadEncoding); // 73 chars
    assert_invalid(sealed(&KAT_SEALED[..KAT_SEALED.len() - 4]), Rejection::BadSignature); // 54 bytes
}

/// Flips every bit of every byte of `token`, skipping the flips that make it
/// invalid UTF-8, and checks each is refused with kind Invalid. Returns how
/// many were tried.
fn check_bit_flips(token: &str, verify: impl Fn(&str) -> Result<Verified<User>, VerifyError>) -> usize {
    assert!(verify(token).is_ok());
    let mut tried = 0;
    for pos in 0..token.len() {
        for bit in 0..8 {
            let mut bytes = token.as_bytes().to_vec();
            bytes[pos] ^= 1 << bit;
            let Ok(flipped) = String::from_utf8(bytes) else {
                continue;
            };
            assert_some_invalid(verify(&flipped), &format!("{flipped:?} (byte {pos}, bit {bit})"));
            tried += 1;
        }
    }
    tried
}

#[test]
fn every_single_bit_flip_is_refused() {
    let unlimited = KAT.signed.sign_with_max_age(&alice(), NOW, MaxAge::Unlimited).unwrap();
    let unlimited_sealed = KAT.sealed.encrypt_with_max_age(&alice(), NOW, MaxAge::Unlimited, &mut OsRandom).unwrap();
    for token in [KAT_SIGNED, unlimited.as_str()] {
        // ASCII text: 7 of the 8 flips of each byte stay UTF-8.
        let tried = check_bit_flips(token, |t| KAT.signed.verify(t, NOW));
        assert_eq!(tried, token.len() * 7);
    }
    for token in [KAT_SEALED, unlimited_sealed.as_str()] {
        let tried = check_bit_flips(token, |t| KAT.sealed.decrypt(t, NOW));
        assert_eq!(tried, token.len() * 7);
    }
}

#[test]
fn signed_and_encrypted_tokens_are_not_interchangeable() {
    // The other mode's header is refused as the wrong kind of token.
    assert_invalid(KAT.sealed.decrypt::<User>(KAT_SIGNED, NOW), Rejection::WrongKind);
    assert_invalid(KAT.signed.verify::<User>(KAT_SEALED, NOW), Rejection::WrongKind);
    // With the header swapped, the body has the wrong shape or tag.
    let relabelled = KAT_SIGNED.replacen("lg1s", "lg1x", 1);
    assert_invalid(KAT.sealed.decrypt::<User>(relabelled.as_str(), NOW), Rejection::BadEncoding);
    let relabelled = KAT_SEALED.replacen("lg1x", "lg1s", 1);
    assert_invalid(KAT.signed.verify::<User>(relabelled.as_str(), NOW), Rejection::Malformed);
    // A signed token's payload and tag, joined, as an encrypted body.
    let (_, _, payload, tag) = signed_parts(KAT_SIGNED);
    let joined = b64(&[unb64(payload), unb64(tag)].concat());
    let as_sealed = format!("lg1x.1.{joined}");
    assert_invalid(KAT.sealed.decrypt::<User>(as_sealed.as_str(), NOW), Rejection::BadSignature);
}

#[test]
fn other_versions_and_headers() {
    let signed = |t: &str| KAT.signed.verify::<User>(t, NOW);
    let sealed = |t: &str| KAT.sealed.decrypt::<User>(t, NOW);
    for header in ["lg2s", "lg0s", "lg10s", "lg01s", "lg2x", "lg99x"] {
        let token = KAT_SIGNED.replacen("lg1s", header, 1);
        assert_invalid(signed(&token), Rejection::UnsupportedVersion);
        let token = KAT_SEALED.replacen("lg1x", header, 1);
        assert_invalid(sealed(&token), Rejection::UnsupportedVersion);
    }
    for header in ["", "lg", "lgs", "lg1", "LG1S", "lg1S", "lg1q", "xlg1s", "lg1s ", " lg1s", "SFMyNTY", "lg-1s"] {
        let token = KAT_SIGNED.replacen("lg1s", header, 1);
        assert_invalid(signed(&token), Rejection::Malformed);
        let token = KAT_SEALED.replacen("lg1x", header, 1);
        assert_invalid(sealed(&token), Rejection::Malformed);
    }
    // No dot at all.
    assert_invalid(signed(&KAT_SIGNED.replace('.', "")), Rejection::Malformed);
    assert_invalid(sealed(&KAT_SEALED.replace('.', "")), Rejection::Malformed);
    // Other separators.
    assert_invalid(signed(&KAT_SIGNED.replace('.', ":")), Rejection::Malformed);
    assert_invalid(sealed(&KAT_SEALED.replace('.', "~")), Rejection::Malformed);
}

#[test]
fn bad_base64_and_wrong_tag_lengths() {
    let signed = |t: &str| KAT.signed.verify::<User>(t, NOW);
    let sealed = |t: &str| KAT.sealed.decrypt::<User>(t, NOW);
    let (_, _, payload, tag) = signed_parts(KAT_SIGNED);
    let head = &KAT_SIGNED[..KAT_SIGNED.len() - 43]; // `lg1s.1.<payload>.`
    assert!(head.ends_with('.'));
    for bad_tag in [
        String::new(),
        "!!!".into(),
        "!".repeat(43),
        "A".repeat(42),
        "A".repeat(44),
        tag[..42].into(),
        format!("{tag}A"),
        format!("{tag}="),
        format!("A{tag}"),
        // Standard alphabet instead of URL-safe.
        tag.replace('-', "+").replace('_', "/"),
        // Same 32 bytes, but with non-zero trailing bits in the last char.
        format!("{}J", &tag[..42]),
        // 43 chars of valid base64 decode to 32 bytes but are not the tag.
        "A".repeat(43),
        // A tag with a non-ASCII character of the right byte length.
        format!("{}é", &tag[..41]),
    ] {
        assert_ne!(bad_tag, tag);
        let token = format!("{head}{bad_tag}");
        assert_invalid(signed(&token), Rejection::BadSignature);
    }
    assert_ne!(tag.replace('-', "+").replace('_', "/"), tag, "the KAT tag has - and _");
    assert_eq!(&tag[42..], "I", "trailing bits of 'I' are zero, of 'J' are not");

    // Base64-invalid payloads behind the genuine tag: BadSignature (the MAC is
    // over the text, and it is checked first).
    for bad_payload in ["!!!", "", "A", "gNCV_7wxAYCjBSoFYWxpY2U=", "gNCV/7wxAYCjBSoFYWxpY2U"] {
        assert_ne!(bad_payload, payload);
        let token = format!("lg1s.1.{bad_payload}.{tag}");
        assert_invalid(signed(&token), Rejection::BadSignature);
    }

    // Encrypted bodies.
    let (_, _, body) = sealed_parts(KAT_SEALED);
    assert!(body.contains('-'));
    for bad_body in [
        "!!!".to_string(),
        format!("{body}="),
        format!("{body}=="),
        body.replace('-', "+"),
        format!("{}A", body), // 77 chars: length ≡ 1 (mod 4), never base64
        format!("{body}.x"),
        format!("{} ", &body[..body.len() - 1]),
    ] {
        let token = format!("lg1x.1.{bad_body}");
        assert_invalid(sealed(&token), Rejection::BadEncoding);
    }
    // Well-encoded bodies too short to hold a nonce and a tag.
    for len in [0, 1, 23, 24, 39] {
        let token = format!("lg1x.1.{}", b64(&vec![0x41; len]));
        assert_invalid(sealed(&token), Rejection::Malformed);
    }
    // Long enough, but not authentic.
    for len in [40, 41, 64, 200] {
        let token = format!("lg1x.1.{}", b64(&vec![0x41; len]));
        assert_invalid(sealed(&token), Rejection::BadSignature);
    }
}

#[test]
fn the_mac_is_checked_before_the_payload_is_decoded() {
    let signed = |t: &str| KAT.signed.verify::<User>(t, NOW);
    let (_, _, payload, tag) = signed_parts(KAT_SIGNED);
    // Garbage postcard, well-formed base64: BadSignature, not BadPayload.
    let mut rng = Counter(0x80);
    for len in [1, 5, 17, 32, 100] {
        let mut garbage = vec![0u8; len];
        rng.fill(&mut garbage).unwrap();
        let token = format!("lg1s.1.{}.{tag}", b64(&garbage));
        assert_invalid(signed(&token), Rejection::BadSignature);
    }
    let all_ff = format!("lg1s.1.{}.{tag}", b64(&[0xff; 20]));
    assert_invalid(signed(&all_ff), Rejection::BadSignature);
    // Not base64 at all: BadSignature, not BadEncoding.
    for text in ["!!!", "%%%%", "....", "é", "\0"] {
        let token = format!("lg1s.1.{text}.{tag}");
        assert_invalid(signed(&token), Rejection::BadSignature);
    }
    // A payload that would decode perfectly (and is expired / future-dated /
    // of the wrong type), under the wrong tag: still BadSignature.
    let other = KAT.signed.sign_with_max_age(&alice(), ms(1), MaxAge::Seconds(1)).unwrap();
    let token = format!("lg1s.1.{}.{tag}", signed_parts(&other).2);
    assert_invalid(signed(&token), Rejection::BadSignature);
    let future = KAT.signed.sign(&alice(), ms(u64::MAX)).unwrap();
    let token = format!("lg1s.1.{}.{tag}", signed_parts(&future).2);
    assert_invalid(signed(&token), Rejection::BadSignature);
    let token = format!("lg1s.1.{payload}.{}", signed_parts(&other).3);
    assert_invalid(signed(&token), Rejection::BadSignature);
    // And with the right tag, the same garbage payloads are let through to
    // the decoder: made by a key holder (the codec itself), an expired one is
    // Expired, i.e. refusals above really came from the MAC.
    assert_expired(signed(&other));
    assert_invalid(signed(&future), Rejection::FutureDated);

    // Encrypted: garbage ciphertext under the genuine header is BadSignature.
    let (_, _, body) = sealed_parts(KAT_SEALED);
    let mut bytes = unb64(body);
    let n = bytes.len();
    bytes[24..n - 16].fill(0xff);
    let token = format!("lg1x.1.{}", b64(&bytes));
    assert_invalid(KAT.sealed.decrypt::<User>(token.as_str(), NOW), Rejection::BadSignature);
}

#[test]
fn type_mismatch_is_bad_payload() {
    let string = sign("hello");
    let string_sealed = seal("hello");
    assert_invalid(KAT.signed.verify::<u64>(string.as_str(), NOW), Rejection::BadPayload);
    assert_invalid(KAT.signed.verify::<User>(string.as_str(), NOW), Rejection::BadPayload);
    assert_invalid(KAT.signed.verify::<bool>(string.as_str(), NOW), Rejection::BadPayload);
    assert_invalid(KAT.signed.verify::<()>(string.as_str(), NOW), Rejection::BadPayload);
    assert_invalid(KAT.sealed.decrypt::<u64>(string_sealed.as_str(), NOW), Rejection::BadPayload);
    assert_invalid(KAT.sealed.decrypt::<User>(string_sealed.as_str(), NOW), Rejection::BadPayload);
    // A u64 whose value is far larger than what follows, read as a String.
    let number = sign(&1_000u64);
    assert_invalid(KAT.signed.verify::<String>(number.as_str(), NOW), Rejection::BadPayload);
    // Not a bool, not a char, not a variant of `Event`.
    assert_invalid(KAT.signed.verify::<bool>(sign(&2u8).as_str(), NOW), Rejection::BadPayload);
    assert_invalid(KAT.signed.verify::<Event>(sign(&9u8).as_str(), NOW), Rejection::BadPayload);
    assert_invalid(KAT.signed.verify::<String>(sign(&vec![0xffu8]).as_str(), NOW), Rejection::BadPayload);
    assert_invalid(KAT.signed.verify::<u8>(sign(&300u64).as_str(), NOW), Rejection::BadPayload);
    // Nothing at all where data was expected.
    assert_invalid(KAT.signed.verify::<u64>(sign(&()).as_str(), NOW), Rejection::BadPayload);
}

#[test]
fn trailing_bytes_after_the_data_are_refused() {
    let pair = sign(&(7u64, 9u64));
    assert_eq!(KAT.signed.verify::<(u64, u64)>(pair.as_str(), NOW).unwrap().data, (7, 9));
    assert_invalid(KAT.signed.verify::<u64>(pair.as_str(), NOW), Rejection::BadPayload);
    let pair = seal(&(7u64, 9u64));
    assert_invalid(KAT.sealed.decrypt::<u64>(pair.as_str(), NOW), Rejection::BadPayload);
    let user_and_more = sign(&(alice(), 0u8));
    assert_invalid(KAT.signed.verify::<User>(user_and_more.as_str(), NOW), Rejection::BadPayload);
    assert_invalid(KAT.signed.verify::<()>(sign(&0u8).as_str(), NOW), Rejection::BadPayload);
}

#[test]
fn sign_errors() {
    assert_eq!(KAT.signed.sign(&Unserializable, NOW), Err(SignError::Serialize));
    assert_eq!(KAT.sealed.encrypt(&Unserializable, NOW, &mut OsRandom), Err(SignError::Serialize));
    assert_eq!(KAT.sealed.encrypt(&alice(), NOW, &mut Failing), Err(SignError::Random));
    // 23 bytes are not a nonce.
    assert_eq!(KAT.sealed.encrypt(&alice(), NOW, &mut Fixed(vec![0; 23])), Err(SignError::Random));
    assert_eq!(KAT.sealed.encrypt_with_max_age(&alice(), NOW, MaxAge::Unlimited, &mut Failing), Err(SignError::Random));
    // The RNG is used through `&mut R` too.
    let mut rng = Counter(0);
    let mut by_ref: &mut Counter = &mut rng;
    assert_eq!(KAT.sealed.encrypt(&alice(), NOW, &mut by_ref).unwrap(), KAT_SEALED);
    for err in [SignError::Serialize, SignError::TooLarge, SignError::Random, SignError::NoPrimaryKey] {
        assert!(!err.to_string().is_empty());
    }
    assert!(SignError::TooLarge.to_string().contains("maximum length"));
}

#[test]
fn garbage_strings_are_refused() {
    let mut cases: Vec<String> = [
        " ",
        ".",
        "..",
        "...",
        "....",
        "lg1s",
        "lg1x",
        "lg1s...",
        "lg1x...",
        "lg1s.1...",
        "lg1x.1..",
        "\0",
        "é",
        "lg1s.1.\u{0}.\u{0}",
        "lg1s.٣.AA.AA",
        "null",
        "{}",
        "[]",
        "eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo",
        "SFMyNTY.g2gDYQFuBgC-w5vZiwFiAAFRgA.Hd8ypv8YGDSjhEDTXT-qplm4hRJm9CbGzBBnZ0K3Zu8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // A deterministic stream of strings over an alphabet rich in separators.
    let alphabet: Vec<char> = "lgsx1209.AZaz-_=+/ é\0\n".chars().collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let len = (next() % 120) as usize;
        let mut s: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
        if next() % 2 == 0 {
            s = format!("lg1{}.1.{s}", if next() % 2 == 0 { 's' } else { 'x' });
        }
        cases.push(s);
    }
    for case in &cases {
        if case.is_empty() {
            continue;
        }
        assert_some_invalid(KAT.signed.verify::<User>(case.as_str(), NOW), case);
        assert_some_invalid(KAT.sealed.decrypt::<User>(case.as_str(), NOW), case);
        assert_some_invalid(KAT.signed.verify::<()>(case.as_str(), NOW), case);
    }
}

// ---------------------------------------------------------------------------
// 5. Display and Debug
// ---------------------------------------------------------------------------

#[test]
fn display_shows_only_the_kind() {
    let future = KAT.signed.sign(&alice(), ms(u64::MAX)).unwrap();
    let retired_ring = {
        let mut ring = kat_ring();
        ring.rotate(KeyId(2), secret(2)).unwrap();
        ring.retire(KeyId(1)).unwrap();
        ring
    };
    let retired = SignedTokens::new(&retired_ring, PURPOSE);
    let errors: Vec<(VerifyError, Rejection)> = vec![
        (KAT.signed.verify::<User>(None, NOW).unwrap_err(), Rejection::Missing),
        (KAT.signed.verify::<User>("", NOW).unwrap_err(), Rejection::Empty),
        (KAT.signed.verify::<User>("a".repeat(5000).as_str(), NOW).unwrap_err(), Rejection::TooLong),
        (KAT.signed.verify::<User>("x", NOW).unwrap_err(), Rejection::Malformed),
        (KAT.signed.verify::<User>("lg2s.1.a.b", NOW).unwrap_err(), Rejection::UnsupportedVersion),
        (KAT.signed.verify::<User>(KAT_SEALED, NOW).unwrap_err(), Rejection::WrongKind),
        (KAT.signed.verify::<User>("lg1s.9.a.b", NOW).unwrap_err(), Rejection::UnknownKey),
        (retired.verify::<User>(KAT_SIGNED, NOW).unwrap_err(), Rejection::RetiredKey),
        (KAT.signed.verify::<User>("lg1s.1.a.b", NOW).unwrap_err(), Rejection::BadSignature),
        (KAT.sealed.decrypt::<User>("lg1x.1.!", NOW).unwrap_err(), Rejection::BadEncoding),
        (KAT.signed.verify::<u64>(KAT_SIGNED, NOW).unwrap_err(), Rejection::BadPayload),
        (KAT.signed.verify::<User>(future.as_str(), NOW).unwrap_err(), Rejection::FutureDated),
        (KAT.signed.verify::<User>(KAT_SIGNED, ms(u64::MAX)).unwrap_err(), Rejection::Expired),
    ];
    for (err, rejection) in &errors {
        assert_eq!(err.rejection(), *rejection);
        let shown = err.to_string();
        let expected = match rejection {
            Rejection::Missing => MISSING,
            Rejection::Expired => EXPIRED,
            _ => INVALID,
        };
        assert_eq!(shown, expected, "{rejection:?}");
        // The detail never reaches Display.
        let detail = rejection.to_string();
        assert_ne!(detail, shown);
        assert!(!shown.contains(&detail), "{shown:?} shows {detail:?}");
        assert!(!shown.contains(&format!("{rejection:?}")));
        // Through `dyn Error` as well.
        let dynamic: &dyn std::error::Error = err;
        assert_eq!(dynamic.to_string(), expected);
        assert!(dynamic.source().is_none());
    }
    // Every rejection reason is distinct in logs.
    let mut details: Vec<String> = errors.iter().map(|(_, r)| r.to_string()).collect();
    details.sort();
    details.dedup();
    assert_eq!(details.len(), errors.len());
}

#[test]
fn debug_never_shows_secrets() {
    // 0x5A = 90 = 'Z'.
    let ring = KeyRing::new(KeyId(1), SecretKeyBase::new(vec![0x5A; 64]).unwrap())
        .with_older(KeyId(0), SecretKeyBase::new(vec![0x5A; 80]).unwrap())
        .unwrap();
    let signed = SignedTokens::new(&ring, PURPOSE);
    let sealed = EncryptedTokens::with_config(&ring, PURPOSE, TokenConfig::default().max_len(1000));
    let key = model_key(&[0x5A; 64], PURPOSE);
    let key_decimal = format!("{:?}", &key[..4]); // e.g. "[12, 34, 56, 78]"
    let key_decimal = key_decimal.trim_matches(|c| c == '[' || c == ']');
    let key_hex = hex(&key[..4]);
    let texts = [
        format!("{ring:?}"),
        format!("{ring:#?}"),
        format!("{signed:?}"),
        format!("{signed:#?}"),
        format!("{sealed:?}"),
        format!("{sealed:#?}"),
        format!("{:?}", SecretKeyBase::new(vec![0x5A; 64]).unwrap()),
    ];
    for text in &texts {
        for needle in ["5a", "5A", "90, 90", "90,\n", "ZZZZ", "WlpaWl", key_decimal, &key_hex] {
            assert!(!text.contains(needle), "{needle:?} in {text}");
        }
    }
    // The non-secret parts are still there, so the check above looked at
    // real output.
    assert!(texts[0].contains("KeyId(1)") && texts[0].contains("KeyId(0)"));
    assert!(texts[4].contains("1000"));
}

// ---------------------------------------------------------------------------
// 6. Properties
// ---------------------------------------------------------------------------

type Data = (u64, String, Vec<u8>);

/// The KAT key, derived once for the model checks.
static KAT_KEY: LazyLock<[u8; 32]> = LazyLock::new(|| model_key(&[b'k'; 64], PURPOSE));

fn token_shaped() -> impl Strategy<Value = String> {
    "lg[0-9]{0,2}[sx]?\\.(0|[1-9][0-9]{0,3}|0[0-9])?\\.[A-Za-z0-9_=+/-]{0,100}(\\.[A-Za-z0-9_-]{0,50})?"
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn prop_signed_round_trip_and_format(data: Data, now: u64, max_age in proptest::option::of(any::<u64>())) {
        let now = ms(now);
        let max_age = max_age.map_or(MaxAge::Unlimited, MaxAge::Seconds);
        let token = KAT.signed.sign_with_max_age(&data, now, max_age).unwrap();
        let v = KAT.signed.verify_with_max_age::<Data>(token.as_str(), now, MaxAge::Unlimited).unwrap();
        prop_assert_eq!(&v.data, &data);
        prop_assert_eq!(v.key_id, KeyId(1));
        prop_assert_eq!(v.signed_at, now);
        prop_assert_eq!(v.expires_at, None);
        // The carried max age: valid at signing time unless it is zero.
        let v = KAT.signed.verify::<Data>(token.as_str(), now);
        match max_age {
            MaxAge::Seconds(0) => {
                prop_assert_eq!(v.unwrap_err().rejection(), Rejection::Expired);
            }
            _ => {
                prop_assert_eq!(v.unwrap().expires_at, max_age.expires_at(now));
            }
        }
        // Format: the documented payload and an independently computed tag.
        let (version, kid, payload, tag) = signed_parts(&token);
        prop_assert_eq!((version, kid), ("lg1s", "1"));
        let decoded: (u64, Option<u64>, Data) = postcard::from_bytes(&unb64(payload)).unwrap();
        prop_assert_eq!(decoded, (now.as_unix_millis(), max_age_secs(max_age), data));
        prop_assert_eq!(model_tag(&*KAT_KEY, PURPOSE, &token[..token.len() - 44]), tag);
    }

    #[test]
    fn prop_encrypted_round_trip(data: Data, now: u64, nonce: [u8; 24]) {
        let now = ms(now);
        let token = KAT.sealed.encrypt(&data, now, &mut Fixed(nonce.to_vec())).unwrap();
        let v = KAT.sealed.decrypt::<Data>(token.as_str(), now).unwrap();
        prop_assert_eq!(&v.data, &data);
        prop_assert_eq!(v.key_id, KeyId(1));
        prop_assert_eq!(v.signed_at, now);
        prop_assert_eq!(v.expires_at, MaxAge::ONE_DAY.expires_at(now));
        let (version, kid, body) = sealed_parts(&token);
        prop_assert_eq!((version, kid), ("lg1x", "1"));
        let body = unb64(body);
        prop_assert_eq!(&body[..24], &nonce[..]);
        let payload = postcard::to_allocvec(&(now.as_unix_millis(), Some(86_400u64), &data)).unwrap();
        prop_assert_eq!(body.len(), 24 + payload.len() + 16);
    }

    #[test]
    fn prop_valid_exactly_until_max_age(secs in 1u64..1_000_000, offset in 0u64..2_000_000_000) {
        let token = KAT.signed.sign_with_max_age(&1u64, NOW, MaxAge::Seconds(secs)).unwrap();
        let result = KAT.signed.verify::<u64>(token.as_str(), ms(NOW_MS + offset));
        if offset <= secs * 1000 {
            prop_assert_eq!(result.unwrap().data, 1);
        } else {
            let err = result.unwrap_err();
            prop_assert_eq!(err.rejection(), Rejection::Expired);
            prop_assert_eq!(err.kind(), VerifyErrorKind::Expired);
        }
    }

    #[test]
    fn prop_a_bit_flip_is_refused(data: Data, index: prop::sample::Index, bit in 0u8..8) {
        let signed = KAT.signed.sign(&data, NOW).unwrap();
        let sealed = KAT.sealed.encrypt(&data, NOW, &mut OsRandom).unwrap();
        for (token, is_signed) in [(signed, true), (sealed, false)] {
            let mut bytes = token.into_bytes();
            let pos = index.index(bytes.len());
            bytes[pos] ^= 1 << bit;
            // The API takes &str: flips that are not UTF-8 cannot be presented.
            let Ok(flipped) = String::from_utf8(bytes) else { continue };
            let result = if is_signed {
                KAT.signed.verify::<Data>(flipped.as_str(), NOW)
            } else {
                KAT.sealed.decrypt::<Data>(flipped.as_str(), NOW)
            };
            let err = result.unwrap_err();
            prop_assert_eq!(err.kind(), VerifyErrorKind::Invalid);
        }
    }

    #[test]
    fn prop_arbitrary_strings_are_refused(s: String) {
        prop_assume!(!s.is_empty());
        for err in [
            KAT.signed.verify::<Data>(s.as_str(), NOW).unwrap_err(),
            KAT.sealed.decrypt::<Data>(s.as_str(), NOW).unwrap_err(),
            KAT.signed.verify::<()>(s.as_str(), NOW).unwrap_err(),
        ] {
            prop_assert_eq!(err.kind(), VerifyErrorKind::Invalid);
        }
    }

    #[test]
    fn prop_token_shaped_strings_are_refused(s in token_shaped()) {
        for err in [
            KAT.signed.verify::<Data>(s.as_str(), NOW).unwrap_err(),
            KAT.sealed.decrypt::<Data>(s.as_str(), NOW).unwrap_err(),
            KAT.signed.verify_with_max_age::<()>(s.as_str(), NOW, MaxAge::Unlimited).unwrap_err(),
        ] {
            prop_assert_eq!(err.kind(), VerifyErrorKind::Invalid);
            prop_assert_eq!(err.to_string(), INVALID);
        }
    }

    #[test]
    fn prop_payload_replaced_under_the_genuine_tag_is_a_bad_signature(garbage: Vec<u8>) {
        let (_, _, payload, tag) = signed_parts(KAT_SIGNED);
        let replaced = b64(&garbage);
        prop_assume!(replaced != payload);
        let token = format!("lg1s.1.{replaced}.{tag}");
        let err = KAT.signed.verify::<User>(token.as_str(), NOW).unwrap_err();
        prop_assert_eq!(err.rejection(), Rejection::BadSignature);
    }
}

fn max_age_secs(max_age: MaxAge) -> Option<u64> {
    match max_age {
        MaxAge::Seconds(secs) => Some(secs),
        MaxAge::Unlimited => None,
    }
}
