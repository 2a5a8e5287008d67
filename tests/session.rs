//! Tests of the public session-cookie API: the session map, known-answer
//! vectors, signed and encrypted round trips, name binding, refusal of every
//! damaged or foreign cookie, the 4096-byte limit, rotating options, cookie
//! configuration, and the `Cookie`/`Set-Cookie` header helpers.
//!
//! Building a `SessionCookie` runs PBKDF2, so the shared ones are built once
//! in `LazyLock` statics and varied with `.clone()` plus the builder methods
//! (which do not derive keys again).

use std::sync::LazyLock;

use liveguard::csrf::{self, CsrfState};
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::random::RandomError;
use liveguard::session::{
    CSRF_TOKEN, CookieConfigError, DecodedSession, EncodeError, LIVE_SOCKET_ID, MAX_COOKIE_LEN, SameSite, Session,
    SessionCookie, USER_TOKEN, ValueError,
};
use liveguard::socket_id::LiveSocketId;
use liveguard::token::Rejection;
use liveguard::{MaxAge, OsRandom, SecureRandom, Timestamp};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

const NAME: &str = "_app_key";
const SALT: &str = "signing salt";
const ENC_SALT: &str = "encryption salt";
const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(NOW.as_unix_millis().checked_add_signed(offset_ms).unwrap())
}

/// Fills from a byte counter: start, start + 1, ... across calls.
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

/// A random source that always fails.
struct Broken;

impl SecureRandom for Broken {
    fn fill(&mut self, _dest: &mut [u8]) -> Result<(), RandomError> {
        Err(RandomError)
    }
}

/// A 64-byte secret: seed, seed + 1, ..., seed + 63.
fn secret(seed: u8) -> SecretKeyBase {
    SecretKeyBase::new((0..64u8).map(|i| seed.wrapping_add(i)).collect()).unwrap()
}

fn ring(id: u32, seed: u8) -> KeyRing {
    KeyRing::new(KeyId(id), secret(seed))
}

/// The ring of the known-answer vectors: secret bytes 0..64 under KeyId(1).
static RING: LazyLock<KeyRing> = LazyLock::new(|| ring(1, 0));
static SIGNED: LazyLock<SessionCookie> = LazyLock::new(|| SessionCookie::signed(NAME, &RING, SALT).unwrap());
static ENCRYPTED: LazyLock<SessionCookie> = LazyLock::new(|| SessionCookie::encrypted(NAME, &RING, ENC_SALT).unwrap());

fn user_token() -> Vec<u8> {
    (0..32u8).collect()
}

