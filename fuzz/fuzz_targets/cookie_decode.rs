//! `SessionCookie::decode`, `decode_request` and `request_values` on
//! arbitrary text, the session accessors on whatever decodes, and the
//! encode/decode round trip of sessions holding arbitrary bytes.
#![no_main]

mod common;

use std::sync::LazyLock;

use common::*;
use libfuzzer_sys::fuzz_target;
use liveguard::csrf::CsrfState;
use liveguard::keys::KeyId;
use liveguard::session::{self, DecodedSession, EncodeError, Session, SessionCookie};
use liveguard::socket_id::LiveSocketId;
use liveguard::token::{Rejection, VerifyErrorKind};

const NAME: &str = "_app_key";

struct Fixture {
    /// Signed session cookie.
    signed: SessionCookie,
    /// Encrypted session cookie that still reads the signed one (migration).
    encrypted: SessionCookie,
    /// Same ring and salt as `signed`, another cookie name.
    other_name: SessionCookie,
    /// Same name and salt as `signed`, writing with the main ring's older key 1.
    older_key: SessionCookie,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let ring = main_ring();
    Fixture {
        signed: SessionCookie::signed(NAME, &ring, "signing salt").expect("valid name"),
        encrypted: SessionCookie::encrypted(NAME, &ring, "encryption salt")
            .expect("valid name")
            .rotating_signed(&ring, "signing salt"),
        other_name: SessionCookie::signed("_other_key", &ring, "signing salt").expect("valid name"),
        older_key: SessionCookie::signed(NAME, &older_key_ring(), "signing salt").expect("valid name"),
    }
});

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    if let Ok(text) = std::str::from_utf8(data) {
        arbitrary_text(f, &f.signed, text);
        arbitrary_text(f, &f.encrypted, text);
    }
    round_trip(f, data);
});

/// Reads every value the way an application would, and checks the accessors
/// agree with each other.
fn explore(session: &Session) {
    for key in session.keys() {
        let string = session.get::<String>(key);
        let _ = session.get::<Vec<u8>>(key);
        let _ = session.get::<u64>(key);
        let _ = session.get::<Claims>(key);
        let id = session.get::<LiveSocketId>(key);
        if let Ok(Some(id)) = &id {
            assert_eq!(LiveSocketId::new(id.as_str()).as_ref(), Ok(id));
        }
        if key == session::LIVE_SOCKET_ID {
            assert_eq!(session.live_socket_id(), id.ok().flatten());
        }
        if key == session::CSRF_TOKEN {
            let from_string = string.ok().flatten().and_then(|s| CsrfState::from_session(&s));
            assert_eq!(session.csrf_state(), from_string);
        }
    }
    if !session.contains_key(session::LIVE_SOCKET_ID) {
        assert_eq!(session.live_socket_id(), None);
    }
    if !session.contains_key(session::CSRF_TOKEN) {
        assert!(session.csrf_state().is_none());
    }
    assert_eq!(session.get::<String>("key that is never written"), Ok(None));
}

fn check_decoded(decoded: &DecodedSession) {
    match decoded.rejection {
        Some(rejection) => {
            assert!(decoded.session.is_empty(), "a refused cookie yielded a session");
            assert_eq!(decoded.key_id, None);
            assert!(!decoded.needs_rewrite);
            assert_ne!(rejection.kind(), VerifyErrorKind::Missing);
        }
        // Accepted, or no cookie at all (then nothing is read).
        None => match decoded.key_id {
            Some(key_id) => assert!(key_id == KeyId(3) || key_id == KeyId(1), "accepted under {key_id:?}"),
            None => assert!(decoded.session.is_empty() && !decoded.needs_rewrite),
        },
    }
    explore(&decoded.session);
}

fn arbitrary_text(f: &Fixture, cookie: &SessionCookie, text: &str) {
    let _ = f;
    let decoded = cookie.decode(Some(text), NOW);
    check_decoded(&decoded);
    assert_eq!(decoded.rejection.is_none(), decoded.key_id.is_some());
    if text.len() > session::MAX_COOKIE_LEN {
        assert_eq!(decoded.rejection, Some(Rejection::TooLong));
    }

    // The input as a raw `Cookie` header.
    let values = cookie.request_values([text]);
    let from_request = cookie.decode_request([text], NOW);
    check_decoded(&from_request);
    if values.is_empty() {
        assert_eq!(from_request.rejection, None);
        assert_eq!(from_request.key_id, None);
        assert!(from_request.session.is_empty());
    } else {
        let each: Vec<DecodedSession> = values.iter().map(|v| cookie.decode(Some(v), NOW)).collect();
        match each.iter().find(|d| d.rejection.is_none()) {
            // The first value that verifies wins ...
            Some(first_ok) => {
                assert_eq!(from_request.rejection, None);
                assert_eq!(from_request.key_id, first_ok.key_id);
                assert_eq!(from_request.session, first_ok.session);
            }
            // ... else the first refusal is reported.
            None => assert_eq!(from_request.rejection, each[0].rejection),
        }
    }
    // Two headers are read like one.
    let twice = cookie.request_values([text, text]);
    assert_eq!(twice.len(), 2 * values.len());

    let absent = cookie.decode(None, NOW);
    assert!(absent.rejection.is_none() && absent.key_id.is_none() && absent.session.is_empty());
}

