//! `LiveSocketId` validation and its injective mapping onto a NATS subject
//! token (docs/ARCHITECTURE.md, invariant 8).

use std::collections::HashMap;
use std::str::FromStr;

use liveguard::socket_id::{LiveSocketId, LiveSocketIdError, SubjectTokenError, subject};
use proptest::prelude::*;

const MAX: usize = LiveSocketId::MAX_LEN;

fn id(s: &str) -> LiveSocketId {
    match LiveSocketId::new(s) {
        Ok(id) => id,
        Err(e) => panic!("{s:?} should be a valid id: {e}"),
    }
}

/// The properties every token must have, whatever the id.
fn assert_safe_token(token: &str) {
    assert!(!token.is_empty(), "empty token");
    assert!(token.len() <= LiveSocketId::MAX_SUBJECT_TOKEN_LEN, "token of {} bytes", token.len());
    for c in token.chars() {
        assert!(c.is_ascii_alphanumeric() || c == '_' || c == '-', "{c:?} in token {token:?}");
        assert!(!matches!(c, '.' | '*' | '>'), "{c:?} in token {token:?}");
        assert!(!c.is_whitespace(), "whitespace in token {token:?}");
        assert!(!c.is_control(), "control character in token {token:?}");
    }
}

/// Checks everything an accepted id must satisfy and returns its token.
fn check_accepted(s: &str) -> String {
    let id = id(s);
    assert_eq!(id.as_str(), s);
    let token = id.subject_token();
    assert_safe_token(&token);
    assert_eq!(token.len(), id.subject_token_len());
    assert_eq!(LiveSocketId::from_subject_token(&token), Ok(id.clone()));
    let mut pushed = String::from("x.");
    id.push_subject_token(&mut pushed);
    assert_eq!(pushed, format!("x.{token}"));
    token
}

// ----- validation -----

#[test]
fn hostile_but_valid_ids_are_accepted_and_escaped() {
    let cases = [
        ("a.>", "a_2E_3E"),
        ("*", "_2A"),
        (">", "_3E"),
        ("users.*", "users_2E_2A"),
        ("a b", "a_20b"),
        ("a.b", "a_2Eb"),
        ("_", "_5F"),
        ("users_sessions:abc=", "users_5Fsessions_3Aabc_3D"),
        ("用户:ü", "_E7_94_A8_E6_88_B7_3A_C3_BC"),
        ("🦀", "_F0_9F_A6_80"),
        // Unicode whitespace that is not a control character.
        ("a\u{2028}b", "a_E2_80_A8b"),
        ("a\u{a0}b", "a_C2_A0b"),
        ("Plain-Id-09", "Plain-Id-09"),
    ];
    for (s, expected) in cases {
        assert_eq!(check_accepted(s), expected, "token of {s:?}");
    }
}

#[test]
fn control_characters_are_refused() {
    for s in ["a\tb", "a\nb", "\r", "\0", "a\u{7f}", "a\u{85}b", "\u{9f}", "\u{1b}[31m"] {
        assert_eq!(LiveSocketId::new(s), Err(LiveSocketIdError::ControlCharacter), "{s:?}");
    }
}

#[test]
fn empty_id_is_refused() {
    assert_eq!(LiveSocketId::new(""), Err(LiveSocketIdError::Empty));
    assert_eq!(LiveSocketId::new(String::new()), Err(LiveSocketIdError::Empty));
}

#[test]
fn length_is_bounded_in_bytes() {
    assert_eq!(MAX, 256);
    assert_eq!(LiveSocketId::MAX_SUBJECT_TOKEN_LEN, 3 * MAX);

    let at_limit = "a".repeat(MAX);
    assert_eq!(check_accepted(&at_limit), at_limit);
    assert_eq!(LiveSocketId::new("a".repeat(MAX + 1)), Err(LiveSocketIdError::TooLong));
    assert_eq!(LiveSocketId::new("x".repeat(10 * 1024)), Err(LiveSocketIdError::TooLong));
    // Length is checked before content: an oversized id of control
    // characters reports TooLong.
    assert_eq!(LiveSocketId::new("\0".repeat(MAX + 1)), Err(LiveSocketIdError::TooLong));

    // A two-byte character ending exactly at the limit, then straddling it.
    let ends_at_limit = format!("{}ü", "a".repeat(MAX - 2));
    assert_eq!(ends_at_limit.len(), MAX);
    check_accepted(&ends_at_limit);
    let straddles = format!("{}ü", "a".repeat(MAX - 1));
    assert_eq!(straddles.len(), MAX + 1);
    assert_eq!(LiveSocketId::new(straddles), Err(LiveSocketIdError::TooLong));
    // A four-byte character straddling the limit.
    let straddles = format!("{}🦀", "a".repeat(MAX - 2));
    assert_eq!(LiveSocketId::new(straddles), Err(LiveSocketIdError::TooLong));
}