fn socket_id() -> LiveSocketId {
    LiveSocketId::new("users_sessions:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
}

/// The session of the known-answer vectors.
fn sample_session() -> Session {
    let mut session = Session::new();
    session.put(USER_TOKEN, &user_token()).unwrap();
    session.put_live_socket_id(&socket_id());
    session
}

fn assert_refused(decoded: &DecodedSession, context: &str) -> Rejection {
    assert!(decoded.session.is_empty(), "{context}: session not empty: {:?}", decoded.session);
    assert_eq!(decoded.key_id, None, "{context}");
    assert!(!decoded.needs_rewrite, "{context}");
    decoded.rejection.unwrap_or_else(|| panic!("{context}: refused cookie without a rejection"))
}

fn assert_accepted(decoded: &DecodedSession, expected: &Session, key_id: KeyId, needs_rewrite: bool) {
    assert_eq!(decoded.rejection, None);
    assert_eq!(decoded.key_id, Some(key_id));
    assert_eq!(decoded.needs_rewrite, needs_rewrite);
    assert_eq!(&decoded.session, expected);
}

// ---------------------------------------------------------------------------
// 1. The session map
// ---------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Profile {
    id: u64,
    name: String,
    admin: bool,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct TwoNumbers {
    a: u64,
    b: u64,
}

#[test]
fn put_and_get_round_trip_several_types() {
    let mut session = Session::new();
    let profile = Profile { id: 42, name: "alice".into(), admin: false };
    session.put("string", "hello").unwrap();
    session.put("owned", &String::from("world")).unwrap();
    session.put("number", &u64::MAX).unwrap();
    session.put("bytes", &vec![0u8, 1, 255]).unwrap();
    session.put("struct", &profile).unwrap();
    session.put("some", &Some(7u32)).unwrap();
    session.put("none", &None::<u32>).unwrap();

    assert_eq!(session.get::<String>("string").unwrap(), Some("hello".to_string()));
    assert_eq!(session.get::<String>("owned").unwrap(), Some("world".to_string()));
    assert_eq!(session.get::<u64>("number").unwrap(), Some(u64::MAX));
    assert_eq!(session.get::<Vec<u8>>("bytes").unwrap(), Some(vec![0, 1, 255]));
    assert_eq!(session.get::<Profile>("struct").unwrap(), Some(profile));
    assert_eq!(session.get::<Option<u32>>("some").unwrap(), Some(Some(7)));
    // A stored `None` is a present value, unlike a missing key.
    assert_eq!(session.get::<Option<u32>>("none").unwrap(), Some(None));
    assert_eq!(session.get::<Option<u32>>("missing").unwrap(), None);

    // Replacing a value.
    session.put("number", &1u64).unwrap();
    assert_eq!(session.get::<u64>("number").unwrap(), Some(1));
}

#[test]
fn get_of_a_missing_key_is_none() {
    let session = Session::new();
    assert_eq!(session.get::<String>("nope"), Ok(None));
    assert_eq!(session.get::<Profile>(USER_TOKEN), Ok(None));
}

#[test]
fn get_as_the_wrong_type_is_a_decode_error() {
    let mut session = Session::new();
    // [5, 'h', 'e', 'l', 'l', 'o']: as two varint u64s this reads 5 and 104
    // and leaves "ello" behind, which must not pass.
    session.put("s", "hello").unwrap();
    assert_eq!(session.get::<TwoNumbers>("s"), Err(ValueError::Decode));
    assert_eq!(session.get::<u64>("s"), Err(ValueError::Decode));
    assert_eq!(session.get::<bool>("s"), Err(ValueError::Decode));
    assert_eq!(session.get::<Profile>("s"), Err(ValueError::Decode));

    // A varint too short for a struct of two u64s.
    session.put("n", &5u8).unwrap();
    assert_eq!(session.get::<TwoNumbers>("n"), Err(ValueError::Decode));
    // Invalid UTF-8 is not a String.
    session.put("b", &vec![0xffu8, 0xfe]).unwrap();
    assert_eq!(session.get::<String>("b"), Err(ValueError::Decode));
    // 2 is not a bool.
    session.put("two", &2u8).unwrap();
    assert_eq!(session.get::<bool>("two"), Err(ValueError::Decode));
    // An Option tag other than 0/1.
    assert_eq!(session.get::<Option<u8>>("two"), Err(ValueError::Decode));
    // The right type still decodes.
    assert_eq!(session.get::<String>("s"), Ok(Some("hello".into())));
}

#[test]
fn remove_clear_contains_key_is_empty_and_keys() {
    let mut session = Session::new();
    assert!(session.is_empty());
    assert_eq!(session.keys().count(), 0);
    session.put("b", &1u8).unwrap();
    session.put("a", &2u8).unwrap();
    session.put("c", &3u8).unwrap();
    assert!(!session.is_empty());
    assert!(session.contains_key("a") && session.contains_key("b") && session.contains_key("c"));
    assert!(!session.contains_key("d"));
    assert_eq!(session.keys().collect::<Vec<_>>(), ["a", "b", "c"]);

    assert!(session.remove("b"));
    assert!(!session.remove("b"));
    assert!(!session.contains_key("b"));
    assert_eq!(session.get::<u8>("b"), Ok(None));
    assert_eq!(session.keys().collect::<Vec<_>>(), ["a", "c"]);

    session.clear();
    assert!(session.is_empty());
    assert_eq!(session.keys().count(), 0);
    assert_eq!(session.get::<u8>("a"), Ok(None));
    assert_eq!(session, Session::new());
}

#[test]
fn live_socket_id_helpers() {
    let mut session = Session::new();
    assert_eq!(session.live_socket_id(), None);
    session.put_live_socket_id(&socket_id());
    assert_eq!(session.live_socket_id(), Some(socket_id()));
    assert!(session.contains_key(LIVE_SOCKET_ID));
    assert_eq!(session.get::<String>(LIVE_SOCKET_ID).unwrap().as_deref(), Some(socket_id().as_str()));

    // Something stored there that is not a valid id is no id.
    session.put(LIVE_SOCKET_ID, "").unwrap();
    assert_eq!(session.live_socket_id(), None);
    session.put(LIVE_SOCKET_ID, "bad\nid").unwrap();
    assert_eq!(session.live_socket_id(), None);
    session.put(LIVE_SOCKET_ID, &42u64).unwrap();
    assert_eq!(session.live_socket_id(), None);
}

#[test]
fn csrf_state_helpers() {
    assert_eq!(CSRF_TOKEN, csrf::SESSION_KEY);
    let mut session = Session::new();
    assert!(session.csrf_state().is_none());
    let state = CsrfState::generate(&mut Counter(9)).unwrap();
    session.put_csrf_state(&state);
    assert!(session.contains_key(CSRF_TOKEN));
    assert_eq!(session.csrf_state().as_ref().map(CsrfState::as_str), Some(state.as_str()));
    assert_eq!(session.get::<String>(CSRF_TOKEN).unwrap().as_deref(), Some(state.as_str()));

    // A token masked with the state verifies against the state read back.
    let token = state.mask(&mut Counter(100)).unwrap();
    assert!(session.csrf_state().unwrap().verify(token.as_str()));

    // An invalid CSRF string under the key is no state.
    for bad in ["not-a-csrf-state", "", "AAAAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAA+/"] {
        session.put(CSRF_TOKEN, bad).unwrap();
        assert!(session.csrf_state().is_none(), "{bad:?}");
    }
    session.put(CSRF_TOKEN, &7u32).unwrap();
    assert!(session.csrf_state().is_none());
}

#[test]
fn debug_shows_keys_but_never_values() {
    let secret_value = "s3cr3t-user-token";
    let mut session = Session::new();
    session.put(USER_TOKEN, secret_value).unwrap();
    session.put("other", &vec![0xABu8; 4]).unwrap();
    let text = format!("{session:?}");
    assert!(text.contains(USER_TOKEN), "{text}");
    assert!(text.contains("other"), "{text}");
    assert!(!text.contains(secret_value), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
    // Neither as raw bytes: 's' = 115, '3' = 51; 0xAB = 171.
    assert!(!text.contains("115, 51"), "{text}");
    assert!(!text.contains("171"), "{text}");
    let pretty = format!("{session:#?}");
    assert!(!pretty.contains("s3cr3t"), "{pretty}");

    // Nor through a decoded session.
    let value = SIGNED.encode(&session, NOW, &mut OsRandom).unwrap();
    let decoded = SIGNED.decode(Some(&value), NOW);
    let text = format!("{decoded:?}");
    assert!(text.contains(USER_TOKEN) && !text.contains("s3cr3t"), "{text}");
}

// ---------------------------------------------------------------------------
// 2. Known-answer vectors
// ---------------------------------------------------------------------------

// These literals were produced by running this crate's implementation once
// (secret key base = bytes 0..64, KeyId(1), cookie "_app_key", salts "signing
// salt" / "encryption salt", now = 1_700_000_000_000 ms, default max age of
// 14 days, user_token = bytes 0..32, the live_socket_id of `socket_id()`, and
// for the encrypted one a nonce of bytes 0xA0, 0xA1, ...). They pin the wire
// format: a change to them breaks every cookie already in browsers.
//
// Both were then checked outside this crate with Python (hashlib PBKDF2 and
// HMAC, PyNaCl XChaCha20-Poly1305): key = PBKDF2-HMAC-SHA256(secret, salt,
// 1000, 32); context = u32be(15) ‖ "cookie:_app_key"; the signed tag is
// HMAC(key, context ‖ "lg1s.1.<payload>"); the encrypted AAD is
// context ‖ "lg1x.1."; and the payload is the postcard encoding of
// (1_700_000_000_000, Some(1_209_600), {live_socket_id, user_token}).
const SIGNED_VECTOR: &str = "lg1s.1.gNCV_7wxAYDqSQIObGl2ZV9zb2NrZXRfaWQ8O3VzZXJzX3Nlc3Npb25zOkFBRUNBd1FGQmdjSUNRb0xEQTBPRHhBUkVoTVVGUllYR0JrYUd4d2RIaDg9CnVzZXJfdG9rZW4hIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f.-xn84CQiXrXsSqKy8XMxg-c1WRaUlkPr8Bvr9b6kKVs";
const ENCRYPTED_VECTOR: &str = "lg1x.1.oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3MESk2iv8Au7fu0xjekHVBsgddBndbKoDvHNo5JVx2mGsMJnOn0_SLFzeh_ZctPzxYNsCzhD-vj9MUGY2kPBU5iPUgRc3XLwtDLE85fzniP5-OYtYZe48tNZ_J8XFy1ozJ5A1nPkkXzBEpB_rKnXWhcvA8hQtIFZy-XaF6V4rS9BpuyhGvcw19qUo6gwj4ea6jk7A3g";

#[test]
fn known_answer_signed() {
    let value = SIGNED.encode(&sample_session(), NOW, &mut Broken).unwrap();
    assert_eq!(value, SIGNED_VECTOR, "signed vector changed");
    assert!(value.starts_with("lg1s.1."));
    let decoded = SIGNED.decode(Some(SIGNED_VECTOR), NOW);
    assert_accepted(&decoded, &sample_session(), KeyId(1), false);
    assert_eq!(decoded.session.get::<Vec<u8>>(USER_TOKEN).unwrap(), Some(user_token()));
    assert_eq!(decoded.session.live_socket_id(), Some(socket_id()));
    // Still valid at the end of the 14 days, not one millisecond later.
    let fourteen_days = 14 * 86_400 * 1000;
    assert_eq!(SIGNED.decode(Some(SIGNED_VECTOR), at(fourteen_days)).rejection, None);
    assert_eq!(SIGNED.decode(Some(SIGNED_VECTOR), at(fourteen_days + 1)).rejection, Some(Rejection::Expired));
}

#[test]
fn known_answer_encrypted() {
    let value = ENCRYPTED.encode(&sample_session(), NOW, &mut Counter(0xA0)).unwrap();
    assert_eq!(value, ENCRYPTED_VECTOR, "encrypted vector changed");
    assert!(value.starts_with("lg1x.1."));
    let decoded = ENCRYPTED.decode(Some(ENCRYPTED_VECTOR), NOW);
    assert_accepted(&decoded, &sample_session(), KeyId(1), false);
    assert_eq!(decoded.session.get::<Vec<u8>>(USER_TOKEN).unwrap(), Some(user_token()));
    assert_eq!(decoded.session.live_socket_id(), Some(socket_id()));
}

// ---------------------------------------------------------------------------
// 3. Round trips
// ---------------------------------------------------------------------------

#[test]
fn signed_round_trip() {
    let session = sample_session();
    let value = SIGNED.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_accepted(&SIGNED.decode(Some(&value), NOW), &session, KeyId(1), false);
    // Signing is deterministic: the random source is not used.
    assert_eq!(SIGNED.encode(&session, NOW, &mut Broken).unwrap(), value);
    // An empty session round-trips as an empty session, without rejection.
    let empty = SIGNED.encode(&Session::new(), NOW, &mut OsRandom).unwrap();
    assert_accepted(&SIGNED.decode(Some(&empty), NOW), &Session::new(), KeyId(1), false);
}

#[test]
fn encrypted_round_trip() {
    let session = sample_session();
    let a = ENCRYPTED.encode(&session, NOW, &mut OsRandom).unwrap();
    let b = ENCRYPTED.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_ne!(a, b, "fresh nonce per encoding");
    for value in [&a, &b] {
        assert_accepted(&ENCRYPTED.decode(Some(value), NOW), &session, KeyId(1), false);
    }
    // The start of the user token's base64 does not show through.
    assert!(!a.contains("AAECAwQFBgcI"));
    // A failing random source fails the encoding, with no value.
    assert_eq!(ENCRYPTED.encode(&session, NOW, &mut Broken), Err(EncodeError::Random));
}

#[test]
fn signed_cookie_is_readable_but_encrypted_is_not() {
    let mut session = Session::new();
    // A long run of one byte: its base64 shows whatever the alignment.
    session.put("k", &"Z".repeat(300)).unwrap();
    let signed = SIGNED.encode(&session, NOW, &mut OsRandom).unwrap();
    let encrypted = ENCRYPTED.encode(&session, NOW, &mut OsRandom).unwrap();
    // "ZZZ" in base64 is "Wlpa", whatever the alignment of a long run of Z.
    assert!(signed.contains("WlpaWlpaWlpa"), "signed cookies are readable");
    assert!(!encrypted.contains("WlpaWlpa"), "encrypted cookies are confidential");
}

#[test]
fn signed_and_encrypted_do_not_read_each_other() {
    let session = sample_session();
    let signed = SIGNED.encode(&session, NOW, &mut OsRandom).unwrap();
    let encrypted = ENCRYPTED.encode(&session, NOW, &mut OsRandom).unwrap();
    // As for tokens (tests/token.rs), the other mode's header is refused as
    // the wrong kind.
    assert_eq!(
        assert_refused(&ENCRYPTED.decode(Some(&signed), NOW), "signed read as encrypted",),
        Rejection::WrongKind
    );
    assert_eq!(
        assert_refused(&SIGNED.decode(Some(&encrypted), NOW), "encrypted read as signed",),
        Rejection::WrongKind
    );
    // Relabelled to the other mode, the body does not fit.
    let _ = assert_refused(&ENCRYPTED.decode(Some(&signed.replacen("lg1s", "lg1x", 1)), NOW), "signed relabelled");
    let _ = assert_refused(&SIGNED.decode(Some(&encrypted.replacen("lg1x", "lg1s", 1)), NOW), "encrypted relabelled");
}

#[test]
fn session_cookie_debug_never_shows_keys() {
    for cookie in [&*SIGNED, &*ENCRYPTED] {
        let text = format!("{cookie:?}");
        assert!(text.contains("REDACTED"), "{text}");
        // The secret key base is bytes 0, 1, 2, ...
        assert!(!text.contains("0, 1, 2, 3"), "{text}");
        assert!(!text.contains("[0, 1, 2"), "{text}");
    }
}

// ---------------------------------------------------------------------------
// 4. Name binding
// ---------------------------------------------------------------------------

#[test]
fn a_value_is_bound_to_its_cookie_name() {
    let ring = &*RING;
    let a_signed = SessionCookie::signed("_a_key", ring, SALT).unwrap();
    let b_signed = SessionCookie::signed("_b_key", ring, SALT).unwrap();
    let a_enc = SessionCookie::encrypted("_a_key", ring, ENC_SALT).unwrap();
    let b_enc = SessionCookie::encrypted("_b_key", ring, ENC_SALT).unwrap();
    let session = sample_session();

    let value = a_signed.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_accepted(&a_signed.decode(Some(&value), NOW), &session, KeyId(1), false);
    assert_eq!(assert_refused(&b_signed.decode(Some(&value), NOW), "signed _b_key"), Rejection::BadSignature);
    // Nor under the name without the context separator, or a prefix of it.
    let a = SessionCookie::signed("_a", ring, SALT).unwrap();
    assert_eq!(assert_refused(&a.decode(Some(&value), NOW), "signed _a"), Rejection::BadSignature);

    let value = a_enc.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_accepted(&a_enc.decode(Some(&value), NOW), &session, KeyId(1), false);
    assert_eq!(assert_refused(&b_enc.decode(Some(&value), NOW), "encrypted _b_key"), Rejection::BadSignature);
}

// ---------------------------------------------------------------------------
// 5. Refusals
// ---------------------------------------------------------------------------

/// Characters tried at every position: the whole token alphabet, the
/// separator, and characters a token never has (padding, standard base64,
/// whitespace, non-ASCII).
fn replacement_chars() -> Vec<char> {
    let mut chars: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars().collect();
    chars.extend(['.', '=', '+', '/', ' ', '~', '\0', 'é']);
    chars
}

fn replace_at(value: &str, index: usize, c: char) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push_str(&value[..index]);
    out.push(c);
    out.push_str(&value[index + 1..]);
    out
}

#[test]
fn every_single_character_change_of_a_signed_value_is_refused() {
    let value = SIGNED.encode(&sample_session(), NOW, &mut OsRandom).unwrap();
    assert!(value.is_ascii());
    let chars = replacement_chars();
    let mut tried = 0;
    for index in 0..value.len() {
        let original = value.as_bytes()[index] as char;
        for &c in &chars {
            if c == original {
                continue;
            }
            let tampered = replace_at(&value, index, c);
            let _ = assert_refused(&SIGNED.decode(Some(&tampered), NOW), &format!("replace {index} by {c:?}"));
            tried += 1;
        }
        // Deletion and insertion at every position.
        let mut deleted = value.clone();
        deleted.remove(index);
        let _ = assert_refused(&SIGNED.decode(Some(&deleted), NOW), &format!("delete {index}"));
        for c in ['A', '0', '.'] {
            let mut inserted = value.clone();
            inserted.insert(index, c);
            let _ = assert_refused(&SIGNED.decode(Some(&inserted), NOW), &format!("insert {c:?} at {index}"));
        }
    }
    for c in ['A', '.', '='] {
        let appended = format!("{value}{c}");
        let _ = assert_refused(&SIGNED.decode(Some(&appended), NOW), &format!("append {c:?}"));
    }
    assert!(tried > 60 * value.len());
    // The untouched value still verifies.
    assert_eq!(SIGNED.decode(Some(&value), NOW).rejection, None);
}

#[test]
fn single_character_changes_of_an_encrypted_value_are_refused() {
    let value = ENCRYPTED.encode(&sample_session(), NOW, &mut OsRandom).unwrap();
    assert!(value.is_ascii());
    for index in 0..value.len() {
        let original = value.as_bytes()[index] as char;
        for c in ['A', 'g', '9', '_', '.', '='] {
            if c == original {
                continue;
            }
            let tampered = replace_at(&value, index, c);
            let _ = assert_refused(&ENCRYPTED.decode(Some(&tampered), NOW), &format!("replace {index} by {c:?}"));
        }
    }
    // The whole alphabet at a sample of positions: header, key id, nonce,
    // ciphertext, tag, and the last character (trailing bits).
    let chars = replacement_chars();
    let len = value.len();
    for index in [0, 3, 5, 6, 7, 20, 40, len / 2, len - 22, len - 2, len - 1] {
        let original = value.as_bytes()[index] as char;
        for &c in &chars {
            if c != original {
                let tampered = replace_at(&value, index, c);
                let _ = assert_refused(&ENCRYPTED.decode(Some(&tampered), NOW), &format!("{index} {c:?}"));
            }
        }
    }
    assert_eq!(ENCRYPTED.decode(Some(&value), NOW).rejection, None);
}

#[test]
fn every_prefix_is_refused() {
    for cookie in [&*SIGNED, &*ENCRYPTED] {
        let value = cookie.encode(&sample_session(), NOW, &mut OsRandom).unwrap();
        for end in 0..value.len() {
            let rejection = assert_refused(&cookie.decode(Some(&value[..end]), NOW), &format!("prefix {end}"));
            if end == 0 {
                assert_eq!(rejection, Rejection::Empty);
            }
        }
        // And every suffix but the whole.
        for start in 1..value.len() {
            let _ = assert_refused(&cookie.decode(Some(&value[start..]), NOW), &format!("suffix {start}"));
        }
    }
}

#[test]
fn wrong_salt_and_other_secret_are_refused() {
    let session = sample_session();
    let other_salt = SessionCookie::signed(NAME, &RING, "other salt").unwrap();
    let other_secret = SessionCookie::signed(NAME, &ring(1, 100), SALT).unwrap();
    let value = SIGNED.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_eq!(assert_refused(&other_salt.decode(Some(&value), NOW), "salt"), Rejection::BadSignature);
    assert_eq!(assert_refused(&other_secret.decode(Some(&value), NOW), "secret"), Rejection::BadSignature);
    // And the other way round.
    let foreign = other_secret.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_eq!(assert_refused(&SIGNED.decode(Some(&foreign), NOW), "foreign"), Rejection::BadSignature);

    let other_salt = SessionCookie::encrypted(NAME, &RING, "other salt").unwrap();
    let other_secret = SessionCookie::encrypted(NAME, &ring(1, 100), ENC_SALT).unwrap();
    let value = ENCRYPTED.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_eq!(assert_refused(&other_salt.decode(Some(&value), NOW), "enc salt"), Rejection::BadSignature);
    assert_eq!(assert_refused(&other_secret.decode(Some(&value), NOW), "enc secret"), Rejection::BadSignature);
}

#[test]
fn garbage_empty_and_oversized_values_are_refused() {
    let garbage = [
        "garbage",
        "lg1s",
        "lg1s.",
        "lg1s.1",
        "lg1s.1.",
        "lg1s.1..",
        "lg1s.1.AAAA.",
        "lg1s.01.AAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "lg1s.1.AAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "lg1x.1.",
        "lg1x.1.AAAA",
        "lg1x.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "lg2s.1.AAAA.AAAA",
        "SFMyNTY.g2gDbQ.AAAA",
        "...",
        " ",
        "\u{0}",
        "é",
        "lg1s.1.é.é",
        "lg1x.1.éééééééééééééééééééééééééééééééééééééééé",
    ];
    for cookie in [&*SIGNED, &*ENCRYPTED] {
        for value in garbage {
            let _ = assert_refused(&cookie.decode(Some(value), NOW), value);
        }
        assert_eq!(assert_refused(&cookie.decode(Some(""), NOW), "empty"), Rejection::Empty);
        let long = "A".repeat(5000);
        assert_eq!(assert_refused(&cookie.decode(Some(&long), NOW), "5000 bytes"), Rejection::TooLong);
        // A real value padded past the limit is refused before anything else.
        let value = cookie.encode(&sample_session(), NOW, &mut OsRandom).unwrap();
        let padded = format!("{value}{}", "A".repeat(5000 - value.len()));
        assert_eq!(assert_refused(&cookie.decode(Some(&padded), NOW), "padded"), Rejection::TooLong);
    }
    assert_eq!(assert_refused(&SIGNED.decode(Some("garbage"), NOW), "garbage"), Rejection::Malformed);
}

#[test]
fn a_missing_cookie_is_an_empty_session_without_rejection() {
    for cookie in [&*SIGNED, &*ENCRYPTED] {
        let decoded = cookie.decode(None, NOW);
        assert!(decoded.session.is_empty());
        assert_eq!(decoded.key_id, None);
        assert_eq!(decoded.rejection, None);
        assert!(!decoded.needs_rewrite);
    }
}

#[test]
fn expiry_follows_the_max_age_in_the_value() {
    for base in [&*SIGNED, &*ENCRYPTED] {
        let short = base.clone().max_age(MaxAge::Seconds(60));
        let session = sample_session();
        let value = short.encode(&session, NOW, &mut OsRandom).unwrap();
        assert_accepted(&short.decode(Some(&value), NOW), &session, KeyId(1), false);
        // Exactly at the boundary: still valid.
        assert_accepted(&short.decode(Some(&value), at(60_000)), &session, KeyId(1), false);
        assert_eq!(assert_refused(&short.decode(Some(&value), at(60_001)), "60.001 s"), Rejection::Expired);
        assert_eq!(assert_refused(&short.decode(Some(&value), at(61_000)), "61 s"), Rejection::Expired);
        // The age travels in the value: a reader configured for 14 days
        // still refuses it.
        assert_eq!(assert_refused(&base.decode(Some(&value), at(61_000)), "reader"), Rejection::Expired);

        // Zero is always expired (Phoenix).
        let zero = base.clone().max_age(MaxAge::Seconds(0));
        let value = zero.encode(&session, NOW, &mut OsRandom).unwrap();
        assert_eq!(assert_refused(&zero.decode(Some(&value), NOW), "zero"), Rejection::Expired);

        // Unlimited never expires by age.
        let unlimited = base.clone().max_age(MaxAge::Unlimited);
        let value = unlimited.encode(&session, NOW, &mut OsRandom).unwrap();
        let ten_years = 10 * 365 * 86_400 * 1000;
        assert_accepted(&unlimited.decode(Some(&value), at(ten_years)), &session, KeyId(1), false);

        // A huge max age saturates instead of overflowing.
        let huge = base.clone().max_age(MaxAge::Seconds(u64::MAX));
        let value = huge.encode(&session, NOW, &mut OsRandom).unwrap();
        assert_accepted(&huge.decode(Some(&value), at(ten_years)), &session, KeyId(1), false);
    }
}

#[test]
fn future_dated_beyond_the_clock_skew_is_refused() {
    let session = sample_session();
    for base in [&*SIGNED, &*ENCRYPTED] {
        // Written by a node whose clock is ahead.
        let within = base.encode(&session, at(30_000), &mut OsRandom).unwrap();
        assert_accepted(&base.decode(Some(&within), NOW), &session, KeyId(1), false);
        let beyond = base.encode(&session, at(30_001), &mut OsRandom).unwrap();
        assert_eq!(assert_refused(&base.decode(Some(&beyond), NOW), "30.001 s"), Rejection::FutureDated);
        let far = base.encode(&session, at(3_600_000), &mut OsRandom).unwrap();
        assert_eq!(assert_refused(&base.decode(Some(&far), NOW), "1 h"), Rejection::FutureDated);

        let strict = base.clone().clock_skew_ms(0);
        let ahead = base.encode(&session, at(1), &mut OsRandom).unwrap();
        assert_eq!(assert_refused(&strict.decode(Some(&ahead), NOW), "skew 0"), Rejection::FutureDated);
        assert_accepted(&strict.decode(Some(&ahead), at(1)), &session, KeyId(1), false);
    }
}

#[test]
fn unknown_and_retired_key_ids_are_refused() {
    let session = sample_session();
    // Written under KeyId(7), which RING never had.
    let seven = SessionCookie::signed(NAME, &ring(7, 0), SALT).unwrap();
    let value = seven.encode(&session, NOW, &mut OsRandom).unwrap();
    assert!(value.starts_with("lg1s.7."));
    assert_eq!(assert_refused(&SIGNED.decode(Some(&value), NOW), "unknown"), Rejection::UnknownKey);
    // The same value relabelled with key id 1 does not verify either.
    let relabelled = value.replacen("lg1s.7.", "lg1s.1.", 1);
    assert_eq!(assert_refused(&SIGNED.decode(Some(&relabelled), NOW), "relabelled"), Rejection::BadSignature);

    let seven = SessionCookie::encrypted(NAME, &ring(7, 0), ENC_SALT).unwrap();
    let value = seven.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_eq!(assert_refused(&ENCRYPTED.decode(Some(&value), NOW), "enc unknown"), Rejection::UnknownKey);

    // Retired: see also `key_ring_rotation_and_retirement`.
    let mut ring = ring(1, 0);
    ring.rotate(KeyId(2), secret(50)).unwrap();
    ring.retire(KeyId(1)).unwrap();
    let retired = SessionCookie::signed(NAME, &ring, SALT).unwrap();
    let old = SIGNED.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_eq!(assert_refused(&retired.decode(Some(&old), NOW), "retired"), Rejection::RetiredKey);
}

// ---------------------------------------------------------------------------
// 6. The 4096-byte limit
// ---------------------------------------------------------------------------

fn session_with_bytes(len: usize) -> Session {
    let mut session = Session::new();
    session.put("blob", &vec![0x5Au8; len]).unwrap();
    session
}

/// The largest blob that encodes under `cookie`, by binary search, and its
/// encoded value.
fn largest_that_fits(cookie: &SessionCookie) -> (usize, String) {
    let (mut lo, mut hi) = (0usize, 4096usize);
    assert!(cookie.encode(&session_with_bytes(lo), NOW, &mut OsRandom).is_ok());
    assert_eq!(cookie.encode(&session_with_bytes(hi), NOW, &mut OsRandom), Err(EncodeError::TooLarge));
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        match cookie.encode(&session_with_bytes(mid), NOW, &mut OsRandom) {
            Ok(_) => lo = mid,
            Err(err) => {
                assert_eq!(err, EncodeError::TooLarge);
                hi = mid;
            }
        }
    }
    (lo, cookie.encode(&session_with_bytes(lo), NOW, &mut OsRandom).unwrap())
}

