//! `CsrfState::from_session` on the first 24 bytes of the input,
//! `CsrfState::verify` and `verify_request` on the rest, checked against an
//! independent implementation of Plug's token format; and the
//! generate/mask/verify round trip under a deterministic random source.
#![no_main]

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use libfuzzer_sys::fuzz_target;
use liveguard::csrf::{CsrfState, verify_request};
use liveguard::random::{RandomError, SecureRandom};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Plug's rule, written independently: a 56-byte token whose last 24 bytes
/// are base64url text (the mask) and whose first 32 are exactly the
/// base64url of `state XOR mask` (over the ASCII text of both).
fn oracle(state: &str, token: &str) -> bool {
    let token = token.as_bytes();
    if token.len() != 56 || !token[32..].iter().all(|&b| is_b64url(b)) {
        return false;
    }
    let xored: Vec<u8> = state.bytes().zip(&token[32..]).map(|(s, m)| s ^ m).collect();
    URL_SAFE_NO_PAD.encode(xored).as_bytes() == &token[..32]
}

/// The token Plug makes for `state` and a 24-character `mask`.
fn plug_token(state: &str, mask: &str) -> String {
    let xored: Vec<u8> = state.bytes().zip(mask.bytes()).map(|(s, m)| s ^ m).collect();
    URL_SAFE_NO_PAD.encode(xored) + mask
}

/// Maps any bytes into base64url text of the same length.
fn into_alphabet(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(ALPHABET[usize::from(b % 64)])).collect()
}

/// Returns given bytes once, then fails.
struct Replay<'a>(Option<&'a [u8]>);

impl SecureRandom for Replay<'_> {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        match self.0.take() {
            Some(bytes) if bytes.len() == dest.len() => {
                dest.copy_from_slice(bytes);
                Ok(())
            }
            _ => Err(RandomError),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (head, rest) = data.split_at(data.len().min(24));
    let session_value = String::from_utf8_lossy(head);
    let token = String::from_utf8_lossy(rest);

    // The input as it comes.
    let state = CsrfState::from_session(&session_value);
    let valid = session_value.len() == 24 && session_value.bytes().all(is_b64url);
    assert_eq!(state.is_some(), valid, "{session_value:?}");
    if let Some(state) = &state {
        assert_eq!(state.as_str(), session_value);
        assert_eq!(state.verify(&token), oracle(&session_value, &token));
    }
    assert_eq!(verify_request(Some(&session_value), Some(&token)), state.as_ref().is_some_and(|s| s.verify(&token)));
    assert!(!verify_request(None, Some(&token)));
    assert!(!verify_request(Some(&session_value), None));
    // The session value used as a token, and the token as a session value.
    let _ = CsrfState::from_session(&token).map(|s| s.verify(&session_value));

    // A valid state from the same bytes.
    let state_text = into_alphabet(&data[..data.len().min(24)]);
    let state_text = format!("{state_text:A<24}");
    let state = CsrfState::from_session(&state_text).expect("24 base64url characters");
    assert_eq!(state.verify(&token), oracle(&state_text, &token));

    // Any base64url mask makes a token that verifies; no single changed byte
    // does; the token is bound to its state.
    let mut input = Input::new(rest);
    let index = usize::from(input.u8());
    let delta = input.u8();
    let mask = format!("{:A<24}", into_alphabet(input.take(24)));
    let made = plug_token(&state_text, &mask);
    assert_eq!(made.len(), 56);
    assert!(state.verify(&made), "Plug's token for mask {mask:?} refused");
    assert!(verify_request(Some(&state_text), Some(&made)));
    if let Some(tampered) = mutate_one_byte(&made, index, delta) {
        assert!(!state.verify(&tampered), "tampered token {tampered:?} verified");
    }
    assert!(!state.verify(prefix(&made, index % 56)));
    assert!(!state.verify(&format!("{made}A")));
    let mut other_text = state_text.clone().into_bytes();
    let at = index % 24;
    other_text[at] = if other_text[at] == b'A' { b'_' } else { b'A' };
    let other_text = String::from_utf8(other_text).expect("ASCII");
    let other = CsrfState::from_session(&other_text).expect("base64url");
    assert_ne!(other, state);
    assert!(!other.verify(&made), "one token verified for two states");

    // `mask` with the mask's raw bytes from the input equals Plug's token.
    let raw: [u8; 18] = Input::new(rest).bytes();
    let masked = state.mask(&mut Replay(Some(&raw))).expect("18 bytes");
    assert_eq!(masked.as_str(), plug_token(&state_text, &URL_SAFE_NO_PAD.encode(raw)));
    assert!(state.verify(masked.as_str()));

    // Generate and mask under a deterministic random source.
    let mut rng = FixedRng(u64::from_le_bytes(Input::new(rest).bytes()));
    let fresh = CsrfState::generate(&mut rng).expect("the fixed source never fails");
    assert_eq!(fresh.as_str().len(), 24);
    assert!(fresh.as_str().bytes().all(is_b64url));
    assert_eq!(CsrfState::from_session(fresh.as_str()).as_ref(), Some(&fresh));
    let first = fresh.mask(&mut rng).expect("mask");
    let second = fresh.mask(&mut rng).expect("mask");
    assert_ne!(first, second, "two masks from a non-repeating source");
    for t in [&first, &second] {
        assert_eq!(t.as_str().len(), 56);
        assert!(t.as_str().bytes().all(is_b64url));
        assert!(fresh.verify(t.as_str()));
        assert!(oracle(fresh.as_str(), t.as_str()));
        assert_eq!(state.verify(t.as_str()), fresh == state);
    }
    assert!(CsrfState::generate(&mut FailingRng).is_err());
    assert!(fresh.mask(&mut FailingRng).is_err());
});
