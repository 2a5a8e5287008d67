//! Tests of the public CSRF API: known-answer vectors computed outside this
//! crate, round trips with the OS random source, and refusal of every
//! malformed or foreign token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use liveguard::OsRandom;
use liveguard::csrf::{CsrfState, MaskedToken, PARAM, SESSION_KEY, verify_request};
use liveguard::random::{RandomError, SecureRandom};
use proptest::prelude::*;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Fills from a byte counter: 0, 1, 2, ... across calls.
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

// Known-answer vectors, computed with python3 (not with this crate):
//
//   import base64
//   b = lambda x: base64.urlsafe_b64encode(bytes(x)).decode().rstrip('=')
//   x = lambda s, m: b([ord(a) ^ ord(c) for a, c in zip(s, m)])
//   st = b(range(0, 18)); m1 = b(range(18, 36)); m2 = b(range(36, 54))
//   st, x(st, m1) + m1, x(st, m2) + m2
//   st2 = b([0xff] * 18); m3 = b([0xfb] * 18); st2, x(st2, m3) + m3

/// `b(range(0, 18))`
const KAT_STATE: &str = "AAECAwQFBgcICQoLDA0ODxAR";
/// `x(st, m1) + m1` with `m1 = b(range(18, 36))`
const KAT_TOKEN_1: &str = "BCkIFgclCB4FJQgoBCkYKAwpCCgNKwg4EhMUFRYXGBkaGxwdHh8gISIj";
/// `x(st, m2) + m2` with `m2 = b(range(36, 54))`
const KAT_TOKEN_2: &str = "CwIQLgsONjYJDhA6DwJbOgkFdTYJAhBjJCUmJygpKissLS4vMDEyMzQ1";
/// `b([0xff] * 18)`
const KAT_STATE_FF: &str = "________________________";
/// `x(st2, m3) + m3` with `m3 = b([0xfb] * 18)`
const KAT_TOKEN_FF: &str = "cgApaHIAKWhyAClocgApaHIAKWhyAClo-_v7-_v7-_v7-_v7-_v7-_v7";

fn os_state() -> CsrfState {
    CsrfState::generate(&mut OsRandom).expect("OS random")
}

fn os_token(state: &CsrfState) -> MaskedToken {
    state.mask(&mut OsRandom).expect("OS random")
}

#[test]
fn names_are_plugs() {
    assert_eq!(SESSION_KEY, "_csrf_token");
    assert_eq!(PARAM, "_csrf_token");
}

#[test]
fn known_answer_state_and_tokens() {
    let mut rng = Counter(0);
    let state = CsrfState::generate(&mut rng).unwrap();
    assert_eq!(state.as_str(), KAT_STATE);
    let t1 = state.mask(&mut rng).unwrap();
    assert_eq!(t1.as_str(), KAT_TOKEN_1);
    let t2 = state.mask(&mut rng).unwrap();
    assert_eq!(t2.as_str(), KAT_TOKEN_2);
    assert!(state.verify(KAT_TOKEN_1));
    assert!(state.verify(KAT_TOKEN_2));
}

#[test]
fn known_answer_with_dash_and_underscore() {
    let mut rng = Fixed([[0xff; 18], [0xfb; 18]].concat());
    let state = CsrfState::generate(&mut rng).unwrap();
    assert_eq!(state.as_str(), KAT_STATE_FF);
    let token = state.mask(&mut rng).unwrap();
    assert_eq!(token.as_str(), KAT_TOKEN_FF);
    assert!(state.verify(KAT_TOKEN_FF));
}

#[test]
fn externally_computed_tokens_verify_against_session_state() {
    let state = CsrfState::from_session(KAT_STATE).unwrap();
    assert!(state.verify(KAT_TOKEN_1));
    assert!(state.verify(KAT_TOKEN_2));
    assert!(!state.verify(KAT_TOKEN_FF));
    let state_ff = CsrfState::from_session(KAT_STATE_FF).unwrap();
    assert!(state_ff.verify(KAT_TOKEN_FF));
    assert!(!state_ff.verify(KAT_TOKEN_1));
}

#[test]
fn random_failure_is_an_error() {
    assert_eq!(CsrfState::generate(&mut Failing).err(), Some(RandomError));
    let state = CsrfState::generate(&mut Counter(0)).unwrap();
    assert_eq!(state.mask(&mut Failing).err(), Some(RandomError));
    // Fewer bytes than a mask needs: an error, not a short token.
    assert_eq!(state.mask(&mut Fixed(vec![1; 17])).err(), Some(RandomError));
}