#[test]
fn encoding_is_limited_to_4096_bytes_of_name_and_value() {
    assert_eq!(MAX_COOKIE_LEN, 4096);
    let long_name = "_a_much_longer_cookie_name_for_this_application_key";
    let long_signed = SessionCookie::signed(long_name, &RING, SALT).unwrap();
    let long_encrypted = SessionCookie::encrypted(long_name, &RING, ENC_SALT).unwrap();
    for cookie in [&*SIGNED, &*ENCRYPTED, &long_signed, &long_encrypted] {
        let (fits, value) = largest_that_fits(cookie);
        let total = cookie.name().len() + 1 + value.len();
        assert!(total <= MAX_COOKIE_LEN, "{}: {total}", cookie.name());
        // base64 granularity: the largest value is within a few bytes of it.
        assert!(total > MAX_COOKIE_LEN - 8, "{}: {total}", cookie.name());
        // Just under the limit: encodes and decodes back.
        let decoded = cookie.decode(Some(&value), NOW);
        assert_accepted(&decoded, &session_with_bytes(fits), KeyId(1), false);
        // One byte more: too large.
        assert_eq!(
            cookie.encode(&session_with_bytes(fits + 1), NOW, &mut OsRandom),
            Err(EncodeError::TooLarge),
            "{}",
            cookie.name()
        );
        assert_eq!(cookie.encode(&session_with_bytes(10_000), NOW, &mut OsRandom), Err(EncodeError::TooLarge));
    }
    // The limit counts the name: what fits under "_app_key" does not all fit
    // under a name 43 bytes longer.
    let (short_fits, _) = largest_that_fits(&SIGNED);
    assert_eq!(long_signed.encode(&session_with_bytes(short_fits), NOW, &mut OsRandom), Err(EncodeError::TooLarge));
}

