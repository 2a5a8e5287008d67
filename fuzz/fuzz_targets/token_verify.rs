//! `SignedTokens::verify` on arbitrary text, and on tokens with a valid MAC
//! around arbitrary payload bytes, tampered tokens, arbitrary times and every
//! kind of key id.
#![no_main]

mod common;

use std::sync::LazyLock;

use common::*;
use libfuzzer_sys::fuzz_target;
use liveguard::keys::KeyId;
use liveguard::socket_id::LiveSocketId;
use liveguard::token::{EncryptedTokens, Rejection, SignedTokens, TokenConfig, VerifyErrorKind};
use liveguard::{MaxAge, Timestamp};

const PURPOSE: &str = "user auth";

struct Fixture {
    /// The codec under test: default configuration (4096-byte limit).
    tokens: SignedTokens,
    /// Same ring and purpose, no practical length limit: signs every input.
    big: SignedTokens,
    /// Same ring, another purpose.
    other_purpose: SignedTokens,
    /// Encrypted tokens of the same ring and purpose.
    encrypted: EncryptedTokens,
    /// Same purpose, signing with the main ring's older key 1.
    older_key: SignedTokens,
    /// Same purpose, signing with the main ring's retired key 2.
    retired_key: SignedTokens,
    /// Same purpose, signing with a key id the main ring never had.
    unknown_key: SignedTokens,
}

// Built once: every construction runs PBKDF2.
static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let ring = main_ring();
    let fixture = Fixture {
        tokens: SignedTokens::new(&ring, PURPOSE),
        big: SignedTokens::with_config(&ring, PURPOSE, TokenConfig::default().max_len(1 << 20)),
        other_purpose: SignedTokens::new(&ring, "other purpose"),
        encrypted: EncryptedTokens::new(&ring, PURPOSE),
        older_key: SignedTokens::new(&older_key_ring(), PURPOSE),
        retired_key: SignedTokens::new(&retired_key_ring(), PURPOSE),
        unknown_key: SignedTokens::new(&unknown_key_ring(), PURPOSE),
    };
    // `RawBytes` really puts its bytes verbatim behind the MAC: postcard of
    // the string "abc" is [3, 'a', 'b', 'c'].
    let token = fixture.big.sign(&RawBytes(b"\x03abc"), NOW).expect("sign");
    assert_eq!(fixture.tokens.verify::<String>(token.as_str(), NOW).expect("verify").data, "abc");
    fixture
});

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    if let Ok(text) = std::str::from_utf8(data) {
        arbitrary_text(f, text);
    }
    let mut input = Input::new(data);
    let control = input.bytes::<24>();
    let payload = input.rest();
    behind_the_mac(f, payload);
    tampering(f, &control, payload);
    times(f, &control);
    key_ids(f, payload);
});

/// The input itself as a token: nothing panics, every refusal is well formed,
/// and anything accepted came from a live key of this purpose.
fn arbitrary_text(f: &Fixture, text: &str) {
    let claims = f.tokens.verify::<Claims>(text, NOW);
    let string = f.tokens.verify::<String>(text, NOW);
    let bytes = f.tokens.verify::<Vec<u8>>(text, NOW);
    let unit = f.tokens.verify::<()>(text, NOW);
    let unlimited = f.tokens.verify_with_max_age::<Claims>(text, NOW, MaxAge::Unlimited);
    let _ = f.big.verify::<LiveSocketId>(text, NOW);
    let _ = f.other_purpose.verify::<Vec<u8>>(text, NOW);

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
    // Whatever the payload type, the envelope is checked first: a text the
    // MAC refuses is refused the same way for every type.
    if let Err(err) = &unit {
        if err.rejection() != Rejection::BadPayload {
            assert_eq!(bytes.as_ref().err().map(|e| e.rejection()), Some(err.rejection()));
            assert_eq!(string.as_ref().err().map(|e| e.rejection()), Some(err.rejection()));
        }
    }
    if let Ok(v) = &bytes {
        assert!(v.key_id == KeyId(3) || v.key_id == KeyId(1), "accepted under {:?}", v.key_id);
        assert!(f.other_purpose.verify::<Vec<u8>>(text, NOW).is_err(), "token valid for two purposes");
        assert!(f.encrypted.decrypt::<Vec<u8>>(text, NOW).is_err(), "token valid signed and encrypted");
    }
    if !text.starts_with("lg1x.") {
        let err = f.encrypted.decrypt::<Vec<u8>>(text, NOW).expect_err("not an encrypted token");
        check_error_of_present_token(&err);
    }
}