#[test]
fn os_random_round_trip() {
    let state = os_state();
    assert_eq!(state.as_str().len(), 24);
    assert!(state.as_str().bytes().all(|b| ALPHABET.contains(&b)));
    let a = os_token(&state);
    let b = os_token(&state);
    assert_ne!(a, b, "each mask is fresh");
    for token in [&a, &b] {
        assert_eq!(token.as_str().len(), 56);
        assert!(token.as_str().bytes().all(|b| ALPHABET.contains(&b)));
        assert!(state.verify(token.as_str()));
    }
    // Through the session string, as a later request would see it.
    let restored = CsrfState::from_session(state.as_str()).unwrap();
    assert_eq!(restored, state);
    assert!(restored.verify(a.as_str()));
    assert!(verify_request(Some(state.as_str()), Some(b.as_str())));
}

#[test]
fn two_states_differ() {
    assert_ne!(os_state(), os_state());
}

#[test]
fn token_for_another_state_is_refused() {
    let a = os_state();
    let b = os_state();
    let token_a = os_token(&a);
    let token_b = os_token(&b);
    assert!(a.verify(token_a.as_str()));
    assert!(b.verify(token_b.as_str()));
    assert!(!b.verify(token_a.as_str()));
    assert!(!a.verify(token_b.as_str()));
    assert!(!verify_request(Some(b.as_str()), Some(token_a.as_str())));
}

#[test]
fn state_text_itself_is_not_a_token() {
    let state = os_state();
    assert!(!state.verify(state.as_str()));
    // Neither is the state twice plus padding to 56, nor the bare mask.
    let token = os_token(&state);
    let doubled = format!("{0}{0}{1}", state.as_str(), &state.as_str()[..8]);
    assert_eq!(doubled.len(), 56);
    assert!(!state.verify(&doubled));
    assert!(!state.verify(&token.as_str()[32..]));
}

#[test]
fn every_single_character_change_is_refused() {
    for (state, token) in [
        (CsrfState::from_session(KAT_STATE).unwrap(), KAT_TOKEN_1.to_owned()),
        (CsrfState::from_session(KAT_STATE_FF).unwrap(), KAT_TOKEN_FF.to_owned()),
        {
            let s = os_state();
            let t = os_token(&s).into_string();
            (s, t)
        },
    ] {
        assert!(state.verify(&token));
        let bytes = token.as_bytes();
        let mut tried = 0;
        for pos in 0..bytes.len() {
            for &c in ALPHABET.iter().chain(b"+/=. \0") {
                if c == bytes[pos] {
                    continue;
                }
                let mut changed = bytes.to_vec();
                changed[pos] = c;
                let changed = String::from_utf8(changed).unwrap();
                assert!(!state.verify(&changed), "accepted {changed:?} (position {pos})");
                tried += 1;
            }
        }
        assert_eq!(tried, 56 * (64 + 6 - 1));
    }
}

#[test]
fn invalid_shapes_are_refused() {
    let state = CsrfState::from_session(KAT_STATE).unwrap();
    let valid = KAT_TOKEN_1;
    assert!(state.verify(valid));
    let cases: Vec<String> = vec![
        String::new(),
        " ".into(),
        valid[..55].into(),
        valid[1..].into(),
        valid[..32].into(),
        valid[32..].into(),
        format!("{valid}A"),
        format!("A{valid}"),
        format!("{valid} "),
        format!(" {valid}"),
        format!("{valid}\n"),
        format!("{valid}="),
        format!("{valid}{valid}"),
        // Plug's base64 with the standard alphabet or with padding.
        valid.replace('-', "+").replace('_', "/") + "==",
        // The halves swapped.
        format!("{}{}", &valid[24..], &valid[..24]),
        // Non-ASCII: 56 bytes but fewer characters, in either half.
        format!("é{}", &valid[2..]),
        format!("{}é", &valid[..54]),
        format!("{}€{}", &valid[..30], &valid[33..]),
        "é".repeat(28),
        "\0".repeat(56),
        "A".repeat(56),
        // Bad base64 in the first half, right length.
        format!("{}+{}", &valid[..10], &valid[11..]),
        format!("{}/{}", &valid[..10], &valid[11..]),
        format!("{}={}", &valid[..31], &valid[32..]),
        format!("{}=={}", &valid[..30], &valid[32..]),
        // Bad base64 in the mask half, right length.
        format!("{}+{}", &valid[..40], &valid[41..]),
        format!("{}={}", &valid[..55], ""),
    ];
    for case in &cases {
        assert!(!state.verify(case), "accepted {case:?}");
        assert!(!verify_request(Some(KAT_STATE), Some(case)), "accepted {case:?}");
    }
    // The standard-alphabet form of a token that has '-' and '_'.
    let standard = KAT_TOKEN_FF.replace('-', "+").replace('_', "/");
    assert_ne!(standard, KAT_TOKEN_FF);
    assert!(!CsrfState::from_session(KAT_STATE_FF).unwrap().verify(&standard));
}