// ---------------------------------------------------------------------------
// 7. Rotating options
// ---------------------------------------------------------------------------

#[test]
fn rotating_salt_is_read_and_asks_for_a_rewrite() {
    let session = sample_session();
    let old = SessionCookie::signed(NAME, &RING, "old salt").unwrap();
    let new = SessionCookie::signed(NAME, &RING, "new salt").unwrap().rotating_signed(&RING, "old salt");

    let old_value = old.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_accepted(&new.decode(Some(&old_value), NOW), &session, KeyId(1), true);

    // Writing uses the primary: the new value is not readable by the old salt.
    let new_value = new.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_accepted(&new.decode(Some(&new_value), NOW), &session, KeyId(1), false);
    assert_eq!(assert_refused(&old.decode(Some(&new_value), NOW), "old reads new"), Rejection::BadSignature);

    // A rotating option keeps the rules: an expired old cookie is refused.
    let old_short = old.clone().max_age(MaxAge::Seconds(60));
    let expired = old_short.encode(&session, NOW, &mut OsRandom).unwrap();
    let _ = assert_refused(&new.decode(Some(&expired), at(61_000)), "expired old cookie");

    // Several rotating options are tried in order.
    let older = SessionCookie::signed(NAME, &RING, "older salt").unwrap();
    let newer = SessionCookie::signed(NAME, &RING, "new salt")
        .unwrap()
        .rotating_signed(&RING, "old salt")
        .rotating_signed(&RING, "older salt");
    let older_value = older.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_accepted(&newer.decode(Some(&older_value), NOW), &session, KeyId(1), true);
    assert_accepted(&newer.decode(Some(&old_value), NOW), &session, KeyId(1), true);
    assert_accepted(&newer.decode(Some(&new_value), NOW), &session, KeyId(1), false);
    // The rotating option is bound to the cookie name too.
    let other_name = SessionCookie::signed("_other_key", &RING, "old salt").unwrap();
    let other_value = other_name.encode(&session, NOW, &mut OsRandom).unwrap();
    let _ = assert_refused(&newer.decode(Some(&other_value), NOW), "other name");
}

