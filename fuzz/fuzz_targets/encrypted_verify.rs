//! `EncryptedTokens::decrypt` on arbitrary text, and on authentic ciphertexts
//! of arbitrary payload bytes (deterministic nonces), tampered tokens,
//! arbitrary times and every kind of key id.
#![no_main]

mod common;

use std::sync::LazyLock;

use common::*;
use libfuzzer_sys::fuzz_target;
use liveguard::keys::KeyId;
use liveguard::socket_id::LiveSocketId;
use liveguard::token::{EncryptedTokens, Rejection, SignError, SignedTokens, TokenConfig, VerifyErrorKind};
use liveguard::{MaxAge, Timestamp};

const PURPOSE: &str = "user auth";

struct Fixture {
    /// The codec under test: default configuration (4096-byte limit).
    tokens: EncryptedTokens,
    /// Same ring and purpose, no practical length limit: encrypts every input.
    big: EncryptedTokens,
    /// Same ring, another purpose.
    other_purpose: EncryptedTokens,
    /// Signed tokens of the same ring and purpose.
    signed: SignedTokens,
    /// Same purpose, encrypting with the main ring's older key 1.
    older_key: EncryptedTokens,
    /// Same purpose, encrypting with the main ring's retired key 2.
    retired_key: EncryptedTokens,
    /// Same purpose, encrypting with a key id the main ring never had.
    unknown_key: EncryptedTokens,
}

// Built once: every construction runs PBKDF2.
static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let ring = main_ring();
    let fixture = Fixture {
        tokens: EncryptedTokens::new(&ring, PURPOSE),
        big: EncryptedTokens::with_config(&ring, PURPOSE, TokenConfig::default().max_len(1 << 20)),
        other_purpose: EncryptedTokens::new(&ring, "other purpose"),
        signed: SignedTokens::new(&ring, PURPOSE),
        older_key: EncryptedTokens::new(&older_key_ring(), PURPOSE),
        retired_key: EncryptedTokens::new(&retired_key_ring(), PURPOSE),
        unknown_key: EncryptedTokens::new(&unknown_key_ring(), PURPOSE),
    };
    let token = fixture.big.encrypt(&RawBytes(b"\x03abc"), NOW, &mut FixedRng(0)).expect("encrypt");
    assert_eq!(fixture.tokens.decrypt::<String>(token.as_str(), NOW).expect("decrypt").data, "abc");
    fixture
});

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    if let Ok(text) = std::str::from_utf8(data) {
        arbitrary_text(f, text);
    }
    let mut input = Input::new(data);
    let control = input.bytes::<32>();
    let payload = input.rest();
    let mut rng = FixedRng(u64::from_le_bytes(control[24..32].try_into().expect("8 bytes")));
    behind_the_tag(f, payload, &mut rng);
    tampering(f, &control, payload, &mut rng);
    times(f, &control, &mut rng);
    key_ids(f, payload, &mut rng);
});

/// The input itself as a token: nothing panics, every refusal is well formed,
/// and anything accepted came from a live key of this purpose.
fn arbitrary_text(f: &Fixture, text: &str) {
    let claims = f.tokens.decrypt::<Claims>(text, NOW);
    let string = f.tokens.decrypt::<String>(text, NOW);
    let bytes = f.tokens.decrypt::<Vec<u8>>(text, NOW);
    let unit = f.tokens.decrypt::<()>(text, NOW);
    let unlimited = f.tokens.decrypt_with_max_age::<Claims>(text, NOW, MaxAge::Unlimited);
    let _ = f.big.decrypt::<LiveSocketId>(text, NOW);
    let _ = f.other_purpose.decrypt::<Vec<u8>>(text, NOW);

    for err in [claims.as_ref().err(), string.as_ref().err(), bytes.as_ref().err(), unit.as_ref().err()]
        .into_iter()
        .chain([unlimited.as_ref().err()])
        .flatten()
    {
        check_error_of_present_token(err);
        if text.is_empty() {
            assert_eq!(err.rejection(), Rejection::Empty);
        }
        if text.len() > 4096 {
            assert_eq!(err.rejection(), Rejection::TooLong);
        }
    }
    if let Err(err) = &unit {
        if err.rejection() != Rejection::BadPayload {
            assert_eq!(bytes.as_ref().err().map(|e| e.rejection()), Some(err.rejection()));
            assert_eq!(string.as_ref().err().map(|e| e.rejection()), Some(err.rejection()));
        }
    }
    if let Ok(v) = &bytes {
        assert!(v.key_id == KeyId(3) || v.key_id == KeyId(1), "accepted under {:?}", v.key_id);
        assert!(f.other_purpose.decrypt::<Vec<u8>>(text, NOW).is_err(), "token valid for two purposes");
    }
    if !text.starts_with("lg1s.") {
        let err = f.signed.verify::<Vec<u8>>(text, NOW).expect_err("not a signed token");
        check_error_of_present_token(&err);
    }
}