/// Arbitrary bytes as the data behind a valid MAC: only the payload decoder
/// can refuse, and what it accepts survives a round trip.
fn behind_the_mac(f: &Fixture, payload: &[u8]) {
    let token = f.big.sign(&RawBytes(payload), NOW).expect("signing raw bytes cannot fail");
    let expires = Some(NOW.saturating_add_millis(86_400_000));

    match f.big.verify::<Claims>(token.as_str(), NOW) {
        Ok(v) => {
            assert_eq!((v.key_id, v.signed_at, v.expires_at), (KeyId(3), NOW, expires));
            let again = f.big.sign(&v.data, NOW).expect("sign decoded claims");
            assert_eq!(f.big.verify::<Claims>(again.as_str(), NOW).expect("round trip").data, v.data);
        }
        Err(err) => assert_eq!(err.rejection(), Rejection::BadPayload),
    }
    match f.big.verify::<String>(token.as_str(), NOW) {
        Ok(v) => {
            let again = f.big.sign(&v.data, NOW).expect("sign decoded string");
            assert_eq!(f.big.verify::<String>(again.as_str(), NOW).expect("round trip").data, v.data);
        }
        Err(err) => assert_eq!(err.rejection(), Rejection::BadPayload),
    }
    match f.big.verify::<Vec<u8>>(token.as_str(), NOW) {
        Ok(v) => assert!(v.data.len() < payload.len()),
        Err(err) => assert_eq!(err.rejection(), Rejection::BadPayload),
    }
    match f.big.verify::<LiveSocketId>(token.as_str(), NOW) {
        // Deserializing validates the id like `LiveSocketId::new`.
        Ok(v) => assert_eq!(LiveSocketId::new(v.data.as_str()), Ok(v.data.clone())),
        Err(err) => assert_eq!(err.rejection(), Rejection::BadPayload),
    }
    match f.big.verify::<(u64, Option<String>, Vec<(bool, i32)>)>(token.as_str(), NOW) {
        Ok(_) => {}
        Err(err) => assert_eq!(err.rejection(), Rejection::BadPayload),
    }
    // `()` encodes to nothing: only the empty payload decodes.
    // The shape of a session cookie's payload.
    match f.big.verify::<std::collections::BTreeMap<String, Vec<u8>>>(token.as_str(), NOW) {
        Ok(_) => {}
        Err(err) => assert_eq!(err.rejection(), Rejection::BadPayload),
    }
    assert_eq!(f.big.verify::<()>(token.as_str(), NOW).is_ok(), payload.is_empty());
}