#[test]
fn rotating_from_signed_to_encrypted() {
    let session = sample_session();
    let reader = SessionCookie::encrypted(NAME, &RING, ENC_SALT).unwrap().rotating_signed(&RING, SALT);
    let old_value = SIGNED.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_accepted(&reader.decode(Some(&old_value), NOW), &session, KeyId(1), true);
    let new_value = reader.encode(&session, NOW, &mut OsRandom).unwrap();
    assert!(new_value.starts_with("lg1x."), "writes with the primary (encrypted): {new_value}");
    assert_accepted(&reader.decode(Some(&new_value), NOW), &session, KeyId(1), false);

    // A forged old-style cookie: the rotating option would say BadSignature,
    // but the primary's reason (another mode's header) is the one reported.
    let forged = old_value.replacen("lg1s.1.", "lg1s.1.A", 1);
    assert_eq!(assert_refused(&reader.decode(Some(&forged), NOW), "forged signed"), Rejection::WrongKind);
    assert_eq!(assert_refused(&SIGNED.decode(Some(&forged), NOW), "forged, signed reader"), Rejection::BadSignature);

    // And back, with rotating_encrypted.
    let back = SessionCookie::signed(NAME, &RING, SALT).unwrap().rotating_encrypted(&RING, ENC_SALT);
    assert_accepted(&back.decode(Some(&new_value), NOW), &session, KeyId(1), true);
    assert!(back.encode(&session, NOW, &mut Broken).unwrap().starts_with("lg1s."));
}