/// Arbitrary bytes as the plaintext data of an authentic ciphertext: only
/// the payload decoder can refuse, and what it accepts survives a round trip.
fn behind_the_tag(f: &Fixture, payload: &[u8], rng: &mut FixedRng) {
    let token = f.big.encrypt(&RawBytes(payload), NOW, rng).expect("encrypting raw bytes cannot fail");
    let expires = Some(NOW.saturating_add_millis(86_400_000));

    match f.big.decrypt::<Claims>(token.as_str(), NOW) {
        Ok(v) => {
            assert_eq!((v.key_id, v.signed_at, v.expires_at), (KeyId(3), NOW, expires));
            let again = f.big.encrypt(&v.data, NOW, rng).expect("encrypt decoded claims");
            assert_eq!(f.big.decrypt::<Claims>(again.as_str(), NOW).expect("round trip").data, v.data);
        }
        Err(err) => assert_eq!(err.rejection(), Rejection::BadPayload),
    }
    match f.big.decrypt::<String>(token.as_str(), NOW) {
        Ok(v) => {
            let again = f.big.encrypt(&v.data, NOW, rng).expect("encrypt decoded string");
            assert_eq!(f.big.decrypt::<String>(again.as_str(), NOW).expect("round trip").data, v.data);
        }
        Err(err) => assert_eq!(err.rejection(), Rejection::BadPayload),
    }
    match f.big.decrypt::<Vec<u8>>(token.as_str(), NOW) {
        Ok(v) => assert!(v.data.len() < payload.len()),
        Err(err) => assert_eq!(err.rejection(), Rejection::BadPayload),
    }
    match f.big.decrypt::<LiveSocketId>(token.as_str(), NOW) {
        Ok(v) => assert_eq!(LiveSocketId::new(v.data.as_str()), Ok(v.data.clone())),
        Err(err) => assert_eq!(err.rejection(), Rejection::BadPayload),
    }
    // The shape of a session cookie's payload.
    match f.big.decrypt::<std::collections::BTreeMap<String, Vec<u8>>>(token.as_str(), NOW) {
        Ok(_) => {}
        Err(err) => assert_eq!(err.rejection(), Rejection::BadPayload),
    }
    assert_eq!(f.big.decrypt::<()>(token.as_str(), NOW).is_ok(), payload.is_empty());
}

/// A valid token with one byte changed, or cut short, never decrypts; fresh
/// nonces give different tokens for the same data.
fn tampering(f: &Fixture, control: &[u8; 32], payload: &[u8], rng: &mut FixedRng) {
    let data = payload.to_vec();
    let Ok(token) = f.tokens.encrypt(&data, NOW, rng) else {
        assert!(f.big.encrypt(&data, NOW, rng).expect("big").len() > 4096);
        return;
    };
    let v = f.tokens.decrypt::<Vec<u8>>(token.as_str(), NOW).expect("a fresh token decrypts");
    assert_eq!((v.data, v.key_id, v.signed_at), (data.clone(), KeyId(3), NOW));

    let second = f.tokens.encrypt(&data, NOW, rng).expect("same length encrypts again");
    assert_ne!(second, token, "two encryptions under different nonces are equal");
    assert_eq!(second.len(), token.len());
    assert_eq!(f.tokens.decrypt::<Vec<u8>>(second.as_str(), NOW).expect("second").data, data);

    let index = usize::from(u16::from_le_bytes([control[0], control[1]]));
    let delta = control[2];
    if let Some(mutated) = mutate_one_byte(&token, index, delta) {
        let err = f.tokens.decrypt::<Vec<u8>>(mutated.as_str(), NOW).expect_err("a tampered token decrypted");
        check_error_of_present_token(&err);
    }
    let cut = prefix(&token, index % token.len());
    assert!(f.tokens.decrypt::<Vec<u8>>(cut, NOW).is_err(), "a truncated token decrypted");
    let mut extended = token.clone();
    extended.push(char::from(b'A' + (delta % 26)));
    assert!(f.tokens.decrypt::<Vec<u8>>(extended.as_str(), NOW).is_err(), "an extended token decrypted");

    let err = f.other_purpose.decrypt::<Vec<u8>>(token.as_str(), NOW).expect_err("decrypted for another purpose");
    assert_eq!(err.rejection(), Rejection::BadSignature);
    let err = f.signed.verify::<Vec<u8>>(token.as_str(), NOW).expect_err("an encrypted token verified as signed");
    check_error_of_present_token(&err);
    assert_eq!(err.kind(), VerifyErrorKind::Invalid);

    let err = f.tokens.encrypt(&data, NOW, &mut FailingRng).expect_err("no nonce, no token");
    assert_eq!(err, SignError::Random);
}