#[test]
fn longest_token_is_at_its_bound() {
    let all_escaped = ".".repeat(MAX);
    let token = check_accepted(&all_escaped);
    assert_eq!(token.len(), LiveSocketId::MAX_SUBJECT_TOKEN_LEN);
    assert_eq!(token, "_2E".repeat(MAX));
}

#[test]
fn conversions_agree_with_new() {
    for s in ["users_sessions:abc=", "", "a\nb", "ok"] {
        let expected = LiveSocketId::new(s);
        assert_eq!(LiveSocketId::try_from(s), expected);
        assert_eq!(LiveSocketId::try_from(s.to_owned()), expected);
        assert_eq!(LiveSocketId::from_str(s), expected);
        assert_eq!(s.parse::<LiveSocketId>(), expected);
    }
    let id = id("abc");
    assert_eq!(id.as_ref(), "abc");
    assert_eq!(String::from(id.clone()), "abc");
    assert_eq!(id.into_string(), "abc");
}

#[test]
fn debug_and_display_show_the_id() {
    let id = id("users_sessions:a b");
    assert_eq!(id.to_string(), "users_sessions:a b");
    assert_eq!(format!("{id:?}"), r#"LiveSocketId("users_sessions:a b")"#);
}

#[test]
fn errors_display_something_useful() {
    assert_eq!(LiveSocketIdError::TooLong.to_string(), "the live_socket_id is longer than 256 bytes");
    assert!(LiveSocketIdError::Empty.to_string().contains("empty"));
    assert!(LiveSocketIdError::ControlCharacter.to_string().contains("control character"));
    let e = SubjectTokenError::InvalidId(LiveSocketIdError::Empty);
    assert!(e.to_string().contains("empty"));
    let source = std::error::Error::source(&e).map(ToString::to_string);
    assert_eq!(source, Some(LiveSocketIdError::Empty.to_string()));
    assert!(std::error::Error::source(&SubjectTokenError::InvalidEscape).is_none());
}

// ----- phx.gen.auth -----

#[test]
fn phx_gen_auth_style_id() {
    // "users_sessions:" <> Base.url_encode64(<32 random bytes>), padded.
    let s = "users_sessions:3q2-7_7K-r7erb6vrO_e3q2-7_7K-r7erb6vrO_e3q0=";
    let token = check_accepted(s);
    assert_eq!(token, "users_5Fsessions_3A3q2-7_5F7K-r7erb6vrO_5Fe3q2-7_5F7K-r7erb6vrO_5Fe3q0_3D");
    assert_eq!(subject("liveguard", &id(s)), format!("liveguard.socket.{token}"));

    // Ids built exactly as phx.gen.auth does, from 32-byte session tokens.
    use base64::Engine as _;
    for fill in [0x00u8, 0x3e, 0xfb, 0xff] {
        let raw = [fill; 32];
        let encoded = base64::engine::general_purpose::URL_SAFE.encode(raw);
        assert!(encoded.ends_with('='));
        let s = format!("users_sessions:{encoded}");
        assert_eq!(s.len(), 59);
        check_accepted(&s);
    }
}

#[test]
fn subject_has_exactly_three_levels_below_a_one_token_prefix() {
    for s in ["a.b.c", "*", ">", "a.>", "x y", "users.*.>"] {
        let subj = subject("liveguard", &id(s));
        let levels: Vec<&str> = subj.split('.').collect();
        assert_eq!(levels.len(), 3, "{subj}");
        assert_eq!(levels.first(), Some(&"liveguard"));
        assert_eq!(levels.get(1), Some(&"socket"));
        assert_eq!(levels.get(2).copied(), Some(id(s).subject_token().as_str()));
    }
    assert_eq!(subject("app.prod", &id("a")), "app.prod.socket.a");
}

// ----- injectivity and the inverse -----

#[test]
fn near_collisions_have_distinct_tokens() {
    let ids = [
        "a",
        "A",
        "a_",
        "a_5F",
        "a_5f",
        "a-",
        "a--",
        "_",
        "_5F",
        "__",
        "_5F5F",
        "a.b",
        "a_2Eb",
        "a_2eb",
        "a b",
        "a_20b",
        "a%20b",
        "a=",
        "a_3D",
        "-",
        "5F",
        "_2D",
        "ü",
        "_C3_BC",
        "aa",
        "a a",
        "A_",
        "a:",
        "a_3A",
        "users_sessions:x",
        "users_5Fsessions_3Ax",
    ];
    let mut seen: HashMap<String, &str> = HashMap::new();
    for s in ids {
        let token = check_accepted(s);
        if let Some(previous) = seen.insert(token.clone(), s) {
            panic!("{previous:?} and {s:?} share the token {token:?}");
        }
    }
    assert_eq!(seen.len(), ids.len());
}

#[test]
fn non_canonical_and_malformed_tokens_are_refused() {
    use SubjectTokenError::*;
    let cases: &[(&str, SubjectTokenError)] = &[
        // lowercase hex
        ("_2e", InvalidEscape),
        ("a_3a", InvalidEscape),
        ("_c3_bc", InvalidEscape),
        // dangling or short escapes
        ("_", InvalidEscape),
        ("a_", InvalidEscape),
        ("a_5", InvalidEscape),
        ("__5F", InvalidEscape),
        ("_G0", InvalidEscape),
        ("_0G", InvalidEscape),
        ("_-1", InvalidEscape),
        // escapes of bytes that are written as themselves
        ("_61", NonCanonicalEscape),
        ("_41", NonCanonicalEscape),
        ("_30", NonCanonicalEscape),
        ("_2D", NonCanonicalEscape),
        ("x_7A", NonCanonicalEscape),
        // characters that never appear in a token
        ("a.b", InvalidCharacter),
        ("*", InvalidCharacter),
        (">", InvalidCharacter),
        ("a b", InvalidCharacter),
        ("a\tb", InvalidCharacter),
        ("ü", InvalidCharacter),
        ("a=", InvalidCharacter),
        // escapes that decode to bytes that are not UTF-8
        ("_FF", InvalidUtf8),
        ("_C3", InvalidUtf8),
        ("_E7_94", InvalidUtf8),
        ("_C0_AE", InvalidUtf8),
        // escapes that decode to an invalid id
        ("", InvalidId(LiveSocketIdError::Empty)),
        ("_00", InvalidId(LiveSocketIdError::ControlCharacter)),
        ("a_0Ab", InvalidId(LiveSocketIdError::ControlCharacter)),
        ("_7F", InvalidId(LiveSocketIdError::ControlCharacter)),
        ("_C2_85", InvalidId(LiveSocketIdError::ControlCharacter)),
    ];
    for (token, expected) in cases {
        assert_eq!(LiveSocketId::from_subject_token(token), Err(*expected), "{token:?}");
    }
}

#[test]
fn oversized_tokens_are_refused() {
    let too_long = "a".repeat(MAX + 1);
    assert_eq!(
        LiveSocketId::from_subject_token(&too_long),
        Err(SubjectTokenError::InvalidId(LiveSocketIdError::TooLong))
    );
    let escaped_too_long = "_2E".repeat(MAX + 1);
    assert_eq!(
        LiveSocketId::from_subject_token(&escaped_too_long),
        Err(SubjectTokenError::InvalidId(LiveSocketIdError::TooLong))
    );
    assert_eq!(
        LiveSocketId::from_subject_token(&"a".repeat(10 * 1024)),
        Err(SubjectTokenError::InvalidId(LiveSocketIdError::TooLong))
    );
    // A token whose length is within the token bound but whose id is not.
    let mixed = format!("{}{}", "_2E".repeat(MAX), "a");
    assert_eq!(mixed.len(), LiveSocketId::MAX_SUBJECT_TOKEN_LEN + 1);
    assert_eq!(LiveSocketId::from_subject_token(&mixed), Err(SubjectTokenError::InvalidId(LiveSocketIdError::TooLong)));
    let mixed = format!("{}{}", "_2E".repeat(MAX - 1), "ab");
    assert!(mixed.len() <= LiveSocketId::MAX_SUBJECT_TOKEN_LEN);
    assert_eq!(LiveSocketId::from_subject_token(&mixed), Err(SubjectTokenError::InvalidId(LiveSocketIdError::TooLong)));
}

// ----- serde -----

#[test]
fn serde_round_trip() -> Result<(), serde_json::Error> {
    for s in ["users_sessions:abc=", "用户:ü", "a.>", "a b"] {
        let id = id(s);
        let json = serde_json::to_string(&id)?;
        assert_eq!(json, serde_json::to_string(s)?);
        let back: LiveSocketId = serde_json::from_str(&json)?;
        assert_eq!(back, id);
    }
    Ok(())
}

#[test]
fn serde_revalidates() {
    let too_long = serde_json::to_string(&"a".repeat(MAX + 1)).unwrap_or_default();
    for json in [r#""""#, r#""a\nb""#, r#""\u0000""#, r#""a\u007f""#, too_long.as_str(), "42", "null", r#"["a"]"#] {
        assert!(serde_json::from_str::<LiveSocketId>(json).is_err(), "{json} was accepted");
    }
    let err = serde_json::from_str::<LiveSocketId>(r#""""#).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("empty"), "{err}");
    // Inside a struct, as a session would hold it.
    #[derive(serde::Deserialize)]
    struct Session {
        #[allow(dead_code)]
        live_socket_id: LiveSocketId,
    }
    assert!(serde_json::from_str::<Session>(r#"{"live_socket_id":"a\tb"}"#).is_err());
    assert!(serde_json::from_str::<Session>(r#"{"live_socket_id":"a.b"}"#).is_ok());
}

// ----- properties -----

/// Strings rich in the characters that matter: escapes, subject syntax,
/// whitespace, control characters, multi-byte characters.
fn tricky_string() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('a'),
            Just('A'),
            Just('5'),
            Just('F'),
            Just('_'),
            Just('-'),
            Just('.'),
            Just('*'),
            Just('>'),
            Just(' '),
            Just('\t'),
            Just('\0'),
            Just('\u{7f}'),
            Just('ü'),
            Just('🦀'),
            any::<char>(),
        ],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #[test]
    fn new_never_panics_and_matches_the_rules(s in any::<String>()) {
        let expected = if s.is_empty() {
            Err(LiveSocketIdError::Empty)
        } else if s.len() > MAX {
            Err(LiveSocketIdError::TooLong)
        } else if s.chars().any(char::is_control) {
            Err(LiveSocketIdError::ControlCharacter)
        } else {
            Ok(s.clone())
        };
        prop_assert_eq!(LiveSocketId::new(s).map(LiveSocketId::into_string), expected);
    }

    #[test]
    fn accepted_ids_round_trip_through_a_safe_token(
        s in prop_oneof![any::<String>(), tricky_string()]
    ) {
        if let Ok(id) = LiveSocketId::new(s.as_str()) {
            let token = id.subject_token();
            prop_assert!(!token.is_empty());
            prop_assert!(
                token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "token {:?}", token
            );
            prop_assert!(token.len() <= LiveSocketId::MAX_SUBJECT_TOKEN_LEN);
            prop_assert_eq!(token.len(), id.subject_token_len());
            prop_assert_eq!(LiveSocketId::from_subject_token(&token), Ok(id));
        }
    }

    #[test]
    fn distinct_ids_have_distinct_tokens(a in tricky_string(), b in tricky_string()) {
        if let (Ok(x), Ok(y)) = (LiveSocketId::new(a.as_str()), LiveSocketId::new(b.as_str())) {
            prop_assert_eq!(x == y, x.subject_token() == y.subject_token());
        }
    }

    #[test]
    fn decoding_accepts_only_canonical_tokens(
        t in prop_oneof![
            "[A-Za-z0-9_-]{0,16}",
            "([a-z]|_[0-9A-Fa-f]{0,2}|[.*> ]){0,10}",
            any::<String>(),
        ]
    ) {
        // Never panics; whatever it accepts re-encodes to the same token.
        if let Ok(id) = LiveSocketId::from_subject_token(&t) {
            prop_assert_eq!(id.subject_token(), t);
        }
    }
}