#[test]
fn key_ring_rotation_and_retirement() {
    let session = sample_session();
    let old_value = SIGNED.encode(&session, NOW, &mut OsRandom).unwrap();
    let old_encrypted = ENCRYPTED.encode(&session, NOW, &mut OsRandom).unwrap();

    let mut ring = RING.clone();
    ring.rotate(KeyId(2), secret(50)).unwrap();
    let rotated = SessionCookie::signed(NAME, &ring, SALT).unwrap();
    let rotated_enc = SessionCookie::encrypted(NAME, &ring, ENC_SALT).unwrap();
    // Old cookies still verify, under the old key id, and ask for a rewrite
    // so they move to the new primary before the old key is retired.
    assert_accepted(&rotated.decode(Some(&old_value), NOW), &session, KeyId(1), true);
    assert_accepted(&rotated_enc.decode(Some(&old_encrypted), NOW), &session, KeyId(1), true);
    // New cookies use the new primary.
    let new_value = rotated.encode(&session, NOW, &mut OsRandom).unwrap();
    assert!(new_value.starts_with("lg1s.2."), "{new_value}");
    assert_accepted(&rotated.decode(Some(&new_value), NOW), &session, KeyId(2), false);
    // A cookie built before the rotation does not know key 2.
    assert_eq!(assert_refused(&SIGNED.decode(Some(&new_value), NOW), "stale"), Rejection::UnknownKey);

    ring.retire(KeyId(1)).unwrap();
    let retired = SessionCookie::signed(NAME, &ring, SALT).unwrap();
    let retired_enc = SessionCookie::encrypted(NAME, &ring, ENC_SALT).unwrap();
    assert_eq!(assert_refused(&retired.decode(Some(&old_value), NOW), "retired"), Rejection::RetiredKey);
    assert_eq!(assert_refused(&retired_enc.decode(Some(&old_encrypted), NOW), "enc retired"), Rejection::RetiredKey);
    assert_accepted(&retired.decode(Some(&new_value), NOW), &session, KeyId(2), false);
}

#[test]
fn when_no_option_verifies_the_primary_rejection_is_reported() {
    let session = sample_session();
    // Primary: ring with only KeyId(2). Rotating: ring with KeyId(1), old salt.
    let primary_ring = ring(2, 50);
    let reader = SessionCookie::signed(NAME, &primary_ring, "new salt").unwrap().rotating_signed(&RING, "old salt");
    // A KeyId(1) cookie under yet another salt: the primary says UnknownKey,
    // the rotating option says BadSignature.
    let stray = SessionCookie::signed(NAME, &RING, "stray salt").unwrap();
    let value = stray.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_eq!(assert_refused(&reader.decode(Some(&value), NOW), "stray"), Rejection::UnknownKey);

    // A KeyId(2) cookie that is expired: the primary says Expired, the
    // rotating option (which has no key 2) would say UnknownKey.
    let short = SessionCookie::signed(NAME, &primary_ring, "new salt").unwrap().max_age(MaxAge::Seconds(1));
    let value = short.encode(&session, NOW, &mut OsRandom).unwrap();
    assert_eq!(assert_refused(&reader.decode(Some(&value), at(2_000)), "expired"), Rejection::Expired);

    // Garbage: every option refuses; still the primary's reason.
    assert_eq!(assert_refused(&reader.decode(Some(""), NOW), "empty"), Rejection::Empty);
    // A missing cookie stays without rejection.
    let decoded = reader.decode(None, NOW);
    assert!(decoded.session.is_empty() && decoded.rejection.is_none() && !decoded.needs_rewrite);
}