/// Signing time, maximum age, override and verification clock from the
/// input: the outcome is exactly the documented age rule.
fn times(f: &Fixture, control: &[u8; 32], rng: &mut FixedRng) {
    let mut input = Input::new(&control[3..24]);
    let mode = input.u8();
    let a = input.u64();
    let b = input.u64();
    let c = input.u32();
    let (now, signed_at, max_age, override_age) = if mode & 1 == 0 {
        let now = Timestamp::from_unix_millis(a);
        let offset = i64::from(b as u32 as i32);
        let signed_at = Timestamp::from_unix_millis(a.saturating_add_signed(offset));
        (now, signed_at, MaxAge::Seconds(u64::from(c & 0xffff)), MaxAge::Seconds(u64::from(c >> 16)))
    } else {
        (
            Timestamp::from_unix_millis(a),
            Timestamp::from_unix_millis(b),
            MaxAge::Seconds(u64::from(c) << 16),
            MaxAge::Unlimited,
        )
    };
    let max_age = if mode & 2 != 0 { MaxAge::Unlimited } else { max_age };

    let token = f.big.encrypt_with_max_age(&(), signed_at, max_age, rng).expect("encrypt unit");
    let got = f.big.decrypt::<()>(token.as_str(), now);
    let want = expected_age_outcome(signed_at, max_age, now, SKEW_MS);
    match (&got, &want) {
        (Ok(v), Ok(expires_at)) => {
            assert_eq!((v.signed_at, v.expires_at, v.key_id), (signed_at, *expires_at, KeyId(3)));
        }
        (Err(err), Err(rejection)) => {
            assert_eq!(err.rejection(), *rejection);
            let kind =
                if *rejection == Rejection::Expired { VerifyErrorKind::Expired } else { VerifyErrorKind::Invalid };
            assert_eq!(err.kind(), kind);
        }
        _ => panic!("signed_at {signed_at:?} max_age {max_age:?} now {now:?}: got {got:?}, want {want:?}"),
    }
    let got = f.big.decrypt_with_max_age::<()>(token.as_str(), now, override_age);
    let want = expected_age_outcome(signed_at, override_age, now, SKEW_MS);
    assert_eq!(got.as_ref().map(|v| v.expires_at).map_err(|e| e.rejection()), want, "with max age {override_age:?}");
}

/// Tokens of the older key decrypt, of the retired key are refused as
/// retired, of an unknown key as unknown.
fn key_ids(f: &Fixture, payload: &[u8], rng: &mut FixedRng) {
    let data = payload.to_vec();
    if let Ok(token) = f.older_key.encrypt(&data, NOW, rng) {
        let v = f.tokens.decrypt::<Vec<u8>>(token.as_str(), NOW).expect("the older key still decrypts");
        assert_eq!((v.key_id, v.data), (KeyId(1), data.clone()));
    }
    if let Ok(token) = f.retired_key.encrypt(&data, NOW, rng) {
        let err = f.tokens.decrypt::<Vec<u8>>(token.as_str(), NOW).expect_err("a retired key decrypted");
        assert_eq!(err.rejection(), Rejection::RetiredKey);
    }
    if let Ok(token) = f.unknown_key.encrypt(&data, NOW, rng) {
        let err = f.tokens.decrypt::<Vec<u8>>(token.as_str(), NOW).expect_err("an unknown key decrypted");
        assert_eq!(err.rejection(), Rejection::UnknownKey);
    }
    let err = f.tokens.decrypt::<Vec<u8>>(None, NOW).expect_err("no token");
    assert_eq!((err.rejection(), err.kind()), (Rejection::Missing, VerifyErrorKind::Missing));
}