/// Builds a session from the input (arbitrary keys and raw value bytes,
/// the well-known keys included), then encodes and decodes it.
fn round_trip(f: &Fixture, data: &[u8]) {
    let mut input = Input::new(data);
    let seed = input.u64();
    let control = input.u8();
    let mut rng = FixedRng(seed);
    let mut session = Session::new();

    let id_len = input_len(&mut input);
    let id_text = String::from_utf8_lossy(input.take(id_len)).into_owned();
    let id = LiveSocketId::new(id_text.as_str()).ok();
    let csrf = CsrfState::from_session(&String::from_utf8_lossy(input.take(24)));
    if control & 1 != 0 {
        if let Some(id) = &id {
            session.put_live_socket_id(id);
            assert_eq!(session.live_socket_id().as_ref(), Some(id));
        }
    }
    if control & 2 != 0 {
        if let Some(state) = &csrf {
            session.put_csrf_state(state);
            assert_eq!(session.csrf_state().as_ref(), Some(state));
        }
    }
    while let &[selector, ..] = input.take(1) {
        let key = match selector % 8 {
            0 => session::LIVE_SOCKET_ID.to_string(),
            1 => session::CSRF_TOKEN.to_string(),
            2 => session::USER_TOKEN.to_string(),
            _ => String::from_utf8_lossy(input.take(usize::from(selector >> 3))).into_owned(),
        };
        let value_len = input_len(&mut input);
        let value = input.take(value_len);
        session.put(&key, &RawBytes(value)).expect("raw bytes always encode");
        assert!(session.contains_key(&key));
    }
    explore(&session);

    // Signed.
    match f.signed.encode(&session, NOW, &mut rng) {
        Ok(value) => {
            assert!(NAME.len() + 1 + value.len() <= session::MAX_COOKIE_LEN);
            let back = f.signed.decode(Some(&value), NOW);
            assert_eq!((back.rejection, back.key_id, back.needs_rewrite), (None, Some(KeyId(3)), false));
            assert!(back.session == session, "signed round trip changed the session");
            // The encrypted cookie still reads the signed form, and asks for a rewrite.
            let migrated = f.encrypted.decode(Some(&value), NOW);
            assert_eq!((migrated.rejection, migrated.key_id, migrated.needs_rewrite), (None, Some(KeyId(3)), true));
            assert!(migrated.session == session);
            // Bound to the cookie name.
            let renamed = f.other_name.decode(Some(&value), NOW);
            assert_eq!(renamed.rejection, Some(Rejection::BadSignature));
            headers(f, &f.signed, &value, &session, control);
        }
        Err(err) => assert_eq!(err, EncodeError::TooLarge),
    }

    // Encrypted.
    match f.encrypted.encode(&session, NOW, &mut rng) {
        Ok(value) => {
            let back = f.encrypted.decode(Some(&value), NOW);
            assert_eq!((back.rejection, back.key_id, back.needs_rewrite), (None, Some(KeyId(3)), false));
            assert!(back.session == session, "encrypted round trip changed the session");
            let as_signed = f.signed.decode(Some(&value), NOW);
            assert!(as_signed.rejection.is_some_and(|r| r.kind() == VerifyErrorKind::Invalid));
            headers(f, &f.encrypted, &value, &session, control);
        }
        Err(err) => assert_eq!(err, EncodeError::TooLarge),
    }

    // Older key: still read, and reported.
    if let Ok(value) = f.older_key.encode(&session, NOW, &mut rng) {
        let back = f.signed.decode(Some(&value), NOW);
        assert_eq!((back.rejection, back.key_id), (None, Some(KeyId(1))));
        assert!(back.session == session);
    }
}

/// The value through `Set-Cookie` and `Cookie` headers, next to other
/// cookies and next to a planted cookie of the same name.
fn headers(f: &Fixture, cookie: &SessionCookie, value: &str, session: &Session, control: u8) {
    let _ = f;
    let set_cookie = cookie.set_cookie_header(value);
    assert!(set_cookie.starts_with(&format!("{NAME}={value}")), "{set_cookie}");

    assert_eq!(cookie.request_values([format!("a=1; {NAME}={value}; b=2").as_str()]), vec![value.to_string()]);

    // A planted cookie of the same name (one character changed) cannot
    // shadow the real one, before or after it.
    let index = usize::from(control) % value.len();
    let mut planted = value.as_bytes().to_vec();
    planted[index] = if planted[index] == b'A' { b'B' } else { b'A' };
    let planted = String::from_utf8(planted).expect("ASCII");
    for header in [format!("{NAME}={planted}; {NAME}={value}"), format!("{NAME}={value}; {NAME}={planted}")] {
        let decoded = cookie.decode_request([header.as_str()], NOW);
        assert_eq!(decoded.rejection, None, "{header}");
        assert!(decoded.session == *session);
    }
    let refused = cookie.decode_request([format!("{NAME}={planted}").as_str()], NOW);
    assert!(refused.rejection.is_some(), "a planted cookie verified");
}

/// A length from one byte, at most 63.
fn input_len(input: &mut Input<'_>) -> usize {
    usize::from(input.u8() % 64)
}