// ---------------------------------------------------------------------------
// 8. Cookie configuration
// ---------------------------------------------------------------------------

#[test]
fn invalid_cookie_names_are_refused() {
    let invalid = [
        "",
        " ",
        "_app key",
        "a;b",
        "a=b",
        "é",
        "_app_clé",
        "a\tb",
        "a,b",
        "a\"b",
        "a(b)",
        "a/b",
        "a:b",
        "a\u{7f}",
        "a\nb",
        "{a}",
        "a\\b",
        "[a]",
        "a?b",
        "a@b",
        "<a>",
    ];
    for name in invalid {
        assert_eq!(SessionCookie::signed(name, &RING, SALT).unwrap_err(), CookieConfigError::InvalidName, "{name:?}");
        assert_eq!(
            SessionCookie::encrypted(name, &RING, SALT).unwrap_err(),
            CookieConfigError::InvalidName,
            "{name:?}"
        );
    }
    assert_eq!(SIGNED.name(), NAME);
    assert_eq!(ENCRYPTED.name(), NAME);
    // Builders keep the name.
    assert_eq!(SIGNED.clone().secure(false).path("/x").name(), NAME);
}

#[test]
fn valid_cookie_names_are_accepted() {
    // One PBKDF2 derivation per name: keep the list short.
    for name in ["a", "__Host-session", "_app.key!#$%&'*+-^`|~"] {
        let cookie = SessionCookie::signed(name, &RING, SALT).unwrap();
        assert_eq!(cookie.name(), name);
    }
}

// ---------------------------------------------------------------------------
// 9. Headers
// ---------------------------------------------------------------------------

fn attrs(header: &str) -> Vec<String> {
    header.split(';').map(|part| part.trim().to_string()).collect()
}

fn has_attr(header: &str, attr: &str) -> bool {
    attrs(header).iter().any(|a| a.eq_ignore_ascii_case(attr))
}

fn attr_starting(header: &str, prefix: &str) -> Option<String> {
    attrs(header).into_iter().find(|a| a.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase()))
}

#[test]
fn set_cookie_header_defaults() {
    let value = SIGNED.encode(&sample_session(), NOW, &mut OsRandom).unwrap();
    let header = SIGNED.set_cookie_header(&value);
    assert!(header.starts_with(&format!("{NAME}={value}")), "{header}");
    assert_eq!(attrs(&header)[0], format!("{NAME}={value}"));
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=1209600"] {
        assert!(has_attr(&header, attr), "{attr} missing from {header}");
    }
    assert!(attr_starting(&header, "Domain").is_none(), "{header}");

    // Parsed back by the cookie crate.
    let parsed = cookie::Cookie::parse(header.clone()).unwrap();
    assert_eq!(parsed.name(), NAME);
    assert_eq!(parsed.value(), value);
    assert_eq!(parsed.http_only(), Some(true));
    assert_eq!(parsed.secure(), Some(true));
    assert_eq!(parsed.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(parsed.path(), Some("/"));
    assert_eq!(parsed.max_age(), Some(cookie::time::Duration::seconds(1_209_600)));
}

#[test]
fn set_cookie_header_options() {
    let value = "lg1s.1.AAAA.BBBB";
    let insecure = SIGNED.clone().secure(false).set_cookie_header(value);
    assert!(!has_attr(&insecure, "Secure"), "{insecure}");
    assert!(has_attr(&insecure, "HttpOnly"), "{insecure}");

    // SameSite=None forces Secure, even with .secure(false).
    let none = SIGNED.clone().secure(false).same_site(SameSite::None).set_cookie_header(value);
    assert!(has_attr(&none, "SameSite=None"), "{none}");
    assert!(has_attr(&none, "Secure"), "{none}");

    let strict = SIGNED.clone().same_site(SameSite::Strict).set_cookie_header(value);
    assert!(has_attr(&strict, "SameSite=Strict"), "{strict}");

    let scripts = SIGNED.clone().http_only(false).set_cookie_header(value);
    assert!(!has_attr(&scripts, "HttpOnly"), "{scripts}");

    let unlimited = SIGNED.clone().max_age(MaxAge::Unlimited).set_cookie_header(value);
    assert!(attr_starting(&unlimited, "Max-Age").is_none(), "{unlimited}");
    assert!(attr_starting(&unlimited, "Expires").is_none(), "{unlimited}");

    let minute = SIGNED.clone().max_age(MaxAge::Seconds(60)).set_cookie_header(value);
    assert!(has_attr(&minute, "Max-Age=60"), "{minute}");

    let huge = SIGNED.clone().max_age(MaxAge::Seconds(u64::MAX)).set_cookie_header(value);
    assert!(attr_starting(&huge, "Max-Age=").is_some(), "{huge}");

    let scoped = SIGNED.clone().domain("example.com").path("/app").set_cookie_header(value);
    assert!(has_attr(&scoped, "Domain=example.com"), "{scoped}");
    assert!(has_attr(&scoped, "Path=/app"), "{scoped}");
    assert!(!has_attr(&scoped, "Path=/"), "{scoped}");
    let parsed = cookie::Cookie::parse(scoped).unwrap();
    assert_eq!(parsed.domain(), Some("example.com"));
    assert_eq!(parsed.path(), Some("/app"));
    assert_eq!(parsed.value(), value);
}

#[test]
fn removal_header_expires_the_cookie() {
    let cookie = SIGNED.clone().domain("example.com");
    let header = cookie.removal_header();
    let parsed = cookie::Cookie::parse(header.clone()).unwrap();
    assert_eq!(parsed.name(), NAME);
    assert_eq!(parsed.value(), "", "{header}");
    let max_age_zero = parsed.max_age() == Some(cookie::time::Duration::ZERO);
    let expired = parsed.expires_datetime().is_some_and(|when| when < cookie::time::OffsetDateTime::now_utc());
    assert!(max_age_zero || expired, "{header}");
    assert!(max_age_zero, "Max-Age=0 expected: {header}");
    assert!(expired, "Expires in the past expected: {header}");
    // The same scope as the cookie it removes, or the browser keeps it.
    assert_eq!(parsed.path(), Some("/"));
    assert_eq!(parsed.domain(), Some("example.com"));
    assert_eq!(parsed.secure(), Some(true));
    assert_eq!(parsed.http_only(), Some(true));
    assert_eq!(parsed.same_site(), Some(cookie::SameSite::Lax));

    let unlimited = SIGNED.clone().max_age(MaxAge::Unlimited).removal_header();
    assert!(has_attr(&unlimited, "Max-Age=0"), "{unlimited}");
}