/// A valid token with one byte changed, or cut short, never verifies.
fn tampering(f: &Fixture, control: &[u8; 24], payload: &[u8]) {
    let data = payload.to_vec();
    let Ok(token) = f.tokens.sign(&data, NOW) else {
        // Only a token over the 4096-byte limit cannot be made.
        assert!(f.big.sign(&data, NOW).expect("big").len() > 4096);
        return;
    };
    let v = f.tokens.verify::<Vec<u8>>(token.as_str(), NOW).expect("a fresh token verifies");
    assert_eq!((v.data, v.key_id, v.signed_at), (data.clone(), KeyId(3), NOW));

    let index = usize::from(u16::from_le_bytes([control[0], control[1]]));
    let delta = control[2];
    if let Some(mutated) = mutate_one_byte(&token, index, delta) {
        assert_ne!(mutated, token);
        let err = f.tokens.verify::<Vec<u8>>(mutated.as_str(), NOW).expect_err("a tampered token verified");
        check_error_of_present_token(&err);
    }
    let cut = prefix(&token, index % token.len());
    assert!(f.tokens.verify::<Vec<u8>>(cut, NOW).is_err(), "a truncated token verified");
    let mut extended = token.clone();
    extended.push(char::from(b'A' + (delta % 26)));
    assert!(f.tokens.verify::<Vec<u8>>(extended.as_str(), NOW).is_err(), "an extended token verified");

    // Bound to its purpose and to the signed form.
    let err = f.other_purpose.verify::<Vec<u8>>(token.as_str(), NOW).expect_err("verified for another purpose");
    assert_eq!(err.rejection(), Rejection::BadSignature);
    let err = f.encrypted.decrypt::<Vec<u8>>(token.as_str(), NOW).expect_err("a signed token decrypted");
    check_error_of_present_token(&err);
    assert_eq!(err.kind(), VerifyErrorKind::Invalid);
}

/// Signing time, maximum age, override and verification clock from the
/// input: the outcome is exactly the documented age rule.
fn times(f: &Fixture, control: &[u8; 24]) {
    let mut input = Input::new(&control[3..]);
    let mode = input.u8();
    let a = input.u64();
    let b = input.u64();
    let c = input.u32();
    let (now, signed_at, max_age, override_age) = if mode & 1 == 0 {
        // Near the boundaries: signed within ±2^31 ms of `now`, small ages.
        let now = Timestamp::from_unix_millis(a);
        let offset = i64::from(b as u32 as i32);
        let signed_at = Timestamp::from_unix_millis(a.saturating_add_signed(offset));
        let secs = u64::from(c & 0xffff);
        let over = u64::from(c >> 16);
        (now, signed_at, MaxAge::Seconds(secs), MaxAge::Seconds(over))
    } else {
        (
            Timestamp::from_unix_millis(a),
            Timestamp::from_unix_millis(b),
            MaxAge::Seconds(u64::from(c) << 16),
            MaxAge::Unlimited,
        )
    };
    let max_age = if mode & 2 != 0 { MaxAge::Unlimited } else { max_age };

    let token = f.big.sign_with_max_age(&(), signed_at, max_age).expect("sign unit");
    let got = f.big.verify::<()>(token.as_str(), now);
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

    let got = f.big.verify_with_max_age::<()>(token.as_str(), now, override_age);
    let want = expected_age_outcome(signed_at, override_age, now, SKEW_MS);
    assert_eq!(got.as_ref().map(|v| v.expires_at).map_err(|e| e.rejection()), want, "with max age {override_age:?}");
}

/// Tokens of the older key verify, of the retired key are refused as
/// retired, of an unknown key as unknown.
fn key_ids(f: &Fixture, payload: &[u8]) {
    let data = payload.to_vec();
    let older = f.older_key.sign(&data, NOW);
    let retired = f.retired_key.sign(&data, NOW);
    let unknown = f.unknown_key.sign(&data, NOW);
    if let Ok(token) = older {
        let v = f.tokens.verify::<Vec<u8>>(token.as_str(), NOW).expect("the older key still verifies");
        assert_eq!((v.key_id, v.data), (KeyId(1), data));
    }
    if let Ok(token) = retired {
        let err = f.tokens.verify::<Vec<u8>>(token.as_str(), NOW).expect_err("a retired key verified");
        assert_eq!(err.rejection(), Rejection::RetiredKey);
    }
    if let Ok(token) = unknown {
        let err = f.tokens.verify::<Vec<u8>>(token.as_str(), NOW).expect_err("an unknown key verified");
        assert_eq!(err.rejection(), Rejection::UnknownKey);
    }
    let err = f.tokens.verify::<Vec<u8>>(None, NOW).expect_err("no token");
    assert_eq!((err.rejection(), err.kind()), (Rejection::Missing, VerifyErrorKind::Missing));
}
