//! `LiveSocketId::new` and `LiveSocketId::from_subject_token` on arbitrary
//! text: validation as documented, the subject token's alphabet, length and
//! exact inverse, injectivity, and the session round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liveguard::session::{self, Session};
use liveguard::socket_id::{self, LiveSocketId, LiveSocketIdError};

/// The documented encoding, written independently: each UTF-8 byte as itself
/// when in `[A-Za-z0-9-]`, else `_` and two uppercase hex digits.
fn oracle_token(id: &str) -> String {
    id.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' { char::from(b).to_string() } else { format!("_{b:02X}") })
        .collect()
}

fn expected_validation(id: &str) -> Result<(), LiveSocketIdError> {
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

fn check_accepted(id: &LiveSocketId) {
    let token = id.subject_token();
    assert!(!token.is_empty());
    assert!(
        token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "token {token:?} of {id:?} leaves [A-Za-z0-9_-]"
    );
    assert!(
        !token.contains(['.', '*', '>']) && !token.contains(char::is_whitespace) && !token.contains(char::is_control),
        "token {token:?} of {id:?}"
    );
    assert_eq!(token, oracle_token(id.as_str()));
    assert_eq!(token.len(), id.subject_token_len());
    assert!(token.len() <= LiveSocketId::MAX_SUBJECT_TOKEN_LEN);
    assert_eq!(LiveSocketId::from_subject_token(&token).as_ref(), Ok(id), "{token:?} does not decode back");

    let mut pushed = String::from("prefix:");
    id.push_subject_token(&mut pushed);
    assert_eq!(pushed, format!("prefix:{token}"));
    let subject = socket_id::subject("app.live", id);
    assert_eq!(subject, format!("app.live.socket.{token}"));
    assert_eq!(subject.split('.').count(), 4, "the id added a subject level: {subject:?}");

    // Through the session, as the application stores it.
    let mut session = Session::new();
    session.put_live_socket_id(id);
    assert_eq!(session.live_socket_id().as_ref(), Some(id));
    assert_eq!(session.get::<String>(session::LIVE_SOCKET_ID).ok().flatten().as_deref(), Some(id.as_str()));
}

fuzz_target!(|data: &[u8]| {
    let text = match std::str::from_utf8(data) {
        Ok(text) => text.to_string(),
        Err(_) => String::from_utf8_lossy(data).into_owned(),
    };

    // `new`: exactly the documented rule, in the documented order.
    let id = LiveSocketId::new(text.as_str());
    assert_eq!(id.as_ref().map(|_| ()).map_err(|e| *e), expected_validation(&text), "{text:?}");
    assert_eq!(text.parse::<LiveSocketId>(), id);
    assert_eq!(LiveSocketId::try_from(text.as_str()), id);
    if let Ok(id) = &id {
        assert_eq!(id.as_str(), text);
        assert_eq!(id.to_string(), text);
        check_accepted(id);
    }

    // A session value that is not a valid id reads as no id.
    let mut session = Session::new();
    session.put(session::LIVE_SOCKET_ID, &text).expect("strings encode");
    assert_eq!(session.live_socket_id(), id.clone().ok());

    // `from_subject_token`: accepts only canonical tokens of valid ids.
    match LiveSocketId::from_subject_token(&text) {
        Ok(decoded) => {
            assert_eq!(decoded.subject_token(), text, "non-canonical token {text:?} accepted");
            check_accepted(&decoded);
        }
        Err(_) => {
            // Had it been the token of a valid id, it would have decoded.
            assert_ne!(id.as_ref().map(|id| id.subject_token() == text), Ok(true));
        }
    }

    // Injectivity: two different ids never share a token.
    if let Some((&split, rest)) = data.split_first() {
        let (a, b) = rest.split_at(usize::from(split) % (rest.len() + 1));
        let a = LiveSocketId::new(String::from_utf8_lossy(a).into_owned());
        let b = LiveSocketId::new(String::from_utf8_lossy(b).into_owned());
        if let (Ok(a), Ok(b)) = (a, b) {
            assert_eq!(a == b, a.subject_token() == b.subject_token(), "{a:?} and {b:?}");
            // Concatenating tokens never forges a third id's token boundary:
            // the concatenation decodes to the concatenated id, when valid.
            let joined = format!("{}{}", a.subject_token(), b.subject_token());
            let joined_id = LiveSocketId::new(format!("{a}{b}"));
            assert_eq!(LiveSocketId::from_subject_token(&joined).ok(), joined_id.ok());
        }
    }
});