/// Tokens whose first half is base64url of `state XOR mask` for a mask that
/// is not base64url text. Plug's plain XOR comparison would accept them;
/// `verify` refuses a mask that no generator could have produced. Computed
/// with python3:
///
///   st = 'AAECAwQFBgcICQoLDA0ODxAR'
///   b(bytes(a ^ c for a, c in zip(st.encode(), m.encode()))) + m
///
/// for `m` in `'+' * 23 + '='`, `'EhMUFRYXGBkaGxwdHh8gISI='`, `'é' * 12`,
/// `' ' * 24`.
#[test]
fn mask_must_be_base64url() {
    let state = CsrfState::from_session(KAT_STATE).unwrap();
    for token in [
        "ampuaGpcem1pTEhiaHpEZ29qG2RvU2pv+++++++++++++++++++++++=",
        "BCkIFgclCB4FJQgoBCkYKAwpCCgNKwhvEhMUFRYXGBkaGxwdHh8gISI=",
        "guiG6oLeku-BzqDggPis5Yfo8-aH0YL7éééééééééééé",
        "YWFlY2FXcWZiR0NpY3FPbGRhEG9kWGFy                        ",
    ] {
        assert_eq!(token.len(), 56);
        assert!(!state.verify(token), "accepted {token:?}");
    }
}

#[test]
fn from_session_accepts_exactly_24_alphabet_chars() {
    for ok in [
        KAT_STATE,
        KAT_STATE_FF,
        "------------------------",
        "AAAAAAAAAAAAAAAAAAAAAAAA",
        "abcdefghijklmnopqrstuvwx",
        "yz0123456789-_ABCDEFGHIJ",
    ] {
        let state = CsrfState::from_session(ok).unwrap();
        assert_eq!(state.as_str(), ok);
    }
    for bad in [
        "",
        "A",
        &KAT_STATE[..23],
        &format!("{KAT_STATE}A"),
        &format!("{KAT_STATE}{KAT_STATE}"),
        "AAECAwQFBgcICQoLDA0ODx==",
        "AAECAwQFBgcICQoLDA0ODxA=",
        "AAECAwQFBgcICQoLDA0ODxA+",
        "AAECAwQFBgcICQoLDA0ODxA/",
        "AAECAwQFBgcICQoLDA0ODxA.",
        "AAECAwQFBgcICQoLDA0ODxA ",
        " AECAwQFBgcICQoLDA0ODxAR",
        "AAECAwQFBgcICQoLDA0ODxA\n",
        "AAECAwQFBgcICQoLDA0ODxA\0",
        "AAECAwQFBgcICQoLDA0ODé",
        &"é".repeat(12),
        KAT_TOKEN_1,
    ] {
        assert!(CsrfState::from_session(bad).is_none(), "accepted {bad:?}");
        assert!(!verify_request(Some(bad), Some(KAT_TOKEN_1)));
    }
}

#[test]
fn verify_request_needs_both_parts() {
    assert!(verify_request(Some(KAT_STATE), Some(KAT_TOKEN_1)));
    assert!(!verify_request(None, Some(KAT_TOKEN_1)));
    assert!(!verify_request(Some(KAT_STATE), None));
    assert!(!verify_request(None, None));
    assert!(!verify_request(Some(""), Some(KAT_TOKEN_1)));
    assert!(!verify_request(Some(KAT_STATE), Some("")));
    assert!(!verify_request(Some(KAT_STATE_FF), Some(KAT_TOKEN_1)));
    // The arguments in the wrong order.
    assert!(!verify_request(Some(KAT_TOKEN_1), Some(KAT_STATE)));
}