#[test]
fn request_values_finds_the_cookie_among_others() {
    assert_eq!(SIGNED.request_values(["a=1; _app_key=V; b=2"]), ["V"]);
    assert_eq!(SIGNED.request_values(["a=1;_app_key=V;b=2"]), ["V"]);
    assert_eq!(SIGNED.request_values(["_app_key=V"]), ["V"]);
    // Across several header values, in order.
    assert_eq!(SIGNED.request_values(["a=1", "_app_key=X; c=3", "_app_key=Y"]), ["X", "Y"]);
    // Malformed pairs are skipped, not fatal.
    assert_eq!(SIGNED.request_values(["garbage; =nameless; _app_key=V; ;;"]), ["V"]);
    // Other names, including prefixes and suffixes of ours, do not match.
    assert!(SIGNED.request_values(["_app_key_old=1; app_key=2; _APP_KEY=3", "", ";"]).is_empty());
    assert!(SIGNED.request_values(Vec::<&str>::new()).is_empty());
    // Values keep '=' and '.' (a token's separator) intact.
    assert_eq!(SIGNED.request_values(["_app_key=lg1s.1.a=b.c"]), ["lg1s.1.a=b.c"]);
}

/// The `name=value` part of a `Set-Cookie` header, as a browser sends it back.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

#[test]
fn decode_request_round_trip_through_headers() {
    let session = sample_session();
    let value = ENCRYPTED.encode(&session, NOW, &mut OsRandom).unwrap();
    let pair = cookie_pair(&ENCRYPTED.set_cookie_header(&value));
    let header = format!("theme=dark; {pair}; lang=en");
    assert_accepted(&ENCRYPTED.decode_request([header.as_str()], NOW), &session, KeyId(1), false);
}

#[test]
fn decode_request_skips_planted_cookies() {
    let session = sample_session();
    let valid = SIGNED.encode(&session, NOW, &mut OsRandom).unwrap();
    // A planted cookie of the same name first (a sibling subdomain can set one).
    let planted = format!("_app_key=garbage; _app_key={valid}");
    assert_accepted(&SIGNED.decode_request([planted.as_str()], NOW), &session, KeyId(1), false);
    // Across header values too, and behind a planted forged token.
    let forged = valid.replacen("lg1s.1.", "lg1s.1.A", 1);
    let first = format!("_app_key={forged}");
    let second = format!("x=1; _app_key={valid}");
    assert_accepted(&SIGNED.decode_request([first.as_str(), second.as_str()], NOW), &session, KeyId(1), false);

    // Only planted garbage: empty session, the first refusal.
    let decoded = SIGNED.decode_request(["_app_key=garbage; _app_key="], NOW);
    assert_eq!(assert_refused(&decoded, "only garbage"), Rejection::Malformed);
    let decoded = SIGNED.decode_request([first.as_str()], NOW);
    assert_eq!(assert_refused(&decoded, "only forged"), Rejection::BadSignature);

    // No cookie of ours: empty session, no rejection.
    for headers in [vec![], vec!["a=1; b=2"], vec![""]] {
        let decoded = SIGNED.decode_request(headers, NOW);
        assert!(decoded.session.is_empty());
        assert_eq!(decoded.rejection, None);
        assert_eq!(decoded.key_id, None);
        assert!(!decoded.needs_rewrite);
    }
}

#[test]
fn decode_request_reports_rewrites_from_rotating_options() {
    let session = sample_session();
    let reader = SessionCookie::encrypted(NAME, &RING, ENC_SALT).unwrap().rotating_signed(&RING, SALT);
    let old = SIGNED.encode(&session, NOW, &mut OsRandom).unwrap();
    let header = format!("_app_key={old}");
    assert_accepted(&reader.decode_request([header.as_str()], NOW), &session, KeyId(1), true);
}

// ---------------------------------------------------------------------------
// 10. Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_strings_never_yield_a_session(value in any::<String>()) {
        for cookie in [&*SIGNED, &*ENCRYPTED] {
            let decoded = cookie.decode(Some(&value), NOW);
            prop_assert!(decoded.session.is_empty());
            prop_assert!(decoded.rejection.is_some());
            prop_assert_eq!(decoded.key_id, None);
            prop_assert!(!decoded.needs_rewrite);
            let header = format!("_app_key={value}");
            let decoded = cookie.decode_request([header.as_str()], NOW);
            prop_assert!(decoded.session.is_empty());
        }
    }

    #[test]
    fn token_shaped_strings_never_yield_a_session(
        value in "lg1[sx]\\.(0|1|2|01)\\.[A-Za-z0-9_.=-]{0,160}",
    ) {
        for cookie in [&*SIGNED, &*ENCRYPTED] {
            let decoded = cookie.decode(Some(&value), NOW);
            prop_assert!(decoded.session.is_empty());
            prop_assert!(decoded.rejection.is_some());
            prop_assert_eq!(decoded.key_id, None);
        }
    }

    #[test]
    fn arbitrary_sessions_round_trip(
        entries in prop::collection::btree_map("[a-z_]{0,12}", prop::collection::vec(any::<u8>(), 0..700), 0..8),
        encrypted in any::<bool>(),
    ) {
        let cookie = if encrypted { &*ENCRYPTED } else { &*SIGNED };
        let mut session = Session::new();
        for (key, value) in &entries {
            session.put(key, value).unwrap();
        }
        match cookie.encode(&session, NOW, &mut OsRandom) {
            Err(EncodeError::TooLarge) => {}
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
            Ok(value) => {
                prop_assert!(cookie.name().len() + 1 + value.len() <= MAX_COOKIE_LEN);
                let decoded = cookie.decode(Some(&value), NOW);
                prop_assert_eq!(decoded.rejection, None);
                prop_assert_eq!(decoded.key_id, Some(KeyId(1)));
                prop_assert!(!decoded.needs_rewrite);
                let keys: Vec<&str> = decoded.session.keys().collect();
                let expected: Vec<&str> = entries.keys().map(String::as_str).collect();
                prop_assert_eq!(keys, expected);
                for (key, value) in &entries {
                    let got = decoded.session.get::<Vec<u8>>(key).unwrap();
                    prop_assert_eq!(got.as_ref(), Some(value));
                }
                prop_assert_eq!(&decoded.session, &session);
            }
        }
    }
}

#[test]
fn clones_share_entries_until_one_changes() {
    let mut original = Session::new();
    original.put("user_token", "alice").unwrap();
    let mut copy = original.clone();
    assert_eq!(copy, original);
    copy.put("user_token", "bob").unwrap();
    assert_eq!(original.get::<String>("user_token").unwrap().as_deref(), Some("alice"));
    assert_eq!(copy.get::<String>("user_token").unwrap().as_deref(), Some("bob"));

    let mut shared = original.clone();
    shared.clear();
    assert!(shared.is_empty());
    assert_eq!(original.get::<String>("user_token").unwrap().as_deref(), Some("alice"));
    let mut removed = original.clone();
    assert!(removed.remove("user_token"));
    assert!(!removed.remove("user_token"));
    assert!(original.contains_key("user_token"));
    let mut extended = Session::new();
    extended.extend_from(&original);
    assert_eq!(extended, original);
}