#[test]
fn state_debug_hides_the_value() {
    let state = os_state();
    let debug = format!("{state:?}");
    assert_eq!(debug, "CsrfState(..)");
    assert!(!debug.contains(state.as_str()));
    let nested = format!("{:?}", Some(&state));
    assert!(!nested.contains(state.as_str()));
}

#[test]
fn token_display_and_debug_show_the_token() {
    let token = CsrfState::from_session(KAT_STATE).unwrap().mask(&mut Counter(18)).unwrap();
    assert_eq!(token.to_string(), KAT_TOKEN_1);
    assert!(format!("{token:?}").contains(KAT_TOKEN_1));
    assert_eq!(token.clone().into_string(), KAT_TOKEN_1);
    assert_eq!(token.as_str(), KAT_TOKEN_1);
}

#[test]
fn state_clone_and_equality() {
    let state = CsrfState::from_session(KAT_STATE).unwrap();
    let clone = state.clone();
    assert_eq!(clone, state);
    assert_eq!(clone.as_str(), KAT_STATE);
    assert_ne!(state, CsrfState::from_session(KAT_STATE_FF).unwrap());
    // One character apart.
    let near = format!("{}S", &KAT_STATE[..23]);
    assert_ne!(state, CsrfState::from_session(&near).unwrap());
}

/// Plug's scheme, written out independently of the crate with the `base64`
/// crate.
fn model_token(state_raw: &[u8; 18], mask_raw: &[u8; 18]) -> (String, String) {
    let state = URL_SAFE_NO_PAD.encode(state_raw);
    let mask = URL_SAFE_NO_PAD.encode(mask_raw);
    let xored: Vec<u8> = state.bytes().zip(mask.bytes()).map(|(s, m)| s ^ m).collect();
    let token = URL_SAFE_NO_PAD.encode(xored) + &mask;
    (state, token)
}

proptest! {
    #[test]
    fn round_trip_for_any_state_and_mask(state_raw: [u8; 18], mask_raw: [u8; 18]) {
        let mut rng = Fixed([state_raw, mask_raw].concat());
        let state = CsrfState::generate(&mut rng).unwrap();
        let token = state.mask(&mut rng).unwrap();
        let (model_state, model_token) = model_token(&state_raw, &mask_raw);
        prop_assert_eq!(state.as_str(), model_state.as_str());
        prop_assert_eq!(token.as_str(), model_token.as_str());
        prop_assert!(state.verify(token.as_str()));
        let restored = CsrfState::from_session(state.as_str()).unwrap();
        prop_assert!(restored.verify(token.as_str()));
        prop_assert!(verify_request(Some(state.as_str()), Some(token.as_str())));
    }

    #[test]
    fn arbitrary_strings_are_refused(
        s in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{56}",
            "[A-Za-z0-9_=+/-]{50,60}",
            "\\PC{50,60}",
            proptest::collection::vec(any::<char>(), 0..80)
                .prop_map(|cs| cs.into_iter().collect::<String>()),
        ]
    ) {
        let state = CsrfState::from_session(KAT_STATE).unwrap();
        prop_assume!(s != KAT_TOKEN_1 && s != KAT_TOKEN_2);
        prop_assert!(!state.verify(&s));
        prop_assert!(!verify_request(Some(KAT_STATE), Some(&s)));
        // As a session value too: never panics, and only alphabet text of
        // length 24 is a state.
        let is_state = s.len() == 24 && s.bytes().all(|b| ALPHABET.contains(&b));
        prop_assert_eq!(CsrfState::from_session(&s).is_some(), is_state);
    }

    #[test]
    fn any_other_mask_half_is_refused(mask in "[A-Za-z0-9_-]{24}|\\PC{1,24}") {
        let state = CsrfState::from_session(KAT_STATE).unwrap();
        let token = format!("{}{}", &KAT_TOKEN_1[..32], mask);
        prop_assume!(token != KAT_TOKEN_1);
        prop_assert!(!state.verify(&token));
    }

    #[test]
    fn any_other_state_refuses_the_token(state in "[A-Za-z0-9_-]{24}") {
        prop_assume!(state != KAT_STATE);
        let state = CsrfState::from_session(&state).unwrap();
        prop_assert!(!state.verify(KAT_TOKEN_1));
    }
}
